/**
 * A small workflow engine that embeds jobstore the way a real one would (Toil, jobflow, hymir), written to be
 * read. Several worker processes share one store and coordinate only through it:
 *
 * - A job is a `JobDescription`; the engine keeps its own state in `extra`: the function to run, its arguments
 *   (which may reference other jobs' outputs, `{ $ref: jobID }`), a state, the output.
 * - Children run after their parent; follow-ons after their parent and everything below its children.
 * - A worker claims a ready job by compare-and-swap (`update(desc, { ifVersion })`): of several workers that
 *   race for a job, exactly one wins. No leader, no lock server.
 * - A job function returns a result in the spirit of hymir: Success (with an output), Failure, Retry (counts
 *   against `remainingTryCount`), or CheckLater (run again later, e.g. waiting for an external event).
 *   It may add jobs (children, follow-ons) as jobflow's `Response.addition`/`detour` do.
 * - After a crash, `resume()` runs `clean()` and puts jobs that were running back to pending; finished jobs keep
 *   their outputs and are not run again.
 */
import type { AbstractJobStore } from '../../src/abstract-job-store.js'
import { ConcurrentFileModificationError } from '../../src/errors.js'
import { newJobDescription, type JobDescription, type JsonObject, type JsonValue } from '../../src/job-description.js'

/** What a job function returns. */
export type JobResult =
  | { kind: 'success'; output: JsonValue }
  | { kind: 'failure'; reason: string }
  | { kind: 'retry'; reason: string }
  | { kind: 'checkLater'; afterMs: number }

export const Success = (output: JsonValue): JobResult => ({ kind: 'success', output })
export const Failure = (reason: string): JobResult => ({ kind: 'failure', reason })
export const Retry = (reason: string): JobResult => ({ kind: 'retry', reason })
export const CheckLater = (afterMs: number): JobResult => ({ kind: 'checkLater', afterMs })

/** A new job a function asks for. */
export interface JobSpec {
  fn: string
  args: JsonObject
  name?: string
}

/** What a job function gets: the store, its own description, resolved arguments, and ways to add jobs. */
export interface JobContext {
  readonly store: AbstractJobStore
  readonly job: JobDescription
  /** Arguments with every `{ $ref: jobID }` replaced by that job's output. */
  readonly args: JsonObject
  /** Adds a child (runs after this job) and returns its ID, usable in `{ $ref }`. */
  addChild(spec: JobSpec): string
  /** Adds a follow-on (runs after this job and all its children's subtrees). */
  addFollowOn(spec: JobSpec): string
}

export type JobFunction = (ctx: JobContext) => Promise<JobResult>

/** Engine state of a job, kept in `extra.state`. */
export type JobState = 'pending' | 'running' | 'done' | 'failed'

interface EngineExtra {
  fn: string
  args: JsonObject
  state: JobState
  /** The job that added this one; it is not ready before that job is done and lists it. */
  addedBy?: string
  output?: JsonValue
  reason?: string
  notBefore?: number
  claimedBy?: string
  [key: string]: JsonValue | undefined
}

function engineExtra(desc: JobDescription): EngineExtra {
  return desc.extra as unknown as EngineExtra
}

/** Builds a job description for a spec (ID assigned, not yet created). */
export function jobFor(store: AbstractJobStore, spec: JobSpec, addedBy?: string): JobDescription {
  const extra: EngineExtra = { fn: spec.fn, args: spec.args, state: 'pending', ...(addedBy ? { addedBy } : {}) }
  const desc = newJobDescription({ jobName: spec.name ?? spec.fn, extra: extra as unknown as JsonObject })
  store.assignID(desc)
  return desc
}

/** Starts a workflow: creates the root job in a new store. */
export async function startWorkflow(store: AbstractJobStore, root: JobSpec): Promise<string> {
  const desc = jobFor(store, root)
  await store.createRootJob(desc)
  return desc.jobStoreID as string
}

/**
 * Prepares a store whose previous run was interrupted: `clean()` repairs the job graph, and jobs left running by
 * dead workers go back to pending. Done jobs stay done.
 */
export async function recoverWorkflow(store: AbstractJobStore): Promise<{ reset: number }> {
  await store.clean()
  let reset = 0
  for await (const desc of store.jobs()) {
    const extra = engineExtra(desc)
    if (extra.state === 'running') {
      extra.state = 'pending'
      delete extra.claimedBy
      await store.update(desc, { ifVersion: desc.version })
      reset++
    }
  }
  return { reset }
}

/** A snapshot of the workflow: every job, and what is ready to run. */
export interface Snapshot {
  jobs: Map<string, JobDescription>
  ready: JobDescription[]
  finished: boolean
  failed: JobDescription[]
}

/** Reads every job and works out which are ready (pending, predecessors done, not waiting). */
export async function snapshot(store: AbstractJobStore, now = Date.now()): Promise<Snapshot> {
  const jobs = new Map<string, JobDescription>()
  for await (const desc of store.jobs()) jobs.set(desc.jobStoreID as string, desc)
  // Predecessors: a child waits for its parent; a follow-on for its parent and the parent's children subtrees.
  const parents = new Map<string, string[]>()
  const followOnOf = new Map<string, string[]>()
  for (const desc of jobs.values()) {
    for (const child of desc.children) parents.set(child, [...(parents.get(child) ?? []), desc.jobStoreID as string])
    for (const next of desc.followOns) followOnOf.set(next, [...(followOnOf.get(next) ?? []), desc.jobStoreID as string])
  }
  const subtreeDone = (id: string, seen = new Set<string>()): boolean => {
    if (seen.has(id)) return true
    seen.add(id)
    const desc = jobs.get(id)
    if (desc === undefined) return true
    if (engineExtra(desc).state !== 'done') return false
    return [...desc.children, ...desc.followOns].every((next) => subtreeDone(next, seen))
  }
  const ready: JobDescription[] = []
  const failed: JobDescription[] = []
  for (const desc of jobs.values()) {
    const extra = engineExtra(desc)
    if (extra.state === 'failed') failed.push(desc)
    if (extra.state !== 'pending' || (extra.notBefore ?? 0) > now) continue
    const id = desc.jobStoreID as string
    if (extra.addedBy !== undefined) {
      // Created by a job that has not recorded it yet (it may still fail or crash): not part of the graph yet.
      const parent = jobs.get(extra.addedBy)
      const listed = parent !== undefined && [...parent.children, ...parent.followOns].includes(id)
      if (!listed || engineExtra(parent).state !== 'done') continue
    }
    const parentsDone = (parents.get(id) ?? []).every((p) => engineExtra(jobs.get(p) as JobDescription).state === 'done')
    const followOnReady = (followOnOf.get(id) ?? []).every((p) => {
      const parent = jobs.get(p) as JobDescription
      return engineExtra(parent).state === 'done' && parent.children.every((c) => subtreeDone(c))
    })
    if (parentsDone && followOnReady) ready.push(desc)
  }
  const finished = [...jobs.values()].every((d) => engineExtra(d).state === 'done') || failed.length > 0
  return { jobs, ready, finished, failed }
}

/** Tries to claim a job for this worker; false if another worker got it first. */
export async function claim(store: AbstractJobStore, desc: JobDescription, worker: string): Promise<boolean> {
  const extra = engineExtra(desc)
  extra.state = 'running'
  extra.claimedBy = worker
  try {
    await store.update(desc, { ifVersion: desc.version })
    return true
  } catch (err) {
    if (err instanceof ConcurrentFileModificationError) return false
    throw err
  }
}

function resolveRefs(value: JsonValue, jobs: Map<string, JobDescription>): JsonValue {
  if (Array.isArray(value)) return value.map((v) => resolveRefs(v, jobs))
  if (value !== null && typeof value === 'object') {
    if (typeof value['$ref'] === 'string' && Object.keys(value).length === 1) {
      const source = jobs.get(value['$ref'])
      if (source === undefined) throw new Error(`reference to unknown job ${value['$ref']}`)
      return engineExtra(source).output ?? null
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveRefs(v, jobs)]))
  }
  return value
}

/**
 * Runs one claimed job and records its result. New jobs it added are created in one `batch()` before the job is
 * marked done, so a crash in between leaves the job running (redone after recovery), never done with its
 * successors missing.
 */
export async function runJob(
  store: AbstractJobStore,
  desc: JobDescription,
  jobs: Map<string, JobDescription>,
  functions: Record<string, JobFunction>,
): Promise<JobResult> {
  const extra = engineExtra(desc)
  const fn = functions[extra.fn]
  const added: { desc: JobDescription; as: 'child' | 'followOn' }[] = []
  let result: JobResult
  try {
    if (fn === undefined) throw new Error(`unknown job function ${extra.fn}`)
    result = await fn({
      store,
      job: desc,
      args: resolveRefs(extra.args, jobs) as JsonObject,
      addChild: (spec) => {
        const child = jobFor(store, spec, desc.jobStoreID)
        added.push({ desc: child, as: 'child' })
        return child.jobStoreID as string
      },
      addFollowOn: (spec) => {
        const next = jobFor(store, spec, desc.jobStoreID)
        added.push({ desc: next, as: 'followOn' })
        return next.jobStoreID as string
      },
    })
  } catch (err) {
    result = Retry((err as Error).message)
  }
  if (result.kind === 'success') {
    await store.batch(async () => {
      for (const { desc: next } of added) await store.create(next)
    })
    for (const { desc: next, as } of added) (as === 'child' ? desc.children : desc.followOns).push(next.jobStoreID as string)
    extra.state = 'done'
    extra.output = result.output
  } else if (result.kind === 'checkLater') {
    extra.state = 'pending'
    extra.notBefore = Date.now() + result.afterMs
  } else if (result.kind === 'retry' && (desc.remainingTryCount ?? 1) > 1) {
    desc.remainingTryCount = (desc.remainingTryCount ?? 1) - 1
    extra.state = 'pending'
    extra.reason = result.reason
  } else {
    extra.state = 'failed'
    extra.reason = result.kind === 'failure' || result.kind === 'retry' ? result.reason : 'failed'
  }
  delete extra.claimedBy
  await store.update(desc, { ifVersion: desc.version })
  return result
}

/**
 * A worker's loop: snapshot, claim a ready job, run it; until the workflow is finished (or `signal` aborts).
 * Returns how many jobs this worker ran.
 */
export async function workerLoop(
  store: AbstractJobStore,
  functions: Record<string, JobFunction>,
  options: {
    worker: string
    pollMs?: number
    signal?: AbortSignal
    onJob?: (desc: JobDescription, result: JobResult) => void | Promise<void>
  },
): Promise<number> {
  let ran = 0
  for (;;) {
    if (options.signal?.aborted) return ran
    const state = await snapshot(store)
    if (state.finished) return ran
    let progressed = false
    // Start from a different job in each worker, so that workers rarely race for the same one.
    const offset = Math.floor(Math.random() * Math.max(1, state.ready.length))
    for (let i = 0; i < state.ready.length && !progressed; i++) {
      const desc = state.ready[(i + offset) % state.ready.length] as JobDescription
      if (await claim(store, desc, options.worker)) {
        const result = await runJob(store, desc, state.jobs, functions)
        await options.onJob?.(desc, result)
        ran++
        progressed = true
      }
    }
    if (!progressed) await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50))
  }
}
