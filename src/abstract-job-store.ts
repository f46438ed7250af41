/**
 * `AbstractJobStore`: the whole public contract (Toil's AbstractJobStore, method by method), delegated to the
 * core's modules (`src/core/`), which work on the few storage primitives a backend supplies (see `storage.ts`). A
 * backend is a subclass that implements the protected abstract primitives and maps its errors; it overrides a
 * public method only where it can do better.
 */
import type { Readable } from 'node:stream'
import type { ConditionalWriteProofTarget } from './conditional-write-proof.js'
import { SKIP_PROOF_ENV } from './conditional-write-proof.js'
import { CorruptRecordError, InvalidArgumentError, NoSuchFileError } from './errors.js'
import { keys, randomId } from './ids.js'
import type { JobDescription, JsonValue } from './job-description.js'
import type {
  ExpectedChecksum,
  IoOptions,
  ListedObject,
  ObjectInfo,
  ObjectRead,
  PutOptions,
  Storage,
  StorageHooks,
  StoragePrimitives,
} from './storage.js'
import { readToBuffer, type StoreReadable } from './streams.js'
import { instrumentJobStoreClass } from './tracing.js'
import type { UrlTimeoutOptions } from './url-handlers.js'
import { makeBucketUrlHandler, type BucketUrlHandler, type BucketUrlSpec } from './core/bucket-url-handler.js'
import { cleanStore, reachabilityOf, type CleanOptions, type JobCache, type ReachabilityReport } from './core/clean.js'
import { StoreContext, type SignalOptions } from './core/context.js'
import { copyStore, type CopyOptions, type CopyReport } from './core/copy-to.js'
import * as files from './core/files.js'
import type { BodyCallback, ConditionalOptions, EncodingOptions, ListedFile, NewFileOptions } from './core/files.js'
import { exportFile, importFile, sizeAtUrl, type ImportOptions, type TransferProgressOptions } from './core/import-export.js'
import { Jobs, type JobsOptions } from './core/jobs.js'
import * as lifecycle from './core/lifecycle.js'
import type { JobStoreConfig, JobStoreConfigInit } from './core/lifecycle.js'
import { fileChecksum } from './core/objects.js'
import { listSharedFiles, readSharedFile, writeSharedFile, type SharedFileWriteOptions } from './core/shared-files.js'
import { countStats, readStats, writeStats, type StatsCallback } from './core/stats.js'

export type { BucketUrlHandler } from './core/bucket-url-handler.js'
export type { CleanOptions, CleanReport, JobCache, ReachabilityReport } from './core/clean.js'
export type { SignalOptions } from './core/context.js'
export type { CopyOptions, CopyProgress, CopyReport } from './core/copy-to.js'
export { refuseLocalDestination } from './core/files.js'
export type { BodyCallback, ConditionalOptions, EncodingOptions, ListedFile, NewFileOptions } from './core/files.js'
export type { TransferProgressOptions } from './core/import-export.js'
export type { JobsOptions } from './core/jobs.js'
export type { JobStoreConfig, JobStoreConfigInit } from './core/lifecycle.js'
export type { StatsCallback } from './core/stats.js'

const DEFAULT_CONCURRENCY = 32
const ROOT_RETURN_VALUE = 'rootJobReturnValue'

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
  /** What the core's modules see of this store: its storage (bound to the primitives below) and shared state. */
  readonly #context: StoreContext
  readonly #jobs: Jobs
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
    this.#context = new StoreContext(this.#bindStorage())
    this.#jobs = new Jobs(this.#context)
  }

  /**
   * The {@link Storage} the core works on: each member calls this store's primitive or hook of the same name when
   * used, so a backend's overrides (and a subclass's, in tests) are what the core reaches.
   */
  #bindStorage(): Storage {
    const store = this
    return {
      locator: this.locator,
      concurrency: this.concurrency,
      createStorage: (options) => this.createStorage(options),
      putObject: (key, body, options) => this.putObject(key, body, options),
      getObject: (key, options) => this.getObject(key, options),
      headObject: (key, options) => this.headObject(key, options),
      deleteObjects: (list, options) => this.deleteObjects(list, options),
      listObjects: (prefix, options) => this.listObjects(prefix, options),
      destroyStorage: (options) => this.destroyStorage(options),
      getObjectUrl: (key, expiresInSeconds) => this.getObjectUrl(key, expiresInSeconds),
      get keepsFileDigests() {
        return store.keepsFileDigests
      },
      findStoreData: (options) => this.findStoreData(options),
      deleteStoreData: (options) => this.deleteStoreData(options),
      removeLeftovers: (olderThanMs, options) => this.removeLeftovers(olderThanMs, options),
      linkLocalFile: (path, key, options) => this.linkLocalFile(path, key, options),
      copyFromUrl: (url, key, options) => this.copyFromUrl(url, key, options),
      copyToUrl: (key, url, options) => this.copyToUrl(key, url, options),
      materializeObject: (key, what, localPath, options) => this.materializeObject(key, what, localPath, options),
      conditionalWriteProofTarget: () => this.conditionalWriteProofTarget(),
      storageConfigFields: () => this.storageConfigFields(),
      closeStorage: () => this.closeStorage(),
    }
  }

  // ---------------------------------------------------------------- primitives a backend implements
  // The contract of each is documented once, in storage.ts (StoragePrimitives, StorageHooks).

  /** See {@link StoragePrimitives.createStorage}. */
  protected abstract createStorage(options?: IoOptions): Promise<void>
  /** See {@link StoragePrimitives.putObject}: atomic, conditional, nothing left behind on failure. */
  protected abstract putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string>
  /** See {@link StoragePrimitives.getObject}. */
  protected abstract getObject(key: string, options?: IoOptions): Promise<ObjectRead>
  /** See {@link StoragePrimitives.headObject}. */
  protected abstract headObject(key: string, options?: IoOptions): Promise<ObjectInfo | undefined>
  /** See {@link StoragePrimitives.deleteObjects}. */
  protected abstract deleteObjects(keys: readonly string[], options?: IoOptions): Promise<void>
  /** See {@link StoragePrimitives.listObjects}. */
  protected abstract listObjects(prefix: string, options?: IoOptions): AsyncIterable<ListedObject>
  /** See {@link StoragePrimitives.destroyStorage}. */
  protected abstract destroyStorage(options?: IoOptions): Promise<void>
  /** See {@link StoragePrimitives.getObjectUrl}. */
  protected abstract getObjectUrl(key: string, expiresInSeconds: number): Promise<string>

  // ---------------------------------------------------------------- hooks a backend may override (StorageHooks)

  /** See {@link StorageHooks.findStoreData}. */
  protected async findStoreData(options?: IoOptions): Promise<string | undefined> {
    return lifecycle.findStoreData(this.#context.storage, options)
  }

  /** See {@link StorageHooks.deleteStoreData}. */
  protected async deleteStoreData(options?: IoOptions): Promise<void> {
    return lifecycle.deleteStoreData(this.#context.storage, options)
  }

  /** See {@link StorageHooks.keepsFileDigests}. Default false. */
  protected get keepsFileDigests(): boolean {
    return false
  }

  /** See {@link StorageHooks.removeLeftovers}. Default: nothing to remove. */
  protected async removeLeftovers(_olderThanMs: number, _options?: IoOptions): Promise<number> {
    return 0
  }

  /** See {@link StorageHooks.linkLocalFile}. Default: false (copy). */
  protected async linkLocalFile(
    _path: string,
    _key: string,
    _options: { hardlink: boolean; symlink: boolean },
  ): Promise<boolean> {
    return false
  }

  /** See {@link StorageHooks.copyFromUrl}. Default: false (stream). */
  protected async copyFromUrl(_url: URL, _key: string, _options: PutOptions): Promise<boolean> {
    return false
  }

  /** See {@link StorageHooks.copyToUrl}. Default: false (stream). */
  protected async copyToUrl(_key: string, _url: URL, _options: IoOptions): Promise<boolean> {
    return false
  }

  /** See {@link StorageHooks.materializeObject}. Default: a verified stream into a temporary file, then a rename. */
  protected async materializeObject(
    key: string,
    what: string,
    localPath: string,
    options: { symlink: boolean; signal?: AbortSignal },
  ): Promise<void> {
    return files.materializeByCopy(this.#context, key, what, localPath, options)
  }

  /** See {@link StorageHooks.conditionalWriteProofTarget}. Default: the single-request path. */
  protected async conditionalWriteProofTarget(): Promise<ConditionalWriteProofTarget | undefined> {
    return { scope: `${this.constructor.name} ${this.locator}`, paths: [{ writePath: 'single', name: 'putObject' }] }
  }

  /** See {@link StorageHooks.storageConfigFields}. Default: none. */
  protected async storageConfigFields(): Promise<Readonly<Record<string, string>>> {
    return {}
  }

  /** See {@link StorageHooks.closeStorage}. Default: nothing. */
  protected async closeStorage(): Promise<void> {}

  /**
   * What a whole read of a file's bytes is checked against: the core's digest stored with it, else the service's
   * checksum (and the size). A store that writes digests (`config.digests`) finds one on every file it wrote: a
   * file without one was replaced behind the store's back, and reading it is an IntegrityError.
   */
  protected fileChecksum(object: ObjectRead, what: string): ExpectedChecksum | undefined {
    return fileChecksum(this.#context, object, what)
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
    return lifecycle.initializeStore(this.#context, config, this.#skipConditionalWriteProof, options.signal)
  }

  /**
   * Connects to the existing store and loads its config, then proves (once per process per service and bucket)
   * that the service enforces conditional writes.
   * @throws NoSuchJobStoreError when there is no store at the locator; ConditionalWritesUnsupportedError when the
   * service accepts a write its condition forbids (see `JobStoreOptions.skipConditionalWriteProof`).
   */
  async resume(options: SignalOptions = {}): Promise<JobStoreConfig> {
    return lifecycle.resumeStore(this.#context, this.#skipConditionalWriteProof, options.signal)
  }

  /** The config, after `initialize()` or `resume()`. Change fields, then `writeConfig()` to persist. */
  get config(): JobStoreConfig {
    return this.#context.config
  }

  /**
   * Persists `config` so that other instances see it on `resume()`. A changed `encryptionKeyPath` is checked first
   * and stored absolute, as by `initialize()`: `EncryptionError` (nothing written) when the file cannot serve.
   */
  async writeConfig(options: SignalOptions = {}): Promise<void> {
    return lifecycle.writeStoreConfig(this.#context, options.signal)
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
    await lifecycle.destroyStore(this.#context, options.signal)
    this.#jobs.forget()
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

  /** Environment variables a worker on another host needs to reach this store. */
  getEnv(): Record<string, string> {
    return {}
  }

  // ---------------------------------------------------------------- root job

  /** Records `rootJobStoreID` as the workflow's root job. */
  async setRootJob(rootJobStoreID: string, options: SignalOptions = {}): Promise<void> {
    return this.#jobs.setRoot(rootJobStoreID, options.signal)
  }

  /**
   * Loads the root job.
   * @throws NoSuchJobError if no root job is set or it does not exist.
   */
  async loadRootJob(options: SignalOptions = {}): Promise<JobDescription> {
    return this.load(await this.#jobs.rootId(options.signal), options)
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
    return this.#jobs.batch(body)
  }

  /**
   * Writes a new job. The job must have an ID from `assignID()`. Fills in absent fields that have a default (see
   * `checkJobDescription`), sets `remainingTryCount` from the config when absent and bumps `version`.
   * @throws InvalidArgumentError, before any I/O, for a description `load()` could not read back equal (the
   * message names the field); ConcurrentFileModificationError if a job with that ID exists (exactly one of many
   * racers wins).
   */
  async create(desc: JobDescription, options: SignalOptions = {}): Promise<JobDescription> {
    return this.#jobs.create(desc, options)
  }

  /** Whether a job with this ID exists. */
  async exists(jobStoreID: string, options: SignalOptions = {}): Promise<boolean> {
    return this.#jobs.exists(jobStoreID, options.signal)
  }

  /**
   * Loads a job.
   * @throws NoSuchJobError if it does not exist; CorruptRecordError (naming the job) if it cannot be decoded.
   */
  async load(jobStoreID: string, options: SignalOptions = {}): Promise<JobDescription> {
    return (await this.#jobs.read(jobStoreID, options.signal)).desc
  }

  /**
   * Persists `desc` atomically and bumps its `version`. With `ifVersion`, only if the stored job still has that
   * version (compare-and-swap between processes); without, the last writer wins.
   * @throws InvalidArgumentError, before any I/O, for a description `load()` could not read back equal (absent
   * fields with a default are filled in, as by `create()`); ConcurrentFileModificationError when `ifVersion` does
   * not hold; NoSuchJobError when it is given and the job is gone.
   */
  async update(desc: JobDescription, options: SignalOptions & { ifVersion?: number } = {}): Promise<JobDescription> {
    return this.#jobs.update(desc, options)
  }

  /**
   * Deletes a job and the files written for it with `cleanup: true`. Idempotent.
   */
  async delete(jobStoreID: string, options: SignalOptions = {}): Promise<void> {
    return this.#jobs.delete(jobStoreID, options.signal)
  }

  /**
   * Every job in the store, loaded with bounded parallelism while the listing goes on. Best effort, as in Toil:
   * jobs deleted meanwhile are left out; records that cannot be decoded are skipped and reported through
   * `onCorruptRecord`.
   */
  async *jobs(options: JobsOptions = {}): AsyncGenerator<JobDescription> {
    yield* this.#jobs.list((id, loadOptions) => this.load(id, loadOptions), options, (_id, err) => options.onCorruptRecord?.(err))
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
    return cleanStore({ store: this.#context, jobs: this.#jobs, methods: this }, jobCache, options)
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
    return reachabilityOf({ store: this.#context, jobs: this.#jobs, methods: this }, jobCache, options)
  }

  // ---------------------------------------------------------------- files

  /**
   * Copies the local file at `localFilePath` into the store; it is visible only once complete. The basename and
   * the executable bit are kept.
   * @returns the new file's ID.
   */
  async writeFile(localFilePath: string, options: NewFileOptions = {}): Promise<string> {
    return files.writeFile(this.#context, localFilePath, options)
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
    return files.writeFileStream(this.#context, body, options)
  }

  /** Creates an empty file and returns its ID; `fileExists()` is then true. */
  async getEmptyFileStoreID(options: NewFileOptions = {}): Promise<string> {
    return files.writeEmptyFile(this.#context, options)
  }

  /**
   * Puts the file at `localFilePath`, atomically (it appears whole or not at all), executable if it was stored
   * as executable. The file backend hard links when it can (or symlinks with `symlink: true`): do not modify
   * the local file afterwards.
   */
  async readFile(jobStoreFileID: string, localFilePath: string, options: SignalOptions & { symlink?: boolean } = {}): Promise<void> {
    return files.readFile(this.#context, jobStoreFileID, localFilePath, options)
  }

  /**
   * Opens a file for reading. Rejects with NoSuchFileError before any byte flows. The stream verifies size (and
   * checksum where the service keeps one) and errors with IntegrityError on a mismatch. Destroy it to stop early.
   */
  async readFileStream(jobStoreFileID: string, options: SignalOptions & EncodingOptions = {}): Promise<StoreReadable> {
    return files.readFileStream(this.#context, jobStoreFileID, options)
  }

  /** Deletes a file. Idempotent. */
  async deleteFile(jobStoreFileID: string, options: SignalOptions = {}): Promise<void> {
    return files.deleteFile(this.#context, jobStoreFileID, options.signal)
  }

  /** Whether the file exists. */
  async fileExists(jobStoreFileID: string, options: SignalOptions = {}): Promise<boolean> {
    return (await files.headFile(this.#context, jobStoreFileID, options.signal)) !== undefined
  }

  /** The file's size in bytes, or 0 when it does not exist. */
  async getFileSize(jobStoreFileID: string, options: SignalOptions = {}): Promise<number> {
    return (await files.headFile(this.#context, jobStoreFileID, options.signal))?.size ?? 0
  }

  /** The file's current version token, for `ifVersion`; undefined when it does not exist. */
  async getFileVersion(jobStoreFileID: string, options: SignalOptions = {}): Promise<string | undefined> {
    return (await files.headFile(this.#context, jobStoreFileID, options.signal))?.version
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
    return files.updateFile(this.#context, jobStoreFileID, localFilePath, options)
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
    return files.updateFileStream(this.#context, jobStoreFileID, body, options)
  }

  /** A URL to read the file without credentials; it may expire after `config.publicUrlExpirySeconds`. */
  async getPublicUrl(jobStoreFileID: string, options: SignalOptions = {}): Promise<string> {
    return files.publicUrl(this.#context, keys.file(jobStoreFileID), jobStoreFileID, options.signal)
  }

  /** As `getPublicUrl`, for a shared file. Protected shared files are served as stored: encrypted. */
  async getSharedPublicUrl(sharedFileName: string, options: SignalOptions = {}): Promise<string> {
    return files.publicUrl(this.#context, keys.shared(sharedFileName), sharedFileName, options.signal)
  }

  // ---------------------------------------------------------------- shared files

  /**
   * Writes a shared file (a name in `^[a-zA-Z0-9._-]+$`) from a body callback, atomically. `isProtected: true`
   * encrypts it at rest with the config's key (an error if there is none); `false` stores it in the clear;
   * unset encrypts when a key is configured. `ifVersion` replaces only that version; `ifAbsent` only creates.
   * @returns the new version token.
   */
  async writeSharedFileStream(sharedFileName: string, body: BodyCallback, options: SharedFileWriteOptions = {}): Promise<string> {
    return writeSharedFile(this.#context, sharedFileName, body, options)
  }

  /**
   * Opens a shared file; decrypts protected ones (EncryptionError without the right key).
   * @throws NoSuchFileError before any byte flows when it does not exist.
   */
  async readSharedFileStream(sharedFileName: string, options: SignalOptions & EncodingOptions = {}): Promise<StoreReadable> {
    return readSharedFile(this.#context, sharedFileName, options)
  }

  /** Names of all shared files. */
  async *sharedFileNames(options: SignalOptions = {}): AsyncGenerator<string> {
    yield* listSharedFiles(this.#context, options.signal)
  }

  // ---------------------------------------------------------------- stats and logging

  /** Adds a stats/logging message. */
  async writeStatsAndLogging(statsAndLoggingString: string, options: SignalOptions = {}): Promise<void> {
    return writeStats(this.#context, statsAndLoggingString, options.signal)
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
    return readStats(this.#context, callback, readAll, options)
  }

  /** How many stats/logging messages are waiting to be read, and how many were read. */
  async countStatsAndLogging(options: SignalOptions = {}): Promise<{ unread: number; read: number }> {
    return countStats(this.#context, options.signal)
  }

  // ---------------------------------------------------------------- administration

  /** Every file in the store (not shared files), streamed from the listing. Best effort, like `jobs()`. */
  async *files(options: SignalOptions = {}): AsyncGenerator<ListedFile> {
    yield* files.listFiles(this.#context, options.signal)
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
    return copyStore(this.#context, destination.#context, options)
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
  async importFile(srcUrl: string, options: ImportOptions = {}): Promise<string | undefined> {
    return importFile(this.#context, srcUrl, options)
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
    return exportFile(this.#context, jobStoreFileID, dstUrl, options)
  }

  /**
   * Size in bytes of the object at `url`, or undefined when it cannot be told. Over http(s), the timeouts bound the
   * wait as for `importFile`.
   */
  static async getSize(url: string, options: SignalOptions & UrlTimeoutOptions = {}): Promise<number | undefined> {
    return sizeAtUrl(url, options)
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
  protected static bucketUrlHandler<S extends AbstractJobStore>(spec: BucketUrlSpec<S>): BucketUrlHandler<S> {
    return makeBucketUrlHandler(spec, (store) => store.#context)
  }
}
