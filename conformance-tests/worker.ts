/**
 * Child-process worker for the conformance suite: a separate process (as a worker on another host would be)
 * opens the store by locator and runs one scenario. Usage: `node worker.js '{"scenario":…,"args":…}'`.
 * Prints results on stdout, one line each; exits non-zero on unexpected errors.
 */
import { pathToFileURL } from 'node:url'
import { isAbsolute } from 'node:path'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { ConcurrentFileModificationError } from '../src/errors.js'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import type { JobDescription } from '../src/job-description.js'

interface Request {
  scenario: string
  args: Record<string, unknown>
  setupModule?: string
}

const request = JSON.parse(process.argv[2] ?? '{}') as Request
const args = request.args

function arg<T>(name: string): T {
  if (!(name in args)) throw new Error(`worker: missing argument ${name}`)
  return args[name] as T
}

async function waitUntil(startAt: number): Promise<void> {
  const wait = startAt - Date.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
}

async function readText(store: AbstractJobStore, name: string): Promise<{ text: string; version: string }> {
  const stream = await store.readSharedFileStream(name, { encoding: 'utf8' })
  let text = ''
  for await (const part of stream) text += part as string
  return { text, version: stream.version }
}

const scenarios: Record<string, (store: AbstractJobStore) => Promise<void>> = {
  /** Creates the job `job` (a JSON description with an assigned ID) once `startAt` comes; prints won or lost. */
  async 'create-race'(store) {
    const desc = arg<JobDescription>('job')
    await waitUntil(arg<number>('startAt'))
    try {
      await store.create(desc)
      console.log('won')
    } catch (err) {
      if (err instanceof ConcurrentFileModificationError) console.log('lost')
      else throw err
    }
  },
  /** Adds 1 to the number in shared file `name`, `count` times, by compare-and-swap with retries. */
  async 'increment-shared'(store) {
    const name = arg<string>('name')
    await waitUntil(arg<number>('startAt'))
    let conflicts = 0
    for (let i = 0; i < arg<number>('count'); i++) {
      for (;;) {
        const { text, version } = await readText(store, name)
        try {
          await store.writeSharedFileStream(name, (w) => void w.end(String(Number(text) + 1)), { ifVersion: version })
          break
        } catch (err) {
          if (!(err instanceof ConcurrentFileModificationError)) throw err
          conflicts++
        }
      }
    }
    console.log(`conflicts ${conflicts}`)
    console.log('done')
  },
  /** Adds 1 to `extra.count` of job `jobID`, `count` times, by `update(desc, { ifVersion })` with retries. */
  async 'increment-job'(store) {
    const id = arg<string>('jobID')
    await waitUntil(arg<number>('startAt'))
    for (let i = 0; i < arg<number>('count'); i++) {
      for (;;) {
        const desc = await store.load(id)
        desc.extra['count'] = Number(desc.extra['count'] ?? 0) + 1
        try {
          await store.update(desc, { ifVersion: desc.version })
          break
        } catch (err) {
          if (!(err instanceof ConcurrentFileModificationError)) throw err
        }
      }
    }
    console.log('done')
  },
  /** Reads stats messages once `startAt` comes; prints each message on its own line, prefixed with `msg `. */
  async 'read-stats'(store) {
    await waitUntil(arg<number>('startAt'))
    const seen: string[] = []
    await store.readStatsAndLogging((text) => {
      seen.push(text)
    })
    for (const text of seen) console.log(`msg ${text}`)
    console.log('done')
  },
  /**
   * Starts replacing file `fileID` (or shared file `shared`, or writing a new file) with a slow stream that never
   * ends; prints `writing` once bytes have gone out, so the parent can SIGKILL it mid-write.
   */
  async 'slow-writer'(store) {
    const chunk = Buffer.alloc(256 * 1024, 0x78)
    const body = async (w: NodeJS.WritableStream): Promise<void> => {
      let sent = 0
      for (;;) {
        if (!w.write(chunk)) await new Promise((resolve) => w.once('drain', resolve))
        sent += chunk.length
        if (sent >= arg<number>('announceAfter')) console.log('writing')
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    if ('fileID' in args) await store.updateFileStream(arg<string>('fileID'), body)
    else if ('shared' in args) await store.writeSharedFileStream(arg<string>('shared'), body)
    else await store.writeFileStream(body)
  },
  /** Updates job `jobID` in a loop forever, printing `updating` after the first update. */
  async 'job-updater'(store) {
    const id = arg<string>('jobID')
    let n = 0
    for (;;) {
      const desc = await store.load(id)
      desc.extra['payload'] = 'y'.repeat(200_000 + (n % 7) * 1000)
      desc.extra['n'] = ++n
      await store.update(desc)
      if (n === 1) console.log('updating')
    }
  },
}

async function main(): Promise<void> {
  if (request.setupModule !== undefined) {
    const setup = request.setupModule
    await import(isAbsolute(setup) ? pathToFileURL(setup).href : setup)
  }
  const scenario = scenarios[request.scenario]
  if (scenario === undefined) throw new Error(`worker: unknown scenario ${request.scenario}`)
  const store = await openJobStore(arg<string>('locator'))
  await store.resume()
  await scenario(store)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
