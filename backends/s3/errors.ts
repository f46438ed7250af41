/**
 * S3 SDK errors, classified and wrapped. The store asks the predicates what an error means (missing key, failed
 * precondition, aborted) and wraps everything else with {@link wrapS3Error}, so that no raw SDK error reaches a
 * caller: the SDK error stays available as `cause`.
 */
import { AbortedError, IntegrityError, JobStoreError } from '../../src/errors.js'

/** The parts of an SDK (or network) error the store looks at. */
interface ErrorShape {
  readonly name?: unknown
  readonly code?: unknown
  readonly Code?: unknown
  readonly message?: unknown
  readonly $metadata?: { readonly httpStatusCode?: number; readonly attempts?: number }
}

function shape(err: unknown): ErrorShape {
  return typeof err === 'object' && err !== null ? (err as ErrorShape) : {}
}

/** The S3 error code (`NoSuchKey`, `PreconditionFailed`, `SlowDown`…) or the Node.js error code. */
export function errorCode(err: unknown): string {
  const e = shape(err)
  for (const value of [e.Code, e.name, e.code]) if (typeof value === 'string' && value !== 'Error') return value
  return 'Error'
}

/** The HTTP status of the failed request, when there was a response. */
export function httpStatus(err: unknown): number | undefined {
  return shape(err).$metadata?.httpStatusCode
}

/** How many attempts the SDK made (more than one: it retried, so an earlier attempt may have succeeded). */
export function attempts(err: unknown): number {
  return shape(err).$metadata?.attempts ?? 1
}

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket'])

/** The key (or its bucket) does not exist. */
export function isNotFound(err: unknown): boolean {
  return NOT_FOUND.has(errorCode(err)) || httpStatus(err) === 404
}

/** The bucket does not exist. */
export function isNoSuchBucket(err: unknown): boolean {
  return errorCode(err) === 'NoSuchBucket'
}

/** The multipart upload is gone (completed or aborted). */
export function isNoSuchUpload(err: unknown): boolean {
  return errorCode(err) === 'NoSuchUpload'
}

/**
 * `If-None-Match`/`If-Match` did not hold: 412 PreconditionFailed, or 409 ConditionalRequestConflict (S3 answers
 * this to the loser of a race between concurrent conditional writes of one key).
 */
export function isPreconditionFailed(err: unknown): boolean {
  const code = errorCode(err)
  return httpStatus(err) === 412 || code === 'PreconditionFailed' || code === 'ConditionalRequestConflict'
}

/** The request was cancelled through an AbortSignal. */
export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || errorCode(err) === 'AbortError' || err instanceof AbortedError
}

/** A checksum the SDK computed while reading a response body did not match the one S3 stored. */
function isChecksumMismatch(err: unknown): boolean {
  const message = shape(err).message
  return typeof message === 'string' && /checksum mismatch/i.test(message)
}

function describe(err: unknown): string {
  const code = errorCode(err)
  const status = httpStatus(err)
  const message = shape(err).message
  const detail = typeof message === 'string' && message !== '' && message !== code ? `: ${message}` : ''
  return `${code}${status !== undefined ? ` (HTTP ${status})` : ''}${detail}`
}

/**
 * Wraps an SDK error in a {@link JobStoreError} naming the operation (`what`, e.g. `PutObject s3://b/k`); aborts
 * become {@link AbortedError}, a checksum mismatch on a read {@link IntegrityError}. JobStoreErrors pass through.
 */
export function wrapS3Error(err: unknown, what: string, signal?: AbortSignal): JobStoreError {
  if (err instanceof JobStoreError) return err
  if (isAbort(err, signal)) return new AbortedError({ cause: signal?.reason ?? err })
  if (isChecksumMismatch(err)) {
    return new IntegrityError(`${what}: the bytes read do not match the checksum S3 stored`, { cause: err })
  }
  const code = errorCode(err)
  let hint = ''
  if (code === 'CredentialsProviderError') hint = ' (no AWS credentials found: see docs/backends/s3.md)'
  else if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') hint = ' (is the endpoint in AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL reachable?)'
  else if (code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') {
    hint = ' (check the AWS credentials and their permissions)'
  }
  return new JobStoreError(`S3 ${what} failed: ${describe(err)}${hint}`, { cause: err })
}
