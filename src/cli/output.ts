/**
 * Output of the CLI: data on stdout (human text, or one JSON document with `--json`), messages and progress on
 * stderr. Everything printed is redacted (see `redact.ts`), then made safe for a terminal (see
 * `terminal-safe.ts`): each line of human output is escaped whole, so a newline or an escape sequence in a job
 * name, a log message or an error cannot forge output or drive the terminal; JSON stays exact. Only `cat` writes
 * raw bytes, straight to stdout: the file's content.
 */
import type { Writable } from 'node:stream'
import { EXIT, errorCodeOf, isDocumentedCode, type ExitCode } from './exit-codes.js'
import type { Redactor } from './redact.js'
import { escapeForTerminal, escapeJsonForTerminal, escapeMessageLines, padForTerminal, terminalLength } from './terminal-safe.js'

/**
 * A line of human output that is JSON text (`show`'s `extra`): its strings are already escaped by JSON, so it is
 * shown with `escapeJsonForTerminal` (JSON's backslashes kept as they are) instead of `escapeForTerminal`.
 */
export class JsonLine {
  constructor(readonly json: string) {}
}

/** A line of human output: text (escaped whole when printed), or a {@link JsonLine}. */
export type HumanLine = string | JsonLine

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

  /** `text` redacted and escaped as one line, fit for a terminal (for prompts and other text printed elsewhere). */
  safe(text: string): string {
    return escapeForTerminal(this.redactor.redact(text))
  }

  /** `value` as JSON, redacted, fit for a terminal and exact (see `escapeJsonForTerminal`). */
  #json(value: unknown, indent?: number): string {
    return escapeJsonForTerminal(JSON.stringify(this.redactor.redactDeep(value), null, indent))
  }

  /** A line of data on stdout (human mode), escaped whole: a newline in `text` is shown as `\n`. */
  line(text: HumanLine = ''): void {
    this.#write(`${typeof text === 'string' ? this.safe(text) : escapeJsonForTerminal(this.redactor.redact(text.json))}\n`)
  }

  /** Lines of data on stdout (human mode). */
  lines(lines: readonly HumanLine[]): void {
    for (const text of lines) this.line(text)
  }

  /**
   * A multi-line text on stdout (a log message): each line escaped, the lines after the first indented, so that a
   * message cannot forge the start of another (see `escapeMessageLines`).
   */
  message(text: string): void {
    for (const line of escapeMessageLines(this.redactor.redact(text))) this.#write(`${line}\n`)
  }

  /** The command's result: `value` as JSON with `--json`, else the human rendering. */
  result(value: unknown, human: () => readonly HumanLine[] | string): void {
    if (this.json) {
      this.#write(`${this.#json(value, 2)}\n`)
      return
    }
    const text = human()
    this.lines(typeof text === 'string' ? [text] : text)
  }

  /** One JSON value on one line of stdout (JSON Lines, for streams of records such as `logs`). */
  jsonLine(value: unknown): void {
    this.#write(`${this.#json(value)}\n`)
  }

  /** A message on stderr (not data: what the command is doing, confirmations). Silent with `--json`. */
  info(text: string): void {
    if (!this.json) this.stderr.write(`${this.safe(text)}\n`)
  }

  /** A warning on stderr, also with `--json`. */
  warn(text: string): void {
    this.stderr.write(`jobstore: warning: ${this.safe(text)}\n`)
  }

  /**
   * Reports a failure on stderr: a JSON object with `--json` (`{"error": {code, message, exitCode, systemCode?,
   * candidates?}}`), else text.
   */
  error(err: unknown, exitCode: ExitCode): void {
    const message = messageOf(err)
    // Only the documented codes (docs/cli.md): another code (a system call's EACCES, an SDK's) is the error's
    // `systemCode`, and the error is reported by what its exit code says.
    const own = errorCodeOf(err)
    const known = own !== undefined && isDocumentedCode(own)
    const code = known ? own : exitCode === EXIT.USAGE ? 'USAGE' : exitCode === EXIT.INTERRUPTED ? 'ABORTED' : 'ERROR'
    if (this.json) {
      const systemCode = !known && own !== undefined ? { systemCode: own } : {}
      const candidates = Array.isArray((err as { candidates?: unknown } | null)?.candidates)
        ? { candidates: (err as { candidates: unknown[] }).candidates }
        : {}
      this.stderr.write(`${this.#json({ error: { code, message, exitCode, ...systemCode, ...candidates } })}\n`)
      return
    }
    // Error messages quote user input (IDs, names, paths): escaped like any other line.
    this.stderr.write(`jobstore: error: ${this.safe(message)}\n`)
    // The causes (an SDK's or the system's error) help diagnose unexpected failures; they are redacted like the
    // rest. For the expected outcomes (not found, exists, bad usage...) the message says it all.
    let cause = err instanceof Error && !QUIET_CAUSES.has(exitCode) ? err.cause : undefined
    for (let depth = 0; cause !== undefined && depth < 5; depth++) {
      const text = messageOf(cause)
      if (text !== '' && text !== message) this.stderr.write(`  caused by: ${this.safe(text)}\n`)
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

/**
 * Left-aligned columns, separated by two spaces; the last non-empty cell is not padded. Widths are those of the
 * escaped cells (`terminalLength`), so the columns line up once `Output.line` has escaped each row.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((row) => terminalLength(row[i] ?? ''))))
  return all.map((row) => {
    // Trailing empty cells are dropped rather than the line trimmed: a cell's own trailing characters (a newline
    // or a line separator, which trimEnd would remove) are data, shown escaped.
    let last = row.length - 1
    while (last > 0 && row[last] === '') last--
    return row
      .slice(0, last + 1)
      .map((cell, i) => (i === last ? cell : padForTerminal(cell, widths[i] ?? 0)))
      .join('  ')
  })
}

/** `1 job`, `2 jobs`. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`
}
