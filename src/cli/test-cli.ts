/**
 * Test helper: runs the built `jobstore` CLI (`dist/src/cli/main.js`) as a subprocess. The vitest global setup
 * (`test-servers/build-cli.ts`) builds `dist/` once per run when it is missing or older than the sources, so the
 * tests exercise the current source without paying tsx's start-up (transpiling the whole CLI) on every command.
 * Not part of the package: `tsconfig.build.json` leaves it out.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The repository's root folder. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The CLI's source entry point (what the bin is built from). */
export const CLI_SOURCE = join(REPO, 'src', 'cli', 'main.ts')
/** The built CLI, the package's bin. */
export const CLI_BIN = join(REPO, 'dist', 'src', 'cli', 'main.js')

/** What a finished CLI run printed, and its exit code (null when a signal ended it). */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface CliRunOptions {
  /** Added to the test process's environment. */
  readonly env?: Record<string, string>
  /** The working folder (default: the repository). */
  readonly cwd?: string
}

/** A running CLI: the child, its result once it exits, and the stdout so far. */
export interface RunningCli {
  readonly child: ChildProcessWithoutNullStreams
  readonly done: Promise<CliResult>
  output(): string
}

/** Starts `jobstore <args>` with an empty, closed stdin. */
export function startCli(args: readonly string[], options: CliRunOptions = {}): RunningCli {
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    cwd: options.cwd ?? REPO,
    // The AWS SDK warns on stderr that its releases after January 2027 need Node 22; the tests check that the CLI
    // itself writes nothing there with --json, so that notice is switched off (users see it, as they should).
    env: { ...process.env, NODE_OPTIONS: '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  child.stdin.end()
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const done = new Promise<CliResult>((resolvePromise, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
  return { child, done, output: () => stdout }
}

/** Runs `jobstore <args>` to completion. */
export async function cli(args: readonly string[], options: CliRunOptions = {}): Promise<CliResult> {
  return startCli(args, options).done
}

/**
 * The JSON error document a failing `--json` command writes on stderr: its last line. Lines before it may be
 * warnings the runtime or an SDK prints.
 */
export function jsonErrorOf(stderr: string): unknown {
  const lines = stderr.trim().split('\n')
  return JSON.parse(lines[lines.length - 1] ?? '')
}

/** Runs `jobstore <args> --json`, expects exit 0, and parses stdout. */
export async function cliJson<T = Record<string, unknown>>(args: readonly string[], options: CliRunOptions = {}): Promise<T> {
  const result = await cli([...args, '--json'], options)
  if (result.code !== 0) throw new Error(`jobstore ${args.join(' ')} exited ${result.code}: ${result.stderr}`)
  return JSON.parse(result.stdout) as T
}
