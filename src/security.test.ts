/**
 * Security checks across the backends, fast enough for every run (the slow reliability tests are in
 * reliability-tests/):
 * - the file backend creates files 0600 and folders 0700, or the modes it is configured with;
 * - public URLs carry the configured expiry (S3 and Azure URLs are refused once expired: backends/s3/s3.test.ts,
 *   backends/azure/azure.test.ts; fake-gcs-server checks no expiry);
 * - no credential, connection string or key appears in an error (message, stack, causes), in the debug log
 *   (NODE_DEBUG=jobstore*) or in the CLI's output, on the real test servers with their real credentials, also
 *   when the credentials are wrong, the server is unreachable or the encryption key is wrong.
 *
 * Stores are opened through `openJobStore` only: src/ never imports a cloud SDK.
 */
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { lstat, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { AbstractJobStore, JobStoreOptions } from './abstract-job-store.js'
import { newJobDescription } from './job-description.js'
import { openJobStore } from './open.js'
import './builtin-backends.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-security-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Every entry under `root` with its permission bits. */
async function modes(root: string): Promise<{ path: string; dir: boolean; mode: number }[]> {
  const out: { path: string; dir: boolean; mode: number }[] = []
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path)
    // The files' digest sidecars are symlinks the store makes (`<file>~<inode>.<birth time>`, never followed): a
    // symlink's mode is no permission.
    if (info.isSymbolicLink() && /~[0-9a-z]+\.[0-9a-z]+$/.test(path)) return
    out.push({ path, dir: info.isDirectory(), mode: info.mode & 0o777 })
    if (info.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name))
  }
  await walk(root)
  return out
}

/** Writes one of everything: config, root job, job, plain and executable files, shared files, a stats message. */
async function populate(store: AbstractJobStore, dir: string): Promise<void> {
  const job = newJobDescription({ jobName: 'j' })
  store.assignID(job)
  await store.createRootJob(job)
  await store.writeFileStream((w) => void w.end('data'), { jobStoreID: job.jobStoreID as string, cleanup: true })
  const tool = join(dir, 'tool.sh')
  await writeFile(tool, '#!/bin/sh\n', { mode: 0o755 })
  await store.writeFile(tool)
  await store.writeSharedFileStream('settings', (w) => void w.end('x'))
  await store.writeStatsAndLogging('hello')
}

describe('file backend permissions', () => {
  it('creates files 0600 (0700 when executable) and folders 0700 by default', async () => {
    const dir = await tempDir()
    const root = join(dir, 'store')
    const store = await openJobStore(`file:${root}`)
    await store.initialize()
    await populate(store, dir)
    const entries = await modes(root)
    expect(entries.filter((e) => !e.dir).length).toBeGreaterThanOrEqual(6)
    for (const entry of entries) {
      if (entry.dir) expect(entry.mode.toString(8), entry.path).toBe('700')
      else expect(['600', '700'], entry.path).toContain(entry.mode.toString(8))
    }
    expect(entries.some((e) => !e.dir && e.mode === 0o700)).toBe(true)
  })

  it('uses the configured modes when given', async () => {
    const dir = await tempDir()
    const root = join(dir, 'store')
    const store = await openJobStore(`file:${root}`, { fileMode: 0o640, dirMode: 0o750 } as JobStoreOptions)
    await store.initialize()
    await populate(store, dir)
    const umask = process.umask()
    for (const entry of await modes(root)) {
      if (entry.dir) expect(entry.mode, entry.path).toBe(0o750 & ~umask)
      else expect([0o640, 0o740], entry.path).toContain(entry.mode)
    }
  })
})

/** The network backends on the local test servers, with the credentials of the environment. */
const NETWORK: { name: string; locator: () => string }[] = [
  { name: 's3', locator: () => `s3://jobstore-security/${randomUUID()}` },
  { name: 'azure', locator: () => `azure://devstoreaccount1/jobstore-security/${randomUUID()}` },
  { name: 'gcs', locator: () => `gs://jobstore-security/${randomUUID()}` },
]

describe('public URLs expire', () => {
  it.each(NETWORK)('$name: the URL carries the configured expiry', async ({ name, locator }) => {
    const store = await openJobStore(locator())
    await store.initialize({ publicUrlExpirySeconds: 120 })
    onTestFinished(() => store.destroy())
    const id = await store.writeFileStream((w) => void w.end('x'))
    const url = new URL(await store.getPublicUrl(id))
    const now = Date.now()
    if (name === 's3') expect(url.searchParams.get('X-Amz-Expires')).toBe('120')
    if (name === 'gcs') expect(url.searchParams.get('X-Goog-Expires')).toBe('120')
    if (name === 'azure') {
      const expiry = Date.parse(url.searchParams.get('se') as string)
      expect(expiry).toBeGreaterThan(now + 100_000)
      expect(expiry).toBeLessThanOrEqual(now + 121_000)
    }
  })
})

/**
 * The secrets to look for: credential-like variables of the environment (the test servers' MinIO secret, the
 * Azurite account key and connection string…), their key parts, and the extra ones given.
 */
function secretsOf(env: NodeJS.ProcessEnv, extra: readonly string[]): string[] {
  const found = new Set<string>(extra)
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value.length < 8) continue
    if (!/SECRET|PASSWORD|TOKEN|CONNECTION_STRING|ACCOUNT_KEY|PRIVATE_KEY|_SAS/i.test(name)) continue
    found.add(value)
    for (const part of value.split(';')) {
      const eq = part.indexOf('=')
      if (eq > 0 && /key|signature|secret|password/i.test(part.slice(0, eq)) && part.length - eq > 8) found.add(part.slice(eq + 1))
    }
  }
  return [...found]
}

function expectNoSecret(text: string, secrets: readonly string[], where: string): void {
  for (const secret of secrets) {
    expect(text.includes(secret), `${where} contains a secret (${secret.slice(0, 4)}…): ${text.slice(0, 300)}`).toBe(false)
  }
}

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((r) => server.close(() => r()))
  return port
}

/**
 * A script run in a child process with NODE_DEBUG=jobstore*: it makes each backend fail in every way the tests
 * can provoke (missing store, job and file, stale version, hostile ID, wrong and missing encryption key, wrong
 * credentials, unreachable server) and prints every error, inspected to depth 8 with its causes.
 */
function failureScript(locators: Record<string, string>, keyDir: string, wrongSecret: string, port: number): string {
  const src = JSON.stringify(pathToFileURL(join(REPO, 'src', 'index.ts')).href)
  return `
    import { inspect } from 'node:util'
    import { writeFile } from 'node:fs/promises'
    import { join } from 'node:path'
    import { randomBytes } from 'node:crypto'
    import { openJobStore, newJobDescription } from ${src}
    const locators = ${JSON.stringify(locators)}
    const keyDir = ${JSON.stringify(keyDir)}
    const show = (what, err) => console.log('=== ' + what + '\\n' + inspect(err, { depth: 8 }) + '\\n' + String(err?.stack))
    const attempt = async (what, fn) => { try { await fn(); console.log('=== ' + what + ': no error') } catch (err) { show(what, err) } }
    for (const [name, locator] of Object.entries(locators)) {
      const keyPath = join(keyDir, name + '.key')
      await writeFile(keyPath, Buffer.from(${JSON.stringify(randomBytes(32).toString('hex'))}, 'hex'))
      const store = await openJobStore(locator)
      await attempt(name + ' resume missing', () => store.resume())
      await store.initialize({ encryptionKeyPath: keyPath })
      const job = newJobDescription({ jobName: 'x' }); store.assignID(job); await store.create(job)
      await attempt(name + ' load missing', () => store.load('0'.repeat(26)))
      await attempt(name + ' read missing', () => store.readFileStream('_/k/' + '0'.repeat(26)))
      await attempt(name + ' stale version', async () => { await store.update(job); job.version = 1; await store.update(job, { ifVersion: 1 }) })
      await attempt(name + ' hostile id', () => store.load('../../etc/passwd'))
      await store.writeSharedFileStream('secret', (w) => void w.end('protected'), { isProtected: true })
      await writeFile(keyPath, randomBytes(32))
      const wrongKey = await openJobStore(locator); await wrongKey.resume()
      await attempt(name + ' wrong key', async () => { for await (const _ of await wrongKey.readSharedFileStream('secret')) {} })
      const url = await store.writeFileStream((w) => void w.end('u')).then((id) => store.getPublicUrl(id))
      console.log('=== ' + name + ' public URL ' + url)
      await store.destroy()
    }
    // Wrong credentials and unreachable servers.
    const s3 = await openJobStore(locators.s3, { clientConfig: { credentials: { accessKeyId: 'nobody', secretAccessKey: ${JSON.stringify(wrongSecret)} }, maxAttempts: 1 } })
    await attempt('s3 wrong credentials', () => s3.resume())
    const s3Down = await openJobStore(locators.s3, { clientConfig: { endpoint: 'http://127.0.0.1:${port}', maxAttempts: 1 } })
    await attempt('s3 unreachable', () => s3Down.resume())
    const good = process.env.AZURE_STORAGE_CONNECTION_STRING
    process.env.AZURE_STORAGE_CONNECTION_STRING = good.replace(/AccountKey=[^;]*/, 'AccountKey=' + Buffer.from(${JSON.stringify(wrongSecret)}).toString('base64'))
    const azureWrong = await openJobStore(locators.azure)
    process.env.AZURE_STORAGE_CONNECTION_STRING = good.replace(/BlobEndpoint=[^;]*/, 'BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1')
    const azureDown = await openJobStore(locators.azure)
    process.env.AZURE_STORAGE_CONNECTION_STRING = good
    await attempt('azure wrong credentials', () => azureWrong.resume())
    await attempt('azure unreachable', () => azureDown.resume())
    const gcsDown = await openJobStore(locators.gcs, { apiEndpoint: 'http://127.0.0.1:${port}', storageOptions: { retryOptions: { maxRetries: 0 } } })
    await attempt('gcs unreachable', () => gcsDown.resume())
    await attempt('azure malformed connection string', async () => {
      process.env.AZURE_STORAGE_CONNECTION_STRING = 'AccountName=devstoreaccount1;AccountKey=' + ${JSON.stringify(wrongSecret)} + ';Nonsense'
      try { await openJobStore(locators.azure) } finally { process.env.AZURE_STORAGE_CONNECTION_STRING = good }
    })
  `
}

/** tsx's loader by absolute URL (as the CLI tests start the CLI). */
const TSX = (() => {
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json')
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, string> }
  return pathToFileURL(join(dirname(pkgPath), pkg.exports['.'] as string)).href
})()

function run(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', TSX, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolvePromise, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
}

describe('no credential, connection string or key in errors, logs or CLI output', () => {
  it('errors (with causes) and debug logs of every backend, failing every way', { timeout: 300_000 }, async () => {
    const dir = await tempDir()
    const wrongSecret = `wrong-secret-${randomUUID()}`
    const locators = Object.fromEntries([
      ['file', `file:${join(dir, 'store')}`],
      ...NETWORK.map(({ name, locator }) => [name, locator()]),
    ]) as Record<string, string>
    const env = { ...process.env, NODE_DEBUG: 'jobstore,jobstore:file,jobstore:s3,jobstore:azure,jobstore:gcs', NODE_OPTIONS: '' }
    const result = await run(['--input-type=module', '-e', failureScript(locators, dir, wrongSecret, await closedPort())], env)
    expect(result.code, result.stderr).toBe(0)
    // Every failure happened and was reported.
    const reported = result.stdout.split('\n').filter((l) => l.startsWith('=== '))
    expect(reported.filter((l) => l.endsWith(': no error'))).toEqual([])
    expect(reported.length).toBe(4 * 7 + 6)
    expect(result.stderr).toMatch(/JOBSTORE/) // the debug log was on
    const keys = await Promise.all(Object.keys(locators).map(async (name) => readFileSync(join(dir, `${name}.key`))))
    const secrets = secretsOf(process.env, [
      wrongSecret,
      Buffer.from(wrongSecret).toString('base64'),
      ...keys.flatMap((key) => [key.toString('hex'), key.toString('base64')]),
    ])
    // The test servers' real credentials are among them.
    expect(secrets).toContain(process.env['AWS_SECRET_ACCESS_KEY'])
    expect(secrets.some((s) => (process.env['AZURE_STORAGE_CONNECTION_STRING'] ?? '').includes(`AccountKey=${s}`))).toBe(true)
    expectNoSecret(result.stdout, secrets, 'an error')
    expectNoSecret(result.stderr, secrets, 'the debug log')
  })

  it('the CLI prints none, on every backend, with right or wrong credentials', { timeout: 300_000 }, async () => {
    const cli = join(REPO, 'src', 'cli', 'main.ts')
    const wrongSecret = `wrong-secret-${randomUUID()}`
    const base: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '', NODE_DEBUG: 'jobstore,jobstore:s3,jobstore:azure,jobstore:gcs,jobstore:file' }
    const stores: AbstractJobStore[] = []
    const runs: Promise<{ code: number | null; stdout: string; stderr: string }>[] = []
    for (const { name, locator: make } of NETWORK) {
      const locator = make()
      const store = await openJobStore(locator)
      await store.initialize()
      await store.writeStatsAndLogging('a message')
      stores.push(store)
      onTestFinished(() => store.destroy())
      runs.push(run([cli, 'status', locator], base))
      runs.push(run([cli, 'status', locator, '--json'], base))
      runs.push(run([cli, 'cat', locator, `_/k/${'0'.repeat(26)}`], base))
      const wrong =
        name === 's3'
          ? { ...base, AWS_SECRET_ACCESS_KEY: wrongSecret }
          : name === 'azure'
            ? { ...base, AZURE_STORAGE_CONNECTION_STRING: (base['AZURE_STORAGE_CONNECTION_STRING'] ?? '').replace(/AccountKey=[^;]*/, `AccountKey=${Buffer.from(wrongSecret).toString('base64')}`) }
            : { ...base, STORAGE_EMULATOR_HOST: `http://127.0.0.1:${await closedPort()}` }
      runs.push(run([cli, 'status', locator], wrong))
      runs.push(run([cli, 'verify', locator, '--json'], wrong))
    }
    const results = await Promise.all(runs)
    const secrets = secretsOf(process.env, [wrongSecret, Buffer.from(wrongSecret).toString('base64')])
    for (const [i, result] of results.entries()) {
      expectNoSecret(result.stdout + result.stderr, secrets, `CLI run ${i}`)
    }
    // The runs did what they should: the good ones succeeded, the wrong credentials failed.
    expect(results.filter((r) => r.code === 0).length).toBe(NETWORK.length * 2)
    expect(results.filter((r) => r.code !== 0).length).toBe(NETWORK.length * 3)
  })
})
