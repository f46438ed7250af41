/** `graph`: the job graph as Graphviz DOT or as an SVG picture. */
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'
import { loadJobGraph, toDot } from '../job-graph.js'
import { JsonLine } from '../output.js'
import { toSvg } from '../svg-graph.js'

export const GRAPH_FORMATS = ['dot', 'svg'] as const
export type GraphFormat = (typeof GRAPH_FORMATS)[number]

export async function graphCommand(ctx: CommandContext, locator: string, options: { format?: string }): Promise<void> {
  const format = options.format ?? 'dot'
  if (!(GRAPH_FORMATS as readonly string[]).includes(format)) {
    throw usageError(`unknown graph format ${JSON.stringify(format)}: use ${GRAPH_FORMATS.join(' or ')}`)
  }
  const store = await ctx.resume(locator)
  const graph = await loadJobGraph(ctx, store)
  const text = format === 'svg' ? toSvg(graph) : toDot(graph)
  // Names in the text are escaped already (visibleName): it holds no control or invisible character. JsonLine
  // prints it as it is, backslashes included (DOT's own escapes), with the same safety net as JSON.
  for (const line of text.split('\n')) ctx.out.line(new JsonLine(line))
  ctx.out.info(`${graph.nodes.size} job(s), ${graph.edges.length} edge(s)`)
}
