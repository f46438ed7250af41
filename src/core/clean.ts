/**
 * `clean()` and `reachability()`: the walk of the job graph from the root, and the repairs `clean()` makes (as
 * Toil's `clean`), then the release of stale stats claims and the removal of leftovers.
 */
import { debuglog } from 'node:util'
import { forEachConcurrent } from '../concurrency.js'
import { CorruptRecordError, InvalidArgumentError, NoSuchJobError } from '../errors.js'
import { keys } from '../ids.js'
import type { JobDescription } from '../job-description.js'
import { io, type SignalOptions, type StoreContext } from './context.js'
import type { Jobs, JobsOptions } from './jobs.js'
import { releaseStaleStatsClaims } from './stats.js'

const log = debuglog('jobstore')

/** Options of `clean()`. */
export interface CleanOptions extends JobsOptions {
  /** Leftovers (temporary files, uploads, stats claims) younger than this are kept. Default 15 minutes. */
  readonly leftoverAgeMs?: number
  /** Receives what `clean()` did. */
  readonly onReport?: (report: CleanReport) => void
}

/** What `clean()` did. */
export interface CleanReport {
  readonly reachableJobs: number
  /** Jobs deleted: unreachable ones and those in `jobsToDelete`. */
  readonly deletedJobs: string[]
  /** Jobs rewritten: files or jobs to delete cleared, successors dropped, tries reset, log dropped. */
  readonly repairedJobs: string[]
  /** Files deleted through `filesToDelete` and `logJobStoreFileID`. */
  readonly deletedFiles: string[]
  /** Stats claims of crashed readers released. */
  readonly releasedStatsClaims: number
  /** Leftovers of interrupted writes removed (temporary files, uploads). */
  readonly leftoversRemoved: number
  /**
   * Job records that could not be decoded, sorted. They are kept, with every reference to them, except those
   * named in a `jobsToDelete` (then also in `deletedJobs`).
   */
  readonly corruptJobs: string[]
  /**
   * Unreachable jobs kept because a reachable record could not be decoded: they may be its successors. Deleted by
   * the first `clean()` that can read every reachable record, if still unreachable then.
   */
  readonly keptUnreachableJobs: string[]
}

/** What `reachability()` finds; every list sorted. */
export interface ReachabilityReport {
  readonly rootJobStoreID: string
  /** Jobs the root reaches over children, follow-ons and services (the root included). */
  readonly reachable: string[]
  /** Jobs the walk did not reach: `clean()` deletes them, unless `reachedCorrupt` is not empty. */
  readonly unreachable: string[]
  /** Reachable job records that cannot be decoded: their successors are unknown. */
  readonly reachedCorrupt: string[]
  /** Successors named by a reachable job that do not exist (`clean()` drops them). */
  readonly missing: string[]
}

/** A job cache for `clean()`: job descriptions by ID. */
export type JobCache = ReadonlyMap<string, JobDescription> | Readonly<Record<string, JobDescription>>

/**
 * The store's public job methods, which the walk and the repairs go through: each call is an operation of its
 * own (traced as a child of `clean()`), and a backend's override of one is honoured.
 */
export interface JobMethods {
  loadRootJob(options?: SignalOptions): Promise<JobDescription>
  load(jobStoreID: string, options?: SignalOptions): Promise<JobDescription>
  delete(jobStoreID: string, options?: SignalOptions): Promise<void>
  update(desc: JobDescription, options?: SignalOptions): Promise<JobDescription>
}

type OnCorrupt = (id: string, err: CorruptRecordError) => void

/** The graph of one store, as `clean()` and `reachability()` walk it. */
export interface JobGraph {
  readonly store: StoreContext
  readonly jobs: Jobs
  readonly methods: JobMethods
}

/** `clean()`: see `AbstractJobStore.clean`. */
export async function cleanStore(graph: JobGraph, jobCache: JobCache | undefined, options: CleanOptions): Promise<JobDescription> {
  const { store, methods } = graph
  const storage = store.storage
  const signal = options.signal
  const { root, all, corrupt, reachable, reachedCorrupt } = await walkGraph(graph, jobCache, options)

  const unreachable = [...all.values()].filter((desc) => !reachable.has(desc.jobStoreID as string))
  const keptUnreachable = reachedCorrupt.size > 0 ? unreachable.map((desc) => desc.jobStoreID as string) : []
  if (keptUnreachable.length > 0) {
    log('clean: %d unreachable job(s) kept: they may be below the damaged record(s) %s', keptUnreachable.length, [...reachedCorrupt].join(', '))
  }
  const deleted = new Set<string>()
  const deletedFiles: string[] = []
  await forEachConcurrent(reachedCorrupt.size > 0 ? [] : unreachable, storage.concurrency, async (desc) => {
    deletedFiles.push(...(await deleteFiles(store, desc.filesToDelete, signal)))
    await methods.delete(desc.jobStoreID as string, options)
    deleted.add(desc.jobStoreID as string)
  })

  const tries = store.config.retryCount + 1
  const repaired: JobDescription[] = []
  await forEachConcurrent(reachable, storage.concurrency, async (id) => {
    const desc = all.get(id) as JobDescription
    let changed = false
    if (desc.filesToDelete.length > 0) {
      deletedFiles.push(...(await deleteFiles(store, desc.filesToDelete, signal)))
      desc.filesToDelete = []
      changed = true
    }
    if (desc.jobsToDelete.length > 0) {
      await forEachConcurrent(desc.jobsToDelete, storage.concurrency, async (gone) => {
        try {
          await methods.delete(gone, options)
          deleted.add(gone)
        } catch (err) {
          if (!(err instanceof InvalidArgumentError)) throw err
          log('ignoring invalid job ID %s in jobsToDelete of %s', gone, id)
        }
      })
      desc.jobsToDelete = []
      changed = true
    }
    if (desc.remainingTryCount !== tries) {
      desc.remainingTryCount = tries
      changed = true
    }
    if (desc.logJobStoreFileID !== undefined) {
      deletedFiles.push(...(await deleteFiles(store, [desc.logJobStoreFileID], signal)))
      delete desc.logJobStoreFileID
      changed = true
    }
    if (changed) repaired.push(desc)
  })
  // Successors are dropped after all deletions, so that a job deleted through another's jobsToDelete goes too.
  // A damaged record stays a successor: it exists, only it cannot be read now.
  const alive = (id: string): boolean => (all.has(id) || corrupt.has(id)) && !deleted.has(id)
  for (const id of reachable) {
    const desc = all.get(id) as JobDescription
    const before = desc.children.length + desc.followOns.length + desc.services.length
    desc.children = desc.children.filter(alive)
    desc.followOns = desc.followOns.filter(alive)
    desc.services = desc.services.filter(alive)
    if (desc.children.length + desc.followOns.length + desc.services.length !== before && !repaired.includes(desc)) {
      repaired.push(desc)
    }
  }
  await forEachConcurrent(repaired, storage.concurrency, async (desc) => {
    if (!deleted.has(desc.jobStoreID as string)) await methods.update(desc, options)
  })

  const age = options.leftoverAgeMs ?? 15 * 60 * 1000
  const releasedStatsClaims = await releaseStaleStatsClaims(store, age, signal)
  const removed = await storage.removeLeftovers(age, io(signal))
  log('clean: %d reachable, %d deleted, %d repaired, %d leftovers removed', reachable.size, deleted.size, repaired.length, removed)
  options.onReport?.({
    reachableJobs: reachable.size + reachedCorrupt.size,
    deletedJobs: [...deleted],
    repairedJobs: repaired.filter((d) => !deleted.has(d.jobStoreID as string)).map((d) => d.jobStoreID as string),
    deletedFiles,
    releasedStatsClaims,
    leftoversRemoved: removed,
    corruptJobs: [...corrupt].sort(),
    keptUnreachableJobs: keptUnreachable.sort(),
  })
  return root
}

/** `reachability()`: see `AbstractJobStore.reachability`. */
export async function reachabilityOf(graph: JobGraph, jobCache: JobCache | undefined, options: JobsOptions): Promise<ReachabilityReport> {
  const { root, all, reachable, reachedCorrupt, absent } = await walkGraph(graph, jobCache, options)
  return {
    rootJobStoreID: root.jobStoreID as string,
    reachable: [...reachable].sort(),
    unreachable: [...all.keys()].filter((id) => !reachable.has(id)).sort(),
    reachedCorrupt: [...reachedCorrupt].sort(),
    missing: [...absent].sort(),
  }
}

/**
 * The root job, every job known (from `jobCache` or a listing, then those the walk loaded), the records that
 * cannot be decoded (each reported to `onCorruptRecord`), and what the walk from the root found.
 */
async function walkGraph(
  graph: JobGraph,
  jobCache: JobCache | undefined,
  options: JobsOptions,
): Promise<{
  root: JobDescription
  all: Map<string, JobDescription>
  corrupt: Set<string>
  reachable: Set<string>
  reachedCorrupt: Set<string>
  absent: Set<string>
}> {
  const root = await graph.methods.loadRootJob(options)
  const all = new Map<string, JobDescription>()
  const corrupt = new Set<string>()
  const onCorrupt: OnCorrupt = (id, err) => {
    corrupt.add(id)
    options.onCorruptRecord?.(err)
  }
  await collectJobs(graph, all, jobCache, options, onCorrupt)
  const rootID = root.jobStoreID as string
  all.set(rootID, root)
  return { root, all, corrupt, ...(await walkFromRoot(graph, rootID, all, corrupt, onCorrupt, options)) }
}

/** The jobs of `jobCache`, or else of a listing (reporting undecodable records to `onCorrupt`), into `all`. */
async function collectJobs(
  graph: JobGraph,
  all: Map<string, JobDescription>,
  jobCache: JobCache | undefined,
  options: SignalOptions,
  onCorrupt: OnCorrupt,
): Promise<void> {
  if (jobCache !== undefined) {
    const entries = jobCache instanceof Map ? jobCache.values() : Object.values(jobCache as Record<string, JobDescription>)
    for (const desc of entries) if (desc.jobStoreID !== undefined) all.set(desc.jobStoreID, desc)
  } else {
    const load = (id: string, loadOptions: SignalOptions): Promise<JobDescription> => graph.methods.load(id, loadOptions)
    for await (const desc of graph.jobs.list(load, options, onCorrupt)) all.set(desc.jobStoreID as string, desc)
  }
}

/**
 * The walk of the job graph from the root over children, follow-ons and services, shared by `clean()` and
 * `reachability()`. Breadth first, so that successors missing from `all` are looked up together, in parallel;
 * those found are added to `all`, those whose record cannot be decoded to `corrupt` (through `onCorrupt`).
 */
async function walkFromRoot(
  graph: JobGraph,
  rootID: string,
  all: Map<string, JobDescription>,
  corrupt: ReadonlySet<string>,
  onCorrupt: OnCorrupt,
  options: SignalOptions,
): Promise<{ reachable: Set<string>; reachedCorrupt: Set<string>; absent: Set<string> }> {
  const reachable = new Set<string>()
  const reachedCorrupt = new Set<string>()
  const absent = new Set<string>()
  let frontier = [rootID]
  while (frontier.length > 0) {
    const next: string[] = []
    const unknown = new Set<string>()
    for (const id of frontier) {
      if (reachable.has(id) || reachedCorrupt.has(id) || absent.has(id)) continue
      if (corrupt.has(id)) {
        reachedCorrupt.add(id)
        continue
      }
      const desc = all.get(id)
      if (desc === undefined) {
        unknown.add(id)
        continue
      }
      reachable.add(id)
      next.push(...desc.children, ...desc.followOns, ...desc.services)
    }
    await forEachConcurrent(unknown, graph.store.storage.concurrency, async (id) => {
      try {
        all.set(id, await graph.methods.load(id, options))
      } catch (err) {
        if (err instanceof NoSuchJobError || err instanceof InvalidArgumentError) {
          absent.add(id)
          return
        }
        if (!(err instanceof CorruptRecordError)) throw err
        log('clean: keeping %s', err.message)
        onCorrupt(id, err)
      }
      next.push(id)
    })
    frontier = next
  }
  return { reachable, reachedCorrupt, absent }
}

/** Deletes the valid file IDs among `fileIDs` (invalid ones are logged and left); returns the deleted IDs. */
async function deleteFiles(store: StoreContext, fileIDs: readonly string[], signal: AbortSignal | undefined): Promise<string[]> {
  const valid: string[] = []
  for (const id of fileIDs) {
    try {
      keys.file(id)
      valid.push(id)
    } catch (err) {
      log('ignoring invalid file ID %s in a job: %s', id, (err as Error).message)
    }
  }
  if (valid.length > 0) await store.storage.deleteObjects(valid.map((id) => keys.file(id)), io(signal))
  return valid
}
