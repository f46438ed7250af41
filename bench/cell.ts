/**
 * One benchmark cell, run in its own process from the built code (`node dist/bench/bench/cell.js …`, never tsx):
 * one workload on one backend, the job store and the raw baseline in alternating order for each round (or, for
 * the large-file workload, one side only, so that its peak RSS is its own). Prints one line of JSON on stdout;
 * progress goes to stderr. `bench/run.ts` drives it.
 *
 *   node dist/bench/bench/cell.js <churn|files|clean|status|large> --backend <name> --count <n> --work-dir <dir>
 *        [--rounds 1] [--round-offset 0] [--concurrency 32] [--record-bytes 2048] [--file-bytes 65536] [--side jobstore|raw] [--bytes n]
 */
import { parseArgs } from 'node:util'
import { isBackendName, target } from './targets.js'
import { rawId } from './util.js'
import { churn } from './workloads/churn.js'
import { clean } from './workloads/clean.js'
import { files } from './workloads/files.js'
import { largeJobstore, largeRaw } from './workloads/large.js'
import { status } from './workloads/status.js'
import type { CellContext, Side, SideResult, Workload } from './workloads/types.js'

const WORKLOADS: Record<string, Workload> = { churn, files, clean, status }
/** Operations of the untimed warm-up of each side. */
const WARM_UP_COUNT = 200

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      backend: { type: 'string' },
      count: { type: 'string', default: '0' },
      rounds: { type: 'string', default: '1' },
      'round-offset': { type: 'string', default: '0' },
      concurrency: { type: 'string', default: '32' },
      'record-bytes': { type: 'string', default: '2048' },
      'file-bytes': { type: 'string', default: String(64 * 1024) },
      'work-dir': { type: 'string' },
      side: { type: 'string' },
      bytes: { type: 'string', default: '0' },
    },
  })
  const workload = positionals[0] ?? ''
  const backend = values.backend ?? ''
  if (!isBackendName(backend)) throw new Error(`unknown backend ${backend}`)
  if (values['work-dir'] === undefined) throw new Error('--work-dir is required')
  const run = rawId().slice(0, 8)
  const log = (message: string): void => {
    process.stderr.write(`  [${workload}/${backend}] ${message}\n`)
  }
  const base = {
    target: target(backend, values['work-dir']),
    count: Number(values.count),
    concurrency: Number(values.concurrency),
    recordBytes: Number(values['record-bytes']),
    fileBytes: Number(values['file-bytes']),
    log,
  }
  const context = (round: number, side: Side): CellContext => ({ ...base, id: `${workload}-${run}-${round}-${side}` })

  if (workload === 'large') {
    const side = values.side
    if (side !== 'jobstore' && side !== 'raw') throw new Error('--side jobstore|raw is required for large')
    const bytes = Number(values.bytes)
    const result = side === 'jobstore' ? await largeJobstore(context(0, side), bytes) : await largeRaw(context(0, side), bytes)
    process.stdout.write(`${JSON.stringify({ workload, backend, side, results: [result] })}\n`)
    return
  }

  const chosen = WORKLOADS[workload]
  if (chosen === undefined) throw new Error(`unknown workload ${workload}`)
  const rounds = Number(values.rounds)
  const offset = Number(values['round-offset'])
  const results: { jobstore: SideResult[]; raw: SideResult[] } = { jobstore: [], raw: [] }
  // Each cell is a new process: whichever side ran first would also pay for loading its modules, compiling its
  // hot paths and opening its connections. A small untimed run of both sides first takes that off the figures.
  const warmCount = Math.min(base.count, WARM_UP_COUNT)
  for (const side of ['jobstore', 'raw'] as const) await chosen[side]({ ...context(-1, side), count: warmCount, log: () => {} })
  for (let round = offset; round < offset + rounds; round++) {
    // Alternate who goes first, so that neither side always runs on a warmer (or more tired) machine.
    const order: Side[] = round % 2 === 0 ? ['jobstore', 'raw'] : ['raw', 'jobstore']
    for (const side of order) {
      const result = await chosen[side](context(round, side))
      log(`round ${round + 1} ${side}: ${Object.entries(result.phases).map(([k, v]) => `${k} ${v.toFixed(2)}s`).join(', ')}`)
      results[side].push(result)
    }
  }
  process.stdout.write(`${JSON.stringify({ workload, backend, count: base.count, results })}\n`)
}

// The event loop emptied while main() was still pending: some promise never settles (a stream that never ends).
process.once('beforeExit', () => {
  process.stdout.write(`${JSON.stringify({ error: 'the cell stopped with its work unfinished: a promise never settled' })}\n`)
  process.exit(1)
})

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    // One line the driver shows in the table.
    process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`)
    process.exit(1)
  },
)
