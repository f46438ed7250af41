#!/usr/bin/env node
/**
 * The `jobstore` admin CLI: `jobstore <command> <locator> …`, `jobstore --help`. See docs/cli.md.
 */
import { AbortedError } from '../errors.js'
import { EXIT } from './exit-codes.js'
import { run } from './program.js'

const controller = new AbortController()
let interrupts = 0
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // The first one stops the command cleanly (uploads aborted, nothing half-written); a second one quits now.
    if (++interrupts > 1) process.exit(EXIT.INTERRUPTED)
    controller.abort(new AbortedError())
  })
}
// A reader that goes away (`jobstore logs … | head`) is not an error: the stream is then destroyed, the command's
// next write fails with EPIPE (see Output), and the command stops cleanly (a message not printed stays unread).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err
})

const code = await run(
  process.argv.slice(2),
  { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, cwd: process.cwd() },
  { signal: controller.signal, env: process.env },
)
// Flush stdout, then exit without waiting for idle keep-alive sockets of the cloud SDKs.
if (!process.stdout.destroyed) await new Promise<void>((resolve) => process.stdout.write('', () => resolve()))
process.exit(code)
