/**
 * `copyTo()`: a whole store copied object by object into another store (any backend), resumable and verified, its
 * config written last.
 */
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { forEachConcurrent } from '../concurrency.js'
import { IntegrityError, JobStoreExistsError, NotAJobStoreError } from '../errors.js'
import { keys } from '../ids.js'
import { ObjectNotFoundError } from '../storage.js'
import { io, ioWithDigest, type SignalOptions, type StoreContext } from './context.js'
import {
  claimLocation,
  encodeConfig,
  encodeStoreMarker,
  isStoreConfig,
  isStoreMarker,
  MAX_PROOF_BYTES,
  parseObject,
  proofAt,
} from './lifecycle.js'
import { bytesOf, digesting, fileChecksum, holdsFileBytes, verified } from './objects.js'

/** Options of `copyTo()`. */
export interface CopyOptions extends SignalOptions {
  /** Called as objects are copied and verified. */
  readonly onProgress?: (progress: CopyProgress) => void
}

/** Progress of `copyTo()`. */
export interface CopyProgress {
  readonly phase: 'list' | 'copy' | 'verify'
  readonly done: number
  readonly total: number
  readonly bytes: number
}

/** What `copyTo()` did. */
export interface CopyReport {
  readonly objects: number
  readonly copied: number
  /** Already in the destination from an interrupted copy, with the same size. */
  readonly skipped: number
  readonly bytes: number
  /** Objects whose SHA-256 was compared between source and destination. */
  readonly verified: number
}

/** Marks a destination as the copy of a workflow while the copy is under way. */
const COPY_MARKER = 'meta/copy-source'

/** `copyTo()`: see `AbstractJobStore.copyTo`. */
export async function copyStore(source: StoreContext, destination: StoreContext, options: CopyOptions): Promise<CopyReport> {
  const signal = options.signal
  const workflowID = source.config.workflowID
  const from = source.storage
  const to = destination.storage
  await to.createStorage(io(signal))
  let resuming = false
  for (const key of [keys.config, COPY_MARKER]) {
    const existing = await to.headObject(key, io(signal))
    if (existing === undefined) continue
    const bytes = await bytesOf(await to.getObject(key, io(signal)), key)
    if (key === keys.config && !isStoreConfig(bytes)) {
      throw new NotAJobStoreError(to.locator, keys.config, 'nothing was written')
    }
    const text = bytes.toString('utf8')
    const id = key === COPY_MARKER ? text : (JSON.parse(text) as { workflowID?: string }).workflowID
    if (id !== workflowID) throw new JobStoreExistsError(to.locator)
    resuming = true
  }
  // A copy of this workflow cut short after its config (then its copy-source marker) went: its store marker says so.
  if (!resuming) {
    const object = await to.getObject(keys.storeMarker, io(signal)).catch((err: unknown) => {
      if (err instanceof ObjectNotFoundError) return undefined
      throw err
    })
    const bytes = object === undefined || object.size > MAX_PROOF_BYTES ? undefined : await bytesOf(object, keys.storeMarker)
    object?.body.destroy()
    resuming = bytes !== undefined && isStoreMarker(bytes) && parseObject(bytes)?.['copyOf'] === workflowID
  }
  // A new destination is claimed as initialize() would; one this copy started keeps (or gets) its marker.
  if (!resuming) await claimLocation(to, 'nothing was written', signal, encodeStoreMarker(workflowID))
  else if ((await proofAt(to, keys.storeMarker, isStoreMarker, signal)) !== 'ours') {
    await to.putObject(keys.storeMarker, encodeStoreMarker(workflowID), io(signal))
  }
  await to.putObject(COPY_MARKER, Buffer.from(workflowID, 'utf8'), io(signal))

  const objects: { key: string; size: number }[] = []
  for (const prefix of ['meta/', keys.jobsPrefix, keys.filesPrefix, keys.sharedPrefix, keys.statsUnreadPrefix, keys.statsReadPrefix]) {
    for await (const object of from.listObjects(prefix, io(signal))) {
      if (object.key === COPY_MARKER || object.key === keys.storeMarker) continue
      const size = object.size ?? (await from.headObject(object.key, io(signal)))?.size
      if (size !== undefined) objects.push({ key: object.key, size })
      options.onProgress?.({ phase: 'list', done: objects.length, total: objects.length, bytes: 0 })
    }
  }
  const total = objects.length
  let done = 0
  let copied = 0
  let skipped = 0
  let bytes = 0
  await forEachConcurrent(objects, from.concurrency, async ({ key, size }) => {
    const there = await to.headObject(key, io(signal))
    if (there !== undefined && there.size === size) {
      skipped++
    } else {
      const fileBytes = holdsFileBytes(key)
      const object = await from.getObject(key, fileBytes ? ioWithDigest(signal) : io(signal))
      const checked = verified(object, key, undefined, fileBytes ? fileChecksum(source, object, key) : object.checksum)
      const { body, digest } = fileBytes ? digesting(checked) : { body: checked, digest: undefined }
      await to.putObject(key, body, {
        ...(digest !== undefined ? { digest } : {}),
        executable: object.executable,
        contentLength: object.size,
        ...io(signal),
      })
      copied++
      bytes += size
    }
    options.onProgress?.({ phase: 'copy', done: ++done, total, bytes })
  })

  let verifiedCount = 0
  const mismatched: string[] = []
  await forEachConcurrent(objects, from.concurrency, async ({ key }) => {
    const read = async (store: StoreContext): Promise<string> => {
      if (!holdsFileBytes(key)) return sha256Of(verified(await store.storage.getObject(key, io(signal)), key))
      const object = await store.storage.getObject(key, ioWithDigest(signal))
      return sha256Of(verified(object, key, undefined, fileChecksum(store, object, key)))
    }
    const [mine, theirs] = await Promise.all([read(source), read(destination)])
    if (mine !== theirs) mismatched.push(key)
    options.onProgress?.({ phase: 'verify', done: ++verifiedCount, total, bytes })
  })
  if (mismatched.length > 0) {
    throw new IntegrityError(`copy to ${to.locator}: ${mismatched.length} object(s) differ: ${mismatched.slice(0, 5).join(', ')}`)
  }
  await to.putObject(keys.config, encodeConfig(source.config), io(signal))
  await to.deleteObjects([COPY_MARKER], io(signal))
  return { objects: total, copied, skipped, bytes, verified: verifiedCount }
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256')
  for await (const part of stream) hash.update(part as Buffer)
  return hash.digest('hex')
}
