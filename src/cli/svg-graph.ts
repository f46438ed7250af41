/**
 * `graph --format svg`: the job graph as a picture, with a small layered layout of our own instead of a
 * dependency (Graphviz is a binary, its wasm builds are megabytes; dagre brings a graph library for what a few
 * dozen lines do here). Layers are the breadth-first depth from the root job (jobs the root does not reach get
 * layers of their own below); within a layer, jobs keep the order of the walk, then one pass orders each layer by
 * the mean position of the jobs that name it, which untangles most edges of a workflow's fan-out and fan-in.
 * Edges down the layers are straight; an edge to the same or an earlier layer (a cycle) is a curve between the
 * sides that face each other.
 *
 * Valid XML whatever the names: every name is escaped for the terminal first (see `visibleName`: control, bidi and
 * invisible characters become visible `\x1b`, `\u202e`), then for XML (`& < > " '`), so no character XML 1.0
 * forbids, and nothing that reorders text, reaches the file.
 */
import { visibleName, visibleState, type EdgeKind, type GraphNode, type JobGraph } from './job-graph.js'

const NODE_HEIGHT = 46
const LAYER_GAP = 56
const NODE_GAP = 24
const MARGIN = 20
/** Average advance of a character of 12px sans-serif; names are cut to MAX_LABEL characters. */
const CHAR_WIDTH = 7
const MAX_LABEL = 40

/** Text for XML character data and attribute values. */
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => XML_ENTITIES[ch] as string)
}

/** XML's five predefined entities. */
const XML_ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' }

function cut(text: string): string {
  const chars = [...text]
  return chars.length <= MAX_LABEL ? text : `${chars.slice(0, MAX_LABEL - 1).join('')}…`
}

interface Placed {
  readonly node: GraphNode
  readonly layer: number
  x: number
  readonly y: number
}

function pushTo(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}

/** Layers by breadth-first depth: from the root, then from each job not placed yet (the graph's node order). */
function layers(graph: JobGraph): string[][] {
  const successors = new Map<string, string[]>()
  const predecessors = new Map<string, string[]>()
  for (const e of graph.edges) {
    pushTo(successors, e.from, e.to)
    pushTo(predecessors, e.to, e.from)
  }
  const layerOf = new Map<string, number>()
  const result: string[][] = []
  const place = (start: string, base: number): void => {
    let frontier = [start]
    layerOf.set(start, base)
    for (let depth = base; frontier.length > 0; depth++) {
      ;(result[depth] ??= []).push(...frontier)
      const next: string[] = []
      for (const id of frontier) {
        for (const to of successors.get(id) ?? []) {
          if (!layerOf.has(to)) {
            layerOf.set(to, depth + 1)
            next.push(to)
          }
        }
      }
      frontier = next
    }
  }
  const order = [...graph.nodes.keys()]
  if (graph.rootJobStoreID !== null && graph.nodes.has(graph.rootJobStoreID)) place(graph.rootJobStoreID, 0)
  for (const id of order) if (!layerOf.has(id)) place(id, result.length)
  // One ordering pass: each layer by the mean index of its predecessors in the layer above (stable otherwise).
  const indexOf = new Map<string, number>()
  for (const layer of result) layer.forEach((id, i) => indexOf.set(id, i))
  for (let depth = 1; depth < result.length; depth++) {
    const layer = result[depth] as string[]
    const weight = (id: string): number => {
      const above = (predecessors.get(id) ?? []).filter((p) => layerOf.get(p) === depth - 1)
      return above.length === 0 ? (indexOf.get(id) as number) : above.reduce((sum, p) => sum + (indexOf.get(p) as number), 0) / above.length
    }
    const weights = new Map(layer.map((id) => [id, weight(id)]))
    layer.sort((a, b) => (weights.get(a) as number) - (weights.get(b) as number))
    layer.forEach((id, i) => indexOf.set(id, i))
  }
  return result
}

const EDGE_STYLE: Readonly<Record<EdgeKind, string>> = {
  child: 'stroke="#444"',
  service: 'stroke="#6a3d9a" stroke-dasharray="2 3"',
  followOn: 'stroke="#1f78b4" stroke-dasharray="6 4"',
}

function nodeStyle(node: GraphNode): string {
  const fill =
    node.state === 'done' ? '#e5f5e0' : node.state === 'failed' ? '#fde0dd' : node.state === 'running' ? '#fff7bc' : node.state === 'missing' ? '#ffffff' : node.state === 'corrupt' ? '#fcbba1' : '#f0f0f0'
  const stroke = node.state === 'failed' || node.state === 'corrupt' ? '#cb181d' : node.reachable === false ? '#969696' : '#333'
  const dash = node.state === 'missing' || node.reachable === false ? ' stroke-dasharray="4 3"' : ''
  return `fill="${fill}" stroke="${stroke}" stroke-width="${node.root ? 2.5 : 1}"${dash}`
}

/** The graph as a standalone SVG document. */
export function toSvg(graph: JobGraph): string {
  const byLayer = layers(graph)
  const labels = new Map([...graph.nodes.values()].map((n) => [n.jobStoreID, cut(visibleName(n))]))
  const longest = Math.max(26, ...[...labels.values()].map((l) => [...l].length))
  const width = longest * CHAR_WIDTH + 16
  const widest = Math.max(1, ...byLayer.map((l) => l.length))
  const totalWidth = MARGIN * 2 + widest * width + (widest - 1) * NODE_GAP + 60 // room for curves on the right
  const totalHeight = MARGIN * 2 + byLayer.length * NODE_HEIGHT + Math.max(0, byLayer.length - 1) * LAYER_GAP
  const placed = new Map<string, Placed>()
  byLayer.forEach((layer, depth) => {
    const offset = ((widest - layer.length) * (width + NODE_GAP)) / 2
    layer.forEach((id, i) => {
      placed.set(id, { node: graph.nodes.get(id) as GraphNode, layer: depth, x: MARGIN + offset + i * (width + NODE_GAP), y: MARGIN + depth * (NODE_HEIGHT + LAYER_GAP) })
    })
  })

  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalWidth}" height="${totalHeight}" viewBox="0 0 ${totalWidth} ${totalHeight}" font-family="Helvetica, Arial, sans-serif">`,
    '<title>jobstore job graph</title>',
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs>',
    '<g class="edges" fill="none">',
  ]
  for (const edge of graph.edges) {
    const from = placed.get(edge.from)
    const to = placed.get(edge.to)
    if (from === undefined || to === undefined) continue
    const kind = `class="edge ${edge.kind}" data-from="${edge.from}" data-to="${edge.to}"`
    if (to.layer > from.layer) {
      out.push(`<line ${kind} x1="${from.x + width / 2}" y1="${from.y + NODE_HEIGHT}" x2="${to.x + width / 2}" y2="${to.y}" ${EDGE_STYLE[edge.kind]} marker-end="url(#arrow)"/>`)
    } else {
      // Back to the same or an earlier layer (a cycle, or a job placed by a shorter path): from the side facing
      // the target, so that the curve does not cross the source's own box; one in the same column bulges right.
      const y1 = from.y + NODE_HEIGHT / 2
      const y2 = to.y + NODE_HEIGHT / 2
      const leftward = to.x + width <= from.x
      const rightward = to.x >= from.x + width
      const x1 = leftward ? from.x : from.x + width
      const x2 = leftward ? to.x + width : rightward ? to.x : to.x + width
      const bulge = leftward || rightward ? (x1 + x2) / 2 : Math.max(x1, x2) + 40
      out.push(`<path ${kind} d="M ${x1} ${y1} C ${bulge} ${y1}, ${bulge} ${y2}, ${x2} ${y2}" ${EDGE_STYLE[edge.kind]} marker-end="url(#arrow)"/>`)
    }
  }
  out.push('</g>', '<g class="jobs">')
  for (const p of placed.values()) {
    const n = p.node
    const label = xmlEscape(labels.get(n.jobStoreID) as string)
    out.push(
      `<g class="job" data-id="${n.jobStoreID}" data-state="${xmlEscape(visibleState(n))}">`,
      `<title>${xmlEscape(visibleName(n))} ${n.jobStoreID} (${xmlEscape(visibleState(n))})</title>`,
      `<rect x="${p.x}" y="${p.y}" width="${width}" height="${NODE_HEIGHT}" rx="6" ${nodeStyle(n)}/>`,
      `<text x="${p.x + 8}" y="${p.y + 18}" font-size="12" font-weight="bold">${label}</text>`,
      `<text x="${p.x + 8}" y="${p.y + 36}" font-size="10" fill="#555">${n.jobStoreID} ${xmlEscape(cut(visibleState(n)))}</text>`,
      '</g>',
    )
  }
  out.push('</g>', '</svg>')
  return out.join('\n')
}
