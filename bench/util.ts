/** Small helpers shared by the benchmark cells. */
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'

/** Runs `fn` on indices 0..count-1 with at most `limit` calls in flight (the benchmark's client concurrency). */
export async function runPool(count: number, limit: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  let failed: { error: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < count) {
      const index = next++
      try {
        await fn(index)
      } catch (error) {
        failed ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker))
  if (failed !== undefined) throw failed.error
}

/** Seconds taken by `fn`. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now()
  await fn()
  return (performance.now() - start) / 1000
}

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

/** A random lower-case base32 ID of 26 characters (the shape of jobstore's IDs), for the raw baselines' keys. */
export function rawId(): string {
  let out = ''
  for (const byte of randomBytes(26)) out += ALPHABET[byte & 31]
  return out
}

/** Reads a stream to its end; returns the number of bytes. */
export async function drain(stream: Readable | AsyncIterable<unknown>): Promise<number> {
  let bytes = 0
  for await (const chunk of stream) bytes += (chunk as Buffer).length
  return bytes
}

/** Reads a stream into one buffer. */
export async function toBuffer(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const chunk of stream) parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)
}

/** A stream of `total` bytes made of `chunk` repeated (the same buffer, never modified). */
export function repeatedStream(chunk: Buffer, total: number): Readable {
  let sent = 0
  return new Readable({
    highWaterMark: chunk.length,
    read() {
      if (sent >= total) {
        this.push(null)
        return
      }
      const n = Math.min(chunk.length, total - sent)
      sent += n
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n))
    },
  })
}

/** The median of non-empty `values`. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

export const KiB = 1024
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
