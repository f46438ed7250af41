/**
 * The storage contract, in one place: the primitives a backend supplies ({@link StoragePrimitives}), the hooks it
 * may override ({@link StorageHooks}), and {@link Storage}, the one object through which the core's modules
 * (`src/core/`) reach a store's storage. `AbstractJobStore` declares the primitives and hooks as protected members
 * (a backend implements them there) and hands the core a `Storage` bound to them; a backend maps them to its
 * service and maps the service's errors to {@link ObjectNotFoundError} and {@link PreconditionFailedError}. Keys
 * are store-relative (`jobs/ab/abc…`), built by the core from validated IDs and made only of `[A-Za-z0-9._%-]`
 * segments joined by `/`, so they are safe as object keys and as file paths.
 */
import { Readable } from 'node:stream'
import type { ConditionalWriteProofTarget } from './conditional-write-proof.js'
import { ConcurrentFileModificationError, NoSuchFileError } from './errors.js'

/** What a backend knows about one stored object. */
export interface ObjectInfo {
  /** Store-relative key. */
  readonly key: string
  /** Size in bytes of the stored bytes. */
  readonly size: number
  /**
   * Opaque token that changes whenever the object is replaced: an ETag, a generation, or (file backend) inode and
   * mtime. Used for compare-and-swap through {@link PutOptions.ifMatch}.
   */
  readonly version: string
  /** Whether the object was stored as executable (from a local file with an execute bit). */
  readonly executable: boolean
  /**
   * The `writeToken` the object was stored with, if the backend keeps it (as object metadata). Lets the core
   * recognise its own write whose response was lost and whose SDK retry then failed (see
   * {@link PreconditionFailedError}).
   */
  readonly writeToken?: string
  /**
   * The core's own digest of the object's bytes (CRC32, base64 of its 4 bytes big-endian: see
   * `FILE_DIGEST_ALGORITHM`; or `md5:<base64>` for a file copied in server-side, whose digest is the service's MD5
   * of the source, adopted at the copy: see `isFileDigest`), as the backend stored it with the object from {@link PutOptions.digest}: metadata, or
   * a sidecar (see docs/architecture.md, "Integrity: the core's own digest"). Set by `getObject` when the caller
   * asked for it ({@link IoOptions.lookUpDigest}); the core checks every whole read against it.
   */
  readonly digest?: string
  /**
   * Set instead of {@link digest} when the backend knows the object has no digest by design, and why (the file
   * backend: a file `importFile` linked in, which is the caller's own file). Such an object is read with its size
   * checked only.
   */
  readonly unverifiable?: string
}

/** An expected digest of a whole object, as stored by the service, for the core to verify while streaming. */
export interface ExpectedChecksum {
  /**
   * A `node:crypto` hash name (`md5`, `sha256`, `sha1`), `crc32` (node:zlib) or `crc32c` (S3's and GCS's CRCs;
   * digest: 4 bytes big-endian).
   */
  readonly algorithm: string
  /** The digest, base64. */
  readonly digest: string
}

/** An object opened for reading: its metadata and its bytes. */
export interface ObjectRead extends ObjectInfo {
  readonly body: Readable
  /**
   * The whole object, when the backend already holds it in memory (the file backend reads small objects in one
   * call). The core then checks and uses these bytes without going through `body`, which must still yield the
   * same bytes to whoever streams it.
   */
  readonly data?: Buffer
  /**
   * The service's digest of the object, when it has one the core can check. The core verifies it and the size
   * while streaming and fails the stream with `IntegrityError` on a mismatch (for a file with the core's own
   * {@link ObjectInfo.digest}, that digest is checked instead). A backend whose SDK already verifies a checksum of
   * every byte it hands out leaves this out.
   */
  readonly checksum?: ExpectedChecksum
}

/**
 * An {@link ObjectRead} of an object a backend has read whole (a small one): `data` for the core, and a stream of
 * the same bytes made only if someone asks for `body`.
 */
export function objectReadOf(info: ObjectInfo, data: Buffer, checksum?: ExpectedChecksum): ObjectRead {
  let body: Readable | undefined
  return {
    ...info,
    ...(checksum !== undefined ? { checksum } : {}),
    data,
    get body(): Readable {
      body ??= Readable.from(data.length === 0 ? [] : [data], { objectMode: false })
      return body
    },
  }
}

/** Options of {@link StoragePrimitives.putObject}. */
export interface PutOptions {
  /** Create only: fail with {@link PreconditionFailedError} if the key exists. */
  readonly ifNoneMatch?: boolean
  /** Replace only the stored version with this token; otherwise {@link PreconditionFailedError}. */
  readonly ifMatch?: string
  /** Store the object as executable. */
  readonly executable?: boolean
  /** The body's length, when the core knows it up front. */
  readonly contentLength?: number
  /**
   * A random token the core attaches to conditional writes. Backends whose SDK retries requests should store it
   * as object metadata and return it from `getObject`/`headObject`: a retried conditional write whose first
   * attempt succeeded fails its own condition, and the token tells the core the write is in fact done. Backends
   * that never retry (the file system) may ignore it.
   */
  readonly writeToken?: string
  /**
   * Forces a write path, for the conditional-write proof (`conditional-write-proof.ts`): `multipart` commits even
   * a tiny body the way large bodies are (S3 multipart upload, Azure staged blocks and Put Block List, GCS
   * resumable upload); `single` (or absent) lets the backend choose by size as usual.
   */
  readonly writePath?: WritePath
  /**
   * The core's digest of the body (base64, see {@link ObjectInfo.digest}), for the backend to store with the
   * object. For a stream, callable only once the backend has read the body to its end (it throws
   * before); for a Buffer, at once. Absent for records (jobs, config, stats), which carry their own check.
   */
  readonly digest?: () => string
  readonly signal?: AbortSignal
}

/** How a backend commits a write: in one request, or as a write of several requests (parts, blocks, chunks). */
export type WritePath = 'single' | 'multipart'

/** Options shared by the read-only primitives. */
export interface IoOptions {
  readonly signal?: AbortSignal
  /**
   * `getObject`: the caller checks the core's digest, so the backend looks it up ({@link ObjectInfo.digest}) where
   * that costs something (the file backend's sidecar); backends that get it with the object's metadata ignore this.
   */
  readonly lookUpDigest?: boolean
}

/** One listed object. `size` is there when the listing gives it for free. */
export interface ListedObject {
  readonly key: string
  readonly size?: number
}

/**
 * The primitives a backend implements. Every method must be safe to call concurrently from many processes on
 * many hosts: conditional puts are the only synchronisation the core relies on.
 */
export interface StoragePrimitives {
  /** Creates the bucket, container or directory when missing. Idempotent. */
  createStorage(options?: IoOptions): Promise<void>
  /**
   * Stores `body` at `key` atomically: readers see the old object or the whole new one, never a part. If the body
   * errors or the signal aborts, nothing is stored and the old object stays; no upload is left behind.
   * Resolves with the new version token.
   */
  putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string>
  /** Opens `key` for reading; rejects with {@link ObjectNotFoundError} before any byte flows. */
  getObject(key: string, options?: IoOptions): Promise<ObjectRead>
  /** Metadata of `key`, or `undefined` when it does not exist. */
  headObject(key: string, options?: IoOptions): Promise<ObjectInfo | undefined>
  /** Deletes the keys; missing keys are not an error. Backends batch and parallelise. */
  deleteObjects(keys: readonly string[], options?: IoOptions): Promise<void>
  /** Every key under `prefix` (which ends with `/`), recursively, in pages; no order promised. */
  listObjects(prefix: string, options?: IoOptions): AsyncIterable<ListedObject>
  /**
   * Deletes everything this store owns, and nothing else (other prefixes of the same bucket stay). Idempotent, also
   * on a half-destroyed store.
   */
  destroyStorage(options?: IoOptions): Promise<void>
  /** A URL from which the object can be read without credentials for at least `expiresInSeconds`. */
  getObjectUrl(key: string, expiresInSeconds: number): Promise<string>
}

/**
 * What a backend may override; `AbstractJobStore` supplies the defaults (written once in `src/core/`, on the
 * primitives).
 */
export interface StorageHooks {
  /**
   * Whether this backend stores the core's digest of every file it is given ({@link PutOptions.digest}) and hands
   * it back from `getObject` ({@link ObjectInfo.digest}). Then, in a store that writes digests, a file found without
   * one is an IntegrityError. A backend that cannot keep digests leaves this false: its files are checked against
   * their size and the service's checksum only. Default false.
   */
  readonly keepsFileDigests: boolean
  /**
   * The store-relative name of one entry at the location under the layout's names, other than the config and the
   * store marker (a job, a file, a leftover), or undefined when there is none. `initialize()`, `copyTo()` and
   * `destroy()` ask when no marker or config of ours proves a store is there, so as not to adopt or delete data
   * no store made. Default: the first key listed under the layout's prefixes.
   */
  findStoreData(options?: IoOptions): Promise<string | undefined>
  /**
   * Deletes everything the store holds but its marker, which `destroyStorage()` then removes with the rest: a
   * destroy cut short leaves remains that the marker still proves are a store's (and that `destroy()` removes).
   * Default: every key listed under the layout's prefixes, in batches of 1,000.
   */
  deleteStoreData(options?: IoOptions): Promise<void>
  /**
   * Removes leftovers of interrupted writes older than `olderThanMs` (temporary files, abandoned multipart
   * uploads, uncommitted blocks). Returns how many it removed. Default: nothing to remove.
   */
  removeLeftovers(olderThanMs: number, options?: IoOptions): Promise<number>
  /**
   * Stores the local file at `path` at `key` by linking instead of copying, when the backend can and the caller
   * allowed it (`importFile` with `hardlink`/`symlink`). Returns false to fall back to a copy. Default: false.
   */
  linkLocalFile(path: string, key: string, options: { hardlink: boolean; symlink: boolean }): Promise<boolean>
  /**
   * Server-side import: when `url` names an object in this backend's own service, copy it into `key` without the
   * bytes passing through this process (S3 CopyObject, GCS rewrite, Azure copy from URL), keeping `executable`
   * from the source. Return false to fall back to streaming. Throw `NoSuchFileError` when the source is missing.
   * Default: false.
   */
  copyFromUrl(url: URL, key: string, options: PutOptions): Promise<boolean>
  /**
   * Server-side export of `key` to `url` (keeping the executable flag), when `url` is in this backend's own
   * service; false, without I/O, to stream instead. `ObjectNotFoundError` when `key` is missing. Default: false.
   */
  copyToUrl(key: string, url: URL, options: IoOptions): Promise<boolean>
  /**
   * Puts the object at `key` at `localPath` (for `readFile`): by default a verified stream into a temporary file
   * beside the target and a rename, so the file appears whole or not at all. The file backend links instead.
   */
  materializeObject(key: string, what: string, localPath: string, options: { symlink: boolean; signal?: AbortSignal }): Promise<void>
  /**
   * What the conditional-write proof at `initialize()`/`resume()` exercises (see `conditional-write-proof.ts`):
   * the scope its verdict is kept under in this process (the service endpoint and bucket), and every path the
   * backend commits conditional writes on, each reachable for a tiny body through {@link PutOptions.writePath}.
   * Undefined: no proof, for a backend whose conditions are local guarantees (the file backend). Default: the
   * single-request path, scoped by backend class and locator.
   */
  conditionalWriteProofTarget(): Promise<ConditionalWriteProofTarget | undefined>
  /**
   * Fields the backend records in a new store's config, asked by `initialize()` once the storage exists and before
   * the config is written (the file backend: where file digests go, after trying an attribute on this file
   * system). The caller may not set them. Default: none.
   */
  storageConfigFields(): Promise<Readonly<Record<string, string>>>
  /**
   * What `close()` releases, called once: the backend's clients, connections and handles. Default: nothing (the
   * file and memory backends hold nothing open between calls; the Azure and GCS SDKs have no way to close a client).
   */
  closeStorage(): Promise<void>
}

/**
 * One store's storage as the core sees it: the backend's primitives and hooks, bound to the store, with the
 * locator and the bound on parallel round trips. The core's modules (`src/core/`) reach storage only through this
 * object, never through the store class; `AbstractJobStore` makes it, once per store.
 */
export interface Storage extends StoragePrimitives, StorageHooks {
  /** The locator the store was opened with (for messages). */
  readonly locator: string
  /** Round trips in flight at once for bulk work. */
  readonly concurrency: number
}

/** Thrown by primitives when a key does not exist. The core turns it into the error that fits the context. */
export class ObjectNotFoundError extends NoSuchFileError {
  constructor(key: string, options?: { cause?: unknown }) {
    super(key, { ...options, message: `no object ${key}` })
  }
}

/** What a backend knows about a failed condition (see {@link PreconditionFailedError}). */
export interface PreconditionFailure {
  readonly cause?: unknown
  /**
   * Whether this failure may hide the write's own success: a request the SDK retried, whose earlier attempt may
   * have committed before its answer was lost (the retry then fails its own condition). `false` when the backend
   * knows the request was sent once; absent when it cannot tell (then the core looks the write token up, once).
   */
  readonly mayHaveLanded?: boolean
  /** Whether the key was there when the condition failed, where the service's answer says (`ifMatch`: 404 vs 412). */
  readonly current?: 'missing' | 'present'
}

/**
 * Thrown by primitives when `ifNoneMatch` or `ifMatch` does not hold. The write-token protocol (one, in the core):
 * backends store {@link PutOptions.writeToken} with the object and return it from `getObject`/`headObject`; on a
 * failed condition they only say whether the failure may have landed ({@link PreconditionFailure.mayHaveLanded});
 * the core then looks the token up once, and `update()` reuses that lookup to tell a vanished job from a change.
 */
export class PreconditionFailedError extends ConcurrentFileModificationError {
  readonly mayHaveLanded: boolean | undefined
  /** What is known of the key: from the backend's answer, or from the core's lookup of the write token. */
  current: 'missing' | 'present' | undefined

  constructor(key: string, options: PreconditionFailure = {}) {
    super(key, { ...(options.cause !== undefined ? { cause: options.cause } : {}), message: `precondition failed on ${key}` })
    this.mayHaveLanded = options.mayHaveLanded
    this.current = options.current
  }
}

/**
 * Thrown by primitives when a write failed in a way that may hide its success (not a failed condition): an S3
 * multipart upload whose retried `CompleteMultipartUpload` finds the upload gone, because the first attempt
 * completed it. The core looks the write token up: found, the write succeeded; else `cause` is the error.
 */
export class WriteMayHaveLandedError extends Error {
  constructor(
    readonly key: string,
    options: { cause: unknown },
  ) {
    super(`the write of ${key} may have landed`, options)
    this.name = 'WriteMayHaveLandedError'
  }
}
