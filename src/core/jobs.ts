/**
 * Jobs: create (alone or in a `batch()`), load, update with compare-and-swap, delete with the job's cleanup files,
 * the listing behind `jobs()`, and the root job's marker. Keeps the version tokens of jobs this store read or
 * wrote, which save a round trip on `update(…, {ifVersion})`.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { debuglog } from 'node:util'
import { forEachConcurrent, mapConcurrent } from '../concurrency.js'
import { ConcurrentFileModificationError, CorruptRecordError, NoSuchJobError } from '../errors.js'
import { checkJobId, keys } from '../ids.js'
import { checkJobDescription, decodeJob, encodeJob, type JobDescription } from '../job-description.js'
import { openJson, openText, sealJson, sealText } from '../record-check.js'
import { ObjectNotFoundError, PreconditionFailedError, type ObjectRead } from '../storage.js'
import { io, type SignalOptions, type StoreContext } from './context.js'
import { bytesOf, deletePrefix, putConditional } from './objects.js'

const log = debuglog('jobstore')

/** How many version tokens are kept; the oldest goes first. */
const TOKEN_CACHE_LIMIT = 50_000

/** Options of `jobs()`. */
export interface JobsOptions extends SignalOptions {
  /** Called for each record that cannot be decoded; such records are skipped. */
  readonly onCorruptRecord?: (error: CorruptRecordError) => void
}

/** Loads a job by ID: the store's public `load` (so that each load is traced as an operation of its own). */
export type LoadJob = (jobStoreID: string, options: SignalOptions) => Promise<JobDescription>

/** The jobs of one store. */
export class Jobs {
  /** Version tokens of jobs this instance has read or written: saves a round trip on `update(…, {ifVersion})`. */
  readonly #tokens = new Map<string, { version: number; token: string }>()
  readonly #batch = new AsyncLocalStorage<JobDescription[]>()

  constructor(private readonly store: StoreContext) {}

  /** `batch()`: see `AbstractJobStore.batch`. */
  async batch<T>(body: () => Promise<T>): Promise<T> {
    if (this.#batch.getStore() !== undefined) return body()
    const queue: JobDescription[] = []
    const result = await this.#batch.run(queue, body)
    // Checked again before anything is written: a job changed after its create() call must not be half the batch.
    for (const desc of queue) checkJobDescription(desc)
    await forEachConcurrent(queue, this.store.storage.concurrency, (desc) => this.#createNow(desc, {}, desc.version))
    return result
  }

  /** `create()`: see `AbstractJobStore.create`. */
  async create(desc: JobDescription, options: SignalOptions): Promise<JobDescription> {
    checkJobId(desc.jobStoreID)
    checkJobDescription(desc)
    if (desc.remainingTryCount === undefined) desc.remainingTryCount = this.store.config.retryCount + 1
    const queue = this.#batch.getStore()
    if (queue !== undefined) {
      desc.version = (desc.version ?? 0) + 1
      queue.push(desc)
      return desc
    }
    await this.#createNow(desc, options, (desc.version ?? 0) + 1)
    return desc
  }

  async #createNow(desc: JobDescription, options: SignalOptions, version: number): Promise<void> {
    const id = desc.jobStoreID as string
    const record = { ...desc, version }
    let token: string
    try {
      token = await putConditional(this.store.storage, keys.job(id), sealJson(encodeJob(record)), { ifNoneMatch: true, ...io(options.signal) })
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        throw new ConcurrentFileModificationError(`job ${id}`, { cause: err, message: `job ${id} already exists` })
      }
      throw err
    }
    desc.version = version
    this.#rememberToken(id, version, token)
  }

  /** Whether a job with this ID exists. */
  async exists(jobStoreID: string, signal: AbortSignal | undefined): Promise<boolean> {
    return (await this.store.storage.headObject(keys.job(jobStoreID), io(signal))) !== undefined
  }

  /** The job and its version token. */
  async read(id: string, signal: AbortSignal | undefined): Promise<{ desc: JobDescription; token: string }> {
    let object: ObjectRead
    try {
      object = await this.store.storage.getObject(keys.job(id), io(signal))
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new NoSuchJobError(id, { cause: err })
      throw err
    }
    const bytes = openJson(await bytesOf(object, `job ${id}`), `job ${id}`, this.store.strict, (unchecked) => decodeJob(unchecked, id))
    const desc = decodeJob(bytes, id)
    this.#rememberToken(id, desc.version, object.version)
    return { desc, token: object.version }
  }

  #rememberToken(id: string, version: number, token: string): void {
    this.#tokens.delete(id)
    if (this.#tokens.size >= TOKEN_CACHE_LIMIT) {
      const oldest = this.#tokens.keys().next()
      if (!oldest.done) this.#tokens.delete(oldest.value)
    }
    this.#tokens.set(id, { version, token })
  }

  /** Forgets every version token (the store was destroyed). */
  forget(): void {
    this.#tokens.clear()
  }

  /** `update()`: see `AbstractJobStore.update`. */
  async update(desc: JobDescription, options: SignalOptions & { ifVersion?: number }): Promise<JobDescription> {
    checkJobId(desc.jobStoreID)
    checkJobDescription(desc)
    const id = desc.jobStoreID
    const storage = this.store.storage
    let ifMatch: string | undefined
    let next = (desc.version ?? 0) + 1
    if (options.ifVersion !== undefined) {
      const cached = this.#tokens.get(id)
      if (cached !== undefined && cached.version === options.ifVersion) {
        ifMatch = cached.token
      } else {
        const current = await this.read(id, options.signal)
        if (current.desc.version !== options.ifVersion) {
          throw new ConcurrentFileModificationError(`job ${id}`, {
            message: `job ${id} is at version ${current.desc.version}, not ${options.ifVersion}`,
          })
        }
        ifMatch = current.token
      }
      next = options.ifVersion + 1
    } else {
      const cached = this.#tokens.get(id)
      if (cached !== undefined) next = Math.max(next, cached.version + 1)
    }
    let token: string
    try {
      token = await putConditional(storage, keys.job(id), sealJson(encodeJob({ ...desc, version: next })), {
        ...(ifMatch !== undefined ? { ifMatch } : {}),
        ...io(options.signal),
      })
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        this.#tokens.delete(id)
        // The backend's answer, or the write-token lookup, may have told already: no second lookup.
        const current = err.current ?? ((await storage.headObject(keys.job(id), io(options.signal))) === undefined ? 'missing' : 'present')
        if (current === 'missing') {
          throw new NoSuchJobError(id, { cause: err })
        }
        throw new ConcurrentFileModificationError(`job ${id}`, {
          cause: err,
          message: `job ${id} was modified concurrently (expected version ${options.ifVersion})`,
        })
      }
      throw err
    }
    desc.version = next
    this.#rememberToken(id, next, token)
    return desc
  }

  /** `delete()`: see `AbstractJobStore.delete`. */
  async delete(jobStoreID: string, signal: AbortSignal | undefined): Promise<void> {
    const key = keys.job(jobStoreID)
    // Files first: a retry after a crash still finds the job and finishes the work.
    await deletePrefix(this.store.storage, keys.cleanupFilesPrefix(jobStoreID), signal)
    await this.store.storage.deleteObjects([key], io(signal))
    this.#tokens.delete(jobStoreID)
  }

  /**
   * Every job, loaded through `load` with bounded parallelism while the listing goes on; tells `onCorrupt` the ID
   * of each record that cannot be decoded (from its key, not its message). Jobs deleted meanwhile are left out.
   */
  async *list(load: LoadJob, options: SignalOptions, onCorrupt: (id: string, error: CorruptRecordError) => void): AsyncGenerator<JobDescription> {
    const storage = this.store.storage
    const loaded = mapConcurrent(storage.listObjects(keys.jobsPrefix, io(options.signal)), storage.concurrency, async (object) => {
      const id = keys.jobIdOfKey(object.key)
      if (id === undefined) return undefined
      try {
        return await load(id, options)
      } catch (err) {
        if (err instanceof NoSuchJobError) return undefined
        if (err instanceof CorruptRecordError) {
          log('skipping %s', err.message)
          onCorrupt(id, err)
          return undefined
        }
        throw err
      }
    })
    for await (const desc of loaded) if (desc !== undefined) yield desc
  }

  /** Records `rootJobStoreID` as the workflow's root job. */
  async setRoot(rootJobStoreID: string, signal: AbortSignal | undefined): Promise<void> {
    checkJobId(rootJobStoreID)
    await this.store.storage.putObject(keys.rootJob, sealText(Buffer.from(rootJobStoreID, 'utf8')), io(signal))
  }

  /** The root job's ID. @throws NoSuchJobError when none is set. */
  async rootId(signal: AbortSignal | undefined): Promise<string> {
    try {
      const what = 'the root job marker'
      const object = await this.store.storage.getObject(keys.rootJob, io(signal))
      return openText(await bytesOf(object, what), what, this.store.strict).toString('utf8')
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw new NoSuchJobError('(root)', { cause: err, message: 'no root job is set in this job store' })
      }
      throw err
    }
  }
}
