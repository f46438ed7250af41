#!/usr/bin/env node
/**
 * The `jobstore` admin CLI: `jobstore <command> <locator> …`, `jobstore --help`. See docs/cli.md.
 */
import { AbortedError } from '../errors.js'
import { EXIT } from './exit-codes.js'
import { run } from './program.js'

// The AWS SDK prints an 8-line NodeVersionSupportWarning on stderr when it runs on Node < 22 (its releases after
// January 2027 need Node 22). That is a notice for the developers of an application, not for the user of a
// command; this is the SDK's own opt-out (aws/aws-sdk-js-v3#7983), read when an S3 client is made, set for this
// process only (the library never sets it). A user who set the variable keeps their value.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true'

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
