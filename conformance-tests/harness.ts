/**
 * What a backend author hands to the conformance suite, and the helpers the test groups share.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { expect, onTestFinished } from 'vitest'
import type { AbstractJobStore, JobStoreConfigInit } from '../src/abstract-job-store.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'

/**
 * Optional features and known gaps. `true`: supported, tested. `{ unsupported: reason }`: a known gap of the
 * backend or its emulator; the suite then checks the backend reports it honestly instead of testing the feature.
 */
export type Capability = true | { readonly unsupported: string }

/** The capabilities the suite knows, all `true` unless declared otherwise. */
export interface Capabilities {
  /** `getPublicUrl()` URLs can be fetched without credentials (http(s)) or read (file:). */
  readonly fetchablePublicUrls: Capability
  /** Public URLs carry an expiry. */
  readonly expiringPublicUrls: Capability
  /**
   * The harness can count leftovers of interrupted writes (`countLeftovers`). Declare it unsupported, with the
   * reason, when the service cannot list them (GCS resumable sessions): the atomicity tests then say so.
   */
  readonly countableLeftovers: Capability
}

/** What a backend author passes to {@link defineConformanceSuite}. */
export interface ConformanceHarness {
  /** Shown in test names. */
  readonly name: string
  /** A fresh, unused locator each call (a random prefix in a shared bucket, a new temporary folder). */
  newLocator(): string | Promise<string>
  /** Declared capabilities and gaps; unlisted ones are `true`. */
  readonly capabilities?: Partial<Capabilities>
  /**
   * Leftovers of interrupted writes under the locator that no reader sees but that cost (abandoned multipart
   * uploads, uncommitted blocks, temporary files). Atomicity tests check it is 0 after a failed write.
   */
  countLeftovers?(locator: string): Promise<number>
  /**
   * Changes one byte (at `offset`) of the object stored at the store-relative `key` of the store at `locator`,
   * behind the store's back and keeping everything the store keeps beside the bytes (metadata, the digest): as a
   * disk, a bad copy or a server would. Through the real SDK or file system. The integrity tests need it.
   */
  corruptObject?(locator: string, key: string, offset: number): Promise<void>
  /** The backend's upload part size, so that sizes one under, at and over it are tested. Default 5 MiB. */
  readonly partSize?: number
  /**
   * A module (path or file: URL) child processes import before opening a locator, for a backend not built into
   * jobstore: it should call `registerBackend()`. Child processes inherit the environment.
   */
  readonly setupModule?: string
}

/** The context every test group receives. */
export interface SuiteContext {
  readonly harness: ConformanceHarness
  readonly partSize: number
  capability(name: keyof Capabilities): Capability
  /** A new, initialized store, destroyed when the test ends. */
  freshStore(config?: JobStoreConfigInit): Promise<{ store: AbstractJobStore; locator: string }>
  /** A second instance of an existing store, as a worker on another host would open it. */
  reopen(locator: string): Promise<AbstractJobStore>
  /** Leftovers under the locator (0 when the harness cannot count them). */
  leftovers(locator: string): Promise<number>
  /** Runs a scenario of `worker.ts` in a child process. */
  runWorker(scenario: string, args: Record<string, unknown>, options?: WorkerOptions): Promise<WorkerResult>
  /** Starts a scenario in a child process and hands back the process (to kill it). */
  startWorker(scenario: string, args: Record<string, unknown>): WorkerProcess
}

export interface WorkerOptions {
  readonly timeoutMs?: number
}

export interface WorkerResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface WorkerProcess {
  /** Resolves with the first stdout line that equals `line`. */
  waitForLine(line: string, timeoutMs?: number): Promise<void>
  kill(signal: NodeJS.Signals): void
  readonly done: Promise<WorkerResult>
}

const workerEntry = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url)

function workerCommand(scenario: string, args: Record<string, unknown>, setupModule: string | undefined): string[] {
  const loader = import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : []
  return [...loader, fileURLToPath(workerEntry), JSON.stringify({ scenario, args, setupModule })]
}

export function makeContext(harness: ConformanceHarness): SuiteContext {
  const startWorker = (scenario: string, args: Record<string, unknown>): WorkerProcess => {
    const child = spawn(process.execPath, workerCommand(scenario, args, harness.setupModule), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    })
    let stdout = ''
    let stderr = ''
    const lineWaiters: { line: string; resolve: () => void }[] = []
    child.stdout.setEncoding('utf8').on('data', (data: string) => {
      stdout += data
      for (const waiter of [...lineWaiters]) {
        if (stdout.split('\n').includes(waiter.line)) {
          lineWaiters.splice(lineWaiters.indexOf(waiter), 1)
          waiter.resolve()
        }
      }
    })
    child.stderr.setEncoding('utf8').on('data', (data: string) => {
      stderr += data
    })
    const done = new Promise<WorkerResult>((resolve, reject) => {
      child.on('error', reject)
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    })
    return {
      done,
      kill: (signal) => child.kill(signal),
      waitForLine: (line, timeoutMs = 60_000) =>
        new Promise<void>((resolve, reject) => {
          if (stdout.split('\n').includes(line)) return resolve()
          const timer = setTimeout(() => {
            child.kill('SIGKILL')
            reject(new Error(`worker ${scenario} did not print ${line} within ${timeoutMs} ms; stderr:\n${stderr}`))
          }, timeoutMs)
          lineWaiters.push({
            line,
            resolve: () => {
              clearTimeout(timer)
              resolve()
            },
          })
          void done.then((result) => {
            clearTimeout(timer)
            reject(new Error(`worker ${scenario} exited (${result.code ?? result.signal}) before printing ${line}:\n${result.stderr}`))
          })
        }),
    }
  }
  return {
    harness,
    partSize: harness.partSize ?? 5 * 1024 * 1024,
    capability: (name) => harness.capabilities?.[name] ?? true,
    async freshStore(config) {
      const locator = await harness.newLocator()
      const store = await openJobStore(locator)
      await store.initialize(config)
      onTestFinished(async () => {
        await store.destroy()
      })
      return { store, locator }
    },
    async reopen(locator) {
      const store = await openJobStore(locator)
      await store.resume()
      return store
    },
    leftovers: async (locator) => {
      const capability = harness.capabilities?.countableLeftovers ?? true
      if (harness.countLeftovers === undefined) {
        // Not silently 0: a harness either counts leftovers or declares why it cannot.
        if (capability === true) throw new Error('the harness has no countLeftovers: supply it or declare countableLeftovers unsupported with a reason')
        expect(capability.unsupported.length).toBeGreaterThan(10)
        return 0
      }
      return harness.countLeftovers(locator)
    },
    startWorker,
    async runWorker(scenario, args, options = {}) {
      const worker = startWorker(scenario, args)
      const timeoutMs = options.timeoutMs ?? 90_000
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          worker.kill('SIGKILL')
          reject(new Error(`worker ${scenario} timed out after ${timeoutMs} ms`))
        }, timeoutMs)
      })
      try {
        return await Promise.race([worker.done, timeout])
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

/** Deterministic-size random bytes. */
export function randomPayload(size: number): Buffer {
  return randomBytes(size)
}

/** SHA-256 of a buffer, hex. */
export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Reads a stream to a Buffer (test helper; the library itself never buffers files). */
export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : (part as Buffer))
  return Buffer.concat(parts)
}

/** Writes `data` to a writable in chunks of `chunkSize`, honouring backpressure. */
export async function writeChunks(writable: NodeJS.WritableStream, data: Buffer, chunkSize: number): Promise<void> {
  for (let offset = 0; offset < data.length; offset += chunkSize) {
    const ok = writable.write(data.subarray(offset, offset + chunkSize))
    if (!ok) await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => { writable.removeListener('error', onError); resolve() }
      const onError = (err: Error): void => { writable.removeListener('drain', onDrain); reject(err) }
      writable.once('drain', onDrain)
      writable.once('error', onError)
    })
  }
}

/** Calls `fn` and returns the error it throws (failing if it does not). */
export async function caught(fn: () => Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected an error, but the call succeeded')
}
