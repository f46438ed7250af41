/**
 * Runs the example word-count workflow through a job store with several worker processes.
 *
 *   node dist/examples/run-example.js [locator] [--workers N] [--fresh]
 *
 * Default locator: `file:./example-store`. A store left by an interrupted run is resumed: `clean()` repairs it,
 * jobs that were running start again, finished jobs are not redone. `--fresh` destroys it first.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { NoSuchJobStoreError, openJobStore } from '../src/index.js'
import { recoverWorkflow, snapshot, startWorkflow } from './engine/engine.js'
import { sampleText } from './engine/sample-text.js'


interface Options {
  locator: string
  workers: number
  fresh: boolean
  chunks: number
  delayMs: number
}

function parseArgs(argv: string[]): Options {
  const options: Options = { locator: 'file:./example-store', workers: 3, fresh: false, chunks: 6, delayMs: 0 }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--workers') options.workers = Number(argv[++i])
    else if (arg === '--chunks') options.chunks = Number(argv[++i])
    else if (arg === '--delay-ms') options.delayMs = Number(argv[++i])
    else if (arg === '--fresh') options.fresh = true
    else if (arg === '--help' || arg === '-h') {
      console.log('usage: run-example [locator] [--workers N] [--chunks N] [--delay-ms MS] [--fresh]')
      process.exit(0)
    } else options.locator = arg
  }
  for (const [name, value] of [['--workers', options.workers], ['--chunks', options.chunks]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} takes a positive integer`)
  }
  if (!(options.delayMs >= 0)) throw new Error('--delay-ms takes a number of milliseconds')
  return options
}

async function main(): Promise<void> {
  const { locator, workers, fresh, chunks, delayMs } = parseArgs(process.argv.slice(2))
  const store = await openJobStore(locator)
  if (fresh) await store.destroy()
  try {
    await store.resume()
    const { reset } = await recoverWorkflow(store)
    console.error(`resumed the workflow in ${locator} (${reset} interrupted job(s) to run again)`)
  } catch (err) {
    if (!(err instanceof NoSuchJobStoreError)) throw err
    await store.initialize({ retryCount: 2 })
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-example-'))
    const input = join(dir, 'input.txt')
    await writeFile(input, sampleText())
    const inputId = (await store.importFile(pathToFileURL(input).href)) as string
    await rm(dir, { recursive: true, force: true })
    await startWorkflow(store, { fn: 'split', args: { input: inputId, chunks, delayMs }, name: 'split' })
    console.error(`started a new workflow in ${locator} (workflow ${store.config.workflowID})`)
  }

  // Run from source (tsx) or from the build (dist/): the worker is beside this file either way.
  const fromSource = import.meta.url.endsWith('.ts')
  const workerScript = fileURLToPath(new URL(fromSource ? './engine/worker.ts' : './engine/worker.js', import.meta.url))
  const loader = fromSource ? ['--import', 'tsx'] : []
  const exits = Array.from({ length: workers }, (_, i) => {
    const child = spawn(process.execPath, [...loader, workerScript, locator, `worker-${i + 1}`], {
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    return new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)))
  })
  const codes = await Promise.all(exits)
  if (codes.some((code) => code !== 0)) throw new Error(`a worker failed (exit codes ${codes.join(', ')})`)

  const state = await snapshot(store)
  if (state.failed.length > 0) {
    throw new Error(`the workflow failed: ${state.failed.map((d) => `${d.jobName}: ${String(d.extra['reason'])}`).join('; ')}`)
  }
  console.log(JSON.stringify({ locator, jobs: state.jobs.size, result: await store.getRootJobReturnValue() }, null, 2))
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? `error: ${err.message}` : err)
  process.exit(1)
})
