/**
 * What the `jobstore:operation` tracing channel costs per call on the file backend, with nobody subscribed and
 * with one subscriber (see docs/observability.md): the cheapest calls the store has, where a fixed cost per call
 * shows most. One at a time, so that the figure is per call, not a throughput of the thread pool.
 *
 * 1. `exists()` of a job (one stat);
 * 2. `load()` of a 2 KiB job record;
 * 3. `readFileStream()` of a 4 KiB file, read to its end;
 * 4. `writeFileStream()` of a 4 KiB file then `deleteFile()`.
 *
 *   npx tsx bench/micro/tracing-overhead.mts [--count 2000] [--rounds 5] [--dir /tmp] [--subscribe]
 */
import { tracingChannel } from 'node:diagnostics_channel'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { newJobDescription, openJobStore } from '../../src/index.js'

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '5' },
    dir: { type: 'string', default: tmpdir() },
    subscribe: { type: 'boolean', default: false },
  },
})
const count = Number(values.count)
const rounds = Number(values.rounds)
const root = mkdtempSync(join(values.dir, 'jobstore-tracing-overhead-'))
if (values.subscribe) {
  let events = 0
  tracingChannel('jobstore:operation').subscribe({
    start: () => void events++,
    end: () => void events++,
    asyncStart: () => void events++,
    asyncEnd: () => void events++,
    error: () => void events++,
  })
}

const store = await openJobStore(`file:${root}/store`)
await store.initialize()
const desc = newJobDescription({ jobName: 'bench', command: 'x'.repeat(1800) })
store.assignID(desc)
await store.create(desc)
const id = desc.jobStoreID as string
const content = Buffer.alloc(4096, 97)
const fileID = await store.writeFileStream((w) => void w.end(content))

// Writes fsync: a tenth as many of them.
const cases: Record<string, [calls: number, call: () => Promise<unknown>]> = {
  'exists()': [count, () => store.exists(id)],
  'load() 2 KiB': [count, () => store.load(id)],
  'readFileStream() 4 KiB': [
    count,
    async () => {
      for await (const _ of await store.readFileStream(fileID));
    },
  ],
  'writeFileStream() + deleteFile() 4 KiB': [Math.ceil(count / 10), async () => store.deleteFile(await store.writeFileStream((w) => void w.end(content)))],
}

console.log(`node ${process.version}, ${count} calls a round (writes: a tenth), ${rounds} rounds, ${values.subscribe ? 'one subscriber' : 'no subscriber'}`)
for (const [name, [calls, call]] of Object.entries(cases)) {
  const perCall: number[] = []
  for (let round = 0; round < rounds; round++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < calls; i++) await call()
    perCall.push(Number(process.hrtime.bigint() - t0) / 1000 / calls)
  }
  perCall.sort((a, b) => a - b)
  const median = perCall[Math.floor(perCall.length / 2)] as number
  console.log(`${name.padEnd(42)} median ${median.toFixed(1)} µs/call (min ${perCall[0]?.toFixed(1)}, max ${perCall.at(-1)?.toFixed(1)})`)
}
await store.destroy()
rmSync(root, { recursive: true, force: true })
