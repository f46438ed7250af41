// Small helpers shared by install.ts and servers.ts.
import { spawn } from 'node:child_process'

/** Progress goes to stderr so `npm run servers` can keep stdout for the `export` lines. */
export function log(message: string): void {
  process.stderr.write(`[test-servers] ${message}\n`)
}

/** Keeps the last `max` characters of a process's output, for error messages. */
export class OutputTail {
  #text = ''
  constructor(private readonly max = 16 * 1024) {}
  push(chunk: Buffer | string): void {
    this.#text += chunk.toString()
    if (this.#text.length > 2 * this.max) this.#text = this.#text.slice(-this.max)
  }
  /** The last `lines` lines (default 40), each indented so they stand out inside an error message. */
  lines(lines = 40): string {
    const all = this.#text.slice(-this.max).split('\n')
    if (all.at(-1) === '') all.pop()
    const shown = all.slice(-lines)
    return shown.length === 0 ? '    (no output)' : shown.map((line) => `    ${line}`).join('\n')
  }
}

/** Quotes an argument for display (and for copy-paste into a POSIX shell). */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\-+=/.:,@%]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`
}

export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map(shellQuote).join(' ')
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code
  }
  return undefined
}

export interface RunResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: OutputTail
}

/**
 * Runs a command to completion, collecting the tail of stdout+stderr.
 * Rejects only when the command cannot be started (ENOENT and the like); a non-zero exit is in the result.
 */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; shell?: boolean },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const output = new OutputTail()
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: options.shell ?? false,
    })
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, output }))
  })
}
