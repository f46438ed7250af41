/**
 * What one 64 KiB file costs on the file backend, in CPU time (user + system, all threads of the process) and wall
 * time per operation, for the trees given: the same writes, reads and deletes as workload 2 of `npm run bench`.
 * CPU time hardly depends on what else the machine runs, so two trees can be compared on a busy machine, where
 * the wall-time ratios of the full bench are noise. Trees alternate round by round; the median is printed.
 *
 *   npx tsx bench/micro/file-write-cost.mts --tree . --tree /path/to/other/checkout --count 2000 --rounds 3 --dir /tmp
 *
 * A tree is a checkout of this repository with its node_modules (it is imported from source through tsx).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { resolve, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    tree: { type: 'string', multiple: true, default: ['.'] },
    count: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    bytes: { type: 'string', default: '65536' },
    dir: { type: 'string', default: '/tmp' },
    durable: { type: 'boolean', default: true },
  },
})
const count = Number(values.count)
const concurrency = Number(values.concurrency)
const data = randomBytes(Number(values.bytes))

async function pool(n: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) await task(next++)
  }))
}

type Phase = { wallUs: number; cpuUs: number }
async function measure(body: () => Promise<void>): Promise<Phase> {
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  await body()
  const wall = Number(process.hrtime.bigint() - start) / 1000
  const used = process.cpuUsage(cpu)
  return { wallUs: wall / count, cpuUs: (used.user + used.system) / count }
}

async function round(tree: string): Promise<Record<string, Phase>> {
  const { FileJobStore } = (await import(pathToFileURL(join(resolve(tree), 'backends/file/index.ts')).href)) as {
    FileJobStore: new (locator: string, options: object) => {
      initialize(): Promise<void>
      destroy(): Promise<void>
      writeFileStream(body: (w: NodeJS.WritableStream) => Promise<void>): Promise<string>
      readFileStream(id: string): Promise<AsyncIterable<Buffer>>
      deleteFile(id: string): Promise<void>
    }
  }
  const root = await mkdtemp(join(values.dir, 'jobstore-write-cost-'))
  const store = new FileJobStore(join(root, 'store'), { durable: values.durable, concurrency })
  await store.initialize()
  try {
    const ids: string[] = []
    const write = await measure(() => pool(count, async (i) => {
      ids[i] = await store.writeFileStream(async (w) => void w.end(data))
    }))
    const read = await measure(() => pool(count, async (i) => {
      for await (const _ of await store.readFileStream(ids[i] as string));
    }))
    const del = await measure(() => pool(count, (i) => store.deleteFile(ids[i] as string)))
    return { write, read, delete: del }
  } finally {
    await store.destroy()
    await rm(root, { recursive: true, force: true })
  }
}

const results = new Map<string, Record<string, Phase>[]>()
for (let r = 0; r < Number(values.rounds); r++) {
  for (const tree of values.tree) {
    const result = await round(tree)
    results.set(tree, [...(results.get(tree) ?? []), result])
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
console.log(`${count} files of ${data.length} B, ${concurrency} in flight, durable ${values.durable}, in ${values.dir}; median of ${values.rounds} rounds, per operation`)
console.log('| tree | op | CPU µs | wall µs |\n| --- | --- | ---: | ---: |')
for (const [tree, rounds] of results) {
  for (const op of ['write', 'read', 'delete']) {
    const cpu = median(rounds.map((x) => (x[op] as Phase).cpuUs))
    const wall = median(rounds.map((x) => (x[op] as Phase).wallUs))
    console.log(`| ${tree} | ${op} | ${cpu.toFixed(0)} | ${wall.toFixed(0)} |`)
  }
}
