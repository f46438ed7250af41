/**
 * The peer: Toil's FileJobStore (Python), from a virtual environment with toil==9.6.0 that this module creates on
 * first use in `<cache>/toil-9.6.0-venv` (cache: $JOBSTORE_BENCH_CACHE, else $XDG_CACHE_HOME/jobstore-bench, else
 * ~/.cache/jobstore-bench) and reuses afterwards. The venv is built in a temporary folder and renamed into place
 * when complete, so an interrupted install is never mistaken for a finished one. `bench/toil/toil_bench.py` does
 * the work and prints JSON timings.
 */
import { exec } from './exec.js'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const TOIL_VERSION = '9.6.0'
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'toil', 'toil_bench.py')

export function benchCache(): string {
  const override = process.env['JOBSTORE_BENCH_CACHE']
  if (override !== undefined && override !== '') return override
  const xdg = process.env['XDG_CACHE_HOME']
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'jobstore-bench')
}

export interface ToilEnv {
  readonly python: string
  /** Toil's full version string and Python's, as the venv reports them. */
  readonly toilVersion: string
  readonly pythonVersion: string
  /** HOME for Toil: it writes its default config to ~/.toil; this keeps it inside the cache. */
  readonly home: string
}

async function probe(python: string, home: string): Promise<{ toil: string; python: string } | undefined> {
  if (!existsSync(python)) return undefined
  const out = await exec(
    python,
    ['-c', 'import sys, json, toil.version as v; print(json.dumps({"toil": v.version, "dist": v.distVersion, "python": sys.version.split()[0]}))'],
    { env: { ...process.env, HOME: home } },
  ).catch(() => undefined)
  if (out === undefined || out.code !== 0) return undefined
  try {
    const parsed = JSON.parse(out.stdout.trim()) as { toil: string; dist: string; python: string }
    return parsed.dist === TOIL_VERSION ? { toil: parsed.toil, python: parsed.python } : undefined
  } catch {
    return undefined
  }
}

/** Finds the cached venv, or creates it (python3 -m venv, then pip install toil==9.6.0). */
export async function ensureToil(log: (message: string) => void): Promise<ToilEnv> {
  const cache = benchCache()
  const venv = join(cache, `toil-${TOIL_VERSION}-venv`)
  const home = join(cache, 'toil-home')
  await mkdir(home, { recursive: true })
  const python = join(venv, 'bin', 'python')
  let found = await probe(python, home)
  if (found === undefined) {
    const basePython = process.env['JOBSTORE_BENCH_PYTHON'] ?? 'python3'
    const temp = join(cache, `.tmp-toil-venv-${process.pid}`)
    log(`creating ${venv} (${basePython} -m venv, pip install toil==${TOIL_VERSION}); this takes a minute or two`)
    await rm(temp, { recursive: true, force: true })
    await mkdir(cache, { recursive: true })
    try {
      const made = await exec(basePython, ['-m', 'venv', temp])
      if (made.code !== 0) throw new Error(`${basePython} -m venv failed:\n${made.stderr}`)
      const pip = await exec(join(temp, 'bin', 'python'), ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', `toil==${TOIL_VERSION}`])
      if (pip.code !== 0) throw new Error(`pip install toil==${TOIL_VERSION} failed:\n${pip.stderr.slice(-4000)}`)
      // Console scripts in bin/ keep the temporary path in their #! line, but `bin/python` and `python -m` work
      // after the rename, and they are all the bench uses.
      await rm(venv, { recursive: true, force: true })
      await rename(temp, venv)
    } catch (err) {
      await rm(temp, { recursive: true, force: true })
      throw err
    }
    found = await probe(python, home)
    if (found === undefined) throw new Error(`the venv at ${venv} does not import toil ${TOIL_VERSION}`)
  } else {
    log(`reusing ${venv}`)
  }
  return { python, toilVersion: found.toil, pythonVersion: found.python, home }
}

export interface ToilResult {
  readonly phases: Record<string, number>
  readonly recordBytes?: number
}

/** Runs one Toil workload in `dir` (which must not exist) and returns its timings. */
export async function runToil(
  env: ToilEnv,
  workload: 'churn' | 'files' | 'clean' | 'status',
  options: { dir: string; setupDir?: string; count: number; recordBytes: number; fileBytes: number },
): Promise<ToilResult> {
  const args = [
    SCRIPT,
    workload,
    '--dir',
    options.dir,
    '--count',
    String(options.count),
    '--record-bytes',
    String(options.recordBytes),
    '--file-bytes',
    String(options.fileBytes),
    ...(options.setupDir !== undefined ? ['--setup-dir', options.setupDir] : []),
  ]
  const out = await exec(env.python, args, { env: { ...process.env, HOME: env.home, PYTHONDONTWRITEBYTECODE: '1' }, echo: true })
  const line = out.stdout.trim().split('\n').at(-1) ?? ''
  if (out.code !== 0) throw new Error(`toil_bench.py ${workload} exited with ${out.code}: ${line}\n${out.stderr.slice(-2000)}`)
  return JSON.parse(line) as ToilResult
}
