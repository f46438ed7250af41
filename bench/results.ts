/** The shape of a benchmark run's results (what `--json` writes and `--from-json` reads back). */
import type { SideResult } from './workloads/types.js'

export type WorkloadName = 'churn' | 'files' | 'large' | 'clean' | 'status' | 'scaling'
export const WORKLOAD_NAMES: readonly WorkloadName[] = ['churn', 'files', 'large', 'clean', 'status', 'scaling']

export interface ToilRun {
  readonly phases: Record<string, number>
  readonly recordBytes?: number
}

/** One workload on one backend at one size, every round. */
export interface CellResult {
  readonly workload: WorkloadName
  readonly backend: string
  /** Jobs or files; for `large`, bytes. */
  readonly count: number
  readonly jobstore: SideResult[]
  readonly raw: SideResult[]
  /** Toil's FileJobStore, same workload and size, same rounds (file backends only). */
  readonly toil?: ToilRun[]
  readonly error?: string
  /** Why the size differs from the default, or anything else the table should say. */
  readonly note?: string
}

export interface RunResults {
  readonly date: string
  readonly command: string
  readonly durationSeconds: number
  readonly machine: Record<string, string | number>
  readonly settings: {
    readonly quick: boolean
    readonly rounds: number
    readonly concurrency: number
    readonly recordBytes: number
    readonly fileBytes: number
    readonly workDir: string
  }
  /** Backends asked for that could not run, with the reason. */
  readonly unavailable: Record<string, string>
  /** What each raw baseline does, by backend. */
  readonly baselines: Record<string, string>
  readonly cells: CellResult[]
}
