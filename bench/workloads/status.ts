/**
 * The status workload: `jobstore status` (the CLI, a process of its own, as a user runs it) on a store of N jobs,
 * a tree of fan-out 10 from the root job; Toil's side runs the real `toil status` on the same tree
 * (bench/toil/toil_bench.py). The set-up is not timed (on a FUSE backend it writes to the backing folder, without
 * the delay); the time is the whole command's, start-up included. The raw baseline lists and loads every job.
 */
import { fileURLToPath } from 'node:url'
import { keys } from '../../src/ids.js'
import { openJobStore, type JobDescription } from '../../src/index.js'
import { exec } from '../exec.js'
import { benchJob } from '../jobs.js'
import { rawId, runPool, timed } from '../util.js'
import type { CellContext, SideResult, Workload } from './types.js'

/** The CLI as `npm run bench` built it into dist/bench/ (bench/tsconfig.build.json). */
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

/** Job i > 0 is a child of job floor((i - 1) / 10): every job is reachable from job 0, the root. */
function tree(descs: JobDescription[]): void {
  descs.forEach((desc, i) => {
    if (i > 0) (descs[Math.floor((i - 1) / 10)] as JobDescription).children.push(desc.jobStoreID as string)
  })
}

async function jobstore(ctx: CellContext): Promise<SideResult> {
  const { count, concurrency } = ctx
  const locator = ctx.target.locator(ctx.id)
  const store = await openJobStore(ctx.target.setupLocator?.(ctx.id) ?? locator, ctx.target.options(concurrency))
  await store.initialize()
  try {
    const descs = Array.from({ length: count }, (_, i) => benchJob(i, store.assignID({} as JobDescription), ctx.recordBytes))
    tree(descs)
    const setup = await timed(async () => {
      await store.batch(async () => {
        for (const desc of descs) await store.create(desc)
      })
      await store.setRootJob((descs[0] as JobDescription).jobStoreID as string)
    })
    let out: Awaited<ReturnType<typeof exec>> | undefined
    const seconds = await timed(async () => {
      out = await exec(process.execPath, [CLI, 'status', locator, '--json'])
    })
    const done = out as Awaited<ReturnType<typeof exec>>
    if (done.code !== 0) throw new Error(`jobstore status exited with ${done.code}: ${done.stderr.slice(-2000)}`)
    const report = JSON.parse(done.stdout) as { jobs?: { total?: number } }
    if (report.jobs?.total !== count) throw new Error(`jobstore status counted ${report.jobs?.total} jobs, expected ${count}`)
    return { phases: { status: seconds }, info: { setupSeconds: setup } }
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
    const descs = Array.from({ length: count }, (_, i) => benchJob(i, rawId(), ctx.recordBytes))
    tree(descs)
    const setup = await timed(() =>
      runPool(count, concurrency, async (i) => {
        const desc = descs[i] as JobDescription
        await setupStore.putIfAbsent(keys.job(desc.jobStoreID as string), Buffer.from(JSON.stringify(desc)))
      }),
    )
    let listed = 0
    const seconds = await timed(async () => {
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
    return { phases: { status: seconds }, info: { setupSeconds: setup } }
  } finally {
    await setupStore.destroy()
  }
}

export const status: Workload = { jobstore, raw }
