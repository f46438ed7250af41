/**
 * What a backend author hands to the conformance suite, and the helpers the test groups share.
 */
import { createHash, randomBytes } from 'node:crypto'
import { onTestFinished, type TestContext } from 'vitest'
import type { AbstractJobStore, JobStoreConfigInit } from '../src/abstract-job-store.js'
import { openJobStore } from '../src/open.js'
import type { Readable } from 'node:stream'
import type { IoOptions, PutOptions, StoragePrimitives } from '../src/storage.js'
import '../src/builtin-backends.js'
import { runWorker, startWorker, type WorkerProcess, type WorkerRequest, type WorkerResult } from './processes.js'

export type { WorkerProcess, WorkerRequest, WorkerResult } from './processes.js'

/**
 * Optional features and known gaps. `true`: supported, tested. `{ unsupported: reason }`: a known gap of the
 * backend or its emulator: the tests of that feature show as skipped in the report, with the capability's name and
 * the reason (vitest's `ctx.skip(note)`), and the suite checks the backend reports the gap honestly where it can
 * (a backend without public URLs: `getPublicUrl` is an `UnsupportedOperationError`). A reason is required (more
 * than 10 characters): a gap without one fails.
 */
export type Capability = true | { readonly unsupported: string }

/** The capabilities the suite knows, all `true` unless declared otherwise. */
export interface Capabilities {
  /**
   * `getPublicUrl()` and `getSharedPublicUrl()` give URLs at all. Unsupported: they reject with
   * `UnsupportedOperationError` (code `UNSUPPORTED`) for a file that exists (`NoSuchFileError` for one that does not),
   * and the tests of fetching and expiry are skipped.
   */
  readonly publicUrls: Capability
  /** `getPublicUrl()` URLs can be fetched without credentials (http(s)) or read (file:). */
  readonly fetchablePublicUrls: Capability
  /** Public URLs carry an expiry. */
  readonly expiringPublicUrls: Capability
  /**
   * The harness can count leftovers of interrupted writes (`countLeftovers`). Declare it unsupported, with the
   * reason, when the service cannot list them (GCS resumable sessions): the leftovers test is then skipped.
   */
  readonly countableLeftovers: Capability
  /**
   * Other processes reach the store by its locator (and the environment): the tests with racing, counting, killed
   * and reading child processes (`worker.ts`). Unsupported for a store that lives in one process (the memory
   * backend): those tests are skipped, and `jobstore verify` runs in this process instead of a child.
   */
  readonly multipleProcesses: Capability
  /**
   * A read in progress keeps seeing the object it opened, whole, while the object is replaced or deleted (a file
   * descriptor on the file system; versions the service keeps serving in S3, Azure and GCS). Unsupported where the
   * server cuts such a read (MinIO): jobstore then fails the read (`the object was replaced or deleted while it was
   * read`), never hands out a mix.
   */
  readonly readSnapshots: Capability
  /**
   * The harness can leave what a writer killed mid-upload leaves (`abandonUpload`: an S3 multipart upload never
   * completed, Azure blocks never committed, a temporary file), so that `removeLeftovers` and `destroyStorage` are
   * tested on it. Unsupported where nothing of an upload can outlive its writer (the memory backend) or the
   * service cannot list what is left (GCS resumable sessions).
   */
  readonly abandonedUploads: Capability
  /**
   * The backend keeps the core's `writeToken` with the object and returns it from `getObject` and `headObject`
   * (the write-token protocol). Unsupported for a backend that never retries a write, so that a failed condition
   * never hides its own success (the file system).
   */
  readonly storedWriteTokens: Capability
  /**
   * The server enforces what a public URL allows: reading only, until its expiry. Unsupported where it does not
   * (an emulator that checks no signature; `file:` URLs, governed by the folder's mode).
   */
  readonly enforcedPublicUrls: Capability
  /**
   * An abort ends a write whose body has stalled (it neither ends nor fails): the write rejects with `AbortedError`
   * and commits nothing. Unsupported for a backend that looks at the signal only once the body has ended; declare
   * it with the reason and fix the backend: a stalled body then holds its write until the body ends.
   */
  readonly abortsStalledWrites: Capability
  /**
   * A store at the root of its storage ({@link ConformanceHarness.newBucketLocator}) owns only its layout there:
   * stores under that root, and names that start like the layout's entries, survive its destroy. Unsupported for a
   * backend whose store owns its whole location (a folder removed whole).
   */
  readonly sharedRoots: Capability
}

/** What a backend author passes to {@link defineConformanceSuite}. */
export interface ConformanceHarness {
  /** Shown in test names. */
  readonly name: string
  /** A fresh, unused locator each call (a random prefix in a shared bucket, a new temporary folder). */
  newLocator(): string | Promise<string>
  /** Declared capabilities and gaps; unlisted ones are `true`. */
  readonly capabilities?: Partial<Capabilities>
  /**
   * Leftovers of interrupted writes under the locator that no reader sees but that cost (abandoned multipart
   * uploads, uncommitted blocks, temporary files). Atomicity tests check it is 0 after a failed write.
   */
  countLeftovers?(locator: string): Promise<number>
  /**
   * Changes one byte (at `offset`) of the object stored at the store-relative `key` of the store at `locator`,
   * behind the store's back and keeping everything the store keeps beside the bytes (metadata, the digest): as a
   * disk, a bad copy or a server would. Through the real SDK or file system. The integrity tests need it.
   */
  corruptObject?(locator: string, key: string, offset: number): Promise<void>
  /** The backend's upload part size, so that sizes one under, at and over it are tested. Default 5 MiB. */
  readonly partSize?: number
  /**
   * The storage group (`storage-tests.ts`) calls the primitives directly: a store at `locator` with the smallest
   * part size the backend takes ({@link storagePartSize}), so that part edges cost little. Default: `openJobStore`.
   */
  openStore?(locator: string): AbstractJobStore | Promise<AbstractJobStore>
  /** The part size of the stores {@link openStore} gives. Default: {@link partSize}. */
  readonly storagePartSize?: number
  /**
   * A locator at the root of storage that does not exist yet (a new bucket or container, a folder not yet made),
   * for the tests of missing storage, of its creation by racing stores, and of a store at a bucket's root (see
   * the `sharedRoots` capability). Without it the first two use {@link newLocator} (a fresh prefix).
   */
  newBucketLocator?(): string | Promise<string>
  /** Removes what {@link newBucketLocator} named, once the stores in it are destroyed (an empty bucket). */
  removeBucket?(locator: string): Promise<void>
  /**
   * Leaves at the store-relative `key` of the store at `locator` what a writer killed mid-upload leaves (see the
   * `abandonedUploads` capability), through the real SDK or file system; {@link countLeftovers} then counts it.
   */
  abandonUpload?(locator: string, key: string): Promise<void>
  /**
   * A module (path or file: URL) child processes import before opening a locator, for a backend not built into
   * jobstore: it should call `registerBackend()`. Child processes inherit the environment.
   */
  readonly setupModule?: string
}

/** The context every test group receives. */
export interface SuiteContext {
  readonly harness: ConformanceHarness
  readonly partSize: number
  capability(name: keyof Capabilities): Capability
  /**
   * Skips the running test (vitest's `skip(note)`: shown as skipped with `<name> unsupported: <reason>`) when the
   * harness declares `name` unsupported; checks the declared reason first. Call it first thing in a test of that
   * feature.
   */
  requireCapability(test: TestContext, name: keyof Capabilities): void
  /** A new, initialized store, destroyed and closed when the test ends. */
  freshStore(config?: JobStoreConfigInit): Promise<{ store: AbstractJobStore; locator: string }>
  /** A second instance of an existing store, as a worker on another host would open it; closed when the test ends. */
  reopen(locator: string): Promise<AbstractJobStore>
  /** The part size of {@link openStore}'s stores. */
  readonly storagePartSize: number
  /**
   * A store at `locator` for calling the primitives (the harness's `openStore`), not initialized; its storage
   * destroyed (`destroyStorage`) and the store closed when the test ends, in the reverse order of opening.
   */
  openStore(locator: string): Promise<{ store: AbstractJobStore; storage: StorageProbe }>
  /**
   * The harness's `newBucketLocator` (or, with `{ root: false }`, `newLocator` when it has none); the bucket removed
   * after the test's stores. `root: true` (the default) fails a harness without it that declares `sharedRoots`.
   */
  newBucketLocator(options?: { root?: boolean }): Promise<string>
  /** The harness's `abandonUpload` (tests that call it require `abandonedUploads`). */
  abandonUpload(locator: string, key: string): Promise<void>
  /** Leftovers under the locator (0 when the harness cannot count them). */
  leftovers(locator: string): Promise<number>
  /**
   * Runs a scenario of `worker.ts` in a child process to its end (only in tests that require `multipleProcesses`;
   * the harness's `setupModule` is added to the request).
   */
  runWorker(request: WorkerRequest, options?: { timeoutMs?: number }): Promise<WorkerResult>
  /** Starts a scenario in a child process and hands back the process (to wait for its lines, to kill it). */
  startWorker(request: WorkerRequest): WorkerProcess
}

/** A store's destroy after a test (vitest's hook default, 10 s, is short for a store of many objects on a service). */
export const CLEANUP_TIMEOUT_MS = 120_000

/** Fails a declared gap without a reason; returns the capability. */
function checkedCapability(harness: ConformanceHarness, name: keyof Capabilities): Capability {
  const capability = harness.capabilities?.[name] ?? true
  if (capability !== true && !(typeof capability.unsupported === 'string' && capability.unsupported.trim().length > 10)) {
    throw new Error(`capability ${name} is declared unsupported without a reason: give { unsupported: '<why>' }`)
  }
  return capability
}

/**
 * The storage primitives of a store (protected members of `AbstractJobStore`), for tests that call them directly,
 * as the core does.
 */
export interface StorageProbe extends Omit<StoragePrimitives, 'putObject'> {
  putObject(key: string, body: Buffer | Readable, options?: PutOptions): Promise<string>
  removeLeftovers(olderThanMs: number, options?: IoOptions): Promise<number>
}

/** The primitives of `store`, bound to it (the only place the tests reach past the public API to them). */
export function primitivesOf(store: AbstractJobStore): StorageProbe {
  const inner = store as unknown as StorageProbe
  return {
    createStorage: inner.createStorage.bind(store),
    putObject: (key, body, options = {}) => inner.putObject.call(store, key, body, options),
    getObject: inner.getObject.bind(store),
    headObject: inner.headObject.bind(store),
    deleteObjects: inner.deleteObjects.bind(store),
    listObjects: inner.listObjects.bind(store),
    destroyStorage: inner.destroyStorage.bind(store),
    getObjectUrl: inner.getObjectUrl.bind(store),
    removeLeftovers: inner.removeLeftovers.bind(store),
  }
}

export function makeContext(harness: ConformanceHarness): SuiteContext {
  /** The request as the harness's child processes get it (and a test that forgot its capability, failed). */
  const forHarness = (request: WorkerRequest): WorkerRequest => {
    if (checkedCapability(harness, 'multipleProcesses') !== true) {
      throw new Error(`worker ${request.scenario}: the harness declares multipleProcesses unsupported; the test must require it`)
    }
    return harness.setupModule === undefined ? request : { ...request, setupModule: harness.setupModule }
  }
  return {
    harness,
    partSize: harness.partSize ?? 5 * 1024 * 1024,
    capability: (name) => checkedCapability(harness, name),
    requireCapability(test, name) {
      const capability = checkedCapability(harness, name)
      if (capability !== true) test.skip(`${name} unsupported: ${capability.unsupported}`)
    },
    async freshStore(config) {
      const locator = await harness.newLocator()
      const store = await openJobStore(locator)
      await store.initialize(config)
      onTestFinished(async () => {
        try {
          await store.destroy()
        } finally {
          await store.close()
        }
      }, CLEANUP_TIMEOUT_MS)
      return { store, locator }
    },
    async reopen(locator) {
      const store = await openJobStore(locator)
      onTestFinished(() => store.close(), CLEANUP_TIMEOUT_MS)
      await store.resume()
      return store
    },
    storagePartSize: harness.storagePartSize ?? harness.partSize ?? 5 * 1024 * 1024,
    async openStore(locator) {
      const store = await (harness.openStore?.(locator) ?? openJobStore(locator))
      const storage = primitivesOf(store)
      onTestFinished(async () => {
        try {
          await storage.destroyStorage()
        } finally {
          await store.close()
        }
      }, CLEANUP_TIMEOUT_MS)
      return { store, storage }
    },
    async newBucketLocator(options = {}) {
      if (harness.newBucketLocator === undefined) {
        if (options.root !== false) throw new Error('the harness has no newBucketLocator: supply it or declare sharedRoots unsupported with a reason')
        return harness.newLocator()
      }
      const locator = await harness.newBucketLocator()
      // Registered before the test's stores: vitest runs onTestFinished callbacks last registered first.
      if (harness.removeBucket !== undefined) onTestFinished(() => harness.removeBucket?.(locator), CLEANUP_TIMEOUT_MS)
      return locator
    },
    async abandonUpload(locator, key) {
      if (checkedCapability(harness, 'abandonedUploads') !== true) {
        throw new Error('abandonUpload: the harness declares abandonedUploads unsupported; the test must require it')
      }
      if (harness.abandonUpload === undefined) {
        throw new Error('the harness has no abandonUpload: supply it or declare abandonedUploads unsupported with a reason')
      }
      await harness.abandonUpload(locator, key)
    },
    leftovers: async (locator) => {
      const capability = checkedCapability(harness, 'countableLeftovers')
      if (harness.countLeftovers === undefined) {
        // Not silently 0: a harness either counts leftovers or declares why it cannot.
        if (capability === true) throw new Error('the harness has no countLeftovers: supply it or declare countableLeftovers unsupported with a reason')
        return 0
      }
      return harness.countLeftovers(locator)
    },
    startWorker: (request) => startWorker(forHarness(request)),
    runWorker: (request, options) => runWorker(forHarness(request), options),
  }
}

/** Deterministic-size random bytes. */
export function randomPayload(size: number): Buffer {
  return randomBytes(size)
}

/** SHA-256 of a buffer, hex. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Reads a stream to a Buffer (test helper; the library itself never buffers files). */
export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : (part as Buffer))
  return Buffer.concat(parts)
}

/** Writes `data` to a writable in chunks of `chunkSize`, honouring backpressure. */
export async function writeChunks(writable: NodeJS.WritableStream, data: Buffer, chunkSize: number): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const ok = writable.write(data.subarray(offset, offset + chunkSize))
    if (!ok) await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => { writable.removeListener('error', onError); resolve() }
      const onError = (err: Error): void => { writable.removeListener('drain', onDrain); reject(err) }
      writable.once('drain', onDrain)
      writable.once('error', onError)
    })
  }
}

/** Calls `fn` and returns the error it throws (failing if it does not). */
export async function caught(fn: () => Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected an error, but the call succeeded')
}
