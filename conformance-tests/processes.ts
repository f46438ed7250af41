/**
 * The child-process harness of the conformance suite and of the reliability tests: a worker process (worker.ts) is
 * started on a locator with one scenario, watched line by line, run to its end or killed mid-way, and never
 * outlives the test that started it.
 *
 * The worker always runs as plain JavaScript: from the package, the `worker.js` beside this module; from this
 * repository's sources, the build in `dist/` (made fresh by the vitest global setup `test-servers/build-dist.ts`),
 * because a `node` process starts in a fraction of the time a TypeScript loader needs (the crash tests start 800),
 * and because a backend's `setupModule` must be JavaScript anyway.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'

/** What a worker process runs (passed as its one argument, JSON). */
export interface WorkerRequest {
  /** A scenario of worker.ts. */
  readonly scenario: string
  /** The store the worker opens (and resumes) before it runs the scenario. */
  readonly locator: string
  /** Options for `openJobStore` (JSON). */
  readonly options?: Record<string, unknown>
  /** The scenario's arguments (JSON). */
  readonly args?: Record<string, unknown>
  /** A JavaScript module (path or file: URL) imported first: a backend not built into jobstore registers there. */
  readonly setupModule?: string
}

/** How a worker ended. */
export interface WorkerResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** Every line it printed on stdout. */
  readonly lines: readonly string[]
  readonly stderr: string
}

/** A running worker. */
export interface WorkerProcess {
  /** The lines printed so far. */
  readonly lines: readonly string[]
  /**
   * Resolves once a line equal to `line` (or one `line` accepts) was printed; rejects, killing the worker, after
   * `timeoutMs`, and rejects if the worker exits first.
   */
  waitForLine(line: string | ((line: string) => boolean), timeoutMs?: number): Promise<void>
  /** Sends `signal` (SIGKILL unless told: a crash, no clean-up). */
  kill(signal?: NodeJS.Signals): void
  readonly done: Promise<WorkerResult>
}

/** Default of `waitForLine` (under the conformance suite's 120 s per test, so that the error names the line). */
export const LINE_TIMEOUT_MS = 60_000
/** Default of `runWorker`. */
export const RUN_TIMEOUT_MS = 90_000

const fromSource = import.meta.url.endsWith('.ts')
/** The worker's JavaScript (see the module's comment). */
export const WORKER_ENTRY = fileURLToPath(new URL(fromSource ? '../dist/conformance-tests/worker.js' : './worker.js', import.meta.url))

/** Workers still running: killed if this process exits before their tests end (a writer that loops forever). */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/**
 * Starts a worker process (inside a test: it is killed, if still running, when the test ends). It inherits the
 * environment: the locator and the environment are all a worker gets.
 */
export function startWorker(request: WorkerRequest): WorkerProcess {
  if (!existsSync(WORKER_ENTRY)) throw new Error(`no worker at ${WORKER_ENTRY}: run \`npm run build\` first (the vitest global setup does)`)
  const child = spawn(process.execPath, [WORKER_ENTRY, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env })
  running.add(child)
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  const waiters = new Set<{ accepts: (line: string) => boolean; resolve: () => void }>()
  child.stdout.setEncoding('utf8').on('data', (data: string) => {
    const parts = (partial + data).split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) {
      lines.push(line)
      for (const waiter of waiters) if (waiter.accepts(line)) waiter.resolve()
    }
  })
  child.stderr.setEncoding('utf8').on('data', (data: string) => void (stderr += data))
  const done = new Promise<WorkerResult>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      running.delete(child)
      if (partial !== '') lines.push(partial)
      resolve({ code, signal, lines, stderr })
    })
  })
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null
  const kill = (signal: NodeJS.Signals = 'SIGKILL'): void => void (exited() || child.kill(signal))
  onTestFinished(async () => {
    kill()
    await done.catch(() => undefined)
  })
  return {
    lines,
    done,
    kill,
    waitForLine: (line, timeoutMs = LINE_TIMEOUT_MS) => {
      const accepts = typeof line === 'string' ? (l: string) => l === line : line
      const what = typeof line === 'string' ? `"${line}"` : 'the line it waits for'
      if (lines.some(accepts)) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        const waiter = {
          accepts,
          resolve: () => {
            settle()
            resolve()
          },
        }
        const timer = setTimeout(() => {
          settle()
          kill()
          reject(new Error(`worker ${request.scenario} printed no ${what} within ${timeoutMs} ms; stderr:\n${stderr}`))
        }, timeoutMs)
        const settle = (): void => {
          clearTimeout(timer)
          waiters.delete(waiter)
        }
        waiters.add(waiter)
        void done.then((result) => {
          if (!waiters.has(waiter)) return
          settle()
          reject(new Error(`worker ${request.scenario} exited (${result.code ?? result.signal}) before printing ${what}:\n${result.stderr}`))
        })
      })
    },
  }
}

/** Runs a worker to its end; kills it and rejects after `timeoutMs`. */
export async function runWorker(request: WorkerRequest, { timeoutMs = RUN_TIMEOUT_MS }: { timeoutMs?: number } = {}): Promise<WorkerResult> {
  const worker = startWorker(request)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      worker.kill()
      void worker.done.then((result) => reject(new Error(`worker ${request.scenario} timed out after ${timeoutMs} ms; stderr:\n${result.stderr}`)), reject)
    }, timeoutMs)
  })
  try {
    return await Promise.race([worker.done, timeout])
  } finally {
    clearTimeout(timer)
  }
}
