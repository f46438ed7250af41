/**
 * The child process of the conformance suite and of the reliability tests (started by processes.ts), as a worker on
 * another host would be: it imports the request's `setupModule`, opens and resumes the store by locator, and runs one
 * scenario. Usage: `node worker.js '{"scenario":…,"locator":…,"options":{…},"args":{…},"setupModule":…}'`.
 * Prints its results on stdout, one line each; exits non-zero on an unexpected error.
 *
 * The writers that run until they are killed (`*-writes`, `job-updates`, `batch`) print `ready`, then announce each
 * write before it starts (`start <kind> <target> <content>`) and when it is done (`done <kind> <target> <content>`);
 * `content` is the digest of what is written, and every payload verifies itself (payloads.ts), so that the parent
 * can tell a whole object from a partial one whatever it finds.
 */
import { mkdtemp, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { tmpdir } from 'node:os'
import { pathToFileURL } from 'node:url'
import type { AbstractJobStore, JobStoreOptions } from '../src/abstract-job-store.js'
import { ConcurrentFileModificationError } from '../src/errors.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { fillJob, selfChecking } from './payloads.js'
import type { WorkerRequest } from './processes.js'

type Args = Record<string, unknown>

function arg<T>(args: Args, name: string): T {
  if (!(name in args)) throw new Error(`worker: missing argument ${name}`)
  return args[name] as T
}

/** One of `items`, at random. */
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T

function say(line: string): void {
  process.stdout.write(`${line}\n`)
}

/** Processes started together begin together: node and the SDK take a moment to start. */
async function waitUntil(startAt: unknown): Promise<void> {
  const wait = Number(startAt) - Date.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
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

/** Sizes of the payloads of a killed writer: mostly small, some over one or two upload parts. */
function sizes(partSize: number): number[] {
  return [100, 20_000, 150_000, 64 * 1024, 3000, partSize + 1000, partSize * 2 + 12_345]
}

/** Retries `attempt` on ConcurrentFileModificationError, with a short random backoff; returns the conflicts. */
async function compareAndSwap(attempt: () => Promise<void>): Promise<number> {
  for (let conflicts = 0; ; conflicts++) {
    try {
      await attempt()
      return conflicts
    } catch (err) {
      if (!(err instanceof ConcurrentFileModificationError)) throw err
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** conflicts)))
    }
  }
}

const scenarios: Record<string, (store: AbstractJobStore, args: Args) => Promise<void>> = {
  /** Creates the job `args.job` (a JSON description with an assigned ID) once `startAt` comes; prints won or lost. */
  async 'create-race'(store, args) {
    const desc = arg<JobDescription>(args, 'job')
    await waitUntil(arg(args, 'startAt'))
    try {
      await store.create(desc)
      say('won')
    } catch (err) {
      if (err instanceof ConcurrentFileModificationError) say('lost')
      else throw err
    }
  },
  /**
   * Adds 1 to the number in shared file `args.shared` and/or to `extra.count` of job `args.job`, `args.count` times
   * each (the two loops run together), by compare-and-swap (`ifVersion`), retrying on conflicts. Prints
   * `conflicts <shared> <job>` and `done`.
   */
  async increment(store, args) {
    const count = arg<number>(args, 'count')
    await waitUntil(arg(args, 'startAt'))
    const shared = async (name: string): Promise<number> => {
      let conflicts = 0
      for (let i = 0; i < count; i++) {
        conflicts += await compareAndSwap(async () => {
          const stream = await store.readSharedFileStream(name, { encoding: 'utf8' })
          let text = ''
          for await (const part of stream) text += part as string
          await store.writeSharedFileStream(name, (w) => void w.end(String(Number(text) + 1)), { ifVersion: stream.version })
        })
      }
      return conflicts
    }
    const job = async (id: string): Promise<number> => {
      let conflicts = 0
      for (let i = 0; i < count; i++) {
        conflicts += await compareAndSwap(async () => {
          const desc = await store.load(id)
          desc.extra['count'] = Number(desc.extra['count'] ?? 0) + 1
          await store.update(desc, { ifVersion: desc.version })
        })
      }
      return conflicts
    }
    const [sharedConflicts, jobConflicts] = await Promise.all([
      'shared' in args ? shared(arg(args, 'shared')) : 0,
      'job' in args ? job(arg(args, 'job')) : 0,
    ])
    say(`conflicts ${sharedConflicts} ${jobConflicts}`)
    say('done')
  },
  /** Writes `args.count` stats messages `<args.prefix><n>`, then the shared file `writer-done`. */
  async 'write-stats'(store, args) {
    await waitUntil(arg(args, 'startAt'))
    for (let i = 0; i < arg<number>(args, 'count'); i++) await store.writeStatsAndLogging(`${arg<string>(args, 'prefix')}${i}`)
    await store.writeSharedFileStream('writer-done', (w) => void w.end('yes'))
    say('done')
  },
  /**
   * Reads stats messages in rounds until a round finds none (with `args.untilWriterDone`, a round after the shared
   * file `writer-done` of `write-stats` exists); prints each message it was handed as `msg <text>`, then
   * `rounds <n>` and `done`.
   */
  async 'read-stats'(store, args) {
    await waitUntil(arg(args, 'startAt'))
    let rounds = 0
    for (;;) {
      rounds++
      const writerDone =
        args['untilWriterDone'] !== true ||
        (await store.readSharedFileStream('writer-done').then(
          (stream) => (stream.destroy(), true),
          () => false,
        ))
      const got = await store.readStatsAndLogging((text) => say(`msg ${text}`))
      if (writerDone && got === 0) break
    }
    say(`rounds ${rounds}`)
    say('done')
  },
  /**
   * Starts replacing file `args.fileID` (or shared file `args.shared`, or writing a new file) with a slow stream
   * that never ends; prints `writing` once `args.announceAfter` bytes have gone out, for the parent to kill it.
   */
  async 'slow-writer'(store, args) {
    const chunk = Buffer.alloc(256 * 1024, 0x78)
    const body = async (w: NodeJS.WritableStream): Promise<void> => {
      let sent = 0
      for (;;) {
        if (!w.write(chunk)) await new Promise((resolve) => w.once('drain', resolve))
        sent += chunk.length
        if (sent >= arg<number>(args, 'announceAfter')) say('writing')
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    if ('fileID' in args) await store.updateFileStream(arg(args, 'fileID'), body)
    else if ('shared' in args) await store.writeSharedFileStream(arg(args, 'shared'), body)
    else await store.writeFileStream(body)
  },
  /** writeFile of local files, over and over (sizes around `args.partSize`). */
  async 'file-writes'(store, args) {
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-crash-'))
    const local: { path: string; digest: string }[] = []
    for (const [i, size] of sizes(arg<number>(args, 'partSize')).entries()) {
      const { data, digest } = selfChecking(size)
      const path = join(dir, `input-${i}.bin`)
      await writeFile(path, data)
      local.push({ path, digest })
    }
    // This process is killed: the parent removes the folder (the line names it).
    say(`scratch ${dir}`)
    say('ready')
    for (;;) {
      const { path, digest } = pick(local)
      say(`start file - ${digest}`)
      const id = await store.writeFile(path)
      say(`done file ${id} ${digest}`)
    }
  },
  /** writeFileStream of new files and updateFileStream of the files in `args.files`, over and over. */
  async 'stream-writes'(store, args) {
    const files = arg<string[]>(args, 'files')
    const payloads = sizes(arg<number>(args, 'partSize')).map((size) => selfChecking(size))
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
    const names = arg<string[]>(args, 'names')
    const payloads = sizes(arg<number>(args, 'partSize')).map((size) => selfChecking(size))
    say('ready')
    for (;;) {
      const { data, digest } = pick(payloads)
      const name = pick(names)
      say(`start shared ${name} ${digest}`)
      await store.writeSharedFileStream(name, (w) => writeInPieces(w, data), { isProtected: Math.random() < 0.5 })
      say(`done shared ${name} ${digest}`)
    }
  },
  /** update() of the jobs in `args.jobs` with self-checking payloads of 1 KB to 300 KB, over and over. */
  async 'job-updates'(store, args) {
    const jobs = await Promise.all(arg<string[]>(args, 'jobs').map((id) => store.load(id)))
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
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '{}') as WorkerRequest
  const setup = request.setupModule
  if (setup !== undefined) await import(isAbsolute(setup) ? pathToFileURL(setup).href : setup)
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
