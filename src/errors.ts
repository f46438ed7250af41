/**
 * Typed errors. Every error jobstore throws is a {@link JobStoreError} with a stable `code` string that scripts
 * and the CLI can switch on, and the underlying SDK or system error as `cause`. Backends map their SDK errors to
 * these; raw SDK errors never reach the caller.
 */

/** Stable error codes, one per error class. */
export type JobStoreErrorCode =
  | 'JOBSTORE_ERROR'
  | 'NO_SUCH_JOB'
  | 'NO_SUCH_FILE'
  | 'NO_SUCH_JOB_STORE'
  | 'JOB_STORE_EXISTS'
  | 'CONCURRENT_MODIFICATION'
  | 'INVALID_IMPORT_EXPORT_URL'
  | 'INVALID_ARGUMENT'
  | 'UNSUPPORTED'
  | 'CORRUPT_RECORD'
  | 'INTEGRITY'
  | 'ENCRYPTION'
  | 'ABORTED'
  | 'URL_TRANSFER'
  | 'NOT_A_JOB_STORE'
  | 'UNSAFE_STORE_PATH'
  | 'CONDITIONAL_WRITES_UNSUPPORTED'

/** Base class of every error jobstore throws. */
export class JobStoreError extends Error {
  readonly code: JobStoreErrorCode
  constructor(message: string, options?: { cause?: unknown; code?: JobStoreErrorCode }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = options?.code ?? 'JOBSTORE_ERROR'
  }
}

/** No job description with the given ID exists. */
export class NoSuchJobError extends JobStoreError {
  readonly jobStoreID: string
  constructor(jobStoreID: string, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? `no job with ID ${jobStoreID} in the job store`, { ...options, code: 'NO_SUCH_JOB' })
    this.jobStoreID = jobStoreID
  }
}

/** No file (or shared file) with the given ID or name exists. */
export class NoSuchFileError extends JobStoreError {
  readonly fileID: string
  constructor(fileID: string, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? `no file ${fileID} in the job store`, { ...options, code: 'NO_SUCH_FILE' })
    this.fileID = fileID
  }
}

/** `resume()` (or any call needing a store) found no job store at the locator. */
export class NoSuchJobStoreError extends JobStoreError {
  readonly locator: string
  constructor(locator: string, options?: { cause?: unknown }) {
    super(`no job store at ${locator}`, { ...options, code: 'NO_SUCH_JOB_STORE' })
    this.locator = locator
  }
}

/** `initialize()` found a job store already at the locator (or the remains of one: its marker, no config). */
export class JobStoreExistsError extends JobStoreError {
  readonly locator: string
  constructor(locator: string, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? `a job store already exists at ${locator}`, { ...options, code: 'JOB_STORE_EXISTS' })
    this.locator = locator
  }
}

/**
 * A conditional write lost a race: the stored version was not the one the caller expected (or the object
 * existed when it had to be absent). Reload and retry.
 */
export class ConcurrentFileModificationError extends JobStoreError {
  readonly target: string
  constructor(target: string, options?: { cause?: unknown; message?: string }) {
    super(options?.message ?? `${target} was modified concurrently`, { ...options, code: 'CONCURRENT_MODIFICATION' })
    this.target = target
  }
}

/** A URL given to `importFile`, `exportFile` or `getSize` is malformed or has no handler for its scheme. */
export class InvalidImportExportUrlError extends JobStoreError {
  readonly url: string
  constructor(url: string, reason: string, options?: { cause?: unknown }) {
    super(`invalid import/export URL ${redactUrl(url)}: ${reason}`, { ...options, code: 'INVALID_IMPORT_EXPORT_URL' })
    this.url = redactUrl(url)
  }
}

/** An argument is malformed: a hostile ID, a bad shared-file name, a bad locator. Thrown before any I/O. */
export class InvalidArgumentError extends JobStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'INVALID_ARGUMENT' })
  }
}

/** The operation is not supported by this backend or configuration. */
export class UnsupportedOperationError extends JobStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'UNSUPPORTED' })
  }
}

/** A stored record (job description, config) cannot be decoded. The message names the record. */
export class CorruptRecordError extends JobStoreError {
  readonly record: string
  constructor(record: string, reason: string, options?: { cause?: unknown }) {
    super(`corrupt record ${record}: ${reason}`, { ...options, code: 'CORRUPT_RECORD' })
    this.record = record
  }
}

/** Bytes read back do not match what was written (size or checksum). */
export class IntegrityError extends JobStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'INTEGRITY' })
  }
}

/** Encrypting or decrypting a protected file failed: missing key, wrong key, tampered ciphertext. */
export class EncryptionError extends JobStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { ...options, code: 'ENCRYPTION' })
  }
}

/** The operation was aborted through its `AbortSignal`. */
export class AbortedError extends JobStoreError {
  constructor(options?: { cause?: unknown }) {
    super('the operation was aborted', { ...options, code: 'ABORTED' })
  }
}

/** Why a transfer by URL did not complete (see {@link UrlTransferError}). */
export type UrlTransferFailure =
  /** No connection (TCP, or TLS for https) within the connect timeout. */
  | 'connect-timeout'
  /** Connected, but no byte came for the idle timeout: no answer at all, or a body that stalled. */
  | 'idle-timeout'
  /** The server closed the connection before the end of the body (Content-Length or chunked). */
  | 'closed-early'
  /** The connection was reset (before the answer or mid-body). */
  | 'reset'
  /** Another network failure: refused, unreachable, DNS, TLS. */
  | 'network'
  /** The server answered with an error status, after the retries. */
  | 'status'

/**
 * An import or export by URL did not complete: no connection, no answer, a body that ended early or stalled, an
 * error status. The message says what happened in words; the system or network error is the `cause`. Nothing is
 * stored when an import fails this way.
 */
export class UrlTransferError extends JobStoreError {
  readonly url: string
  readonly failure: UrlTransferFailure
  /** What happened, in words (the message without the URL). */
  readonly reason: string
  /** Bytes of the body received before it broke off (when the body had begun). */
  readonly receivedBytes: number | undefined
  /** The body's announced size (Content-Length), when known. */
  readonly expectedBytes: number | undefined
  constructor(
    url: string,
    failure: UrlTransferFailure,
    reason: string,
    options?: { cause?: unknown; receivedBytes?: number | undefined; expectedBytes?: number | undefined },
  ) {
    super(`cannot transfer ${redactUrl(url)}: ${reason}`, { ...(options?.cause !== undefined ? { cause: options.cause } : {}), code: 'URL_TRANSFER' })
    this.url = redactUrl(url)
    this.failure = failure
    this.reason = reason
    this.receivedBytes = options?.receivedBytes
    this.expectedBytes = options?.expectedBytes
  }
}

/**
 * `destroy()`, `initialize()` or `copyTo()` found data at the locator that nothing proves to be a job store's: no
 * store marker and no config of ours, but entries under the layout's names (`jobs/`, `files/`, someone else's
 * `config.json`…). Nothing was deleted or written. `found` names one such entry (store-relative).
 */
export class NotAJobStoreError extends JobStoreError {
  readonly locator: string
  readonly found: string
  constructor(locator: string, found: string, action: string, options?: { cause?: unknown }) {
    super(
      `${locator} is not a job store: it holds ${found}, but no job store marker or config proves it is one; ${action}`,
      { ...options, code: 'NOT_A_JOB_STORE' },
    )
    this.locator = locator
    this.found = found
  }
}

/**
 * File backend: a symbolic link (or another kind of entry) the store did not make sits where the store keeps a
 * folder or a record. The store does not follow it: nothing outside its folder is read, written or deleted.
 * `path` is store-relative.
 */
export class UnsafeStorePathError extends JobStoreError {
  readonly path: string
  constructor(path: string, what: string, options?: { cause?: unknown }) {
    super(
      `${path} in the job store is ${what}: the store does not follow it, so nothing outside its folder is touched (remove it, or put back the store's own entry)`,
      { ...options, code: 'UNSAFE_STORE_PATH' },
    )
    this.path = path
  }
}

/** The guarantees of conditional writes that the store relies on and proves at `initialize()`/`resume()`. */
export type ConditionalWriteGuarantee = 'create-if-absent' | 'compare-and-swap'

/**
 * The storage service does not enforce conditional writes on a write path the backend uses: it accepted a second
 * create-if-absent of an existing object, or a compare-and-swap with a stale version. Conditional writes are the
 * store's only synchronisation between writers, so the store refuses to open rather than lose updates silently.
 * `guarantee` and `writePath` name what is missing where.
 */
export class ConditionalWritesUnsupportedError extends JobStoreError {
  readonly locator: string
  readonly guarantee: ConditionalWriteGuarantee
  /** The write path that failed the proof, as the backend names it (`PutObject`, `Put Block List`…). */
  readonly writePath: string
  constructor(locator: string, guarantee: ConditionalWriteGuarantee, writePath: string, options?: { cause?: unknown }) {
    const what =
      guarantee === 'create-if-absent'
        ? 'a second create-if-absent write of an object that exists'
        : 'a compare-and-swap write against a stale version'
    super(
      `the storage service of ${locator} does not enforce conditional writes: it accepted ${what} on the ` +
        `${writePath} write path, so concurrent writers would overwrite each other silently; the store refuses to ` +
        'open. Use a service that enforces If-None-Match/If-Match (or its generation preconditions); with a single ' +
        'writer only, opt out with skipConditionalWriteProof or JOBSTORE_SKIP_CONDITIONAL_WRITE_PROOF=1',
      { ...options, code: 'CONDITIONAL_WRITES_UNSUPPORTED' },
    )
    this.locator = locator
    this.guarantee = guarantee
    this.writePath = writePath
  }
}

/** Removes user info and query strings (which may hold credentials or signatures) from a URL for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.username || parsed.password) {
      parsed.username = '***'
      parsed.password = ''
    }
    if (parsed.search) parsed.search = '?…'
    return parsed.toString()
  } catch {
    return url.length > 200 ? `${url.slice(0, 200)}…` : url
  }
}

/** True if `err` is a JobStoreError (from any copy of this package) with the given code. */
export function hasErrorCode(err: unknown, code: JobStoreErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code && err instanceof Error
}
