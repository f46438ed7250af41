/**
 * A store's life: `initialize()` (claim the location, write the marker, then the config), `resume()`, `writeConfig()`
 * and `destroy()`; the store marker and the config as records; the conditional-write proof; and the defaults of
 * `findStoreData`/`deleteStoreData`, which list the layout's prefixes.
 */
import { randomUUID } from 'node:crypto'
import { PROOF_PREFIX, proveConditionalWrites } from '../conditional-write-proof.js'
import { checkKeyFile } from '../encryption.js'
import { CorruptRecordError, InvalidArgumentError, JobStoreExistsError, NoSuchJobStoreError, NotAJobStoreError } from '../errors.js'
import { keys } from '../ids.js'
import type { JsonValue } from '../job-description.js'
import { DIGESTS_CONFIG_FIELD, DIGESTS_V1, openJson, sealJson } from '../record-check.js'
import { ObjectNotFoundError, PreconditionFailedError, type IoOptions, type ObjectRead, type Storage } from '../storage.js'
import { io, type StoreContext } from './context.js'
import { bytesOf, putConditional } from './objects.js'

/** The store's configuration, persisted in the store. Engines may add their own JSON fields. */
export interface JobStoreConfig {
  /** Allocated by `initialize()`. */
  readonly workflowID: string
  /** Retries per job; a job gets `retryCount + 1` tries. Default 1. */
  retryCount: number
  /**
   * Path of a key file (a regular file of at least 32 bytes) for protected shared files. The path is stored, never
   * the key: every worker needs the file at this path. `initialize()` and `writeConfig()` check the file before
   * writing anything and store the path absolute (a relative one counts from the working folder at that moment).
   */
  encryptionKeyPath?: string
  /** Lifetime of URLs from `getPublicUrl`/`getSharedPublicUrl`, in seconds. Default 3600. */
  publicUrlExpirySeconds: number
  [engineField: string]: JsonValue | undefined
}

/** What `initialize()` accepts: any config field but the workflow ID, which the store allocates. */
export interface JobStoreConfigInit {
  retryCount?: number
  /** Checked at `initialize()` (`EncryptionError` when missing, unreadable, not a regular file or < 32 bytes), stored absolute. */
  encryptionKeyPath?: string
  publicUrlExpirySeconds?: number
  [engineField: string]: JsonValue | undefined
}

/** Format of the store marker this release writes (`keys.storeMarker`). */
const STORE_MARKER_FORMAT = 1
/** The marker and a config are small: anything larger at their keys is not ours, and is not read. */
export const MAX_PROOF_BYTES = 1024 * 1024

/** The config as stored: pretty-printed JSON with its check on the first line. */
export function encodeConfig(config: JobStoreConfig): Buffer {
  return sealJson(Buffer.from(JSON.stringify(config, null, 2), 'utf8'), true)
}

/**
 * A new store marker: its format version and a random store ID; for a store made by `copyTo`, the workflow it is a
 * copy of (`copyOf`), so that a copy cut short at any point can be resumed.
 */
export function encodeStoreMarker(copyOf?: string): Buffer {
  const marker = { jobstore: 'store-marker', format: STORE_MARKER_FORMAT, storeID: randomUUID(), ...(copyOf !== undefined ? { copyOf } : {}) }
  return Buffer.from(`${JSON.stringify(marker)}\n`, 'utf8')
}

/** The JSON object in `bytes`, or undefined when they are not one. */
export function parseObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'))
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** A store marker of any release (a later format included). */
export function isStoreMarker(bytes: Buffer): boolean {
  const marker = parseObject(bytes)
  return (
    marker?.['jobstore'] === 'store-marker' &&
    Number.isInteger(marker['format']) &&
    (marker['format'] as number) >= 1 &&
    typeof marker['storeID'] === 'string'
  )
}

/** A config written by `initialize()` of any release: a workflow ID and a retry count, as every release writes. */
export function isStoreConfig(bytes: Buffer): boolean {
  const config = parseObject(bytes)
  return typeof config?.['workflowID'] === 'string' && config['workflowID'] !== '' && typeof config['retryCount'] === 'number'
}

/**
 * Whether `key` (the marker or the config) is there and of our making: `foreign` when it is there but is not
 * (someone else's `config.json`, or bytes too large to be ours).
 */
export async function proofAt(
  storage: Storage,
  key: string,
  isOurs: (bytes: Buffer) => boolean,
  signal: AbortSignal | undefined,
): Promise<'ours' | 'absent' | 'foreign'> {
  let object: ObjectRead
  try {
    object = await storage.getObject(key, io(signal))
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return 'absent'
    throw err
  }
  if (object.size > MAX_PROOF_BYTES) {
    object.body.destroy()
    return 'foreign'
  }
  return isOurs(await bytesOf(object, key)) ? 'ours' : 'foreign'
}

/**
 * Before a new store's first write (`initialize`, `copyTo` onto a new location): refuses a location that holds
 * data no marker or config of ours proves to be a store's (`NotAJobStoreError`), or the remains of a store
 * (its marker and data, no config: `JobStoreExistsError`); then writes the marker, before anything else.
 * Racing initializers all pass here (the marker is create-if-absent; one's is kept); the config decides.
 */
export async function claimLocation(
  storage: Storage,
  action: string,
  signal: AbortSignal | undefined,
  markerBody = encodeStoreMarker(),
): Promise<void> {
  const locator = storage.locator
  const config = await proofAt(storage, keys.config, isStoreConfig, signal)
  if (config === 'ours') throw new JobStoreExistsError(locator)
  if (config === 'foreign') throw new NotAJobStoreError(locator, keys.config, action)
  const marker = await proofAt(storage, keys.storeMarker, isStoreMarker, signal)
  const found = marker === 'foreign' ? keys.storeMarker : await storage.findStoreData(io(signal))
  if (found !== undefined) {
    // A racing initializer may have finished meanwhile: its marker and config come before any other data.
    if ((await proofAt(storage, keys.config, isStoreConfig, signal)) === 'ours') throw new JobStoreExistsError(locator)
    if (marker === 'ours' || (await proofAt(storage, keys.storeMarker, isStoreMarker, signal)) === 'ours') {
      throw new JobStoreExistsError(locator, {
        message: `${locator} holds the remains of a job store (${found}, a store marker, no config): destroy it first, or use another location`,
      })
    }
    throw new NotAJobStoreError(locator, found, action)
  }
  if (marker === 'ours') return
  try {
    await putConditional(storage, keys.storeMarker, markerBody, { ifNoneMatch: true, ...io(signal) })
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err // else a racing initializer's marker: as good as ours
  }
}

/** Proves (once per scope per process) that the service enforces conditional writes, or throws. */
async function proveWrites(storage: Storage, skip: boolean, signal: AbortSignal | undefined): Promise<void> {
  const target = await storage.conditionalWriteProofTarget()
  if (target === undefined) return
  await proveConditionalWrites(
    target,
    {
      put: (key, body, put) => storage.putObject(key, body, put),
      putConditional: (key, body, put) => putConditional(storage, key, body, put),
      deleteObjects: (list) => storage.deleteObjects(list),
    },
    { locator: storage.locator, skip, signal },
  )
}

/** `initialize()`: see `AbstractJobStore.initialize`. */
export async function initializeStore(
  store: StoreContext,
  config: JobStoreConfigInit,
  skipProof: boolean,
  signal: AbortSignal | undefined,
): Promise<JobStoreConfig> {
  const storage = store.storage
  const full: JobStoreConfig = {
    ...config,
    retryCount: config.retryCount ?? 1,
    publicUrlExpirySeconds: config.publicUrlExpirySeconds ?? 3600,
    workflowID: randomUUID(),
    // A new store writes a check into every record and a digest of every file, and requires them on reads.
    [DIGESTS_CONFIG_FIELD]: DIGESTS_V1,
  }
  if (!Number.isInteger(full.retryCount) || full.retryCount < 0) {
    throw new InvalidArgumentError(`retryCount must be a non-negative integer, got ${full.retryCount}`)
  }
  if (!(full.publicUrlExpirySeconds > 0)) {
    throw new InvalidArgumentError(`publicUrlExpirySeconds must be positive, got ${full.publicUrlExpirySeconds}`)
  }
  // Checked, and made absolute, before anything is created: no half-made store for a key that cannot serve.
  if (full.encryptionKeyPath !== undefined) full.encryptionKeyPath = await checkKeyFile(full.encryptionKeyPath)
  await storage.createStorage(io(signal))
  for (const [field, value] of Object.entries(await storage.storageConfigFields())) {
    if (config[field] !== undefined) throw new InvalidArgumentError(`${field} is the backend's own config field: the store sets it`)
    full[field] = value
  }
  await proveWrites(storage, skipProof, signal)
  await claimLocation(storage, 'nothing was written', signal)
  try {
    await putConditional(storage, keys.config, encodeConfig(full), { ifNoneMatch: true, ...io(signal) })
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err
    if ((await proofAt(storage, keys.config, isStoreConfig, signal)) === 'foreign') {
      throw new NotAJobStoreError(storage.locator, keys.config, 'nothing was written', { cause: err })
    }
    throw new JobStoreExistsError(storage.locator, { cause: err })
  }
  store.loaded = full
  store.storedKeyPath = full.encryptionKeyPath
  return full
}

/** `resume()`: see `AbstractJobStore.resume`. */
export async function resumeStore(store: StoreContext, skipProof: boolean, signal: AbortSignal | undefined): Promise<JobStoreConfig> {
  const storage = store.storage
  const locator = storage.locator
  let bytes: Buffer | string
  try {
    bytes = await bytesOf(await storage.getObject(keys.config, io(signal)), 'the store config')
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new NoSuchJobStoreError(locator, { cause: err })
    throw err
  }
  try {
    bytes = openJson(bytes as Buffer, `config of ${locator}`, false)
  } catch (err) {
    if (!(err instanceof CorruptRecordError)) throw err
    throw new CorruptRecordError(
      `config of ${locator}`,
      'checksum mismatch: torn or overwritten (edited by hand? delete its "crc32" line to accept the edit)',
      { cause: err },
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new CorruptRecordError(`config of ${locator}`, 'not valid JSON', { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as JobStoreConfig).workflowID !== 'string') {
    throw new CorruptRecordError(`config of ${locator}`, 'no workflowID')
  }
  const stored = parsed as JobStoreConfig
  await proveWrites(storage, skipProof, signal)
  store.loaded = {
    ...stored,
    retryCount: stored.retryCount ?? 1,
    publicUrlExpirySeconds: stored.publicUrlExpirySeconds ?? 3600,
  }
  store.encryptionKey = undefined
  store.storedKeyPath = store.loaded.encryptionKeyPath
  return store.loaded
}

/** `writeConfig()`: see `AbstractJobStore.writeConfig`. */
export async function writeStoreConfig(store: StoreContext, signal: AbortSignal | undefined): Promise<void> {
  const config = store.config
  if (config.encryptionKeyPath !== undefined && config.encryptionKeyPath !== store.storedKeyPath) {
    config.encryptionKeyPath = await checkKeyFile(config.encryptionKeyPath)
  }
  await store.storage.putObject(keys.config, encodeConfig(config), io(signal))
  store.storedKeyPath = config.encryptionKeyPath
  store.encryptionKey = undefined
}

/** `destroy()`: see `AbstractJobStore.destroy`. Forgets the config once nothing (more) is there. */
export async function destroyStore(store: StoreContext, signal: AbortSignal | undefined): Promise<void> {
  const storage = store.storage
  const marker = await proofAt(storage, keys.storeMarker, isStoreMarker, signal)
  if (marker !== 'ours') {
    const config = await proofAt(storage, keys.config, isStoreConfig, signal)
    if (config !== 'ours') {
      const found =
        config === 'foreign' ? keys.config : marker === 'foreign' ? keys.storeMarker : await storage.findStoreData(io(signal))
      if (found !== undefined) throw new NotAJobStoreError(storage.locator, found, 'nothing was deleted')
      store.loaded = undefined
      return
    }
    // A store of the previous release: marked first, so that a destroy cut short leaves what destroy() knows.
    await storage.putObject(keys.storeMarker, encodeStoreMarker(), io(signal))
  }
  // The config goes first, so that nobody resumes a half-destroyed store; the marker last, with the storage.
  await storage.deleteObjects([keys.config], io(signal))
  await storage.deleteStoreData(io(signal))
  await storage.destroyStorage(io(signal))
  store.loaded = undefined
}

/** The default of `findStoreData`: the first key listed under the layout's prefixes, but the marker. */
export async function findStoreData(storage: Storage, options?: IoOptions): Promise<string | undefined> {
  for (const entry of keys.rootEntries) {
    if (!entry.endsWith('/')) continue
    for await (const object of storage.listObjects(entry, options)) {
      // A scratch key of another process's conditional-write proof (racing initializers) is no data.
      if (object.key !== keys.storeMarker && !object.key.startsWith(PROOF_PREFIX)) return object.key
    }
  }
  return undefined
}

/** The default of `deleteStoreData`: every key listed under the layout's prefixes but the marker, in batches of 1,000. */
export async function deleteStoreData(storage: Storage, options?: IoOptions): Promise<void> {
  const prefixes = keys.rootEntries.filter((entry) => entry.endsWith('/'))
  await Promise.all(
    prefixes.map(async (prefix) => {
      let batch: string[] = []
      for await (const object of storage.listObjects(prefix, options)) {
        if (object.key === keys.storeMarker) continue
        batch.push(object.key)
        if (batch.length >= 1000) {
          await storage.deleteObjects(batch, options)
          batch = []
        }
      }
      if (batch.length > 0) await storage.deleteObjects(batch, options)
    }),
  )
}
