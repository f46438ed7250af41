/**
 * Workload 1, small-job churn: create N jobs of about 2 KiB (inside `batch()`), load each, update each, list them
 * all with `jobs()`, delete each. The bench drives load/update/delete with `concurrency` calls in flight; batch()
 * and jobs() use the store's own concurrency (the same number).
 */
import { keys as storeKeys } from '../../src/ids.js'
import { openJobStore, type JobDescription } from '../../src/index.js'
import { benchJob } from '../jobs.js'
import { rawId, runPool, timed } from '../util.js'
import type { CellContext, SideResult, Workload } from './types.js'

async function jobstore(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency } = ctx
  const store = await openJobStore(ctx.target.locator(ctx.id), ctx.target.options(concurrency))
  await store.initialize()
  try {
    const descs = Array.from({ length: count }, (_, i) => {
      const desc = benchJob(i, '', ctx.recordBytes)
      store.assignID(desc)
      return desc
    })
    const ids = descs.map((d) => d.jobStoreID as string)
    const phases: Record<string, number> = {}
    phases['create'] = await timed(() =>
      store.batch(async () => {
        for (const desc of descs) await store.create(desc)
      }),
    )
    const loaded: JobDescription[] = new Array<JobDescription>(count)
    phases['load'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        loaded[i] = await store.load(ids[i] as string)
      }),
    )
    phases['update'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        const desc = loaded[i] as JobDescription
        desc.extra['state'] = 'updated'
        await store.update(desc)
      }),
    )
    let listed = 0
    phases['list'] = await timed(async () => {
      for await (const _ of store.jobs()) listed++
    })
    if (listed !== count) throw new Error(`jobs() listed ${listed} jobs, expected ${count}`)
    phases['delete'] = await timed(() => runPool(count, concurrency, (i) => store.delete(ids[i] as string)))
    return { phases }
  } finally {
    await store.destroy()
  }
}


async function raw(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency } = ctx
  const store = await ctx.target.raw(ctx.id)
  await store.setup()
  try {
    const descs = Array.from({ length: count }, (_, i) => benchJob(i, rawId(), ctx.recordBytes))
    const keys = descs.map((d) => storeKeys.job(d.jobStoreID as string))
    const phases: Record<string, number> = {}
    phases['create'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        const desc = descs[i] as JobDescription
        desc.version = 1
        await store.putIfAbsent(keys[i] as string, Buffer.from(JSON.stringify(desc)))
      }),
    )
    const loaded: JobDescription[] = new Array<JobDescription>(count)
    phases['load'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        loaded[i] = JSON.parse((await store.get(keys[i] as string)).toString('utf8')) as JobDescription
      }),
    )
    phases['update'] = await timed(() =>
      runPool(count, concurrency, async (i) => {
        const desc = loaded[i] as JobDescription
        desc.extra['state'] = 'updated'
        desc.version++
        await store.put(keys[i] as string, Buffer.from(JSON.stringify(desc)))
      }),
    )
    let listed = 0
    phases['list'] = await timed(async () => {
      // As jobs(): the listing and the loads overlap, `concurrency` loads in flight.
      const listing = store.list('jobs/')[Symbol.asyncIterator]()
      await runPool(concurrency, concurrency, async () => {
        for (let next = await listing.next(); !next.done; next = await listing.next()) {
          JSON.parse((await store.get(next.value)).toString('utf8'))
          listed++
        }
      })
    })
    if (listed !== count) throw new Error(`the listing found ${listed} jobs, expected ${count}`)
    phases['delete'] = await timed(() => runPool(count, concurrency, (i) => store.delete(keys[i] as string)))
    return { phases }
  } finally {
    await store.destroy()
  }
}

export const churn: Workload = { jobstore, raw }
