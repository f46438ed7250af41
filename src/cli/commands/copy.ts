/** `copy`: migrate a whole store to another locator, possibly on another backend (`store.copyTo`). */
import type { CopyProgress, CopyReport } from '../../index.js'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'
import { formatBytes, plural } from '../output.js'
import { createProgress } from '../progress.js'

export async function copyCommand(ctx: CommandContext, source: string, destination: string): Promise<void> {
  if (source.trim() === destination.trim()) throw usageError('copy needs two different locators')
  const src = await ctx.resume(source)
  const dst = await ctx.open(destination)
  const progress = createProgress({ stream: ctx.io.stderr, enabled: ctx.progress, label: 'copy', unit: 'items' })
  let phase: CopyProgress['phase'] | undefined
  const onProgress = (p: CopyProgress): void => {
    if (p.phase !== phase) {
      phase = p.phase
      // Without a terminal (logs, CI), one line per phase instead of a bar.
      if (!ctx.io.stderr.isTTY) {
        ctx.out.info(
          p.phase === 'list'
            ? `listing ${ctx.show(source)}…`
            : p.phase === 'copy'
              ? `copying ${plural(p.total, 'object')} to ${ctx.show(destination)}…`
              : `verifying ${plural(p.total, 'object')} by SHA-256…`,
        )
      }
    }
    progress.update({ phase: p.phase, done: p.done, total: p.total, bytes: p.bytes })
  }
  let report: CopyReport
  try {
    report = await src.copyTo(dst, { ...ctx.signalOptions, onProgress })
  } finally {
    progress.stop()
  }
  ctx.out.result({ source: ctx.show(source), destination: ctx.show(destination), workflowID: src.config.workflowID, ...report }, () =>
    `copied ${plural(report.copied, 'object')} (${formatBytes(report.bytes)}), skipped ${report.skipped} already there, verified ${report.verified} of ${report.objects} by SHA-256`,
  )
}
