/** `jobs` and `show`: the job descriptions. */
import type { JobDescription } from '../../index.js'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'
import { jobTrees, loadJobGraph, treeLines } from '../job-graph.js'
import { CONVENTIONAL_STATES, jobState } from '../job-state.js'
import { checkJobIdOrPrefix, resolveJobId } from '../resolve-id.js'
import { JsonLine, formatBytes, table } from '../output.js'
import { corruptJobId } from './store.js'

export interface JobsOptions {
  /** Keep jobs whose name (jobName, unitName or displayName) contains this text. */
  readonly name?: string
  /** Keep jobs in one of these states. */
  readonly state?: readonly string[]
  /** The job graph as a tree from the root job instead of a table. */
  readonly tree?: boolean
}

/** One job in the listing (the elements of `jobs --json`'s `jobs`). */
export interface JobSummary {
  readonly jobStoreID: string
  readonly jobName: string
  readonly displayName?: string
  readonly state: string
  readonly remainingTryCount: number | null
  readonly version: number
  readonly children: number
  readonly followOns: number
  readonly services: number
}

function matchesName(desc: JobDescription, text: string): boolean {
  return [desc.jobName, desc.unitName, desc.displayName].some((name) => name !== undefined && name.includes(text))
}

export async function jobsCommand(ctx: CommandContext, locator: string, options: JobsOptions): Promise<void> {
  if (options.tree && (options.name !== undefined || options.state !== undefined)) {
    throw usageError('--tree shows the whole job graph: it does not take --name or --state')
  }
  const store = await ctx.resume(locator)
  if (options.tree) {
    const graph = await loadJobGraph(ctx, store)
    const trees = jobTrees(graph)
    ctx.out.result(trees, () => treeLines(trees))
    ctx.out.info(`${graph.nodes.size} job(s)`)
    return
  }
  const states = options.state === undefined ? undefined : new Set(options.state)
  const jobs: JobSummary[] = []
  const corrupt: string[] = []
  const seen = new Set<string>(CONVENTIONAL_STATES)
  for await (const desc of store.jobs({ ...ctx.signalOptions, onCorruptRecord: (err) => corrupt.push(corruptJobId(err) ?? err.record) })) {
    const state = jobState(desc)
    seen.add(state)
    if (states !== undefined && !states.has(state)) continue
    if (options.name !== undefined && !matchesName(desc, options.name)) continue
    jobs.push({
      jobStoreID: desc.jobStoreID as string,
      jobName: desc.jobName,
      ...(desc.displayName !== undefined ? { displayName: desc.displayName } : {}),
      state,
      remainingTryCount: desc.remainingTryCount ?? null,
      version: desc.version,
      children: desc.children.length,
      followOns: desc.followOns.length,
      services: desc.services.length,
    })
  }
  // A state no job can have is a typo, not an empty answer (states are the engine's: any a job has is one).
  const unknown = [...(states ?? [])].filter((state) => !seen.has(state))
  if (unknown.length > 0) {
    throw usageError(`unknown state ${unknown.join(', ')} for --state: use one of ${[...seen].sort().join(', ')}`)
  }
  jobs.sort((a, b) => a.jobName.localeCompare(b.jobName) || a.jobStoreID.localeCompare(b.jobStoreID))
  for (const id of corrupt) ctx.out.warn(`job ${id} has a corrupt record and is not listed (see jobstore verify)`)
  ctx.out.result({ jobs, corrupt: corrupt.sort() }, () =>
    jobs.length === 0
      ? []
      : table(
          ['JOB ID', 'STATE', 'TRIES', 'SUCCESSORS', 'NAME'],
          jobs.map((j) => [
            j.jobStoreID,
            j.state,
            j.remainingTryCount === null ? '-' : String(j.remainingTryCount),
            String(j.children + j.followOns + j.services),
            j.displayName !== undefined && j.displayName !== j.jobName ? `${j.jobName} (${j.displayName})` : j.jobName,
          ]),
        ),
  )
  ctx.out.info(`${jobs.length} job(s)`)
}

export async function showCommand(ctx: CommandContext, locator: string, jobID: string): Promise<void> {
  checkJobIdOrPrefix(jobID) // a malformed ID is a usage error, before any I/O
  const store = await ctx.resume(locator)
  const desc = await store.load(await resolveJobId(store, jobID, ctx.signalOptions), ctx.signalOptions)
  const state = jobState(desc)
  ctx.out.result({ state, job: desc }, () => {
    const ids = (list: readonly string[]): string => (list.length === 0 ? '-' : list.join(' '))
    const r = desc.requirements
    const accelerators = r.accelerators.map((a) => `${a.count}×${a.kind}${a.model !== undefined ? ` ${a.model}` : ''}`).join(', ')
    return [
      `job            ${desc.jobStoreID}`,
      `name           ${desc.jobName}`,
      ...(desc.unitName !== undefined ? [`unit           ${desc.unitName}`] : []),
      ...(desc.displayName !== undefined ? [`display name   ${desc.displayName}`] : []),
      ...(desc.command !== undefined ? [`command        ${desc.command}`] : []),
      `state          ${state}`,
      `tries left     ${desc.remainingTryCount ?? '-'}`,
      `version        ${desc.version}`,
      `requirements   memory ${formatBytes(r.memory)}, cores ${r.cores}, disk ${formatBytes(r.disk)}${r.preemptible ? ', preemptible' : ''}${accelerators !== '' ? `, ${accelerators}` : ''}`,
      `children       ${ids(desc.children)}`,
      `follow-ons     ${ids(desc.followOns)}`,
      `services       ${ids(desc.services)}`,
      `files to delete ${ids(desc.filesToDelete)}`,
      `jobs to delete ${ids(desc.jobsToDelete)}`,
      `log file       ${desc.logJobStoreFileID ?? '-'}`,
      ...JSON.stringify(desc.extra, null, 2)
        .split('\n')
        .map((line, i) => new JsonLine(`${i === 0 ? 'extra          ' : '               '}${line}`)),
    ]
  })
}
