/**
 * Workload 4, `clean()` on a store of N jobs: 10% unreachable from the root, 5% of the reachable ones with a
 * used-up try (the graph of jobs.ts, the same as Toil's side). Set-up is not timed; then a second instance (a
 * restarted leader) resumes the store and runs `clean()`, which loads every job, deletes the unreachable ones and
 * rewrites the repaired ones.
 */
import { keys } from '../../src/ids.js'
import { openJobStore, type CleanReport, type JobDescription } from '../../src/index.js'
import { benchJob, cleanGraph } from '../jobs.js'
import { rawId, runPool, timed } from '../util.js'
import type { CellContext, SideResult, Workload } from './types.js'

const RETRY_COUNT = 1
const TRIES = RETRY_COUNT + 1

function buildJobs(count: number, recordBytes: number, id: () => string): { descs: JobDescription[]; graph: ReturnType<typeof cleanGraph> } {
  const graph = cleanGraph(count)
  const descs = Array.from({ length: count }, (_, i) => benchJob(i, id(), recordBytes))
  graph.parent.forEach((parent, i) => {
    if (parent !== undefined) (descs[parent] as JobDescription).children.push((descs[i] as JobDescription).jobStoreID as string)
  })
  descs.forEach((desc, i) => {
    desc.remainingTryCount = graph.usedTry.has(i) ? TRIES - 1 : TRIES
  })
  return { descs, graph }
}

async function jobstore(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency } = ctx
  const locator = ctx.target.locator(ctx.id)
  // On a FUSE backend the set-up writes to the backing folder (no delay: it is not timed); clean() goes through the mount.
  const store = await openJobStore(ctx.target.setupLocator?.(ctx.id) ?? locator, ctx.target.options(concurrency))
  await store.initialize({ retryCount: RETRY_COUNT })
  try {
    const { descs, graph } = buildJobs(count, ctx.recordBytes, () => store.assignID({} as JobDescription))
    const setup = await timed(async () => {
      await store.batch(async () => {
        for (const desc of descs) await store.create(desc)
      })
      await store.setRootJob((descs[0] as JobDescription).jobStoreID as string)
    })
    const restarted = await openJobStore(locator, ctx.target.options(concurrency))
    await restarted.resume()
    let report: CleanReport | undefined
    const seconds = await timed(() => restarted.clean(undefined, { onReport: (r) => (report = r) }))
    if (report === undefined) throw new Error('clean() gave no report')
    const done = report as CleanReport
    if (done.deletedJobs.length !== graph.unreachable || done.repairedJobs.length !== graph.usedTry.size) {
      throw new Error(
        `clean() deleted ${done.deletedJobs.length} jobs and repaired ${done.repairedJobs.length}, ` +
          `expected ${graph.unreachable} and ${graph.usedTry.size}`,
      )
    }
    let left = 0
    for await (const _ of restarted.jobs()) left++
    if (left !== count - graph.unreachable) throw new Error(`${left} jobs left after clean(), expected ${count - graph.unreachable}`)
    return { phases: { clean: seconds }, info: { setupSeconds: setup, deleted: graph.unreachable, repaired: graph.usedTry.size } }
  } finally {
    await store.destroy()
  }
}


async function raw(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency } = ctx
  const store = await ctx.target.raw(ctx.id)
  const setupStore = (await ctx.target.rawSetup?.(ctx.id)) ?? store
  await setupStore.setup()
  try {
    const { descs, graph } = buildJobs(count, ctx.recordBytes, rawId)
    const setup = await timed(async () => {
      await runPool(count, concurrency, async (i) => {
        const desc = descs[i] as JobDescription
        await setupStore.putIfAbsent(keys.job(desc.jobStoreID as string), Buffer.from(JSON.stringify(desc)))
      })
      await setupStore.put('meta/root-job', Buffer.from((descs[0] as JobDescription).jobStoreID as string))
    })
    await store.setup()
    let deleted = 0
    let repaired = 0
    const seconds = await timed(async () => {
      const rootId = (await store.get('meta/root-job')).toString('utf8')
      // Load every job, the listing and the loads overlapping.
      const all = new Map<string, JobDescription>()
      const listing = store.list('jobs/')[Symbol.asyncIterator]()
      await runPool(concurrency, concurrency, async () => {
        for (let next = await listing.next(); !next.done; next = await listing.next()) {
          const desc = JSON.parse((await store.get(next.value)).toString('utf8')) as JobDescription
          all.set(desc.jobStoreID as string, desc)
        }
      })
      const reachable = new Set<string>()
      const stack = [rootId]
      while (stack.length > 0) {
        const id = stack.pop() as string
        const desc = all.get(id)
        if (desc === undefined || reachable.has(id)) continue
        reachable.add(id)
        stack.push(...desc.children, ...desc.followOns, ...desc.services)
      }
      const unreachable = [...all.keys()].filter((id) => !reachable.has(id))
      await runPool(unreachable.length, concurrency, (i) => store.delete(keys.job(unreachable[i] as string)))
      deleted = unreachable.length
      const changed = [...reachable].map((id) => all.get(id) as JobDescription).filter((desc) => desc.remainingTryCount !== TRIES)
      await runPool(changed.length, concurrency, async (i) => {
        const desc = changed[i] as JobDescription
        desc.remainingTryCount = TRIES
        desc.version++
        await store.put(keys.job(desc.jobStoreID as string), Buffer.from(JSON.stringify(desc)))
      })
      repaired = changed.length
    })
    if (deleted !== graph.unreachable || repaired !== graph.usedTry.size) {
      throw new Error(`the baseline deleted ${deleted} and repaired ${repaired}, expected ${graph.unreachable} and ${graph.usedTry.size}`)
    }
    return { phases: { clean: seconds }, info: { setupSeconds: setup, deleted, repaired } }
  } finally {
    await setupStore.destroy()
  }
}

export const clean: Workload = { jobstore, raw }
