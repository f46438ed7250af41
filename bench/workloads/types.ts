import type { Target } from '../targets.js'

/** What one side (jobstore or raw) of one round measured: seconds per phase, plus facts for the report. */
export interface SideResult {
  readonly phases: Record<string, number>
  readonly info?: Record<string, number | string>
}

export interface CellContext {
  readonly target: Target
  /** A name unique to this round and side: the store's prefix or folder. */
  readonly id: string
  readonly count: number
  readonly concurrency: number
  readonly recordBytes: number
  readonly fileBytes: number
  readonly log: (message: string) => void
}

export type Side = 'jobstore' | 'raw'

export interface Workload {
  readonly jobstore: (ctx: CellContext) => Promise<SideResult>
  readonly raw: (ctx: CellContext) => Promise<SideResult>
}
