/**
 * Output of the CLI: data on stdout (human text, or one JSON document with `--json`), messages and progress on
 * stderr. Everything printed is redacted (see `redact.ts`); only `cat` writes raw bytes, straight to stdout.
 */
import type { Writable } from 'node:stream'
import { EXIT, errorCodeOf, type ExitCode } from './exit-codes.js'
import type { Redactor } from './redact.js'

export interface OutputOptions {
  readonly json: boolean
  readonly redactor: Redactor
  readonly stdout: Writable
  readonly stderr: Writable
}

export class Output {
  readonly json: boolean
  readonly redactor: Redactor
  readonly stdout: Writable
  readonly stderr: Writable

  constructor(options: OutputOptions) {
    this.json = options.json
    this.redactor = options.redactor
    this.stdout = options.stdout
    this.stderr = options.stderr
  }

  /** Writes to stdout; throws EPIPE (exit 0) once the reader has gone away, so that the command stops. */
  #write(text: string): void {
    if (this.stdout.destroyed) throw Object.assign(new Error('stdout was closed'), { code: 'EPIPE' })
    this.stdout.write(text)
  }

  /** A line of data on stdout (human mode). */
  line(text = ''): void {
    this.#write(`${this.redactor.redact(text)}\n`)
  }

  /** Lines of data on stdout (human mode). */
  lines(lines: readonly string[]): void {
    for (const text of lines) this.line(text)
  }

  /** The command's result: `value` as JSON with `--json`, else the human rendering. */
  result(value: unknown, human: () => readonly string[] | string): void {
    if (this.json) {
      this.#write(`${JSON.stringify(this.redactor.redactDeep(value), null, 2)}\n`)
      return
    }
    const text = human()
    this.lines(typeof text === 'string' ? [text] : text)
  }

  /** One JSON value on one line of stdout (JSON Lines, for streams of records such as `logs`). */
  jsonLine(value: unknown): void {
    this.#write(`${JSON.stringify(this.redactor.redactDeep(value))}\n`)
  }

  /** A message on stderr (not data: what the command is doing, confirmations). Silent with `--json`. */
  info(text: string): void {
    if (!this.json) this.stderr.write(`${this.redactor.redact(text)}\n`)
  }

  /** A warning on stderr, also with `--json`. */
  warn(text: string): void {
    this.stderr.write(`jobstore: warning: ${this.redactor.redact(text)}\n`)
  }

  /** Reports a failure on stderr: a JSON object with `--json` (`{"error": {code, message, exitCode}}`), else text. */
  error(err: unknown, exitCode: ExitCode): void {
    const message = messageOf(err)
    const code = errorCodeOf(err) ?? (exitCode === EXIT.USAGE ? 'USAGE' : 'ERROR')
    if (this.json) {
      this.stderr.write(`${JSON.stringify(this.redactor.redactDeep({ error: { code, message, exitCode } }))}\n`)
      return
    }
    this.stderr.write(`jobstore: error: ${this.redactor.redact(message)}\n`)
    // The causes (an SDK's or the system's error) help diagnose unexpected failures; they are redacted like the
    // rest. For the expected outcomes (not found, exists, bad usage...) the message says it all.
    let cause = err instanceof Error && !QUIET_CAUSES.has(exitCode) ? err.cause : undefined
    for (let depth = 0; cause !== undefined && depth < 5; depth++) {
      const text = messageOf(cause)
      if (text !== '' && text !== message) this.stderr.write(`  caused by: ${this.redactor.redact(text)}\n`)
      cause = cause instanceof Error ? cause.cause : undefined
    }
  }
}

const QUIET_CAUSES = new Set<ExitCode>([EXIT.OK, EXIT.USAGE, EXIT.NOT_FOUND, EXIT.EXISTS, EXIT.INTERRUPTED])

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message
  return typeof err === 'string' ? err : JSON.stringify(err) ?? String(err)
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

/** `1536` → `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?'
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`
}

/** Left-aligned columns, separated by two spaces; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)))
  return all.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  )
}

/** `1 job`, `2 jobs`. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`
}
