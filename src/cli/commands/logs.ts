/** `logs`: the stats and logging messages workers write with `writeStatsAndLogging`. */
import { sleep } from '../../concurrency.js'
import { NoSuchJobStoreError, checkJobId } from '../../index.js'
import { timeOfTimeOrderedId } from '../../ids.js'
import type { CommandContext } from '../context.js'
import { EXIT, exitCodeFor } from '../exit-codes.js'

export interface LogsOptions {
  readonly all?: boolean
  readonly follow?: boolean
  /** Take the messages as their reader: mark them read, so that the engine does not get them. */
  readonly consume?: boolean
  /** Seconds between polls with `--follow`. */
  readonly interval?: number
  /** Only messages that name this job ID. */
  readonly job?: string
  /** Only messages written at or after this time (milliseconds since the epoch). */
  readonly since?: number
}

/** A message as `logs --json` prints it (one per line). */
interface LogLine {
  readonly id: string
  readonly read: boolean
  /** When the message was written (ISO 8601, from its ID: the writer's clock), or null for an ID of another form. */
  readonly time: string | null
  readonly text: string
}

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h|d)$/
const UNIT_MS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * `--since`: an ISO 8601 date or date and time (`2026-12-02`, `2026-12-02T09:30:00Z`; without a zone, local
 * time, as JavaScript reads it), or a duration back from now (`90s`, `10m`, `2h`, `1d`). Milliseconds since the epoch.
 * @throws Error with a message for the user when `value` is neither.
 */
export function parseSince(value: string, now = Date.now()): number {
  const duration = DURATION.exec(value.trim())
  if (duration !== null) return now - Number(duration[1]) * (UNIT_MS[duration[2] as string] as number)
  if (/^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) {
    const time = Date.parse(value.trim())
    if (Number.isFinite(time)) return time
  }
  throw new Error('expected an ISO 8601 time (2026-12-02T09:30:00Z, 2026-12-02) or a duration back from now (90s, 10m, 2h, 1d)')
}

/**
 * Prints the unread messages without taking them from the engine (a `peek`), or with `--consume` as one of the
 * readers that `readStatsAndLogging` hands each message to exactly once. `--all` also shows the messages read
 * before. Messages print in the order they were written (their IDs sort by time), not the listing's order; with
 * `--follow`, each poll's new messages in that order. `--job` keeps the messages that name a job ID, `--since`
 * those written since a time. `--follow` keeps polling until interrupted (Ctrl-C ends it with exit 0), printing
 * each message once, and ends with exit 3 (`NO_SUCH_JOB_STORE`) when the store is destroyed or replaced meanwhile.
 */
export async function logsCommand(ctx: CommandContext, locator: string, options: LogsOptions): Promise<void> {
  if (options.job !== undefined) checkJobId(options.job)
  const store = await ctx.resume(locator)
  const workflowID = store.config.workflowID
  const shown = new Set<string>()
  let printed = 0
  const keep = (line: LogLine): boolean => {
    if (options.job !== undefined && !line.text.includes(options.job)) return false
    if (options.since !== undefined) {
      const time = timeOfTimeOrderedId(line.id)
      if (time === undefined || time < options.since) return false
    }
    return true
  }
  const print = (line: LogLine): void => {
    printed++
    if (ctx.out.json) ctx.out.jsonLine(line)
    // Escaped, with its further lines indented: a message cannot forge another (see Output.message).
    else ctx.out.message(line.text.endsWith('\n') ? line.text.slice(0, -1) : line.text)
  }
  // A second instance, only to see whether the store is still there between polls of --follow.
  const probe = options.follow ? await ctx.open(locator) : undefined
  const intervalMs = Math.max(0.05, options.interval ?? 1) * 1000
  let replay = options.all === true
  try {
    for (;;) {
      const batch: LogLine[] = []
      let failure: unknown
      try {
        await store.readStatsAndLogging(
          (text, message) => {
            if (shown.has(message.id)) return
            shown.add(message.id)
            const time = timeOfTimeOrderedId(message.id)
            batch.push({ id: message.id, read: message.read, time: time === undefined ? null : new Date(time).toISOString(), text })
          },
          replay,
          { ...ctx.signalOptions, peek: options.consume !== true },
        )
      } catch (err) {
        failure = err
      }
      // By time of writing: the IDs sort so (the listing's order is the folders', or the service's).
      batch.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      for (const line of batch) if (keep(line)) print(line)
      if (failure !== undefined) {
        // A store destroyed under a poll can fail it half-way: say that, rather than the listing's error.
        if (probe !== undefined && !ctx.signal.aborted) await stopIfGone(ctx, probe, locator, workflowID, printed)
        throw failure
      }
      replay = false
      if (probe === undefined) break
      await sleep(intervalMs, ctx.signal)
      await stopIfGone(ctx, probe, locator, workflowID, printed)
    }
  } catch (err) {
    // Following ends with Ctrl-C: that is how it is meant to stop, not a failure.
    if (!(options.follow && ctx.signal.aborted && exitCodeFor(err) === EXIT.INTERRUPTED)) throw err
  }
  ctx.out.info(`${printed} message(s)`)
}

/** Throws exit 3 (NO_SUCH_JOB_STORE) when the store followed is gone, or is another workflow's now. */
async function stopIfGone(
  ctx: CommandContext,
  probe: Awaited<ReturnType<CommandContext['open']>>,
  locator: string,
  workflowID: string,
  printed: number,
): Promise<void> {
  let now: string
  try {
    now = (await probe.resume(ctx.signalOptions)).workflowID
  } catch (err) {
    if (exitCodeFor(err) !== EXIT.NOT_FOUND) throw err
    throw storeGone(`the job store at ${ctx.show(locator)} was destroyed while following its logs (${printed} message(s) printed)`, locator, err)
  }
  if (now !== workflowID) {
    throw storeGone(
      `the job store at ${ctx.show(locator)} was destroyed and replaced by another workflow's (${now}) while following its logs (${printed} message(s) printed)`,
      locator,
    )
  }
}

/** `NO_SUCH_JOB_STORE` (exit 3), in words that say what happened while following. */
function storeGone(message: string, locator: string, cause?: unknown): NoSuchJobStoreError {
  const error = new NoSuchJobStoreError(locator, cause !== undefined ? { cause } : {})
  error.message = message
  return error
}
