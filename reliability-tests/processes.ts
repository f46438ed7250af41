/**
 * Child processes of the reliability tests: the worker (worker.ts) compiled to plain JavaScript by the global
 * setup, started with its request, watched line by line, killed at will.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { WorkerRequest } from './worker.js'

/** The tsc project that compiles the worker (run by global-setup.ts). */
export const WORKER_BUILD_CONFIG = 'reliability-tests/tsconfig.worker.json'
export const WORKER = fileURLToPath(new URL('../node_modules/.cache/jobstore-reliability/build/reliability-tests/worker.js', import.meta.url))

export interface WorkerResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly lines: readonly string[]
  readonly stderr: string
}

export interface Worker {
  /** The lines printed so far. */
  readonly lines: readonly string[]
  /** Resolves once a line equal to `line` was printed; rejects if the worker exits first or after `timeoutMs`. */
  waitForLine(line: string, timeoutMs?: number): Promise<void>
  /** SIGKILL. */
  kill(): void
  readonly done: Promise<WorkerResult>
}

export function startWorker(request: WorkerRequest): Worker {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env })
  const lines: string[] = []
  let partial = ''
  let stderr = ''
  const waiters: { line: string; resolve: () => void }[] = []
  child.stdout.setEncoding('utf8').on('data', (data: string) => {
    const parts = (partial + data).split('\n')
    partial = parts.pop() ?? ''
    for (const line of parts) {
      lines.push(line)
      for (const waiter of waiters.filter((w) => w.line === line)) {
        waiters.splice(waiters.indexOf(waiter), 1)
        waiter.resolve()
      }
    }
  })
  child.stderr.setEncoding('utf8').on('data', (data: string) => void (stderr += data))
  const done = new Promise<WorkerResult>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (partial !== '') lines.push(partial)
      resolve({ code, signal, lines, stderr })
    })
  })
  return {
    lines,
    done,
    kill: () => void child.kill('SIGKILL'),
    waitForLine: (line, timeoutMs = 120_000) =>
      new Promise<void>((resolve, reject) => {
        if (lines.includes(line)) return resolve()
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          reject(new Error(`worker ${request.scenario} printed no "${line}" within ${timeoutMs} ms; stderr:\n${stderr}`))
        }, timeoutMs)
        waiters.push({
          line,
          resolve: () => {
            clearTimeout(timer)
            resolve()
          },
        })
        void done.then((result) => {
          clearTimeout(timer)
          reject(new Error(`worker ${request.scenario} exited (${result.code ?? result.signal}) before printing "${line}":\n${result.stderr}`))
        })
      }),
  }
}

/** Runs a worker to its end. */
export async function runWorker(request: WorkerRequest, timeoutMs = 600_000): Promise<WorkerResult> {
  const worker = startWorker(request)
  const timer = setTimeout(() => worker.kill(), timeoutMs)
  try {
    return await worker.done
  } finally {
    clearTimeout(timer)
  }
}
