/**
 * The file backend: a job store in a local (or shared POSIX) folder.
 *
 * - Atomic, durable writes: a temporary file in `tmp/`, fsync, then `link()` (create-if-absent: fails with
 *   EEXIST, so exactly one of many racing processes wins) or `rename()` (replace), then fsync of the folder.
 * - Compare-and-swap between processes: replacing and deleting take a per-key lock (a `~lock` symlink naming its
 *   holder: key-lock.ts, which breaks the locks of dead holders) around "check the version, rename" or "unlink".
 * - Version token: inode and nanosecond mtime of the stored file; every write makes a new inode.
 * - Layout of the core's keys as folders; no folder grows with the number of jobs beyond ~1/1024 of them.
 * - Never leaves its folder: every folder inside the root is checked to be a real folder (lstat, or made by this
 *   process) the first time this instance uses it (cached in #knownDirs); records are opened with O_NOFOLLOW;
 *   walks go by the entries' own type (no link is descended). Only the final component of a file key may be a
 *   link: the links `importFile(…, {symlink: true})` stores. Anything else is an UnsafeStorePathError.
 * - The core's digest of a file (`crc32-<hex>`), set before the file is committed: the attribute
 *   `user.jobstore.digest` of its inode (digest-attribute.ts: no extra inode, read with one `getxattr` and a `stat`);
 *   where attributes are unavailable, and for linked-in files, a symlink `<file>~<inode>.<birth time>` beside it
 *   whose target is the digest (read with one `readlink`: see `sidecarPath`).
 */
import fs, { createReadStream, constants as fsConstants, type BigIntStats } from 'node:fs'
import { chmod, copyFile, opendir, readdir, rm, rmdir } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { Writable, type Readable } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { debuglog, promisify } from 'node:util'
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
  realpath,
  rename,
  stat,
  symlink,
  unlink,
  withFd,
  writeAll,
  directCalls,
  isLocalFileSystem,
  threadPoolCalls,
  type MetadataCalls,
} from './fs-calls.js'
import { BREAK_SUFFIX, HOST_TAG, LOCK_SUFFIX, lockKey, processAlive, removeStaleLock, type KeyLock } from './key-lock.js'
import { attributeCalls, type AttributeCalls } from './digest-attribute.js'
import {
  AbstractJobStore,
  refuseLocalDestination,
  type JobStoreConfig,
  type JobStoreConfigInit,
  type JobStoreOptions,
  type SignalOptions,
} from '../../src/abstract-job-store.js'
import { destroyOnAbort, forEachConcurrent, throwIfAborted } from '../../src/concurrency.js'
import { InvalidArgumentError, JobStoreError, UnsafeStorePathError, UnsupportedOperationError } from '../../src/errors.js'
import { keys, randomId } from '../../src/ids.js'
import { backendEntries, storeEntries } from '../../src/layout.js'
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

/** Options of the file backend. */
export interface FileJobStoreOptions extends JobStoreOptions {
  /** fsync files and folders on every write (default true). Off trades durability on power loss for speed. */
  readonly durable?: boolean
  /** Mode of stored files (default 0o600; executables get the owner's execute bit too). */
  readonly fileMode?: number
  /** Mode of the store's folders (default 0o700). */
  readonly dirMode?: number
  /**
   * Make the digest sidecars' metadata calls (one `readlink` per read, a `stat` and an `unlink` per delete or
   * replace) synchronously, without a trip to libuv's thread pool. Cheaper on a local disk (a few microseconds in
   * the kernel against a thread-pool round trip); on a network file system each would block the process for a
   * round trip to the server. The sidecar's `symlink` on a write always goes through the pool (it allocates an
   * inode, which can take much longer). Default: on where `statfs` names a local file system (ext4, xfs,
   * btrfs, tmpfs, zfs, overlayfs, ramfs, f2fs), off elsewhere (NFS, Lustre, GPFS, CIFS, FUSE, BeeGFS, Ceph, …).
   * Also small reads (up to 256 KiB: records, stats, small files) are then made with direct calls. The
   * environment variable `JOBSTORE_FILE_DIRECT_CALLS=1` or `=0` sets the default for every store of the process.
   */
  readonly directCalls?: boolean
}

const TEMP_DIR = backendEntries.temp.slice(0, -1)
/** Top-level entries the store owns (the layout's, see src/layout.ts): `destroy()` removes these and nothing else in the folder. */
const OWNED_ENTRIES = storeEntries([backendEntries.temp]).map((entry) => entry.replace(/\/$/, ''))
/** Names of our temporary files: `<host>-<pid>-<random>.tmp` (see #tempPath). Nothing else in tmp/ is touched. */
const TEMP_NAME = /^[A-Za-z0-9]{1,32}-\d+-[0-9a-hjkmnp-tv-z]{26}\.tmp$/
const MARKER_NAME = basename(keys.storeMarker)
/**
 * Records are opened without following a final link (ELOOP instead), and without blocking on a FIFO planted in
 * their place. Stored files may be links of the store's own making (importFile with symlink: true): followed.
 */
const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0
const OPEN_RECORD = fsConstants.O_RDONLY | O_NOFOLLOW | (fsConstants.O_NONBLOCK ?? 0)
const OPEN_STORED_FILE = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0)
/** Checked folders remembered per instance; past this, the set starts over (each folder is checked again once). */
const KNOWN_DIRS_LIMIT = 100_000
const COALESCE_BYTES = 256 * 1024
/** Objects up to this size are read whole in one call (no read stream); larger ones are streamed. */
const SMALL_READ_BYTES = 256n * 1024n
/** Errors on which a hard link cannot be made and a copy is the answer. */
const CANNOT_LINK = new Set(['EXDEV', 'EMLINK', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EACCES', 'ENOSYS'])

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

/** Keys whose final component may be a link of the store's own making (importFile with symlink: true). */
function mayBeStoredLink(key: string): boolean {
  return key.startsWith(keys.filesPrefix)
}

function tokenOf(info: BigIntStats): string {
  return `${info.ino.toString(36)}.${info.mtimeNs.toString(36)}`
}

/** Whether a key holds file bytes the core keeps a digest of (files, shared files), not a record with its own check. */
function keepsDigest(key: string): boolean {
  return key.startsWith(keys.filesPrefix) || key.startsWith(keys.sharedPrefix)
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

/** What a digest attribute or a sidecar's target says: the file's digest, or that it is a linked-in file with none. */
function digestOfText(target: string): { digest?: string; unverifiable?: string } {
  if (target === LINKED_TARGET) return { unverifiable: LINKED_REASON }
  const match = DIGEST_TARGET.exec(target)
  return match === null ? {} : { digest: Buffer.from(match[1] as string, 'hex').toString('base64') }
}

/**
 * A sidecar's `readlink` failed: none there (a file written by an earlier release, or replaced behind the store's
 * back), or not a symlink (EINVAL), is "no digest"; anything else an error.
 */
function noSidecar(err: unknown, path: string): Record<string, never> {
  if (isErrno(err, 'ENOENT', 'EINVAL', 'ENOTDIR')) return {}
  throw new JobStoreError(`cannot read the digest of ${path}`, { cause: err })
}

/**
 * The config field that says where the store keeps file digests: `attribute` (digest-attribute.ts; sidecars only
 * for linked-in files and where a write's attribute failed) or `sidecar`. Absent: a store of an earlier release,
 * which has sidecars.
 */
export const DIGEST_LOCATION_FIELD = 'fileDigests'

/** How `@napi-rs/xattr` reports a file system without user attributes: EOPNOTSUPP/ENOTSUP (95), ENOSYS (38). */
const ATTRIBUTES_UNSUPPORTED = /\(os error (95|38)\)/

function statOrUndefined(path: string): BigIntStats | undefined {
  return fs.statSync(path, { bigint: true, throwIfNoEntry: false })
}

/** Whether `now` (a stat of the path) is still the inode `opened`. */
function sameInode(now: BigIntStats | undefined, opened: BigIntStats): boolean {
  return now !== undefined && now.ino === opened.ino && now.dev === opened.dev
}

/** `JOBSTORE_FILE_DIRECT_CALLS`: `1` or `0` (FileJobStoreOptions.directCalls), else undefined (by file system). */
function directCallsFromEnvironment(): boolean | undefined {
  const value = process.env['JOBSTORE_FILE_DIRECT_CALLS']
  if (value === undefined || value === '') return undefined
  if (value === '1') return true
  if (value === '0') return false
  throw new InvalidArgumentError(`JOBSTORE_FILE_DIRECT_CALLS must be 1 or 0, not ${JSON.stringify(value)}`)
}

/** A job store in a folder. */
export class FileJobStore extends AbstractJobStore {
  /** The store's folder. */
  readonly root: string
  readonly #durable: boolean
  readonly #fileMode: number
  readonly #dirMode: number
  /** Folders inside the root checked to be real folders (not links) by this instance: see #checkDirs. */
  readonly #knownDirs = new Set<string>()
  /** The root with its links resolved (the root itself may be a link: the caller's choice). */
  #realRoot: string | undefined
  /** How the digest sidecars' calls are made (FileJobStoreOptions.directCalls); decided on first use. */
  #calls: MetadataCalls | undefined
  /**
   * The digest attribute's calls, for writes: set by `initialize()`/`resume()` from the store's choice
   * (DIGEST_LOCATION_FIELD); undefined before (a `copyTo` destination writes sidecars), in a store that keeps
   * sidecars, without the module, or once the file system refused an attribute. Reads look for an attribute
   * whenever the module is there, whatever the choice: a file's digest is where its writer could put it.
   */
  #attributes: AttributeCalls | undefined

  constructor(locator: string, options: FileJobStoreOptions = {}) {
    super(locator, options)
    this.root = parseFileLocator(locator)
    this.#durable = options.durable ?? true
    this.#fileMode = options.fileMode ?? 0o600
    this.#dirMode = options.dirMode ?? 0o700
    const direct = options.directCalls ?? directCallsFromEnvironment()
    if (direct !== undefined) this.#calls = direct ? directCalls : threadPoolCalls
  }

  /** The sidecars' metadata calls: direct on a local file system (see FileJobStoreOptions.directCalls). */
  #metadataCalls(): MetadataCalls | Promise<MetadataCalls> {
    if (this.#calls !== undefined) return this.#calls
    return isLocalFileSystem(this.root).then((local) => (this.#calls = local ? directCalls : threadPoolCalls))
  }

  /**
   * Records in a new store's config where it keeps file digests: in attributes where the module is there and the
   * folder's file system takes user attributes (tried on a temporary file), else in sidecars. Every process that
   * opens the store later follows that choice (see `resume`).
   */
  protected override async storageConfigFields(): Promise<Readonly<Record<string, string>>> {
    return { [DIGEST_LOCATION_FIELD]: (await this.#attributesWork()) ? 'attribute' : 'sidecar' }
  }

  override async initialize(config: JobStoreConfigInit = {}, options: SignalOptions = {}): Promise<JobStoreConfig> {
    const made = await super.initialize(config, options)
    this.#attributes = made[DIGEST_LOCATION_FIELD] === 'attribute' ? attributeCalls : undefined
    return made
  }

  /**
   * Opens the store, and follows its choice of where file digests go (a store of an earlier release: sidecars).
   * @throws UnsupportedOperationError when the store keeps digests in attributes and this process cannot read them
   * (`@napi-rs/xattr` is not installed, or has no build for this platform): its reads would all fail their check.
   */
  override async resume(options: SignalOptions = {}): Promise<JobStoreConfig> {
    const config = await super.resume(options)
    const location = config[DIGEST_LOCATION_FIELD] ?? 'sidecar'
    if (location === 'attribute' && attributeCalls === undefined) {
      throw new UnsupportedOperationError(
        `the job store at ${this.locator} keeps file digests in extended attributes, which this process cannot read: ` +
          `install the optional dependency @napi-rs/xattr (it has builds for Linux, macOS and FreeBSD on x64 and arm64)`,
      )
    }
    this.#attributes = location === 'attribute' ? attributeCalls : undefined
    return config
  }

  /** Whether a digest attribute can be set on a file of this store (the module is there, the file system takes it). */
  async #attributesWork(): Promise<boolean> {
    if (attributeCalls === undefined) return false
    const probe = this.#tempPath()
    try {
      await withFd(probe, 'wx', async () => {}, this.#fileMode)
      await attributeCalls.set(probe, 'crc32-00000000')
      return (await attributeCalls.get(probe)) === 'crc32-00000000'
    } catch (err) {
      log('no digest attributes in %s: %s', this.root, (err as Error).message)
      return false
    } finally {
      await rm(probe, { force: true })
    }
  }

  #path(key: string): string {
    return join(this.root, ...key.split('/'))
  }

  /** Every file gets its digest in a sidecar (linked-in files a sidecar that says they have none). */
  protected override get keepsFileDigests(): boolean {
    return true
  }

  /** The store-relative name of a path in the store, for messages. */
  #relative(path: string): string {
    return relative(this.root, path).split(sep).join('/')
  }

  #unsafe(path: string, info: { isSymbolicLink(): boolean }, expected: string): UnsafeStorePathError {
    const what = info.isSymbolicLink() ? 'a symbolic link the store did not make' : `not ${expected}`
    return new UnsafeStorePathError(this.#relative(path), what)
  }

  #remember(dir: string): void {
    if (this.#knownDirs.size >= KNOWN_DIRS_LIMIT) this.#knownDirs.clear()
    this.#knownDirs.add(dir)
  }

  /** Forgets `dir` and the folders above it, so that their next use checks them again (after an error). */
  #forget(dir: string): void {
    for (let path = dir; path.length > this.root.length; path = dirname(path)) this.#knownDirs.delete(path)
  }

  /**
   * Makes sure every folder from the root down to `dir` is a real folder, not a link planted in the store. With
   * `create`, makes the missing ones and resolves true; else resolves false when one is missing. Throws
   * UnsafeStorePathError for a link or a file in the way, before anything is created, read or deleted through it.
   *
   * The verdict is cached per folder (#knownDirs): a warm path costs a Set lookup. Below the deepest folder
   * already checked, one level costs one lstat (and a mkdir when it is new); several levels one realpath(3) for
   * the whole chain (one trip to the thread pool), or, when creating, a mkdir of the first level (new: the rest is
   * made at once, and is ours) then that realpath.
   */
  async #checkDirs(dir: string, create: boolean): Promise<boolean> {
    if (this.#knownDirs.has(dir)) return true
    if (!this.#knownDirs.has(this.root) && create) {
      // The root itself is the caller's choice, a link or not: made if missing, never checked.
      await mkdir(this.root, { recursive: true, mode: this.#dirMode })
      this.#remember(this.root)
    }
    if (dir === this.root) return true
    const parts = relative(this.root, dir).split(sep)
    let known = parts.length
    for (let path = dir; path.length > this.root.length && !this.#knownDirs.has(path); path = dirname(path)) known--
    if (parts.length - known > 1) {
      if (create && (await this.#mkdirNew(join(this.root, ...parts.slice(0, known + 1)), dir))) return true
      const where = await this.#resolve(dir)
      if (where === 'inside') return true
      // Missing: nothing there to read or delete (no content reached), and nothing made through a link.
      if (where === 'missing' && !create) return false
    }
    // Level by level: to make what is missing, or to name what is in the way.
    let path = join(this.root, ...parts.slice(0, known))
    for (const part of parts.slice(known)) {
      path = join(path, part)
      if (this.#knownDirs.has(path)) continue
      let info = await lstat(path).catch((err: unknown) => {
        if (isErrno(err, 'ENOENT')) return undefined
        throw err
      })
      if (info === undefined) {
        if (!create) return false
        if (await this.#mkdirNew(path, dir)) return true
        info = await lstat(path) // made by a racer meanwhile
      }
      if (!info.isDirectory()) throw this.#unsafe(path, info, 'a folder')
      this.#remember(path)
    }
    return true
  }

  /**
   * Makes the folder `first` if it does not exist, then the rest of `dir` below it (ours too, as `first` is);
   * false when `first` exists already (not checked here).
   */
  async #mkdirNew(first: string, dir: string): Promise<boolean> {
    try {
      await mkdir(first, { mode: this.#dirMode })
    } catch (err) {
      if (isErrno(err, 'EEXIST')) return false
      throw err
    }
    if (dir !== first) await mkdir(dir, { recursive: true, mode: this.#dirMode })
    for (let path = dir; path !== dirname(first); path = dirname(path)) this.#remember(path)
    return true
  }

  /**
   * Where `dir` resolves: `inside` when link-free to itself below the root's real path (then every folder on the
   * way is a real folder, remembered), `missing` when something on the way does not exist, else `elsewhere`.
   */
  async #resolve(dir: string): Promise<'inside' | 'missing' | 'elsewhere'> {
    try {
      this.#realRoot ??= await realpath(this.root)
      // The trailing separator: a file in the folder's place is ENOTDIR, not a match.
      if ((await realpath(`${dir}${sep}`)) !== join(this.#realRoot, relative(this.root, dir))) return 'elsewhere'
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 'missing'
      if (isErrno(err, 'ENOTDIR', 'ELOOP')) return 'elsewhere'
      throw err
    }
    for (let path = dir; path.length > this.root.length && !this.#knownDirs.has(path); path = dirname(path)) this.#remember(path)
    return 'inside'
  }

  async #ensureDir(dir: string): Promise<void> {
    await this.#checkDirs(dir, true)
  }

  /** Whether the folder of `path` is there, checked as by #checkDirs. */
  async #parentExists(path: string): Promise<boolean> {
    return this.#checkDirs(dirname(path), false)
  }

  async #syncDir(dir: string): Promise<void> {
    if (!this.#durable) return
    await withFd(dir, 'r', fsync)
  }

  #tempPath(): string {
    return join(this.root, TEMP_DIR, `${HOST_TAG}-${process.pid}-${randomId()}.tmp`)
  }

  /**
   * Writes `body` to a new temporary file; returns its path and the version token it will have once committed.
   * `alongside` is called with the file's inode once every byte is written, and what it starts runs while the file
   * is fsynced and closed (the digest sidecar: its inode is made during the fsync, not after it); settled before
   * this returns or throws.
   */
  async #writeTemp(
    body: Buffer | Readable,
    executable: boolean,
    signal: AbortSignal | undefined,
    digest?: { readonly text: () => string; readonly final: string },
  ): Promise<{ temp: string; token: string; info: BigIntStats; sidecar?: string }> {
    const temp = this.#tempPath()
    const mode = executable ? this.#fileMode | 0o100 : this.#fileMode
    await this.#ensureDir(dirname(temp))
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
    let beside: Promise<string> | undefined
    let stopOnAbort = (): void => {}
    try {
      if (Buffer.isBuffer(body)) {
        await writeAll(fd, body)
      } else {
        // Coalesce small writes (a body callback may write a byte at a time) into large ones. An abort while the
        // body stalls destroys it, which ends the loop.
        stopOnAbort = destroyOnAbort(body, signal)
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
        stopOnAbort()
      }
      throwIfAborted(signal)
      const info = await fstat(fd, { bigint: true })
      if (digest !== undefined) {
        // On the inode, before the fsync (which makes the attribute durable with the bytes); else a sidecar, made
        // while the file is fsynced and closed (its inode is allocated meanwhile, not after).
        const text = digest.text()
        if (!(await this.#setDigestAttribute(temp, text))) {
          beside = this.#writeSidecar(digest.final, info, text)
          beside.catch(() => {})
        }
      }
      // The umask may have dropped bits: the stored mode is the store's, not the process's. Only then a chmod
      // (one round trip to the thread pool less per write otherwise); it changes the ctime, not the token.
      if (Number(info.mode & 0o7777n) !== mode) await fchmod(fd, mode)
      if (this.#durable) await fsync(fd)
      fdOpen = false
      await close(fd)
      const sidecar = await beside
      return { temp, token: tokenOf(info), info, ...(sidecar === undefined ? {} : { sidecar }) }
    } catch (err) {
      stopOnAbort()
      if (fdOpen) await close(fd).catch(() => {})
      const made = await beside?.catch(() => undefined)
      if (made !== undefined) await unlink(made).catch(() => {})
      await rm(temp, { force: true })
      throw err
    }
  }

  /**
   * Sets the digest attribute of the file at `path` (digest-attribute.ts); false where there are no attributes
   * (the module is missing, or this file system refuses user attributes: then the store stops trying) or this one
   * failed: the caller makes a sidecar instead.
   */
  async #setDigestAttribute(path: string, text: string): Promise<boolean> {
    const calls = this.#attributes
    if (calls === undefined) return false
    try {
      if ((this.#calls ?? (await this.#metadataCalls())) === directCalls) calls.setSync(path, text)
      else await calls.set(path, text)
      return true
    } catch (err) {
      if (ATTRIBUTES_UNSUPPORTED.test((err as Error).message)) {
        this.#attributes = undefined
        log('no user attributes on %s (%s): digests in sidecars', this.root, (err as Error).message)
      }
      return false
    }
  }

  /**
   * Runs `body` holding the lock of the file at `path` (key-lock.ts: one symlink to take it, one unlink to drop it).
   * Through the thread pool, as other writes: a direct call that changes a folder can wait on the file system's
   * journal, and would stop every other operation of the process meanwhile.
   */
  async #withLock<T>(path: string, body: (lock: KeyLock) => Promise<T>): Promise<T> {
    const lock = await lockKey(path, threadPoolCalls)
    try {
      return await body(lock)
    } finally {
      await lock.release()
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
          if (isErrno(err, 'EEXIST')) throw new PreconditionFailedError(key, { cause: err, mayHaveLanded: false, current: 'present' })
          throw err
        }
        await unlink(temp)
        return
      }
      // Replaces hold the key's lock too, unconditional ones included: else one landing between a compare-and-swap's
      // check and its rename would be lost while the compare-and-swap succeeds on a version no longer stored.
      await this.#withLock(final, async (lock) => {
        let replaced: BigIntStats | undefined
        if (options.ifMatch !== undefined) {
          const current = await (mayBeStoredLink(key) ? stat : lstat)(final, { bigint: true }).catch((err: unknown) => {
            if (isErrno(err, 'ENOENT')) throw new PreconditionFailedError(key, { cause: err, mayHaveLanded: false, current: 'missing' })
            throw err
          })
          if (tokenOf(current) !== options.ifMatch) throw new PreconditionFailedError(key, { mayHaveLanded: false, current: 'present' })
          replaced = current
        } else if (sidecars) {
          replaced = await (await this.#metadataCalls()).stat(final).catch(() => undefined)
        }
        await lock.check()
        await rename(temp, final)
        if (sidecars && replaced !== undefined) await (await this.#metadataCalls()).unlink(sidecarPath(final, replaced)).catch(() => {})
      })
    }
    await this.#ensureDir(dirname(final))
    try {
      await attempt()
    } catch (err) {
      if (!isErrno(err, 'ENOENT') || options.ifMatch !== undefined) throw err
      // The folder went away meanwhile (a concurrent delete of an emptied folder, a destroy): checked again, once more.
      this.#forget(dirname(final))
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
    this.#realRoot = undefined
    await this.#ensureDir(this.root)
    await this.#ensureDir(join(this.root, TEMP_DIR))
  }

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    throwIfAborted(options.signal)
    const final = this.#path(key)
    const { digest } = options
    // The digest is known once the body has ended; it is on the file (or in its sidecar) before the commit makes
    // the file visible.
    const recorded =
      digest === undefined ? undefined : { text: () => `crc32-${Buffer.from(digest(), 'base64').toString('hex')}`, final }
    let written: { temp: string; token: string; sidecar?: string } | undefined
    try {
      written = await this.#writeTemp(body, options.executable ?? false, options.signal, recorded)
      throwIfAborted(options.signal)
      await this.#commit(written.temp, final, key, options, digest !== undefined)
      return written.token
    } catch (err) {
      if (written !== undefined) await rm(written.temp, { force: true })
      if (written?.sidecar !== undefined) await unlink(written.sidecar).catch(() => {})
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
      await symlink(target, path)
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err
      await unlink(path).catch(() => {})
      await symlink(target, path)
    }
    return path
  }

  /**
   * The digest of the file at `path` opened as inode `info`: its attribute, else its sidecar's (a linked-in file,
   * a file system without attributes, a file of an earlier release), else nothing. The attribute is read by path:
   * found on another inode (the file was replaced since it was opened), it is nothing, and #getFile reads again.
   */
  async #readDigest(path: string, info: BigIntStats): Promise<{ digest?: string; unverifiable?: string }> {
    const calls = await this.#metadataCalls()
    if (attributeCalls !== undefined) {
      const direct = calls === directCalls
      const text = direct ? attributeCalls.getSync(path) : await attributeCalls.get(path)
      if (text !== undefined) return sameInode(direct ? statOrUndefined(path) : await stat(path, { bigint: true }).catch(() => undefined), info) ? digestOfText(text) : {}
    }
    try {
      return digestOfText(await calls.readlink(sidecarPath(path, info)))
    } catch (err) {
      return noSidecar(err, path)
    }
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
    if (!(await this.#parentExists(path))) throw new ObjectNotFoundError(key)
    if ((this.#calls ?? (await this.#metadataCalls())) === directCalls) {
      const direct = this.#getObjectDirect(key, path, options)
      if (direct !== undefined) return direct
    }
    let fd: number
    try {
      fd = await open(path, mayBeStoredLink(key) ? OPEN_STORED_FILE : OPEN_RECORD)
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key, { cause: err })
      if (isErrno(err, 'ELOOP', 'EMLINK')) await this.#throwIfLink(path)
      throw new JobStoreError(`cannot read ${key}`, { cause: err })
    }
    let small: Buffer | undefined
    let info: BigIntStats
    let digest: { digest?: string; unverifiable?: string } = {}
    try {
      info = await fstat(fd, { bigint: true })
      if (!info.isFile()) throw new ObjectNotFoundError(key)
      // The digest (an attribute, or a sidecar named by the inode): looked up in parallel with the read.
      const sidecar = options.lookUpDigest === true ? this.#readDigest(path, info) : undefined
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

  /**
   * #getObject with direct (synchronous) calls, on a local file system: open, fstat, readlink of the sidecar, one
   * read and close without five trips to the thread pool. Undefined when the object is too large to be read whole
   * (then read as a stream by #getObject) or the open failed with anything but "not there" (#getObject reports it).
   */
  #getObjectDirect(key: string, path: string, options: IoOptions): ObjectRead | undefined {
    let fd: number
    try {
      fd = fs.openSync(path, mayBeStoredLink(key) ? OPEN_STORED_FILE : OPEN_RECORD)
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw new ObjectNotFoundError(key, { cause: err })
      return undefined
    }
    try {
      const info = fs.fstatSync(fd, { bigint: true })
      if (!info.isFile()) throw new ObjectNotFoundError(key)
      if (info.size > SMALL_READ_BYTES) return undefined
      const digest = options.lookUpDigest === true ? this.#readDigestDirect(path, info) : {}
      const data = Buffer.allocUnsafe(Number(info.size))
      let filled = 0
      while (filled < data.length) {
        const n = fs.readSync(fd, data, filled, data.length - filled, filled)
        if (n === 0) break
        filled += n
      }
      const meta = {
        key,
        size: Number(info.size),
        version: tokenOf(info),
        executable: (info.mode & BigInt(fsConstants.S_IXUSR)) !== 0n,
        ...digest,
      }
      return objectReadOf(meta, filled === data.length ? data : data.subarray(0, filled))
    } finally {
      fs.closeSync(fd)
    }
  }

  /** #readDigest with direct calls. */
  #readDigestDirect(path: string, info: BigIntStats): { digest?: string; unverifiable?: string } {
    const text = attributeCalls?.getSync(path)
    if (text !== undefined) return sameInode(statOrUndefined(path), info) ? digestOfText(text) : {}
    try {
      return digestOfText(fs.readlinkSync(sidecarPath(path, info)))
    } catch (err) {
      return noSidecar(err, path)
    }
  }

  /** Throws UnsafeStorePathError if `path` is a link (an open without following it failed). */
  async #throwIfLink(path: string): Promise<void> {
    const info = await lstat(path).catch(() => undefined)
    if (info?.isSymbolicLink()) throw this.#unsafe(path, info, 'a file')
  }

  protected override async headObject(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#path(key)
    if (!(await this.#parentExists(path))) return undefined
    let info: BigIntStats
    try {
      info = await (mayBeStoredLink(key) ? stat : lstat)(path, { bigint: true })
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined
      throw new JobStoreError(`cannot stat ${key}`, { cause: err })
    }
    if (info.isSymbolicLink()) throw this.#unsafe(path, info, 'a file')
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
      // Nothing to delete where the folder is missing; a link in its place is refused, not followed.
      if (!(await this.#parentExists(path))) return
      try {
        // Under the lock, so that a compare-and-swap between its check and its rename cannot put back what was just
        // deleted. unlink() removes a stored link itself, never its target.
        await this.#withLock(path, async (lock) => {
          // A file's digest sidecar goes with it (named by the inode: found with a stat first).
          const calls = await this.#metadataCalls()
          const info = keepsDigest(key) ? await calls.stat(path).catch(() => undefined) : undefined
          await lock.check()
          await unlink(path)
          if (info !== undefined) await calls.unlink(sidecarPath(path, info)).catch(() => {})
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
    const dir = this.#path(prefix)
    if (!(await this.#checkDirs(dir, false))) return
    yield* this.#walk(dir, prefix)
  }

  /**
   * Every key below `dir`, a checked folder. Entries go by their own type (lstat's, from the folder listing): a
   * link is never descended. A link is listed only as a stored file (the final component of a file key); any
   * other link is an UnsafeStorePathError.
   */
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
      const key = `${keyPrefix}${entry.name}`
      if (entry.isDirectory()) {
        const sub = join(dir, entry.name)
        this.#remember(sub) // a real folder: reads of its records need not check it again
        yield* this.#walk(sub, `${key}/`)
      } else if (entry.isFile()) {
        yield { key }
      } else if (entry.isSymbolicLink()) {
        if (keys.fileIdOfKey(key) === undefined) throw this.#unsafe(join(dir, entry.name), entry, 'a file')
        yield { key }
      }
    }
  }

  /**
   * Anything in the store's own entries but the config and the marker: a link or a file where a folder belongs,
   * or any entry in those folders (our own temporary files aside, which racing initializers leave while they
   * write the marker and config). Empty folders count as nothing. lstat and one read of each folder's first
   * entries: nothing is followed.
   */
  protected override async findStoreData(): Promise<string | undefined> {
    for (const entry of OWNED_ENTRIES) {
      if (entry === 'config.json') continue
      const path = join(this.root, entry)
      let info
      try {
        info = await lstat(path)
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR')) continue
        throw err
      }
      if (!info.isDirectory()) return entry
      // The loop closes the folder, at its end or when left early.
      for await (const child of await opendir(path)) {
        if (entry === 'meta' && child.name === MARKER_NAME) continue
        if (entry === TEMP_DIR && TEMP_NAME.test(child.name)) continue
        return `${entry}/${child.name}`
      }
    }
    return undefined
  }

  /** The store's entries but the marker, removed as `rm -r` does: links are removed, never followed. */
  protected override async deleteStoreData(): Promise<void> {
    this.#knownDirs.clear()
    await Promise.all(
      OWNED_ENTRIES.filter((entry) => entry !== 'meta').map((entry) => rm(join(this.root, entry), { recursive: true, force: true })),
    )
    const meta = join(this.root, 'meta')
    const info = await lstat(meta).catch(() => undefined)
    if (info?.isDirectory() !== true) return
    const names = (await readdir(meta)).filter((name) => name !== MARKER_NAME)
    await Promise.all(names.map((name) => rm(join(meta, name), { recursive: true, force: true })))
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
      if (!(await this.#checkDirs(dir, false))) return 0
      names = await readdir(dir)
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0
      throw err
    }
    let removed = 0
    const now = Date.now()
    // Only our own temporary files (by name): files and links, removed themselves (unlink: a link's target stays).
    await forEachConcurrent(names.filter((name) => TEMP_NAME.test(name)), this.concurrency, async (name) => {
      const path = join(dir, name)
      const [host, pid] = name.split('-')
      const deadWriter = host === HOST_TAG && pid !== undefined && !processAlive(Number(pid))
      try {
        const info = await lstat(path)
        if (info.isDirectory()) return
        if (deadWriter || now - info.mtimeMs >= olderThanMs) {
          await unlink(path)
          removed++
        }
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err
      }
    })
    return removed + (await this.#removeStaleLocks())
  }

  /**
   * Removes the locks (`~lock`, `~lock~break`) of writers that died holding them, judged without waiting
   * (key-lock.ts removeStaleLock): the holder was a process of this host that is gone, or the lock is older than
   * the stale bound by the file server's clock (the mtime of a file made here first). Also the `~lock` folders of
   * releases that used proper-lockfile, once not refreshed for that long. Returns how many it removed.
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
        if (entry.name.endsWith(LOCK_SUFFIX) || entry.name.endsWith(BREAK_SUFFIX)) stale.push(join(dir, entry.name))
        else if (entry.isDirectory()) subdirs.push(join(dir, entry.name))
      }
      await forEachConcurrent(subdirs, this.concurrency, walk)
    }
    await forEachConcurrent(OWNED_ENTRIES.filter((entry) => entry !== TEMP_DIR && entry !== 'config.json'), this.concurrency, async (entry) => {
      // The walk goes by the entries' own type; its starting folders are checked first (a link is refused).
      if (await this.#checkDirs(join(this.root, entry), false)) await walk(join(this.root, entry))
    })
    if (stale.length === 0) return 0
    const serverNow = await this.#fileServerNow()
    const calls = await this.#metadataCalls()
    let removed = 0
    await forEachConcurrent(stale, this.concurrency, async (lockPath) => {
      if (await removeStaleLock(lockPath, calls, serverNow)) removed++
    })
    return removed
  }

  /** The file server's time: the mtime of a temporary file made for it (another host's clock may differ). */
  async #fileServerNow(): Promise<number> {
    const probe = this.#tempPath()
    await this.#ensureDir(dirname(probe))
    try {
      return await withFd(probe, 'wx', async (fd) => (await fstat(fd)).mtimeMs, this.#fileMode)
    } finally {
      await rm(probe, { force: true })
    }
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
        // readFile checked before; once more at the last moment, as the core's copy does.
        await refuseLocalDestination(localPath, what)
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
