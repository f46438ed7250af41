/**
 * The file backend: a job store in a local (or shared POSIX) folder.
 *
 * - Atomic, durable writes: a temporary file in `tmp/`, fsync, then `link()` (create-if-absent: fails with
 *   EEXIST, so exactly one of many racing processes wins) or `rename()` (replace), then fsync of the folder.
 * - Compare-and-swap between processes: replacing takes a per-key lock (a `~lock` folder, via proper-lockfile,
 *   which breaks locks of crashed holders by age) around "check the version, rename".
 * - Version token: inode and nanosecond mtime of the stored file; every write makes a new inode.
 * - Layout of the core's keys as folders; no folder grows with the number of jobs beyond ~1/1024 of them.
 */
import { createReadStream, constants as fsConstants, type BigIntStats } from 'node:fs'
import { chmod, copyFile, opendir, readdir, rm, rmdir, symlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { debuglog } from 'node:util'
import lockfile from 'proper-lockfile'
import {
  close,
  fchmod,
  fstat,
  fsync,
  link,
  lstat,
  mkdir,
  open,
  readExactly,
  rename,
  stat,
  unlink,
  withFd,
  writeAll,
} from './fs-calls.js'
import {
  AbstractJobStore,
  type JobStoreOptions,
} from '../../src/abstract-job-store.js'
import { forEachConcurrent, throwIfAborted } from '../../src/concurrency.js'
import { InvalidArgumentError, JobStoreError } from '../../src/errors.js'
import { randomId } from '../../src/ids.js'
import {
  objectReadOf,
  ObjectNotFoundError,
  PreconditionFailedError,
  type IoOptions,
  type ListedObject,
  type ObjectInfo,
  type ObjectRead,
  type PutOptions,
} from '../../src/storage.js'

const log = debuglog('jobstore:file')

/** Options of the file backend. */
export interface FileJobStoreOptions extends JobStoreOptions {
  /** fsync files and folders on every write (default true). Off trades durability on power loss for speed. */
  readonly durable?: boolean
  /** Mode of stored files (default 0o600; executables get the owner's execute bit too). */
  readonly fileMode?: number
  /** Mode of the store's folders (default 0o700). */
  readonly dirMode?: number
}

/** Top-level entries the store owns: `destroy()` removes these and nothing else in the folder. */
const OWNED_ENTRIES = ['config.json', 'meta', 'jobs', 'files', 'shared', 'stats', 'tmp']
const TEMP_DIR = 'tmp'
const LOCK_SUFFIX = '~lock'
const COALESCE_BYTES = 256 * 1024
/** Objects up to this size are read whole in one call (no read stream); larger ones are streamed. */
const SMALL_READ_BYTES = 256n * 1024n
/** Errors on which a hard link cannot be made and a copy is the answer. */
const CANNOT_LINK = new Set(['EXDEV', 'EMLINK', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES', 'ENOSYS'])
const HOST_TAG = hostname().replace(/[^A-Za-z0-9]/g, '').slice(0, 32) || 'host'

/** Parses `file:/abs`, `file:///abs`, `file:./rel` or a bare path into an absolute folder. */
export function parseFileLocator(locator: string): string {
  let path: string
  if (locator.startsWith('file://')) {
    try {
      path = fileURLToPath(locator)
    } catch (err) {
      throw new InvalidArgumentError(`invalid file locator ${locator}`, { cause: err })
    }
  } else if (locator.startsWith('file:')) {
    path = locator.slice('file:'.length)
  } else {
    path = locator
  }
  if (path === '' || path.includes('\0')) throw new InvalidArgumentError(`invalid file locator ${JSON.stringify(locator)}`)
  return isAbsolute(path) ? resolve(path) : resolve(process.cwd(), path)
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as NodeJS.ErrnoException).code ?? '')
}

function tokenOf(info: BigIntStats): string {
  return `${info.ino.toString(36)}.${info.mtimeNs.toString(36)}`
}

/** A job store in a folder. */
export class FileJobStore extends AbstractJobStore {
  /** The store's folder. */
  readonly root: string
  readonly #durable: boolean
  readonly #fileMode: number
  readonly #dirMode: number
  readonly #knownDirs = new Set<string>()

  constructor(locator: string, options: FileJobStoreOptions = {}) {
    super(locator, options)
    this.root = parseFileLocator(locator)
    this.#durable = options.durable ?? true
    this.#fileMode = options.fileMode ?? 0o600
    this.#dirMode = options.dirMode ?? 0o700
  }

  #path(key: string): string {
    return join(this.root, ...key.split('/'))
  }

  async #ensureDir(dir: string): Promise<void> {
    if (this.#knownDirs.has(dir)) return
    await mkdir(dir, { recursive: true, mode: this.#dirMode })
    this.#knownDirs.add(dir)
  }

  async #syncDir(dir: string): Promise<void> {
    if (!this.#durable) return
    await withFd(dir, 'r', fsync)
  }

  #tempPath(): string {
    return join(this.root, TEMP_DIR, `${HOST_TAG}-${process.pid}-${randomId()}.tmp`)
  }

  /** Writes `body` to a new temporary file; returns its path and the version token it will have once committed. */
  async #writeTemp(body: Buffer | Readable, executable: boolean, signal: AbortSignal | undefined): Promise<{ temp: string; token: string }> {
    const temp = this.#tempPath()
    const mode = executable ? this.#fileMode | 0o100 : this.#fileMode
    let fd: number
    try {
      fd = await open(temp, 'wx', mode)
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
      // tmp/ is gone (a destroy, or a store folder made by hand): make it and try once more.
      this.#knownDirs.clear()
      await this.#ensureDir(dirname(temp))
      fd = await open(temp, 'wx', mode)
    }
    let fdOpen = true
    try {
      if (Buffer.isBuffer(body)) {
        await writeAll(fd, body)
      } else {
        // Coalesce small writes (a body callback may write a byte at a time) into large ones.
        let pending: Buffer[] = []
        let pendingBytes = 0
        for await (const chunk of body) {
          const data = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
          pending.push(data)
          pendingBytes += data.length
          if (pendingBytes >= COALESCE_BYTES) {
            await writeAll(fd, pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending))
            pending = []
            pendingBytes = 0
          }
        }
        if (pendingBytes > 0) await writeAll(fd, Buffer.concat(pending))
      }
      throwIfAborted(signal)
      const info = await fstat(fd, { bigint: true })
      // The umask may have dropped bits: the stored mode is the store's, not the process's. Only then a chmod
      // (one round trip to the thread pool less per write otherwise); it changes the ctime, not the token.
      if (Number(info.mode & 0o7777n) !== mode) await fchmod(fd, mode)
      if (this.#durable) await fsync(fd)
      fdOpen = false
      await close(fd)
      return { temp, token: tokenOf(info) }
    } catch (err) {
      if (fdOpen) await close(fd).catch(() => {})
      await rm(temp, { force: true })
      throw err
    }
  }

  async #withLock<T>(path: string, body: () => Promise<T>): Promise<T> {
    const release = await lockfile.lock(path, {
      realpath: false,
      lockfilePath: `${path}${LOCK_SUFFIX}`,
      stale: 5000,
      update: 1000,
      retries: { retries: 400, factor: 1.3, minTimeout: 1, maxTimeout: 50, randomize: true },
      onCompromised: (err) => log('lock on %s compromised: %s', path, err.message),
    })
    try {
      return await body()
    } finally {
      await release().catch((err: Error) => log('releasing the lock on %s: %s', path, err.message))
    }
  }

  /** Moves a written temporary file to `final` under the put's preconditions. */
  async #commit(temp: string, final: string, key: string, options: PutOptions): Promise<void> {
    const attempt = async (): Promise<void> => {
      if (options.ifNoneMatch) {
        try {
          await link(temp, final)
        } catch (err) {
          if (isErrno(err, 'EEXIST')) throw new PreconditionFailedError(key, { cause: err })
          throw err
        }
        await unlink(temp)
        return
      }
      await this.#withLock(final, async () => {
        if (options.ifMatch !== undefined) {
          const current = await stat(final, { bigint: true }).catch((err: unknown) => {
            if (isErrno(err, 'ENOENT')) throw new PreconditionFailedError(key, { cause: err })
            throw err
          })
          if (tokenOf(current) !== options.ifMatch) throw new PreconditionFailedError(key)
        }
        await rename(temp, final)
      })
    }
    await this.#ensureDir(dirname(final))
    try {
      await attempt()
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || options.ifMatch !== undefined) throw err
      // The folder went away meanwhile (a concurrent delete of an emptied folder, a destroy): once more.
      this.#knownDirs.delete(dirname(final))
      await this.#ensureDir(dirname(final))
      await attempt()
    }
    await this.#syncDir(dirname(final))
  }

  /**
   * No conditional-write proof: create-if-absent (`link()` of a complete temporary file, which fails on an
   * existing name) and compare-and-swap (a check and `rename()` under the key's lock) are guarantees of the local
   * file system and of this process's own code, not of a remote service that might ignore them.
   */
  protected override async conditionalWriteProofTarget(): Promise<undefined> {
    return undefined
  }

  protected override async createStorage(): Promise<void> {
    this.#knownDirs.clear()
    await this.#ensureDir(this.root)
    await this.#ensureDir(join(this.root, TEMP_DIR))
  }

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    throwIfAborted(options.signal)
    const final = this.#path(key)
    const { temp, token } = await this.#writeTemp(body, options.executable ?? false, options.signal)
    try {
      throwIfAborted(options.signal)
      await this.#commit(temp, final, key, options)
      return token
    } catch (err) {
      await rm(temp, { force: true })
      throw err
    }
  }

  protected override async getObject(key: string): Promise<ObjectRead> {
    let fd: number
    try {
      fd = await open(this.#path(key), 'r')
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key, { cause: err })
      throw new JobStoreError(`cannot read ${key}`, { cause: err })
    }
    let small: Buffer | undefined
    let info: BigIntStats
    try {
      info = await fstat(fd, { bigint: true })
      if (!info.isFile()) throw new ObjectNotFoundError(key)
      // Job records, stats, small files: one read of the exact size, then close; the core takes the bytes as they
      // are (ObjectRead.data). A read stream would allocate a 256 KiB buffer and take two more trips to the thread
      // pool (read to EOF, close) for a 2 KiB record. A short read (the file cannot change under an open
      // descriptor: writes replace it) leaves fewer bytes, which the core's size check reports.
      if (info.size <= SMALL_READ_BYTES) small = await readExactly(fd, Number(info.size))
    } catch (err) {
      await close(fd)
      throw err
    }
    const meta = {
      key,
      size: Number(info.size),
      version: tokenOf(info),
      executable: (info.mode & BigInt(fsConstants.S_IXUSR)) !== 0n,
    }
    if (small === undefined) return { ...meta, body: createReadStream('', { fd, highWaterMark: 256 * 1024 }) }
    await close(fd)
    return objectReadOf(meta, small)
  }

  protected override async headObject(key: string): Promise<ObjectInfo | undefined> {
    let info: BigIntStats
    try {
      info = await stat(this.#path(key), { bigint: true })
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined
      throw new JobStoreError(`cannot stat ${key}`, { cause: err })
    }
    if (!info.isFile()) return undefined
    return {
      key,
      size: Number(info.size),
      version: tokenOf(info),
      executable: (info.mode & BigInt(fsConstants.S_IXUSR)) !== 0n,
    }
  }

  protected override async deleteObjects(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>()
    await forEachConcurrent(keys, this.concurrency, async (key) => {
      const path = this.#path(key)
      try {
        // Under the lock, so that a compare-and-swap cannot put back what was just deleted.
        await this.#withLock(path, async () => {
          await unlink(path)
          dirs.add(dirname(path))
        })
      } catch (err) {
        // Nothing there; from the lock: the folder is gone, and so is the file.
        if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err
      }
    })
    await forEachConcurrent(dirs, this.concurrency, async (dir) => this.#syncDir(dir).catch(() => {}))
  }

  protected override async *listObjects(prefix: string): AsyncGenerator<ListedObject> {
    yield* this.#walk(this.#path(prefix), prefix)
  }

  async *#walk(dir: string, keyPrefix: string): AsyncGenerator<ListedObject> {
    let handle
    try {
      handle = await opendir(dir)
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return
      throw err
    }
    // opendir streams entries: a big folder is never read into memory at once.
    for await (const entry of handle) {
      if (entry.name.includes('~')) continue // lock folders and other internals
      if (entry.isDirectory()) yield* this.#walk(join(dir, entry.name), `${keyPrefix}${entry.name}/`)
      else if (entry.isFile() || entry.isSymbolicLink()) yield { key: `${keyPrefix}${entry.name}` }
    }
  }

  protected override async destroyStorage(): Promise<void> {
    this.#knownDirs.clear()
    // Only what the store owns: the folder may hold other things, and must never be removed wholesale.
    await Promise.all(OWNED_ENTRIES.map((entry) => rm(join(this.root, entry), { recursive: true, force: true })))
    try {
      await rmdir(this.root)
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTEMPTY', 'EEXIST')) throw err
    }
  }

  protected override async getObjectUrl(key: string): Promise<string> {
    // A file: URL does not expire; it is readable by whoever can read the store's folder.
    return pathToFileURL(this.#path(key)).href
  }

  protected override async removeLeftovers(olderThanMs: number): Promise<number> {
    const dir = join(this.root, TEMP_DIR)
    let names: string[]
    try {
      names = await readdir(dir)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0
      throw err
    }
    let removed = 0
    const now = Date.now()
    await forEachConcurrent(names, this.concurrency, async (name) => {
      const path = join(dir, name)
      const [host, pid] = name.split('-')
      const deadWriter = host === HOST_TAG && pid !== undefined && !processAlive(Number(pid))
      try {
        const info = await stat(path)
        if (deadWriter || now - info.mtimeMs >= olderThanMs) {
          await rm(path, { force: true })
          removed++
        }
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err
      }
    })
    return removed + (await this.#removeStaleLocks())
  }

  /**
   * Removes the `~lock` folders of writers that died holding a lock: those proper-lockfile considers stale (not
   * refreshed for 5 s), broken through proper-lockfile itself, as the next writer of that key would. Returns
   * how many it removed.
   */
  async #removeStaleLocks(): Promise<number> {
    const stale: string[] = []
    const walk = async (dir: string): Promise<void> => {
      let handle
      try {
        handle = await opendir(dir)
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR')) return
        throw err
      }
      const subdirs: string[] = []
      for await (const entry of handle) {
        if (!entry.isDirectory()) continue
        if (entry.name.endsWith(LOCK_SUFFIX)) stale.push(join(dir, entry.name))
        else subdirs.push(join(dir, entry.name))
      }
      await forEachConcurrent(subdirs, this.concurrency, walk)
    }
    await forEachConcurrent(OWNED_ENTRIES.filter((entry) => entry !== TEMP_DIR), this.concurrency, (entry) => walk(join(this.root, entry)))
    let removed = 0
    await forEachConcurrent(stale, this.concurrency, async (lockPath) => {
      const path = lockPath.slice(0, -LOCK_SUFFIX.length)
      try {
        const release = await lockfile.lock(path, { realpath: false, lockfilePath: lockPath, stale: 5000, retries: 0 })
        await release()
        removed++
      } catch (err) {
        // Held by a live writer (ELOCKED), or gone meanwhile.
        if (!isErrno(err, 'ELOCKED', 'ENOENT')) throw err
      }
    })
    return removed
  }

  protected override async linkLocalFile(
    path: string,
    key: string,
    options: { hardlink: boolean; symlink: boolean },
  ): Promise<boolean> {
    const temp = this.#tempPath()
    await this.#ensureDir(dirname(temp))
    try {
      if (options.hardlink) {
        try {
          await link(path, temp)
        } catch (err) {
          if (isErrno(err, 'ENOENT')) return false // the copy path reports the missing source
          if (!isErrno(err, ...CANNOT_LINK) || !options.symlink) return false
          await symlink(resolve(path), temp)
        }
      } else {
        await lstat(path) // missing source: ENOENT, handled below
        await symlink(resolve(path), temp)
      }
      await this.#commit(temp, this.#path(key), key, key.startsWith('files/') ? { ifNoneMatch: true } : {})
      await rm(temp, { force: true })
      return true
    } catch (err) {
      await rm(temp, { force: true })
      if (isErrno(err, 'ENOENT')) return false
      throw err
    }
  }

  protected override async materializeObject(
    key: string,
    what: string,
    localPath: string,
    options: { symlink: boolean; signal?: AbortSignal },
  ): Promise<void> {
    const source = this.#path(key)
    const info = await this.headObject(key)
    if (info === undefined) throw new ObjectNotFoundError(key)
    const temp = join(dirname(localPath), `.${basename(localPath)}.${randomId()}.partial`)
    try {
      if (options.symlink) {
        await symlink(source, temp)
      } else {
        try {
          await link(source, temp)
        } catch (err) {
          if (!isErrno(err, ...CANNOT_LINK)) throw err
          log('cannot hard link %s (%s): copying', what, (err as NodeJS.ErrnoException).code)
          await copyFile(source, temp, fsConstants.COPYFILE_FICLONE)
          await chmod(temp, info.executable ? 0o755 : 0o644)
        }
      }
      await rename(temp, localPath)
    } catch (err) {
      await rm(temp, { force: true })
      if (isErrno(err, 'ENOENT') && (await this.headObject(key)) === undefined) throw new ObjectNotFoundError(key, { cause: err })
      throw err
    }
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return !isErrno(err, 'ESRCH')
  }
}
