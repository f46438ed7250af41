/**
 * The CLI's stderr carries its own messages only: no warning the cloud SDKs print about the runtime (the AWS SDK
 * warns in 8 lines on Node 20 that its releases after January 2027 need Node 22). Runs the CLI from source as a
 * real subprocess, with none of the SDK's opt-out variables set, against the local test servers.
 */
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLI = join(REPO, 'src', 'cli', 'main.ts')
const TSX = (() => {
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json')
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, string> }
  return pathToFileURL(join(dirname(pkgPath), pkg.exports['.'] as string)).href
})()

function cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' }
  // The user did not opt out: the CLI itself must keep the notice off its stderr.
  delete env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED']
  delete env['NODE_NO_WARNINGS']
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
}

/** A process warning as Node prints it: `(node:1234) Warning: …` / `(node:1234) [DEP0040] DeprecationWarning: …`. */
const PROCESS_WARNING = /\(node:\d+\)|NodeVersionSupportWarning|Warning:/

describe('jobstore CLI: no SDK warnings on stderr', () => {
  it.each([
    ['s3', () => `s3://jobstore-cli-tests/warnings-${randomUUID()}`],
    ['gs', () => `gs://jobstore-cli-tests/warnings-${randomUUID()}`],
    ['azure', () => `azure://devstoreaccount1/jobstore-cli-tests/warnings-${randomUUID()}`],
  ])('%s: init, status --json and destroy write only their own messages', async (_name, make) => {
    const locator = make()
    const init = await cli(['init', locator])
    expect(init.code, init.stderr).toBe(0)
    expect(init.stderr).not.toMatch(PROCESS_WARNING)
    expect(init.stderr).toContain('initialized a job store at')
    const status = await cli(['status', locator, '--json'])
    expect(status.code, status.stderr).toBe(0)
    expect(status.stderr).toBe('')
    expect(JSON.parse(status.stdout)).toMatchObject({ jobs: expect.anything() })
    const destroyed = await cli(['destroy', locator, '--yes'])
    expect(destroyed.code, destroyed.stderr).toBe(0)
    expect(destroyed.stderr).not.toMatch(PROCESS_WARNING)
  })
})
