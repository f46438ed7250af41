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

/** One job in `jobs --tree --json`. */
export interface TreeNode {
  readonly jobStoreID: string
  readonly jobName: string | null
  readonly state: string
  /** How its parent in the tree names it (`root` at the top). */
  readonly edge: EdgeKind | 'root'
  /** Shown once already (a shared successor, or a cycle): its successors are under its first place. */
  readonly seen: boolean
  readonly successors: TreeNode[]
}

/**
 * The graph as trees: the root's, then one for each job the root does not reach and that no other such job names
 * (and, for cycles among them, one from each job still not shown). A job reached twice is shown once, in full;
 * later places refer to it (`seen`).
 */
export function jobTrees(graph: JobGraph): { root: TreeNode | null; unreachable: TreeNode[] } {
  const out = new Map<string, GraphEdge[]>()
  for (const edge of graph.edges) {
    const list = out.get(edge.from)
    if (list === undefined) out.set(edge.from, [edge])
    else list.push(edge)
  }
  const shown = new Set<string>()
  const build = (id: string, edge: EdgeKind | 'root'): TreeNode => {
    const node = graph.nodes.get(id) as GraphNode
    const base = { jobStoreID: id, jobName: node.jobName, state: node.state, edge }
    if (shown.has(id)) return { ...base, seen: true, successors: [] }
    shown.add(id)
    // Recursive: a chain of some thousands of jobs stays well within Node's stack.
    return { ...base, seen: false, successors: (out.get(id) ?? []).map((e) => build(e.to, e.kind)) }
  }
  const root = graph.rootJobStoreID !== null && graph.nodes.has(graph.rootJobStoreID) ? build(graph.rootJobStoreID, 'root') : null
  const named = new Set(graph.edges.filter((e) => !shown.has(e.from)).map((e) => e.to))
  const rest = [...graph.nodes.keys()].filter((id) => !shown.has(id))
  const unreachable: TreeNode[] = []
  for (const id of rest.filter((id) => !named.has(id))) if (!shown.has(id)) unreachable.push(build(id, 'root'))
  for (const id of rest) if (!shown.has(id)) unreachable.push(build(id, 'root'))
  return { root, unreachable }
}

const EDGE_LABEL: Readonly<Record<EdgeKind | 'root', string>> = { root: '', child: '', followOn: 'follow-on: ', service: 'service: ' }

/** The trees as indented lines (escaped when printed, by Output.line). */
export function treeLines(trees: { root: TreeNode | null; unreachable: readonly TreeNode[] }): string[] {
  const lines: string[] = []
  const describe = (n: TreeNode): string =>
    `${EDGE_LABEL[n.edge]}${n.jobName ?? `(${n.state} record)`}  ${n.jobStoreID}${n.seen ? '  (shown above)' : n.jobName !== null ? `  ${n.state}` : ''}`
  const walk = (n: TreeNode, prefix: string, last: boolean, top: boolean): void => {
    lines.push(top ? describe(n) : `${prefix}${last ? '└── ' : '├── '}${describe(n)}`)
    const childPrefix = top ? '' : `${prefix}${last ? '    ' : '│   '}`
    n.successors.forEach((s, i) => walk(s, childPrefix, i === n.successors.length - 1, false))
  }
  if (trees.root !== null) walk(trees.root, '', true, true)
  if (trees.unreachable.length > 0) {
    if (lines.length > 0) lines.push('')
    lines.push(trees.root === null ? 'no root job; the jobs:' : 'not reachable from the root job:')
    for (const tree of trees.unreachable) walk(tree, '', true, true)
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
