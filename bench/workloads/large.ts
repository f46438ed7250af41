/**
 * Workload 3, one large file streamed in and out. Each side runs in its own process (built code from dist/, no
 * tsx), so that `process.resourceUsage().maxRSS` is the peak of that side alone. The writer produces the same 1 MiB
 * buffer over and over, respecting backpressure; the reader counts bytes.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { openJobStore } from '../../src/index.js'
import { drain, MiB, rawId, repeatedStream, timed } from '../util.js'
import type { CellContext, SideResult } from './types.js'

const CHUNK = MiB

/** Samples the RSS every 50 ms; `peak()` is the highest since the last `reset()`. */
function rssSampler(): { reset(): void; peak(): number; stop(): void } {
  let max = 0
  const sample = (): void => {
    max = Math.max(max, process.memoryUsage.rss())
  }
  const timer = setInterval(sample, 50)
  timer.unref() // a stuck stream must end the process (the cell reports it), not spin here forever
  return {
    reset: () => {
      max = process.memoryUsage.rss()
    },
    peak: () => {
      sample()
      return max
    },
    stop: () => clearInterval(timer),
  }
}

function finish(bytes: number, write: number, read: number, writePeak: number, readPeak: number, idle: number): SideResult {
  return {
    phases: { write, read },
    info: {
      bytes,
      idleRssMiB: idle / MiB,
      writePeakRssMiB: writePeak / MiB,
      readPeakRssMiB: readPeak / MiB,
      // The kernel's peak for the whole process (KiB), the number the target is about.
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    },
  }
}

export async function largeJobstore(ctx: CellContext, bytes: number): Promise<SideResult> {
  const chunk = randomBytes(CHUNK)
  const store = await openJobStore(ctx.target.locator(ctx.id), ctx.target.options(ctx.concurrency))
  await store.initialize()
  const rss = rssSampler()
  try {
    const idle = process.memoryUsage.rss()
    let fileID = ''
    rss.reset()
    const write = await timed(async () => {
      fileID = await store.writeFileStream(async (w) => {
        for (let sent = 0; sent < bytes; sent += CHUNK) {
          const part = bytes - sent >= CHUNK ? chunk : chunk.subarray(0, bytes - sent)
          if (!w.write(part)) await once(w, 'drain')
        }
        w.end()
      })
    })
    const writePeak = rss.peak()
    rss.reset()
    let read = 0
    const seconds = await timed(async () => {
      read = await drain(await store.readFileStream(fileID))
    })
    if (read !== bytes) throw new Error(`read ${read} bytes, expected ${bytes}`)
    return finish(bytes, write, seconds, writePeak, rss.peak(), idle)
  } finally {
    rss.stop()
    await store.destroy()
  }
}

export async function largeRaw(ctx: CellContext, bytes: number): Promise<SideResult> {
  const chunk = randomBytes(CHUNK)
  const store = await ctx.target.raw(ctx.id)
  await store.setup()
  const rss = rssSampler()
  try {
    const idle = process.memoryUsage.rss()
    const id = rawId()
    const key = `files/${id.slice(0, 2)}/${id}`
    rss.reset()
    const write = await timed(() => store.putStream(key, repeatedStream(chunk, bytes)))
    const writePeak = rss.peak()
    rss.reset()
    let read = 0
    const seconds = await timed(async () => {
      read = await drain(await store.getStream(key))
    })
    if (read !== bytes) throw new Error(`read ${read} bytes, expected ${bytes}`)
    return finish(bytes, write, seconds, writePeak, rss.peak(), idle)
  } finally {
    rss.stop()
    await store.destroy()
  }
}
