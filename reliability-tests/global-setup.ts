// Vitest global setup of the reliability tests: compiles the child-process worker (and what it imports) to plain
// JavaScript with tsc, so that the crash and race tests start node processes without tsx. Type errors are
// `npm run typecheck`'s business: they are shown here, and only a worker that was not emitted stops the run.
import { execFile } from 'node:child_process'
import { stat } from 'node:fs/promises'
import { promisify } from 'node:util'
import { WORKER, WORKER_BUILD_CONFIG } from './processes.js'

export default async function setup(): Promise<void> {
  const started = Date.now()
  try {
    await promisify(execFile)(process.execPath, ['node_modules/typescript/bin/tsc', '-p', WORKER_BUILD_CONFIG], {
      cwd: new URL('..', import.meta.url),
    })
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string }
    const emitted = await stat(WORKER).then((info) => info.mtimeMs >= started - 1000, () => false)
    if (!emitted) throw new Error(`compiling the reliability worker failed:\n${stdout}${stderr}`)
    process.stderr.write(`reliability worker compiled with type errors (see npm run typecheck):\n${stdout}${stderr}\n`)
  }
}
