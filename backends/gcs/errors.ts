/**
 * Mapping of `@google-cloud/storage` (and gaxios, and the resumable uploader's) errors to jobstore errors.
 *
 * SDK errors carry the request: `ApiError.response.request.headers` and `GaxiosError.config.headers` hold the
 * `Authorization: Bearer …` header, and upload URLs hold the resumable session ID (itself a credential for the
 * upload). So a mapped error never keeps the SDK error as its `cause`: it keeps a {@link GcsServiceError} with the
 * status, the reason and a scrubbed message, nothing else.
 */
import { AbortedError, JobStoreError } from '../../src/errors.js'
import { ObjectNotFoundError, PreconditionFailedError } from '../../src/storage.js'

/** The part of an SDK error that is safe to keep: what the service said, without the request. */
export class GcsServiceError extends Error {
  /** HTTP status, when the error came from the service. */
  readonly status: number | undefined
  /** The service's reason (`notFound`, `conditionNotMet`, `forbidden`…) or a Node.js error code. */
  readonly reason: string | undefined
  constructor(message: string, status: number | undefined, reason: string | undefined) {
    super(message)
    this.name = 'GcsServiceError'
    this.status = status
    this.reason = reason
  }
}

type ErrorLike = {
  code?: unknown
  status?: unknown
  message?: unknown
  name?: unknown
  errors?: unknown
  response?: { status?: unknown; data?: unknown }
}

/** HTTP status of an SDK error: `ApiError.code`, `GaxiosError.status`/`.response.status`, the uploader's `{code}`. */
export function gcsStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const e = err as ErrorLike
  for (const candidate of [e.code, e.status, e.response?.status]) {
    if (typeof candidate === 'number' && candidate >= 100 && candidate < 600) return candidate
    if (typeof candidate === 'string' && /^[1-5]\d\d$/.test(candidate)) return Number(candidate)
  }
  return undefined
}

function reasonOf(err: unknown): string | undefined {
  if (err instanceof GcsServiceError) return err.reason
  if (typeof err !== 'object' || err === null) return undefined
  const e = err as ErrorLike
  const lists = [e.errors, (e.response?.data as { error?: { errors?: unknown } } | undefined)?.error?.errors]
  for (const list of lists) {
    if (Array.isArray(list)) {
      const reason = (list[0] as { reason?: unknown } | undefined)?.reason
      if (typeof reason === 'string' && reason !== '') return reason
    }
  }
  return typeof e.code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(e.code) ? e.code : undefined
}

/**
 * The object (or its bucket) does not exist: a 404 whose JSON error says reason `notFound`. Never the status
 * alone: a 404 with another reason, or with a body that is not the JSON API's (a gateway's page; and media
 * downloads, whose errors are plain text), is no proof of absence.
 */
export function isGcsNotFound(err: unknown): boolean {
  return gcsStatus(err) === 404 && reasonOf(err) === 'notFound'
}

/** Removes bearer tokens, signatures, session IDs and query strings from a message. */
export function scrub(text: string): string {
  return text
    .replace(/\b(bearer)\s+[^\s"',;]+/gi, '$1 ***')
    .replace(/\b(https?:\/\/[^\s"'?#]*)\?[^\s"'#]*/gi, '$1?…')
    .replace(/\b(upload_id|access_token|token|key|x-goog-signature|x-goog-credential|signature)=[^\s&"']+/gi, '$1=***')
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[private key]')
    .slice(0, 1000)
}

/** A safe summary of any error thrown by the SDK or the network. */
export function sanitize(err: unknown): GcsServiceError {
  if (err instanceof GcsServiceError) return err
  const status = gcsStatus(err)
  const raw =
    typeof err === 'object' && err !== null && typeof (err as ErrorLike).message === 'string'
      ? ((err as ErrorLike).message as string)
      : String(err)
  const name = typeof err === 'object' && err !== null && typeof (err as ErrorLike).name === 'string' ? (err as ErrorLike).name : 'Error'
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : ''
  return new GcsServiceError(scrub(`${name === 'Error' ? '' : `${String(name)}: `}${raw}${cause}`), status, reasonOf(err))
}

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as ErrorLike).name === 'AbortError' || (err as ErrorLike).code === 'ABORT_ERR')
}

/** What a 404 means for the operation: a missing object, or a missing bucket (the store is gone). */
export type NotFoundMeaning = 'object' | 'bucket'

/**
 * Maps an error of an operation on `key` (or on the bucket when `key` is undefined) to a jobstore error: 404 `notFound` to
 * {@link ObjectNotFoundError} (or a clear "no bucket" error), 412 to {@link PreconditionFailedError}, aborts to
 * {@link AbortedError}, everything else to a {@link JobStoreError} naming the operation, the status and the
 * service's reason. jobstore's own errors pass through.
 */
export function mapGcsError(
  err: unknown,
  context: { action: string; key?: string; where: string; notFound?: NotFoundMeaning },
): JobStoreError {
  if (err instanceof JobStoreError) return err
  const cause = sanitize(err)
  const status = cause.status
  const notFound = status === 404 && cause.reason === 'notFound'
  if (notFound && context.key !== undefined && (context.notFound ?? 'object') === 'object') {
    return new ObjectNotFoundError(context.key, { cause })
  }
  if (status === 412 && context.key !== undefined) return new PreconditionFailedError(context.key, { cause })
  if (isAbort(err)) return new AbortedError({ cause })
  const target = context.key === undefined ? context.where : `${context.key} in ${context.where}`
  const detail = [status !== undefined ? `HTTP ${status}` : undefined, cause.reason, cause.message]
    .filter((part) => part !== undefined && part !== '')
    .join(': ')
  const hint =
    notFound ? ' (the bucket does not exist)' : status === 401 || status === 403 ? ' (check the Application Default Credentials and their permissions)' : ''
  return new JobStoreError(`GCS ${context.action} ${target} failed${hint}: ${detail}`, { cause })
}
