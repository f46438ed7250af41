/**
 * What every command gets: its output, an abort signal (SIGINT/SIGTERM), the streams, and the way to open a
 * store. The CLI reaches backends only through `openJobStore`.
 */
import type { Readable, Writable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { resolve } from 'node:path'
import { openJobStore, type AbstractJobStore } from '../index.js'
import { Output } from './output.js'
import type { MaybeTty } from './progress.js'
import type { Redactor } from './redact.js'

/** The process's streams and environment (replaceable in tests). */
export interface CliIo {
  readonly stdout: Writable
  readonly stderr: MaybeTty
  readonly stdin: Readable & { isTTY?: boolean }
  readonly cwd: string
}

/** Options every command accepts. */
export interface CommonOptions {
  readonly json?: boolean
  readonly progress?: boolean
  readonly concurrency?: number
}

export class CommandContext {
  readonly out: Output
  readonly io: CliIo
  readonly signal: AbortSignal
  readonly redactor: Redactor
  /** Draw progress bars (still only on a terminal). */
  readonly progress: boolean
  readonly concurrency: number

  constructor(io: CliIo, signal: AbortSignal, redactor: Redactor, options: CommonOptions) {
    this.io = io
    this.signal = signal
    this.redactor = redactor
    this.out = new Output({ json: options.json === true, redactor, stdout: io.stdout, stderr: io.stderr })
    this.progress = options.progress !== false
    this.concurrency = options.concurrency ?? 32
  }

  /** `{ signal }` for store calls. */
  get signalOptions(): { signal: AbortSignal } {
    return { signal: this.signal }
  }

  /** A locator fit for display. */
  show(locator: string): string {
    return this.redactor.locator(locator)
  }

  /** Stores this command opened: closed when it ends ({@link closeStores}). */
  readonly #opened: AbstractJobStore[] = []

  /** Creates the store a locator names (no I/O yet); it is closed when the command ends. */
  async open(locator: string): Promise<AbstractJobStore> {
    const store = await openJobStore(locator, { concurrency: this.concurrency })
    this.#opened.push(store)
    return store
  }

  /**
   * Closes every store the command opened (their SDK clients and sockets: the process then exits without waiting
   * for idle keep-alive connections). Best effort: the command's own outcome is what the user gets.
   */
  async closeStores(): Promise<void> {
    const stores = this.#opened.splice(0)
    await Promise.allSettled(stores.map((store) => store.close()))
  }

  /** Opens an existing store (`NoSuchJobStoreError`, exit 3, when there is none). */
  async resume(locator: string): Promise<AbstractJobStore> {
    const store = await this.open(locator)
    await store.resume(this.signalOptions)
    return store
  }

  /**
   * A URL for an import source or export target: URLs as given, anything else a local path (from the cwd), and so
   * is the path of `file:./x` or `file:x` (no `/` after the colon), as in a `file:` locator.
   */
  toUrl(argument: string): string {
    const relative = /^file:(?!\/)(.+)$/is.exec(argument)
    if (relative !== null) return pathToFileURL(resolve(this.io.cwd, relative[1] as string)).href
    if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(argument)) return argument
    return pathToFileURL(resolve(this.io.cwd, argument)).href
  }
}
