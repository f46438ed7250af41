// Writers killed with SIGKILL at random points on the file backend: see crashes.ts. Then a process killed while
// holding a key's lock (backends/file/key-lock.ts): others go on, at once on this host, after the stale bound when
// the holder was on another host.
import { spawn } from 'node:child_process'
import { lstat, readlink, symlink, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { STALE_MS } from '../backends/file/key-lock.js'
import { newJobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { crashTest, lockFolders } from './crashes.js'
import { record } from './figures.js'
import { runWorker } from '../conformance-tests/processes.js'
import { TARGETS } from './targets.js'

crashTest('file')

const INCREMENTS = 10

async function text(stream: AsyncIterable<unknown>): Promise<string> {
  let out = ''
  for await (const part of stream) out += String(part)
  return out
}

/** The built lock module (dist/, made by the global setup as the worker is). */
const KEY_LOCK = new URL('../dist/backends/file/key-lock.js', import.meta.url).href
const FS_CALLS = new URL('../dist/backends/file/fs-calls.js', import.meta.url).href

/**
 * A node process takes the lock of the stored file at `path` as a replace or delete would, says `locked`, and is
 * killed with SIGKILL while it holds it. Resolves the signal that ended it.
 */
async function killedWhileHolding(path: string): Promise<NodeJS.Signals | null> {
  const script = `import { lockKey } from ${JSON.stringify(KEY_LOCK)}
import { directCalls } from ${JSON.stringify(FS_CALLS)}
await lockKey(${JSON.stringify(path)}, directCalls)
console.log('locked')
setInterval(() => {}, 60_000)`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  onTestFinished(() => void child.kill('SIGKILL'))
  const ended = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)))
  await new Promise<void>((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (data: Buffer) => {
      out += data.toString()
      if (out.includes('locked\n')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`the lock holder ended (${code}) before it said locked: ${fileURLToPath(KEY_LOCK)}`)))
  })
  child.kill('SIGKILL')
  return ended
}

describe('crashes: file: a lock holder killed', () => {
  /** A store with a shared counter at 0 and a job, and the lock of the counter held by a process killed since. */
  async function killedHolder() {
    const target = TARGETS.file
    const locator = target.newLocator()
    const root = locator.slice('file:'.length)
    const store = await openJobStore(locator, target.options)
    await store.initialize()
    onTestFinished(() => store.destroy())
    await store.writeSharedFileStream('counter', (w) => void w.end('0'))
    const job = newJobDescription({ jobName: 'counter', extra: { count: 0 } })
    store.assignID(job)
    await store.createRootJob(job) // the root: clean() keeps it
    const counter = join(root, 'shared', 'counter')
    expect(await killedWhileHolding(counter)).toBe('SIGKILL')
    const lock = `${counter}~lock`
    expect((await lstat(lock)).isSymbolicLink(), 'the killed holder left its lock').toBe(true)
    return { target, locator, root, store, job, lock }
  }

  async function increment(t: Awaited<ReturnType<typeof killedHolder>>) {
    const started = Date.now()
    const result = await runWorker({
      scenario: 'increment',
      locator: t.locator,
      options: t.target.options,
      args: { shared: 'counter', job: t.job.jobStoreID, count: INCREMENTS, startAt: 0 },
    })
    expect(result.code, result.stderr).toBe(0)
    expect(await text(await t.store.readSharedFileStream('counter', { encoding: 'utf8' }))).toBe(String(INCREMENTS))
    expect((await t.store.load(t.job.jobStoreID as string)).extra['count']).toBe(INCREMENTS)
    expect(await lockFolders(t.root)).toEqual([])
    return Date.now() - started
  }

  it(`on this host: another process's compare-and-swaps of the key go on at once (the holder is gone), ${INCREMENTS} increments exact`, { timeout: 120_000 }, async () => {
    const t = await killedHolder()
    record('crashes-file-lock-holder-this-host', { increments: INCREMENTS, ms: await increment(t) })
  })

  it(`on another host: clean() keeps the lock while fresh; another process's compare-and-swaps go on once it has been unchanged for ${STALE_MS / 1000} s`, { timeout: 120_000 }, async () => {
    const t = await killedHolder()
    // The same lock as left by a holder on another host (another kernel): its pid says nothing here.
    const fields = (await readlink(t.lock)).split(':')
    fields[1] = 'otherhost'
    fields[3] = '000000000000'
    await unlink(t.lock)
    await symlink(fields.join(':'), t.lock)
    let removed = 0
    await t.store.clean(undefined, { onReport: (report) => void (removed += report.leftoversRemoved) })
    expect(removed).toBe(0)
    expect((await lstat(t.lock)).isSymbolicLink(), 'clean() kept a lock younger than the stale bound').toBe(true)
    record('crashes-file-lock-holder-other-host', { increments: INCREMENTS, staleMs: STALE_MS, ms: await increment(t) })
  })
})
