/**
 * Azure Blob SDK errors, classified and wrapped. The store asks the predicates what an error means (missing blob,
 * failed precondition, aborted) and wraps everything else with {@link wrapAzureError}, so that no raw SDK error
 * reaches a caller: the SDK error stays available as `cause`. Messages name the operation and the blob, never a
 * credential (the connection string, an account key or a SAS token).
 */
import { AbortedError, JobStoreError } from '../../src/errors.js'

/** The parts of an SDK `RestError` (or a network error) the store looks at. */
interface ErrorShape {
  readonly name?: unknown
  readonly code?: unknown
  readonly statusCode?: unknown
  readonly message?: unknown
}

function shape(err: unknown): ErrorShape {
  return typeof err === 'object' && err !== null ? (err as ErrorShape) : {}
}

/** The Azure error code (`BlobNotFound`, `ConditionNotMet`…) or the Node.js error code, or `Error`. */
export function errorCode(err: unknown): string {
  const code = shape(err).code
  return typeof code === 'string' && code !== '' ? code : 'Error'
}

/** The HTTP status of the failed request, when there was a response. */
export function httpStatus(err: unknown): number | undefined {
  const status = shape(err).statusCode
  return typeof status === 'number' ? status : undefined
}

/** The Azure error codes that say "no such blob" (or no such container, so no blob either). */
const NOT_FOUND_CODES = new Set(['BlobNotFound', 'ContainerNotFound'])

/** Whether an error code (of an answer or of a batch sub-response) says the blob or its container does not exist. */
export function isNotFoundCode(code: string | undefined): boolean {
  return code !== undefined && NOT_FOUND_CODES.has(code)
}

/**
 * The service's error code: the one the SDK parsed from the body, else the `x-ms-error-code` header, which Azure
 * (and Azurite) send with every error answer, HEAD included (a HEAD answer has no body, so the SDK has no code).
 */
export function serviceErrorCode(err: unknown): string | undefined {
  const code = shape(err).code
  if (typeof code === 'string' && code !== '') return code
  const headers = (err as { response?: { headers?: { get?: (name: string) => string | undefined } } } | null)?.response?.headers
  const header = typeof headers?.get === 'function' ? headers.get('x-ms-error-code') : undefined
  return typeof header === 'string' && header !== '' ? header : undefined
}

/**
 * The blob or its container does not exist: a 404 whose code is `BlobNotFound` or `ContainerNotFound`. Never the
 * status alone: a 404 with another code (or none: a gateway's page) is an error, not proof of absence.
 */
export function isNotFound(err: unknown): boolean {
  return httpStatus(err) === 404 && isNotFoundCode(serviceErrorCode(err))
}

/** The container does not exist. */
export function isContainerNotFound(err: unknown): boolean {
  return httpStatus(err) === 404 && serviceErrorCode(err) === 'ContainerNotFound'
}

/**
 * A conditional write did not hold: 412 (`ConditionNotMet`, or any other 412) for `If-Match`, and 409
 * `BlobAlreadyExists`, which Azure (and Azurite) answer to `If-None-Match: *` on an existing blob.
 */
export function isPreconditionFailed(err: unknown): boolean {
  return httpStatus(err) === 412 || errorCode(err) === 'BlobAlreadyExists'
}

/** The staged blocks named in a commit are gone: a concurrent commit or delete of the same blob discarded them. */
export function isInvalidBlockList(err: unknown): boolean {
  return errorCode(err) === 'InvalidBlockList'
}

/**
 * The request was cancelled through the caller's AbortSignal. An `AbortError` from the SDK alone is not that: its
 * download stream (RetriableReadableStream) reports a connection closed mid-body as one, without retrying.
 */
export function isAbort(err: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || err instanceof AbortedError
}

/** The SDK gave up on a connection that closed before the answer was complete, and called it an abort. */
function isLostConnection(err: unknown): boolean {
  return shape(err).name === 'AbortError'
}

function describe(err: unknown): string {
  const code = serviceErrorCode(err) ?? errorCode(err)
  const status = httpStatus(err)
  const message = shape(err).message
  // Azure messages end with RequestId and Time lines: keep the first line, the one that says what went wrong.
  const first = typeof message === 'string' ? (message.split('\n')[0] ?? '').trim() : ''
  const detail = first !== '' && first !== code ? `: ${first}` : ''
  return `${code}${status !== undefined ? ` (HTTP ${status})` : ''}${detail}`
}

/**
 * Wraps an SDK error in a {@link JobStoreError} naming the operation (`what`, e.g. `upload of azure://a/c/k`);
 * aborts become {@link AbortedError}. JobStoreErrors pass through.
 */
export function wrapAzureError(err: unknown, what: string, signal?: AbortSignal): JobStoreError {
  if (err instanceof JobStoreError) return err
  if (isAbort(err, signal)) return new AbortedError({ cause: signal?.reason ?? err })
  const code = serviceErrorCode(err) ?? errorCode(err)
  const status = httpStatus(err)
  let hint = ''
  if (status === 403 || code === 'AuthenticationFailed' || code === 'AuthorizationFailure') {
    hint = ' (check the credentials and their permissions: see docs/backends/azure.md)'
  } else if (code === 'CredentialUnavailableError' || shape(err).name === 'CredentialUnavailableError') {
    hint = ' (no Azure credential found: set AZURE_STORAGE_CONNECTION_STRING or sign in for DefaultAzureCredential)'
  } else if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'REQUEST_SEND_ERROR') {
    hint = ' (is the Blob endpoint reachable?)'
  } else if (isLostConnection(err)) {
    hint = ' (the connection closed before the transfer was complete)'
  }
  return new JobStoreError(`Azure Blob ${what} failed: ${describe(err)}${hint}`, { cause: err })
}
