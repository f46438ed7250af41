/**
 * The memory backend: a job store in this process's memory, for engines' unit tests (what Go CDK's memblob,
 * OpenDAL's memory service and object_store's InMemory are to their users), and the reference implementation of
 * the storage primitives (`src/storage.ts`).
 *
 * - Locators `memory:<name>`: every store of one process opened with the same name shares the same objects; other
 *   processes see nothing of them (declared to the conformance suite as `multipleProcesses` unsupported).
 * - Objects are immutable once committed: a put builds a new object and swaps it in with one synchronous step,
 *   after its body has ended, so conditional writes are atomic (JavaScript runs one step at a time) and a read in
 *   progress keeps the object it opened (a snapshot) while the key is replaced or deleted.
 * - Stored bytes are copies in blocks of up to {@link BLOCK_BYTES}, taken as the body streams in (a body written a
 *   byte at a time is coalesced); reads hand out copies of at most a block at a time, pulled as the reader
 *   consumes them, so no caller can change stored bytes and a read needs one block beside the store.
 * - Version tokens come from one counter per process: a key deleted and written again never repeats a token.
 * - No URLs: objects live in this process, so `getPublicUrl` is an `UnsupportedOperationError`.
 */
import { Readable } from 'node:stream'
import { AbstractJobStore, type JobStoreOptions } from '../../src/abstract-job-store.js'
import { destroyOnAbort, throwIfAborted } from '../../src/concurrency.js'
import { AbortedError, InvalidArgumentError, UnsupportedOperationError } from '../../src/errors.js'
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

/** Stored bytes are kept, and handed to readers, in blocks of at most this size. */
const BLOCK_BYTES = 64 * 1024
/** Objects up to this size are handed to the core whole (`ObjectRead.data`: no stream for a job record). */
const SMALL_READ_BYTES = 256 * 1024
/** Names: printable ASCII but space, at most 1,024 characters. */
const NAME = /^[!-~]{1,1024}$/

/** One committed object: never changed after it is stored (a replace stores another). */
interface StoredObject {
  readonly blocks: readonly Buffer[]
  readonly size: number
  readonly version: string
  readonly executable: boolean
  readonly writeToken?: string
  readonly digest?: string
}

/** The objects of one named store, and the writes in progress on it (leftovers if one were ever left). */
interface MemoryBucket {
  readonly objects: Map<string, StoredObject>
  uploadsInProgress: number
}

interface Registry {
  readonly buckets: Map<string, MemoryBucket>
  generation: number
}

/**
 * One registry per process, on `globalThis`: two copies of this module (the package's build and its sources, or two
 * installed versions) still share the stores of one name.
 */
const REGISTRY_KEY = Symbol.for('jobstore.memory.registry')
const registry: Registry = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] as Registry | undefined) ??
  ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] = { buckets: new Map(), generation: 0 } satisfies Registry) as Registry

/** Parses `memory:<name>` into the store's name. */
export function parseMemoryLocator(locator: string): string {
  const name = locator.startsWith('memory:') ? locator.slice('memory:'.length) : undefined
  if (name === undefined || !NAME.test(name)) {
    throw new InvalidArgumentError(`invalid memory locator ${JSON.stringify(locator)}: expected memory:<name> (printable, no spaces)`)
  }
  return name
}

function bucketOf(name: string): MemoryBucket {
  let bucket = registry.buckets.get(name)
  if (bucket === undefined) {
    bucket = { objects: new Map(), uploadsInProgress: 0 }
    registry.buckets.set(name, bucket)
  }
  return bucket
}

function infoOf(key: string, object: StoredObject): ObjectInfo {
  return {
    key,
    size: object.size,
    version: object.version,
    executable: object.executable,
    ...(object.writeToken !== undefined ? { writeToken: object.writeToken } : {}),
    ...(object.digest !== undefined ? { digest: object.digest } : {}),
  }
}

/** Copies of the object's bytes, at most a block at a time, made as the reader pulls them. */
function* copiesOf(blocks: readonly Buffer[]): Generator<Buffer> {
  for (const block of blocks) {
    for (let offset = 0; offset < block.length; offset += BLOCK_BYTES) {
      yield Buffer.from(block.subarray(offset, offset + BLOCK_BYTES))
    }
  }
}

/** Reads `body` into blocks of at most {@link BLOCK_BYTES} (copies: the writer may reuse its buffers). */
async function blocksOf(body: Buffer | Readable, signal: AbortSignal | undefined): Promise<{ blocks: Buffer[]; size: number }> {
  if (Buffer.isBuffer(body)) return { blocks: body.length === 0 ? [] : [Buffer.from(body)], size: body.length }
  // An abort while the body waits for its writer ends the wait: the body is destroyed, as an SDK's upload would.
  const unlink = destroyOnAbort(body, signal)
  try {
    return await readBlocks(body, signal)
  } finally {
    unlink()
  }
}

async function readBlocks(body: Readable, signal: AbortSignal | undefined): Promise<{ blocks: Buffer[]; size: number }> {
  const blocks: Buffer[] = []
  let block = Buffer.allocUnsafe(BLOCK_BYTES)
  let filled = 0
  let size = 0
  for await (const chunk of body) {
    throwIfAborted(signal)
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
    for (let offset = 0; offset < data.length; ) {
      const n = data.copy(block, filled, offset)
      filled += n
      offset += n
      if (filled === BLOCK_BYTES) {
        blocks.push(block)
        block = Buffer.allocUnsafe(BLOCK_BYTES)
        filled = 0
      }
    }
    size += data.length
  }
  if (filled > 0) blocks.push(Buffer.from(block.subarray(0, filled)))
  return { blocks, size }
}

/** A job store in this process's memory: `memory:<name>`. */
export class MemoryJobStore extends AbstractJobStore {
  /** The store's name: stores of one process opened with the same name share their objects. */
  readonly name: string

  constructor(locator: string, options: JobStoreOptions = {}) {
    super(locator, options)
    this.name = parseMemoryLocator(locator)
  }

  /** The named store's objects; made on first use, so that writes work before `createStorage()` as in a bucket. */
  get #bucket(): MemoryBucket {
    return bucketOf(this.name)
  }

  /** Every file's digest is kept with the object. */
  protected override get keepsFileDigests(): boolean {
    return true
  }

  /**
   * No conditional-write proof: the conditions are checked and the object swapped in by this process's own code in
   * one synchronous step, not by a service that might ignore them.
   */
  protected override async conditionalWriteProofTarget(): Promise<undefined> {
    return undefined
  }

  protected override async createStorage(): Promise<void> {
    bucketOf(this.name)
  }

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    throwIfAborted(options.signal)
    const bucket = this.#bucket
    bucket.uploadsInProgress++
    let read: { blocks: Buffer[]; size: number }
    try {
      try {
        read = await blocksOf(body, options.signal)
      } catch (err) {
        // An abort while the body was streaming is the core's AbortedError, not whatever the stream made of it.
        throwIfAborted(options.signal)
        throw err
      }
      throwIfAborted(options.signal)
    } finally {
      bucket.uploadsInProgress--
    }
    // From here to the swap nothing awaits: the condition holds when the object is stored.
    const digest = options.digest?.()
    const current = bucket.objects.get(key)
    // Nothing is ever retried here: a failed condition never hides this write's success, and says what is there.
    if (options.ifNoneMatch === true && current !== undefined) {
      throw new PreconditionFailedError(key, { mayHaveLanded: false, current: 'present' })
    }
    if (options.ifMatch !== undefined && current?.version !== options.ifMatch) {
      throw new PreconditionFailedError(key, { mayHaveLanded: false, current: current === undefined ? 'missing' : 'present' })
    }
    const version = `m${(++registry.generation).toString(36)}`
    bucket.objects.set(key, {
      blocks: read.blocks,
      size: read.size,
      version,
      executable: options.executable === true,
      ...(options.writeToken !== undefined ? { writeToken: options.writeToken } : {}),
      ...(digest !== undefined ? { digest } : {}),
    })
    return version
  }

  protected override async getObject(key: string, options: IoOptions = {}): Promise<ObjectRead> {
    throwIfAborted(options.signal)
    // The object as it is now: a replace or delete after this line does not change what this read returns.
    const object = registry.buckets.get(this.name)?.objects.get(key)
    if (object === undefined) throw new ObjectNotFoundError(key)
    const info = infoOf(key, object)
    if (object.size <= SMALL_READ_BYTES) return objectReadOf(info, Buffer.concat(object.blocks, object.size))
    return { ...info, body: Readable.from(copiesOf(object.blocks), { objectMode: false, highWaterMark: BLOCK_BYTES }) }
  }

  protected override async headObject(key: string, options: IoOptions = {}): Promise<ObjectInfo | undefined> {
    throwIfAborted(options.signal)
    const object = registry.buckets.get(this.name)?.objects.get(key)
    return object === undefined ? undefined : infoOf(key, object)
  }

  protected override async deleteObjects(keys: readonly string[], options: IoOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    const objects = registry.buckets.get(this.name)?.objects
    for (const key of keys) objects?.delete(key)
  }

  protected override async *listObjects(prefix: string, options: IoOptions = {}): AsyncGenerator<ListedObject> {
    const objects = registry.buckets.get(this.name)?.objects
    if (objects === undefined) return
    // A Map's iterator follows changes made meanwhile: a key present for the whole listing is listed once.
    for (const [key, object] of objects) {
      throwIfAborted(options.signal)
      if (key.startsWith(prefix)) yield { key, size: object.size }
    }
  }

  /** The whole named store is this store's: every object goes, then the name. */
  protected override async destroyStorage(): Promise<void> {
    const bucket = registry.buckets.get(this.name)
    if (bucket === undefined) return
    bucket.objects.clear()
    // A write still streaming keeps the name: its object lands in the same map, as it would in a bucket.
    if (bucket.uploadsInProgress === 0) registry.buckets.delete(this.name)
  }

  protected override async getObjectUrl(): Promise<string> {
    throw new UnsupportedOperationError('the memory backend has no URLs: its objects live in this process only')
  }
}

/**
 * The objects of the named store and its writes in progress, for the conformance harness (`memory.test.ts`), which
 * changes stored bytes behind the store's back and counts leftovers. Not part of the package's API.
 * @internal
 */
export function memoryBucketForTests(name: string): MemoryBucket | undefined {
  return registry.buckets.get(name)
}
