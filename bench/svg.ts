/**
 * Plots as plain SVG, written by hand (no plotting dependency): horizontal bar charts of the ratios, with the
 * target drawn as a line, a line chart of per-op cost against store size for the scaling workload, and small
 * multiples of operations per second against the file system's latency per request (local disk, delayfs at 0.5 and
 * 2 ms) for jobstore and Toil.
 */
import type { CellResult, RunResults } from './results.js'
import { TARGETS } from './report.js'
import { FUSE_DELAY_MS } from './targets.js'
import { median } from './util.js'

const COLORS = ['#4269d0', '#efb118', '#ff725c', '#6cc5b0', '#3ca951', '#ff8ab7', '#a463f2', '#97bbf5']
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12"'

const esc = (s: string): string => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')

interface Bar {
  readonly label: string
  readonly value: number
  readonly series: string
}

/** A horizontal bar chart; `lines` are reference values (targets, parity). `log`: logarithmic axis. */
export function barChart(title: string, bars: readonly Bar[], lines: readonly { value: number; label: string }[], options: { log?: boolean; unit?: string } = {}): string {
  const labelWidth = 230
  const plotWidth = 480
  const barHeight = 16
  const gap = 6
  const top = 46
  const series = [...new Set(bars.map((b) => b.series))]
  const height = top + bars.length * (barHeight + gap) + 40
  const maxValue = Math.max(...bars.map((b) => b.value), ...lines.map((l) => l.value)) * 1.1
  const minValue = options.log ? Math.min(0.1, ...bars.map((b) => b.value).filter((v) => v > 0)) : 0
  const x = (v: number): number => {
    if (options.log) {
      const lv = Math.log10(Math.max(v, minValue))
      return labelWidth + ((lv - Math.log10(minValue)) / (Math.log10(maxValue) - Math.log10(minValue))) * plotWidth
    }
    return labelWidth + (v / maxValue) * plotWidth
  }
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plotWidth + 60}" height="${height}" viewBox="0 0 ${labelWidth + plotWidth + 60} ${height}" ${FONT}>`)
  out.push(`<rect width="100%" height="100%" fill="white"/>`)
  out.push(`<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`)
  series.forEach((name, i) => {
    const lx = 10 + i * 170
    out.push(`<rect x="${lx}" y="28" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${lx + 14}" y="37">${esc(name)}</text>`)
  })
  bars.forEach((bar, i) => {
    const y = top + i * (barHeight + gap)
    const color = COLORS[series.indexOf(bar.series) % COLORS.length]
    out.push(`<text x="${labelWidth - 6}" y="${y + barHeight - 4}" text-anchor="end">${esc(bar.label)}</text>`)
    out.push(`<rect x="${labelWidth}" y="${y}" width="${Math.max(1, x(bar.value) - labelWidth).toFixed(1)}" height="${barHeight}" fill="${color}"/>`)
    out.push(`<text x="${(x(bar.value) + 4).toFixed(1)}" y="${y + barHeight - 4}">${bar.value.toFixed(2)}${options.unit ?? ''}</text>`)
  })
  const bottom = top + bars.length * (barHeight + gap)
  for (const line of lines) {
    const lx = x(line.value).toFixed(1)
    out.push(`<line x1="${lx}" y1="${top - 4}" x2="${lx}" y2="${bottom}" stroke="#c00" stroke-dasharray="4 3"/>`)
    out.push(`<text x="${lx}" y="${bottom + 14}" text-anchor="middle" fill="#c00">${esc(line.label)}</text>`)
  }
  out.push(`<line x1="${labelWidth}" y1="${top - 4}" x2="${labelWidth}" y2="${bottom}" stroke="#333"/>`)
  out.push('</svg>')
  return out.join('\n')
}

/** A line chart with a log-scaled x axis (store size) and a linear y axis from 0. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: readonly { name: string; points: readonly [number, number][] }[]): string {
  const left = 70
  const width = 520
  const top = 50
  const height = 260
  const xs = series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = series.flatMap((s) => s.points.map((p) => p[1]))
  const xmin = Math.min(...xs)
  const xmax = Math.max(...xs)
  // A round step for the y axis: 1, 2 or 5 times a power of ten, four or five ticks.
  const raw = (Math.max(...ys) * 1.1) / 4
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude
  const ticks = Math.ceil((Math.max(...ys) * 1.1) / step)
  const ymax = step * ticks
  const x = (v: number): number => left + (xmax === xmin ? width / 2 : ((Math.log10(v) - Math.log10(xmin)) / (Math.log10(xmax) - Math.log10(xmin))) * width)
  const y = (v: number): number => top + height - (v / ymax) * height
  const out: string[] = []
  const legendWidth = 170
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + legendWidth}" height="${top + height + 50}" viewBox="0 0 ${left + width + legendWidth} ${top + height + 50}" ${FONT}>`)
  out.push(`<rect width="100%" height="100%" fill="white"/>`)
  out.push(`<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`)
  out.push(`<line x1="${left}" y1="${top + height}" x2="${left + width}" y2="${top + height}" stroke="#333"/>`)
  out.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + height}" stroke="#333"/>`)
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
    out.push(`<text x="${x(v).toFixed(1)}" y="${top + height + 16}" text-anchor="middle">${v.toLocaleString('en-US')}</text>`)
  }
  for (let i = 0; i <= ticks; i++) {
    const v = step * i
    out.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(0)}</text>`)
    out.push(`<line x1="${left}" y1="${y(v).toFixed(1)}" x2="${left + width}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`)
  }
  out.push(`<text x="${left + width / 2}" y="${top + height + 36}" text-anchor="middle">${esc(xLabel)}</text>`)
  out.push(`<text x="14" y="${top - 12}">${esc(yLabel)}</text>`)
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const pts = s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ')
    out.push(`<polyline points="${pts}" fill="none" stroke="${color}" stroke-width="2"/>`)
    for (const [px, py] of s.points) out.push(`<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${color}"/>`)
    out.push(`<rect x="${left + width + 14}" y="${top + i * 18}" width="10" height="10" fill="${color}"/><text x="${left + width + 28}" y="${top + i * 18 + 9}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return out.join('\n')
}

interface LatencyPanel {
  readonly title: string
  /** Per series (jobstore, Toil): operations per second at each latency, in the order of `latencies`. */
  readonly series: readonly { readonly name: string; readonly values: readonly (number | undefined)[] }[]
}

/**
 * Small multiples, one panel per operation: operations per second (log axis) against the latency of one file-system
 * request (categorical axis), one line per implementation. Where the lines part, one side pays latency per operation
 * that the other hides.
 */
export function latencyPanels(title: string, latencies: readonly string[], panels: readonly LatencyPanel[]): string {
  const columns = 4
  const panelWidth = 190
  const panelHeight = 150
  const pad = { left: 46, top: 22, bottom: 30, right: 10 }
  const top = 56
  const rows = Math.ceil(panels.length / columns)
  const width = columns * (panelWidth + pad.left + pad.right) + 10
  const height = top + rows * (panelHeight + pad.top + pad.bottom) + 10
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))]
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`)
  out.push(`<rect width="100%" height="100%" fill="white"/>`)
  out.push(`<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`)
  names.forEach((name, i) => {
    const lx = 10 + i * 170
    out.push(`<rect x="${lx}" y="32" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${lx + 14}" y="41">${esc(name)}</text>`)
  })
  panels.forEach((panel, index) => {
    const ox = 10 + (index % columns) * (panelWidth + pad.left + pad.right) + pad.left
    const oy = top + Math.floor(index / columns) * (panelHeight + pad.top + pad.bottom) + pad.top
    const values = panel.series.flatMap((s) => s.values).filter((v): v is number => v !== undefined && v > 0)
    if (values.length === 0) return
    // Decades that hold every value: the y axis is log10 of operations per second.
    const lo = Math.floor(Math.log10(Math.min(...values)))
    const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values))))
    const x = (i: number): number => ox + (latencies.length === 1 ? panelWidth / 2 : (i / (latencies.length - 1)) * panelWidth)
    const y = (v: number): number => oy + panelHeight - ((Math.log10(v) - lo) / (hi - lo)) * panelHeight
    out.push(`<text x="${ox}" y="${oy - 8}" font-weight="bold">${esc(panel.title)}</text>`)
    out.push(`<line x1="${ox}" y1="${oy + panelHeight}" x2="${ox + panelWidth}" y2="${oy + panelHeight}" stroke="#333"/>`)
    out.push(`<line x1="${ox}" y1="${oy}" x2="${ox}" y2="${oy + panelHeight}" stroke="#333"/>`)
    for (let d = lo; d <= hi; d++) {
      const v = 10 ** d
      out.push(`<line x1="${ox}" y1="${y(v).toFixed(1)}" x2="${ox + panelWidth}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`)
      out.push(`<text x="${ox - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1000 ? `${v / 1000}k` : v}</text>`)
    }
    latencies.forEach((label, i) => out.push(`<text x="${x(i).toFixed(1)}" y="${oy + panelHeight + 16}" text-anchor="middle">${esc(label)}</text>`))
    panel.series.forEach((s) => {
      const color = COLORS[names.indexOf(s.name) % COLORS.length]
      const points = s.values.flatMap((v, i) => (v === undefined || v <= 0 ? [] : [[x(i), y(v)] as const]))
      out.push(`<polyline points="${points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`)
      for (const [px, py] of points) out.push(`<circle cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="3" fill="${color}"/>`)
    })
  })
  out.push('</svg>')
  return out.join('\n')
}

/**
 * The panels of the latency plot: the file backend without fsync (the local point; delayfs cells run with
 * `durable: false` too, as Toil never fsyncs) and each delayfs cell, for every operation Toil was timed on.
 */
function latencyPlot(results: RunResults): string | undefined {
  const columns: { label: string; backend: string }[] = [
    { label: 'local', backend: 'file-nosync' },
    ...Object.entries(FUSE_DELAY_MS)
      .sort((a, b) => (a[1] ?? 0) - (b[1] ?? 0))
      .map(([backend, ms]) => ({ label: `${ms} ms`, backend })),
  ]
  const cellOf = (workload: CellResult['workload'], backend: string): CellResult | undefined =>
    results.cells.find((c) => c.workload === workload && c.backend === backend && c.error === undefined)
  const fuseCells = results.cells.filter((c) => c.backend in FUSE_DELAY_MS && c.error === undefined && c.toil !== undefined)
  if (fuseCells.length === 0) return undefined
  const panels: LatencyPanel[] = []
  for (const workload of [...new Set(fuseCells.map((c) => c.workload))]) {
    const first = fuseCells.find((c) => c.workload === workload)
    for (const phase of Object.keys(first?.jobstore[0]?.phases ?? {})) {
      const rate = (cell: CellResult | undefined, side: 'jobstore' | 'toil'): number | undefined => {
        const runs = cell === undefined ? undefined : side === 'jobstore' ? cell.jobstore : cell.toil
        const seconds = runs === undefined ? undefined : phaseMedian(runs, phase)
        return cell === undefined || seconds === undefined || seconds <= 0 ? undefined : cell.count / seconds
      }
      const cells = columns.map((c) => cellOf(workload, c.backend))
      const name = workload === 'churn' ? `jobs: ${phase}` : workload === 'files' ? `files: ${phase}` : workload === 'status' ? 'status' : workload === 'clean' ? 'clean()' : `${workload}: ${phase}`
      panels.push({
        title: name,
        series: [
          { name: 'jobstore', values: cells.map((c) => rate(c, 'jobstore')) },
          { name: "Toil's FileJobStore", values: cells.map((c) => rate(c, 'toil')) },
        ],
      })
    }
  }
  return latencyPanels(
    'Operations (jobs, files) per second against the latency of one file-system request (log scale)',
    columns.map((c) => c.label),
    panels,
  )
}

const phaseMedian = (sides: readonly { phases: Record<string, number> }[], phase: string): number | undefined => {
  const values = sides.map((s) => s.phases[phase]).filter((v): v is number => v !== undefined)
  return values.length === 0 ? undefined : median(values)
}

/** The plots of a run, by file name. */
export function renderPlots(results: RunResults): Record<string, string> {
  const plots: Record<string, string> = {}
  const vsRaw: Bar[] = []
  const vsToil: Bar[] = []
  for (const cell of results.cells) {
    if (cell.error !== undefined || cell.workload === 'scaling') continue
    for (const phase of Object.keys(cell.jobstore[0]?.phases ?? {})) {
      const js = phaseMedian(cell.jobstore, phase)
      const raw = phaseMedian(cell.raw, phase)
      const name = cell.workload === 'churn' ? `jobs: ${phase}` : cell.workload === 'files' ? `files: ${phase}` : cell.workload === 'large' ? `large: ${phase}` : cell.workload === 'status' ? 'status' : 'clean()'
      const suffix = cell.workload === 'clean' || cell.workload === 'status' ? ` (${cell.count.toLocaleString('en-US')})` : ''
      if (js !== undefined && raw !== undefined) vsRaw.push({ label: `${name}${suffix}`, value: raw / js, series: cell.backend })
      const toil = cell.toil === undefined ? undefined : phaseMedian(cell.toil, phase)
      if (js !== undefined && toil !== undefined) vsToil.push({ label: `${name}${suffix}`, value: toil / js, series: cell.backend })
    }
  }
  const byLabel = (a: Bar, b: Bar): number => a.series.localeCompare(b.series)
  if (vsRaw.length > 0) {
    plots['benchmarks-vs-raw.svg'] = barChart(
      'jobstore speed / raw SDK speed (same operations, same run; 1 = as fast as the SDK)',
      [...vsRaw].sort(byLabel),
      [
        { value: 1, label: '1' },
        { value: TARGETS.smallOps, label: `${TARGETS.smallOps}` },
      ],
    )
  }
  if (vsToil.length > 0) {
    plots['benchmarks-vs-toil.svg'] = barChart(
      "jobstore speed / Toil FileJobStore speed (same disk, same run; log scale)",
      [...vsToil].sort(byLabel),
      [
        { value: 1, label: '1' },
        { value: TARGETS.toil, label: `${TARGETS.toil}×` },
      ],
      { log: true, unit: '×' },
    )
  }
  const scaling = results.cells.filter((c) => c.workload === 'scaling' && c.error === undefined).sort((a, b) => a.count - b.count)
  if (scaling.length > 1) {
    const phases = Object.keys(scaling[0]?.jobstore[0]?.phases ?? {})
    plots['benchmarks-scaling.svg'] = lineChart(
      'Workload 1 on the file backend: cost per operation by store size (flat = linear)',
      'jobs in the store',
      'µs per operation (jobstore: phase time / n, 32 in flight)',
      phases.map((phase) => ({
        name: phase,
        points: scaling.map((cell) => [cell.count, ((phaseMedian(cell.jobstore, phase) ?? 0) / cell.count) * 1e6] as [number, number]),
      })),
    )
  }
  const latency = latencyPlot(results)
  if (latency !== undefined) plots['benchmarks-latency.svg'] = latency
  return plots
}
