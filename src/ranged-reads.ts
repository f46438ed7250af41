/**
 * The GET of an object as the core reads it, written once for every backend: the service's body guarded (its
 * errors mapped, destroyed with the stream handed out) and resumed with ranged reads of the same version when it
 * breaks off ({@link resumableRead}). A backend supplies its GET of a range pinned to the version (same ETag or
 * generation) and its error mapping.
 */
import { PassThrough, type Readable } from 'node:stream'
import { JobStoreError } from './errors.js'
import { resumableRead } from './resumable-read.js'

/**
 * `body` with its errors mapped by `mapError` (an SDK's own errors never reach a caller). Destroying the returned
 * stream destroys `body`, which frees its connection.
 */
export function guardBody(body: Readable, mapError: (err: unknown) => Error, highWaterMark = 64 * 1024): Readable {
  const out = new PassThrough({ highWaterMark })
  body.on('error', (err) => out.destroy(mapError(err)))
  out.on('close', () => {
    if (!body.destroyed) body.destroy()
  })
  body.pipe(out)
  return out
}

/** Options of {@link rangedRead}. */
export interface RangedReadOptions {
  /** The object's size (from the GET's answer). */
  readonly size: number
  /** For messages: the read, e.g. `S3 GetObject s3://bucket/key`. */
  readonly what: string
  readonly signal?: AbortSignal | undefined
  /** GETs the same version of the object from `offset` to its end: the service's body. */
  readonly openRange: (offset: number) => Promise<Readable>
  /** Maps an error of a body, or of `openRange` (then with the offset). JobStoreErrors should pass through. */
  readonly mapError: (err: unknown, offset?: number) => Error
  /** Whether an error of `openRange` says the version is gone (its pin failed: 412, 404): the object changed. */
  readonly versionGone?: (err: unknown) => boolean
  /** Buffer of each guarded body (default 64 KiB). */
  readonly highWaterMark?: number
}

/**
 * The body of an object's GET (`first`), guarded, and resumed from where it stopped with `openRange` when it
 * fails or ends early, a bounded number of times. A version gone meanwhile fails the read: never a mix of two.
 */
export function rangedRead(first: Readable, options: RangedReadOptions): Readable {
  const guard = (body: Readable): Readable => guardBody(body, (err) => options.mapError(err), options.highWaterMark)
  return resumableRead(guard(first), {
    size: options.size,
    what: options.what,
    signal: options.signal,
    reopen: async (offset) => {
      let rest: Readable
      try {
        rest = await options.openRange(offset)
      } catch (err) {
        if (options.versionGone?.(err) === true) {
          throw new JobStoreError(`${options.what}: the object was replaced or deleted while it was read`, { cause: err })
        }
        throw options.mapError(err, offset)
      }
      return guard(rest)
    },
  })
}
