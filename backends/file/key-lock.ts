/**
 * Per-key locks of the file backend, between processes and hosts (NFS included), at the cost of two system calls.
 *
 * A lock is a symbolic link `<key>~lock` whose target names its holder:
 * `jl1:<host>:<pid>:<kernel>:<ms>:<nonce>` (`<kernel>`: boot ID and pid namespace, see KERNEL_TAG). Under 60
 * bytes, so that ext4 keeps it in the inode (a "fast" symlink: no data block to allocate and free).
 * - Taking it is one `symlink(2)`, which fails with EEXIST when the name exists: exclusive on local file systems
 *   and on NFS (one SYMLINK call, decided by the server), and the holder's name is there from the first moment (a
 *   file made with O_EXCL would be empty until written). Releasing it is one `unlink(2)`. No timer, no refresh, no
 *   stat: the uncontended path is those two calls.
 * - NFS: a SYMLINK resent after a lost answer fails with EEXIST on our own lock; its target is our nonce: taken.
 * - A lock whose holder died is broken (STALE_MS is the bound):
 *   - at once when the holder was a process of this kernel and pid namespace that no longer exists (or of this
 *     very process, no longer holding it);
 *   - otherwise once a waiter has seen the same lock (same target) for STALE_MS on its own monotonic clock. No
 *     clock of another host is read, so clock differences between hosts do not matter. `clean()` cannot wait: it
 *     compares the lock's mtime with that of a file it has just made (both the file server's clock).
 * - Breaking cannot remove a lock taken meanwhile by a live process: the breaker takes a second lock,
 *   `<key>~lock~break`, the same way, checks that the lock is still the one it judged stale, and only then removes
 *   it. A break lock is held for two system calls; one left by a dead breaker is removed by the same rules,
 *   without a third lock.
 * - What the bound assumes: a holder holds the lock for a few system calls (stat, rename, unlink). One stopped for
 *   longer than STALE_MS (SIGSTOP, a suspended VM, an NFS server gone that long) can be judged dead and its lock
 *   broken while it still acts; such a holder checks its lock before it commits (KeyLock.check) and before it
 *   releases, which narrows that case to the moment between the check and the commit.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { rmdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { debuglog } from 'node:util'
import { JobStoreError } from '../../src/errors.js'
import { randomId } from '../../src/ids.js'
import { lstat, type MetadataCalls } from './fs-calls.js'

const log = debuglog('jobstore:file')

/** Suffix of a key's lock; `~` keeps it out of listings. */
export const LOCK_SUFFIX = '~lock'
/** Suffix of the lock that guards breaking a key's stale lock. */
export const BREAK_SUFFIX = '~lock~break'
/** A lock seen unchanged for this long, by a waiter's own clock or by the file server's in clean(), is stale. */
export const STALE_MS = 10_000
/** A waiter gives up after this long without the lock (a live holder that never lets go). */
const GIVE_UP_MS = 3 * STALE_MS
const TARGET_PREFIX = 'jl1:'

/** This host's name in temporary file names and locks: letters and digits, at most 32. */
export const HOST_TAG = hostname().replace(/[^A-Za-z0-9]/g, '').slice(0, 32) || 'host'

/**
 * This kernel boot and pid namespace (Linux: boot ID and the namespace's inode, hashed to 12 hex digits), or ''
 * where unknown. A pid means the same process only between processes that share both; the host name alone does
 * not (containers, clones).
 */
const KERNEL_TAG = (() => {
  try {
    const boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    const ns = /\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/pid'))?.[1]
    return boot !== '' && ns !== undefined ? createHash('sha256').update(`${boot}/${ns}`).digest('hex').slice(0, 12) : ''
  } catch {
    return ''
  }
})()

/** Targets of the locks this process holds now: one of ours that is not among them is stale. */
const held = new Set<string>()

function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '')
}

/** Whether the process `pid` of this kernel and pid namespace exists (true when that cannot be told). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return !isErrno(err, 'ESRCH')
  }
}

function newTarget(): string {
  return `${TARGET_PREFIX}${HOST_TAG.slice(0, 10)}:${process.pid}:${KERNEL_TAG}:${Date.now().toString(36)}:${randomId().slice(0, 12)}`
}

/** Whether the lock `target` names a holder known to be gone: a process of this kernel that no longer holds it. */
function holderGone(target: string): boolean {
  if (KERNEL_TAG === '' || !target.startsWith(TARGET_PREFIX)) return false
  const [, pid, kernel] = target.slice(TARGET_PREFIX.length).split(':')
  if (kernel !== KERNEL_TAG) return false
  if (Number(pid) === process.pid) return !held.has(target)
  return !processAlive(Number(pid))
}

/**
 * What is at a lock's name: the symlink's target, or for anything else (a lock folder of a release that used
 * proper-lockfile, which refreshes its mtime while held; something planted) its inode and mtime; undefined when
 * nothing is there.
 */
async function lockAt(path: string, calls: MetadataCalls): Promise<string | undefined> {
  try {
    return await calls.readlink(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined
    if (!isErrno(err, 'EINVAL')) throw err
  }
  const info = await lstat(path, { bigint: true }).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined
    throw err
  })
  return info === undefined ? undefined : `entry:${info.ino}:${info.mtimeNs}`
}

/** Removes what is at a lock's name: unlinked (a link itself, never its target), or removed as an empty folder. */
async function removeLock(path: string, calls: MetadataCalls): Promise<void> {
  try {
    await calls.unlink(path)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return
    if (!isErrno(err, 'EISDIR', 'EPERM')) throw err
    await rmdir(path).catch((e: unknown) => {
      if (!isErrno(e, 'ENOENT')) throw new JobStoreError(`cannot break the stale lock ${path}`, { cause: e })
    })
  }
}

/** When each lock target was first seen by one waiter (its monotonic clock). */
type Sightings = Map<string, number>

function seenFor(target: string, sightings: Sightings): number {
  const now = performance.now()
  const first = sightings.get(target)
  if (first === undefined) {
    sightings.set(target, now)
    return 0
  }
  return now - first
}

/**
 * Removes the lock at `path` if it is still `judged` (found stale), under its break lock. True when the lock is
 * gone; false when another breaker is at it (or its break lock is not stale yet).
 */
async function breakLock(path: string, judged: string, calls: MetadataCalls, sightings: Sightings): Promise<boolean> {
  const breakPath = `${path.slice(0, -LOCK_SUFFIX.length)}${BREAK_SUFFIX}`
  const target = newTarget()
  held.add(target) // before the symlink: a racer of this process that reads it must find it held
  try {
    await calls.symlink(target, breakPath)
  } catch (err) {
    held.delete(target)
    if (!isErrno(err, 'EEXIST')) throw err
    // Another breaker is at it, for two system calls; or died there: then removed if still that one.
    const other = await lockAt(breakPath, calls)
    if (other !== undefined && (holderGone(other) || seenFor(other, sightings) >= STALE_MS) && (await lockAt(breakPath, calls)) === other) {
      log('breaking the stale break lock %s (%s)', breakPath, other)
      await removeLock(breakPath, calls)
    }
    return false
  }
  try {
    if ((await lockAt(path, calls)) !== judged) return true
    log('breaking the stale lock %s (%s)', path, judged)
    await removeLock(path, calls)
    return true
  } finally {
    await calls.unlink(breakPath).catch((err: unknown) => log('releasing %s: %s', breakPath, (err as Error).message))
    held.delete(target)
  }
}

/** A key's lock, held. */
export interface KeyLock {
  /**
   * Throws if the lock is no longer this holder's: only possible once it has been held longer than the stale bound
   * (then broken by a waiter). No system call before that.
   */
  check(): Promise<void>
  /** Releases the lock (if it is still this holder's). */
  release(): Promise<void>
}

/**
 * Takes the lock of the file at `path` (`<path>~lock`), waiting for a live holder (with backoff, up to
 * GIVE_UP_MS) and breaking a dead one's. ENOENT when the folder is missing.
 */
export async function lockKey(path: string, calls: MetadataCalls): Promise<KeyLock> {
  const lockPath = `${path}${LOCK_SUFFIX}`
  const target = newTarget()
  let sightings: Sightings | undefined
  let started: number | undefined
  // Held from before the symlink on: a racer of this process may read the target before this call's completion
  // comes back, and must not take it for a lock this process left behind.
  held.add(target)
  for (let attempt = 0; ; attempt++) {
    try {
      await calls.symlink(target, lockPath)
      return heldLock(lockPath, target, calls)
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) {
        held.delete(target)
        throw err
      }
    }
    let holder: string | undefined
    try {
      holder = await lockAt(lockPath, calls)
      if (holder === target) return heldLock(lockPath, target, calls) // our SYMLINK, resent by NFS after a lost answer
      started ??= performance.now()
      sightings ??= new Map()
      if (holder === undefined) continue // released meanwhile
      if ((holderGone(holder) || seenFor(holder, sightings) >= STALE_MS) && (await breakLock(lockPath, holder, calls, sightings))) continue
    } catch (err) {
      held.delete(target)
      throw err
    }
    if (performance.now() - started > GIVE_UP_MS) {
      held.delete(target)
      throw new JobStoreError(`cannot lock ${path}: held by ${holder} for longer than ${GIVE_UP_MS / 1000} s`)
    }
    // Backoff with jitter: 1 ms, growing to 50 ms, so that racing processes spread out.
    await sleep(Math.min(50, 1.5 ** attempt) * (0.5 + Math.random()))
  }
}

/** The lock just taken (its target is in `held` already). */
function heldLock(lockPath: string, target: string, calls: MetadataCalls): KeyLock {
  const since = performance.now()
  const mayBeBroken = (): boolean => performance.now() - since > STALE_MS / 2
  return {
    async check() {
      if (mayBeBroken() && (await lockAt(lockPath, calls)) !== target) {
        throw new JobStoreError(`lost the lock ${lockPath}: held for longer than ${STALE_MS / 1000} s and broken by another process`)
      }
    },
    async release() {
      try {
        if (mayBeBroken() && (await lockAt(lockPath, calls)) !== target) {
          log('lock %s was broken while held (held for longer than %d ms)', lockPath, STALE_MS)
          return
        }
        await calls.unlink(lockPath)
      } catch (err) {
        // Left behind, it is stale at once for this process and for any other on this host, else after STALE_MS.
        if (!isErrno(err, 'ENOENT')) log('releasing the lock %s: %s', lockPath, (err as Error).message)
      } finally {
        held.delete(target)
      }
    },
  }
}

/**
 * clean()'s sweep: removes the lock (or break lock) at `path` if stale, judged without waiting: its holder is
 * gone (holderGone), or its mtime is STALE_MS or more before `serverNowMs`, the mtime of a file just made in the
 * store (the file server's clock, as the lock's). True when it removed it.
 */
export async function removeStaleLock(path: string, calls: MetadataCalls, serverNowMs: number): Promise<boolean> {
  const holder = await lockAt(path, calls)
  if (holder === undefined) return false
  let stale = holderGone(holder)
  if (!stale) {
    const info = await lstat(path).catch(() => undefined)
    stale = info !== undefined && serverNowMs - info.mtimeMs >= STALE_MS
  }
  if (!stale) return false
  if (path.endsWith(BREAK_SUFFIX)) {
    if ((await lockAt(path, calls)) !== holder) return false
    await removeLock(path, calls)
    return true
  }
  return breakLock(path, holder, calls, new Map())
}
