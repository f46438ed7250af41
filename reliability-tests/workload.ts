/**
 * A mixed workload checked against a model: jobs (create, conditional update, load, delete, listing), files (new
 * streams small and multipart, conditional updates, reads, deletes), shared files (conditional and protected
 * writes, reads) and stats messages, run in parallel lanes that own disjoint objects, through a store whose
 * requests may fail.
 *
 * The model keeps, per object, the set of contents it may hold: one after a successful write, more after a write
 * that failed (its request may or may not have landed). Every successful read must return one of them (else it is
 * a corrupt read when the bytes were never written, or a lost write when they are an older version), and is
 * then the object's only possible content. In a lane nobody else writes the lane's objects, so a conditional
 * write that fails with ConcurrentFileModificationError while the model is certain of the version is a false
 * conflict: a retried request reported as a conflict. Every error must be a JobStoreError.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { ConcurrentFileModificationError, JobStoreError, NoSuchFileError, NoSuchJobError } from '../src/errors.js'
import { randomId } from '../src/ids.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'

export type OpName =
  | 'createJob'
  | 'updateJob'
  | 'loadJob'
  | 'deleteJob'
  | 'listJobs'
  | 'writeFile'
  | 'updateFile'
  | 'readFile'
  | 'deleteFile'
  | 'writeShared'
  | 'readShared'
  | 'writeStats'
  | 'readStats'

const WEIGHTS: Readonly<Record<OpName, number>> = {
  createJob: 12,
  updateJob: 14,
  loadJob: 14,
  deleteJob: 3,
  listJobs: 1,
  writeFile: 11,
  updateFile: 7,
  readFile: 14,
  deleteFile: 3,
  writeShared: 6,
  readShared: 6,
  writeStats: 6,
  readStats: 3,
}

const ABSENT = 'absent'

/** What the model knows of one object. */
interface ObjectState {
  /** Contents it may hold (digests, or ABSENT). */
  possible: Set<string>
  /** Its version token (job: the version number) when certain. */
  version: string | undefined
  /** Every content ever written to it, to tell a stale (lost) read from a corrupt one. */
  readonly history: Set<string>
}

function newState(): ObjectState {
  return { possible: new Set([ABSENT]), version: undefined, history: new Set() }
}

/**
 * An operation running longer than this is reported stuck. Operations are bounded but can be slow under a 10%
 * fault rate: a `readStats` drains the whole queue (several requests per message), each request may wait through
 * the SDK's backoff (up to about 20 s over its retries), and a GCS request whose answer never comes is abandoned
 * after its 60 s timeout. The slowest operation is reported in the figures.
 */
const STUCK_AFTER_MS = 180_000

export interface WorkloadOptions {
  readonly operations: number
  readonly lanes: number
  /** The backend's part size: some file writes are one to two parts larger. */
  readonly partSize: number
  /** Share of file writes that span several parts. */
  readonly bigShare?: number
  /** Jobs in the store that are not the workload's (the root job), which listings skip. */
  readonly foreignJobs?: readonly string[]
  /** What to print when an operation is stuck (the proxy's unanswered requests, say). */
  readonly describeStuck?: () => string
}

export interface WorkloadReport {
  operations: number
  byOp: Record<string, { ok: number; failed: number }>
  /** Failed operations by error code. */
  errors: Record<string, number>
  /** Error messages seen, one per operation and code (for the report). */
  samples: Record<string, string>
  /** Errors that were not JobStoreErrors (must be none). */
  rawErrors: string[]
  /** Reads that returned bytes never written (must be none). */
  corruptReads: string[]
  /** Reads or final checks that found an older version, or nothing, after a successful write (must be none). */
  lostWrites: string[]
  /** ConcurrentFileModificationErrors where nobody else wrote (must be none). */
  falseConflicts: string[]
  /** Records listed by jobs() that could not be decoded (must be none). */
  corruptRecords: string[]
  /** Stats messages handed out more than once (must be none). */
  duplicateMessages: string[]
  /** Stats messages written successfully but never handed out (must be none). */
  lostMessages: string[]
  /** Operations that ran for more than 3 minutes (must be none: a hang). */
  stuck: string[]
  bytesWritten: number
  bytesRead: number
  multipartWrites: number
  /** Objects in the model at the end and how many had an uncertain state before the final check. */
  objects: number
  uncertain: number
  /** What the final clean() did: stats claims of failed readers released, leftovers of failed writes removed. */
  releasedStatsClaims: number
  leftoversRemoved: number
}

function sha(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 32)
}

function pickWeighted<T extends string>(weights: Readonly<Record<T, number>>, random: () => number): T {
  const entries = Object.entries(weights) as [T, number][]
  let roll = random() * entries.reduce((sum, [, w]) => sum + w, 0)
  for (const [name, weight] of entries) {
    roll -= weight
    if (roll < 0) return name
  }
  return (entries[entries.length - 1] as [T, number])[0]
}

async function drain(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : (part as Buffer))
  return Buffer.concat(parts)
}

async function writeInPieces(w: NodeJS.WritableStream, data: Buffer): Promise<void> {
  let at = 0
  while (at < data.length) {
    const size = Math.min(data.length - at, 1 + Math.floor(Math.random() * 256 * 1024))
    if (!w.write(data.subarray(at, at + size))) await new Promise((resolve) => w.once('drain', resolve))
    at += size
  }
}

export class Workload {
  readonly report: WorkloadReport
  readonly #options: WorkloadOptions
  readonly #jobs = new Map<string, ObjectState & { desc?: JobDescription }>()
  readonly #files = new Map<string, ObjectState>()
  readonly #shared = new Map<string, ObjectState>()
  /** Stats messages: written for sure, maybe written (the write failed), and how often each was handed out. */
  readonly #statsWritten = new Set<string>()
  readonly #statsMaybe = new Set<string>()
  /** Being written: a reader may see a message before its writer hears back. */
  readonly #statsPending = new Set<string>()
  readonly #statsDelivered = new Map<string, number>()
  #started = 0
  #slowest = 0
  /** The longest an operation took, in ms. */
  get slowestMs(): number {
    return this.#slowest
  }

  constructor(options: WorkloadOptions) {
    this.#options = options
    this.report = {
      operations: 0,
      byOp: {},
      errors: {},
      samples: {},
      rawErrors: [],
      corruptReads: [],
      lostWrites: [],
      falseConflicts: [],
      corruptRecords: [],
      duplicateMessages: [],
      lostMessages: [],
      stuck: [],
      bytesWritten: 0,
      bytesRead: 0,
      multipartWrites: 0,
      objects: 0,
      uncertain: 0,
      releasedStatsClaims: 0,
      leftoversRemoved: 0,
    }
  }

  /** Runs the operations over `lanes` parallel lanes against `store`. */
  async run(store: AbstractJobStore): Promise<void> {
    await Promise.all(Array.from({ length: this.#options.lanes }, (_, lane) => this.#lane(store, lane)))
  }

  async #lane(store: AbstractJobStore, lane: number): Promise<void> {
    const mine = { jobs: [] as string[], files: [] as string[], shared: Array.from({ length: 3 }, (_, i) => `lane${lane}-shared${i}`) }
    for (const name of mine.shared) this.#shared.set(name, newState())
    while (this.#started < this.#options.operations) {
      this.#started++
      const op = pickWeighted(WEIGHTS, Math.random)
      const outcome = this.report.byOp[op] ?? { ok: 0, failed: 0 }
      this.report.byOp[op] = outcome
      const started = Date.now()
      const watchdog = setTimeout(() => {
        const what = `${op} (lane ${lane}, operation ${this.#started})`
        this.report.stuck.push(what)
        console.error(`[workload] ${what} has been running for 3 minutes${this.#options.describeStuck ? `; ${this.#options.describeStuck()}` : ''}`)
      }, STUCK_AFTER_MS)
      try {
        await this.#run(store, op, mine)
        outcome.ok++
      } catch (err) {
        outcome.failed++
        this.#failed(err, op)
      } finally {
        clearTimeout(watchdog)
        this.#slowest = Math.max(this.#slowest, Date.now() - started)
      }
      this.report.operations++
    }
  }

  #failed(err: unknown, op: string): void {
    if (!(err instanceof JobStoreError)) {
      this.report.rawErrors.push(`${op}: ${String((err as Error)?.stack ?? err)}`)
      return
    }
    this.report.errors[err.code] = (this.report.errors[err.code] ?? 0) + 1
    this.report.samples[`${op} ${err.code}`] ??= err.message.slice(0, 300)
  }

  /** Runs a delete, then the model knows the object is gone; after a failure, it may be gone or not. */
  async #deleteTracked(state: ObjectState, remove: () => Promise<unknown>): Promise<void> {
    try {
      await remove()
    } catch (err) {
      this.#ambiguous(state, ABSENT)
      throw err
    }
    state.possible = new Set([ABSENT])
    state.version = undefined
  }

  /**
   * Runs a write of `content` that resolves with the new version; then the model knows the object holds it.
   * A conflict reported for it is a false one (each object has one writer); after any failure, the content may
   * or may not be there.
   */
  async #writeTracked(state: ObjectState, content: string, what: string, write: () => Promise<string>): Promise<void> {
    state.history.add(content)
    let version: string
    try {
      version = await write()
    } catch (err) {
      if (err instanceof ConcurrentFileModificationError) this.report.falseConflicts.push(`${what}: ${err.message}`)
      this.#ambiguous(state, content)
      throw err
    }
    state.possible = new Set([content])
    state.version = version
  }

  /** A write failed: its content may or may not be there now. */
  #ambiguous(state: ObjectState, content: string): void {
    state.possible.add(content)
    state.version = undefined
  }

  /** A read returned `content` (or ABSENT): check it against the model, then it is all the object may hold. */
  #observed(state: ObjectState, content: string, what: string, version: string | undefined): void {
    if (!state.possible.has(content)) {
      const expected = [...state.possible].join(' | ')
      if (content === ABSENT || state.history.has(content)) this.report.lostWrites.push(`${what}: read ${content}, expected ${expected}`)
      else this.report.corruptReads.push(`${what}: read ${content}, expected ${expected}`)
    }
    state.possible = new Set([content])
    state.version = version
  }

  async #run(store: AbstractJobStore, op: OpName, mine: { jobs: string[]; files: string[]; shared: string[] }): Promise<void> {
    const anyOf = <T>(list: readonly T[]): T | undefined => list[Math.floor(Math.random() * list.length)]
    switch (op) {
      case 'createJob': {
        const desc = newJobDescription({ jobName: 'reliability' })
        const id = store.assignID(desc)
        const content = this.#fillJob(desc)
        const state = Object.assign(newState(), { desc })
        this.#jobs.set(id, state)
        mine.jobs.push(id)
        await this.#writeTracked(state, content, `create ${id}`, async () => String((await store.create(desc)).version))
        return
      }
      case 'loadJob':
      case 'updateJob': {
        const id = anyOf(mine.jobs)
        if (id === undefined) return
        const state = this.#jobs.get(id) as ObjectState & { desc?: JobDescription }
        if (op === 'loadJob' || state.version === undefined || state.possible.size !== 1) {
          await this.#loadJob(store, id, state)
          if (op === 'loadJob') return
        }
        if (state.possible.has(ABSENT) || state.desc === undefined) return
        const desc = structuredClone(state.desc)
        const content = this.#fillJob(desc)
        const ifVersion = Number(state.version)
        await this.#writeTracked(state, content, `update ${id} at ${ifVersion}`, async () => {
          try {
            return String((await store.update(desc, { ifVersion })).version)
          } catch (err) {
            if (err instanceof NoSuchJobError) this.report.lostWrites.push(`update ${id}: ${err.message}`)
            throw err
          }
        })
        state.desc = desc
        return
      }
      case 'deleteJob': {
        const id = anyOf(mine.jobs)
        if (id === undefined) return
        await this.#deleteTracked(this.#jobs.get(id) as ObjectState, () => store.delete(id))
        return
      }
      case 'listJobs': {
        for await (const desc of store.jobs({ onCorruptRecord: (err) => this.report.corruptRecords.push(err.message) })) {
          if (this.#options.foreignJobs?.includes(desc.jobStoreID as string)) continue
          const content = this.#jobContent(desc)
          if (content === undefined) this.report.corruptReads.push(`jobs() listed ${desc.jobStoreID} with a payload that does not match its digest`)
          if (!this.#jobs.has(desc.jobStoreID as string)) this.report.corruptReads.push(`jobs() listed an unknown job ${desc.jobStoreID}`)
        }
        return
      }
      case 'writeFile': {
        const data = this.#payload()
        const content = sha(data)
        let fileID: string | undefined
        let state: ObjectState | undefined
        try {
          fileID = await store.writeFileStream(async (w, id) => {
            fileID = id
            state = newState()
            state.history.add(content)
            this.#files.set(id, state)
            mine.files.push(id)
            await writeInPieces(w, data)
          })
        } catch (err) {
          if (err instanceof ConcurrentFileModificationError) this.report.falseConflicts.push(`write of new file ${fileID}: ${err.message}`)
          if (state !== undefined) this.#ambiguous(state, content)
          throw err
        }
        this.report.bytesWritten += data.length
        const written = state as ObjectState
        written.possible = new Set([content])
        written.version = await store.getFileVersion(fileID)
        return
      }
      case 'readFile':
      case 'updateFile': {
        const id = anyOf(mine.files)
        if (id === undefined) return
        const state = this.#files.get(id) as ObjectState
        if (op === 'readFile' || state.version === undefined || state.possible.size !== 1) {
          await this.#readFile(store, id, state)
          if (op === 'readFile') return
        }
        if (state.possible.has(ABSENT)) return
        const data = this.#payload()
        const content = sha(data)
        const ifVersion = state.version as string
        await this.#writeTracked(state, content, `update of file ${id}`, () =>
          store.updateFileStream(id, (w) => writeInPieces(w, data), { ifVersion }),
        )
        this.report.bytesWritten += data.length
        return
      }
      case 'deleteFile': {
        const id = anyOf(mine.files)
        if (id === undefined) return
        await this.#deleteTracked(this.#files.get(id) as ObjectState, () => store.deleteFile(id))
        return
      }
      case 'readShared':
      case 'writeShared': {
        const name = anyOf(mine.shared) as string
        const state = this.#shared.get(name) as ObjectState
        if (op === 'readShared' || state.possible.size !== 1 || (state.version === undefined && !state.possible.has(ABSENT))) {
          await this.#readShared(store, name, state)
          if (op === 'readShared') return
        }
        const data = randomBytes(Math.floor(Math.random() * 200_000))
        const content = sha(data)
        const condition = state.possible.has(ABSENT) ? { ifAbsent: true } : { ifVersion: state.version as string }
        await this.#writeTracked(state, content, `write of shared file ${name}`, () =>
          store.writeSharedFileStream(name, (w) => writeInPieces(w, data), { ...condition, isProtected: Math.random() < 0.5 }),
        )
        this.report.bytesWritten += data.length
        return
      }
      case 'writeStats': {
        const text = `message ${randomId()} ${'x'.repeat(Math.floor(Math.random() * 2000))}`
        this.#statsPending.add(text)
        try {
          await store.writeStatsAndLogging(text)
        } catch (err) {
          this.#statsMaybe.add(text)
          throw err
        } finally {
          this.#statsPending.delete(text)
        }
        this.#statsWritten.add(text)
        return
      }
      case 'readStats': {
        await store.readStatsAndLogging((text) => {
          this.#delivered(text)
        })
        return
      }
    }
  }

  #delivered(text: string): void {
    const times = (this.#statsDelivered.get(text) ?? 0) + 1
    this.#statsDelivered.set(text, times)
    if (times === 2) this.report.duplicateMessages.push(text.slice(0, 60))
    if (!this.#statsWritten.has(text) && !this.#statsMaybe.has(text) && !this.#statsPending.has(text)) this.report.corruptReads.push(`stats message never written: ${text.slice(0, 60)}`)
  }

  #fillJob(desc: JobDescription): string {
    const payload = randomBytes(Math.floor(Math.random() * 15_000)).toString('base64')
    const tag = randomId()
    desc.extra['payload'] = payload
    desc.extra['tag'] = tag
    desc.extra['digest'] = sha(`${tag}:${payload}`)
    return tag
  }

  /** The tag of a loaded job, or undefined when its payload does not match its digest. */
  #jobContent(desc: JobDescription): string | undefined {
    const { payload, tag, digest } = desc.extra as { payload?: string; tag?: string; digest?: string }
    if (typeof payload !== 'string' || typeof tag !== 'string' || digest !== sha(`${tag}:${payload}`)) return undefined
    return tag
  }

  #payload(): Buffer {
    const big = Math.random() < (this.#options.bigShare ?? 0.06)
    if (big) this.report.multipartWrites++
    const size = big
      ? this.#options.partSize + 1 + Math.floor(Math.random() * this.#options.partSize)
      : Math.floor(Math.random() * 96 * 1024)
    return randomBytes(size)
  }

  async #loadJob(store: AbstractJobStore, id: string, state: ObjectState & { desc?: JobDescription }): Promise<void> {
    let desc: JobDescription
    try {
      desc = await store.load(id)
    } catch (err) {
      if (err instanceof NoSuchJobError) {
        this.#observed(state, ABSENT, `job ${id}`, undefined)
        return
      }
      throw err
    }
    const content = this.#jobContent(desc)
    if (content === undefined) {
      this.report.corruptReads.push(`job ${id}: payload does not match its digest`)
      return
    }
    this.#observed(state, content, `job ${id}`, String(desc.version))
    state.desc = desc
  }

  async #readFile(store: AbstractJobStore, id: string, state: ObjectState): Promise<void> {
    let data: Buffer
    let version: string
    try {
      const stream = await store.readFileStream(id)
      version = stream.version
      data = await drain(stream)
    } catch (err) {
      if (err instanceof NoSuchFileError) {
        this.#observed(state, ABSENT, `file ${id}`, undefined)
        return
      }
      throw err
    }
    this.report.bytesRead += data.length
    this.#observed(state, sha(data), `file ${id}`, version)
  }

  async #readShared(store: AbstractJobStore, name: string, state: ObjectState): Promise<void> {
    let data: Buffer
    let version: string
    try {
      const stream = await store.readSharedFileStream(name)
      version = stream.version
      data = await drain(stream)
    } catch (err) {
      if (err instanceof NoSuchFileError) {
        this.#observed(state, ABSENT, `shared file ${name}`, undefined)
        return
      }
      throw err
    }
    this.report.bytesRead += data.length
    this.#observed(state, sha(data), `shared file ${name}`, version)
  }

  /**
   * The final check, through a store without faults: every object holds one of its possible contents, jobs()
   * lists every job whole, and every stats message is handed out exactly once (once at most for those whose
   * write failed). In between, `clean()` (the store needs a root job) releases the claims of readers that
   * failed and removes the leftovers of failed writes; it also deletes the workload's jobs, which are not
   * reachable from the root.
   */
  async verify(store: AbstractJobStore): Promise<void> {
    this.report.objects = this.#jobs.size + this.#files.size + this.#shared.size
    for (const state of [...this.#jobs.values(), ...this.#files.values(), ...this.#shared.values()]) {
      if (state.possible.size > 1) this.report.uncertain++
    }
    for (const [id, state] of this.#jobs) await this.#loadJob(store, id, state)
    for (const [id, state] of this.#files) await this.#readFile(store, id, state)
    for (const [name, state] of this.#shared) await this.#readShared(store, name, state)
    const listed = new Set<string>()
    for await (const desc of store.jobs({ onCorruptRecord: (err) => this.report.corruptRecords.push(err.message) })) {
      if (this.#options.foreignJobs?.includes(desc.jobStoreID as string)) continue
      listed.add(desc.jobStoreID as string)
      if (this.#jobContent(desc) === undefined) this.report.corruptReads.push(`final jobs(): ${desc.jobStoreID} does not match its digest`)
    }
    for (const [id, state] of this.#jobs) {
      const present = !state.possible.has(ABSENT)
      if (present !== listed.has(id)) this.report.lostWrites.push(`final jobs(): ${id} ${present ? 'missing' : 'listed but deleted'}`)
    }
    await store.clean(undefined, {
      leftoverAgeMs: 0,
      onReport: (report) => {
        this.report.releasedStatsClaims = report.releasedStatsClaims
        this.report.leftoversRemoved = report.leftoversRemoved
      },
    })
    await store.readStatsAndLogging((text) => {
      this.#delivered(text)
    })
    for (const text of this.#statsWritten) {
      if (!this.#statsDelivered.has(text)) this.report.lostMessages.push(text.slice(0, 60))
    }
  }
}
