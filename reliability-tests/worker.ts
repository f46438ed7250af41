/**
 * Child process of the reliability tests, as a worker on another host would be: it opens the store by locator and
 * runs one scenario. Compiled to plain JavaScript by the global setup (see processes.ts), so that it starts fast.
 * Usage: `node worker.js '{"scenario":…,"locator":…,"options":{…},"args":{…}}'`.
 *
 * Crash scenarios write in a loop until the parent kills them, announcing each write on stdout before it starts
 * (`start <kind> <target> <content>`) and when it is done (`done <kind> <target> <content>`); `content` is the
 * digest of what is written. Every payload verifies itself (see `selfChecking`), so that the parent can tell a
 * whole object from a partial one whatever it is (payloads.ts).
 */
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AbstractJobStore, JobStoreOptions } from '../src/abstract-job-store.js'
import { ConcurrentFileModificationError } from '../src/errors.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { fillJob, selfChecking } from './payloads.js'

/** One of `items`, at random. */
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T

export interface WorkerRequest {
  readonly scenario: string
  readonly locator: string
  readonly options?: Record<string, unknown>
  readonly args?: Record<string, unknown>
}

function say(line: string): void {
  process.stdout.write(`${line}\n`)
}

async function writeInPieces(w: NodeJS.WritableStream, data: Buffer): Promise<void> {
  let at = 0
  while (at < data.length) {
    const size = Math.min(data.length - at, 1 + Math.floor(Math.random() * 512 * 1024))
    if (!w.write(data.subarray(at, at + size))) await new Promise((resolve) => w.once('drain', resolve))
    at += size
    // A body callback that takes its time, as one computing its output would.
    if (Math.random() < 0.3) await new Promise((resolve) => setImmediate(resolve))
  }
}

async function waitUntil(startAt: unknown): Promise<void> {
  const wait = Number(startAt) - Date.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
}

/** Sizes of the payloads of a crash scenario: mostly small, some over one or two upload parts. */
function sizes(partSize: number): number[] {
  return [100, 20_000, 150_000, 64 * 1024, 3000, partSize + 1000, partSize * 2 + 12_345]
}

const scenarios: Record<string, (store: AbstractJobStore, args: Record<string, unknown>) => Promise<void>> = {
  /** writeFile of local files, over and over. */
  async 'file-writes'(store, args) {
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-crash-'))
    const local: { path: string; digest: string }[] = []
    for (const [i, size] of sizes(Number(args['partSize'])).entries()) {
      const { data, digest } = selfChecking(size)
      const path = join(dir, `input-${i}.bin`)
      await writeFile(path, data)
      local.push({ path, digest })
    }
    say('ready')
    for (let i = 0; ; i++) {
      const { path, digest } = pick(local)
      say(`start file - ${digest}`)
      const id = await store.writeFile(path)
      say(`done file ${id} ${digest}`)
    }
  },
  /** writeFileStream of new files and updateFileStream of the files in `args.files`, over and over. */
  async 'stream-writes'(store, args) {
    const files = args['files'] as string[]
    const payloads = sizes(Number(args['partSize'])).map((size) => selfChecking(size))
    say('ready')
    for (;;) {
      const { data, digest } = pick(payloads)
      if (Math.random() < 0.5) {
        await store.writeFileStream(async (w, id) => {
          say(`start stream ${id} ${digest}`)
          await writeInPieces(w, data)
        })
        say(`done stream - ${digest}`)
      } else {
        const id = pick(files)
        say(`start update ${id} ${digest}`)
        await store.updateFileStream(id, (w) => writeInPieces(w, data))
        say(`done update ${id} ${digest}`)
      }
    }
  },
  /** writeSharedFileStream of the names in `args.names`, protected or not, over and over. */
  async 'shared-writes'(store, args) {
    const names = args['names'] as string[]
    const payloads = sizes(Number(args['partSize'])).map((size) => selfChecking(size))
    say('ready')
    for (;;) {
      const { data, digest } = pick(payloads)
      const name = pick(names)
      say(`start shared ${name} ${digest}`)
      await store.writeSharedFileStream(name, (w) => writeInPieces(w, data), { isProtected: Math.random() < 0.5 })
      say(`done shared ${name} ${digest}`)
    }
  },
  /** update() of the jobs in `args.jobs` with payloads of 1 KB to 300 KB, over and over. */
  async 'job-updates'(store, args) {
    const jobs = await Promise.all((args['jobs'] as string[]).map((id) => store.load(id)))
    say('ready')
    for (;;) {
      const desc = pick(jobs)
      const tag = fillJob(desc, 1000 + Math.floor(Math.random() * 300_000))
      say(`start job ${desc.jobStoreID} ${tag}`)
      await store.update(desc)
      say(`done job ${desc.jobStoreID} ${tag}`)
    }
  },
  /** batch() of 5 to 40 new jobs, over and over. */
  async batch(store) {
    say('ready')
    for (let n = 0; ; n++) {
      const descs = Array.from({ length: 5 + Math.floor(Math.random() * 36) }, () => {
        const desc = newJobDescription({ jobName: `batched-${n}` })
        store.assignID(desc)
        fillJob(desc, 200 + Math.floor(Math.random() * 20_000))
        return desc
      })
      say(`start batch ${n} ${descs.map((d) => d.jobStoreID).join(',')}`)
      await store.batch(async () => {
        for (const desc of descs) await store.create(desc)
      })
      say(`done batch ${n}`)
    }
  },

  /**
   * Adds 1 to the number in shared file `args.shared` and to `extra.count` of job `args.job`, `args.count` times
   * each (the two loops run together), by compare-and-swap, retrying on conflicts.
   */
  async increment(store, args) {
    const count = Number(args['count'])
    await waitUntil(args['startAt'])
    const backoff = (attempt: number): Promise<void> =>
      new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)))
    const shared = async (): Promise<number> => {
      const name = args['shared'] as string
      let conflicts = 0
      for (let i = 0; i < count; i++) {
        for (let attempt = 0; ; attempt++) {
          const stream = await store.readSharedFileStream(name, { encoding: 'utf8' })
          let text = ''
          for await (const part of stream) text += part as string
          try {
            await store.writeSharedFileStream(name, (w) => void w.end(String(Number(text) + 1)), { ifVersion: stream.version })
            break
          } catch (err) {
            if (!(err instanceof ConcurrentFileModificationError)) throw err
            conflicts++
            await backoff(attempt)
          }
        }
      }
      return conflicts
    }
    const job = async (): Promise<number> => {
      const id = args['job'] as string
      let conflicts = 0
      for (let i = 0; i < count; i++) {
        for (let attempt = 0; ; attempt++) {
          const desc = await store.load(id)
          desc.extra['count'] = Number(desc.extra['count'] ?? 0) + 1
          try {
            await store.update(desc, { ifVersion: desc.version })
            break
          } catch (err) {
            if (!(err instanceof ConcurrentFileModificationError)) throw err
            conflicts++
            await backoff(attempt)
          }
        }
      }
      return conflicts
    }
    const [sharedConflicts, jobConflicts] = await Promise.all([shared(), job()])
    say(`conflicts ${sharedConflicts} ${jobConflicts}`)
    say('done')
  },
  /** Writes `args.count` stats messages `<args.prefix><n>`, then the shared file `writer-done`. */
  async 'write-stats'(store, args) {
    await waitUntil(args['startAt'])
    for (let i = 0; i < Number(args['count']); i++) await store.writeStatsAndLogging(`${String(args['prefix'])}${i}`)
    await store.writeSharedFileStream('writer-done', (w) => void w.end('yes'))
    say('done')
  },
  /**
   * Reads stats messages in rounds until the writer is done and a round after that finds none; prints each
   * message it was handed as `msg <text>`.
   */
  async 'read-stats'(store, args) {
    await waitUntil(args['startAt'])
    let rounds = 0
    for (;;) {
      rounds++
      const writerDone = await store.readSharedFileStream('writer-done').then(
        (stream) => (stream.destroy(), true),
        () => false,
      )
      const got = await store.readStatsAndLogging((text) => say(`msg ${text}`))
      if (writerDone && got === 0) break
    }
    say(`rounds ${rounds}`)
    say('done')
  },
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '{}') as WorkerRequest
  const scenario = scenarios[request.scenario]
  if (scenario === undefined) throw new Error(`worker: unknown scenario ${request.scenario}`)
  const store = await openJobStore(request.locator, (request.options ?? {}) as JobStoreOptions)
  await store.resume()
  await scenario(store, request.args ?? {})
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
