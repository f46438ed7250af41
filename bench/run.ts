/**
 * `npm run bench`: builds the benchmark cells into dist/, starts the local servers (MinIO, Azurite,
 * fake-gcs-server), runs every workload on every backend next to its raw-SDK baseline (and, on the file backend,
 * next to Toil's own FileJobStore), and prints tables of ratios measured in the same run. See docs/benchmarks.md.
 *
 *   npm run bench                        the full run (the sizes of docs/benchmarks.md)
 *   npm run bench -- --quick             small sizes, one round: a smoke run of everything
 *   npm run bench -- --workloads churn,files --backends file,s3 --rounds 5
 *   npm run bench -- --jobs 10000,azure=2000     a size per backend (here: fewer jobs on Azurite)
 *   npm run bench -- --json out.json --svg-dir docs       keep the results, draw the plots
 *   npm run bench -- --from-json out.json --svg-dir docs  re-render tables and plots from saved results
 *
 * The orchestration runs under tsx; every measurement runs in a child process on the built code
 * (`node dist/bench/bench/cell.js`, a snapshot of src/, backends/ and bench/ compiled at the start of the run),
 * one cell (workload × backend × round) per process.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, freemem, loadavg, release, tmpdir, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { FuseUnavailableError, mountDelayfs, startTestServers, type DelayfsMount, type ServerName, type TestServers } from '../test-servers/index.js'
import { exec } from './exec.js'
import { renderReport } from './report.js'
import type { CellResult, RunResults, ToilRun, WorkloadName } from './results.js'
import { WORKLOAD_NAMES } from './results.js'
import { renderPlots } from './svg.js'
import { BACKEND_NAMES, FUSE_DELAY_MS, fusePaths, isBackendName, isFuseBackend, type BackendName } from './targets.js'
import { ensureToil, runToil, type ToilEnv } from './toil.js'
import { GiB, MiB } from './util.js'
import type { SideResult } from './workloads/types.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CELL = join(ROOT, 'dist', 'bench', 'bench', 'cell.js')

const SERVER_OF: Partial<Record<BackendName, ServerName>> = { s3: 'minio', azure: 'azurite', gcs: 'fake-gcs' }

/** What each raw baseline (bench/raw/) does, for the report. */
const BASELINES: Record<string, string> = {
  file: 'node:fs: write a temp file, fsync, link() (new) or rename() (replace), fsync the folder; unlink + fsync the folder',
  'file-nosync': 'node:fs: write a temp file, link() (new) or rename() (replace); unlink; no fsync (the durability of Toil’s FileJobStore)',
  'file-fuse-0.5ms': 'as raw file, on delayfs (the FUSE stand-in for a shared file system) at 0.5 ms per request',
  'file-fuse-2ms': 'as raw file, on delayfs (the FUSE stand-in for a shared file system) at 2 ms per request',
  s3: '@aws-sdk/client-s3: PutObject (If-None-Match: * for new objects), GetObject, DeleteObject, ListObjectsV2; streams as a multipart upload (UploadPart: 8 MiB parts, 4 in flight)',
  azure: '@azure/storage-blob: BlockBlobClient.upload (If-None-Match: * for new blobs), download, deleteIfExists, listBlobsFlat; streams with uploadStream (8 MiB blocks, 4 in flight)',
  gcs: '@google-cloud/storage: File.save (one request; ifGenerationMatch: 0 for new objects), File.download, File.delete, Bucket.getFiles; streams with File.createWriteStream (resumable, 8 MiB chunks) and File.createReadStream',
}

/**
 * Default sizes per workload and backend. The emulators are slower than the services they stand for (Azurite and
 * fake-gcs-server keep everything in memory; fake-gcs-server rehashes a resumable upload whole at every chunk), and
 * on delayfs every request waits (Toil makes them one at a time): smaller sizes there.
 */
const DEFAULT_SIZES = {
  jobs: '10000,s3=3000,azure=3000,gcs=3000,file-fuse-0.5ms=1000,file-fuse-2ms=500',
  files: '5000,s3=2000,azure=2000,gcs=2000,file-fuse-0.5ms=1000,file-fuse-2ms=500',
  clean: '20000,s3=3000,azure=3000,gcs=3000,file-fuse-0.5ms=5000,file-fuse-2ms=2000',
  // 20,000 on delayfs at 2 ms: toil status alone takes about 6 minutes (18 ms a job here); `--status 20000` runs it.
  status: '20000,file-fuse-0.5ms=5000,file-fuse-2ms=2000',
} as const
const QUICK_SIZES = {
  jobs: '500,file-fuse-0.5ms=200,file-fuse-2ms=100',
  files: '300,file-fuse-0.5ms=200,file-fuse-2ms=100',
  clean: '2000,file-fuse-0.5ms=500,file-fuse-2ms=300',
  status: '2000,file-fuse-0.5ms=500,file-fuse-2ms=300',
} as const

const HELP = `npm run bench -- [options]
  --quick                 small sizes and one round (a smoke run)
  --workloads a,b         of ${WORKLOAD_NAMES.join(', ')} (default: all)
  --backends a,b          of ${BACKEND_NAMES.join(', ')} (default: all)
  --rounds n              rounds of each cell, median reported (default 1); scaling and the big clean: always 1
  --concurrency n         calls in flight, for the store (its bulk work) and the bench's client pool alike (default 32)
  --jobs n[,backend=n]    workload 1 size (default ${DEFAULT_SIZES.jobs}; --quick ${QUICK_SIZES.jobs})
  --files n[,backend=n]   workload 2 size (default ${DEFAULT_SIZES.files}; --quick ${QUICK_SIZES.files})
  --large-mib n[,b=n]     workload 3 size in MiB (default 2048,azure=1024,gcs=256; --quick 128)
  --clean n[,backend=n]   workload 4 size (default ${DEFAULT_SIZES.clean}; --quick ${QUICK_SIZES.clean})
  --status n[,backend=n]  jobs of the status workload, file backends only (default ${DEFAULT_SIZES.status}; --quick ${QUICK_SIZES.status})
  --clean-big n           workload 4 on the file backends and Toil only (default 100000; --quick 5000; 0: skip)
  --scaling a,b,c         workload 5 sizes on the file backend (default 1000,10000,100000; --quick 200,1000,5000)
  --record-bytes n        stored size of a job (default 2048)
  --file-bytes n          size of a workload 2 file (default 65536)
  --no-toil               skip Toil's FileJobStore
                          file-fuse-*: the file backend and Toil on delayfs, a FUSE loopback with that delay per
                          request (needs root and /dev/fuse; skipped with the reason where it cannot mount)
  --no-build              use the cells already built in dist/bench/
  --work-dir dir          where file stores and Toil's stores go (default: a new folder in ${tmpdir()})
  --json file             write the results (default: a file in ${tmpdir()}, named at the end)
  --svg-dir dir           write the plots there
  --from-json a[,b]       only render the tables (and plots) of saved results; several runs are merged, a
                          later run's cell replacing an earlier one of the same workload, backend and size
  --keep                  keep the work folder`

interface Sizes {
  readonly fallback: number
  readonly per: Partial<Record<string, number>>
}

function parseSizes(flag: string, text: string | undefined, fallback: number): Sizes {
  if (text === undefined) return { fallback, per: {} }
  let base = fallback
  const per: Record<string, number> = {}
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [key, value] = part.includes('=') ? (part.split('=', 2) as [string, string]) : [undefined, part]
    const n = Number(value)
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${flag}: ${part} is not a size`)
    if (key === undefined) base = n
    else if (isBackendName(key)) per[key] = n
    else throw new Error(`--${flag}: unknown backend ${key}`)
  }
  return { fallback: base, per }
}
const sizeFor = (sizes: Sizes, backend: string): number => sizes.per[backend] ?? sizes.fallback

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`)
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      workloads: { type: 'string' },
      backends: { type: 'string' },
      rounds: { type: 'string' },
      concurrency: { type: 'string', default: '32' },
      jobs: { type: 'string' },
      files: { type: 'string' },
      'large-mib': { type: 'string' },
      clean: { type: 'string' },
      status: { type: 'string' },
      'clean-big': { type: 'string' },
      scaling: { type: 'string' },
      'record-bytes': { type: 'string', default: '2048' },
      'file-bytes': { type: 'string', default: String(64 * 1024) },
      'no-toil': { type: 'boolean', default: false },
      'no-build': { type: 'boolean', default: false },
      'work-dir': { type: 'string' },
      json: { type: 'string' },
      'svg-dir': { type: 'string' },
      'from-json': { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(`${HELP}\n`)
    return
  }
  if (values['from-json'] !== undefined) {
    const runs: RunResults[] = []
    for (const file of values['from-json'].split(',')) runs.push(JSON.parse(await readFile(file, 'utf8')) as RunResults)
    await output(mergeRuns(runs), values['svg-dir'])
    return
  }

  const started = Date.now()
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? ''
  const dirty = (spawnSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' }).stdout ?? '').trim() !== ''
  const commit = head === '' ? 'unknown' : `${head}${dirty ? ' + uncommitted changes' : ''}`
  const quick = values.quick
  const workloads = (values.workloads?.split(',').map((s) => s.trim()) ?? [...WORKLOAD_NAMES]) as WorkloadName[]
  for (const w of workloads) if (!WORKLOAD_NAMES.includes(w)) throw new Error(`unknown workload ${w} (${WORKLOAD_NAMES.join(', ')})`)
  const wanted = values.backends?.split(',').map((s) => s.trim()) ?? [...BACKEND_NAMES]
  for (const b of wanted) if (!isBackendName(b)) throw new Error(`unknown backend ${b} (${BACKEND_NAMES.join(', ')})`)
  const rounds = Number(values.rounds ?? 1)
  const concurrency = Number(values.concurrency)
  const recordBytes = Number(values['record-bytes'])
  const fileBytes = Number(values['file-bytes'])
  const sizes = quick ? QUICK_SIZES : DEFAULT_SIZES
  const sized = (flag: keyof typeof DEFAULT_SIZES, given: string | undefined): Sizes => parseSizes(flag, given ?? sizes[flag], 0)
  const jobs = sized('jobs', values.jobs)
  const fileCount = sized('files', values.files)
  const largeMiB = parseSizes('large-mib', values['large-mib'] ?? (quick ? '128' : '2048,azure=1024,gcs=256'), quick ? 128 : 2048)
  const cleanSize = sized('clean', values.clean)
  const statusSize = sized('status', values.status)
  const cleanBig = Number(values['clean-big'] ?? (quick ? 5_000 : 100_000))
  const scaling = (values.scaling ?? (quick ? '200,1000,5000' : '1000,10000,100000')).split(',').map(Number)

  // 1. Build the cells (and src/, backends/) into dist/.
  let buildOutput = ''
  if (!values['no-build']) {
    log('building the benchmark cells into dist/bench/ (tsc -p bench/tsconfig.build.json)')
    const tsc = await exec(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'bench', 'tsconfig.build.json')], { cwd: ROOT, echo: true })
    buildOutput = tsc.stdout
    if (tsc.code !== 0) {
      log(`tsc reported errors (the cells run on what it emitted; backends with errors are left out):\n${tsc.stdout.slice(0, 4000)}`)
    }
  }
  if (!existsSync(CELL)) throw new Error(`${CELL} is missing: run without --no-build`)

  // 2. Which backends can run: the cloud ones need their folder, a clean build and their server.
  const unavailable: Record<string, string> = {}
  const backends: BackendName[] = []
  for (const name of wanted as BackendName[]) {
    const folder = name.startsWith('file') ? 'file' : name
    if (!existsSync(join(ROOT, 'backends', folder, 'index.ts'))) {
      unavailable[name] = `backends/${folder}/index.ts does not exist yet`
      continue
    }
    const errors = buildOutput.split('\n').filter((line) => line.startsWith(`backends/${folder}/`))
    if (errors.length > 0) {
      unavailable[name] = `backends/${folder} does not typecheck: ${errors[0]}`
      continue
    }
    backends.push(name)
  }
  const serverNames = [...new Set(backends.map((b) => SERVER_OF[b]).filter((s): s is ServerName => s !== undefined))]
  let servers: TestServers | undefined
  let serverEnv: Record<string, string> = {}
  const serverVersions: Record<string, string> = {}
  if (serverNames.length > 0) {
    log(`starting ${serverNames.join(', ')}`)
    try {
      servers = await startTestServers(serverNames)
      serverEnv = servers.env
      for (const s of servers.servers) serverVersions[s.name] = s.version
    } catch (err) {
      for (const b of [...backends]) {
        if (SERVER_OF[b] !== undefined) {
          unavailable[b] = `its test server did not start: ${(err as Error).message.split('\n')[0]}`
          backends.splice(backends.indexOf(b), 1)
        }
      }
    }
  }

  const workDir = values['work-dir'] !== undefined ? resolve(values['work-dir']) : await mkdtemp(join(tmpdir(), 'jobstore-bench-'))
  await mkdir(workDir, { recursive: true })
  const cleanup = (): void => {
    if (!values.keep) rmSync(workDir, { recursive: true, force: true })
  }
  // delayfs mounts (file-fuse-*) go before the work folder, which holds them: Ctrl-C unmounts, then removes it.
  const mounts: DelayfsMount[] = []
  const unmountAll = async (): Promise<void> => {
    for (const mount of mounts.splice(0)) log(`unmounted ${mount.mountPoint}: ${await mount.stop()}`)
  }
  process.once('SIGINT', () => {
    void unmountAll().finally(() => {
      cleanup()
      process.exit(130)
    })
  })
  for (const b of backends.filter(isFuseBackend)) {
    const { backing, mountPoint } = fusePaths(b, workDir)
    const delayMs = FUSE_DELAY_MS[b] as number
    try {
      log(`mounting delayfs at ${mountPoint} (${delayMs} ms per request; built into the test-server cache on first use)`)
      mounts.push(await mountDelayfs({ backing, mountPoint, delayMs }))
    } catch (err) {
      const why = err instanceof FuseUnavailableError ? err.message : `delayfs did not mount: ${(err as Error).message.split('\n')[0] ?? ''}`
      log(`skipping ${b} (and Toil on it): ${why}`)
      unavailable[b] = why
      backends.splice(backends.indexOf(b), 1)
    }
  }

  // 3. Toil, for the file backend's workloads 1, 2 and 4.
  let toil: ToilEnv | undefined
  const fileBackends = backends.filter((b) => b === 'file' || b === 'file-nosync')
  const toilBackends = backends.filter((b) => b.startsWith('file'))
  if (!values['no-toil'] && toilBackends.length > 0 && workloads.some((w) => w === 'churn' || w === 'files' || w === 'clean' || w === 'status')) {
    try {
      toil = await ensureToil(log)
    } catch (err) {
      unavailable['toil'] = (err as Error).message.split('\n')[0] ?? 'cannot install Toil'
    }
  }

  // The AWS SDK's notice that its 2027 releases need Node 22 would be printed by every cell: once is enough.
  const env = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...process.env, ...serverEnv }
  const cells: CellResult[] = []
  const load = [loadavg()[0] ?? 0]
  const date = new Date(started).toISOString()
  const jsonPath = values.json ?? join(tmpdir(), `jobstore-bench-${date.replace(/[:.]/g, '-')}.json`)
  /** The results so far; written after every workload, so that an interrupted run keeps what it measured. */
  const snapshot = (): RunResults => {
    const machine: Record<string, string | number> = {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / GiB),
      freeMemoryGiBAtEnd: Math.round(freemem() / GiB),
      kernel: release(),
      node: process.version,
      commit,
      loadAverage1m: load.map((l) => l.toFixed(1)).join(' → '),
    }
    if (toil !== undefined) {
      machine['python'] = toil.pythonVersion
      machine['toil'] = toil.toilVersion
    }
    for (const [name, version] of Object.entries(serverVersions)) machine[name] = version
    return {
      date,
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine,
      settings: { quick, rounds, concurrency, recordBytes, fileBytes, workDir },
      unavailable,
      baselines: Object.fromEntries(backends.map((b) => [b, BASELINES[b] ?? ''])),
      cells,
    }
  }
  const save = async (): Promise<void> => {
    await writeFile(jsonPath, `${JSON.stringify(snapshot(), null, 2)}\n`)
  }

  const runCell = async (
    workload: string,
    backend: BackendName,
    count: number,
    round: number,
    extra: string[] = [],
    cellEnv: NodeJS.ProcessEnv = env,
  ): Promise<{ jobstore: SideResult[]; raw: SideResult[] }> => {
    const args = [
      CELL,
      workload,
      '--backend', backend,
      '--count', String(count),
      '--rounds', '1',
      '--round-offset', String(round),
      '--concurrency', String(concurrency),
      '--record-bytes', String(recordBytes),
      '--file-bytes', String(fileBytes),
      '--work-dir', workDir,
      ...extra,
    ]
    const out = await exec(process.execPath, args, { env: cellEnv, cwd: ROOT, echo: true })
    const line = out.stdout.trim().split('\n').at(-1) ?? ''
    let parsed: { results: { jobstore: SideResult[]; raw: SideResult[] } | SideResult[]; side?: string; error?: string }
    try {
      parsed = JSON.parse(line) as typeof parsed
    } catch {
      throw new Error(`the cell exited with code ${out.code} and no result`)
    }
    if (parsed.error !== undefined || out.code !== 0) throw new Error(parsed.error ?? `the cell exited with code ${out.code}`)
    if (Array.isArray(parsed.results)) {
      return parsed.side === 'raw' ? { jobstore: [], raw: parsed.results } : { jobstore: parsed.results, raw: [] }
    }
    return parsed.results
  }

  /**
   * Runs an operations workload (churn, files, clean, status): per round, every backend's cell and Toil, in
   * rotating order. Toil runs once per place: on the local disk (next to file and file-nosync) and on each delayfs
   * mount (next to its file-fuse-* backend).
   */
  const opsWorkload = async (workload: 'churn' | 'files' | 'clean' | 'status', on: readonly BackendName[], size: (b: BackendName) => number, roundCount: number, withToil: boolean, as: WorkloadName = workload): Promise<void> => {
    const results = new Map<BackendName, CellResult & { jobstore: SideResult[]; raw: SideResult[]; toil: ToilRun[] }>()
    for (const b of on) results.set(b, { workload: as, backend: b, count: size(b), jobstore: [], raw: [], toil: [] })
    interface ToilPlace { key: string; count: number; dir: string; setupDir?: string; backends: BackendName[]; runs: ToilRun[]; error?: string }
    const places: ToilPlace[] = []
    const local = on.filter((b) => b === 'file' || b === 'file-nosync')
    if (local.length > 0) places.push({ key: 'toil', count: size(local[0] as BackendName), dir: workDir, backends: local, runs: [] })
    for (const b of on.filter(isFuseBackend)) {
      const { backing, mountPoint } = fusePaths(b, workDir)
      // The untimed set-up of clean and status writes to the backing folder: no delay where nothing is measured.
      const setupDir = workload === 'clean' || workload === 'status' ? backing : undefined
      places.push({ key: `toil on ${b}`, count: size(b), dir: mountPoint, ...(setupDir !== undefined ? { setupDir } : {}), backends: [b], runs: [] })
    }
    type Runner = () => Promise<void>
    for (let round = 0; round < roundCount; round++) {
      const runners: Runner[] = on.map((b) => async () => {
        const cell = results.get(b)
        if (cell === undefined || cell.error !== undefined) return
        log(`${as} on ${b} (n=${cell.count.toLocaleString('en-US')}) round ${round + 1}/${roundCount}`)
        try {
          const r = await runCell(workload, b, cell.count, round)
          cell.jobstore.push(...r.jobstore)
          cell.raw.push(...r.raw)
        } catch (err) {
          results.set(b, { ...cell, error: (err as Error).message })
          log(`${as} on ${b} failed: ${(err as Error).message}`)
        }
      })
      for (const place of places) {
        if (!withToil || toil === undefined || place.count <= 0 || place.error !== undefined) continue
        const env = toil
        runners.push(async () => {
          const where = place.key === 'toil' ? "Toil's FileJobStore" : `Toil's FileJobStore on ${place.backends.join(', ')}`
          log(`${as} on ${where} (n=${place.count.toLocaleString('en-US')}) round ${round + 1}/${roundCount}`)
          try {
            const name = `toil-${workload}-${place.count}-${round}`
            const r = await runToil(env, workload, {
              dir: join(place.dir, name),
              ...(place.setupDir !== undefined ? { setupDir: join(place.setupDir, name) } : {}),
              count: place.count,
              recordBytes,
              fileBytes,
            })
            log(`  [${as}/${place.key}] ${Object.entries(r.phases).map(([k, v]) => `${k} ${v.toFixed(2)}s`).join(', ')}`)
            place.runs.push(r)
          } catch (err) {
            place.error = (err as Error).message
            log(`Toil failed (${place.key}): ${place.error}`)
          }
        })
      }
      // Rotate the order every round: nobody always runs first (or last) on this noisy machine.
      for (let i = 0; i < runners.length; i++) await (runners[(i + round) % runners.length] as Runner)()
    }
    for (const cell of results.values()) {
      const place = places.find((p) => p.backends.includes(cell.backend as BackendName))
      const withToilRuns = place !== undefined && place.runs.length > 0 && cell.count === place.count
      const { toil: _unused, ...rest } = cell
      cells.push(withToilRuns ? { ...rest, toil: place.runs } : rest)
    }
    for (const place of places) if (place.error !== undefined) unavailable[place.key] = place.error
    load.push(loadavg()[0] ?? 0)
    await save()
  }

  try {
    for (const workload of workloads) {
      if (workload === 'churn') await opsWorkload('churn', backends, (b) => sizeFor(jobs, b), rounds, true)
      if (workload === 'files') await opsWorkload('files', backends, (b) => sizeFor(fileCount, b), rounds, true)
      if (workload === 'clean') {
        await opsWorkload('clean', backends, (b) => sizeFor(cleanSize, b), rounds, true)
        if (cleanBig > 0 && fileBackends.length > 0) await opsWorkload('clean', fileBackends, () => cleanBig, 1, true)
      }
      if (workload === 'status' && toilBackends.length > 0) await opsWorkload('status', toilBackends, (b) => sizeFor(statusSize, b), rounds, true)
      if (workload === 'scaling' && backends.includes('file')) {
        for (const n of scaling) await opsWorkload('churn', ['file'], () => n, 1, false, 'scaling')
      }
      if (workload === 'large') {
        for (const b of backends.filter((x) => x !== 'file-nosync' && !isFuseBackend(x))) {
          const bytes = Math.round(sizeFor(largeMiB, b) * MiB)
          const cell: CellResult & { jobstore: SideResult[]; raw: SideResult[] } = { workload: 'large', backend: b, count: bytes, jobstore: [], raw: [] }
          try {
            for (let round = 0; round < rounds; round++) {
              const sides = round % 2 === 0 ? (['jobstore', 'raw'] as const) : (['raw', 'jobstore'] as const)
              for (const side of sides) {
                log(`large on ${b} (${(bytes / GiB).toFixed(2)} GiB) ${side} round ${round + 1}/${rounds}`)
                // Azurite and fake-gcs-server keep every byte in memory and give little of it back (fake-gcs-server
                // grew to 14 GB over three 2 GiB uploads): a fresh server for each large cell, stopped after it.
                const fresh = b === 'azure' || b === 'gcs' ? await startTestServers([SERVER_OF[b] as ServerName]) : undefined
                let r: { jobstore: SideResult[]; raw: SideResult[] }
                try {
                  r = await runCell('large', b, 1, round, ['--side', side, '--bytes', String(bytes)], fresh ? { ...env, ...fresh.env } : env)
                } finally {
                  await fresh?.stop()
                }
                cell.jobstore.push(...r.jobstore)
                cell.raw.push(...r.raw)
                const last = (side === 'jobstore' ? r.jobstore : r.raw)[0]
                if (last !== undefined) {
                  log(`  [large/${b}] ${side}: write ${((bytes / MiB) / (last.phases['write'] ?? 1)).toFixed(0)} MiB/s, read ${((bytes / MiB) / (last.phases['read'] ?? 1)).toFixed(0)} MiB/s, peak RSS ${Number(last.info?.['maxRssMiB'] ?? 0).toFixed(0)} MiB`)
                }
              }
            }
            cells.push(cell)
          } catch (err) {
            log(`large on ${b} failed: ${(err as Error).message}`)
            cells.push({ ...cell, error: (err as Error).message })
          }
          await save()
        }
        load.push(loadavg()[0] ?? 0)
      }
    }
  } finally {
    await servers?.stop()
    await unmountAll()
    cleanup()
  }

  const results = snapshot()
  await save()
  await output(results, values['svg-dir'])
  log(`results: ${jsonPath}; took ${(results.durationSeconds / 60).toFixed(1)} min`)
}

/**
 * Several runs' results as one report: a later run's cell replaces an earlier one of the same workload, backend
 * and size (say, a cell re-run after its server failed). Every ratio still comes from one run: both sides of a
 * cell always ran together.
 */
function mergeRuns(runs: readonly RunResults[]): RunResults {
  const [first, ...rest] = runs
  if (first === undefined) throw new Error('--from-json: no file')
  if (rest.length === 0) return first
  const cells = new Map<string, CellResult>()
  const keyOf = (c: CellResult): string => `${c.workload}/${c.backend}/${c.count}`
  for (const run of runs) for (const cell of run.cells) cells.set(keyOf(cell), cell)
  const unavailable: Record<string, string> = {}
  for (const run of runs) Object.assign(unavailable, run.unavailable)
  for (const run of runs) for (const b of Object.keys(run.baselines)) delete unavailable[b]
  return {
    ...first,
    date: runs.map((r) => r.date).join(' + '),
    command: runs.map((r) => r.command).join(' ; then '),
    durationSeconds: runs.reduce((sum, r) => sum + r.durationSeconds, 0),
    machine: Object.assign({}, ...runs.map((r) => r.machine)) as Record<string, string | number>,
    unavailable,
    baselines: Object.assign({}, ...runs.map((r) => r.baselines)) as Record<string, string>,
    cells: [...cells.values()],
  }
}

async function output(results: RunResults, svgDir: string | undefined): Promise<void> {
  const { markdown } = renderReport(results)
  const machine = Object.entries(results.machine).map(([k, v]) => `${k} ${v}`).join(', ')
  process.stdout.write(`\n${markdown}\n\nMachine: ${machine}\n`)
  if (svgDir !== undefined) {
    await mkdir(svgDir, { recursive: true })
    for (const [name, svg] of Object.entries(renderPlots(results))) {
      await writeFile(join(svgDir, name), `${svg}\n`)
      log(`wrote ${join(svgDir, name)}`)
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exitCode = 1
})
