/**
 * Turns a run's results into the tables `npm run bench` prints (Markdown, so they paste into docs/benchmarks.md):
 * medians over rounds, ratios measured in the same run, and each target marked met or MISSED.
 */
import type { CellResult, RunResults } from './results.js'
import { median, MiB } from './util.js'

/** The targets of the issue. */
export const TARGETS = {
  /** jobstore / raw SDK, per operation, object backends. */
  smallOps: 0.8,
  /** jobstore / raw SDK, streaming throughput, object backends. */
  streaming: 0.9,
  /** jobstore (file) / Toil FileJobStore, ops/s on churn and files, and clean() speed. */
  toil: 5,
  /** The same on delayfs at 2 ms per request (the FUSE stand-in for a shared file system), and on status. */
  toilFuse2ms: 10,
  /** Peak RSS streaming the large file, MiB, every backend. */
  rssMiB: 150,
  /** Scaling: per-op cost at the largest size / at the smallest, at most (linear growth = 1). */
  scalingGrowth: 1.5,
} as const

const OBJECT_BACKENDS = new Set(['s3', 'azure', 'gcs'])
/** The jobstore/Toil target of a backend, if it has one. */
function toilTargetOf(backend: string): number | undefined {
  if (backend === 'file' || backend === 'file-nosync') return TARGETS.toil
  if (backend === 'file-fuse-2ms') return TARGETS.toilFuse2ms
  return undefined
}

export interface Verdict {
  readonly what: string
  readonly value: number
  readonly target: string
  readonly met: boolean
}

function phaseMedian(sides: readonly { phases: Record<string, number> }[], phase: string): number | undefined {
  const values = sides.map((s) => s.phases[phase]).filter((v): v is number => v !== undefined)
  return values.length === 0 ? undefined : median(values)
}

function infoMax(sides: readonly { info?: Record<string, number | string> }[], key: string): number | undefined {
  const values = sides.map((s) => s.info?.[key]).filter((v): v is number => typeof v === 'number')
  return values.length === 0 ? undefined : Math.max(...values)
}

const fmt = (n: number | undefined, digits = 0): string => {
  if (n === undefined || !Number.isFinite(n)) return '—'
  if (Math.abs(n) >= 100 || digits === 0) return Math.round(n).toLocaleString('en-US')
  return n.toFixed(digits)
}
const ratio = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(2))
const mark = (met: boolean): string => (met ? 'met' : '**MISSED**')
const count = (n: number): string => n.toLocaleString('en-US')

/** A Markdown table; the first `textColumns` columns are left-aligned, the numbers right-aligned. */
function table(header: readonly string[], rows: readonly (readonly string[])[], textColumns = 3): string {
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i < textColumns ? '---' : '---:')).join(' | ')} |`]
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`)
  return lines.join('\n')
}

const BACKEND_LABEL: Record<string, string> = {
  file: 'file',
  'file-nosync': 'file (durable: false)',
  s3: 's3 (MinIO)',
  azure: 'azure (Azurite)',
  gcs: 'gcs (fake-gcs-server)',
  'file-fuse-0.5ms': 'file on delayfs, 0.5 ms/request',
  'file-fuse-2ms': 'file on delayfs, 2 ms/request',
}
const label = (backend: string): string => BACKEND_LABEL[backend] ?? backend

/** Rows of an operations workload (churn, files) and the verdicts they give. */
function opsSection(results: RunResults, workload: 'churn' | 'files', verdicts: Verdict[]): string {
  const cells = results.cells.filter((c) => c.workload === workload)
  const rows: string[][] = []
  for (const cell of cells) {
    if (cell.error !== undefined) {
      rows.push([label(cell.backend), count(cell.count), `error: ${cell.error.split('\n')[0] ?? ''}`, '', '', '', '', '', '', ''])
      continue
    }
    const phases = Object.keys(cell.jobstore[0]?.phases ?? {})
    for (const phase of phases) {
      const js = phaseMedian(cell.jobstore, phase)
      const raw = phaseMedian(cell.raw, phase)
      const toil = cell.toil === undefined ? undefined : phaseMedian(cell.toil, phase)
      const jsOps = js === undefined ? undefined : cell.count / js
      const rawOps = raw === undefined ? undefined : cell.count / raw
      const toilOps = toil === undefined ? undefined : cell.count / toil
      const vsRaw = js !== undefined && raw !== undefined ? raw / js : undefined
      const vsToil = js !== undefined && toil !== undefined ? toil / js : undefined
      let rawTarget = '(info)'
      if (OBJECT_BACKENDS.has(cell.backend) && vsRaw !== undefined) {
        const met = vsRaw >= TARGETS.smallOps
        rawTarget = `≥ ${TARGETS.smallOps}: ${mark(met)}`
        verdicts.push({ what: `${workload} ${phase} on ${cell.backend}: jobstore/raw`, value: vsRaw, target: `≥ ${TARGETS.smallOps}`, met })
      }
      const toilTarget = toilVerdict(`${workload} ${phase} on ${cell.backend}`, cell.backend, vsToil, verdicts)
      rows.push([
        label(cell.backend),
        count(cell.count),
        phase,
        fmt(jsOps),
        fmt(rawOps),
        ratio(vsRaw),
        rawTarget,
        fmt(toilOps),
        ratio(vsToil),
        toilTarget,
      ])
    }
  }
  return table(['backend', 'n', 'op', 'jobstore ops/s', 'raw ops/s', 'jobstore/raw', 'target', 'Toil ops/s', 'jobstore/Toil', 'target'], rows)
}

function largeSection(results: RunResults, verdicts: Verdict[]): string {
  const rows: string[][] = []
  for (const cell of results.cells.filter((c) => c.workload === 'large')) {
    const size = `${fmt(cell.count / MiB)} MiB`
    if (cell.error !== undefined) {
      rows.push([label(cell.backend), size, `error: ${cell.error.split('\n')[0] ?? ''}`, '', '', '', '', '', '', ''])
      continue
    }
    for (const phase of ['write', 'read']) {
      const js = phaseMedian(cell.jobstore, phase)
      const raw = phaseMedian(cell.raw, phase)
      const vs = js !== undefined && raw !== undefined ? raw / js : undefined
      let target = '(info)'
      if (OBJECT_BACKENDS.has(cell.backend) && vs !== undefined) {
        const met = vs >= TARGETS.streaming
        target = `≥ ${TARGETS.streaming}: ${mark(met)}`
        verdicts.push({ what: `large ${phase} on ${cell.backend}: jobstore/raw throughput`, value: vs, target: `≥ ${TARGETS.streaming}`, met })
      }
      const key = phase === 'write' ? 'writePeakRssMiB' : 'readPeakRssMiB'
      rows.push([
        label(cell.backend),
        size,
        phase,
        fmt(js === undefined ? undefined : cell.count / MiB / js),
        fmt(raw === undefined ? undefined : cell.count / MiB / raw),
        ratio(vs),
        target,
        fmt(infoMax(cell.jobstore, key)),
        fmt(infoMax(cell.raw, key)),
        '',
      ])
    }
    const jsMax = infoMax(cell.jobstore, 'maxRssMiB')
    const rawMax = infoMax(cell.raw, 'maxRssMiB')
    let rssTarget = ''
    if (jsMax !== undefined) {
      const met = jsMax < TARGETS.rssMiB
      rssTarget = `< ${TARGETS.rssMiB}: ${mark(met)}`
      verdicts.push({ what: `large on ${cell.backend}: jobstore peak RSS (MiB)`, value: jsMax, target: `< ${TARGETS.rssMiB}`, met })
    }
    rows.push([label(cell.backend), size, 'peak RSS (maxRSS)', '', '', '', '', fmt(jsMax), fmt(rawMax), rssTarget])
  }
  return table(
    ['backend', 'size', 'direction', 'jobstore MiB/s', 'raw MiB/s', 'jobstore/raw', 'target', 'jobstore RSS MiB', 'raw RSS MiB', 'target'],
    rows,
  )
}

/** The jobstore/Toil target column of a row, and its verdict. */
function toilVerdict(what: string, backend: string, vsToil: number | undefined, verdicts: Verdict[]): string {
  const target = toilTargetOf(backend)
  if (vsToil === undefined) return ''
  if (target === undefined) return '(info)'
  const met = vsToil >= target
  verdicts.push({ what: `${what}: jobstore/Toil`, value: vsToil, target: `≥ ${target}`, met })
  return `≥ ${target}: ${mark(met)}`
}

/** Workload 4 (phase clean) and the status workload (phase status): one time per cell. */
function cleanSection(results: RunResults, verdicts: Verdict[], workload: 'clean' | 'status' = 'clean'): string {
  const rows: string[][] = []
  for (const cell of results.cells.filter((c) => c.workload === workload)) {
    if (cell.error !== undefined) {
      rows.push([label(cell.backend), count(cell.count), `error: ${cell.error.split('\n')[0] ?? ''}`, '', '', '', '', '', ''])
      continue
    }
    const js = phaseMedian(cell.jobstore, workload)
    const raw = phaseMedian(cell.raw, workload)
    const toil = cell.toil === undefined ? undefined : phaseMedian(cell.toil, workload)
    const vsRaw = js !== undefined && raw !== undefined ? raw / js : undefined
    const vsToil = js !== undefined && toil !== undefined ? toil / js : undefined
    let rawTarget = '(info)'
    if (OBJECT_BACKENDS.has(cell.backend) && vsRaw !== undefined) {
      const met = vsRaw >= TARGETS.smallOps
      rawTarget = `≥ ${TARGETS.smallOps}: ${mark(met)}`
      verdicts.push({ what: `${workload} ${cell.count} on ${cell.backend}: jobstore/raw`, value: vsRaw, target: `≥ ${TARGETS.smallOps}`, met })
    }
    const toilTarget = toilVerdict(`${cell.workload} ${cell.count} on ${cell.backend}`, cell.backend, vsToil, verdicts)
    rows.push([label(cell.backend), count(cell.count), fmt(js, 2), fmt(raw, 2), ratio(vsRaw), rawTarget, fmt(toil, 2), ratio(vsToil), toilTarget])
  }
  return table(['backend', 'jobs', 'jobstore s', 'raw s', 'jobstore/raw', 'target', 'Toil s', 'jobstore/Toil', 'target'], rows)
}

function scalingSection(results: RunResults, verdicts: Verdict[]): string {
  const cells = results.cells.filter((c) => c.workload === 'scaling' && c.error === undefined).sort((a, b) => a.count - b.count)
  const errors = results.cells.filter((c) => c.workload === 'scaling' && c.error !== undefined)
  const smallest = cells[0]
  const rows: string[][] = []
  if (smallest !== undefined) {
    for (const phase of Object.keys(smallest.jobstore[0]?.phases ?? {})) {
      const base = phaseMedian(smallest.jobstore, phase)
      const rawBase = phaseMedian(smallest.raw, phase)
      for (const cell of cells) {
        const js = phaseMedian(cell.jobstore, phase)
        const raw = phaseMedian(cell.raw, phase)
        const perOp = js === undefined ? undefined : (js / cell.count) * 1e6
        const rawPerOp = raw === undefined ? undefined : (raw / cell.count) * 1e6
        const growth = js !== undefined && base !== undefined ? js / cell.count / (base / smallest.count) : undefined
        const rawGrowth = raw !== undefined && rawBase !== undefined ? raw / cell.count / (rawBase / smallest.count) : undefined
        let target = ''
        if (cell !== smallest && growth !== undefined) {
          const met = growth <= TARGETS.scalingGrowth
          target = `≤ ${TARGETS.scalingGrowth}: ${mark(met)}`
          verdicts.push({ what: `scaling ${phase} at ${cell.count} (file): per-op growth`, value: growth, target: `≤ ${TARGETS.scalingGrowth}`, met })
        }
        rows.push([phase, count(cell.count), fmt(perOp), fmt(rawPerOp), ratio(growth), ratio(rawGrowth), target])
      }
    }
  }
  for (const cell of errors) rows.push(['error', count(cell.count), cell.error?.split('\n')[0] ?? '', '', '', '', ''])
  return table(['op', 'jobs', 'jobstore µs/op', 'raw µs/op', `jobstore per-op growth vs n=${smallest ? count(smallest.count) : '?'}`, 'raw growth', 'target'], rows)
}

/** The whole report: one section per workload that ran, then the verdicts. */
export function renderReport(results: RunResults): { markdown: string; verdicts: Verdict[] } {
  const verdicts: Verdict[] = []
  const has = (w: CellResult['workload']): boolean => results.cells.some((c) => c.workload === w)
  const parts: string[] = []
  const s = results.settings
  parts.push(
    `Run of ${results.date}: ${results.command}\n` +
      `rounds ${s.rounds} (median shown; ratios are per round medians of the same run), client concurrency ${s.concurrency}, ` +
      `jobs of ${count(s.recordBytes)} B, files of ${count(s.fileBytes)} B`,
  )
  if (has('churn')) parts.push(`### Workload 1: small-job churn (create in batch(), load, update, jobs(), delete)\n\n${opsSection(results, 'churn', verdicts)}`)
  if (has('files')) parts.push(`### Workload 2: many small files (${count(s.fileBytes / 1024)} KiB each)\n\n${opsSection(results, 'files', verdicts)}`)
  if (has('large')) parts.push(`### Workload 3: one large file streamed in and out\n\n${largeSection(results, verdicts)}`)
  if (has('clean')) parts.push(`### Workload 4: clean() (10% unreachable, 5% of reachable repaired)\n\n${cleanSection(results, verdicts)}`)
  if (has('status'))
    parts.push(
      `### Status: \`jobstore status\` against \`toil status\` (whole commands, start-up included; raw: list and load every job)\n\n${cleanSection(results, verdicts, 'status')}`,
    )
  if (has('scaling')) parts.push(`### Workload 5: scaling of workload 1 on the file backend\n\n${scalingSection(results, verdicts)}`)
  const toilRecord = results.cells.flatMap((c) => c.toil ?? []).find((t) => t.recordBytes !== undefined)?.recordBytes
  const baselines = Object.entries(results.baselines)
  if (baselines.length > 0 || toilRecord !== undefined) {
    parts.push(
      'Baselines (raw: same operations, same server or disk, same concurrency, no job store in between):\n' +
        baselines.map(([b, what]) => `- raw ${label(b)}: ${what}`).join('\n') +
        (toilRecord !== undefined
          ? `\n- Toil: toil.jobStores.fileJobStore.FileJobStore, one call at a time (its API is synchronous); job records of ${count(toilRecord)} B (pickled), no fsync`
          : ''),
    )
  }
  const unavailable = Object.entries(results.unavailable)
  if (unavailable.length > 0) parts.push(`Not run:\n${unavailable.map(([b, why]) => `- ${b}: ${why}`).join('\n')}`)
  const missed = verdicts.filter((v) => !v.met)
  parts.push(
    `### Targets: ${verdicts.length - missed.length} of ${verdicts.length} met\n\n` +
      (missed.length === 0 ? 'All met.' : missed.map((v) => `- MISSED ${v.what}: ${v.value.toFixed(2)} (target ${v.target})`).join('\n')),
  )
  return { markdown: parts.join('\n\n'), verdicts }
}
