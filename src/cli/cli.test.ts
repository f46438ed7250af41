/**
 * Tests of the `jobstore` CLI: every command, run as a real subprocess (the built bin, `dist/src/cli/main.js`,
 * rebuilt by the vitest global setup when older than the source: see test-cli.ts), against stores made by the
 * library in this process.
 *
 * The commands are tested on every backend in LOCATORS. Cloud backends join by adding a factory there once their
 * test servers are up (the vitest global setup exports AWS_ENDPOINT_URL, AZURE_STORAGE_CONNECTION_STRING and
 * STORAGE_EMULATOR_HOST), e.g.
 *   { name: 's3', make: () => `s3://jobstore-cli-tests/${randomUUID()}` }
 * Damage that needs raw access to the storage (a truncated record) is done through the factory's optional
 * `truncateJob`, which only the file backend has for now.
 */
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Writable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { checkJobId, newJobDescription, openJobStore, type AbstractJobStore, type JobDescription } from '../index.js'
import { EXIT, EXIT_CODE_BY_ERROR_CODE, exitCodeFor } from './exit-codes.js'
import { jobState } from './job-state.js'
import { createProgress } from './progress.js'
import { Redactor } from './redact.js'
import { CLI_BIN, CLI_SOURCE, REPO, cli, cliJson, jsonErrorOf, startCli, type CliResult } from './test-cli.js'
import { distIsStale } from '../../test-servers/build-dist.js'

const TMP = mkdtempSync(join(tmpdir(), 'jobstore-cli-test-'))
afterAll(() => rmSync(TMP, { recursive: true, force: true }))
// Every test starts several Node processes; on a loaded machine that takes a while.
vi.setConfig({ testTimeout: 300_000 })

interface LocatorFactory {
  readonly name: string
  /** A locator where no store exists yet, unique to the caller. */
  make(): string
  /** Overwrites a job's stored record with its first half (raw access to the storage). */
  readonly truncateJob?: (locator: string, jobID: string) => void
  /** Deletes a store-relative key (`config.json`...) behind the store's back. */
  readonly deleteKey?: (locator: string, key: string) => void
}

const fileFactory: LocatorFactory = {
  name: 'file',
  make: () => `file:${join(TMP, `store-${randomUUID()}`)}`,
  truncateJob: (locator, jobID) => {
    const path = join(locator.slice('file:'.length), 'jobs', jobID.slice(0, 2), jobID)
    truncateSync(path, Math.floor(statSync(path).size / 2))
  },
  deleteKey: (locator, key) => rmSync(join(locator.slice('file:'.length), ...key.split('/'))),
}

/**
 * Factories for the cloud backends, against the local test servers (whose env the vitest global setup exports).
 * Always listed: a backend whose server is not running fails its tests (it is never skipped). The vitest global
 * setup starts MinIO, Azurite and fake-gcs-server and exports their environment.
 */
function cloudFactories(): LocatorFactory[] {
  const prefix = (): string => `cli-${randomUUID()}`
  return [
    { name: 's3', make: () => `s3://jobstore-cli-tests/${prefix()}` },
    { name: 'gs', make: () => `gs://jobstore-cli-tests/${prefix()}` },
    { name: 'azure', make: () => `azure://devstoreaccount1/jobstore-cli-tests/${prefix()}` },
  ]
}

/** The backends the commands are tested on. */
const LOCATORS: readonly LocatorFactory[] = [fileFactory, ...cloudFactories()]

async function waitFor(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function readAll(stream: AsyncIterable<unknown>): Promise<string> {
  let text = ''
  for await (const part of stream) text += Buffer.isBuffer(part) ? part.toString('utf8') : String(part)
  return text
}

function job(store: AbstractJobStore, init: Parameters<typeof newJobDescription>[0]): JobDescription & { jobStoreID: string } {
  const desc = newJobDescription(init)
  store.assignID(desc)
  return desc as JobDescription & { jobStoreID: string }
}

/**
 * A small healthy store: a root job (done) with two children (running; failed by its try count) and a follow-on
 * (no state), a kept file, a cleanup file of a child, a shared file, two unread log messages.
 */
async function makeFixture(locator: string) {
  const store = await openJobStore(locator)
  await store.initialize({ retryCount: 2 })
  const root = job(store, { jobName: 'root', extra: { state: 'done' } })
  const running = job(store, { jobName: 'count-a', extra: { state: 'running', args: { n: 1 } } })
  const failed = job(store, { jobName: 'count-b', remainingTryCount: 0 })
  const noState = job(store, { jobName: 'total' })
  root.children = [running.jobStoreID, failed.jobStoreID]
  root.followOns = [noState.jobStoreID]
  await store.create(running)
  await store.create(failed)
  await store.create(noState)
  await store.createRootJob(root)
  const keptFile = await store.writeFileStream((w) => void w.end('hello world\n'), { basename: 'hello.txt' })
  const cleanupFile = await store.writeFileStream((w) => void w.end('chunk of a'), {
    jobStoreID: running.jobStoreID,
    cleanup: true,
    basename: 'chunk-a.txt',
  })
  await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end('{"words":42}'))
  await store.writeStatsAndLogging('message one')
  await store.writeStatsAndLogging('message two')
  return { store, root, running, failed, noState, keptFile, cleanupFile }
}

// ---------------------------------------------------------------------------------------------------------------

describe('jobstore CLI: usage', () => {
  it('prints help for the program and every command, with an example, exit 0', async () => {
    const top = await cli(['--help'])
    expect(top.code).toBe(0)
    expect(top.stdout).toContain('Exit codes:')
    const commands = ['init', 'status', 'jobs', 'show', 'clean', 'destroy', 'import', 'export', 'cat', 'logs', 'copy', 'verify']
    for (const name of commands) expect(top.stdout).toMatch(new RegExp(`^  ${name} `, 'm'))
    const viaHelp = await cli(['help', 'status'])
    expect(viaHelp.code).toBe(0)
    expect(viaHelp.stdout).toContain('Usage: jobstore status')
    const helps = await Promise.all(commands.map((name) => cli([name, '--help'])))
    helps.forEach((help, i) => {
      expect(help.code, commands[i]).toBe(0)
      expect(help.stdout, commands[i]).toContain(`Usage: jobstore ${commands[i]}`)
      expect(help.stdout, commands[i]).toContain(`$ jobstore ${commands[i]}`)
    })
  })

  it('exits 2 on usage errors: no command, unknown command or option, missing argument, bad option value', async () => {
    const results = await Promise.all([
      cli([]),
      cli(['frobnicate']),
      cli(['status']),
      cli(['status', 'file:/tmp/x', '--no-such-option']),
      cli(['status', 'file:/tmp/x', 'extra-argument']),
      cli(['init', join(TMP, 'never'), '--retry-count', 'many']),
      cli(['logs', join(TMP, 'never'), '--interval', '-1']),
    ])
    for (const result of results) {
      expect(result.code, result.stderr).toBe(EXIT.USAGE)
      expect(result.stdout).toBe('')
    }
    expect(results[1]?.stderr).toContain("unknown command 'frobnicate'")
    expect(results[2]?.stderr).toContain("missing required argument 'locator'")
    expect(existsSync(join(TMP, 'never'))).toBe(false)
  })

  it('is the package bin: dist/src/cli/main.js, built from src/cli/main.ts, which has a node shebang', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> }
    expect(pkg.bin).toEqual({ jobstore: 'dist/src/cli/main.js' })
    expect(readFileSync(CLI_SOURCE, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true)
    // The build makes it executable, so that npx and the bin link can run it directly.
    expect(pkg.scripts['postbuild']).toContain("chmodSync('dist/src/cli/main.js', 0o755)")
  })

  it('the tests run the built bin, rebuilt from the current source (the vitest global setup builds dist/)', async () => {
    expect(existsSync(CLI_BIN)).toBe(true)
    expect(distIsStale()).toBe(false)
    const result = await cli(['--version'])
    expect(result.code, result.stderr).toBe(0)
  })

  it('prints the package version', async () => {
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version
    const result = await cli(['--version'])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe(version)
  })
})

describe.concurrent.each(LOCATORS)('jobstore CLI on the $name backend', (factory) => {
  it('init creates a store (exit 4 when one is there), --json gives the workflow ID and config', async ({ expect }) => {
    const locator = factory.make()
    const human = await cli(['init', locator, '--retry-count', '3'])
    expect(human.code, human.stderr).toBe(0)
    const workflowID = human.stdout.trim()
    expect(workflowID).toMatch(/^[0-9a-f-]{36}$/)
    expect(human.stderr).toContain('initialized a job store at')
    const store = await openJobStore(locator)
    expect((await store.resume()).workflowID).toBe(workflowID)
    expect(store.config.retryCount).toBe(3)

    const again = await cli(['init', locator])
    expect(again.code).toBe(EXIT.EXISTS)
    expect(again.stderr).toContain('already exists')
    const againJson = await cli(['init', locator, '--json'])
    expect(againJson.code).toBe(EXIT.EXISTS)
    expect(againJson.stdout).toBe('')
    expect(jsonErrorOf(againJson.stderr)).toEqual({
      error: { code: 'JOB_STORE_EXISTS', message: expect.stringContaining('already exists'), exitCode: EXIT.EXISTS },
    })

    const other = factory.make()
    const json = await cliJson<{ locator: string; workflowID: string; config: Record<string, unknown> }>(['init', other])
    expect(json.locator).toBe(other)
    expect(json.workflowID).toMatch(/^[0-9a-f-]{36}$/)
    expect(json.config).toMatchObject({ workflowID: json.workflowID, retryCount: 1, publicUrlExpirySeconds: 3600 })
  })

  it('status: workflow, root job, jobs by state, files and bytes, shared files, unread logs', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const json = await cliJson(['status', locator])
    expect(json).toEqual({
      locator,
      workflowID: f.store.config.workflowID,
      rootJob: { jobStoreID: f.root.jobStoreID, jobName: 'root', state: 'done' },
      jobs: { total: 4, byState: { done: 1, failed: 1, running: 1, unknown: 1 }, corrupt: 0 },
      files: { count: 2, bytes: 'hello world\n'.length + 'chunk of a'.length },
      sharedFiles: { count: 1 },
      logs: { unread: 2, read: 0 },
      failedJobs: [{ jobStoreID: f.failed.jobStoreID, jobName: 'count-b', state: 'failed', remainingTryCount: 0 }],
      unreachableJobs: [],
      reachableCorruptJobs: [],
    })
    const human = await cli(['status', locator])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain(f.store.config.workflowID)
    expect(human.stdout).toContain(`root job     ${f.root.jobStoreID} root (done)`)
    expect(human.stdout).toContain('jobs         4: done 1, failed 1, running 1, unknown 1')
    expect(human.stdout).toContain('files        2 (22 B)')
    expect(human.stdout).toContain('logs         2 unread, 0 read')
    expect(human.stderr).toBe('')
  })

  it('exits 3 for a missing store and 2 for an invalid locator', async ({ expect }) => {
    const missing = await cli(['status', factory.make()])
    expect(missing.code).toBe(EXIT.NOT_FOUND)
    expect(missing.stderr).toContain('no job store at')
    const missingJson = await cli(['status', factory.make(), '--json'])
    expect(missingJson.code).toBe(EXIT.NOT_FOUND)
    expect(jsonErrorOf(missingJson.stderr)).toMatchObject({ error: { code: 'NO_SUCH_JOB_STORE', exitCode: 3 } })
    for (const bad of ['nosuchscheme://bucket/x', '', 'file:']) {
      const result = await cli(['status', bad])
      expect(result.code, `${bad}: ${result.stderr}`).toBe(EXIT.USAGE)
      expect(result.stderr).toContain('jobstore: error:')
    }
    const invalidJson = await cli(['jobs', 'nosuchscheme://bucket/x', '--json'])
    expect(jsonErrorOf(invalidJson.stderr)).toMatchObject({ error: { code: 'INVALID_ARGUMENT', exitCode: 2 } })
  })

  it('jobs lists jobs with their state, filters by name and state', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    type Listing = { jobs: { jobStoreID: string; jobName: string; state: string; remainingTryCount: number | null }[]; corrupt: string[] }
    const all = await cliJson<Listing>(['jobs', locator])
    expect(all.corrupt).toEqual([])
    expect(all.jobs.map((j) => [j.jobName, j.state])).toEqual([
      ['count-a', 'running'],
      ['count-b', 'failed'],
      ['root', 'done'],
      ['total', 'unknown'],
    ])
    expect(all.jobs.find((j) => j.jobName === 'root')).toEqual({
      jobStoreID: f.root.jobStoreID,
      jobName: 'root',
      state: 'done',
      remainingTryCount: 3,
      version: 1,
      children: 2,
      followOns: 1,
      services: 0,
    })
    const byName = await cliJson<Listing>(['jobs', locator, '--name', 'count'])
    expect(byName.jobs.map((j) => j.jobName)).toEqual(['count-a', 'count-b'])
    const byState = await cliJson<Listing>(['jobs', locator, '--state', 'failed,unknown'])
    expect(byState.jobs.map((j) => j.jobName)).toEqual(['count-b', 'total'])
    const both = await cliJson<Listing>(['jobs', locator, '--state', 'running', '--state', 'done', '--name', 'count'])
    expect(both.jobs.map((j) => j.jobStoreID)).toEqual([f.running.jobStoreID])

    const human = await cli(['jobs', locator, '--state', 'failed'])
    expect(human.code).toBe(0)
    expect(human.stdout.split('\n')[0]).toMatch(/^JOB ID\s+STATE\s+TRIES\s+SUCCESSORS\s+NAME$/)
    expect(human.stdout).toMatch(new RegExp(`^${f.failed.jobStoreID}\\s+failed\\s+0\\s+0\\s+count-b$`, 'm'))
    expect(human.stdout).not.toContain('count-a')
  })

  it('show prints one job (exit 3 for an unknown job, 2 for a malformed ID)', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const json = await cliJson<{ state: string; job: JobDescription }>(['show', locator, f.running.jobStoreID])
    expect(json.state).toBe('running')
    expect(json.job).toMatchObject({ jobStoreID: f.running.jobStoreID, jobName: 'count-a', extra: { state: 'running', args: { n: 1 } } })
    const human = await cli(['show', locator, f.root.jobStoreID])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain(`job            ${f.root.jobStoreID}`)
    expect(human.stdout).toContain('state          done')
    expect(human.stdout).toContain(`children       ${f.running.jobStoreID} ${f.failed.jobStoreID}`)

    const unknownID = job(f.store, { jobName: 'never created' }).jobStoreID
    const unknown = await cli(['show', locator, unknownID, '--json'])
    expect(unknown.code).toBe(EXIT.NOT_FOUND)
    expect(jsonErrorOf(unknown.stderr)).toMatchObject({ error: { code: 'NO_SUCH_JOB' } })
    const malformed = await cli(['show', locator, '../../etc/passwd'])
    expect(malformed.code).toBe(EXIT.USAGE)
    expect(malformed.stderr).toContain('invalid job ID')
  })

  it('cat writes a file or a shared file to stdout (exit 3 when missing, 2 without a file)', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const file = await cli(['cat', locator, f.keptFile])
    expect(file.code).toBe(0)
    expect(file.stdout).toBe('hello world\n')
    const shared = await cli(['cat', locator, '--shared', 'rootJobReturnValue'])
    expect(shared.code).toBe(0)
    expect(shared.stdout).toBe('{"words":42}')

    await f.store.deleteFile(f.keptFile)
    const gone = await cli(['cat', locator, f.keptFile])
    expect(gone.code).toBe(EXIT.NOT_FOUND)
    expect(gone.stdout).toBe('')
    const noShared = await cli(['cat', locator, '--shared', 'nope'])
    expect(noShared.code).toBe(EXIT.NOT_FOUND)
    const neither = await cli(['cat', locator])
    expect(neither.code).toBe(EXIT.USAGE)
    const badName = await cli(['cat', locator, '--shared', '../config.json'])
    expect(badName.code).toBe(EXIT.USAGE)
  })

  it('import a local file (kept executable) or a shared file, export it back', async ({ expect }) => {
    const locator = factory.make()
    await makeFixture(locator)
    const dir = mkdtempSync(join(TMP, 'io-'))
    const source = join(dir, 'tool.sh')
    const body = '#!/bin/sh\necho hello\n'.repeat(1000)
    writeFileSync(source, body)
    chmodSync(source, 0o755)

    // A bare path, relative to the working directory.
    const imported = await cli(['import', locator, 'tool.sh'], { cwd: dir })
    expect(imported.code, imported.stderr).toBe(0)
    const fileID = imported.stdout.trim()
    expect(fileID).toMatch(/^_\/k\/[0-9a-z]{26}-tool\.sh$/)
    expect((await cli(['cat', locator, fileID])).stdout).toBe(body)

    const json = await cliJson<{ fileID: string; size: number; url: string }>(['import', locator, pathToFileURL(source).href])
    expect(json.size).toBe(body.length)
    expect(json.url).toBe(pathToFileURL(source).href)
    expect(json.fileID).not.toBe(fileID)

    const shared = await cliJson(['import', locator, source, '--shared', 'tool-config'])
    expect(shared).toEqual({ url: pathToFileURL(source).href, sharedFileName: 'tool-config' })
    expect((await cli(['cat', locator, '--shared', 'tool-config'])).stdout).toBe(body)

    const target = join(dir, 'exported.sh')
    const exported = await cli(['export', locator, fileID, target])
    expect(exported.code, exported.stderr).toBe(0)
    expect(readFileSync(target, 'utf8')).toBe(body)
    expect(statSync(target).mode & 0o100).toBe(0o100)
    const exportJson = await cliJson(['export', locator, json.fileID, pathToFileURL(join(dir, 'again.sh')).href])
    expect(exportJson).toEqual({ fileID: json.fileID, url: pathToFileURL(join(dir, 'again.sh')).href, size: body.length })

    // Over HTTP, through the same progress-counting path.
    const server = createServer((req, res) => {
      if (req.url === '/data/remote.csv') res.end('a,b\n1,2\n')
      else res.writeHead(404).end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const remote = await cliJson<{ fileID: string; size: number }>(['import', locator, `${base}/data/remote.csv`])
      expect(remote.fileID).toMatch(/-remote\.csv$/)
      expect(remote.size).toBe(8)
      expect((await cli(['cat', locator, remote.fileID])).stdout).toBe('a,b\n1,2\n')
      expect((await cli(['import', locator, `${base}/missing.csv`])).code).toBe(EXIT.NOT_FOUND)
    } finally {
      server.close()
    }

    const missingSource = await cli(['import', locator, join(dir, 'nope.txt')])
    expect(missingSource.code).toBe(EXIT.NOT_FOUND)
    const badScheme = await cli(['import', locator, 'gopher://example.org/x'])
    expect(badScheme.code).toBe(EXIT.USAGE)
    const badFileID = await cli(['export', locator, 'not-a-file-id', target])
    expect(badFileID.code).toBe(EXIT.USAGE)
    const store = await openJobStore(locator)
    await store.resume()
    await store.deleteFile(fileID)
    const missingFile = await cli(['export', locator, fileID, join(dir, 'x')])
    expect(missingFile.code).toBe(EXIT.NOT_FOUND)
    expect(existsSync(join(dir, 'x'))).toBe(false)
  })

  it('logs shows unread messages without taking them; --consume takes them; --all replays read ones; --json gives JSON lines', async ({ expect }) => {
    const locator = factory.make()
    await makeFixture(locator)
    const peeked = await cli(['logs', locator])
    expect(peeked.code).toBe(0)
    expect(peeked.stdout.split('\n').filter(Boolean).sort()).toEqual(['message one', 'message two'])
    // A look leaves the messages for the engine.
    expect((await cliJson(['status', locator]))['logs']).toEqual({ unread: 2, read: 0 })
    const first = await cli(['logs', locator, '--consume'])
    expect(first.code).toBe(0)
    expect(first.stdout.split('\n').filter(Boolean).sort()).toEqual(['message one', 'message two'])
    const second = await cli(['logs', locator, '--consume'])
    expect(second.code).toBe(0)
    expect(second.stdout).toBe('')
    expect(second.stderr).toContain('0 message(s)')
    expect((await cliJson(['status', locator]))['logs']).toEqual({ unread: 0, read: 2 })

    const store = await openJobStore(locator)
    await store.resume()
    await store.writeStatsAndLogging('message three')
    const all = await cli(['logs', locator, '--all', '--json'])
    expect(all.code).toBe(0)
    const lines = all.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { text: string; read: boolean; id: string })
    expect(lines.map((l) => l.text).sort()).toEqual(['message one', 'message three', 'message two'])
    expect(lines.filter((l) => !l.read).map((l) => l.text)).toEqual(['message three'])
    expect(new Set(lines.map((l) => l.id)).size).toBe(3)
  })

  it('logs --follow prints new messages as they come, until interrupted (exit 0)', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const run = startCli(['logs', locator, '--follow', '--interval', '0.1'])
    await waitFor(() => run.output().includes('message two'), 'the first messages')
    await f.store.writeStatsAndLogging('a later message')
    await waitFor(() => run.output().includes('a later message'), 'the later message')
    run.child.kill('SIGINT')
    const result = await run.done
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout.split('\n').filter(Boolean).sort()).toEqual(['a later message', 'message one', 'message two'])
  })

  it('clean prints what it repaired and removed', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const { store } = f
    // An unreachable job, a dangling child, a file to delete.
    const lost = job(store, { jobName: 'lost', extra: { state: 'pending' } })
    await store.create(lost)
    const stale = await store.writeFileStream((w) => void w.end('stale'), { basename: 'stale.txt' })
    const root = await store.load(f.root.jobStoreID)
    root.children.push(job(store, { jobName: 'never created' }).jobStoreID)
    root.filesToDelete = [stale]
    await store.update(root)

    const json = await cliJson<{
      rootJob: string
      reachableJobs: number
      deletedJobs: string[]
      repairedJobs: string[]
      deletedFiles: string[]
      releasedStatsClaims: number
      leftoversRemoved: number
      corruptJobs: string[]
    }>(['clean', locator])
    expect(json.rootJob).toBe(f.root.jobStoreID)
    expect(json.reachableJobs).toBe(4)
    expect(json.deletedJobs).toEqual([lost.jobStoreID])
    expect(json.repairedJobs).toContain(f.root.jobStoreID)
    expect(json.repairedJobs).toContain(f.failed.jobStoreID) // tries reset
    expect(json.deletedFiles).toEqual([stale])
    expect(json.corruptJobs).toEqual([])
    expect(await store.exists(lost.jobStoreID)).toBe(false)
    expect(await store.fileExists(stale)).toBe(false)
    expect((await store.load(f.root.jobStoreID)).children).toEqual([f.running.jobStoreID, f.failed.jobStoreID])

    const human = await cli(['clean', locator])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain(`root job ${f.root.jobStoreID} (root); 4 reachable jobs`)
    expect(human.stdout).toContain('nothing to repair')

    // Human output names what was removed.
    const lost2 = job(store, { jobName: 'lost again' })
    await store.create(lost2)
    const again = await cli(['clean', locator])
    expect(again.stdout).toContain(`removed job ${lost2.jobStoreID}`)
  })

  it('destroy refuses without --yes when there is no terminal, destroys with --yes', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const refused = await cli(['destroy', locator])
    expect(refused.code).toBe(EXIT.USAGE)
    expect(refused.stderr).toContain('--yes')
    expect((await cli(['status', locator])).code).toBe(0)

    const destroyed = await cliJson(['destroy', locator, '--yes'])
    expect(destroyed).toEqual({ locator, destroyed: true, existed: true, workflowID: f.store.config.workflowID })
    expect((await cli(['status', locator])).code).toBe(EXIT.NOT_FOUND)
    // Idempotent.
    const again = await cli(['destroy', locator, '-y'])
    expect(again.code).toBe(0)
    expect(again.stderr).toContain('no job store at')
  })

  it('copy migrates a whole store, resumes after an interruption, and refuses another workflow’s store', async ({ expect }) => {
    const source = factory.make()
    const f = await makeFixture(source)
    const copy = factory.make()
    type Report = { objects: number; copied: number; skipped: number; bytes: number; verified: number; workflowID: string }
    const first = await cliJson<Report>(['copy', source, copy])
    expect(first.workflowID).toBe(f.store.config.workflowID)
    expect(first.copied).toBe(first.objects)
    expect(first.skipped).toBe(0)
    expect(first.verified).toBe(first.objects)
    // 4 jobs, 2 files, 1 shared file, 2 log messages, the root job pointer.
    expect(first.objects).toBe(10)

    const srcStatus = await cliJson(['status', source])
    const dstStatus = await cliJson(['status', copy])
    expect({ ...dstStatus, locator: source }).toEqual(srcStatus)
    expect((await cli(['cat', copy, '--shared', 'rootJobReturnValue'])).stdout).toBe('{"words":42}')
    expect((await cli(['cat', copy, f.keptFile])).stdout).toBe('hello world\n')

    // An interrupted copy: objects missing from the destination. Running the copy again fills them in.
    const dst = await openJobStore(copy)
    await dst.resume()
    await dst.deleteFile(f.keptFile)
    await dst.delete(f.noState.jobStoreID)
    expect((await cli(['verify', copy])).code).toBe(EXIT.INTEGRITY)
    const resumed = await cliJson<Report>(['copy', source, copy])
    expect(resumed.copied).toBe(2)
    expect(resumed.skipped).toBe(first.objects - 2)
    expect(resumed.verified).toBe(first.objects)
    expect((await cli(['verify', copy])).code).toBe(0)
    expect((await cli(['cat', copy, f.keptFile])).stdout).toBe('hello world\n')
    const human = await cli(['copy', source, copy])
    expect(human.code).toBe(0)
    expect(human.stdout).toContain(`copied 0 objects (0 B), skipped ${first.objects} already there, verified ${first.objects}`)
    expect(human.stderr).toContain(`copying ${first.objects} objects to`)

    if (factory.deleteKey !== undefined) {
      // Interrupted before its last step: the destination's config is written last, so it is no store yet.
      factory.deleteKey(copy, 'config.json')
      expect((await cli(['status', copy])).code).toBe(EXIT.NOT_FOUND)
      const finished = await cliJson<Report>(['copy', source, copy])
      expect(finished).toMatchObject({ copied: 0, skipped: first.objects, verified: first.objects })
      expect((await cliJson(['status', copy]))['workflowID']).toBe(f.store.config.workflowID)
    }

    const other = factory.make()
    await makeFixture(other)
    const refused = await cli(['copy', source, other])
    expect(refused.code).toBe(EXIT.EXISTS)
    const missing = await cli(['copy', factory.make(), factory.make()])
    expect(missing.code).toBe(EXIT.NOT_FOUND)
    const same = await cli(['copy', source, source])
    expect(same.code).toBe(EXIT.USAGE)
  })

  it('verify passes on a healthy store and lists what is wrong in a damaged one (exit 6)', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const ok = await cli(['verify', locator])
    expect(ok.code, ok.stdout + ok.stderr).toBe(0)
    expect(ok.stdout).toContain('OK: 4 jobs, 2 files and 1 shared file (34 B) checked')
    expect(await cliJson(['verify', locator])).toEqual({
      ok: true,
      checked: { jobs: 4, files: 2, sharedFiles: 1, bytes: 34 },
      problems: [],
    })

    const { store } = f
    // A job whose file to delete and log file are gone.
    const gone1 = await store.writeFileStream((w) => void w.end('x'))
    const gone2 = await store.writeFileStream((w) => void w.end('y'))
    await store.deleteFile(gone1)
    await store.deleteFile(gone2)
    const withLog = job(store, { jobName: 'with-log', filesToDelete: [gone1], logJobStoreFileID: gone2 })
    await store.create(withLog)
    // A dangling child, reached from the root.
    const root = await store.load(f.root.jobStoreID)
    const neverCreated = job(store, { jobName: 'never created' }).jobStoreID
    root.children.push(withLog.jobStoreID, neverCreated)
    await store.update(root)
    // An unreachable job, and a cleanup file of a job that does not exist.
    const lost = job(store, { jobName: 'lost' })
    await store.create(lost)
    const ownerless = job(store, { jobName: 'ownerless' }).jobStoreID
    const orphan = await store.writeFileStream((w) => void w.end('orphan'), { jobStoreID: ownerless, cleanup: true })

    type Report = { ok: boolean; checked: Record<string, number>; problems: { kind: string; subject: string; message: string }[] }
    const damaged = await cli(['verify', locator, '--json'])
    expect(damaged.code).toBe(EXIT.INTEGRITY)
    const report = JSON.parse(damaged.stdout) as Report
    expect(report.ok).toBe(false)
    expect(report.problems.map((p) => [p.kind, p.subject])).toEqual([
      ['missing-file', withLog.jobStoreID],
      ['missing-file', withLog.jobStoreID],
      ['missing-job', f.root.jobStoreID],
      ['orphan-file', orphan],
      ['unreachable-job', lost.jobStoreID],
    ])
    expect(report.problems.map((p) => p.message).join('\n')).toContain(`lists job ${neverCreated} in children`)
    expect(jsonErrorOf(damaged.stderr)).toMatchObject({ error: { code: 'VERIFY_FAILED', exitCode: EXIT.INTEGRITY } })

    const human = await cli(['verify', locator])
    expect(human.code).toBe(EXIT.INTEGRITY)
    expect(human.stdout).toContain('5 problems found')
    expect(human.stdout).toMatch(new RegExp(`^orphan-file\\s+${orphan.replace(/[/.]/g, '\\$&')}\\s+cleanup file`, 'm'))
    expect(human.stdout).toContain('jobstore clean repairs: missing-file, missing-job, unreachable-job')

    // clean, then clean --orphan-files, repair all of it.
    expect((await cli(['clean', locator])).code).toBe(0)
    const afterClean = JSON.parse((await cli(['verify', locator, '--json'])).stdout) as Report
    expect(afterClean.problems.map((p) => p.kind)).toEqual(['orphan-file'])
    const orphans = await cliJson<{ deletedOrphanFiles: string[] }>(['clean', locator, '--orphan-files'])
    expect(orphans.deletedOrphanFiles).toEqual([orphan])
    expect((await cli(['verify', locator])).code).toBe(0)

    if (factory.truncateJob !== undefined) {
      // A job record cut in half by a crash or a bad copy.
      factory.truncateJob(locator, f.noState.jobStoreID)
      const corrupt = JSON.parse((await cli(['verify', locator, '--json'])).stdout) as Report
      expect(corrupt.problems).toEqual([
        { kind: 'corrupt-job', subject: f.noState.jobStoreID, message: expect.stringContaining('checksum mismatch: torn or overwritten') },
      ])
      const status = await cliJson<{ jobs: { corrupt: number } }>(['status', locator])
      expect(status.jobs.corrupt).toBe(1)
      const jobs = await cli(['jobs', locator])
      expect(jobs.stderr).toContain(`job ${f.noState.jobStoreID} has a corrupt record`)
      const show = await cli(['show', locator, f.noState.jobStoreID])
      expect(show.code).toBe(EXIT.INTEGRITY)
    }
  })

  it('a damaged record: verify lists it and calls nothing below it unreachable, status counts it, clean keeps it and what it may reach', async ({ expect }) => {
    const locator = factory.make()
    const f = await makeFixture(locator)
    const { store } = f
    const below = job(store, { jobName: 'below total' })
    await store.create(below)
    const noState = await store.load(f.noState.jobStoreID)
    noState.children = [below.jobStoreID]
    await store.update(noState)
    // Truncated bytes over the record, through the backend's own primitive (real storage, every backend).
    const damage = async (id: string): Promise<void> => {
      const raw = Buffer.from(JSON.stringify({ schemaVersion: 1, ...(await store.load(id)) }))
      const put = (store as unknown as { putObject(k: string, b: Buffer, o: object): Promise<string> }).putObject
      await put.call(store, `jobs/${id.slice(0, 2)}/${id}`, raw.subarray(0, raw.length >> 1), {})
    }
    await damage(f.noState.jobStoreID)

    type Report = { ok: boolean; problems: { kind: string; subject: string; message: string }[] }
    const verify = await cli(['verify', locator, '--json'])
    expect(verify.code).toBe(EXIT.INTEGRITY)
    expect((JSON.parse(verify.stdout) as Report).problems).toEqual([
      { kind: 'corrupt-job', subject: f.noState.jobStoreID, message: expect.stringContaining('clean keeps every job that might be below it') },
    ])
    const human = await cli(['verify', locator])
    expect(human.stdout).not.toContain('unreachable-job')
    expect(human.stdout).not.toContain('jobstore clean repairs')

    const status = await cliJson<{ jobs: { total: number; corrupt: number } }>(['status', locator])
    expect(status.jobs).toMatchObject({ total: 4, corrupt: 1 })

    const cleaned = await cliJson<{ deletedJobs: string[]; corruptJobs: string[]; keptUnreachableJobs: string[] }>(['clean', locator])
    expect(cleaned).toMatchObject({ deletedJobs: [], corruptJobs: [f.noState.jobStoreID], keptUnreachableJobs: [below.jobStoreID] })
    const cleanHuman = await cli(['clean', locator])
    expect(cleanHuman.stdout).toContain(`left corrupt job record ${f.noState.jobStoreID}`)
    expect(cleanHuman.stdout).toContain(`kept unreachable job ${below.jobStoreID}`)
    expect((await store.load(f.root.jobStoreID)).followOns).toEqual([f.noState.jobStoreID])
    expect(await store.exists(below.jobStoreID)).toBe(true)

    // Restored from a copy, nothing was lost.
    await store.update(noState)
    const restored = await cliJson<{ deletedJobs: string[]; reachableJobs: number; corruptJobs: string[] }>(['clean', locator])
    expect(restored).toMatchObject({ deletedJobs: [], reachableJobs: 5, corruptJobs: [] })
    expect((await cli(['verify', locator])).code).toBe(0)

    // A damaged root: status names it, clean refuses (exit 6) and changes nothing.
    await damage(f.root.jobStoreID)
    const rootStatus = await cliJson<{ rootJob: unknown; jobs: { corrupt: number } }>(['status', locator])
    expect(rootStatus.rootJob).toEqual({ jobStoreID: f.root.jobStoreID, jobName: null, state: 'corrupt' })
    expect(rootStatus.jobs.corrupt).toBe(1)
    expect((await cli(['status', locator])).stdout).toContain(`root job     ${f.root.jobStoreID} (corrupt record: run jobstore verify)`)
    const refused = await cli(['clean', locator, '--json'])
    expect(refused.code).toBe(EXIT.INTEGRITY)
    expect(jsonErrorOf(refused.stderr)).toMatchObject({ error: { code: 'CORRUPT_RECORD' } })
    const rootVerify = JSON.parse((await cli(['verify', locator, '--json'])).stdout) as Report
    expect(rootVerify.problems.map((p) => [p.kind, p.subject])).toEqual([['corrupt-job', f.root.jobStoreID]])
    for (const desc of [f.running, f.failed, f.noState, below]) expect(await store.exists(desc.jobStoreID)).toBe(true)
  })

  it('protected shared files: cat decrypts with the key; without it cat exits 7 and verify reports the file', async ({ expect }) => {
    const locator = factory.make()
    const keyPath = join(mkdtempSync(join(TMP, 'key-')), 'store.key')
    writeFileSync(keyPath, randomUUID() + randomUUID())
    expect((await cli(['init', locator, '--encryption-key-path', keyPath])).code).toBe(0)
    const store = await openJobStore(locator)
    await store.resume()
    await store.writeSharedFileStream('secret-settings', (w) => void w.end('{"token":"t"}'), { isProtected: true })
    expect((await cli(['cat', locator, '--shared', 'secret-settings'])).stdout).toBe('{"token":"t"}')
    expect((await cli(['verify', locator])).code).toBe(0)

    rmSync(keyPath)
    const cat = await cli(['cat', locator, '--shared', 'secret-settings'])
    expect(cat.code).toBe(EXIT.ENCRYPTION)
    expect(cat.stdout).toBe('')
    const verify = await cli(['verify', locator, '--json'])
    expect(verify.code).toBe(EXIT.INTEGRITY)
    expect((JSON.parse(verify.stdout) as { problems: unknown[] }).problems).toEqual([
      { kind: 'damaged-file', subject: 'secret-settings', message: expect.stringContaining('encryption key') },
    ])
  })

  it('never prints credentials from the environment, locators or URLs', async ({ expect }) => {
    const secret = 'supersecret-xyz'
    const env = { AWS_SECRET_ACCESS_KEY: secret, AZURE_STORAGE_CONNECTION_STRING: `AccountName=a;AccountKey=${secret}-az;` }
    // A file locator may carry a query string (it becomes part of the folder name): a store there really works.
    const queryLocator = `${fileFactory.make()}?token=${secret}`
    const results: CliResult[] = await Promise.all([
      cli(['status', `file://user:${secret}@localhost/tmp/x`], { env }),
      cli(['status', `nosuchscheme://key:${secret}@bucket/prefix`, '--json'], { env }),
      cli(['status', queryLocator], { env }),
      cli(['copy', `file://u:${secret}@host/a`, `s3://k:${secret}@bucket/b?sig=${secret}`], { env }),
    ])
    const created = await cli(['init', queryLocator], { env })
    expect(created.code).toBe(0)
    results.push(created)
    results.push(await cli(['status', queryLocator, '--json'], { env }))
    results.push(await cli(['verify', queryLocator], { env }))
    results.push(await cli(['import', queryLocator, `http://user:${secret}@127.0.0.1:9/data.csv?X-Amz-Signature=${secret}`], { env }))
    results.push(await cli(['export', queryLocator, `_/k/${'a'.repeat(26)}`, `file:///tmp/x?sig=${secret}`], { env }))
    results.push(await cli(['destroy', queryLocator, '--yes', '--json'], { env }))
    for (const result of results) {
      expect(result.stdout + result.stderr).not.toContain(secret)
      expect(result.stdout + result.stderr).not.toContain('supersecret')
    }
    // What they said instead.
    expect(results[0]?.code).toBe(EXIT.USAGE)
    expect(results[0]?.stderr).toContain('file://***@')
    expect(results[1]?.code).toBe(EXIT.USAGE)
    expect(results[2]?.code).toBe(EXIT.NOT_FOUND)
    expect(results[2]?.stderr).toContain('?…')
    expect(results[5]?.stdout).toContain('?…')
    expect(results[7]?.code, results[7]?.stderr).not.toBe(0)
    expect(results[8]?.code).toBe(EXIT.NOT_FOUND)
    expect(results[9]?.code).toBe(0)
  })
})

describe('jobstore destroy and init act only on stores', () => {
  /** A folder of someone else's with the names of a store's layout: files/, tmp/, jobs/, a config.json not ours. */
  function foreignFolder(): { dir: string; snapshot: () => string[] } {
    const dir = join(TMP, `not-a-store-${randomUUID()}`)
    const entries: Record<string, string> = {
      'config.json': '{"name":"my web app","port":8080}\n',
      'files/photo.jpg': 'jpeg bytes',
      'tmp/draft.txt': 'a draft',
      'jobs/cron.txt': 'every day at noon',
      'notes.txt': 'other things',
    }
    for (const [rel, text] of Object.entries(entries)) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true })
      writeFileSync(join(dir, rel), text)
    }
    const snapshot = (): string[] =>
      (readdirSync(dir, { recursive: true }) as string[]).sort().map((rel) => {
        const path = join(dir, rel)
        return statSync(path).isDirectory() ? `${rel}/` : `${rel}: ${readFileSync(path, 'utf8')}`
      })
    return { dir, snapshot }
  }

  it('destroy --yes on a folder that is not a job store deletes nothing and says so (exit 4, NOT_A_JOB_STORE)', async ({ expect }) => {
    const { dir, snapshot } = foreignFolder()
    const before = snapshot()
    const human = await cli(['destroy', dir, '--yes'])
    expect(human.code, human.stderr).toBe(EXIT.EXISTS)
    expect(human.stderr).toMatch(/not a job store/)
    expect(human.stderr).toMatch(/nothing was (deleted|changed)/)
    expect(snapshot()).toEqual(before)
    const json = await cli(['destroy', `file:${dir}`, '--yes', '--json'])
    expect(json.code).toBe(EXIT.EXISTS)
    expect(jsonErrorOf(json.stderr)).toMatchObject({ error: { code: 'NOT_A_JOB_STORE' } })
    expect(snapshot()).toEqual(before)
  })

  it('init on a folder that is not a job store refuses (exit 4, NOT_A_JOB_STORE) and writes nothing', async ({ expect }) => {
    const { dir, snapshot } = foreignFolder()
    const before = snapshot()
    const result = await cli(['init', dir])
    expect(result.code, result.stderr).toBe(EXIT.EXISTS)
    expect(result.stderr).toMatch(/not a job store/)
    expect(snapshot()).toEqual(before)
  })

  it('destroy removes a half-created store (marker, no config): what Toil users could not destroy', async ({ expect }) => {
    const locator = fileFactory.make()
    const store = await openJobStore(locator)
    await store.initialize()
    fileFactory.deleteKey?.(locator, 'config.json')
    expect((await cli(['status', locator])).code).toBe(EXIT.NOT_FOUND)
    const destroyed = await cliJson(['destroy', locator, '--yes'])
    expect(destroyed).toEqual({ locator, destroyed: true, existed: false, workflowID: null })
    expect(existsSync(locator.slice('file:'.length))).toBe(false)
  })
})

describe('jobstore copy between backends', () => {
  it('migrates a store around every backend (file → s3 → azure → gs → file), verified at each step', async ({ expect }) => {
    const byName = new Map(LOCATORS.map((factory) => [factory.name, factory]))
    const route = ['file', 's3', 'azure', 'gs', 'file'].map((name) => {
      const factory = byName.get(name)
      if (factory === undefined) throw new Error(`no ${name} backend in LOCATORS`)
      return factory.make()
    })
    const source = route[0] as string
    const f = await makeFixture(source)
    const srcStatus = await cliJson(['status', source])
    for (let step = 1; step < route.length; step++) {
      const from = route[step - 1] as string
      const to = route[step] as string
      const report = await cliJson<{ objects: number; copied: number; verified: number; workflowID: string }>(['copy', from, to])
      expect(report, `${from} → ${to}`).toMatchObject({ objects: 10, copied: 10, verified: 10, workflowID: f.store.config.workflowID })
      expect({ ...(await cliJson(['status', to])), locator: source }, `${from} → ${to}`).toEqual(srcStatus)
      expect((await cli(['verify', to])).code, `verify ${to}`).toBe(0)
      expect((await cli(['cat', to, f.keptFile])).stdout).toBe('hello world\n')
      expect((await cli(['cat', to, '--shared', 'rootJobReturnValue'])).stdout).toBe('{"words":42}')
    }
    // The round trip ends where it started: same jobs, same unread logs.
    const back = await openJobStore(route[route.length - 1] as string)
    await back.resume()
    expect((await back.load(f.running.jobStoreID)).extra).toEqual({ state: 'running', args: { n: 1 } })
    const logs: string[] = []
    await back.readStatsAndLogging((text) => void logs.push(text))
    expect(logs.sort()).toEqual(['message one', 'message two'])
  })
})

/**
 * What the CLI must never write raw in its human output: C0 controls but its own newlines, DEL, C1 controls (U+009B
 * is a CSI on some terminals), bidi controls and other invisible format characters, line and paragraph separators;
 * nor U+FFFD, which is what a lone surrogate becomes on its way out (none of the inputs below holds one).
 */
const RAW_UNSAFE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\ufffd]/u

function expectTerminalSafe(result: CliResult, what: string): void {
  for (const [stream, text] of [
    ['stdout', result.stdout],
    ['stderr', result.stderr],
  ] as const) {
    const bad = RAW_UNSAFE.exec(text)
    const found =
      bad === null ? null : `U+${(bad[0].codePointAt(0) as number).toString(16)} in ${JSON.stringify(text.slice(Math.max(0, bad.index - 40), bad.index + 40))}`
    expect(found, `${what}: ${stream}`).toBeNull()
  }
}

/** The lines of a text, without the empty string after its last newline. */
function linesOf(text: string): string[] {
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}

describe('jobstore CLI: terminal safety (file backend)', () => {
  // Names that try to drive the terminal or forge output: escape sequences (clear screen, retitle the window), a
  // newline followed by a made-up row of `jobs`, a carriage return, a bidi override, a C1 CSI, DEL, a lone
  // surrogate, invisible characters, a tag character, and a literal backslash sequence that must not pass for an
  // escape.
  const ESC_NAME = 'evil\x1b[2J\x1b]0;pwned\x07'
  const FAKE_ROW = `legit\n${'0'.repeat(26)}  done   1      0           forged`
  const CR_NAME = 'safe\rFORGED'
  const MISC_NAME = 'tab\there del\x7f lone\ud800 zw\u200b ls\u2028 iso\u2066x\u2069 tag\u{e0041} back\\x1b'
  const LOST_NAME = 'lost\x1b[2J'
  const STATE = 'running\x1b[2J'
  /** The same, as the CLI shows them. */
  const SHOWN = {
    esc: String.raw`evil\x1b[2J\x1b]0;pwned\x07`,
    fakeRow: String.raw`legit\n00000000000000000000000000  done   1      0           forged`,
    cr: String.raw`safe\rFORGED`,
    misc: String.raw`tab\there del\x7f lone\ud800 zw\u200b ls\u2028 iso\u2066x\u2069 tag\u{e0041} back\\x1b`,
    lost: String.raw`lost\x1b[2J`,
    state: String.raw`running\x1b[2J`,
  }

  it('escapes job names, unit and display names, commands, states and locators in init, jobs, status, show, verify and clean; --json stays exact', async ({ expect }) => {
    const locator = `file:${join(TMP, `store-${randomUUID()}-\x1b[31m\u202e`)}`
    const shownLocator = `${locator.slice(0, -'\x1b[31m\u202e'.length)}${String.raw`\x1b[31m\u202e`}`
    const init = await cli(['init', locator])
    expect(init.code, init.stderr).toBe(0)
    expectTerminalSafe(init, 'init')
    expect(init.stderr).toContain(`initialized a job store at ${shownLocator}`)

    const store = await openJobStore(locator)
    await store.resume()
    const root = job(store, {
      jobName: ESC_NAME,
      unitName: 'unit\u009b31m',
      displayName: 'invoice\u202etxt.exe',
      command: 'rm -rf ~ \x1b[8mhidden\x1b[0m',
      extra: { state: STATE, note: 'c1\u009b bidi\u202e del\x7f' },
    })
    const forger = job(store, { jobName: FAKE_ROW, extra: { state: 'done' } })
    const cr = job(store, { jobName: CR_NAME })
    const misc = job(store, { jobName: MISC_NAME })
    const lost = job(store, { jobName: LOST_NAME })
    root.children = [forger.jobStoreID, cr.jobStoreID, misc.jobStoreID]
    for (const desc of [forger, cr, misc, lost]) await store.create(desc)
    await store.createRootJob(root)

    const [jobs, jobsJson, status, statusJson, show, showJson, verify, verifyJson] = await Promise.all([
      cli(['jobs', locator]),
      cli(['jobs', locator, '--json']),
      cli(['status', locator]),
      cli(['status', locator, '--json']),
      cli(['show', locator, root.jobStoreID]),
      cli(['show', locator, root.jobStoreID, '--json']),
      cli(['verify', locator]),
      cli(['verify', locator, '--json']),
    ])
    for (const [what, result] of Object.entries({ jobs, jobsJson, status, statusJson, show, showJson, verify, verifyJson })) {
      expectTerminalSafe(result, what)
    }

    // jobs: one row per job, no forged row, the columns aligned on the escaped text.
    expect(jobs.code, jobs.stderr).toBe(0)
    const [header, ...rows] = linesOf(jobs.stdout)
    expect(rows).toHaveLength(5)
    for (const row of rows) expect(row).toMatch(/^[0-9a-hjkmnp-tv-z]{26}  /)
    const nameColumn = (header as string).indexOf('NAME')
    const stateColumn = (header as string).indexOf('STATE')
    expect(rows.map((row) => row.slice(nameColumn)).sort()).toEqual(
      [`${SHOWN.esc} (invoice\\u202etxt.exe)`, SHOWN.fakeRow, SHOWN.cr, SHOWN.misc, SHOWN.lost].sort(),
    )
    expect(rows.find((row) => row.startsWith(root.jobStoreID))?.slice(stateColumn)).toMatch(
      new RegExp(`^${SHOWN.state.replace(/[\\[\]]/g, '\\$&')} +2 +3 +`),
    )
    // --json: the exact strings.
    expect(jobsJson.code).toBe(0)
    const listing = JSON.parse(jobsJson.stdout) as { jobs: { jobStoreID: string; jobName: string; displayName?: string; state: string }[] }
    expect(listing.jobs.map((j) => j.jobName).sort()).toEqual([ESC_NAME, FAKE_ROW, CR_NAME, MISC_NAME, LOST_NAME].sort())
    expect(listing.jobs.find((j) => j.jobStoreID === root.jobStoreID)).toMatchObject({ displayName: 'invoice\u202etxt.exe', state: STATE })

    // status: the locator and the root job.
    expect(status.code, status.stderr).toBe(0)
    expect(status.stdout).toContain(`job store    ${shownLocator}\n`)
    expect(status.stdout).toContain(`root job     ${root.jobStoreID} ${SHOWN.esc} (${SHOWN.state})\n`)
    expect(JSON.parse(statusJson.stdout)).toMatchObject({ locator, rootJob: { jobStoreID: root.jobStoreID, jobName: ESC_NAME, state: STATE } })

    // show: every field; `extra` as JSON whose strings are JSON-escaped.
    expect(show.code, show.stderr).toBe(0)
    for (const line of [
      `name           ${SHOWN.esc}`,
      String.raw`unit           unit\x9b31m`,
      String.raw`display name   invoice\u202etxt.exe`,
      String.raw`command        rm -rf ~ \x1b[8mhidden\x1b[0m`,
      String.raw`state          running\x1b[2J`,
      String.raw`                 "state": "running\u001b[2J",`,
      String.raw`                 "note": "c1\u009b bidi\u202e del\u007f"`,
    ]) {
      expect(linesOf(show.stdout)).toContain(line)
    }
    expect(JSON.parse(showJson.stdout)).toMatchObject({
      state: STATE,
      job: {
        jobName: ESC_NAME,
        unitName: 'unit\u009b31m',
        displayName: 'invoice\u202etxt.exe',
        command: 'rm -rf ~ \x1b[8mhidden\x1b[0m',
        extra: { state: STATE, note: 'c1\u009b bidi\u202e del\x7f' },
      },
    })

    // verify: its problems quote the job names.
    expect(verify.code).toBe(EXIT.INTEGRITY)
    expect(verify.stdout).toContain(`job ${lost.jobStoreID} (${SHOWN.lost}) is not reachable from the root job`)
    expect(verify.stderr).toContain(`verifying ${shownLocator}`)
    expect((JSON.parse(verifyJson.stdout) as { problems: { message: string }[] }).problems.map((p) => p.message)).toEqual([
      `job ${lost.jobStoreID} (${LOST_NAME}) is not reachable from the root job ${root.jobStoreID}`,
    ])

    const clean = await cli(['clean', locator])
    expectTerminalSafe(clean, 'clean')
    expect(clean.code, clean.stderr).toBe(0)
    expect(clean.stdout).toContain(`root job ${root.jobStoreID} (${SHOWN.esc}); 4 reachable jobs`)
    expect(clean.stdout).toContain(`removed job ${lost.jobStoreID}`)
    expect(clean.stderr).toContain(`cleaning ${shownLocator}`)
  })

  it('logs: escapes each message, indents its continuation lines so that no message forges another; --json stays exact', async ({ expect }) => {
    const locator = fileFactory.make()
    const store = await openJobStore(locator)
    await store.initialize()
    const messages = [
      '\x1b[2J\x1b]0;pwned\x07',
      'legit message\nforged message',
      'line one\r\nline two\twith a tab\u202e',
      '  starts with spaces, as a continuation would',
      '\nstarts with a newline',
    ]
    for (const message of messages) await store.writeStatsAndLogging(message)
    const [human, json] = await Promise.all([cli(['logs', locator]), cli(['logs', locator, '--json'])])
    expectTerminalSafe(human, 'logs')
    expectTerminalSafe(json, 'logs --json')
    expect(human.code, human.stderr).toBe(0)
    // A message starts on a line of its own; its further lines are indented, and a message that starts with a space
    // shows it escaped: every line that is not indented starts a message.
    const shown: string[][] = []
    for (const line of linesOf(human.stdout)) {
      if (line.startsWith('  ')) (shown[shown.length - 1] as string[]).push(line)
      else shown.push([line])
    }
    expect(shown.map((lines) => lines.join('\n')).sort()).toEqual(
      [
        String.raw`\x1b[2J\x1b]0;pwned\x07`,
        'legit message\n  forged message',
        String.raw`line one\r` + '\n' + String.raw`  line two\twith a tab\u202e`,
        String.raw`\x20 starts with spaces, as a continuation would`,
        '\n  starts with a newline',
      ].sort(),
    )
    expect(json.code, json.stderr).toBe(0)
    expect(linesOf(json.stdout).map((line) => (JSON.parse(line) as { text: string }).text).sort()).toEqual([...messages].sort())
  })

  it('escapes user input quoted in errors (IDs, names, locators, commands, file names) and in confirmations; --json errors stay exact', async ({ expect }) => {
    const locator = fileFactory.make()
    await makeFixture(locator)
    const badID = 'x\x1b[2J\u202e\u009b\nforged'
    const badCommand = 'x\x1b]0;pwned\x07\nforged'
    const badShared = 'a\u009bb\u202e'
    const missingStore = `file:${join(TMP, 'none-\x1b[2J\u202e\nforged')}`
    const dir = mkdtempSync(join(TMP, 'names-'))
    const oddFile = join(dir, 'data-\x1b[2J\u202e.txt')
    writeFileSync(oddFile, 'hello')
    const results = await Promise.all([
      cli(['show', locator, badID]),
      cli(['show', locator, badID, '--json']),
      cli([badCommand]),
      cli(['status', missingStore]),
      cli(['status', missingStore, '--json']),
      cli(['cat', locator, '--shared', badShared]),
      cli(['import', locator, oddFile]),
      cli(['import', locator, join(dir, 'missing-\x1b[2J\u202e.txt')]),
      cli(['jobs', locator, '--state', 'x\x1b[2J', '--name', '\u202e']),
    ])
    const [show, showJson, command, status, statusJson, cat, imported, missing, filtered] = results
    results.forEach((result, i) => expectTerminalSafe(result, `command ${i}`))
    for (const result of results) {
      // A newline in the user's input never starts a line of the CLI's output.
      for (const line of linesOf(result.stderr)) expect(line).not.toMatch(/^forged/)
    }

    expect(show?.code).toBe(EXIT.USAGE)
    expect(show?.stderr).toContain('invalid job ID')
    expect(show?.stderr).toContain(String.raw`\u202e\x9b`)
    let message = ''
    try {
      checkJobId(badID)
    } catch (err) {
      message = (err as Error).message
    }
    expect(jsonErrorOf(showJson?.stderr ?? '')).toEqual({ error: { code: 'INVALID_ARGUMENT', message, exitCode: EXIT.USAGE } })

    expect(command?.code).toBe(EXIT.USAGE)
    expect(command?.stderr).toContain(String.raw`unknown command 'x\x1b]0;pwned\x07\nforged'`)

    expect(status?.code).toBe(EXIT.NOT_FOUND)
    expect(status?.stderr).toContain(String.raw`none-\x1b[2J\u202e\nforged`)
    expect((jsonErrorOf(statusJson?.stderr ?? '') as { error: { message: string } }).error.message).toContain('none-\x1b[2J\u202e\nforged')

    expect(cat?.code).toBe(EXIT.USAGE)
    expect(cat?.stderr).toContain(String.raw`\x9bb\u202e`)

    // A file ID carries its basename %-encoded; the confirmation shows the source URL, escaped all the same.
    expect(imported?.code, imported?.stderr).toBe(0)
    expect(imported?.stdout).toMatch(/^_\/k\/[0-9a-z]{26}-data-%1B%5B2J%E2%80%AE\.txt\n$/)
    expect(imported?.stderr).toContain('imported file://')
    expect(missing?.code).toBe(EXIT.NOT_FOUND)
    // A state no job has is a usage error quoting it, escaped.
    expect(filtered?.code).toBe(EXIT.USAGE)
    expect(filtered?.stdout).toBe('')
    expect(filtered?.stderr).toContain(String.raw`unknown state x\x1b[2J for --state`)
  })
})

describe('jobstore CLI: hostile environment (file backend)', () => {
  it('import over HTTP: a stalled or cut body fails in words with the timeouts given (exit 1); nothing is stored', async ({ expect }) => {
    const locator = fileFactory.make()
    await makeFixture(locator)
    const store = await openJobStore(locator)
    await store.resume()
    const filesBefore: string[] = []
    for await (const file of store.files()) filesBefore.push(file.fileID)
    const server = createNetServer((socket) => {
      socket.on('error', () => {})
      socket.once('data', (request: Buffer) => {
        const head = 'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello'
        if (request.toString().startsWith('GET /stall')) socket.write(head)
        else socket.end(head)
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const stalled = await cli(['import', locator, `${base}/stall.txt`, '--idle-timeout', '0.3', '--max-retry-time', '0', '--no-progress'])
      expect(stalled.code, stalled.stderr).toBe(EXIT.GENERIC)
      expect(stalled.stderr).toMatch(/sent nothing for 0\.3 s after 5 of 12 bytes/)
      const cut = await cli(['import', locator, `${base}/cut.txt`, '--shared', 'rootJobReturnValue', '--json'])
      expect(cut.code).toBe(EXIT.GENERIC)
      expect(jsonErrorOf(cut.stderr)).toEqual({
        error: { code: 'URL_TRANSFER', message: expect.stringContaining('closed the connection after 5 of 12 bytes'), exitCode: EXIT.GENERIC },
      })
      expect((await cli(['import', locator, `${base}/x`, '--idle-timeout', '0'])).code).toBe(EXIT.USAGE)
    } finally {
      server.close()
    }
    const filesAfter: string[] = []
    for await (const file of store.files()) filesAfter.push(file.fileID)
    expect(filesAfter.sort()).toEqual(filesBefore.sort())
    expect((await cli(['cat', locator, '--shared', 'rootJobReturnValue'])).stdout).toBe('{"words":42}')
  })

  it('export refuses a folder and a FIFO (exit 2, nothing written); file:./x counts from the working folder', async ({ expect }) => {
    const locator = fileFactory.make()
    const { keptFile } = await makeFixture(locator)
    const dir = mkdtempSync(join(TMP, 'dest-'))
    mkdirSync(join(dir, 'folder'))
    execFileSync('mkfifo', [join(dir, 'fifo')])
    for (const target of ['folder', 'fifo']) {
      const refused = await cli(['export', locator, keptFile, target], { cwd: dir })
      expect(refused.code, refused.stderr).toBe(EXIT.USAGE)
      expect(refused.stderr).toContain(join(dir, target))
      expect(refused.stderr).toMatch(/regular files only/)
      expect(refused.stderr).not.toContain('.partial')
    }
    expect(readdirSync(join(dir, 'folder'))).toEqual([])
    expect(statSync(join(dir, 'fifo')).isFIFO()).toBe(true)

    const exported = await cli(['export', locator, keptFile, 'file:./out.txt'], { cwd: dir })
    expect(exported.code, exported.stderr).toBe(0)
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('hello world\n')
    const imported = await cli(['import', locator, 'file:out.txt'], { cwd: dir })
    expect(imported.code, imported.stderr).toBe(0)
    expect((await cli(['cat', locator, imported.stdout.trim()])).stdout).toBe('hello world\n')
  })

  it('init --encryption-key-path: a missing or 3-byte key exits 7 and creates nothing; a relative one is stored absolute', async ({ expect }) => {
    const dir = mkdtempSync(join(TMP, 'keys-'))
    writeFileSync(join(dir, 'short.key'), 'abc')
    writeFileSync(join(dir, 'good.key'), randomUUID() + randomUUID())
    for (const key of ['missing.key', 'short.key']) {
      const locator = fileFactory.make()
      const refused = await cli(['init', locator, '--encryption-key-path', key], { cwd: dir })
      expect(refused.code, refused.stderr).toBe(EXIT.ENCRYPTION)
      expect(refused.stderr).toContain(join(dir, key))
      expect(existsSync(locator.slice('file:'.length))).toBe(false)
      expect((await cli(['status', locator])).code).toBe(EXIT.NOT_FOUND)
    }
    const locator = fileFactory.make()
    const json = await cliJson<{ config: { encryptionKeyPath: string } }>(['init', locator, '--encryption-key-path', 'good.key'], { cwd: dir })
    expect(json.config.encryptionKeyPath).toBe(join(dir, 'good.key'))
    const store = await openJobStore(locator)
    expect((await store.resume()).encryptionKeyPath).toBe(join(dir, 'good.key'))
  })
})

describe('jobstore CLI building blocks', () => {
  it('maps every error code to its documented exit code', () => {
    expect(EXIT_CODE_BY_ERROR_CODE).toEqual({
      JOBSTORE_ERROR: 1,
      INVALID_ARGUMENT: 2,
      INVALID_IMPORT_EXPORT_URL: 2,
      NO_SUCH_JOB_STORE: 3,
      NO_SUCH_JOB: 3,
      NO_SUCH_FILE: 3,
      JOB_STORE_EXISTS: 4,
      CONCURRENT_MODIFICATION: 5,
      INTEGRITY: 6,
      CORRUPT_RECORD: 6,
      ENCRYPTION: 7,
      UNSUPPORTED: 8,
      ABORTED: 130,
      URL_TRANSFER: 1,
      NOT_A_JOB_STORE: 4,
      UNSAFE_STORE_PATH: 6,
      CONDITIONAL_WRITES_UNSUPPORTED: 8,
    })
    expect(exitCodeFor(new Error('boom'))).toBe(1)
    expect(exitCodeFor(Object.assign(new Error('closed'), { code: 'EPIPE' }))).toBe(0)
    const docs = readFileSync(join(REPO, 'docs', 'cli.md'), 'utf8')
    for (const [code, exit] of Object.entries(EXIT_CODE_BY_ERROR_CODE)) {
      expect(docs, code).toMatch(new RegExp(`^\\| ${exit} \\|.*${code}`, 'm'))
    }
  })

  it('derives a job state from extra.state, else the try count', () => {
    expect(jobState(newJobDescription({ jobName: 'a', extra: { state: 'running' } }))).toBe('running')
    expect(jobState(newJobDescription({ jobName: 'a', remainingTryCount: 0, extra: { state: 'done' } }))).toBe('done')
    expect(jobState(newJobDescription({ jobName: 'a', remainingTryCount: 0 }))).toBe('failed')
    expect(jobState(newJobDescription({ jobName: 'a', remainingTryCount: 2, extra: { state: 7 } }))).toBe('unknown')
  })

  it('redacts user info, query strings, connection-string keys and secret environment values', () => {
    const redactor = new Redactor({ AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG', HOME: '/home/somebody-long' })
    redactor.addArgument('s3://AKIDEXAMPLE:p4ss-word@bucket/prefix')
    redactor.addArgument('https://host/x?sig=abcdef123&se=2030')
    const text = redactor.redact(
      'at s3://AKIDEXAMPLE:p4ss-word@bucket/prefix, /tmp/abcdef123/x, key wJalrXUtnFEMI/K7MDENG, AccountKey=Zm9vYmFy; home /home/somebody-long https://h/p?token=zz',
    )
    expect(text).not.toMatch(/p4ss-word|abcdef123|wJalrXUtnFEMI|Zm9vYmFy|token=zz/)
    expect(text).toContain('/home/somebody-long')
    expect(redactor.locator('file:/tmp/x')).toBe('file:/tmp/x')
    expect(redactor.locator('https://host/x?sig=abcdef123')).toBe('https://host/x?…')
  })

  it('draws progress with rate and ETA on a terminal, and nothing elsewhere', () => {
    const capture = (isTTY: boolean) => {
      let text = ''
      const stream = Object.assign(
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            text += chunk.toString('utf8')
            callback()
          },
        }),
        { isTTY, columns: 120 },
      )
      let now = 0
      const progress = createProgress({ stream, enabled: true, label: 'copy', unit: 'items', now: () => now })
      now = 2000
      progress.update({ phase: 'copy', done: 0, total: 10, bytes: 0 })
      now = 4000
      progress.update({ phase: 'copy', done: 5, total: 10, bytes: 4 * 1024 * 1024 })
      progress.stop()
      return text
    }
    const tty = capture(true)
    expect(tty).toContain('copy: copy [')
    expect(tty).toContain('5/10')
    expect(tty).toContain('2.0 MiB/s')
    expect(tty).toContain('ETA 2s')
    expect(capture(false)).toBe('')
  })
})
