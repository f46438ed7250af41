/**
 * Progress bars for long transfers (copy, verify, import and export of big files), with rate and ETA, on stderr
 * and only when stderr is a terminal: redirected to a file or a pipe, the CLI prints no progress at all.
 */
import type { Writable } from 'node:stream'
import cliProgress from 'cli-progress'
import { formatBytes } from './output.js'
import { escapeForTerminal } from './terminal-safe.js'

/** Imports and exports at least this big get a progress bar (on a terminal). */
export const BIG_TRANSFER_BYTES = 8 * 1024 * 1024

/** A stream that may be a terminal (`process.stderr`, or a test double). */
export type MaybeTty = Writable & { isTTY?: boolean; columns?: number }

/** What a progress reporter is told. */
export interface ProgressState {
  /** A word for what is going on (`copy`, `verify`...); a change restarts the rate and ETA. */
  readonly phase?: string
  /** Items (or bytes, for a byte bar) done and in all. */
  readonly done: number
  readonly total: number
  /** Bytes moved so far in this phase (for the rate of an item bar). */
  readonly bytes?: number
}

export interface ProgressReporter {
  update(state: ProgressState): void
  /** Stops drawing and leaves the last state on its own line. Idempotent. */
  stop(): void
}

const NONE: ProgressReporter = { update: () => {}, stop: () => {} }

/** Whether to draw progress on `stream`: a terminal, and not turned off with `--no-progress`. */
export function wantsProgress(stream: MaybeTty, enabled: boolean): boolean {
  return enabled && stream.isTTY === true
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--'
  const s = Math.round(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/**
 * A progress bar on `stream`, or a reporter that does nothing when `stream` is not a terminal or `enabled` is
 * false. `unit: 'bytes'` counts bytes (import, export); `'items'` counts objects and shows the byte rate too.
 */
export function createProgress(options: {
  readonly stream: MaybeTty
  readonly enabled: boolean
  readonly label: string
  readonly unit: 'bytes' | 'items'
  /** The clock, for tests. */
  readonly now?: () => number
}): ProgressReporter {
  if (!wantsProgress(options.stream, options.enabled)) return NONE
  const now = options.now ?? Date.now
  const bar = new cliProgress.SingleBar({
    stream: options.stream as unknown as NodeJS.WritableStream,
    format: '{label} [{bar}] {percentage}% | {doneText}/{totalText} | {rateText} | ETA {etaText}',
    barsize: 24,
    hideCursor: true,
    clearOnComplete: false,
    gracefulExit: false,
    linewrap: false,
    fps: 8,
    barCompleteChar: '#',
    barIncompleteChar: '-',
  })
  let phase: string | undefined
  let phaseStart = now()
  let started = false
  let stopped = false
  return {
    update(state) {
      if (stopped) return
      if (state.phase !== phase) {
        phase = state.phase
        phaseStart = now()
      }
      const elapsed = Math.max((now() - phaseStart) / 1000, 0.001)
      const moved = options.unit === 'bytes' ? state.done : (state.bytes ?? 0)
      const rate = moved / elapsed
      const itemRate = state.done / elapsed
      const remaining = Math.max(state.total - state.done, 0)
      const eta = state.done > 0 ? remaining / itemRate : Number.NaN
      const payload = {
        label: escapeForTerminal(phase === undefined ? options.label : `${options.label}: ${phase}`),
        doneText: options.unit === 'bytes' ? formatBytes(state.done) : String(state.done),
        totalText: options.unit === 'bytes' ? formatBytes(state.total) : String(state.total),
        rateText: `${formatBytes(rate)}/s`,
        etaText: remaining === 0 ? '0s' : formatDuration(eta),
      }
      const total = Math.max(state.total, state.done, 1)
      if (!started) {
        started = true
        bar.start(total, state.done, payload)
      } else {
        bar.setTotal(total)
        bar.update(state.done, payload)
      }
    },
    stop() {
      if (stopped) return
      stopped = true
      if (started) bar.stop()
    },
  }
}
