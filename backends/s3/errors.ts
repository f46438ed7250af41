/**
 * S3 SDK errors, classified and wrapped. The store asks the predicates what an error means (missing key, failed
 * precondition, aborted) and wraps everything else with {@link wrapS3Error}, so that no raw SDK error reaches a
 * caller: the SDK error stays available as `cause`.
 */
import type { S3Client } from '@aws-sdk/client-s3'
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

/** The S3 error codes that say "no such key" (or no such bucket, so no key either). */
const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NoSuchBucket'])

/**
 * The key (or its bucket) does not exist: a 404 whose error code, from the body, is `NoSuchKey` or `NoSuchBucket`.
 * Never the status alone: servers answer 404 with codes of their own (an unknown access key, say), and gateways
 * with pages of their own. A HEAD answer has no body: see {@link headNotFound}.
 */
export function isNotFound(err: unknown): boolean {
  return httpStatus(err) === 404 && NOT_FOUND_CODES.has(errorCode(err))
}

/**
 * What a 404 to a HEAD request proves. A HEAD answer has no body, so the SDK calls every 404 `NotFound`. MinIO
 * names the service's code in an `x-minio-error-code` header: `NoSuchKey`/`NoSuchBucket` there is proof
 * (`absent`). AWS S3 sends no code at all: such a 404 is `unproven`, and the caller asks a request whose answer
 * has a body (a GET) before it calls the key absent. Any other error, or another code in the header: `undefined`.
 */
export function headNotFound(err: unknown): 'absent' | 'unproven' | undefined {
  if (httpStatus(err) !== 404) return undefined
  const header = responseHeader(err, 'x-minio-error-code')
  if (header !== undefined) return NOT_FOUND_CODES.has(header) ? 'absent' : undefined
  return errorCode(err) === 'NotFound' ? 'unproven' : isNotFound(err) ? 'absent' : undefined
}

/** A header of the failed answer (the SDK keeps the raw response on its errors, as `$response`). */
function responseHeader(err: unknown, name: string): string | undefined {
  const headers = (shape(err) as { $response?: { headers?: Record<string, unknown> } }).$response?.headers
  const value = headers?.[name]
  return typeof value === 'string' && value !== '' ? value : undefined
}

/**
 * Makes `client` retry 408 answers. The SDK's standard retry strategy retries 429, 500-504 and lost connections,
 * but a 408 only when its code is `RequestTimeout`: a bare 408 (as Node.js servers and proxies send it) and any
 * 408 to a HEAD (no body, no code) would fail at once. Marked `$retryable`, they are retried within the client's
 * budget (`maxAttempts`, default 3). A write the server acted on before its 408 is then retried like one whose
 * answer was lost: the write ID (`#failedCommit`) and the core's write token recognise it.
 */
export function retryRequestTimeouts(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args)
      } catch (err) {
        const marked = err as { $retryable?: unknown }
        if (httpStatus(err) === 408 && marked.$retryable === undefined) marked.$retryable = { throttling: false }
        throw err
      }
    },
    // Inside the retry middleware (finalizeRequest, high priority), around the deserializer that throws.
    { step: 'finalizeRequest', priority: 'low', name: 'jobstoreRetryRequestTimeouts' },
  )
}

/** The bucket does not exist. */
export function isNoSuchBucket(err: unknown): boolean {
  return httpStatus(err) === 404 && (errorCode(err) === 'NoSuchBucket' || responseHeader(err, 'x-minio-error-code') === 'NoSuchBucket')
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
