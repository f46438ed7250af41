/**
 * `AbstractJobStore`: the whole public contract (Toil's AbstractJobStore, method by method) implemented once on
 * the few storage primitives a backend supplies (see `storage.ts`). A backend is a subclass that implements the
 * protected abstract primitives and maps its errors; it overrides a public method only where it can do better.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash, randomUUID } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { open, rename, rm, chmod } from 'node:fs/promises'
import { basename as pathBasename, dirname, join } from 'node:path'
import { PassThrough, Readable, Transform, pipeline } from 'node:stream'
import { finished, pipeline as pipelineAsync } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { debuglog } from 'node:util'
import { forEachConcurrent, linkedAbortController, mapConcurrent, throwIfAborted } from './concurrency.js'
import { checkKeyFile, createDecryptStream, createEncryptStream, loadKeyFile } from './encryption.js'

import { PROOF_PREFIX, proveConditionalWrites, SKIP_PROOF_ENV, type ConditionalWriteProofTarget } from './conditional-write-proof.js'
import {
  ConcurrentFileModificationError,
  CorruptRecordError,
  EncryptionError,
  IntegrityError,
  InvalidArgumentError,
  InvalidImportExportUrlError,
  JobStoreError,
  JobStoreExistsError,
  NoSuchFileError,
  NoSuchJobError,
  NoSuchJobStoreError,
  NotAJobStoreError,
} from './errors.js'
import { checkJobId, checkSharedFileName, keys, mintFileId, parseFileId, randomId } from './ids.js'
import { checkJobDescription, decodeJob, encodeJob, type JobDescription, type JsonValue } from './job-description.js'
import { DIGESTS_CONFIG_FIELD, DIGESTS_V1, openJson, openText, sealJson, sealText } from './record-check.js'
import {
  ObjectNotFoundError,
  PreconditionFailedError,
  WriteMayHaveLandedError,
  type IoOptions,
  type ListedObject,
  type ObjectInfo,
  type ExpectedChecksum,
  type ObjectRead,
  type PutOptions,
} from './storage.js'
import {
  asStoreReadable,
  createVerifyStream,
  checksumOfFileDigest,
  DigestStream,
  digestOf,
  readToBuffer,
  verifyBytes,
  type BodyWritable,
  type StoreReadable,
} from './streams.js'
import { instrumentJobStoreClass, traceBytes } from './tracing.js'
import {
  localDestinationProblem,
  requireWritable,
  resolveUrlHandler,
  urlTimeouts,
  type UrlHandler,
  type UrlIoOptions,
  type UrlTimeoutOptions,
} from './url-handlers.js'

const log = debuglog('jobstore')

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

/** Options every I/O method accepts. */
export interface SignalOptions {
  readonly signal?: AbortSignal
}

/** Options of the methods that write a new file. */
export interface NewFileOptions extends SignalOptions {
  /** The job the file belongs to. */
  readonly jobStoreID?: string
  /** Delete the file when that job is deleted. */
  readonly cleanup?: boolean
  /** Basename kept in the file ID, so the file can be recognised by name. */
  readonly basename?: string
}

/** Options of the stream write methods. */
export interface EncodingOptions {
  /** A Node.js encoding for string writes or reads; binary when absent. */
  readonly encoding?: BufferEncoding
}

/** Optimistic concurrency for replacing a file or shared file. */
export interface ConditionalOptions {
  /** Replace only this version (the `version` of a `StoreReadable` or of a previous write), else throw. */
  readonly ifVersion?: string
}

/** A body callback: write the content to `writable` (ending it is optional). */
export type BodyCallback<Extra extends unknown[] = []> = (writable: BodyWritable, ...extra: Extra) => Promise<void> | void

/** Options of `jobs()`. */
export interface JobsOptions extends SignalOptions {
  /** Called for each record that cannot be decoded; such records are skipped. */
  readonly onCorruptRecord?: (error: CorruptRecordError) => void
}

/** Options of `clean()`. */
export interface CleanOptions extends JobsOptions {
  /** Leftovers (temporary files, uploads, stats claims) younger than this are kept. Default 15 minutes. */
  readonly leftoverAgeMs?: number
  /** Receives what `clean()` did. */
  readonly onReport?: (report: CleanReport) => void
}

/** What `clean()` did. */
export interface CleanReport {
  readonly reachableJobs: number
  /** Jobs deleted: unreachable ones and those in `jobsToDelete`. */
  readonly deletedJobs: string[]
  /** Jobs rewritten: files or jobs to delete cleared, successors dropped, tries reset, log dropped. */
  readonly repairedJobs: string[]
  /** Files deleted through `filesToDelete` and `logJobStoreFileID`. */
  readonly deletedFiles: string[]
  /** Stats claims of crashed readers released. */
  readonly releasedStatsClaims: number
  /** Leftovers of interrupted writes removed (temporary files, uploads). */
  readonly leftoversRemoved: number
  /**
   * Job records that could not be decoded, sorted. They are kept, with every reference to them, except those
   * named in a `jobsToDelete` (then also in `deletedJobs`).
   */
  readonly corruptJobs: string[]
  /**
   * Unreachable jobs kept because a reachable record could not be decoded: they may be its successors. Deleted by
   * the first `clean()` that can read every reachable record, if still unreachable then.
   */
  readonly keptUnreachableJobs: string[]
}

/** What `reachability()` finds; every list sorted. */
export interface ReachabilityReport {
  readonly rootJobStoreID: string
  /** Jobs the root reaches over children, follow-ons and services (the root included). */
  readonly reachable: string[]
  /** Jobs the walk did not reach: `clean()` deletes them, unless `reachedCorrupt` is not empty. */
  readonly unreachable: string[]
  /** Reachable job records that cannot be decoded: their successors are unknown. */
  readonly reachedCorrupt: string[]
  /** Successors named by a reachable job that do not exist (`clean()` drops them). */
  readonly missing: string[]
}

/** A file as listed by `files()`. */
export interface ListedFile {
  readonly fileID: string
  /** Size in bytes, when the listing tells it without another round trip. */
  readonly size?: number
}

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

/** A job cache for `clean()`: job descriptions by ID. */
export type JobCache = ReadonlyMap<string, JobDescription> | Readonly<Record<string, JobDescription>>

const DEFAULT_CONCURRENCY = 32
const TOKEN_CACHE_LIMIT = 50_000
const ROOT_RETURN_VALUE = 'rootJobReturnValue'

function io(signal: AbortSignal | undefined): IoOptions {
  return signal ? { signal } : {}
}

/** Options of a `getObject` whose bytes are checked against the core's digest. */
function ioWithDigest(signal: AbortSignal | undefined): IoOptions {
  return signal ? { signal, lookUpDigest: true } : { lookUpDigest: true }
}

/** Whether a key holds bytes the core keeps a digest of (files and shared files), not a record with its own check. */
function holdsFileBytes(key: string): boolean {
  return key.startsWith(keys.filesPrefix) || key.startsWith(keys.sharedPrefix)
}

/** `body` through a {@link DigestStream}, and the put options that hand its digest to the backend. */
function digesting(body: Readable): { body: Readable; digest: () => string } {
  const digester = new DigestStream()
  return { body: pipeline(body, digester, () => {}), digest: digester.digest }
}

/** Options of every job store's constructor. */
export interface JobStoreOptions {
  /** Round trips in flight at once for bulk work (batch, jobs(), clean(), deletes). Default 32. */
  readonly concurrency?: number
  /**
   * Opens the store without proving that the storage service enforces conditional writes (see
   * docs/guarantees.md, "Conditional writes are proven, not assumed"). Only for a single writer: on a service that
   * ignores the conditions, concurrent writers overwrite each other silently. Default false; the environment
   * variable `JOBSTORE_SKIP_CONDITIONAL_WRITE_PROOF=1` does the same. Skipping is logged (`NODE_DEBUG=jobstore`)
   * and warned about once per service and bucket (a process warning, `JOBSTORE_CONDITIONAL_WRITES_UNPROVEN`).
   */
  readonly skipConditionalWriteProof?: boolean
}

/**
 * The job store contract. Create one with `openJobStore(locator)`, then call `initialize()` for a new store or
 * `resume()` for an existing one. Every method is safe to call from many processes on many hosts at once.
 */
export abstract class AbstractJobStore {
  /** The locator this store was opened with. */
  readonly locator: string
  /** Round trips in flight at once for bulk work. */
  protected readonly concurrency: number
  readonly #skipConditionalWriteProof: boolean
  #config: JobStoreConfig | undefined
  #encryptionKey: Promise<Buffer> | undefined
  /** The key path of the stored config as last read or written: `writeConfig` checks a path that differs. */
  #storedKeyPath: string | undefined
  /** Version tokens of jobs this instance has read or written: saves a round trip on `update(…, {ifVersion})`. */
  readonly #jobTokens = new Map<string, { version: number; token: string }>()
  readonly #batch = new AsyncLocalStorage<JobDescription[]>()
  /** Set by the first `close()`; later calls wait for the same release. */
  #closing: Promise<void> | undefined

  protected constructor(locator: string, options: JobStoreOptions = {}) {
    // The jobstore:operation tracing channel (tracing.ts): the public methods of this class, wrapped once.
    instrumentJobStoreClass(new.target.prototype)
    this.locator = locator
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY
    this.#skipConditionalWriteProof = options.skipConditionalWriteProof === true || process.env[SKIP_PROOF_ENV] === '1'
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new InvalidArgumentError(`concurrency must be a positive integer, got ${options.concurrency}`)
    }
  }

  // ---------------------------------------------------------------- primitives a backend implements

  /** Creates the bucket, container or folder when missing. Idempotent. */
  protected abstract createStorage(options?: IoOptions): Promise<void>
  /**
   * Stores `body` at `key` atomically, honouring `ifNoneMatch`/`ifMatch` (else {@link PreconditionFailedError});
   * nothing stored and no upload left behind when the body errors or the signal aborts. Resolves with the new
   * version token.
   */
  protected abstract putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string>
  /** Opens `key`; {@link ObjectNotFoundError} before any byte flows when missing. */
  protected abstract getObject(key: string, options?: IoOptions): Promise<ObjectRead>
  /** Metadata of `key`, undefined when missing. */
  protected abstract headObject(key: string, options?: IoOptions): Promise<ObjectInfo | undefined>
  /** Deletes keys, batched and in parallel; missing keys are fine. */
  protected abstract deleteObjects(keys: readonly string[], options?: IoOptions): Promise<void>
  /** Every key under `prefix` (ending in `/`), recursively. */
  protected abstract listObjects(prefix: string, options?: IoOptions): AsyncIterable<ListedObject>
  /** Deletes all this store owns and nothing else. Idempotent, also on a half-destroyed store. */
  protected abstract destroyStorage(options?: IoOptions): Promise<void>

  /**
   * The store-relative name of one entry at the location under the layout's names, other than the config and the
   * store marker (a job, a file, a leftover), or undefined when there is none. `initialize()`, `copyTo()` and
   * `destroy()` ask when no marker or config of ours proves a store is there, so as not to adopt or delete data
   * no store made. Default: the first key listed under the layout's prefixes.
   */
  protected async findStoreData(options?: IoOptions): Promise<string | undefined> {
    for (const entry of keys.rootEntries) {
      if (!entry.endsWith('/')) continue
      for await (const object of this.listObjects(entry, options)) {
        // A scratch key of another process's conditional-write proof (racing initializers) is no data.
        if (object.key !== keys.storeMarker && !object.key.startsWith(PROOF_PREFIX)) return object.key
      }
    }
    return undefined
  }

  /**
   * Deletes everything the store holds but its marker, which `destroyStorage()` then removes with the rest: a
   * destroy cut short leaves remains that the marker still proves are a store's (and that `destroy()` removes).
   * Default: every key listed under the layout's prefixes, in batches of 1,000.
   */
  protected async deleteStoreData(options?: IoOptions): Promise<void> {
    const prefixes = keys.rootEntries.filter((entry) => entry.endsWith('/'))
    await Promise.all(
      prefixes.map(async (prefix) => {
        let batch: string[] = []
        for await (const object of this.listObjects(prefix, options)) {
          if (object.key === keys.storeMarker) continue
          batch.push(object.key)
          if (batch.length >= 1000) {
            await this.deleteObjects(batch, options)
            batch = []
          }
        }
        if (batch.length > 0) await this.deleteObjects(batch, options)
      }),
    )
  }
  /** A credential-free URL to read `key` for at least `expiresInSeconds`. */
  protected abstract getObjectUrl(key: string, expiresInSeconds: number): Promise<string>

  /**
   * Whether this backend stores the core's digest of every file it is given ({@link PutOptions.digest}) and hands
   * it back from `getObject` ({@link ObjectInfo.digest}). Then, in a store that writes digests, a file found without
   * one is an IntegrityError. A backend that cannot keep digests leaves this false: its files are checked against
   * their size and the service's checksum only.
   */
  protected get keepsFileDigests(): boolean {
    return false
  }

  /**
   * Removes leftovers of interrupted writes older than `olderThanMs` (temporary files, abandoned multipart
   * uploads, uncommitted blocks). Returns how many it removed. Default: nothing to remove.
   */
  protected async removeLeftovers(_olderThanMs: number, _options?: IoOptions): Promise<number> {
    return 0
  }

  /**
   * Stores the local file at `path` at `key` by linking instead of copying, when the backend can and the caller
   * allowed it (`importFile` with `hardlink`/`symlink`). Returns false to fall back to a copy.
   */
  protected async linkLocalFile(
    _path: string,
    _key: string,
    _options: { hardlink: boolean; symlink: boolean },
  ): Promise<boolean> {
    return false
  }

  /**
   * Server-side import: when `url` names an object in this backend's own service, copy it into `key` without the
   * bytes passing through this process (S3 CopyObject, GCS rewrite, Azure copy from URL), keeping `executable`
   * from the source. Return false to fall back to streaming. Throw `NoSuchFileError` when the source is missing.
   */
  protected async copyFromUrl(_url: URL, _key: string, _options: PutOptions): Promise<boolean> {
    return false
  }

  /**
   * Server-side export of `key` to `url` (keeping the executable flag), when `url` is in this backend's own
   * service; false, without I/O, to stream instead. `ObjectNotFoundError` when `key` is missing.
   */
  protected async copyToUrl(_key: string, _url: URL, _options: IoOptions): Promise<boolean> {
    return false
  }

  /**
   * Puts the object at `key` at `localPath` (for `readFile`): by default a verified stream into a temporary file
   * beside the target and a rename, so the file appears whole or not at all. The file backend links instead.
   */
  protected async materializeObject(
    key: string,
    what: string,
    localPath: string,
    options: { symlink: boolean; signal?: AbortSignal },
  ): Promise<void> {
    const object = await this.getObject(key, ioWithDigest(options.signal))
    const checksum = this.fileChecksum(object, what)
    const temp = join(dirname(localPath), `.${pathBasename(localPath)}.${randomId()}.partial`)
    try {
      const handle = await open(temp, 'wx', object.executable ? 0o777 : 0o666)
      await pipelineAsync(
        object.body,
        createVerifyStream(what, object.size, checksum),
        handle.createWriteStream(),
        io(options.signal),
      )
      if (object.executable) await chmod(temp, 0o755)
      await refuseLocalDestination(localPath, what)
      await rename(temp, localPath)
    } catch (err) {
      object.body.destroy()
      await rm(temp, { force: true })
      throw err
    }
  }

  /**
   * What the conditional-write proof at `initialize()`/`resume()` exercises (see `conditional-write-proof.ts`):
   * the scope its verdict is kept under in this process (the service endpoint and bucket), and every path the
   * backend commits conditional writes on, each reachable for a tiny body through `PutOptions.writePath`.
   * Undefined: no proof, for a backend whose conditions are local guarantees (the file backend). Default: the
   * single-request path, scoped by backend class and locator.
   */
  protected async conditionalWriteProofTarget(): Promise<ConditionalWriteProofTarget | undefined> {
    return { scope: `${this.constructor.name} ${this.locator}`, paths: [{ writePath: 'single', name: 'putObject' }] }
  }

  /** Proves (once per scope per process) that the service enforces conditional writes, or throws. */
  async #proveConditionalWrites(signal: AbortSignal | undefined): Promise<void> {
    const target = await this.conditionalWriteProofTarget()
    if (target === undefined) return
    await proveConditionalWrites(
      target,
      {
        put: (key, body, put) => this.putObject(key, body, put),
        putConditional: (key, body, put) => this.#putConditional(key, body, put),
        deleteObjects: (list) => this.deleteObjects(list),
      },
      { locator: this.locator, skip: this.#skipConditionalWriteProof, signal },
    )
  }

  /**
   * `putObject`, safe under SDK retries (the write-token protocol, see PreconditionFailedError): the backend stores
   * this call's write token with the object. When it says a failure may hide the write's success (a retried
   * request whose first attempt may have committed), one lookup settles it: the stored object carries the token,
   * and the write succeeded. A failed condition keeps what the lookup saw in `current`, for `update()`.
   */
  async #putConditional(key: string, body: Buffer | Readable, put: PutOptions): Promise<string> {
    const writeToken = randomId()
    try {
      return await this.putObject(key, body, { ...put, writeToken })
    } catch (err) {
      const failedCondition = err instanceof PreconditionFailedError
      if ((failedCondition && err.mayHaveLanded !== false) || err instanceof WriteMayHaveLandedError) {
        const stored = await this.headObject(key, io(put.signal)).then(
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

  // ---------------------------------------------------------------- lifecycle

  /**
   * Creates the store: the storage (bucket, folder) if missing, a new workflow ID, and the persisted config.
   * First proves (once per process per service and bucket) that the service enforces conditional writes.
   * @throws JobStoreExistsError when a store is already at the locator; ConditionalWritesUnsupportedError when the
   * service accepts a write its condition forbids (see `JobStoreOptions.skipConditionalWriteProof`); EncryptionError,
   * before anything is created, when `encryptionKeyPath` names no usable key file; NotAJobStoreError when the
   * location holds data that is not a store's.
   */
  async initialize(config: JobStoreConfigInit = {}, options: SignalOptions = {}): Promise<JobStoreConfig> {
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
    await this.createStorage(io(options.signal))
    await this.#proveConditionalWrites(options.signal)
    await this.#claimLocation('nothing was written', options.signal)
    try {
      await this.#putConditional(keys.config, encodeConfig(full), { ifNoneMatch: true, ...io(options.signal) })
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err
      if ((await this.#proofAt(keys.config, isStoreConfig, options.signal)) === 'foreign') {
        throw new NotAJobStoreError(this.locator, keys.config, 'nothing was written', { cause: err })
      }
      throw new JobStoreExistsError(this.locator, { cause: err })
    }
    this.#config = full
    this.#storedKeyPath = full.encryptionKeyPath
    return full
  }

  /**
   * Whether `key` (the marker or the config) is there and of our making: `foreign` when it is there but is not
   * (someone else's `config.json`, or bytes too large to be ours).
   */
  async #proofAt(key: string, isOurs: (bytes: Buffer) => boolean, signal: AbortSignal | undefined): Promise<'ours' | 'absent' | 'foreign'> {
    let object: ObjectRead
    try {
      object = await this.getObject(key, io(signal))
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return 'absent'
      throw err
    }
    if (object.size > MAX_PROOF_BYTES) {
      object.body.destroy()
      return 'foreign'
    }
    return isOurs(await this.#bytesOf(object, key)) ? 'ours' : 'foreign'
  }

  /**
   * Before a new store's first write (`initialize`, `copyTo` onto a new location): refuses a location that holds
   * data no marker or config of ours proves to be a store's (`NotAJobStoreError`), or the remains of a store
   * (its marker and data, no config: `JobStoreExistsError`); then writes the marker, before anything else.
   * Racing initializers all pass here (the marker is create-if-absent; one's is kept); the config decides.
   */
  async #claimLocation(action: string, signal: AbortSignal | undefined, markerBody = encodeStoreMarker()): Promise<void> {
    const config = await this.#proofAt(keys.config, isStoreConfig, signal)
    if (config === 'ours') throw new JobStoreExistsError(this.locator)
    if (config === 'foreign') throw new NotAJobStoreError(this.locator, keys.config, action)
    const marker = await this.#proofAt(keys.storeMarker, isStoreMarker, signal)
    const found = marker === 'foreign' ? keys.storeMarker : await this.findStoreData(io(signal))
    if (found !== undefined) {
      // A racing initializer may have finished meanwhile: its marker and config come before any other data.
      if ((await this.#proofAt(keys.config, isStoreConfig, signal)) === 'ours') throw new JobStoreExistsError(this.locator)
      if (marker === 'ours' || (await this.#proofAt(keys.storeMarker, isStoreMarker, signal)) === 'ours') {
        throw new JobStoreExistsError(this.locator, {
          message: `${this.locator} holds the remains of a job store (${found}, a store marker, no config): destroy it first, or use another location`,
        })
      }
      throw new NotAJobStoreError(this.locator, found, action)
    }
    if (marker === 'ours') return
    try {
      await this.#putConditional(keys.storeMarker, markerBody, { ifNoneMatch: true, ...io(signal) })
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err // else a racing initializer's marker: as good as ours
    }
  }

  /**
   * Connects to the existing store and loads its config, then proves (once per process per service and bucket)
   * that the service enforces conditional writes.
   * @throws NoSuchJobStoreError when there is no store at the locator; ConditionalWritesUnsupportedError when the
   * service accepts a write its condition forbids (see `JobStoreOptions.skipConditionalWriteProof`).
   */
  async resume(options: SignalOptions = {}): Promise<JobStoreConfig> {
    let bytes: Buffer | string
    try {
      bytes = await this.#bytesOf(await this.getObject(keys.config, io(options.signal)), 'the store config')
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new NoSuchJobStoreError(this.locator, { cause: err })
      throw err
    }
    try {
      bytes = openJson(bytes as Buffer, `config of ${this.locator}`, false)
    } catch (err) {
      if (!(err instanceof CorruptRecordError)) throw err
      throw new CorruptRecordError(
        `config of ${this.locator}`,
        'checksum mismatch: torn or overwritten (edited by hand? delete its "crc32" line to accept the edit)',
        { cause: err },
      )
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(bytes.toString('utf8'))
    } catch (err) {
      throw new CorruptRecordError(`config of ${this.locator}`, 'not valid JSON', { cause: err })
    }
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as JobStoreConfig).workflowID !== 'string') {
      throw new CorruptRecordError(`config of ${this.locator}`, 'no workflowID')
    }
    const stored = parsed as JobStoreConfig
    await this.#proveConditionalWrites(options.signal)
    this.#config = {
      ...stored,
      retryCount: stored.retryCount ?? 1,
      publicUrlExpirySeconds: stored.publicUrlExpirySeconds ?? 3600,
    }
    this.#encryptionKey = undefined
    this.#storedKeyPath = this.#config.encryptionKeyPath
    return this.#config
  }

  /** The config, after `initialize()` or `resume()`. Change fields, then `writeConfig()` to persist. */
  get config(): JobStoreConfig {
    if (this.#config === undefined) {
      throw new JobStoreError(`the job store at ${this.locator} is not open: call initialize() or resume() first`)
    }
    return this.#config
  }

  /** Whether this store writes checks into every record and digests of every file, and so requires them on reads. */
  get #strict(): boolean {
    return this.#config?.[DIGESTS_CONFIG_FIELD] === DIGESTS_V1
  }

  /**
   * Persists `config` so that other instances see it on `resume()`. A changed `encryptionKeyPath` is checked first
   * and stored absolute, as by `initialize()`: `EncryptionError` (nothing written) when the file cannot serve.
   */
  async writeConfig(options: SignalOptions = {}): Promise<void> {
    const config = this.config
    if (config.encryptionKeyPath !== undefined && config.encryptionKeyPath !== this.#storedKeyPath) {
      config.encryptionKeyPath = await checkKeyFile(config.encryptionKeyPath)
    }
    await this.putObject(keys.config, encodeConfig(config), io(options.signal))
    this.#storedKeyPath = config.encryptionKeyPath
    this.#encryptionKey = undefined
  }

  /**
   * Deletes everything the store holds. Only a store: what is at the locator must be proven a job store's by its
   * marker (`meta/store-marker`, written first by `initialize`, deleted last here) or, for stores made before the
   * marker existed, by a config of ours; a half-created or half-destroyed store has its marker. Idempotent: a
   * location with nothing of the layout at all is already destroyed; call again after a failure. Other stores
   * under other prefixes of the same bucket stay.
   * @throws NotAJobStoreError, deleting nothing, when the location holds data under the layout's names (`jobs/`,
   * `files/`, someone else's `config.json`…) but no marker or config of ours.
   */
  async destroy(options: SignalOptions = {}): Promise<void> {
    const signal = options.signal
    const marker = await this.#proofAt(keys.storeMarker, isStoreMarker, signal)
    if (marker !== 'ours') {
      const config = await this.#proofAt(keys.config, isStoreConfig, signal)
      if (config !== 'ours') {
        const found =
          config === 'foreign' ? keys.config : marker === 'foreign' ? keys.storeMarker : await this.findStoreData(io(signal))
        if (found !== undefined) throw new NotAJobStoreError(this.locator, found, 'nothing was deleted')
        this.#config = undefined
        this.#jobTokens.clear()
        return
      }
      // A store of the previous release: marked first, so that a destroy cut short leaves what destroy() knows.
      await this.putObject(keys.storeMarker, encodeStoreMarker(), io(signal))
    }
    // The config goes first, so that nobody resumes a half-destroyed store; the marker last, with the storage.
    await this.deleteObjects([keys.config], io(signal))
    await this.deleteStoreData(io(signal))
    await this.destroyStorage(io(signal))
    this.#config = undefined
    this.#jobTokens.clear()
  }

  /**
   * Releases what this instance holds open: SDK clients and their connections (S3: `S3Client.destroy()`), handles.
   * Idempotent: a second call waits for the first. The stored data stays (use `destroy()` to delete it); do not use
   * this instance afterwards (open the store again). A process that opens many stores, or that must exit without
   * waiting for idle keep-alive sockets, closes each one when done.
   */
  async close(): Promise<void> {
    this.#closing ??= this.closeStorage()
    return this.#closing
  }

  /**
   * What `close()` releases, called once: the backend's clients, connections and handles. Default: nothing (the
   * file and memory backends hold nothing open between calls; the Azure and GCS SDKs have no way to close a client).
   */
  protected async closeStorage(): Promise<void> {}

  /** Environment variables a worker on another host needs to reach this store. */
  getEnv(): Record<string, string> {
    return {}
  }

  // ---------------------------------------------------------------- root job

  /** Records `rootJobStoreID` as the workflow's root job. */
  async setRootJob(rootJobStoreID: string, options: SignalOptions = {}): Promise<void> {
    checkJobId(rootJobStoreID)
    await this.putObject(keys.rootJob, sealText(Buffer.from(rootJobStoreID, 'utf8')), io(options.signal))
  }

  /**
   * Loads the root job.
   * @throws NoSuchJobError if no root job is set or it does not exist.
   */
  async loadRootJob(options: SignalOptions = {}): Promise<JobDescription> {
    let id: string
    try {
      const what = 'the root job marker'
      id = openText(await this.#bytesOf(await this.getObject(keys.rootJob, io(options.signal)), what), what, this.#strict).toString('utf8')
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw new NoSuchJobError('(root)', { cause: err, message: 'no root job is set in this job store' })
      }
      throw err
    }
    return this.load(id, options)
  }

  /** Creates `desc` and makes it the root job. */
  async createRootJob(desc: JobDescription, options: SignalOptions = {}): Promise<JobDescription> {
    await this.create(desc, options)
    await this.setRootJob(desc.jobStoreID as string, options)
    return desc
  }

  /**
   * The root job's return value: the JSON the engine wrote to the shared file `rootJobReturnValue`.
   * @throws NoSuchFileError if the root job has not fulfilled its promise yet.
   */
  async getRootJobReturnValue(options: SignalOptions = {}): Promise<JsonValue> {
    let stream: StoreReadable
    try {
      stream = await this.readSharedFileStream(ROOT_RETURN_VALUE, options)
    } catch (err) {
      if (err instanceof NoSuchFileError) {
        throw new NoSuchFileError(ROOT_RETURN_VALUE, { cause: err, message: 'the root job has not fulfilled its promise yet' })
      }
      throw err
    }
    const text = (await readToBuffer(stream)).toString('utf8')
    try {
      return JSON.parse(text) as JsonValue
    } catch (err) {
      throw new CorruptRecordError(`shared file ${ROOT_RETURN_VALUE}`, 'not valid JSON', { cause: err })
    }
  }

  // ---------------------------------------------------------------- jobs

  /** Mints a new job ID and assigns it to `desc`. Files may be written for the ID before the job is created. */
  assignID(desc: JobDescription): string {
    desc.jobStoreID = randomId()
    return desc.jobStoreID
  }

  /**
   * Runs `body`; the `create()` calls it makes (in its async context) are written together, in parallel, when it
   * returns. If `body` throws, none of them is written.
   */
  async batch<T>(body: () => Promise<T>): Promise<T> {
    if (this.#batch.getStore() !== undefined) return body()
    const queue: JobDescription[] = []
    const result = await this.#batch.run(queue, body)
    // Checked again before anything is written: a job changed after its create() call must not be half the batch.
    for (const desc of queue) checkJobDescription(desc)
    await forEachConcurrent(queue, this.concurrency, (desc) => this.#createNow(desc, {}, desc.version))
    return result
  }

  /**
   * Writes a new job. The job must have an ID from `assignID()`. Fills in absent fields that have a default (see
   * `checkJobDescription`), sets `remainingTryCount` from the config when absent and bumps `version`.
   * @throws InvalidArgumentError, before any I/O, for a description `load()` could not read back equal (the
   * message names the field); ConcurrentFileModificationError if a job with that ID exists (exactly one of many
   * racers wins).
   */
  async create(desc: JobDescription, options: SignalOptions = {}): Promise<JobDescription> {
    checkJobId(desc.jobStoreID)
    checkJobDescription(desc)
    if (desc.remainingTryCount === undefined) desc.remainingTryCount = this.config.retryCount + 1
    const queue = this.#batch.getStore()
    if (queue !== undefined) {
      desc.version = (desc.version ?? 0) + 1
      queue.push(desc)
      return desc
    }
    await this.#createNow(desc, options, (desc.version ?? 0) + 1)
    return desc
  }

  async #createNow(desc: JobDescription, options: SignalOptions, version: number): Promise<void> {
    const id = desc.jobStoreID as string
    const record = { ...desc, version }
    let token: string
    try {
      token = await this.#putConditional(keys.job(id), sealJson(encodeJob(record)), { ifNoneMatch: true, ...io(options.signal) })
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        throw new ConcurrentFileModificationError(`job ${id}`, { cause: err, message: `job ${id} already exists` })
      }
      throw err
    }
    desc.version = version
    this.#rememberToken(id, version, token)
  }

  /** Whether a job with this ID exists. */
  async exists(jobStoreID: string, options: SignalOptions = {}): Promise<boolean> {
    return (await this.headObject(keys.job(jobStoreID), io(options.signal))) !== undefined
  }

  /**
   * Loads a job.
   * @throws NoSuchJobError if it does not exist; CorruptRecordError (naming the job) if it cannot be decoded.
   */
  async load(jobStoreID: string, options: SignalOptions = {}): Promise<JobDescription> {
    return (await this.#readJob(jobStoreID, options.signal)).desc
  }

  async #readJob(id: string, signal: AbortSignal | undefined): Promise<{ desc: JobDescription; token: string }> {
    let object: ObjectRead
    try {
      object = await this.getObject(keys.job(id), io(signal))
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new NoSuchJobError(id, { cause: err })
      throw err
    }
    const bytes = openJson(await this.#bytesOf(object, `job ${id}`), `job ${id}`, this.#strict, (unchecked) => decodeJob(unchecked, id))
    const desc = decodeJob(bytes, id)
    this.#rememberToken(id, desc.version, object.version)
    return { desc, token: object.version }
  }

  #rememberToken(id: string, version: number, token: string): void {
    this.#jobTokens.delete(id)
    if (this.#jobTokens.size >= TOKEN_CACHE_LIMIT) {
      const oldest = this.#jobTokens.keys().next()
      if (!oldest.done) this.#jobTokens.delete(oldest.value)
    }
    this.#jobTokens.set(id, { version, token })
  }

  /**
   * Persists `desc` atomically and bumps its `version`. With `ifVersion`, only if the stored job still has that
   * version (compare-and-swap between processes); without, the last writer wins.
   * @throws InvalidArgumentError, before any I/O, for a description `load()` could not read back equal (absent
   * fields with a default are filled in, as by `create()`); ConcurrentFileModificationError when `ifVersion` does
   * not hold; NoSuchJobError when it is given and the job is gone.
   */
  async update(desc: JobDescription, options: SignalOptions & { ifVersion?: number } = {}): Promise<JobDescription> {
    checkJobId(desc.jobStoreID)
    checkJobDescription(desc)
    const id = desc.jobStoreID
    let ifMatch: string | undefined
    let next = (desc.version ?? 0) + 1
    if (options.ifVersion !== undefined) {
      const cached = this.#jobTokens.get(id)
      if (cached !== undefined && cached.version === options.ifVersion) {
        ifMatch = cached.token
      } else {
        const current = await this.#readJob(id, options.signal)
        if (current.desc.version !== options.ifVersion) {
          throw new ConcurrentFileModificationError(`job ${id}`, {
            message: `job ${id} is at version ${current.desc.version}, not ${options.ifVersion}`,
          })
        }
        ifMatch = current.token
      }
      next = options.ifVersion + 1
    } else {
      const cached = this.#jobTokens.get(id)
      if (cached !== undefined) next = Math.max(next, cached.version + 1)
    }
    let token: string
    try {
      token = await this.#putConditional(keys.job(id), sealJson(encodeJob({ ...desc, version: next })), {
        ...(ifMatch !== undefined ? { ifMatch } : {}),
        ...io(options.signal),
      })
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        this.#jobTokens.delete(id)
        // The backend's answer, or the write-token lookup, may have told already: no second lookup.
        const current = err.current ?? ((await this.headObject(keys.job(id), io(options.signal))) === undefined ? 'missing' : 'present')
        if (current === 'missing') {
          throw new NoSuchJobError(id, { cause: err })
        }
        throw new ConcurrentFileModificationError(`job ${id}`, {
          cause: err,
          message: `job ${id} was modified concurrently (expected version ${options.ifVersion})`,
        })
      }
      throw err
    }
    desc.version = next
    this.#rememberToken(id, next, token)
    return desc
  }

  /**
   * Deletes a job and the files written for it with `cleanup: true`. Idempotent.
   */
  async delete(jobStoreID: string, options: SignalOptions = {}): Promise<void> {
    const key = keys.job(jobStoreID)
    // Files first: a retry after a crash still finds the job and finishes the work.
    await this.#deletePrefix(keys.cleanupFilesPrefix(jobStoreID), options.signal)
    await this.deleteObjects([key], io(options.signal))
    this.#jobTokens.delete(jobStoreID)
  }

  async #deletePrefix(prefix: string, signal: AbortSignal | undefined): Promise<void> {
    let batch: string[] = []
    const pending: Promise<void>[] = []
    for await (const object of this.listObjects(prefix, io(signal))) {
      batch.push(object.key)
      if (batch.length >= 1000) {
        pending.push(this.deleteObjects(batch, io(signal)))
        batch = []
      }
    }
    if (batch.length > 0) pending.push(this.deleteObjects(batch, io(signal)))
    await Promise.all(pending)
  }

  /**
   * Every job in the store, loaded with bounded parallelism while the listing goes on. Best effort, as in Toil:
   * jobs deleted meanwhile are left out; records that cannot be decoded are skipped and reported through
   * `onCorruptRecord`.
   */
  async *jobs(options: JobsOptions = {}): AsyncGenerator<JobDescription> {
    yield* this.#listJobs(options, (_id, err) => options.onCorruptRecord?.(err))
  }

  /** `jobs()`, telling `onCorrupt` the ID of each record that cannot be decoded (from its key, not its message). */
  async *#listJobs(options: SignalOptions, onCorrupt: (id: string, error: CorruptRecordError) => void): AsyncGenerator<JobDescription> {
    const loaded = mapConcurrent(this.listObjects(keys.jobsPrefix, io(options.signal)), this.concurrency, async (object) => {
      const id = keys.jobIdOfKey(object.key)
      if (id === undefined) return undefined
      try {
        return await this.load(id, options)
      } catch (err) {
        if (err instanceof NoSuchJobError) return undefined
        if (err instanceof CorruptRecordError) {
          log('skipping %s', err.message)
          onCorrupt(id, err)
          return undefined
        }
        throw err
      }
    })
    for await (const desc of loaded) if (desc !== undefined) yield desc
  }

  /**
   * Repairs the store after a restart, as Toil does: walks the job graph from the root (children, follow-ons,
   * services); deletes unreachable jobs and their `filesToDelete`; for reachable jobs deletes their
   * `filesToDelete` and `jobsToDelete`, drops successors that no longer exist, resets `remainingTryCount` to
   * `retryCount + 1`, drops (and deletes) `logJobStoreFileID`, and persists what changed. Then releases stats
   * claims of crashed readers and removes leftovers of interrupted writes. Works in parallel throughout.
   *
   * Damage never becomes loss. A record that cannot be decoded is kept and reported (`corruptJobs`, and
   * `onCorruptRecord`), and so is every reference to it. Its successors cannot be read: if such a record is
   * reachable, any job might be below it, so no unreachable job is deleted in that run (they are reported as
   * `keptUnreachableJobs`); an unreachable damaged record reaches nothing the root can reach, so the others go as
   * usual. A successor is dropped only once a read of its own confirms it is gone: one not in the listing (or
   * in `jobCache`) is loaded by ID first. A damaged record named in `jobsToDelete` is deleted, as asked. All
   * reads come before the first change, so a failure while reading changes nothing.
   * @returns the root job, repaired.
   * @throws CorruptRecordError, before any change, when the root job's record cannot be decoded.
   */
  async clean(jobCache?: JobCache, options: CleanOptions = {}): Promise<JobDescription> {
    const signal = options.signal
    const root = await this.loadRootJob(options)
    const all = new Map<string, JobDescription>()
    const corrupt = new Set<string>()
    const onCorrupt = (id: string, err: CorruptRecordError): void => {
      corrupt.add(id)
      options.onCorruptRecord?.(err)
    }
    await this.#collectJobs(all, jobCache, options, onCorrupt)
    all.set(root.jobStoreID as string, root)

    const { reachable, reachedCorrupt } = await this.#walkFromRoot(root.jobStoreID as string, all, corrupt, onCorrupt, options)

    const unreachable = [...all.values()].filter((desc) => !reachable.has(desc.jobStoreID as string))
    const keptUnreachable = reachedCorrupt.size > 0 ? unreachable.map((desc) => desc.jobStoreID as string) : []
    if (keptUnreachable.length > 0) {
      log('clean: %d unreachable job(s) kept: they may be below the damaged record(s) %s', keptUnreachable.length, [...reachedCorrupt].join(', '))
    }
    const deleted = new Set<string>()
    const deletedFiles: string[] = []
    await forEachConcurrent(reachedCorrupt.size > 0 ? [] : unreachable, this.concurrency, async (desc) => {
      deletedFiles.push(...(await this.#deleteFiles(desc.filesToDelete, signal)))
      await this.delete(desc.jobStoreID as string, options)
      deleted.add(desc.jobStoreID as string)
    })

    const tries = this.config.retryCount + 1
    const repaired: JobDescription[] = []
    await forEachConcurrent(reachable, this.concurrency, async (id) => {
      const desc = all.get(id) as JobDescription
      let changed = false
      if (desc.filesToDelete.length > 0) {
        deletedFiles.push(...(await this.#deleteFiles(desc.filesToDelete, signal)))
        desc.filesToDelete = []
        changed = true
      }
      if (desc.jobsToDelete.length > 0) {
        await forEachConcurrent(desc.jobsToDelete, this.concurrency, async (gone) => {
          try {
            await this.delete(gone, options)
            deleted.add(gone)
          } catch (err) {
            if (!(err instanceof InvalidArgumentError)) throw err
            log('ignoring invalid job ID %s in jobsToDelete of %s', gone, id)
          }
        })
        desc.jobsToDelete = []
        changed = true
      }
      if (desc.remainingTryCount !== tries) {
        desc.remainingTryCount = tries
        changed = true
      }
      if (desc.logJobStoreFileID !== undefined) {
        deletedFiles.push(...(await this.#deleteFiles([desc.logJobStoreFileID], signal)))
        delete desc.logJobStoreFileID
        changed = true
      }
      if (changed) repaired.push(desc)
    })
    // Successors are dropped after all deletions, so that a job deleted through another's jobsToDelete goes too.
    // A damaged record stays a successor: it exists, only it cannot be read now.
    const alive = (id: string): boolean => (all.has(id) || corrupt.has(id)) && !deleted.has(id)
    for (const id of reachable) {
      const desc = all.get(id) as JobDescription
      const before = desc.children.length + desc.followOns.length + desc.services.length
      desc.children = desc.children.filter(alive)
      desc.followOns = desc.followOns.filter(alive)
      desc.services = desc.services.filter(alive)
      if (desc.children.length + desc.followOns.length + desc.services.length !== before && !repaired.includes(desc)) {
        repaired.push(desc)
      }
    }
    await forEachConcurrent(repaired, this.concurrency, async (desc) => {
      if (!deleted.has(desc.jobStoreID as string)) await this.update(desc, options)
    })

    const age = options.leftoverAgeMs ?? 15 * 60 * 1000
    const releasedStatsClaims = await this.#releaseStaleStatsClaims(age, signal)
    const removed = await this.removeLeftovers(age, io(signal))
    log('clean: %d reachable, %d deleted, %d repaired, %d leftovers removed', reachable.size, deleted.size, repaired.length, removed)
    options.onReport?.({
      reachableJobs: reachable.size + reachedCorrupt.size,
      deletedJobs: [...deleted],
      repairedJobs: repaired.filter((d) => !deleted.has(d.jobStoreID as string)).map((d) => d.jobStoreID as string),
      deletedFiles,
      releasedStatsClaims,
      leftoversRemoved: removed,
      corruptJobs: [...corrupt].sort(),
      keptUnreachableJobs: keptUnreachable.sort(),
    })
    return root
  }

  /** The jobs of `jobCache`, or else of a listing (reporting undecodable records to `onCorrupt`), into `all`. */
  async #collectJobs(
    all: Map<string, JobDescription>,
    jobCache: JobCache | undefined,
    options: SignalOptions,
    onCorrupt: (id: string, err: CorruptRecordError) => void,
  ): Promise<void> {
    if (jobCache !== undefined) {
      const entries = jobCache instanceof Map ? jobCache.values() : Object.values(jobCache as Record<string, JobDescription>)
      for (const desc of entries) if (desc.jobStoreID !== undefined) all.set(desc.jobStoreID, desc)
    } else {
      for await (const desc of this.#listJobs(options, onCorrupt)) all.set(desc.jobStoreID as string, desc)
    }
  }

  /**
   * The walk of the job graph from the root over children, follow-ons and services, shared by `clean()` and
   * `reachability()`. Breadth first, so that successors missing from `all` are looked up together, in parallel;
   * those found are added to `all`, those whose record cannot be decoded to `corrupt` (through `onCorrupt`).
   */
  async #walkFromRoot(
    rootID: string,
    all: Map<string, JobDescription>,
    corrupt: ReadonlySet<string>,
    onCorrupt: (id: string, err: CorruptRecordError) => void,
    options: SignalOptions,
  ): Promise<{ reachable: Set<string>; reachedCorrupt: Set<string>; absent: Set<string> }> {
    const reachable = new Set<string>()
    const reachedCorrupt = new Set<string>()
    const absent = new Set<string>()
    let frontier = [rootID]
    while (frontier.length > 0) {
      const next: string[] = []
      const unknown = new Set<string>()
      for (const id of frontier) {
        if (reachable.has(id) || reachedCorrupt.has(id) || absent.has(id)) continue
        if (corrupt.has(id)) {
          reachedCorrupt.add(id)
          continue
        }
        const desc = all.get(id)
        if (desc === undefined) {
          unknown.add(id)
          continue
        }
        reachable.add(id)
        next.push(...desc.children, ...desc.followOns, ...desc.services)
      }
      await forEachConcurrent(unknown, this.concurrency, async (id) => {
        try {
          all.set(id, await this.load(id, options))
        } catch (err) {
          if (err instanceof NoSuchJobError || err instanceof InvalidArgumentError) {
            absent.add(id)
            return
          }
          if (!(err instanceof CorruptRecordError)) throw err
          log('clean: keeping %s', err.message)
          onCorrupt(id, err)
        }
        next.push(id)
      })
      frontier = next
    }
    return { reachable, reachedCorrupt, absent }
  }

  /**
   * Which jobs the root job reaches over children, follow-ons and services, and which it does not: what `clean()`
   * would delete as unreachable, found by the same walk, changing nothing. Jobs come from `jobCache` when given
   * (successors missing from it are loaded by ID), else from a listing. While a reachable record cannot be
   * decoded (`reachedCorrupt`), any job may be below it: `unreachable` then lists jobs the walk did not reach but
   * that `clean()` keeps (its `keptUnreachableJobs`).
   * @throws NoSuchJobError when no root job is set; CorruptRecordError when the root job's record cannot be decoded.
   */
  async reachability(jobCache?: JobCache, options: JobsOptions = {}): Promise<ReachabilityReport> {
    const root = await this.loadRootJob(options)
    const all = new Map<string, JobDescription>()
    const corrupt = new Set<string>()
    const onCorrupt = (id: string, err: CorruptRecordError): void => {
      corrupt.add(id)
      options.onCorruptRecord?.(err)
    }
    await this.#collectJobs(all, jobCache, options, onCorrupt)
    const rootID = root.jobStoreID as string
    all.set(rootID, root)
    const { reachable, reachedCorrupt, absent } = await this.#walkFromRoot(rootID, all, corrupt, onCorrupt, options)
    return {
      rootJobStoreID: rootID,
      reachable: [...reachable].sort(),
      unreachable: [...all.keys()].filter((id) => !reachable.has(id)).sort(),
      reachedCorrupt: [...reachedCorrupt].sort(),
      missing: [...absent].sort(),
    }
  }

  /** Deletes the valid file IDs among `fileIDs` (invalid ones are logged and left); returns the deleted IDs. */
  async #deleteFiles(fileIDs: readonly string[], signal: AbortSignal | undefined): Promise<string[]> {
    const valid: string[] = []
    for (const id of fileIDs) {
      try {
        keys.file(id)
        valid.push(id)
      } catch (err) {
        log('ignoring invalid file ID %s in a job: %s', id, (err as Error).message)
      }
    }
    if (valid.length > 0) await this.deleteObjects(valid.map((id) => keys.file(id)), io(signal))
    return valid
  }

  // ---------------------------------------------------------------- files

  /**
   * Copies the local file at `localFilePath` into the store; it is visible only once complete. The basename and
   * the executable bit are kept.
   * @returns the new file's ID.
   */
  async writeFile(localFilePath: string, options: NewFileOptions = {}): Promise<string> {
    const fileID = mintFileId({
      owner: options.jobStoreID,
      cleanup: options.cleanup,
      basename: options.basename ?? pathBasename(localFilePath),
    })
    await this.#putLocalFile(keys.file(fileID), localFilePath, { ifNoneMatch: true }, options.signal)
    return fileID
  }

  async #putLocalFile(key: string, localFilePath: string, put: PutOptions, signal: AbortSignal | undefined): Promise<string> {
    const handle = await open(localFilePath, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new NoSuchFileError(localFilePath, { cause: err, message: `no local file ${localFilePath}` })
      throw new JobStoreError(`cannot open ${localFilePath}`, { cause: err })
    })
    try {
      const info = await handle.stat()
      const { body, digest } = digesting(handle.createReadStream({ highWaterMark: 256 * 1024, autoClose: false }))
      const version = await this.#putConditional(key, body, {
        ...put,
        digest,
        executable: (info.mode & fsConstants.S_IXUSR) !== 0,
        contentLength: info.size,
        ...io(signal),
      })
      traceBytes(info.size)
      return version
    } finally {
      await handle.close()
    }
  }

  /**
   * Writes a new file from a body callback: `await store.writeFileStream(async (w, id) => { w.write('…') })`.
   * Nothing is visible until the callback returns and the upload completes; if it throws or the signal aborts,
   * nothing is stored.
   * @returns the new file's ID (also passed to the callback).
   */
  async writeFileStream(
    body: BodyCallback<[fileID: string]>,
    options: NewFileOptions & EncodingOptions = {},
  ): Promise<string> {
    const fileID = mintFileId({ owner: options.jobStoreID, cleanup: options.cleanup, basename: options.basename })
    await this.#putFromCallback(keys.file(fileID), (w) => body(w, fileID), { ifNoneMatch: true }, options)
    return fileID
  }

  /**
   * Streams what the callback writes into `key`. The callback and the upload run together; whichever fails
   * first stops the other, and the upload commits only after the callback returned.
   */
  async #putFromCallback(
    key: string,
    callback: BodyCallback,
    put: PutOptions,
    options: SignalOptions & EncodingOptions & { encryptWith?: Buffer },
  ): Promise<string> {
    throwIfAborted(options.signal)
    // Two streams: the callback writes to `writable`; the upload reads `body`. The callback ending `writable` does
    // not end `body`: only the callback returning does, so a callback that ends its stream and then throws
    // cannot have committed anything.
    const writable = new PassThrough({ highWaterMark: 256 * 1024 })
    // `body` hashes what goes through: the core's digest of a clear file, at no extra stream layer.
    const body = new DigestStream()
    writable.pipe(body, { end: false })
    // The upload sees errors through the streams' state; these listeners only keep a destroy before the upload
    // started reading from being an uncaught 'error' event.
    writable.on('error', () => {})
    body.on('error', () => {})
    if (options.encoding !== undefined) writable.setDefaultEncoding(options.encoding)
    const controller = linkedAbortController(options.signal)
    // The digest is of the bytes stored: of the ciphertext for a protected file.
    const encrypted =
      options.encryptWith === undefined ? undefined : digesting(pipeline(body, createEncryptStream(options.encryptWith), () => {}))
    const source: Readable = encrypted?.body ?? body
    const digest = encrypted?.digest ?? body.digest
    let putFailure: { error: unknown } | undefined
    const upload = this.#putConditional(key, source, { ...put, digest, signal: controller.signal })
    upload.catch((error: unknown) => {
      putFailure = { error }
      writable.destroy(error as Error)
      body.destroy(error as Error)
    })
    try {
      await callback(writable)
      if (putFailure !== undefined) throw putFailure.error
      if (!writable.writableEnded) writable.end()
      // Everything written has moved into `body` once `writable` has ended as a readable.
      await finished(writable)
      body.end()
      return await upload
    } catch (err) {
      const failure = putFailure !== undefined ? putFailure.error : err
      controller.abort(failure)
      writable.destroy(failure as Error)
      body.destroy(failure as Error)
      await upload.catch(() => {})
      throw failure
    } finally {
      controller.dispose()
    }
  }

  /** Creates an empty file and returns its ID; `fileExists()` is then true. */
  async getEmptyFileStoreID(options: NewFileOptions = {}): Promise<string> {
    const fileID = mintFileId({ owner: options.jobStoreID, cleanup: options.cleanup, basename: options.basename })
    const empty = Buffer.alloc(0)
    await this.#putConditional(keys.file(fileID), empty, { ifNoneMatch: true, digest: digestOf(empty), ...io(options.signal) })
    return fileID
  }

  /**
   * Puts the file at `localFilePath`, atomically (it appears whole or not at all), executable if it was stored
   * as executable. The file backend hard links when it can (or symlinks with `symlink: true`): do not modify
   * the local file afterwards.
   */
  async readFile(jobStoreFileID: string, localFilePath: string, options: SignalOptions & { symlink?: boolean } = {}): Promise<void> {
    const key = keys.file(jobStoreFileID)
    await refuseLocalDestination(localFilePath, `file ${jobStoreFileID}`)
    try {
      await this.materializeObject(key, `file ${jobStoreFileID}`, localFilePath, {
        symlink: options.symlink ?? false,
        ...io(options.signal),
      })
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new NoSuchFileError(jobStoreFileID, { cause: err })
      throw err
    }
  }

  /**
   * Opens a file for reading. Rejects with NoSuchFileError before any byte flows. The stream verifies size (and
   * checksum where the service keeps one) and errors with IntegrityError on a mismatch. Destroy it to stop early.
   */
  async readFileStream(jobStoreFileID: string, options: SignalOptions & EncodingOptions = {}): Promise<StoreReadable> {
    const key = keys.file(jobStoreFileID)
    const object = await this.#getOr(key, options.signal, () => new NoSuchFileError(jobStoreFileID))
    const stream = this.#verified(object, `file ${jobStoreFileID}`, undefined, this.fileChecksum(object, `file ${jobStoreFileID}`))
    if (options.encoding !== undefined) stream.setEncoding(options.encoding)
    return asStoreReadable(stream, { version: object.version, storedSize: object.size, executable: object.executable })
  }

  async #getOr(key: string, signal: AbortSignal | undefined, missing: () => Error): Promise<ObjectRead> {
    try {
      return await this.getObject(key, ioWithDigest(signal))
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
  async #bytesOf(object: ObjectRead, what: string): Promise<Buffer> {
    if (object.data !== undefined) return verifyBytes(what, object.data, object.size, object.checksum)
    return readToBuffer(this.#verified(object, what))
  }

  /**
   * What a whole read of a file's bytes is checked against: the core's digest stored with it, else the service's
   * checksum (and the size). A store that writes digests (`config.digests`) finds one on every file it wrote: a
   * file without one was replaced behind the store's back, and reading it is an IntegrityError.
   */
  protected fileChecksum(object: ObjectRead, what: string): ExpectedChecksum | undefined {
    if (object.digest !== undefined) return checksumOfFileDigest(object.digest)
    if (object.unverifiable === undefined && this.#strict && this.keepsFileDigests) {
      object.body.destroy()
      throw new IntegrityError(`${what}: stored without its digest, which this store keeps for every file: replaced behind the store's back`)
    }
    return object.checksum
  }

  #verified(object: ObjectRead, what: string, decrypt?: { key: Buffer | undefined }, checksum = object.checksum): Readable {
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

  /** Deletes a file. Idempotent. */
  async deleteFile(jobStoreFileID: string, options: SignalOptions = {}): Promise<void> {
    await this.deleteObjects([keys.file(jobStoreFileID)], io(options.signal))
  }

  /** Whether the file exists. */
  async fileExists(jobStoreFileID: string, options: SignalOptions = {}): Promise<boolean> {
    return (await this.headObject(keys.file(jobStoreFileID), io(options.signal))) !== undefined
  }

  /** The file's size in bytes, or 0 when it does not exist. */
  async getFileSize(jobStoreFileID: string, options: SignalOptions = {}): Promise<number> {
    return (await this.headObject(keys.file(jobStoreFileID), io(options.signal)))?.size ?? 0
  }

  /** The file's current version token, for `ifVersion`; undefined when it does not exist. */
  async getFileVersion(jobStoreFileID: string, options: SignalOptions = {}): Promise<string | undefined> {
    return (await this.headObject(keys.file(jobStoreFileID), io(options.signal)))?.version
  }

  async #versionToReplace(key: string, what: string, options: SignalOptions & ConditionalOptions): Promise<PutOptions> {
    if (options.ifVersion !== undefined) return { ifMatch: options.ifVersion }
    const info = await this.headObject(key, io(options.signal))
    if (info === undefined) throw new NoSuchFileError(what)
    return {}
  }

  #conditionalFailure(err: unknown, what: string, options: ConditionalOptions): unknown {
    if (err instanceof PreconditionFailedError) {
      return new ConcurrentFileModificationError(what, {
        cause: err,
        message: `${what} was modified or deleted concurrently (expected version ${options.ifVersion})`,
      })
    }
    return err
  }

  /**
   * Replaces an existing file with the local file's content.
   * @throws NoSuchFileError if the file does not exist; ConcurrentFileModificationError if `ifVersion` does not
   * hold.
   */
  async updateFile(
    jobStoreFileID: string,
    localFilePath: string,
    options: SignalOptions & ConditionalOptions = {},
  ): Promise<string> {
    const key = keys.file(jobStoreFileID)
    const put = await this.#versionToReplace(key, jobStoreFileID, options)
    try {
      return await this.#putLocalFile(key, localFilePath, put, options.signal)
    } catch (err) {
      throw this.#conditionalFailure(err, `file ${jobStoreFileID}`, options)
    }
  }

  /**
   * Replaces an existing file with what the callback writes; atomic, as `writeFileStream`.
   * @returns the new version token.
   */
  async updateFileStream(
    jobStoreFileID: string,
    body: BodyCallback,
    options: SignalOptions & EncodingOptions & ConditionalOptions = {},
  ): Promise<string> {
    const key = keys.file(jobStoreFileID)
    const put = await this.#versionToReplace(key, jobStoreFileID, options)
    try {
      return await this.#putFromCallback(key, body, put, options)
    } catch (err) {
      throw this.#conditionalFailure(err, `file ${jobStoreFileID}`, options)
    }
  }

  /** A URL to read the file without credentials; it may expire after `config.publicUrlExpirySeconds`. */
  async getPublicUrl(jobStoreFileID: string, options: SignalOptions = {}): Promise<string> {
    const key = keys.file(jobStoreFileID)
    if ((await this.headObject(key, io(options.signal))) === undefined) throw new NoSuchFileError(jobStoreFileID)
    return this.getObjectUrl(key, this.#urlExpiry())
  }

  /** As `getPublicUrl`, for a shared file. Protected shared files are served as stored: encrypted. */
  async getSharedPublicUrl(sharedFileName: string, options: SignalOptions = {}): Promise<string> {
    const key = keys.shared(sharedFileName)
    if ((await this.headObject(key, io(options.signal))) === undefined) throw new NoSuchFileError(sharedFileName)
    return this.getObjectUrl(key, this.#urlExpiry())
  }

  #urlExpiry(): number {
    return this.#config?.publicUrlExpirySeconds ?? 3600
  }

  // ---------------------------------------------------------------- shared files

  /**
   * Writes a shared file (a name in `^[a-zA-Z0-9._-]+$`) from a body callback, atomically. `isProtected: true`
   * encrypts it at rest with the config's key (an error if there is none); `false` stores it in the clear;
   * unset encrypts when a key is configured. `ifVersion` replaces only that version; `ifAbsent` only creates.
   * @returns the new version token.
   */
  async writeSharedFileStream(
    sharedFileName: string,
    body: BodyCallback,
    options: SignalOptions & EncodingOptions & ConditionalOptions & { isProtected?: boolean; ifAbsent?: boolean } = {},
  ): Promise<string> {
    const key = keys.shared(sharedFileName)
    const encrypt = options.isProtected ?? this.#config?.encryptionKeyPath !== undefined
    const encryptWith = encrypt ? await this.#loadEncryptionKey(sharedFileName) : undefined
    const put: PutOptions = {
      ...(options.ifVersion !== undefined ? { ifMatch: options.ifVersion } : {}),
      ...(options.ifAbsent ? { ifNoneMatch: true } : {}),
    }
    try {
      return await this.#putFromCallback(key, body, put, { ...options, ...(encryptWith ? { encryptWith } : {}) })
    } catch (err) {
      throw this.#conditionalFailure(err, `shared file ${sharedFileName}`, options)
    }
  }

  async #loadEncryptionKey(what: string): Promise<Buffer> {
    const path = this.#config?.encryptionKeyPath
    if (path === undefined) {
      throw new EncryptionError(`cannot protect ${what}: the store's config names no encryptionKeyPath`)
    }
    // Cache the key, but not a failure: the key file may appear later.
    this.#encryptionKey ??= loadKeyFile(path).catch((err: unknown) => {
      this.#encryptionKey = undefined
      throw err
    })
    return this.#encryptionKey
  }

  /**
   * Opens a shared file; decrypts protected ones (EncryptionError without the right key).
   * @throws NoSuchFileError before any byte flows when it does not exist.
   */
  async readSharedFileStream(sharedFileName: string, options: SignalOptions & EncodingOptions = {}): Promise<StoreReadable> {
    const key = keys.shared(sharedFileName)
    const object = await this.#getOr(key, options.signal, () => new NoSuchFileError(sharedFileName))
    let master: Buffer | undefined
    const checksum = this.fileChecksum(object, `shared file ${sharedFileName}`)
    if (this.#config?.encryptionKeyPath !== undefined) {
      try {
        master = await this.#loadEncryptionKey(sharedFileName)
      } catch (err) {
        object.body.destroy()
        throw err
      }
    }
    const stream = this.#verified(object, `shared file ${sharedFileName}`, { key: master }, checksum)
    if (options.encoding !== undefined) stream.setEncoding(options.encoding)
    return asStoreReadable(stream, { version: object.version, storedSize: object.size, executable: object.executable })
  }

  /** Names of all shared files. */
  async *sharedFileNames(options: SignalOptions = {}): AsyncGenerator<string> {
    for await (const object of this.listObjects(keys.sharedPrefix, io(options.signal))) {
      yield object.key.slice(keys.sharedPrefix.length)
    }
  }

  // ---------------------------------------------------------------- stats and logging

  /** Adds a stats/logging message. */
  async writeStatsAndLogging(statsAndLoggingString: string, options: SignalOptions = {}): Promise<void> {
    const key = `${keys.statsUnreadPrefix}${keys.newStatsId()}`
    await this.#putConditional(key, sealText(Buffer.from(statsAndLoggingString, 'utf8')), { ifNoneMatch: true, ...io(options.signal) })
  }

  /**
   * Hands each unread message to `callback` once, across all concurrent readers in all processes (each reader
   * claims a message with a create-if-absent write before handing it out), then marks it read. With `readAll`,
   * also replays messages read before. With `peek`, hands out messages without claiming or marking them (for
   * inspection; a concurrent reader may get them too).
   * @returns how many messages were handed to the callback.
   */
  async readStatsAndLogging(
    callback: StatsCallback,
    readAll = false,
    options: SignalOptions & { peek?: boolean } = {},
  ): Promise<number> {
    const signal = options.signal
    if (options.peek) return this.#peekStats(callback, readAll, signal)
    const claimedUnprocessed = new Set<string>()
    const processed = new Set<string>()
    const finishing: Promise<void>[] = []
    let count = 0
    const claimed = mapConcurrent(this.listObjects(keys.statsUnreadPrefix, io(signal)), this.concurrency, async (object) => {
      const id = keys.statsIdOfKey(object.key)
      return id === undefined ? undefined : this.#claimStats(id, signal, claimedUnprocessed)
    })
    try {
      for await (const message of claimed) {
        if (message === undefined) continue
        await callback(message.text, { id: message.id, read: false })
        count++
        claimedUnprocessed.delete(message.id)
        processed.add(message.id)
        finishing.push(this.#markStatsRead(message.id, message.bytes, signal))
      }
    } catch (err) {
      await Promise.allSettled(finishing)
      await this.deleteObjects([...claimedUnprocessed].map((id) => keys.statsClaimsPrefix + id), io(signal)).catch(() => {})
      throw err
    }
    await Promise.all(finishing)
    if (readAll) {
      const replay = mapConcurrent(this.listObjects(keys.statsReadPrefix, io(signal)), this.concurrency, async (object) => {
        const id = keys.statsIdOfKey(object.key)
        if (id === undefined || processed.has(id)) return undefined
        try {
          const bytes = await this.#bytesOf(await this.getObject(object.key, io(signal)), `stats ${id}`)
          const text = openText(bytes, `stats ${id}`, this.#strict).toString('utf8')
          return { id, text }
        } catch (err) {
          if (err instanceof ObjectNotFoundError) return undefined
          throw err
        }
      })
      for await (const message of replay) {
        if (message === undefined) continue
        await callback(message.text, { id: message.id, read: true })
        count++
      }
    }
    return count
  }

  /** Hands out messages without claiming them or marking them read (for inspection tools). */
  async #peekStats(callback: StatsCallback, readAll: boolean, signal: AbortSignal | undefined): Promise<number> {
    let count = 0
    for (const prefix of readAll ? [keys.statsUnreadPrefix, keys.statsReadPrefix] : [keys.statsUnreadPrefix]) {
      const messages = mapConcurrent(this.listObjects(prefix, io(signal)), this.concurrency, async (object) => {
        const id = keys.statsIdOfKey(object.key)
        if (id === undefined) return undefined
        try {
          const bytes = await this.#bytesOf(await this.getObject(object.key, io(signal)), object.key)
          const text = openText(bytes, `stats ${id}`, this.#strict).toString('utf8')
          return { id, text }
        } catch (err) {
          if (err instanceof ObjectNotFoundError) return undefined // read and moved meanwhile
          throw err
        }
      })
      for await (const message of messages) {
        if (message === undefined) continue
        await callback(message.text, { id: message.id, read: prefix === keys.statsReadPrefix })
        count++
      }
    }
    return count
  }

  async #claimStats(
    id: string,
    signal: AbortSignal | undefined,
    claimed: Set<string>,
  ): Promise<{ id: string; text: string; bytes: Buffer } | undefined> {
    const claimKey = keys.statsClaimsPrefix + id
    try {
      await this.#putConditional(claimKey, Buffer.from(String(Date.now())), { ifNoneMatch: true, ...io(signal) })
    } catch (err) {
      if (err instanceof PreconditionFailedError) return undefined // another reader has it
      throw err
    }
    claimed.add(id)
    try {
      // A late SDK retry of the message's create-if-absent write can put an already read message back into
      // `unread/`: if `read/` has it, it was handed out once already, so drop the copy instead. Looked up in
      // parallel with the read, so it costs no latency.
      const [bytes, alreadyRead] = await Promise.all([
        this.getObject(keys.statsUnreadPrefix + id, io(signal)).then((object) => this.#bytesOf(object, `stats ${id}`)),
        this.headObject(keys.statsReadPrefix + id, io(signal)).then((info) => info !== undefined),
      ])
      if (alreadyRead) {
        await this.deleteObjects([keys.statsUnreadPrefix + id], io(signal))
        claimed.delete(id)
        await this.deleteObjects([claimKey], io(signal))
        return undefined
      }
      return { id, text: openText(bytes, `stats ${id}`, this.#strict).toString('utf8'), bytes }
    } catch (err) {
      claimed.delete(id)
      await this.deleteObjects([claimKey], io(signal))
      // Gone: another reader finished it between our listing and our claim.
      if (err instanceof ObjectNotFoundError) return undefined
      throw err
    }
  }

  async #markStatsRead(id: string, bytes: Buffer, signal: AbortSignal | undefined): Promise<void> {
    await this.putObject(keys.statsReadPrefix + id, bytes, io(signal))
    // Unread before claim: a reader that claims after us then finds nothing to read.
    await this.deleteObjects([keys.statsUnreadPrefix + id], io(signal))
    await this.deleteObjects([keys.statsClaimsPrefix + id], io(signal))
  }

  async #releaseStaleStatsClaims(olderThanMs: number, signal: AbortSignal | undefined): Promise<number> {
    const now = Date.now()
    let released = 0
    await forEachConcurrent(this.listObjects(keys.statsClaimsPrefix, io(signal)), this.concurrency, async (object) => {
      try {
        const since = Number((await this.#bytesOf(await this.getObject(object.key, io(signal)), object.key)).toString('utf8'))
        if (!(now - since < olderThanMs)) {
          await this.deleteObjects([object.key], io(signal))
          released++
        }
      } catch (err) {
        if (!(err instanceof ObjectNotFoundError)) throw err
      }
    })
    return released
  }

  /** How many stats/logging messages are waiting to be read, and how many were read. */
  async countStatsAndLogging(options: SignalOptions = {}): Promise<{ unread: number; read: number }> {
    let unread = 0
    let read = 0
    for await (const _ of this.listObjects(keys.statsUnreadPrefix, io(options.signal))) unread++
    for await (const _ of this.listObjects(keys.statsReadPrefix, io(options.signal))) read++
    return { unread, read }
  }

  // ---------------------------------------------------------------- administration

  /** Every file in the store (not shared files), streamed from the listing. Best effort, like `jobs()`. */
  async *files(options: SignalOptions = {}): AsyncGenerator<ListedFile> {
    for await (const object of this.listObjects(keys.filesPrefix, io(options.signal))) {
      const fileID = keys.fileIdOfKey(object.key)
      if (fileID !== undefined) yield object.size === undefined ? { fileID } : { fileID, size: object.size }
    }
  }

  /**
   * Copies this whole store (config, root job, jobs, files, shared files, stats messages) into `destination`,
   * which may be on another backend. Byte for byte: protected shared files stay encrypted with the same key.
   * Resumable: an interrupted copy run again skips what it already copied (same key, same size). Verified: every
   * object's SHA-256 is compared between source and destination at the end. The destination's config is written
   * last, so a half-done copy is not a store anyone can resume.
   * @throws JobStoreExistsError if the destination holds a different store.
   */
  async copyTo(destination: AbstractJobStore, options: CopyOptions = {}): Promise<CopyReport> {
    const signal = options.signal
    const workflowID = this.config.workflowID
    const marker = 'meta/copy-source'
    await destination.createStorage(io(signal))
    let resuming = false
    for (const key of [keys.config, marker]) {
      const existing = await destination.headObject(key, io(signal))
      if (existing === undefined) continue
      const bytes = await destination.#bytesOf(await destination.getObject(key, io(signal)), key)
      if (key === keys.config && !isStoreConfig(bytes)) {
        throw new NotAJobStoreError(destination.locator, keys.config, 'nothing was written')
      }
      const text = bytes.toString('utf8')
      const id = key === marker ? text : (JSON.parse(text) as { workflowID?: string }).workflowID
      if (id !== workflowID) throw new JobStoreExistsError(destination.locator)
      resuming = true
    }
    // A copy of this workflow cut short after its config (then its copy-source marker) went: its store marker says so.
    if (!resuming) {
      const object = await destination.getObject(keys.storeMarker, io(signal)).catch((err: unknown) => {
        if (err instanceof ObjectNotFoundError) return undefined
        throw err
      })
      const bytes = object === undefined || object.size > MAX_PROOF_BYTES ? undefined : await destination.#bytesOf(object, keys.storeMarker)
      object?.body.destroy()
      resuming = bytes !== undefined && isStoreMarker(bytes) && parseObject(bytes)?.['copyOf'] === workflowID
    }
    // A new destination is claimed as initialize() would; one this copy started keeps (or gets) its marker.
    if (!resuming) await destination.#claimLocation('nothing was written', signal, encodeStoreMarker(workflowID))
    else if ((await destination.#proofAt(keys.storeMarker, isStoreMarker, signal)) !== 'ours') {
      await destination.putObject(keys.storeMarker, encodeStoreMarker(workflowID), io(signal))
    }
    await destination.putObject(marker, Buffer.from(workflowID, 'utf8'), io(signal))

    const objects: { key: string; size: number }[] = []
    for (const prefix of ['meta/', keys.jobsPrefix, keys.filesPrefix, keys.sharedPrefix, keys.statsUnreadPrefix, keys.statsReadPrefix]) {
      for await (const object of this.listObjects(prefix, io(signal))) {
        if (object.key === marker || object.key === keys.storeMarker) continue
        const size = object.size ?? (await this.headObject(object.key, io(signal)))?.size
        if (size !== undefined) objects.push({ key: object.key, size })
        options.onProgress?.({ phase: 'list', done: objects.length, total: objects.length, bytes: 0 })
      }
    }
    const total = objects.length
    let done = 0
    let copied = 0
    let skipped = 0
    let bytes = 0
    await forEachConcurrent(objects, this.concurrency, async ({ key, size }) => {
      const there = await destination.headObject(key, io(signal))
      if (there !== undefined && there.size === size) {
        skipped++
      } else {
        const fileBytes = holdsFileBytes(key)
        const source = await this.getObject(key, fileBytes ? ioWithDigest(signal) : io(signal))
        const verified = this.#verified(source, key, undefined, fileBytes ? this.fileChecksum(source, key) : source.checksum)
        const { body, digest } = fileBytes ? digesting(verified) : { body: verified, digest: undefined }
        await destination.putObject(key, body, {
          ...(digest !== undefined ? { digest } : {}),
          executable: source.executable,
          contentLength: source.size,
          ...io(signal),
        })
        copied++
        bytes += size
      }
      options.onProgress?.({ phase: 'copy', done: ++done, total, bytes })
    })

    let verified = 0
    const mismatched: string[] = []
    await forEachConcurrent(objects, this.concurrency, async ({ key }) => {
      const read = async (store: AbstractJobStore): Promise<string> => {
        if (!holdsFileBytes(key)) return sha256Of(store.#verified(await store.getObject(key, io(signal)), key))
        const object = await store.getObject(key, ioWithDigest(signal))
        return sha256Of(store.#verified(object, key, undefined, store.fileChecksum(object, key)))
      }
      const [mine, theirs] = await Promise.all([read(this), read(destination)])
      if (mine !== theirs) mismatched.push(key)
      options.onProgress?.({ phase: 'verify', done: ++verified, total, bytes })
    })
    if (mismatched.length > 0) {
      throw new IntegrityError(`copy to ${destination.locator}: ${mismatched.length} object(s) differ: ${mismatched.slice(0, 5).join(', ')}`)
    }
    await destination.putObject(keys.config, encodeConfig(this.config), io(signal))
    await destination.deleteObjects([marker], io(signal))
    return { objects: total, copied, skipped, bytes, verified }
  }

  // ---------------------------------------------------------------- import and export

  /**
   * Imports the file at `srcUrl` (`file:`, `http(s):`, and the schemes of the loaded backends). Executable bits of
   * local files are kept. With `sharedFileName`, stores it as that shared file and returns undefined. With
   * `hardlink`/`symlink`, a backend that can (the file backend) links a `file:` source instead of copying it.
   * @throws InvalidImportExportUrlError for a malformed URL or unknown scheme; NoSuchFileError when the source is
   * missing. Nothing is stored in either case. Over http(s), `connectTimeoutMs`, `idleTimeoutMs` and
   * `maxRetryTimeMs` bound the wait (see {@link UrlTimeoutOptions}); a source that breaks off, stalls or ends before
   * its end is a `UrlTransferError`, and nothing is stored (a shared file keeps its previous content).
   */
  async importFile(
    srcUrl: string,
    options: SignalOptions &
      TransferProgressOptions &
      UrlTimeoutOptions & { sharedFileName?: string; hardlink?: boolean; symlink?: boolean; jobStoreID?: string } = {},
  ): Promise<string | undefined> {
    const transfer = urlIo(options)
    const { handler, url } = await resolveUrlHandler(srcUrl)
    let fileID: string | undefined
    let key: string
    if (options.sharedFileName !== undefined) {
      key = keys.shared(options.sharedFileName)
    } else {
      let name: string
      try {
        name = decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf('/') + 1))
      } catch (err) {
        throw new InvalidImportExportUrlError(srcUrl, 'bad percent-encoding in the path', { cause: err })
      }
      fileID = mintFileId({ owner: options.jobStoreID, basename: name === '' ? undefined : name })
      key = keys.file(fileID)
    }
    const put: PutOptions = fileID !== undefined ? { ifNoneMatch: true } : {}
    if (url.protocol === 'file:' && (options.hardlink || options.symlink)) {
      const linked = await this.linkLocalFile(fileURLToPath(url), key, {
        hardlink: options.hardlink ?? false,
        symlink: options.symlink ?? false,
      })
      if (linked) return fileID
    }
    if (await this.copyFromUrl(url, key, { ...put, ...io(options.signal) })) {
      log('imported %s server-side', url.href)
      return fileID
    }
    const source = await handler.openRead(url, transfer)
    try {
      const { body, digest } = digesting(withProgress(source.body, source.size, options.onProgress))
      await this.#putConditional(key, body, {
        ...put,
        digest,
        executable: source.executable,
        ...(source.size !== undefined ? { contentLength: source.size } : {}),
        ...io(options.signal),
      })
    } catch (err) {
      source.body.destroy()
      throw err
    }
    return fileID
  }

  /**
   * Exports a file to `dstUrl`; the result is executable if and only if the file was imported/written from an
   * executable local file. Written atomically where the destination allows. A `file:` destination must be a
   * regular file or absent: a folder, device, FIFO or socket (or a symlink to one) is refused with
   * `InvalidImportExportUrlError` before anything is written. The timeouts are passed to the destination's
   * handler (the built-in ones that write do not talk HTTP themselves: see {@link UrlTimeoutOptions}).
   */
  async exportFile(
    jobStoreFileID: string,
    dstUrl: string,
    options: SignalOptions & TransferProgressOptions & UrlTimeoutOptions = {},
  ): Promise<void> {
    const transfer = urlIo(options)
    const key = keys.file(jobStoreFileID)
    const { handler, url } = await resolveUrlHandler(dstUrl)
    const writer = requireWritable(handler, url)
    let copied: boolean
    try {
      copied = await this.copyToUrl(key, url, io(options.signal))
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new NoSuchFileError(jobStoreFileID, { cause: err })
      throw err
    }
    if (copied) {
      log('exported %s server-side', url.href)
      return
    }
    const object = await this.#getOr(key, options.signal, () => new NoSuchFileError(jobStoreFileID))
    const checksum = this.fileChecksum(object, `file ${jobStoreFileID}`)
    await writer.write(url, withProgress(this.#verified(object, `file ${jobStoreFileID}`, undefined, checksum), object.size, options.onProgress), {
      executable: object.executable,
      size: object.size,
      ...transfer,
    })
  }

  /**
   * Size in bytes of the object at `url`, or undefined when it cannot be told. Over http(s), the timeouts bound the
   * wait as for `importFile`.
   */
  static async getSize(url: string, options: SignalOptions & UrlTimeoutOptions = {}): Promise<number | undefined> {
    const transfer = urlIo(options)
    const { handler, url: parsed } = await resolveUrlHandler(url)
    return handler.getSize(parsed, transfer)
  }

  /**
   * The URL handler of a bucket-like service (`s3://bucket/key`, `gs://bucket/object`, Azure blobs), built on the
   * store's own primitives, so URL reads and writes get the same multipart uploads, checksums and atomicity as
   * the store. A backend supplies only where a URL points: `locate` gives the locator of the bucket's (or
   * container's) root, without a prefix, and the object key as it is in the URL (still percent-encoded); `open`
   * makes a store for such a root (no I/O; one per root is kept). The key is checked here, once: not empty,
   * decodable, no `.`/`..` or empty segments (no `//`, no leading or trailing `/`), no control character or
   * backslash, at most 1,024 bytes; and the URL has no query, fragment, credentials or port. A backend's
   * `copyFromUrl`/`copyToUrl` use {@link BucketUrlHandler.locate} to find a same-service object.
   */
  protected static bucketUrlHandler<S extends AbstractJobStore>(spec: {
    /** The schemes of the service's own URLs (`s3`). */
    readonly schemes: readonly string[]
    /** Other URLs it takes over (by host, no I/O): `https://<account>.blob.core.windows.net/…`. */
    readonly claims?: (url: URL) => boolean
    /** Where a URL of the handler's points; throw `InvalidImportExportUrlError` when it names no object. */
    readonly locate: (url: URL) => { readonly root: string; readonly rawKey: string }
    /** A store at a root locator (no I/O). */
    readonly open: (root: string) => S
  }): BucketUrlHandler<S> {
    const schemes = new Set(spec.schemes.map((scheme) => scheme.toLowerCase()))
    const stores = new Map<string, S>()
    const locate = (url: URL, given = url.href): { store: S; key: string } | undefined => {
      if (!schemes.has(url.protocol.slice(0, -1).toLowerCase()) && spec.claims?.(url) !== true) return undefined
      if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '' || url.port !== '') {
        throw new InvalidImportExportUrlError(url.href, 'an object URL takes no query, fragment, credentials or port')
      }
      const { root, rawKey } = spec.locate(url)
      const key = checkObjectKey(url, rawKey, given)
      let store = stores.get(root)
      if (store === undefined) {
        try {
          store = spec.open(root)
        } catch (err) {
          throw new InvalidImportExportUrlError(url.href, (err as Error)?.message ?? 'invalid bucket', { cause: err })
        }
        stores.set(root, store)
      }
      return { store, key }
    }
    const target = (url: URL): { store: S; key: string } => {
      const found = locate(url)
      if (found === undefined) throw new InvalidImportExportUrlError(url.href, `not a ${[...schemes].join('/')} URL`)
      return found
    }
    const handler: BucketUrlHandler<S> = {
      schemes: [...spec.schemes],
      ...(spec.claims !== undefined ? { claims: spec.claims } : {}),
      locate: (url) => locate(url),
      check(url, given) {
        if (locate(url, given) === undefined) throw new InvalidImportExportUrlError(url.href, `not a ${[...schemes].join('/')} URL`)
      },
      async getSize(url, options) {
        const { store, key } = target(url)
        return (await store.headObject(key, io(options?.signal)))?.size
      },
      async openRead(url, options) {
        const { store, key } = target(url)
        let object: ObjectRead
        try {
          object = await store.getObject(key, ioWithDigest(options?.signal))
        } catch (err) {
          if (err instanceof ObjectNotFoundError) throw new NoSuchFileError(url.href, { cause: err, message: `no object at ${url.href}` })
          throw err
        }
        // Verified like a read of the store's own files: size always, the core's digest when the object has one
        // (a store at a bucket's root has no config: it requires none), else the service's.
        const body = pipeline(object.body, createVerifyStream(url.href, object.size, store.fileChecksum(object, url.href)), () => {})
        return { body, size: object.size, executable: object.executable }
      },
      async write(url, body, options) {
        const { store, key } = target(url)
        // No digest: the object is outside any store (a sidecar there would be litter in someone's bucket).
        await store.putObject(key, body, {
          executable: options.executable,
          ...(options.size !== undefined ? { contentLength: options.size } : {}),
          ...io(options.signal),
        })
      },
    }
    return handler
  }
}

/**
 * Receives one stats/logging message: its text, its ID (unique, sorting by the time it was written) and whether it
 * had been read before (a `readAll` replay or a `peek` of a read message).
 */
export type StatsCallback = (text: string, message: { id: string; read: boolean }) => Promise<void> | void

/** A URL handler of a bucket-like service, made by `AbstractJobStore.bucketUrlHandler`. */
export interface BucketUrlHandler<S extends AbstractJobStore> extends UrlHandler {
  /**
   * The store at the root of the bucket (container) `url` names, and the object's key, checked; undefined when
   * `url` is not one of this handler's. Throws {@link InvalidImportExportUrlError} when it is, but malformed.
   */
  locate(url: URL): { store: S; key: string } | undefined
}

const MAX_OBJECT_KEY_BYTES = 1024

/** The decoded object key of a bucket URL, checked (see `bucketUrlHandler`). */
function checkObjectKey(url: URL, rawKey: string, given: string): string {
  const bad = (why: string, cause?: unknown): InvalidImportExportUrlError =>
    new InvalidImportExportUrlError(url.href, `${why} in the object key`, cause !== undefined ? { cause } : undefined)
  // The path as given: URL parsing has already resolved `.`/`..` (and `%2e`) segments away.
  const givenPath = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(given)?.[1] ?? ''
  for (const segment of givenPath.split(/[/\\]/)) {
    if (/^(\.|%2e){1,2}$/i.test(segment)) throw bad('a . or .. segment')
  }
  let key: string
  try {
    key = decodeURIComponent(rawKey)
  } catch (err) {
    throw bad('bad percent-encoding', err)
  }
  if (key === '') throw new InvalidImportExportUrlError(url.href, 'no object key')
  if (key.startsWith('/')) throw bad('a leading /')
  const segments = key.split('/')
  if (segments.includes('')) throw bad('an empty segment (// or a trailing /)')
  if (segments.some((segment) => segment === '.' || segment === '..')) throw bad('a . or .. segment')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw bad('a control character or a backslash')
  if (Buffer.byteLength(key) > MAX_OBJECT_KEY_BYTES) throw bad(`more than ${MAX_OBJECT_KEY_BYTES} bytes`)
  return key
}

/** Options of transfers that can report progress. */
export interface TransferProgressOptions {
  /** Called as bytes go through (not for server-side copies, which move no bytes through this process). */
  readonly onProgress?: (bytes: number, totalBytes: number | undefined) => void
}

/**
 * Throws `InvalidArgumentError` when `localPath` is a folder, device, FIFO or socket (or a symlink to one): `readFile`
 * writes regular files only (see `localDestinationProblem`). Backends call it before their rename too.
 */
export async function refuseLocalDestination(localPath: string, what: string): Promise<void> {
  const problem = await localDestinationProblem(localPath)
  if (problem !== undefined) throw new InvalidArgumentError(`cannot read ${what} to ${localPath}: ${problem}; readFile writes regular files only`)
}

/** The signal and the network timeouts of an import or export, the timeouts checked before any I/O. */
function urlIo(options: SignalOptions & UrlTimeoutOptions): UrlIoOptions {
  urlTimeouts(options)
  return {
    ...io(options.signal),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.maxRetryTimeMs !== undefined ? { maxRetryTimeMs: options.maxRetryTimeMs } : {}),
  }
}

function withProgress(stream: Readable, total: number | undefined, onProgress: TransferProgressOptions['onProgress']): Readable {
  if (onProgress === undefined) return stream
  let bytes = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length
      onProgress(bytes, total)
      callback(null, chunk)
    },
  })
  return pipeline(stream, counter, () => {})
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256')
  for await (const part of stream) hash.update(part as Buffer)
  return hash.digest('hex')
}

function encodeConfig(config: JobStoreConfig): Buffer {
  return sealJson(Buffer.from(JSON.stringify(config, null, 2), 'utf8'), true)
}

/** Format of the store marker this release writes (`keys.storeMarker`). */
const STORE_MARKER_FORMAT = 1
/** The marker and a config are small: anything larger at their keys is not ours, and is not read. */
const MAX_PROOF_BYTES = 1024 * 1024

/**
 * A new store marker: its format version and a random store ID; for a store made by `copyTo`, the workflow it is a
 * copy of (`copyOf`), so that a copy cut short at any point can be resumed.
 */
function encodeStoreMarker(copyOf?: string): Buffer {
  const marker = { jobstore: 'store-marker', format: STORE_MARKER_FORMAT, storeID: randomUUID(), ...(copyOf !== undefined ? { copyOf } : {}) }
  return Buffer.from(`${JSON.stringify(marker)}\n`, 'utf8')
}

function parseObject(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(bytes.toString('utf8'))
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** A store marker of any release (a later format included). */
function isStoreMarker(bytes: Buffer): boolean {
  const marker = parseObject(bytes)
  return (
    marker?.['jobstore'] === 'store-marker' &&
    Number.isInteger(marker['format']) &&
    (marker['format'] as number) >= 1 &&
    typeof marker['storeID'] === 'string'
  )
}

/** A config written by `initialize()` of any release: a workflow ID and a retry count, as every release writes. */
function isStoreConfig(bytes: Buffer): boolean {
  const config = parseObject(bytes)
  return typeof config?.['workflowID'] === 'string' && config['workflowID'] !== '' && typeof config['retryCount'] === 'number'
}
