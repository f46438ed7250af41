/**
 * What the GCS backend does over plain HTTP instead of through @google-cloud/storage, where the SDK misbehaves.
 *
 * - Reads: one `fetch` GET of the media per object (and ranged GETs of the same generation to resume one), not the
 *   SDK's `createReadStream`: when one of its streams is destroyed early it destroys the client's shared keep-alive
 *   agent, and every other download in flight in the process then hangs forever (seen with @google-cloud/storage
 *   7.22). With `fetch`, destroying the body closes only its connection.
 * - Resumable uploads: the session is started by the SDK, its chunks are sent here, once each. When a chunk fails,
 *   the SDK's uploader (7.22) asks the session for its offset, and when the answer is not 308 (the last chunk had
 *   landed and its answer was lost, or the session is gone) it raises a RangeError no listener can catch and the
 *   upload never settles (googleapis/nodejs-storage#2193, #2494); it can also stop without settling at all.
 */
import { PassThrough, Readable } from 'node:stream'
import type { FileMetadata } from '@google-cloud/storage'
import { sleep } from '../../src/concurrency.js'
import { AbortedError, JobStoreError } from '../../src/errors.js'
import { ObjectNotFoundError, PreconditionFailedError } from '../../src/storage.js'
import type { UploadPart } from '../../src/uploads.js'
import { isGcsNotFound, sanitize, type NotFoundMeaning } from './errors.js'
import { debuglog } from 'node:util'

const log = debuglog('jobstore:gcs')

/** Tries of a media GET before any byte flows. */
const GET_ATTEMPTS = 4

/** What these requests need of the store. */
export interface GcsContext {
  /** `gs://bucket[/prefix]`, for messages. */
  readonly where: string
  /** Time a request may take before it is abandoned. */
  readonly requestTimeoutMs: number
  /** The JSON API's media URL of a store-relative key. */
  mediaUrl(key: string): string
  /** The headers that authenticate a request (none for an emulator). */
  authHeaders(): Promise<Record<string, string>>
  /** The object's metadata (a JSON API lookup, whose 404 has a reason), or undefined when it does not exist. */
  metadata(key: string): Promise<FileMetadata | undefined>
  /** Maps an error of an operation on `key`, see mapGcsError. */
  error(err: unknown, action: string, key?: string, notFound?: NotFoundMeaning): JobStoreError
}

/**
 * The body of a media GET as a Node stream. fetch's body fails with undici's own errors (`TypeError: terminated`
 * when the connection closes mid-body): they are mapped, as every error the store gives out. An abort of the
 * caller's signal while the body flows ends it; closing the body ends the request.
 */
export function mediaBody(ctx: GcsContext, key: string, response: Response, controller: AbortController, signal: AbortSignal | undefined): Readable {
  const media = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>)
  const body = new PassThrough({ highWaterMark: 256 * 1024 })
  media.on('error', (err) => body.destroy(signal?.aborted ? new AbortedError({ cause: signal.reason }) : ctx.error(err, 'read of', key)))
  const onAbort = (): void => controller.abort(signal?.reason)
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted) onAbort()
  body.once('close', () => {
    signal?.removeEventListener('abort', onAbort)
    media.destroy()
    controller.abort()
  })
  media.pipe(body)
  return body
}

/**
 * GETs the media with bounded retries before any byte flows; resolves once the status is 200 (206 for the rest
 * of a generation from `range.offset`).
 */
export async function fetchMedia(
  ctx: GcsContext,
  key: string,
  signal: AbortSignal | undefined,
  range?: { offset: number; generation: string },
): Promise<{ response: Response; controller: AbortController }> {
  const url =
    ctx.mediaUrl(key) +
    (range !== undefined ? `&generation=${range.generation}` : '')
  const auth = {
    ...(await ctx.authHeaders()),
    ...(range !== undefined ? { range: `bytes=${range.offset}-` } : {}),
  }
  for (let attempt = 1; ; attempt++) {
    const controller = new AbortController()
    const onAbort = (): void => controller.abort(signal?.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    let response: Response | undefined
    let failure: unknown
    try {
      response = await fetch(url, {
        headers: { ...auth, 'accept-encoding': 'identity', 'cache-control': 'no-store' },
        signal: controller.signal,
      })
    } catch (err) {
      failure = err
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
    if (signal?.aborted) {
      controller.abort()
      throw new AbortedError({ cause: signal.reason })
    }
    const expected = range === undefined ? 200 : 206
    if (response !== undefined && response.status === expected && response.body !== null) return { response, controller }
    const status = response?.status
    let detail: unknown = failure
    if (response !== undefined) {
      const text = await response.text().catch(() => '')
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = undefined
      }
      const error = (parsed as { error?: { message?: unknown; errors?: unknown } } | undefined)?.error
      detail = {
        code: status,
        message: typeof error?.message === 'string' ? error.message : text.slice(0, 200),
        errors: error?.errors,
      }
    }
    if (status === 404) {
      // Media errors are plain text, with no reason: a metadata lookup (JSON, with one) proves the object missing.
      // A ranged read is of a pinned generation: its 404 is mapped as it is (the generation went: not proven
      // absent unless the reason says so).
      if (isGcsNotFound(detail) || range !== undefined) throw ctx.error(detail, 'read of', key)
      if ((await ctx.metadata(key)) === undefined) throw new ObjectNotFoundError(key, { cause: sanitize(detail) })
      // It exists now (created since the GET): read again, within the attempts.
      if (attempt >= GET_ATTEMPTS) throw ctx.error(detail, 'read of', key, 'object')
      continue
    }
    const retryable = status === undefined || status === 408 || status === 429 || status >= 500
    if (!retryable || attempt >= GET_ATTEMPTS) throw ctx.error(detail, 'read of', key, 'object')
    await sleep(100 * 2 ** attempt * (0.5 + Math.random() / 2), signal)
  }
}

/**
 * PUTs one chunk of a resumable session, sent once (a failed chunk fails the write: see the module's TSDoc);
 * `total` for the final chunk, which answers with the object's metadata. GCS may keep less than a chunk (its
 * 308 says how much, in `Range`): the rest is sent again, a few times at most. Bounded by the request timeout.
 */
export async function putChunk(ctx: GcsContext, session: string, key: string, part: UploadPart, total: number | undefined, signal: AbortSignal): Promise<FileMetadata> {
  const end = part.offset + part.data.length
  for (let from = part.offset, attempt = 1; ; attempt++) {
    const data = part.data.subarray(from - part.offset)
    const range = data.length === 0 ? `bytes */${total ?? '*'}` : `bytes ${from}-${end - 1}/${total ?? '*'}`
    let response: Response
    try {
      response = await fetch(session, {
        method: 'PUT',
        headers: { ...(await ctx.authHeaders()), 'content-range': range, 'content-length': String(data.length) },
        body: data,
        signal: AbortSignal.any([signal, AbortSignal.timeout(ctx.requestTimeoutMs)]),
      })
    } catch (err) {
      throw ctx.error(err, 'upload of', key, 'bucket')
    }
    const text = await response.text().catch(() => '')
    if (total !== undefined && (response.status === 200 || response.status === 201)) return JSON.parse(text) as FileMetadata
    if (response.status === 308) {
      const persisted = Number(/^bytes=0-(\d+)$/.exec(response.headers.get('range') ?? '')?.[1] ?? -1) + 1
      if (persisted === end && total === undefined) return {}
      if (persisted >= from && persisted < end && attempt < 4) {
        from = persisted
        continue
      }
      throw new JobStoreError(`GCS resumable upload of ${key} to ${ctx.where}: the session kept ${persisted} bytes of the ${end} sent`)
    }
    const detail = { code: response.status, message: text.slice(0, 200) }
    // Sent once: a failed condition is this write's own.
    if (response.status === 412) throw new PreconditionFailedError(key, { cause: sanitize(detail), mayHaveLanded: false })
    throw ctx.error(detail, 'upload of', key, 'bucket')
  }
}

/**
 * Cancels a resumable session (DELETE on its URI; GCS answers 499). Best effort: an unfinished session is never
 * visible and expires after a week anyway. The URI is a credential for the upload: never logged.
 */
export async function cancelSession(uri: string): Promise<void> {
  try {
    const response = await fetch(uri, { method: 'DELETE', headers: { 'content-length': '0' }, signal: AbortSignal.timeout(10_000) })
    await response.body?.cancel()
    log('cancelled a resumable session: HTTP %d', response.status)
  } catch (err) {
    log('cannot cancel a resumable session: %s', sanitize(err).message)
  }
}
