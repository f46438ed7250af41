/** `init`, `status`, `clean`, `destroy`: the store as a whole. */
import { resolve } from 'node:path'
import { createInterface } from 'node:readline/promises'
import {
  CorruptRecordError,
  NoSuchJobError,
  hasErrorCode,
  mapConcurrent,
  parseFileId,
  type CleanReport,
  type JobDescription,
  type JobStoreConfigInit,
  type JobStoreErrorCode,
} from '../../index.js'
import type { CommandContext } from '../context.js'
import { CliError, EXIT, usageError } from '../exit-codes.js'
import { jobState } from '../job-state.js'
import { formatBytes, plural, table } from '../output.js'

/** The job ID a CorruptRecordError names (`job <id>`), if it names one. */
export function corruptJobId(err: CorruptRecordError): string | undefined {
  return /^job (\S+)$/.exec(err.record)?.[1]
}

export interface InitOptions {
  readonly retryCount?: number
  readonly encryptionKeyPath?: string
  readonly publicUrlExpiry?: number
}

export async function initCommand(ctx: CommandContext, locator: string, options: InitOptions): Promise<void> {
  const store = await ctx.open(locator)
  const init: JobStoreConfigInit = {
    ...(options.retryCount !== undefined ? { retryCount: options.retryCount } : {}),
    // From the CLI's working folder; the store checks the file and keeps the absolute path.
    ...(options.encryptionKeyPath !== undefined ? { encryptionKeyPath: resolve(ctx.io.cwd, options.encryptionKeyPath) } : {}),
    ...(options.publicUrlExpiry !== undefined ? { publicUrlExpirySeconds: options.publicUrlExpiry } : {}),
  }
  const config = await store.initialize(init, ctx.signalOptions)
  ctx.out.info(`initialized a job store at ${ctx.show(locator)}`)
  ctx.out.result({ locator: ctx.show(locator), workflowID: config.workflowID, config }, () => config.workflowID)
}

/** What `status` reports (the shape of `status --json`). */
export interface StatusReport {
  readonly locator: string
  readonly workflowID: string
  /** `jobName` null and `state` `corrupt` when the root job's record cannot be decoded. */
  readonly rootJob: { jobStoreID: string; jobName: string | null; state: string } | null
  readonly jobs: { total: number; byState: Record<string, number>; corrupt: number }
  readonly files: { count: number; bytes: number }
  readonly sharedFiles: { count: number }
  readonly logs: { unread: number; read: number }
  /** Jobs with no tries left, or in state `failed`, sorted by name. */
  readonly failedJobs: readonly FailedJob[]
  /**
   * Jobs the root job does not reach over children, follow-ons and services (what `clean` deletes), sorted by
   * name; null when there is no root job to walk from (none set, or its record is corrupt).
   */
  readonly unreachableJobs: readonly JobRef[] | null
  /**
   * Reachable job records that cannot be decoded: any job may be below them, so the unreachable ones are only
   * possibly so, and `clean` keeps them.
   */
  readonly reachableCorruptJobs: readonly string[]
}

/** A job named in `status`. */
export interface JobRef {
  readonly jobStoreID: string
  readonly jobName: string
}

/** A failed job in `status`. */
export interface FailedJob extends JobRef {
  readonly state: string
  readonly remainingTryCount: number | null
}

function byNameThenId(a: JobRef, b: JobRef): number {
  return a.jobName.localeCompare(b.jobName) || (a.jobStoreID < b.jobStoreID ? -1 : a.jobStoreID > b.jobStoreID ? 1 : 0)
}

export async function statusCommand(ctx: CommandContext, locator: string): Promise<void> {
  const store = await ctx.resume(locator)
  const signal = ctx.signalOptions

  const byState: Record<string, number> = {}
  let total = 0
  let corrupt = 0
  const listed = new Map<string, JobDescription>()
  const failedJobs: FailedJob[] = []
  const jobs = (async () => {
    for await (const desc of store.jobs({ ...signal, onCorruptRecord: () => void corrupt++ })) {
      const state = jobState(desc)
      byState[state] = (byState[state] ?? 0) + 1
      total++
      listed.set(desc.jobStoreID as string, desc)
      // As Toil: a job with no tries left failed, whatever state the engine last wrote.
      if (state === 'failed' || desc.remainingTryCount === 0) {
        failedJobs.push({ jobStoreID: desc.jobStoreID as string, jobName: desc.jobName, state, remainingTryCount: desc.remainingTryCount ?? null })
      }
    }
  })()
  const root = (async () => {
    try {
      const desc = await store.loadRootJob(signal)
      return { jobStoreID: desc.jobStoreID as string, jobName: desc.jobName, state: jobState(desc) }
    } catch (err) {
      if (err instanceof NoSuchJobError) return null
      if (err instanceof CorruptRecordError) {
        const id = corruptJobId(err)
        return id === undefined ? null : { jobStoreID: id, jobName: null, state: 'corrupt' }
      }
      throw err
    }
  })()
  const files = (async () => {
    let count = 0
    let bytes = 0
    const sizes = mapConcurrent(store.files(signal), ctx.concurrency, async (file) =>
      file.size ?? (await store.getFileSize(file.fileID, signal)),
    )
    for await (const size of sizes) {
      count++
      bytes += size
    }
    return { count, bytes }
  })()
  const shared = (async () => {
    let count = 0
    for await (const _ of store.sharedFileNames(signal)) count++
    return { count }
  })()
  const logs = store.countStatsAndLogging(signal)
  const settled = await Promise.allSettled([jobs, root, files, shared, logs])
  for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason

  // Reachability as clean() sees it, from the jobs just listed (the same walk, changing nothing).
  const rootJob = await root
  let unreachableJobs: JobRef[] | null = null
  let reachableCorruptJobs: string[] = []
  if (rootJob !== null && rootJob.jobName !== null) {
    try {
      const reach = await store.reachability(listed, signal)
      unreachableJobs = reach.unreachable
        .map((id) => ({ jobStoreID: id, jobName: listed.get(id)?.jobName ?? '' }))
        .sort(byNameThenId)
      reachableCorruptJobs = reach.reachedCorrupt
    } catch (err) {
      // The root job went away, or its record was damaged, since it was loaded: nothing to walk from.
      if (!(err instanceof NoSuchJobError || err instanceof CorruptRecordError)) throw err
    }
  }

  const report: StatusReport = {
    locator: ctx.show(locator),
    workflowID: store.config.workflowID,
    rootJob,
    jobs: { total, byState: sortedRecord(byState), corrupt },
    files: await files,
    sharedFiles: await shared,
    logs: await logs,
    failedJobs: failedJobs.sort(byNameThenId),
    unreachableJobs,
    reachableCorruptJobs,
  }
  ctx.out.result(report, () => {
    const states = Object.entries(report.jobs.byState).map(([state, n]) => `${state} ${n}`)
    return [
      `job store    ${report.locator}`,
      `workflow     ${report.workflowID}`,
      `root job     ${report.rootJob === null ? '(none)' : report.rootJob.jobName === null ? `${report.rootJob.jobStoreID} (corrupt record: run jobstore verify)` : `${report.rootJob.jobStoreID} ${report.rootJob.jobName} (${report.rootJob.state})`}`,
      `jobs         ${report.jobs.total}${states.length > 0 ? `: ${states.join(', ')}` : ''}${corrupt > 0 ? ` (+${corrupt} corrupt: run jobstore verify)` : ''}`,
      `files        ${report.files.count} (${formatBytes(report.files.bytes)})`,
      `shared files ${report.sharedFiles.count}`,
      `logs         ${report.logs.unread} unread, ${report.logs.read} read`,
      `failed       ${report.failedJobs.length}${report.failedJobs.length > 0 ? ' (no tries left, or state failed)' : ''}`,
      ...indented(table(['', ''], report.failedJobs.map((j) => [j.jobStoreID, j.jobName])).slice(1)),
      report.unreachableJobs === null
        ? 'unreachable  - (no root job to walk from)'
        : `unreachable  ${report.unreachableJobs.length}${
            report.unreachableJobs.length === 0
              ? ''
              : report.reachableCorruptJobs.length > 0
                ? ` (maybe: they may be below the corrupt record(s) ${report.reachableCorruptJobs.join(', ')}; clean keeps them)`
                : ' (clean deletes them)'
          }`,
      ...indented(table(['', ''], (report.unreachableJobs ?? []).map((j) => [j.jobStoreID, j.jobName])).slice(1)),
    ]
  })
}

function indented(lines: readonly string[]): string[] {
  return lines.map((line) => `  ${line}`)
}

function sortedRecord(record: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)))
}

export interface CleanCommandOptions {
  readonly leftoverAge?: number
  readonly orphanFiles?: boolean
}

export async function cleanCommand(ctx: CommandContext, locator: string, options: CleanCommandOptions): Promise<void> {
  const store = await ctx.resume(locator)
  const corrupt = new Set<string>()
  const onCorruptRecord = (err: CorruptRecordError): void => {
    corrupt.add(corruptJobId(err) ?? err.record)
  }
  let report: CleanReport | undefined
  ctx.out.info(`cleaning ${ctx.show(locator)}…`)
  const root = await store.clean(undefined, {
    ...ctx.signalOptions,
    onCorruptRecord,
    onReport: (r) => (report = r),
    ...(options.leftoverAge !== undefined ? { leftoverAgeMs: options.leftoverAge * 1000 } : {}),
  })
  const orphanFiles: string[] = []
  if (options.orphanFiles) {
    // Jobs whose record is corrupt still exist: their files are not orphans.
    const alive = new Set<string>(corrupt)
    const listing = store.jobs({
      ...ctx.signalOptions,
      onCorruptRecord: (err) => {
        onCorruptRecord(err)
        alive.add(corruptJobId(err) ?? err.record)
      },
    })
    for await (const desc of listing) alive.add(desc.jobStoreID as string)
    const deletions = mapConcurrent(store.files(ctx.signalOptions), ctx.concurrency, async ({ fileID }) => {
      const parsed = parseFileId(fileID)
      if (!parsed.cleanup || parsed.owner === undefined || alive.has(parsed.owner)) return undefined
      await store.deleteFile(fileID, ctx.signalOptions)
      return fileID
    })
    for await (const deleted of deletions) if (deleted !== undefined) orphanFiles.push(deleted)
  }
  const r: CleanReport = report ?? {
    reachableJobs: 0,
    deletedJobs: [],
    repairedJobs: [],
    deletedFiles: [],
    releasedStatsClaims: 0,
    leftoversRemoved: 0,
    corruptJobs: [],
    keptUnreachableJobs: [],
  }
  const corruptJobs = [...corrupt].sort()
  ctx.out.result(
    { rootJob: root.jobStoreID, ...r, ...(options.orphanFiles ? { deletedOrphanFiles: orphanFiles } : {}), corruptJobs },
    () => {
      const lines = [`root job ${root.jobStoreID} (${root.jobName}); ${plural(r.reachableJobs, 'reachable job')}`]
      for (const id of r.deletedJobs) lines.push(`removed job ${id}`)
      for (const id of r.repairedJobs) lines.push(`repaired job ${id}`)
      for (const id of r.deletedFiles) lines.push(`removed file ${id}`)
      for (const id of orphanFiles) lines.push(`removed orphan file ${id}`)
      if (r.releasedStatsClaims > 0) lines.push(`released ${plural(r.releasedStatsClaims, 'stale log message claim')}`)
      if (r.leftoversRemoved > 0) lines.push(`removed ${plural(r.leftoversRemoved, 'leftover')} of interrupted writes`)
      for (const id of corruptJobs) lines.push(`left corrupt job record ${id} (see jobstore verify)`)
      for (const id of r.keptUnreachableJobs) lines.push(`kept unreachable job ${id}: it may be below a corrupt record`)
      if (lines.length === 1) lines.push('nothing to repair')
      return lines
    },
  )
}

/** Why `resume()` may fail on a location `destroy` still acts on (destroy() itself decides what it deletes). */
const DESTROYABLE_WITHOUT_CONFIG: readonly JobStoreErrorCode[] = ['NO_SUCH_JOB_STORE', 'CORRUPT_RECORD', 'UNSAFE_STORE_PATH']

export async function destroyCommand(ctx: CommandContext, locator: string, options: { yes?: boolean }): Promise<void> {
  const store = await ctx.open(locator)
  let workflowID: string | undefined
  try {
    workflowID = (await store.resume(ctx.signalOptions)).workflowID
  } catch (err) {
    // Nothing there, a damaged config, or a link in its place: destroy() decides. It removes the remains of a
    // store (its marker proves them), and refuses (NOT_A_JOB_STORE), deleting nothing, what no store made.
    if (!DESTROYABLE_WITHOUT_CONFIG.some((code) => hasErrorCode(err, code))) throw err
  }
  const shown = ctx.show(locator)
  if (options.yes !== true) {
    if (ctx.io.stdin.isTTY !== true || ctx.io.stderr.isTTY !== true) {
      throw usageError(`destroy deletes the job store at ${shown} and everything in it: pass --yes to confirm (there is no terminal to ask on)`)
    }
    const what = workflowID === undefined ? 'whatever is left of the job store' : `the job store of workflow ${workflowID}`
    const answer = await ask(ctx, `Destroy ${what} at ${shown} and everything in it? Type "yes" to confirm: `)
    if (answer.trim().toLowerCase() !== 'yes') throw new CliError('not confirmed: nothing was destroyed', 'NOT_CONFIRMED')
  }
  await store.destroy(ctx.signalOptions)
  ctx.out.result({ locator: shown, destroyed: true, existed: workflowID !== undefined, workflowID: workflowID ?? null }, () => [])
  ctx.out.info(workflowID === undefined ? `no job store at ${shown}; removed any leftovers` : `destroyed the job store at ${shown}`)
}

async function ask(ctx: CommandContext, question: string): Promise<string> {
  const rl = createInterface({ input: ctx.io.stdin, output: ctx.io.stderr, terminal: true })
  try {
    return await rl.question(ctx.out.safe(question), ctx.signalOptions)
  } finally {
    rl.close()
  }
}
