/**
 * Bounded parallelism for the store's bulk work (listing then loading jobs, deleting files, `clean()`): many
 * round trips in flight at once, never an unbounded number.
 */
import { AbortedError } from './errors.js'

/**
 * Maps `source` through `fn` with at most `limit` calls in flight, yielding results in source order. Pulls from
 * `source` only as results are consumed, so memory stays bounded by `limit`.
 */
export async function* mapConcurrent<T, R>(
  source: Iterable<T> | AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<R>,
): AsyncGenerator<R> {
  const iterator =
    Symbol.asyncIterator in source
      ? (source as AsyncIterable<T>)[Symbol.asyncIterator]()
      : (source as Iterable<T>)[Symbol.iterator]()
  const window: Promise<R>[] = []
  let done = false
  const fill = async (): Promise<void> => {
    while (!done && window.length < limit) {
      const next = await iterator.next()
      if (next.done) {
        done = true
        break
      }
      const pending = fn(next.value)
      pending.catch(() => {}) // observed below, in order; avoid an unhandled rejection meanwhile
      window.push(pending)
    }
  }
  try {
    await fill()
    while (window.length > 0) {
      const head = window.shift() as Promise<R>
      const value = await head
      await fill()
      yield value
    }
  } finally {
    if (!done) await iterator.return?.()
    await Promise.allSettled(window)
  }
}

/**
 * Runs `fn` on every item with at most `limit` in flight. Stops starting new work at the first failure, waits for
 * the work in flight, then rejects with the first error.
 */
export async function forEachConcurrent<T>(
  source: Iterable<T> | AsyncIterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  for await (const _ of mapConcurrent(source, limit, fn)) {
    // results are void; mapConcurrent does the scheduling
  }
}

/** Splits `items` into arrays of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Throws {@link AbortedError} if the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError({ cause: signal.reason })
}

/**
 * Destroys `body` with {@link AbortedError} when `signal` fires, so that a read of a body that stalls (its writer
 * waits) ends on an abort, as an SDK's upload would. Returns the function that drops the link: call it once the
 * body has been read.
 */
export function destroyOnAbort(body: { destroy(error?: Error): unknown }, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => {}
  const onAbort = (): void => void body.destroy(new AbortedError({ cause: signal.reason }))
  signal.addEventListener('abort', onAbort, { once: true })
  return () => signal.removeEventListener('abort', onAbort)
}

/** An AbortController that also aborts when `parent` does. Call `dispose()` to drop the link. */
export function linkedAbortController(parent: AbortSignal | undefined): AbortController & { dispose(): void } {
  const controller = new AbortController()
  const onAbort = (): void => controller.abort(parent?.reason)
  if (parent?.aborted) controller.abort(parent.reason)
  else parent?.addEventListener('abort', onAbort, { once: true })
  return Object.assign(controller, { dispose: () => parent?.removeEventListener('abort', onAbort) })
}

/** Sleeps `ms`, rejecting early with {@link AbortedError} if the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError({ cause: signal.reason }))
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new AbortedError({ cause: signal?.reason }))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
