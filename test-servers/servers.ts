// Starts the installed test servers on free loopback ports, waits until each answers, and stops them again.
// Children are killed when this process exits, even if nobody called stop().
import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureInstalled, type InstalledServer } from './install.js'
import { OutputTail, commandLine, log, sleep } from './util.js'
import { SERVER_NAMES, type ServerName } from './versions.js'

/** Fixed test credentials: the servers only listen on 127.0.0.1 and hold throwaway data. */
export const MINIO_ROOT_USER = 'minioadmin'
export const MINIO_ROOT_PASSWORD = 'minioadmin-secret'
export const AWS_TEST_REGION = 'us-east-1'
/** Azurite's built-in account and its well-known (public) development key. */
export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export const GCS_TEST_PROJECT = 'jobstore-test'

export interface RunningServerInfo {
  readonly name: ServerName
  readonly version: string
  /** Base URL the clients talk to. */
  readonly url: string
  readonly pid: number
  readonly commandLine: string
}

export interface TestServers {
  /** Variables the SDKs and the jobstore backends read; see README.md for the list. */
  readonly env: Record<string, string>
  readonly servers: readonly RunningServerInfo[]
  /** SIGTERM, then SIGKILL after a grace period; removes temp data. Idempotent. */
  stop(): Promise<void>
}

export interface StartOptions {
  /** How long each server may take to answer its health check (default 60 s). */
  readonly startTimeoutMs?: number
  /** Copy the servers' output to stderr (default: env JOBSTORE_SERVERS_VERBOSE=1). */
  readonly verbose?: boolean
  /**
   * The URL fake-gcs-server hands out for resumable upload sessions (its `-external-url`). Default: its own URL.
   * A fault proxy in front of it passes its own URL, so that the chunks of resumable uploads go through the proxy
   * too (and `STORAGE_EMULATOR_HOST` in `env` is then this URL).
   */
  readonly gcsExternalUrl?: string
}

/** Installs if needed, then starts the named servers (all three by default) in parallel. */
export async function startTestServers(
  names: readonly ServerName[] = SERVER_NAMES,
  options: StartOptions = {},
): Promise<TestServers> {
  const wanted = [...new Set(names)]
  const installed = await ensureInstalled(wanted)
  const timeoutMs = options.startTimeoutMs ?? 60_000
  const verbose = options.verbose ?? process.env['JOBSTORE_SERVERS_VERBOSE'] === '1'

  const started: StartedServer[] = []
  const results = await Promise.allSettled(
    wanted.map(async (name) => {
      const inst = installed[name]
      if (inst === undefined) throw new Error(`${name} was not installed`)
      const server = await startWithRetries(inst, timeoutMs, verbose, options.gcsExternalUrl)
      started.push(server)
      return server
    }),
  )
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
  if (failures.length > 0) {
    await Promise.all(started.map((s) => s.process.stop()))
    if (failures.length === 1) throw failures[0]
    throw new Error(failures.map((f) => (f instanceof Error ? f.message : String(f))).join('\n\n'))
  }

  // Stable order (as asked) for the env and the listing.
  started.sort((a, b) => wanted.indexOf(a.info.name) - wanted.indexOf(b.info.name))
  const env: Record<string, string> = {}
  for (const s of started) Object.assign(env, s.env)
  let stopping: Promise<void> | undefined
  return {
    env,
    servers: started.map((s) => s.info),
    stop: () => (stopping ??= Promise.all(started.map((s) => s.process.stop())).then(() => undefined)),
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What to run for each server

interface LaunchPlan {
  readonly args: readonly string[]
  /** Extra environment for the child. */
  readonly env: Record<string, string>
  readonly url: string
  readonly healthPath: string
  /** Whether an HTTP status from healthPath means "ready". */
  readonly healthy: (status: number) => boolean
  /** What the tests get. */
  readonly exported: Record<string, string>
}

const PORTS_NEEDED: Record<ServerName, number> = { minio: 2, azurite: 1, 'fake-gcs': 1 }

function planFor(inst: InstalledServer, ports: readonly number[], workDir: string, gcsExternalUrl?: string): LaunchPlan {
  const [port = 0, port2 = 0] = ports
  const url = `http://127.0.0.1:${port}`
  switch (inst.name) {
    case 'minio':
      return {
        args: [
          'server',
          join(workDir, 'data'),
          '--address',
          `127.0.0.1:${port}`,
          '--console-address',
          `127.0.0.1:${port2}`,
          // Default is ~/.minio/certs, which MinIO creates: keep HOME clean.
          '--certs-dir',
          join(workDir, 'certs'),
        ],
        env: { MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, MINIO_UPDATE: 'off' },
        url,
        healthPath: '/minio/health/live',
        healthy: (status) => status === 200,
        exported: {
          AWS_ENDPOINT_URL: url,
          AWS_ACCESS_KEY_ID: MINIO_ROOT_USER,
          AWS_SECRET_ACCESS_KEY: MINIO_ROOT_PASSWORD,
          AWS_REGION: AWS_TEST_REGION,
        },
      }
    case 'fake-gcs':
      return {
        args: [
          '-scheme',
          'http',
          '-backend',
          'memory',
          '-host',
          '127.0.0.1',
          '-port',
          String(port),
          // Resumable uploads hand the client this URL in their Location header.
          '-external-url',
          gcsExternalUrl ?? url,
          // Serve bucket/object paths (the form of signed URLs) on this host, not only on storage.googleapis.com.
          '-public-host',
          `127.0.0.1:${port}`,
        ],
        env: {},
        url,
        healthPath: '/storage/v1/b',
        healthy: (status) => status === 200,
        exported: { STORAGE_EMULATOR_HOST: gcsExternalUrl ?? url, GOOGLE_CLOUD_PROJECT: GCS_TEST_PROJECT },
      }
    case 'azurite':
      return {
        args: [
          ...inst.baseArgs,
          '--inMemoryPersistence',
          '--skipApiVersionCheck',
          '--loose',
          // Azurite 3.35 sends usage telemetry by default: not from test runs (and CI may have no internet).
          '--disableTelemetry',
          '--blobHost',
          '127.0.0.1',
          '--blobPort',
          String(port),
          // No --location: Azurite refuses it together with --inMemoryPersistence. Its default folder is the
          // cwd, which is our temp dir (see ServerProcess).
        ],
        env: {},
        url,
        healthPath: '/',
        healthy: () => true, // any HTTP answer (it is 400 on "/") means the blob service is up
        exported: {
          AZURE_STORAGE_CONNECTION_STRING:
            `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};` +
            `BlobEndpoint=${url}/${AZURITE_ACCOUNT};`,
        },
      }
  }
}

/** The servers read settings from these variables too; a developer's own settings must not leak in. */
const FOREIGN_ENV_PREFIXES = ['MINIO_', 'FAKE_GCS_', 'AZURITE_']

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!FOREIGN_ENV_PREFIXES.some((p) => key.toUpperCase().startsWith(p))) env[key] = value
  }
  return { ...env, ...extra }
}

// ---------------------------------------------------------------------------------------------------------------
// Starting

interface StartedServer {
  readonly info: RunningServerInfo
  readonly env: Record<string, string>
  readonly process: ServerProcess
}

class StartError extends Error {
  constructor(
    message: string,
    readonly portClash: boolean,
  ) {
    super(message)
    this.name = 'TestServerStartError'
  }
}

async function startWithRetries(
  inst: InstalledServer,
  timeoutMs: number,
  verbose: boolean,
  gcsExternalUrl: string | undefined,
): Promise<StartedServer> {
  // A port we were given by the OS can be taken by someone else before the server binds it: try again then.
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(PORTS_NEEDED[inst.name])
    const workDir = await mkdtemp(join(tmpdir(), `jobstore-${inst.name}-`))
    const plan = planFor(inst, ports, workDir, gcsExternalUrl)
    const proc = new ServerProcess(inst.name, inst.command, plan.args, childEnv(plan.env), workDir, verbose)
    try {
      await waitHealthy(inst, proc, plan, timeoutMs)
    } catch (error) {
      await proc.stop()
      if (error instanceof StartError && error.portClash && attempt < 3) {
        log(`${inst.name}: port taken before it could bind, retrying on other ports`)
        continue
      }
      throw error
    }
    return {
      info: { name: inst.name, version: inst.version, url: plan.url, pid: proc.pid, commandLine: proc.commandLine },
      env: plan.exported,
      process: proc,
    }
  }
}

async function waitHealthy(inst: InstalledServer, proc: ServerProcess, plan: LaunchPlan, timeoutMs: number) {
  const target = `GET ${plan.url}${plan.healthPath}`
  const deadline = Date.now() + timeoutMs
  let last = 'no answer yet'
  const failure = (what: string): string =>
    `${inst.name} ${inst.version} ${what}\n` +
    `  health check: ${target} (last: ${last})\n` +
    `  command: ${proc.commandLine}\n` +
    `  log (tail):\n${proc.output.lines()}`
  for (;;) {
    if (proc.exit !== undefined) {
      const portClash = /address already in use|EADDRINUSE/i.test(proc.output.lines(200))
      throw new StartError(failure(`exited (${proc.exit}) before it answered.`), portClash)
    }
    try {
      const status = await httpStatus(plan.url + plan.healthPath, 2000)
      if (plan.healthy(status)) return
      last = `HTTP ${status}`
    } catch (error) {
      last = error instanceof Error ? error.message : String(error)
    }
    if (Date.now() > deadline) {
      throw new StartError(failure(`did not become healthy within ${Math.round(timeoutMs / 1000)}s.`), false)
    }
    await sleep(200)
  }
}

/** One GET without keep-alive (so no pooled socket outlives the check). Resolves with the status code. */
function httpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Asks the OS for free loopback ports; all are held open together so they are distinct. */
async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', resolve)
      })
    }
    return servers.map((s) => (s.address() as AddressInfo).port)
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One child process

const STOP_GRACE_MS = 10_000

class ServerProcess {
  readonly child: ChildProcess
  readonly output = new OutputTail()
  readonly commandLine: string
  /** Set once the child is gone ("code 1", "signal SIGTERM", or the spawn error). */
  exit: string | undefined
  readonly #exited: Promise<void>
  #stopping: Promise<void> | undefined

  constructor(
    readonly name: ServerName,
    command: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    readonly workDir: string,
    verbose: boolean,
  ) {
    this.commandLine = commandLine(command, args)
    this.child = spawn(command, args, { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.#exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = signal !== null ? `signal ${signal}` : `code ${code}`
        resolve()
      })
      this.child.on('error', (error) => {
        // Spawn failed (ENOENT...): there will be no 'exit' event.
        if (this.child.pid === undefined) {
          this.exit = `could not start: ${error.message}`
          resolve()
        }
      })
    })
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        this.output.push(chunk)
        if (verbose) process.stderr.write(prefixLines(`[${name}] `, chunk.toString()))
      })
    }
    // Don't let forgotten servers keep Node alive: the 'exit' hook below kills them when the process ends.
    this.child.unref()
    for (const stream of [this.child.stdout, this.child.stderr]) {
      ;(stream as unknown as { unref?: () => void } | null)?.unref?.()
    }
    live.add(this)
    installProcessHooks()
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  /** SIGTERM, SIGKILL after the grace period, then remove the temp folder. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.exit === undefined) {
        this.child.kill('SIGTERM')
        const graceful = await Promise.race([this.#exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)])
        if (!graceful) {
          log(`${this.name} (pid ${this.pid}) ignored SIGTERM for ${STOP_GRACE_MS / 1000}s, sending SIGKILL`)
          this.child.kill('SIGKILL')
          await this.#exited
        }
      }
      await rm(this.workDir, { recursive: true, force: true, maxRetries: 3 })
      live.delete(this)
      if (live.size === 0) removeProcessHooks()
    })()
    return this.#stopping
  }

  /** Synchronous last resort for process exit: no waiting possible there. */
  killNow(): void {
    if (this.exit === undefined) {
      try {
        this.child.kill('SIGKILL')
      } catch {
        // already gone
      }
    }
    try {
      rmSync(this.workDir, { recursive: true, force: true })
    } catch {
      // best effort
    }
  }
}

function prefixLines(prefix: string, text: string): string {
  return text.replace(/^(?=.)/gm, prefix)
}

// ---------------------------------------------------------------------------------------------------------------
// Killing children when this process ends

const live = new Set<ServerProcess>()
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
let hooked = false

function killAllNow(): void {
  for (const p of live) p.killNow()
  live.clear()
}

function onSignal(signal: NodeJS.Signals): void {
  // If someone else (the CLI, a test runner) handles this signal, they own the shutdown; 'exit' is our backstop.
  if (process.listenerCount(signal) > 1) return
  // Otherwise Node would die without running 'exit' hooks: kill the children, then die of the same signal.
  killAllNow()
  removeProcessHooks()
  process.kill(process.pid, signal)
}

function installProcessHooks(): void {
  if (hooked) return
  hooked = true
  process.on('exit', killAllNow)
  for (const s of SIGNALS) process.on(s, onSignal)
}

function removeProcessHooks(): void {
  if (!hooked) return
  hooked = false
  process.off('exit', killAllNow)
  for (const s of SIGNALS) process.off(s, onSignal)
}
