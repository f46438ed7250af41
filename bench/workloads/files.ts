/**
 * Workload 2, many small files: N files of 64 KiB written (`writeFileStream`), read (`readFileStream`, to the
 * end) and deleted (`deleteFile`), `concurrency` calls in flight.
 */
import { randomBytes } from 'node:crypto'
import { openJobStore } from '../../src/index.js'
import { drain, rawId, runPool, timed } from '../util.js'
import type { CellContext, SideResult, Workload } from './types.js'

async function jobstore(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency, fileBytes } = ctx
  const data = randomBytes(fileBytes)
  const store = await openJobStore(ctx.target.locator(ctx.id), ctx.target.options(concurrency))
  await store.initialize()
  try {
    const ids: string[] = new Array<string>(count)
    const phases: Record<string, number> = {}
    phases['write'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        ids[i] = await store.writeFileStream(async (w) => {
          w.end(data)
        })
      }),
    )
    phases['read'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        const bytes = await drain(await store.readFileStream(ids[i] as string))
        if (bytes !== fileBytes) throw new Error(`read ${bytes} bytes, expected ${fileBytes}`)
      }),
    )
    phases['delete'] = await timed(() => runPool(count, concurrency, (i) => store.deleteFile(ids[i] as string)))
    return { phases }
  } finally {
    await store.destroy()
  }
}

async function raw(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency, fileBytes } = ctx
  const data = randomBytes(fileBytes)
  const store = await ctx.target.raw(ctx.id)
  await store.setup()
  try {
    const keys = Array.from({ length: count }, () => {
      const id = rawId()
      return `files/${id.slice(0, 2)}/${id}`
    })
    const phases: Record<string, number> = {}
    phases['write'] = await timed(() => runPool(count, concurrency, (i) => store.putIfAbsent(keys[i] as string, data)))
    phases['read'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        const bytes = await drain(await store.getStream(keys[i] as string))
        if (bytes !== fileBytes) throw new Error(`read ${bytes} bytes, expected ${fileBytes}`)
      }),
    )
    phases['delete'] = await timed(() => runPool(count, concurrency, (i) => store.delete(keys[i] as string)))
    return { phases }
  } finally {
    await store.destroy()
  }
}

export const files: Workload = { jobstore, raw }
