// Installs the pinned test servers into a cache folder that survives between runs:
// MinIO and fake-gcs-server are built from source with `go install` (MinIO ships no binaries any more),
// Azurite is installed from npm into its own prefix (never as a project dependency).
//
// Each server gets `<cache>/<name>-<version>/`. It is built in a temp folder next to it and renamed into place,
// so an interrupted build never looks finished; a lock folder keeps two concurrent installs from building twice.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { homedir, hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { errnoCode, log, runCommand, sleep } from './util.js'
import { SERVER_NAMES, delayfsSpec, serverSpecs, type GoLocalToolSpec, type GoServerSpec, type NpmServerSpec, type ServerName } from './versions.js'

/** How to launch an installed server: `command ...baseArgs ...serverArgs`. */
export interface InstalledServer {
  readonly name: ServerName
  readonly version: string
  readonly dir: string
  readonly command: string
  readonly baseArgs: readonly string[]
}

export type InstalledServers = { readonly [N in ServerName]?: InstalledServer }

/** A tool needed to install a server is missing or too old; the message says what to install. */
export class MissingToolError extends Error {
  constructor(
    readonly tool: string,
    message: string,
  ) {
    super(message)
    this.name = 'MissingToolError'
  }
}

const isWindows = process.platform === 'win32'

/** `$JOBSTORE_SERVERS_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/jobstore-test-servers`. */
export function cacheRoot(): string {
  const override = process.env['JOBSTORE_SERVERS_CACHE']
  if (override !== undefined && override !== '') return override
  const xdg = process.env['XDG_CACHE_HOME']
  const base = xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache')
  return join(base, 'jobstore-test-servers')
}

/** Installs (or finds in the cache) the named servers, all three by default. Safe to call concurrently. */
export async function ensureInstalled(names: readonly ServerName[] = SERVER_NAMES): Promise<InstalledServers> {
  const specs = serverSpecs()
  const root = cacheRoot()
  await mkdir(root, { recursive: true })
  const wanted = [...new Set(names)]
  const result: { [N in ServerName]?: InstalledServer } = {}
  const goNames = wanted.filter((name) => specs[name].kind === 'go')
  const npmNames = wanted.filter((name) => specs[name].kind === 'npm')
  await Promise.all([
    // Go builds one after the other: each already uses every core, running two at once only thrashes.
    (async () => {
      for (const name of goNames) result[name] = await installGo(root, name, specs[name] as GoServerSpec)
    })(),
    ...npmNames.map(async (name) => {
      result[name] = await installNpm(root, name, specs[name] as NpmServerSpec)
    }),
  ])
  return result
}

// ---------------------------------------------------------------------------------------------------------------
// Go (MinIO, fake-gcs-server)

async function installGo(root: string, name: ServerName, spec: GoServerSpec): Promise<InstalledServer> {
  const dir = join(root, `${spec.binary}-${spec.version}`)
  const binary = join(dir, spec.binary + (isWindows ? '.exe' : ''))
  const installed: InstalledServer = { name, version: spec.version, dir, command: binary, baseArgs: [] }
  if (existsSync(binary)) return installed

  await withLock(dir, name, async () => {
    if (existsSync(binary)) return // another process finished it while we waited for the lock
    await removeAbandonedTemps(root, `.tmp-${spec.binary}-${spec.version}-`)
    const goVersion = await findGo(name, spec)
    const tmp = await mkdtemp(join(root, `.tmp-${spec.binary}-${spec.version}-`))
    try {
      const started = Date.now()
      log(
        `building ${name} ${spec.version} with ${goVersion} into ${dir} ` +
          `(first time only, ${name === 'minio' ? 'a few minutes' : 'about a minute'}) ...`,
      )
      const ticker = setInterval(() => log(`  still building ${name} (${elapsed(started)}) ...`), 30_000)
      ticker.unref()
      const args = ['install', `${spec.module}@${spec.version}`]
      let result
      try {
        result = await runCommand('go', args, {
          cwd: tmp, // outside any go.mod / go.work the caller may be in
          env: {
            ...process.env,
            GOBIN: tmp,
            // Static binaries, and no C compiler needed on a fresh CI machine; both servers are pure Go.
            CGO_ENABLED: process.env['CGO_ENABLED'] ?? '0',
          },
        })
      } finally {
        clearInterval(ticker)
      }
      const builtBinary = join(tmp, spec.binary + (isWindows ? '.exe' : ''))
      if (result.code !== 0 || !existsSync(builtBinary)) {
        const tail = result.output.lines()
        const tooOld = /requires go >= ?([0-9.]+)|go\.mod requires go/i.test(tail)
        throw new Error(
          `building ${name} failed: \`go ${args.join(' ')}\` (GOBIN=${tmp}) exited with ` +
            `${result.code ?? result.signal}.\n` +
            (tooOld
              ? `${name} ${spec.version} needs Go >= ${spec.minGo} (found ${goVersion}): ${goInstallHint(spec.minGo)}\n`
              : '') +
            `Output (tail):\n${tail}`,
        )
      }
      await moveIntoPlace(tmp, dir, () => existsSync(binary))
      log(`built ${name} ${spec.version} in ${elapsed(started)}`)
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
  })
  if (!existsSync(binary)) throw new Error(`installing ${name}: ${binary} is missing after the build`)
  return installed
}

/** The Go that builds every pinned Go server, so one fix covers them all. */
function newestMinGo(): string {
  const mins = Object.values(serverSpecs()).flatMap((s) => (s.kind === 'go' ? [s.minGo] : []))
  const key = (v: string) => v.split('.').map((n) => n.padStart(4, '0')).join('.')
  return mins.sort((a, b) => key(a).localeCompare(key(b))).at(-1) ?? '1.24'
}

function goInstallHint(minGo: string): string {
  return (
    `install Go >= ${minGo} from https://go.dev/dl/ and put it on PATH ` +
    `(Debian/Ubuntu \`apt-get install golang\` is often older; any Go >= 1.21 with GOTOOLCHAIN=auto ` +
    `downloads the needed toolchain itself).`
  )
}

/** Checks that `go` runs and returns its version string; warns (but goes on) when it looks too old. */
async function findGo(name: string, spec: { readonly version: string; readonly minGo: string }): Promise<string> {
  let result
  try {
    result = await runCommand('go', ['version'], { cwd: cacheRoot(), env: process.env })
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') {
      throw new MissingToolError(
        'go',
        `cannot build ${name}: \`go\` is not on PATH. To fix: ${goInstallHint(newestMinGo())} ` +
          `Or point the tests at servers you run yourself with JOBSTORE_EXTERNAL_SERVERS=1 (see test-servers/README.md).`,
      )
    }
    throw error
  }
  const text = result.output.lines(1).trim()
  const match = /go(\d+)\.(\d+)(?:\.(\d+))?/.exec(text)
  if (result.code !== 0 || match === null) {
    throw new MissingToolError('go', `cannot build ${name}: \`go version\` failed:\n${result.output.lines()}`)
  }
  const [wantMajor = 0, wantMinor = 0] = spec.minGo.split('.').map(Number)
  const haveMajor = Number(match[1])
  const haveMinor = Number(match[2])
  if (haveMajor < wantMajor || (haveMajor === wantMajor && haveMinor < wantMinor)) {
    // Not fatal: with GOTOOLCHAIN=auto the go command fetches the toolchain the module asks for.
    log(`warning: ${name} ${spec.version} needs Go >= ${spec.minGo}, found ${match[0]}; trying anyway (GOTOOLCHAIN)`)
  }
  return match[0]
}

// ---------------------------------------------------------------------------------------------------------------
// Go programs kept in this repository (delayfs)

/** The path of the delayfs binary, built from test-servers/delayfs/ into the cache on first use. */
export async function ensureDelayfs(): Promise<string> {
  return installGoLocal(cacheRoot(), 'delayfs', delayfsSpec())
}

async function installGoLocal(root: string, name: string, spec: GoLocalToolSpec): Promise<string> {
  const source = join(dirname(fileURLToPath(import.meta.url)), spec.dir)
  const goMod = readFileSync(join(source, 'go.mod'), 'utf8')
  // versions.json names the library and its version; go.mod (with go.sum) is what the build really uses.
  const required = new RegExp(`^\\s*(?:require\\s+)?${spec.module.replaceAll('.', '\\.')}\\s+(\\S+)`, 'm').exec(goMod)?.[1]
  if (required !== spec.version) {
    throw new Error(
      `${join(source, 'go.mod')} requires ${spec.module} ${required ?? '(nothing)'}, but test-servers/versions.json pins ` +
        `${spec.version}: change both together (\`go get ${spec.module}@<version>\` in ${source}, then versions.json)`,
    )
  }
  // Named after the source, so that any change to it builds a new binary instead of reusing a stale one.
  const hash = createHash('sha256')
  for (const file of (await readdir(source)).filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go')).sort()) {
    hash.update(`${file}\0`).update(await readFile(join(source, file))).update('\0')
  }
  const id = `${spec.binary}-${spec.version}-${hash.digest('hex').slice(0, 12)}`
  const dir = join(root, id)
  const binary = join(dir, spec.binary)
  await mkdir(root, { recursive: true })
  if (existsSync(binary)) return binary

  await withLock(dir, name, async () => {
    if (existsSync(binary)) return
    await removeAbandonedTemps(root, `.tmp-${id}-`)
    const goVersion = await findGo(name, spec)
    const tmp = await mkdtemp(join(root, `.tmp-${id}-`))
    try {
      const started = Date.now()
      log(`building ${name} (${spec.module} ${spec.version}) with ${goVersion} into ${dir} (first time only, under a minute) ...`)
      const args = ['build', '-trimpath', '-buildvcs=false', '-o', join(tmp, spec.binary), '.']
      const result = await runCommand('go', args, {
        cwd: source,
        env: { ...process.env, CGO_ENABLED: process.env['CGO_ENABLED'] ?? '0', GOFLAGS: '-mod=readonly' },
      })
      if (result.code !== 0 || !existsSync(join(tmp, spec.binary))) {
        throw new Error(
          `building ${name} failed: \`go ${args.join(' ')}\` in ${source} exited with ${result.code ?? result.signal}.\n` +
            `Output (tail):\n${result.output.lines()}`,
        )
      }
      await moveIntoPlace(tmp, dir, () => existsSync(binary))
      log(`built ${name} in ${elapsed(started)}`)
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
  })
  if (!existsSync(binary)) throw new Error(`installing ${name}: ${binary} is missing after the build`)
  return binary
}

// ---------------------------------------------------------------------------------------------------------------
// npm (Azurite)

async function installNpm(root: string, name: ServerName, spec: NpmServerSpec): Promise<InstalledServer> {
  const nodeMajor = Number(process.versions.node.split('.')[0])
  if (nodeMajor < Number(spec.minNode)) {
    throw new MissingToolError(
      'node',
      `${name} ${spec.version} needs Node >= ${spec.minNode}, this is Node ${process.versions.node}: install a newer Node.js.`,
    )
  }
  const dir = join(root, `${spec.package}-${spec.version}`)
  const found = npmBin(dir, name, spec)
  if (found !== undefined) return found

  await withLock(dir, name, async () => {
    if (npmBin(dir, name, spec) !== undefined) return
    await removeAbandonedTemps(root, `.tmp-${spec.package}-${spec.version}-`)
    const tmp = await mkdtemp(join(root, `.tmp-${spec.package}-${spec.version}-`))
    try {
      const started = Date.now()
      log(`installing ${name} ${spec.version} from npm into ${dir} (first time only) ...`)
      const args = ['install', '--prefix', tmp, '--no-audit', '--no-fund', '--loglevel=error', `${spec.package}@${spec.version}`]
      let result
      try {
        result = await runCommand(isWindows ? 'npm.cmd' : 'npm', args, { cwd: tmp, env: npmEnv(), shell: isWindows })
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') {
          throw new MissingToolError(
            'npm',
            `cannot install ${name}: \`npm\` is not on PATH. To fix: install Node.js >= ${spec.minNode} with npm ` +
              `(https://nodejs.org/ or apt-get install nodejs npm).`,
          )
        }
        throw error
      }
      if (result.code !== 0 || npmBin(tmp, name, spec) === undefined) {
        throw new Error(
          `installing ${name} failed: \`npm ${args.join(' ')}\` exited with ${result.code ?? result.signal}.\n` +
            `Output (tail):\n${result.output.lines()}`,
        )
      }
      await moveIntoPlace(tmp, dir, () => npmBin(dir, name, spec) !== undefined)
      log(`installed ${name} ${spec.version} in ${elapsed(started)}`)
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
  })
  const installed = npmBin(dir, name, spec)
  if (installed === undefined) throw new Error(`installing ${name}: ${dir} has no ${spec.bin} after npm install`)
  return installed
}

/** Finds the package's bin script under `prefix` and runs it with this Node (no shell, no .cmd shims). */
function npmBin(prefix: string, name: ServerName, spec: NpmServerSpec): InstalledServer | undefined {
  const pkgDir = join(prefix, 'node_modules', spec.package)
  let pkg: unknown
  try {
    pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  } catch {
    return undefined
  }
  if (typeof pkg !== 'object' || pkg === null) return undefined
  const { version, bin } = pkg as { version?: unknown; bin?: unknown }
  if (version !== spec.version || typeof bin !== 'object' || bin === null) return undefined
  const script = (bin as Record<string, unknown>)[spec.bin]
  if (typeof script !== 'string' || !existsSync(join(pkgDir, script))) return undefined
  return {
    name,
    version: spec.version,
    dir: prefix,
    command: process.execPath,
    baseArgs: [join(pkgDir, script)],
  }
}

/** `npm run servers` leaks the project's npm settings (prefix, package, lifecycle) into the env: drop them. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    const k = key.toLowerCase()
    if (k === 'npm_config_prefix' || k === 'npm_config_local_prefix' || k === 'npm_config_global') continue
    if (k.startsWith('npm_package_') || k.startsWith('npm_lifecycle_')) continue
    env[key] = value
  }
  return env
}

// ---------------------------------------------------------------------------------------------------------------
// Finishing and locking

/** Atomic rename of a finished build; if someone else's build landed first, keep theirs. */
async function moveIntoPlace(tmp: string, dir: string, isComplete: () => boolean): Promise<void> {
  if (isComplete()) return
  await chmod(tmp, 0o755) // mkdtemp made it owner-only; a shared cache should stay readable
  // A folder at `dir` without a finished install is debris (say, a hand-made copy cut short): clear it.
  await rm(dir, { recursive: true, force: true })
  try {
    await rename(tmp, dir)
  } catch (error) {
    const code = errnoCode(error)
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EPERM') throw error
  }
}

/** Temp folders of builds that were killed half-way; safe to remove while we hold the lock. */
async function removeAbandonedTemps(root: string, prefix: string): Promise<void> {
  for (const entry of await readdir(root)) {
    if (entry.startsWith(prefix)) await rm(join(root, entry), { recursive: true, force: true })
  }
}

const LOCK_STALE_MS = 2 * 60_000
const LOCK_HEARTBEAT_MS = 10_000
const LOCK_WAIT_MS = 60 * 60_000

/**
 * Cross-process lock: `mkdir <dir>.lock` is atomic. The holder writes its pid and touches the folder every 10 s;
 * a lock whose holder died (same host, pid gone) or stopped touching it for 2 minutes is taken over.
 * Even if two builds did run at once, moveIntoPlace keeps the result consistent; the lock only saves the work.
 */
async function withLock(dir: string, name: string, fn: () => Promise<void>): Promise<void> {
  const lockDir = `${dir}.lock`
  const deadline = Date.now() + LOCK_WAIT_MS
  let announced = false
  for (;;) {
    try {
      await mkdir(lockDir)
      break
    } catch (error) {
      if (errnoCode(error) !== 'EEXIST') throw error
    }
    if (await lockIsStale(lockDir)) {
      log(`removing stale install lock ${lockDir}`)
      // Rename first so that only one of several waiters removes it.
      const doomed = `${lockDir}.stale-${process.pid}-${Date.now()}`
      try {
        await rename(lockDir, doomed)
        await rm(doomed, { recursive: true, force: true })
      } catch {
        // someone else took it over; go round again
      }
      continue
    }
    if (!announced) {
      log(`waiting for another process that is installing ${name} (lock ${lockDir}) ...`)
      announced = true
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the install lock ${lockDir}; remove it if stale`)
    await sleep(1000)
  }

  await writeFile(join(lockDir, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), at: new Date() }))
  const heartbeat = setInterval(() => {
    const now = new Date()
    utimes(lockDir, now, now).catch(() => {})
  }, LOCK_HEARTBEAT_MS)
  heartbeat.unref()
  try {
    await fn()
  } finally {
    clearInterval(heartbeat)
    await rm(lockDir, { recursive: true, force: true })
  }
}

async function lockIsStale(lockDir: string): Promise<boolean> {
  let mtimeMs: number
  try {
    mtimeMs = (await stat(lockDir)).mtimeMs
  } catch {
    return false // gone already: the next mkdir will tell
  }
  try {
    const owner: unknown = JSON.parse(await readFile(join(lockDir, 'owner.json'), 'utf8'))
    const { pid, host } = owner as { pid?: unknown; host?: unknown }
    if (typeof pid === 'number' && host === hostname() && !processIsAlive(pid)) return true
  } catch {
    // no owner file yet (just created, or the holder crashed before writing it): fall back to the age
  }
  return Date.now() - mtimeMs > LOCK_STALE_MS
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return errnoCode(error) === 'EPERM'
  }
}

function elapsed(since: number): string {
  const s = Math.round((Date.now() - since) / 1000)
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}
