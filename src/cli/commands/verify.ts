/**
 * `verify`: an integrity check of a whole store. Read-only. Every job record parses; every job and file a job
 * refers to exists; every file and shared file reads back whole (the store's read streams check size and
 * checksum); no cleanup file outlives its job; every job is reachable from the root job.
 */
import {
  CorruptRecordError,
  NoSuchFileError,
  NoSuchJobError,
  checkJobId,
  forEachConcurrent,
  isFileId,
  parseFileId,
  type JobDescription,
} from '../../index.js'
import type { CommandContext } from '../context.js'
import { CliError, EXIT } from '../exit-codes.js'
import { formatBytes, plural, table } from '../output.js'
import { createProgress } from '../progress.js'
import { corruptJobId } from './store.js'

/** Kinds of problems `verify` reports. */
export type ProblemKind =
  /** A job record that cannot be decoded (truncated, overwritten, unknown schema). */
  | 'corrupt-job'
  /** A root job is set but does not exist. */
  | 'missing-root-job'
  /** Jobs exist but no root job is set. */
  | 'no-root-job'
  /** A job lists a job (child, follow-on, service, job to delete) that does not exist. */
  | 'missing-job'
  /** A job lists a file (file to delete, log file) that does not exist. */
  | 'missing-file'
  /** A job lists something that is not a valid job or file ID. */
  | 'invalid-reference'
  /** A file or shared file does not read back whole (size or checksum mismatch) or cannot be read. */
  | 'damaged-file'
  /** A cleanup file whose owner job does not exist. */
  | 'orphan-file'
  /** A job not reachable from the root job over children, follow-ons and services. */
  | 'unreachable-job'

export interface Problem {
  readonly kind: ProblemKind
  /** The job, file or shared file concerned. */
  readonly subject: string
  readonly message: string
}

/** What `verify --json` prints. */
export interface VerifyReport {
  readonly ok: boolean
  readonly checked: { jobs: number; files: number; sharedFiles: number; bytes: number }
  readonly problems: Problem[]
}

/** What `jobstore clean` repairs, by kind (shown as a hint). */
const REPAIRED_BY_CLEAN: readonly ProblemKind[] = ['missing-job', 'missing-file', 'unreachable-job']

const JOB_REFERENCES = ['children', 'followOns', 'services', 'jobsToDelete'] as const

export async function verifyCommand(ctx: CommandContext, locator: string): Promise<void> {
  const store = await ctx.resume(locator)
  const signal = ctx.signalOptions
  const problems: Problem[] = []
  const problem = (kind: ProblemKind, subject: string, message: string): void => void problems.push({ kind, subject, message })

  // Jobs: every record must decode.
  const jobs = new Map<string, JobDescription>()
  const corrupt = new Set<string>()
  ctx.out.info(`verifying ${ctx.show(locator)}…`)
  for await (const desc of store.jobs({
    ...signal,
    onCorruptRecord: (err) => {
      const id = corruptJobId(err) ?? err.record
      corrupt.add(id)
      problem('corrupt-job', id, err.message)
    },
  })) {
    jobs.set(desc.jobStoreID as string, desc)
  }
  const jobExists = (id: string): boolean => jobs.has(id) || corrupt.has(id)

  // Files: listed once, for the reference and orphan checks, then read back whole.
  const files = new Map<string, number | undefined>()
  for await (const file of store.files(signal)) files.set(file.fileID, file.size)
  const sharedNames: string[] = []
  for await (const name of store.sharedFileNames(signal)) sharedNames.push(name)

  // The root job.
  let rootID: string | undefined
  try {
    rootID = (await store.loadRootJob(signal)).jobStoreID
  } catch (err) {
    if (err instanceof NoSuchJobError) {
      if (isJobId(err.jobStoreID)) {
        rootID = err.jobStoreID
        problem('missing-root-job', err.jobStoreID, `the root job ${err.jobStoreID} does not exist`)
      } else if (jobs.size + corrupt.size > 0) {
        problem('no-root-job', '(root)', `no root job is set, but the store holds ${plural(jobs.size + corrupt.size, 'job')}`)
      }
    } else if (err instanceof CorruptRecordError) {
      rootID = corruptJobId(err) // reported with the jobs
    } else {
      throw err
    }
  }

  // References between jobs and from jobs to files.
  for (const desc of jobs.values()) {
    const id = desc.jobStoreID as string
    const who = `job ${id} (${desc.jobName})`
    for (const field of JOB_REFERENCES) {
      for (const ref of desc[field]) {
        if (!isJobId(ref)) problem('invalid-reference', id, `${who} lists ${JSON.stringify(ref)} in ${field}, which is not a job ID`)
        else if (!jobExists(ref)) problem('missing-job', id, `${who} lists job ${ref} in ${field}, but it does not exist`)
      }
    }
    const fileRefs: [string, string][] = desc.filesToDelete.map((f) => ['filesToDelete', f])
    if (desc.logJobStoreFileID !== undefined) fileRefs.push(['logJobStoreFileID', desc.logJobStoreFileID])
    for (const [field, ref] of fileRefs) {
      if (!isFileId(ref)) problem('invalid-reference', id, `${who} has ${JSON.stringify(ref)} in ${field}, which is not a file ID`)
      else if (!files.has(ref) && !(await store.fileExists(ref, signal))) {
        problem('missing-file', id, `${who} has file ${ref} in ${field}, but it does not exist`)
      }
    }
  }

  // Orphans: cleanup files without their job, jobs the root cannot reach.
  for (const fileID of files.keys()) {
    const parsed = parseFileId(fileID)
    if (parsed.cleanup && parsed.owner !== undefined && !jobExists(parsed.owner)) {
      problem('orphan-file', fileID, `cleanup file ${fileID} belongs to job ${parsed.owner}, which does not exist`)
    }
  }
  if (rootID !== undefined) {
    const reachable = new Set<string>()
    const reachedCorrupt = new Set<string>()
    const stack = [rootID]
    while (stack.length > 0) {
      const next = stack.pop() as string
      if (reachable.has(next)) continue
      reachable.add(next)
      if (corrupt.has(next)) reachedCorrupt.add(next)
      const desc = jobs.get(next)
      if (desc !== undefined) stack.push(...desc.children, ...desc.followOns, ...desc.services)
    }
    // Below a reachable record that cannot be read may be any job: none is provably unreachable (and clean keeps
    // them all), so none is reported as such; the corrupt-job problems say why.
    if (reachedCorrupt.size === 0) {
      for (const desc of jobs.values()) {
        const id = desc.jobStoreID as string
        if (!reachable.has(id)) problem('unreachable-job', id, `job ${id} (${desc.jobName}) is not reachable from the root job ${rootID}`)
      }
    } else {
      for (const p of problems) {
        if (p.kind === 'corrupt-job' && reachedCorrupt.has(p.subject)) {
          ;(p as { message: string }).message += '; it is reachable from the root job, so clean keeps every job that might be below it'
        }
      }
    }
  }

  // Contents: every file and shared file read back whole, size and checksum verified by the read stream.
  const total = files.size + sharedNames.length
  const progress = createProgress({ stream: ctx.io.stderr, enabled: ctx.progress, label: 'verify', unit: 'items' })
  let done = 0
  let bytes = 0
  const drain = async (open: () => Promise<AsyncIterable<unknown>>, kind: string, name: string): Promise<void> => {
    try {
      for await (const chunk of await open()) bytes += (chunk as Buffer).length
    } catch (err) {
      if (err instanceof NoSuchFileError) return // deleted meanwhile
      if (signal.signal.aborted) throw err
      problem('damaged-file', name, `${kind} ${name} cannot be read back whole: ${(err as Error).message}`)
    } finally {
      progress.update({ done: ++done, total, bytes })
    }
  }
  try {
    await forEachConcurrent(files.keys(), ctx.concurrency, (fileID) => drain(() => store.readFileStream(fileID, signal), 'file', fileID))
    await forEachConcurrent(sharedNames, ctx.concurrency, (name) =>
      drain(() => store.readSharedFileStream(name, signal), 'shared file', name),
    )
  } finally {
    progress.stop()
  }

  problems.sort((a, b) => a.kind.localeCompare(b.kind) || a.subject.localeCompare(b.subject))
  const report: VerifyReport = {
    ok: problems.length === 0,
    checked: { jobs: jobs.size + corrupt.size, files: files.size, sharedFiles: sharedNames.length, bytes },
    problems,
  }
  const summary = `${plural(report.checked.jobs, 'job')}, ${plural(report.checked.files, 'file')} and ${plural(report.checked.sharedFiles, 'shared file')} (${formatBytes(bytes)}) checked`
  ctx.out.result(report, () => {
    if (report.ok) return [`OK: ${summary}`]
    const lines = [
      `${plural(problems.length, 'problem')} found (${summary}):`,
      ...table(['KIND', 'SUBJECT', 'PROBLEM'], problems.map((p) => [p.kind, p.subject, p.message])),
    ]
    const repairable = [...new Set(problems.map((p) => p.kind).filter((k) => REPAIRED_BY_CLEAN.includes(k)))]
    if (repairable.length > 0) lines.push(`jobstore clean repairs: ${repairable.join(', ')}`)
    if (problems.some((p) => p.kind === 'orphan-file')) lines.push('jobstore clean --orphan-files removes: orphan-file')
    return lines
  })
  if (!report.ok) throw new CliError(`verify found ${plural(problems.length, 'problem')}`, 'VERIFY_FAILED')
}

function isJobId(id: string): boolean {
  try {
    checkJobId(id)
    return true
  } catch {
    return false
  }
}

