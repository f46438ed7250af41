// @ts-check
/**
 * A backend written as an outside author would write one: plain JavaScript, importing only the package's public
 * entry points (`jobstore`), registered with `registerBackend`. It exists to run the conformance suite against the
 * published surface (`outside.test.js`), so it is small rather than fast.
 *
 * `folder:<absolute path>`: a folder per key under `<root>/objects/` (the key percent-encoded into one name), holding
 * every version of the object as a file named by its sequence number. A write makes a temporary file (the bytes, then
 * a JSON trailer of metadata and the trailer's length in 8 bytes) and links it into the next free number: `link()`
 * fails on an existing name, so among racing writers exactly one takes each number, across processes. The highest
 * number is the current version (its number is the version token); a delete links a tombstone. Versions are never
 * removed while the store lives (a reused number would let a stale compare-and-swap through): a test backend only.
 * A read opens the current version's file: the open descriptor keeps it whole while newer versions are linked.
 */
import { link, mkdir, open, readdir, rm, stat, unlink } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import {
  AbstractJobStore,
  InvalidArgumentError,
  JobStoreError,
  ObjectNotFoundError,
  PreconditionFailedError,
  UnsupportedOperationError,
  objectReadOf,
  registerBackend,
  throwIfAborted,
} from 'jobstore'

const TRAILER_LENGTH_BYTES = 8
const SMALL_READ_BYTES = 256 * 1024

/** @param {unknown} err @param {string[]} codes */
function isErrno(err, ...codes) {
  return typeof err === 'object' && err !== null && codes.includes(/** @type {{ code?: string }} */ (err).code ?? '')
}

/** @param {number} pid */
function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return !isErrno(err, 'ESRCH')
  }
}

export class FolderJobStore extends AbstractJobStore {
  /** @param {string} locator @param {import('jobstore').JobStoreOptions} [options] */
  constructor(locator, options = {}) {
    super(locator, options)
    const path = locator.slice('folder:'.length)
    if (!locator.startsWith('folder:') || !isAbsolute(path)) throw new InvalidArgumentError(`invalid folder locator ${locator}`)
    this.root = path
  }

  /** @param {string} key */
  #keyDir(key) {
    return join(this.root, 'objects', encodeURIComponent(key))
  }

  /** The highest version number in the key's folder, 0 when there is none. @param {string} key */
  async #latest(key) {
    let names
    try {
      names = await readdir(this.#keyDir(key))
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0
      throw new JobStoreError(`cannot list the versions of ${key}`, { cause: err })
    }
    return names.reduce((max, name) => Math.max(max, Number(name) || 0), 0)
  }

  /**
   * The current version of `key`, opened: its descriptor, metadata and data size; undefined when absent or deleted.
   * @param {string} key
   */
  async #openCurrent(key) {
    return this.#openVersion(key, await this.#latest(key))
  }

  /** Version `seq` of `key`, opened (as #openCurrent). @param {string} key @param {number} seq */
  async #openVersion(key, seq) {
    if (seq === 0) return undefined
    const handle = await open(join(this.#keyDir(key), String(seq)), 'r')
    try {
      const { size } = await handle.stat()
      const length = Buffer.alloc(TRAILER_LENGTH_BYTES)
      await handle.read(length, 0, TRAILER_LENGTH_BYTES, size - TRAILER_LENGTH_BYTES)
      const trailerLength = Number(length.readBigUInt64BE())
      const trailer = Buffer.alloc(trailerLength)
      const dataSize = size - TRAILER_LENGTH_BYTES - trailerLength
      await handle.read(trailer, 0, trailerLength, dataSize)
      /** @type {{ deleted?: boolean, executable?: boolean, digest?: string, writeToken?: string }} */
      const meta = JSON.parse(trailer.toString('utf8'))
      if (meta.deleted === true) {
        await handle.close()
        return undefined
      }
      /** @type {import('jobstore').ObjectInfo} */
      const info = {
        key,
        size: dataSize,
        version: String(seq),
        executable: meta.executable === true,
        ...(meta.digest !== undefined ? { digest: meta.digest } : {}),
        ...(meta.writeToken !== undefined ? { writeToken: meta.writeToken } : {}),
      }
      return { handle, info }
    } catch (err) {
      await handle.close()
      throw err
    }
  }

  /** A temporary file named by this process (removeLeftovers spares live writers'). */
  #tempPath() {
    return join(this.root, 'tmp', `${process.pid}-${randomBytes(12).toString('hex')}`)
  }

  /**
   * Links the finished temporary file `temp` in as the next version of `key`, if `expected` (the current number
   * the condition needs; undefined: any) still holds. Returns the version number.
   * @param {string} key @param {string} temp @param {{ ifNoneMatch?: boolean, ifMatch?: string }} condition
   */
  async #commit(key, temp, condition) {
    await mkdir(this.#keyDir(key), { recursive: true })
    for (;;) {
      const seq = await this.#latest(key)
      if (condition.ifNoneMatch === true || condition.ifMatch !== undefined) {
        const current = await this.#openVersion(key, seq)
        await current?.handle.close()
        if (condition.ifNoneMatch === true && current !== undefined) throw new PreconditionFailedError(key)
        if (condition.ifMatch !== undefined && current?.info.version !== condition.ifMatch) throw new PreconditionFailedError(key)
        // Another version may have come between the check and the link: then the number is taken, and link fails.
      }
      try {
        await link(temp, join(this.#keyDir(key), String(seq + 1)))
        return seq + 1
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err
        if (condition.ifNoneMatch === true || condition.ifMatch !== undefined) throw new PreconditionFailedError(key, { cause: err })
      }
    }
  }

  /** Writes `body`, then the trailer, to a new temporary file. @param {Buffer | import('node:stream').Readable} body @param {() => object} meta @param {AbortSignal | undefined} signal */
  async #writeTemp(body, meta, signal) {
    const temp = this.#tempPath()
    const handle = await open(temp, 'wx')
    try {
      if (Buffer.isBuffer(body)) {
        await handle.write(body)
      } else {
        for await (const chunk of body) {
          throwIfAborted(signal)
          await handle.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
        }
      }
      throwIfAborted(signal)
      const trailer = Buffer.from(JSON.stringify(meta()), 'utf8')
      const length = Buffer.alloc(TRAILER_LENGTH_BYTES)
      length.writeBigUInt64BE(BigInt(trailer.length))
      await handle.write(Buffer.concat([trailer, length]))
      await handle.sync()
      await handle.close()
      return temp
    } catch (err) {
      await handle.close().catch(() => {})
      await rm(temp, { force: true })
      throwIfAborted(signal)
      throw err
    }
  }

  /** Every file's digest is kept in its trailer. */
  get keepsFileDigests() {
    return true
  }

  /** Conditions are `link()`'s own on a local file system: nothing to prove. */
  async conditionalWriteProofTarget() {
    return undefined
  }

  async createStorage() {
    await mkdir(join(this.root, 'objects'), { recursive: true })
    await mkdir(join(this.root, 'tmp'), { recursive: true })
  }

  /** @param {string} key @param {Buffer | import('node:stream').Readable} body @param {import('jobstore').PutOptions} options */
  async putObject(key, body, options) {
    throwIfAborted(options.signal)
    await this.createStorage()
    const temp = await this.#writeTemp(
      body,
      () => ({
        executable: options.executable === true,
        ...(options.digest !== undefined ? { digest: options.digest() } : {}),
        ...(options.writeToken !== undefined ? { writeToken: options.writeToken } : {}),
      }),
      options.signal,
    )
    try {
      return String(await this.#commit(key, temp, options))
    } finally {
      await rm(temp, { force: true })
    }
  }

  /** @param {string} key */
  async getObject(key) {
    const current = await this.#openCurrent(key)
    if (current === undefined) throw new ObjectNotFoundError(key)
    const { handle, info } = current
    if (info.size <= SMALL_READ_BYTES) {
      try {
        const data = Buffer.alloc(info.size)
        if (info.size > 0) await handle.read(data, 0, info.size, 0)
        return objectReadOf(info, data)
      } finally {
        await handle.close()
      }
    }
    // The stream owns the descriptor: it reads the version it opened, whatever is linked meanwhile.
    return { ...info, body: handle.createReadStream({ start: 0, end: info.size - 1 }) }
  }

  /** @param {string} key */
  async headObject(key) {
    const current = await this.#openCurrent(key)
    await current?.handle.close()
    return current?.info
  }

  /** @param {readonly string[]} keys */
  async deleteObjects(keys) {
    for (const key of keys) {
      if ((await this.headObject(key)) === undefined) continue
      const temp = await this.#writeTemp(Buffer.alloc(0), () => ({ deleted: true }), undefined)
      try {
        await this.#commit(key, temp, {})
      } finally {
        await rm(temp, { force: true })
      }
    }
  }

  /** @param {string} prefix */
  async *listObjects(prefix) {
    let names
    try {
      names = await readdir(join(this.root, 'objects'))
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return
      throw err
    }
    for (const name of names) {
      const key = decodeURIComponent(name)
      if (!key.startsWith(prefix)) continue
      const info = await this.headObject(key)
      if (info !== undefined) yield { key, size: info.size }
    }
  }

  /** The folder is the store's: all of it goes. */
  async destroyStorage() {
    await rm(this.root, { recursive: true, force: true })
  }

  async getObjectUrl() {
    throw new UnsupportedOperationError('folder: files end with a metadata trailer, so no URL serves their bytes alone')
  }

  /** Temporary files of writers that died, or older than `olderThanMs`. @param {number} olderThanMs */
  async removeLeftovers(olderThanMs) {
    let names
    try {
      names = await readdir(join(this.root, 'tmp'))
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0
      throw err
    }
    let removed = 0
    for (const name of names) {
      const path = join(this.root, 'tmp', name)
      const info = await stat(path).catch(() => undefined)
      if (info === undefined) continue
      if (!alive(Number(name.split('-')[0])) || Date.now() - info.mtimeMs >= olderThanMs) {
        await unlink(path).catch(() => {})
        removed++
      }
    }
    return removed
  }
}

/** @type {import('jobstore').JobStoreBackend} */
export const backend = {
  schemes: ['folder'],
  create: (locator, options) => new FolderJobStore(locator, options),
}

registerBackend(backend)
