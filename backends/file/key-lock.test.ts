/**
 * The file backend's per-key locks (key-lock.ts), on a real folder: what an operation pays for its lock (counted
 * calls, not time), that a held lock excludes what it must and nothing else, and how locks of dead holders go.
 * Between processes and after a killed holder: reliability-tests/races-file.test.ts and crashes-file.test.ts.
 */
import { spawnSync } from 'node:child_process'
import { lstatSync, lutimesSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { keys } from '../../src/ids.js'
import { newJobDescription } from '../../src/job-description.js'
import { FileJobStore } from './file-job-store.js'
import { directCalls, threadPoolCalls } from './fs-calls.js'
import { LOCK_SUFFIX, lockKey } from './key-lock.js'

const base = mkdtempSync(join(tmpdir(), 'jobstore-key-lock-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))
afterEach(() => void vi.restoreAllMocks())

let counter = 0
async function newStore(): Promise<FileJobStore> {
  const store = new FileJobStore(`file:${join(base, `store-${++counter}`)}`, { directCalls: true })
  await store.initialize()
  return store
}

async function text(stream: AsyncIterable<unknown>): Promise<string> {
  let out = ''
  for await (const part of stream) out += String(part)
  return out
}

/** Whether `promise` is still pending after a while (it waits on a lock). */
async function stillWaiting(promise: Promise<unknown>): Promise<boolean> {
  promise.catch(() => {})
  const pending = Symbol('pending')
  return (await Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(pending), 300))])) === pending
}

/** A lock target as another holder's: this format with fields replaced (1: host, 2: pid, 3: kernel). */
async function plantedTarget(path: string, change: Record<number, string>): Promise<string> {
  const lock = await lockKey(path, directCalls)
  const target = readlinkSync(`${path}${LOCK_SUFFIX}`)
  // Under 60 bytes: ext4 keeps the link in its inode (no data block to allocate and free per lock).
  expect(target.length).toBeLessThan(60)
  const fields = target.split(':')
  await lock.release()
  for (const [index, value] of Object.entries(change)) fields[Number(index)] = value
  return fields.join(':')
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', ''])
  return result.pid as number
}

describe('file backend: per-key locks', () => {
  it('a replace, a compare-and-swap and a delete each take the lock with one symlink and drop it with one unlink: no timer, no folder, nothing left; creates and reads take none', async () => {
    const store = await newStore()
    // The lock's calls go through the thread pool (threadPoolCalls), as other writes.
    const symlinks = vi.spyOn(threadPoolCalls, 'symlink')
    const unlinks = vi.spyOn(threadPoolCalls, 'unlink')
    const timers = vi.spyOn(globalThis, 'setTimeout')
    const lockCalls = () => ({
      symlink: symlinks.mock.calls.filter(([, path]) => path.endsWith(LOCK_SUFFIX)).length,
      unlink: unlinks.mock.calls.filter(([path]) => path.endsWith(LOCK_SUFFIX)).length,
    })
    const job = newJobDescription({ jobName: 'locked' })
    store.assignID(job)
    await store.create(job)
    await store.load(job.jobStoreID as string)
    const fileID = await store.writeFileStream((w) => void w.end('x'))
    expect(lockCalls(), 'create, load and a new file take no lock').toEqual({ symlink: 0, unlink: 0 })

    await store.update(job)
    expect(lockCalls(), 'unconditional update').toEqual({ symlink: 1, unlink: 1 })
    await store.update(job, { ifVersion: job.version })
    expect(lockCalls(), 'compare-and-swap').toEqual({ symlink: 2, unlink: 2 })
    await store.updateFileStream(fileID, (w) => void w.end('y'))
    expect(lockCalls(), 'file replace').toEqual({ symlink: 3, unlink: 3 })
    await store.deleteFile(fileID)
    expect(lockCalls(), 'file delete').toEqual({ symlink: 4, unlink: 4 })
    expect(timers, 'the uncontended lock sets no timer').not.toHaveBeenCalled()

    // Nothing beside the keys but the keys (and the files' digest sidecars): no lock entry left, no lock folder.
    const left: string[] = []
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.name.includes(LOCK_SUFFIX)) left.push(join(dir, entry.name))
        if (entry.isDirectory()) walk(join(dir, entry.name))
      }
    }
    walk(store.root)
    expect(left).toEqual([])
    await store.destroy()
  })

  it('a live holder’s lock makes replaces, compare-and-swaps and deletes of its key wait until released; reads, creates and other keys go on', async () => {
    const store = await newStore()
    const job = newJobDescription({ jobName: 'held' })
    store.assignID(job)
    await store.create(job)
    await store.writeSharedFileStream('held', (w) => void w.end('0'))
    await store.writeSharedFileStream('other', (w) => void w.end('0'))
    const read = await store.readSharedFileStream('held', { encoding: 'utf8' })
    expect(await text(read)).toBe('0')
    const lock = await lockKey(join(store.root, 'shared', 'held'), directCalls)

    const replace = store.writeSharedFileStream('held', (w) => void w.end('1'))
    const swap = store.writeSharedFileStream('held', (w) => void w.end('2'), { ifVersion: read.version })
    expect(await stillWaiting(replace), 'the replace waits').toBe(true)
    expect(await stillWaiting(swap), 'the compare-and-swap waits').toBe(true)
    // Meanwhile: the key reads (the old content), other keys are written, new objects created.
    expect(await text(await store.readSharedFileStream('held', { encoding: 'utf8' }))).toBe('0')
    await store.writeSharedFileStream('other', (w) => void w.end('1'))
    await store.writeSharedFileStream('new', (w) => void w.end('1'), { ifAbsent: true })
    await store.update(job)
    await lock.release()
    await replace
    // The compare-and-swap went second or first: either way one content won, whole.
    const settled = await swap.then(() => 'swapped', (err: Error) => err.name)
    expect(['swapped', 'ConcurrentFileModificationError']).toContain(settled)
    expect(['1', '2']).toContain(await text(await store.readSharedFileStream('held', { encoding: 'utf8' })))

    const fileID = await store.writeFileStream((w) => void w.end('x'))
    const relock = await lockKey(join(store.root, ...keys.file(fileID).split('/')), directCalls)
    const deletion = store.deleteFile(fileID)
    expect(await stillWaiting(deletion), 'the delete waits').toBe(true)
    expect(await store.fileExists(fileID)).toBe(true)
    await relock.release()
    await deletion
    expect(await store.fileExists(fileID)).toBe(false)
    await store.destroy()
  })

  it('a lock left by a process of this host that is gone, or by this process no longer holding it, is broken by the next writer', async () => {
    const store = await newStore()
    for (const [name, change] of [
      ['dead', { 2: String(deadPid()) }],
      ['own', {}],
    ] as const) {
      await store.writeSharedFileStream(name, (w) => void w.end('0'))
      const path = join(store.root, 'shared', name)
      symlinkSync(await plantedTarget(path, change), `${path}${LOCK_SUFFIX}`)
      await store.writeSharedFileStream(name, (w) => void w.end('1'))
      expect(await text(await store.readSharedFileStream(name, { encoding: 'utf8' })), name).toBe('1')
      expect(() => lstatSync(`${path}${LOCK_SUFFIX}`), name).toThrow(/ENOENT/)
    }
    await store.destroy()
  })

  it('clean() removes locks of gone holders and of other hosts’ older than the stale bound by the file server’s clock; keeps fresh and live ones', async () => {
    const store = await newStore()
    const root = newJobDescription({ jobName: 'root' })
    store.assignID(root)
    await store.createRootJob(root) // clean() needs one
    const paths: Record<string, string> = {}
    for (const name of ['dead', 'old', 'fresh', 'live']) {
      await store.writeSharedFileStream(name, (w) => void w.end('0'))
      paths[name] = join(store.root, 'shared', name)
    }
    const otherHost = { 1: 'otherhost', 3: '000000000000' }
    symlinkSync(await plantedTarget(paths['dead'] as string, { 2: String(deadPid()) }), `${paths['dead']}${LOCK_SUFFIX}`)
    symlinkSync(await plantedTarget(paths['old'] as string, otherHost), `${paths['old']}${LOCK_SUFFIX}`)
    const minuteAgo = new Date(Date.now() - 60_000)
    lutimesSync(`${paths['old']}${LOCK_SUFFIX}`, minuteAgo, minuteAgo)
    symlinkSync(await plantedTarget(paths['fresh'] as string, otherHost), `${paths['fresh']}${LOCK_SUFFIX}`)
    const live = await lockKey(paths['live'] as string, directCalls)
    let removed = 0
    await store.clean(undefined, { onReport: (report) => void (removed += report.leftoversRemoved) })
    const exists = (name: string): boolean => readdirSync(join(store.root, 'shared')).includes(`${name}${LOCK_SUFFIX}`)
    expect({ dead: exists('dead'), old: exists('old'), fresh: exists('fresh'), live: exists('live') }).toEqual({
      dead: false,
      old: false,
      fresh: true,
      live: true,
    })
    expect(removed).toBe(2)
    await live.release()
    await store.destroy()
  })
})
