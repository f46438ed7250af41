/**
 * Reads that survive a connection cut mid-body. The SDKs retry a request until its answer's headers arrive, but a
 * body that breaks off afterwards (a reset, a proxy that gives up) fails the read. A backend wraps the body of
 * its GET with {@link resumableRead}: when the body fails, or ends before the object's size, the rest is asked
 * for again from where it stopped (a ranged GET of the same version: same ETag or generation), a bounded number
 * of times. The bytes come out once each and in order, so the core's size and digest checks see the whole object.
 */
import { PassThrough, type Readable } from 'node:stream'
import { debuglog } from 'node:util'
import { AbortedError, IntegrityError } from './errors.js'

const log = debuglog('jobstore')

export interface ResumableReadOptions {
  /** The object's size: a body that stops before it is resumed. */
  readonly size: number
  /** Opens the rest of the same version of the object, from `offset` to its end. */
  readonly reopen: (offset: number) => Promise<Readable>
  /** How many times a read may be resumed (default 3). */
  readonly resumes?: number
  /** For messages: what is being read. */
  readonly what: string
  /** The caller's signal: once it fired, nothing is resumed. */
  readonly signal?: AbortSignal | undefined
}

/**
 * `first`, resumed with `reopen` when it breaks off. Errors that resuming cannot help (integrity failures, the
 * caller's abort) and the last error once the resumes are used up end the returned stream; destroying it
 * destroys the body being read.
 */
export function resumableRead(first: Readable, options: ResumableReadOptions): Readable {
  const maxResumes = options.resumes ?? 3
  const out = new PassThrough({ highWaterMark: 256 * 1024 })
  let current = first
  let offset = 0
  let resumes = 0
  let closed = false

  const onDrain = (): void => {
    current.resume()
  }
  out.on('drain', onDrain)
  out.on('close', () => {
    closed = true
    current.destroy()
  })

  const attach = (body: Readable): void => {
    current = body
    const onData = (chunk: Buffer): void => {
      offset += chunk.length
      if (!out.write(chunk)) body.pause()
    }
    const detach = (): void => {
      body.off('data', onData)
      body.off('end', onEnd)
      body.off('error', onError)
      // Errors after this one (a destroy racing an error) are nobody's business.
      body.on('error', () => {})
    }
    const onEnd = (): void => {
      detach()
      if (offset >= options.size) out.end()
      else broken(undefined)
    }
    const onError = (err: Error): void => {
      detach()
      body.destroy()
      broken(err)
    }
    body.on('data', onData)
    body.once('end', onEnd)
    body.once('error', onError)
  }

  const broken = (err: Error | undefined): void => {
    if (closed) return
    const hopeless = err instanceof IntegrityError || err instanceof AbortedError || options.signal?.aborted === true
    if (hopeless || offset >= options.size || resumes >= maxResumes) {
      // Without an error, a short body ends the stream: the size check downstream reports it.
      if (err !== undefined) out.destroy(err)
      else out.end()
      return
    }
    resumes++
    log('read of %s broke off at byte %d of %d (%s): resuming (%d of %d)', options.what, offset, options.size, err?.message ?? 'ended early', resumes, maxResumes)
    options.reopen(offset).then(
      (body) => {
        if (closed) {
          body.destroy()
          return
        }
        attach(body)
      },
      (reopenError: unknown) => out.destroy(reopenError as Error),
    )
  }

  attach(first)
  return out
}
