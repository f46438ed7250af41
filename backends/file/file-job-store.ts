/**
 * The file backend: a job store in a local (or shared POSIX) folder.
 *
 * - Atomic, durable writes: a temporary file in `tmp/`, fsync, then `link()` (create-if-absent: fails with
 *   EEXIST, so exactly one of many racing processes wins) or `rename()` (replace), then fsync of the folder.
 * - Compare-and-swap between processes: replacing takes a per-key lock (a `~lock` folder, via proper-lockfile,
 *   which breaks locks of crashed holders by age) around "check the version, rename".
 * - Version token: inode and nanosecond mtime of the stored file; every write makes a new inode.
 * - Layout of the core's keys as folders; no folder grows with the number of jobs beyond ~1/1024 of them.
 * - The core's digest of a file: a symlink `<file>~<inode>.<birth time>` beside it whose target is the digest
 *   (`crc32-<hex>`), made before the file is committed; read with one `readlink` (see `#sidecarPath`).
 */
import fs, { createReadStream, constants as fsConstants, type BigIntStats } from 'node:fs'
import { chmod, copyFile, opendir, readdir, rm, rmdir, symlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
import { Writable, type Readable } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { debuglog, promisify } from 'node:util'
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
import { keys as storeKeys, randomId } from '../../src/ids.js'
import { createVerifyStream, verifyBytes } from '../../src/streams.js'
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
// The digest sidecars' calls (callback API, as in fs-calls.ts).
const symlinkCall = promisify(fs.symlink)
const readlinkCall = promisify(fs.readlink)

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

/** Whether a key holds file bytes the core keeps a digest of (files, shared files), not a record with its own check. */
function keepsDigest(key: string): boolean {
  return key.startsWith(storeKeys.filesPrefix) || key.startsWith(storeKeys.sharedPrefix)
}

/**
 * The digest sidecar of the stored file at `path` whose inode is `info`: `<path>~<inode>.<birth time>`. Named by the
 * inode, so that it is made before the file is committed (no reader ever sees the file without it, and racing
 * writers never share one), and an in-place edit of the file (same inode) is checked against it; by the birth time
 * too, so that an inode number reused after a crash never meets a stale sidecar. `~` keeps it out of listings.
 */
function sidecarPath(path: string, info: BigIntStats): string {
  return `${path}~${info.ino.toString(36)}.${info.birthtimeNs.toString(36)}`
}

const DIGEST_TARGET = /^crc32-([0-9a-f]{8})$/
const LINKED_TARGET = 'linked'
const LINKED_REASON = 'a file importFile linked in: the caller’s own file, not a copy the store keeps a digest of'

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

  /** Every file gets its digest in a sidecar (linked-in files a sidecar that says they have none). */
  protected override get keepsFileDigests(): boolean {
    return true
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
  async #writeTemp(
    body: Buffer | Readable,
    executable: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ temp: string; token: string; info: BigIntStats }> {
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
      return { temp, token: tokenOf(info), info }
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

  /**
   * Moves a written temporary file to `final` under the put's preconditions. `sidecars`: a replaced file's digest
   * sidecar is removed with it (under the lock, once the new file is in place).
   */
  async #commit(temp: string, final: string, key: string, options: PutOptions, sidecars = false): Promise<void> {
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
        let replaced: BigIntStats | undefined
        if (options.ifMatch !== undefined) {
          const current = await stat(final, { bigint: true }).catch((err: unknown) => {
            if (isErrno(err, 'ENOENT')) throw new PreconditionFailedError(key, { cause: err })
            throw err
          })
          if (tokenOf(current) !== options.ifMatch) throw new PreconditionFailedError(key)
          replaced = current
        } else if (sidecars) {
          replaced = await stat(final, { bigint: true }).catch(() => undefined)
        }
        await rename(temp, final)
        if (sidecars && replaced !== undefined) await unlink(sidecarPath(final, replaced)).catch(() => {})
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

  protected override async createStorage(): Promise<void> {
    this.#knownDirs.clear()
    await this.#ensureDir(this.root)
    await this.#ensureDir(join(this.root, TEMP_DIR))
  }

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    throwIfAborted(options.signal)
    const final = this.#path(key)
    const { temp, token, info } = await this.#writeTemp(body, options.executable ?? false, options.signal)
    let sidecar: string | undefined
    try {
      throwIfAborted(options.signal)
      if (options.digest !== undefined) {
        sidecar = await this.#writeSidecar(final, info, `crc32-${Buffer.from(options.digest(), 'base64').toString('hex')}`)
      }
      await this.#commit(temp, final, key, options, sidecar !== undefined)
      return token
    } catch (err) {
      await rm(temp, { force: true })
      if (sidecar !== undefined) await unlink(sidecar).catch(() => {})
      throw err
    }
  }

  /**
   * Makes the digest sidecar of the file with inode `info`, to be committed at `final`: a symlink whose target is
   * `target`. One `symlink` call; one whose name an earlier writer's crash left behind is replaced.
   */
  async #writeSidecar(final: string, info: BigIntStats, target: string): Promise<string> {
    const path = sidecarPath(final, info)
    await this.#ensureDir(dirname(final))
    try {
      await symlinkCall(target, path)
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err
      await unlink(path).catch(() => {})
      await symlinkCall(target, path)
    }
    return path
  }

  /** What the digest sidecar of the file at `path` (inode `info`) says: its digest, unverifiable, or nothing. */
  async #readSidecar(path: string, info: BigIntStats): Promise<{ digest?: string; unverifiable?: string }> {
    let target: string
    try {
      target = await readlinkCall(sidecarPath(path, info))
    } catch (err) {
      // None (a file written by an earlier release, or replaced behind the store's back); not a symlink (EINVAL).
      if (isErrno(err, 'ENOENT', 'EINVAL', 'ENOTDIR')) return {}
      throw new JobStoreError(`cannot read the digest of ${path}`, { cause: err })
    }
    if (target === LINKED_TARGET) return { unverifiable: LINKED_REASON }
    const match = DIGEST_TARGET.exec(target)
    return match === null ? {} : { digest: Buffer.from(match[1] as string, 'hex').toString('base64') }
  }

  protected override getObject(key: string, options: IoOptions = {}): Promise<ObjectRead> {
    // Records (no digest asked for): straight through, no extra async step on the hottest read.
    return options.lookUpDigest === true ? this.#getFile(key, options) : this.#getObject(key, options)
  }

  /** A file's read, with its digest: read again if the file was replaced while its sidecar was looked up. */
  async #getFile(key: string, options: IoOptions): Promise<ObjectRead> {
    for (let attempt = 1; ; attempt++) {
      const object = await this.#getObject(key, options)
      // No digest found for the inode opened: if that file was replaced meanwhile (its sidecar goes with it), the
      // read is of a version no longer stored: read the current one instead.
      if (object.digest !== undefined || object.unverifiable !== undefined || attempt >= 5) return object
      const now = await stat(this.#path(key), { bigint: true }).catch(() => undefined)
      if (now === undefined || tokenOf(now) === object.version) return object
      object.body.destroy()
    }
  }

  async #getObject(key: string, options: IoOptions): Promise<ObjectRead> {
    const path = this.#path(key)
    let fd: number
    try {
      fd = await open(path, 'r')
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key, { cause: err })
      throw new JobStoreError(`cannot read ${key}`, { cause: err })
    }
    let small: Buffer | undefined
    let info: BigIntStats
    let digest: { digest?: string; unverifiable?: string } = {}
    try {
      info = await fstat(fd, { bigint: true })
      if (!info.isFile()) throw new ObjectNotFoundError(key)
      // The digest's sidecar is named by the inode: one readlink, in parallel with the read.
      const sidecar = options.lookUpDigest === true ? this.#readSidecar(path, info) : undefined
      sidecar?.catch(() => {})
      // Job records, stats, small files: one read of the exact size, then close; the core takes the bytes as they
      // are (ObjectRead.data). A read stream would allocate a 256 KiB buffer and take two more trips to the thread
      // pool (read to EOF, close) for a 2 KiB record. A short read (the file cannot change under an open
      // descriptor: writes replace it) leaves fewer bytes, which the core's size check reports.
      if (info.size <= SMALL_READ_BYTES) small = await readExactly(fd, Number(info.size))
      if (sidecar !== undefined) digest = await sidecar
    } catch (err) {
      await close(fd)
      throw err
    }
    const meta = {
      key,
      size: Number(info.size),
      version: tokenOf(info),
      executable: (info.mode & BigInt(fsConstants.S_IXUSR)) !== 0n,
      ...digest,
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
          // A file's digest sidecar goes with it (named by the inode: found with a stat first).
          const info = keepsDigest(key) ? await stat(path, { bigint: true }).catch(() => undefined) : undefined
          await unlink(path)
          if (info !== undefined) await unlink(sidecarPath(path, info)).catch(() => {})
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
    let sidecar: string | undefined
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
      // The stored file is the caller's own: its sidecar says it has no digest (named by the inode reads open).
      const final = this.#path(key)
      sidecar = await this.#writeSidecar(final, await stat(temp, { bigint: true }), LINKED_TARGET)
      await this.#commit(temp, final, key, key.startsWith('files/') ? { ifNoneMatch: true } : {}, true)
      await rm(temp, { force: true })
      return true
    } catch (err) {
      await rm(temp, { force: true })
      if (sidecar !== undefined) await unlink(sidecar).catch(() => {})
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
    // The stored file itself is linked: checked whole first, so that a changed byte never reaches localPath.
    for (let attempt = 1; ; attempt++) {
      const info = await this.#verifyWhole(key, what, options.signal)
      const temp = join(dirname(localPath), `.${basename(localPath)}.${randomId()}.partial`)
      try {
        let checkLinked = false
        if (options.symlink) {
          await symlink(source, temp)
        } else {
          try {
            await link(source, temp)
            checkLinked = true
          } catch (err) {
            if (!isErrno(err, ...CANNOT_LINK)) throw err
            log('cannot hard link %s (%s): copying', what, (err as NodeJS.ErrnoException).code)
            await copyFile(source, temp, fsConstants.COPYFILE_FICLONE)
            await chmod(temp, info.executable ? 0o755 : 0o644)
          }
        }
        // A hard link is the version checked unless a replace came in between (another inode): then check again.
        if (checkLinked && attempt < 3 && tokenOf(await stat(temp, { bigint: true })) !== info.version) {
          await rm(temp, { force: true })
          continue
        }
        await rename(temp, localPath)
        return
      } catch (err) {
        await rm(temp, { force: true })
        if (isErrno(err, 'ENOENT') && (await this.headObject(key)) === undefined) throw new ObjectNotFoundError(key, { cause: err })
        throw err
      }
    }
  }

  /**
   * Reads the stored file whole and checks it against its size and digest, as a read stream would (IntegrityError
   * on a mismatch): `readFile` links the stored file itself, so this is where a changed byte is caught.
   */
  async #verifyWhole(key: string, what: string, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    const object = await this.getObject(key, { lookUpDigest: true })
    const checksum = this.fileChecksum(object, what)
    if (object.data !== undefined) {
      verifyBytes(what, object.data, object.size, checksum)
    } else {
      await pipelineAsync(object.body, createVerifyStream(what, object.size, checksum), new Writable({ write: (_c, _e, done) => done() }), signal ? { signal } : {})
    }
    return object
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
