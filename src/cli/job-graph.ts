/**
 * The job graph as `jobs --tree` and `graph` show it: every job of the store, and the edges its description
 * defines (children, follow-ons, services), from the root job. Successors that are not in the listing are shown
 * as missing, records that cannot be decoded as corrupt. Which jobs the root reaches comes from the store's own
 * walk (`reachability()`, the one `clean()` uses), not from a copy of it here.
 */
import { CorruptRecordError, NoSuchJobError, type AbstractJobStore, type JobDescription } from '../index.js'
import type { CommandContext } from './context.js'
import { jobState } from './job-state.js'
import { corruptJobId } from './commands/store.js'
import { escapeForTerminal } from './terminal-safe.js'

/** How a job is related to the job that names it. */
export type EdgeKind = 'child' | 'followOn' | 'service'

export interface GraphNode {
  readonly jobStoreID: string
  /** null for a job whose record is missing or cannot be decoded. */
  readonly jobName: string | null
  /** The job's state (see job-state.ts), or `missing` / `corrupt`. */
  readonly state: string
  readonly root: boolean
  /** Whether the root reaches it; null when there is no root job to walk from. */
  readonly reachable: boolean | null
}

export interface GraphEdge {
  readonly from: string
  readonly to: string
  readonly kind: EdgeKind
}

export interface JobGraph {
  readonly rootJobStoreID: string | null
  /** By ID; in the order of the walk from the root, then the other jobs by name. */
  readonly nodes: ReadonlyMap<string, GraphNode>
  readonly edges: readonly GraphEdge[]
}

/** The successors of a job, in the order shown: children, services, then follow-ons (which run after them). */
export function successorsOf(desc: JobDescription): { to: string; kind: EdgeKind }[] {
  return [
    ...desc.children.map((to) => ({ to, kind: 'child' as const })),
    ...desc.services.map((to) => ({ to, kind: 'service' as const })),
    ...desc.followOns.map((to) => ({ to, kind: 'followOn' as const })),
  ]
}

const byNameThenId = (a: { jobName: string | null; jobStoreID: string }, b: { jobName: string | null; jobStoreID: string }): number =>
  (a.jobName ?? '').localeCompare(b.jobName ?? '') || (a.jobStoreID < b.jobStoreID ? -1 : a.jobStoreID > b.jobStoreID ? 1 : 0)

/** Lists the jobs and builds the graph (one listing; the reachability walk reuses it). */
export async function loadJobGraph(ctx: CommandContext, store: AbstractJobStore): Promise<JobGraph> {
  const signal = ctx.signalOptions
  const listed = new Map<string, JobDescription>()
  const corrupt = new Set<string>()
  for await (const desc of store.jobs({ ...signal, onCorruptRecord: (err) => void corrupt.add(corruptJobId(err) ?? err.record) })) {
    listed.set(desc.jobStoreID as string, desc)
  }
  let rootID: string | null = null
  let reachable: Set<string> | undefined
  try {
    const reach = await store.reachability(listed, signal)
    rootID = reach.rootJobStoreID
    reachable = new Set([...reach.reachable, ...reach.reachedCorrupt])
    for (const id of reach.reachedCorrupt) corrupt.add(id)
  } catch (err) {
    if (err instanceof CorruptRecordError) rootID = corruptJobId(err) ?? null
    else if (!(err instanceof NoSuchJobError)) throw err
  }

  const nodes = new Map<string, GraphNode>()
  const edges: GraphEdge[] = []
  const nodeOf = (id: string): GraphNode => {
    const desc = listed.get(id)
    return {
      jobStoreID: id,
      jobName: desc?.jobName ?? null,
      state: desc !== undefined ? jobState(desc) : corrupt.has(id) ? 'corrupt' : 'missing',
      root: id === rootID,
      reachable: reachable === undefined ? null : reachable.has(id),
    }
  }
  // Breadth first from the root, then from each job not reached yet (by name), so that the order is stable.
  const visit = (start: string): void => {
    let frontier = [start]
    if (!nodes.has(start)) nodes.set(start, nodeOf(start))
    while (frontier.length > 0) {
      const next: string[] = []
      for (const id of frontier) {
        const desc = listed.get(id)
        if (desc === undefined) continue
        for (const { to, kind } of successorsOf(desc)) {
          edges.push({ from: id, to, kind })
          if (!nodes.has(to)) {
            nodes.set(to, nodeOf(to))
            next.push(to)
          }
        }
      }
      frontier = next
    }
  }
  if (rootID !== null) visit(rootID)
  const others = [...listed.values(), ...[...corrupt].map((id) => ({ jobStoreID: id, jobName: null }))]
    .map((d) => ({ jobStoreID: d.jobStoreID as string, jobName: d.jobName }))
    .sort(byNameThenId)
  for (const { jobStoreID } of others) if (!nodes.has(jobStoreID)) visit(jobStoreID)
  return { rootJobStoreID: rootID, nodes, edges }
}

/**
 * One line of the tree (the elements of `jobs --tree --json`'s lists), in the order shown: a job, then the jobs it
 * names, one `depth` further. Flat rather than nested, so that a chain of thousands of follow-ons is no deeper in
 * JSON than one job.
 */
export interface TreeEntry {
  readonly jobStoreID: string
  readonly jobName: string | null
  readonly state: string
  /** How the job above it names it (`root` at depth 0). */
  readonly edge: EdgeKind | 'root'
  readonly depth: number
  /** Shown once already (a shared successor, or a cycle): the jobs it names are under its first place. */
  readonly seen: boolean
}

/**
 * The graph as trees: the root's, then one for each job the root does not reach and that no other such job names
 * (and, for cycles among them, one from each job still not shown). A job reached twice is shown once, with what
 * it names; later places refer to it (`seen`).
 */
export function jobTrees(graph: JobGraph): { root: TreeEntry[]; unreachable: TreeEntry[] } {
  const out = new Map<string, GraphEdge[]>()
  for (const edge of graph.edges) {
    const list = out.get(edge.from)
    if (list === undefined) out.set(edge.from, [edge])
    else list.push(edge)
  }
  const shown = new Set<string>()
  // Depth first with a stack of our own, not recursion: a chain of follow-ons may be thousands of jobs long.
  const tree = (start: string, into: TreeEntry[]): void => {
    const stack: { id: string; edge: EdgeKind | 'root'; depth: number }[] = [{ id: start, edge: 'root', depth: 0 }]
    while (stack.length > 0) {
      const { id, edge, depth } = stack.pop() as (typeof stack)[number]
      const node = graph.nodes.get(id) as GraphNode
      const seen = shown.has(id)
      shown.add(id)
      into.push({ jobStoreID: id, jobName: node.jobName, state: node.state, edge, depth, seen })
      if (seen) continue
      const named = out.get(id) ?? []
      for (let i = named.length - 1; i >= 0; i--) {
        const e = named[i] as GraphEdge
        stack.push({ id: e.to, edge: e.kind, depth: depth + 1 })
      }
    }
  }
  const root: TreeEntry[] = []
  if (graph.rootJobStoreID !== null && graph.nodes.has(graph.rootJobStoreID)) tree(graph.rootJobStoreID, root)
  const named = new Set(graph.edges.filter((e) => !shown.has(e.from)).map((e) => e.to))
  const rest = [...graph.nodes.keys()].filter((id) => !shown.has(id))
  const unreachable: TreeEntry[] = []
  for (const id of rest.filter((id) => !named.has(id))) if (!shown.has(id)) tree(id, unreachable)
  for (const id of rest) if (!shown.has(id)) tree(id, unreachable)
  return { root, unreachable }
}

const EDGE_LABEL: Readonly<Record<EdgeKind | 'root', string>> = { root: '', child: '', followOn: 'follow-on: ', service: 'service: ' }

/** Levels of indentation drawn by `jobs --tree`; deeper jobs are shown at this one, with their depth. */
export const MAX_DRAWN_DEPTH = 32

/** Tree entries as indented lines, with the branches drawn (escaped when printed, by Output.line). */
function drawTree(entries: readonly TreeEntry[]): string[] {
  // Whether each entry is the last of its siblings: backwards, a sibling below is one at the same depth before
  // any shallower entry.
  const last: boolean[] = new Array<boolean>(entries.length)
  const siblingBelow: boolean[] = []
  for (let i = entries.length - 1; i >= 0; i--) {
    const depth = (entries[i] as TreeEntry).depth
    last[i] = siblingBelow[depth] !== true
    siblingBelow.length = depth + 1
    siblingBelow[depth] = true
  }
  const lines: string[] = []
  const ancestorsLast: boolean[] = []
  entries.forEach((e, i) => {
    const describe = `${EDGE_LABEL[e.edge]}${e.jobName ?? `(${e.state} record)`}  ${e.jobStoreID}${e.seen ? '  (shown above)' : e.jobName !== null ? `  ${e.state}` : ''}`
    ancestorsLast.length = e.depth
    ancestorsLast[e.depth] = last[i] as boolean
    if (e.depth === 0) {
      lines.push(describe)
      return
    }
    // Indented up to MAX_DRAWN_DEPTH levels; deeper jobs (a long chain of follow-ons) at that indentation, with
    // their depth, so that the text grows with the jobs, not with their square.
    const drawn = Math.min(e.depth, MAX_DRAWN_DEPTH)
    let prefix = ''
    for (let d = 1; d < drawn; d++) prefix += ancestorsLast[d] ? '    ' : '│   '
    lines.push(`${prefix}${last[i] ? '└── ' : '├── '}${e.depth > drawn ? `(depth ${e.depth}) ` : ''}${describe}`)
  })
  return lines
}

/** The trees as lines: the root's, then those of the jobs it does not reach. */
export function treeLines(trees: { root: readonly TreeEntry[]; unreachable: readonly TreeEntry[] }): string[] {
  const lines = drawTree(trees.root)
  if (trees.unreachable.length > 0) {
    if (lines.length > 0) lines.push('')
    lines.push(trees.root.length === 0 ? 'no root job; the jobs:' : 'not reachable from the root job:')
    lines.push(...drawTree(trees.unreachable))
  }
  return lines
}

// ------------------------------------------------------------------------------------------------- DOT

/**
 * A name fit for a DOT string or an SVG text: escaped for the terminal first (controls, bidi and invisible
 * characters shown as `\x1b`, `\u202e`: visible in the picture too, and never raw in a file that may be printed).
 */
export function visibleName(node: GraphNode): string {
  return node.jobName === null ? `(${node.state} record)` : escapeForTerminal(node.jobName)
}

/** A state (the engine's `extra.state` may be any text) as visible text, as {@link visibleName}. */
export function visibleState(node: GraphNode): string {
  return escapeForTerminal(node.state)
}

/** A DOT quoted string: `"` and `\` escaped (the text holds no control character: see visibleName). */
function dotString(text: string): string {
  return `"${text.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`
}

const DOT_EDGE_STYLE: Readonly<Record<EdgeKind, string>> = {
  child: '',
  followOn: ' [style=dashed, label="follow-on"]',
  service: ' [style=dotted, label="service"]',
}

/** The graph in Graphviz's DOT language: one node per job (name, ID, state), one edge per successor. */
export function toDot(graph: JobGraph): string {
  const lines = ['digraph jobs {', '  node [shape=box, style=rounded, fontname="Helvetica"];']
  for (const node of graph.nodes.values()) {
    const attributes = [`label=${dotString(`${visibleName(node)}\n${node.jobStoreID}\n${visibleState(node)}`).replace(/\n/g, '\\n')}`]
    if (node.root) attributes.push('penwidth=2')
    if (node.state === 'missing') attributes.push('style="rounded,dashed"')
    if (node.state === 'corrupt' || node.state === 'failed') attributes.push('color=red')
    if (node.reachable === false) attributes.push('fontcolor=gray40', 'color=gray60')
    lines.push(`  ${dotString(node.jobStoreID)} [${attributes.join(', ')}];`)
  }
  for (const edge of graph.edges) lines.push(`  ${dotString(edge.from)} -> ${dotString(edge.to)}${DOT_EDGE_STYLE[edge.kind]};`)
  lines.push('}')
  return lines.join('\n')
}
