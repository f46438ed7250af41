/**
 * Reads and writes of a store's objects, checked: the layer every core module goes through to reach
 * {@link Storage}. Conditional writes follow the write-token protocol; whole reads are verified against the size
 * and the core's digest (files) or the service's checksum; small objects are used straight from `data`.
 */
import { Readable, pipeline } from 'node:stream'
import { debuglog } from 'node:util'
import { createDecryptStream } from '../encryption.js'
import { IntegrityError } from '../errors.js'
import { keys, randomId } from '../ids.js'
import {
  ObjectNotFoundError,
  PreconditionFailedError,
  WriteMayHaveLandedError,
  type ExpectedChecksum,
  type ObjectRead,
  type PutOptions,
  type Storage,
} from '../storage.js'
import { checksumOfFileDigest, createVerifyStream, DigestStream, readToBuffer, verifyBytes } from '../streams.js'
import { io, ioWithDigest, type StoreContext } from './context.js'

const log = debuglog('jobstore')

/**
 * `putObject`, safe under SDK retries (the write-token protocol, see PreconditionFailedError): the backend stores
 * this call's write token with the object. When it says a failure may hide the write's success (a retried
 * request whose first attempt may have committed), one lookup settles it: the stored object carries the token,
 * and the write succeeded. A failed condition keeps what the lookup saw in `current`, for `update()`.
 */
export async function putConditional(storage: Storage, key: string, body: Buffer | Readable, put: PutOptions): Promise<string> {
  const writeToken = randomId()
  try {
    return await storage.putObject(key, body, { ...put, writeToken })
  } catch (err) {
    const failedCondition = err instanceof PreconditionFailedError
    if ((failedCondition && err.mayHaveLanded !== false) || err instanceof WriteMayHaveLandedError) {
      const stored = await storage.headObject(key, io(put.signal)).then(
        (info) => ({ info }),
        () => undefined,
      )
      if (stored?.info?.writeToken === writeToken) {
        log('write of %s landed before a retry failed (%s)', key, (err as Error).message)
        return stored.info.version
      }
      if (failedCondition && stored !== undefined) err.current = stored.info === undefined ? 'missing' : 'present'
      if (err instanceof WriteMayHaveLandedError) throw err.cause
    }
    throw err
  }
}

/** Whether a key holds bytes the core keeps a digest of (files and shared files), not a record with its own check. */
export function holdsFileBytes(key: string): boolean {
  return key.startsWith(keys.filesPrefix) || key.startsWith(keys.sharedPrefix)
}

/** `body` through a {@link DigestStream}, and the put options that hand its digest to the backend. */
export function digesting(body: Readable): { body: Readable; digest: () => string } {
  const digester = new DigestStream()
  return { body: pipeline(body, digester, () => {}), digest: digester.digest }
}

/** `getObject` of a file's bytes (with the core's digest), with `missing()` thrown (caused by it) when not found. */
export async function getOr(storage: Storage, key: string, signal: AbortSignal | undefined, missing: () => Error): Promise<ObjectRead> {
  try {
    return await storage.getObject(key, ioWithDigest(signal))
  } catch (err) {
    if (err instanceof ObjectNotFoundError) {
      const error = missing()
      ;(error as { cause?: unknown }).cause = err
      throw error
    }
    throw err
  }
}

/**
 * The whole of a small object (a job, the config, a stats message), checked as a stream would be. Straight from
 * `data` when the backend read it in one call: no stream to set up and drain for a 2 KiB record.
 */
export async function bytesOf(object: ObjectRead, what: string): Promise<Buffer> {
  if (object.data !== undefined) return verifyBytes(what, object.data, object.size, object.checksum)
  return readToBuffer(verified(object, what))
}

/**
 * What a whole read of a file's bytes is checked against: the core's digest stored with it, else the service's
 * checksum (and the size). A store that writes digests (`config.digests`) finds one on every file it wrote: a
 * file without one was replaced behind the store's back, and reading it is an IntegrityError.
 */
export function fileChecksum(store: StoreContext, object: ObjectRead, what: string): ExpectedChecksum | undefined {
  if (object.digest !== undefined) return checksumOfFileDigest(object.digest)
  if (object.unverifiable === undefined && store.strict && store.storage.keepsFileDigests) {
    object.body.destroy()
    throw new IntegrityError(`${what}: stored without its digest, which this store keeps for every file: replaced behind the store's back`)
  }
  return object.checksum
}

/** The object's bytes, verified against its size and `checksum` while they stream (and decrypted, with `decrypt`). */
export function verified(object: ObjectRead, what: string, decrypt?: { key: Buffer | undefined }, checksum = object.checksum): Readable {
  const onDone = (err: Error | null | undefined): void => {
    if (err && err.name !== 'AbortError' && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      log('read of %s failed: %s', what, err.message)
    }
  }
  if (decrypt === undefined && object.data !== undefined) {
    // Already in memory: checked now, handed out as one chunk, without a pipeline and a Transform per read.
    try {
      const data = verifyBytes(what, object.data, object.size, checksum)
      return Readable.from(data.length === 0 ? [] : [data], { objectMode: false })
    } catch (err) {
      log('read of %s failed: %s', what, (err as Error).message)
      return new Readable({ read() { this.destroy(err as Error) } })
    }
  }
  const verify = createVerifyStream(what, object.size, checksum)
  if (decrypt === undefined) return pipeline(object.body, verify, onDone)
  return pipeline(object.body, verify, createDecryptStream(decrypt.key, what, true), onDone)
}

/** Deletes every key under `prefix`, in batches of 1,000 sent as the listing goes on. */
export async function deletePrefix(storage: Storage, prefix: string, signal: AbortSignal | undefined): Promise<void> {
  let batch: string[] = []
  const pending: Promise<void>[] = []
  for await (const object of storage.listObjects(prefix, io(signal))) {
    batch.push(object.key)
    if (batch.length >= 1000) {
      pending.push(storage.deleteObjects(batch, io(signal)))
      batch = []
    }
  }
  if (batch.length > 0) pending.push(storage.deleteObjects(batch, io(signal)))
  await Promise.all(pending)
}
