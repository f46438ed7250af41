/** `logs`: the stats and logging messages workers write with `writeStatsAndLogging`. */
import { sleep } from '../../concurrency.js'
import type { CommandContext } from '../context.js'
import { EXIT, exitCodeFor } from '../exit-codes.js'

export interface LogsOptions {
  readonly all?: boolean
  readonly follow?: boolean
  /** Take the messages as their reader: mark them read, so that the engine does not get them. */
  readonly consume?: boolean
  /** Seconds between polls with `--follow`. */
  readonly interval?: number
}

/**
 * Prints the unread messages without taking them from the engine (a `peek`), or with `--consume` as one of the
 * readers that `readStatsAndLogging` hands each message to exactly once. `--all` also shows the messages read
 * before. `--follow` keeps polling for new messages until interrupted (Ctrl-C ends it with exit 0), printing each
 * message once.
 */
export async function logsCommand(ctx: CommandContext, locator: string, options: LogsOptions): Promise<void> {
  const store = await ctx.resume(locator)
  const shown = new Set<string>()
  const print = (text: string, message: { id: string; read: boolean }): void => {
    if (shown.has(message.id)) return
    shown.add(message.id)
    if (ctx.out.json) ctx.out.jsonLine({ id: message.id, read: message.read, text })
    // Escaped, with its further lines indented: a message cannot forge another (see Output.message).
    else ctx.out.message(text.endsWith('\n') ? text.slice(0, -1) : text)
  }
  const intervalMs = Math.max(0.05, options.interval ?? 1) * 1000
  let replay = options.all === true
  try {
    for (;;) {
      await store.readStatsAndLogging(print, replay, { ...ctx.signalOptions, peek: options.consume !== true })
      replay = false
      if (!options.follow) break
      await sleep(intervalMs, ctx.signal)
    }
  } catch (err) {
    // Following ends with Ctrl-C: that is how it is meant to stop, not a failure.
    if (!(options.follow && ctx.signal.aborted && exitCodeFor(err) === EXIT.INTERRUPTED)) throw err
  }
  ctx.out.info(`${shown.size} message(s)`)
}
