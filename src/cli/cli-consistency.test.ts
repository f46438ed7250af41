/**
 * The CLI as a new user meets it (issue 15): ID prefixes, errors in words a user knows, `--json` everywhere (usage
 * errors and the top level), the documented error codes, options only where they act, usage errors for unknown
 * values and conflicting flags, `import --job` on a missing job, `export --no-clobber`. File backend: the
 * behaviour tested here is the CLI's, the same on every backend.
 */
import { randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { newJobDescription, openJobStore, type AbstractJobStore, type JobDescription } from '../index.js'
import { CLI_ERROR_CODES, EXIT, EXIT_CODE_BY_ERROR_CODE } from './exit-codes.js'
import { EXIT_CODE_HELP } from './program.js'
import { REPO, cli, cliJson, jsonErrorOf } from './test-cli.js'

const TMP = mkdtempSync(join(tmpdir(), 'jobstore-cli-consistency-'))
afterAll(() => rmSync(TMP, { recursive: true, force: true }))
vi.setConfig({ testTimeout: 300_000 })

const newLocator = (): string => `file:${join(TMP, `store-${randomUUID()}`)}`

async function newStore(): Promise<{ store: AbstractJobStore; locator: string }> {
  const locator = newLocator()
  const store = await openJobStore(locator)
  await store.initialize()
  return { store, locator }
}

async function createJob(store: AbstractJobStore, jobName: string): Promise<JobDescription & { jobStoreID: string }> {
  const desc = newJobDescription({ jobName })
  store.assignID(desc)
  await store.create(desc)
  return desc as JobDescription & { jobStoreID: string }
}

/** The shortest start of `id` that no other of `all` has. */
function shortestUniquePrefix(id: string, all: readonly string[]): string {
  for (let n = 1; n <= id.length; n++) {
    const prefix = id.slice(0, n)
    if (all.filter((other) => other.startsWith(prefix)).length === 1) return prefix
  }
  return id
}

/** Jobs until two IDs share their first character (at most 33, by pigeonhole): an ambiguous prefix. */
async function jobsWithSharedStart(store: AbstractJobStore): Promise<{ ids: string[]; shared: string }> {
  const ids: string[] = []
  for (;;) {
    const { jobStoreID } = await createJob(store, `job-${ids.length}`)
    const twin = ids.find((id) => id[0] === jobStoreID[0])
    ids.push(jobStoreID)
    if (twin !== undefined) return { ids, shared: jobStoreID[0] as string }
  }
}

describe('jobstore CLI: IDs by unique prefix', () => {
  it('show takes a unique start of a job ID; an ambiguous one is a usage error naming the candidates, an unknown one not found', async () => {
    const { store, locator } = await newStore()
    const { ids, shared } = await jobsWithSharedStart(store)
    const target = ids[ids.length - 1] as string
    const prefix = shortestUniquePrefix(target, ids)
    const shown = await cliJson<{ job: JobDescription }>(['show', locator, prefix])
    expect(shown.job.jobStoreID).toBe(target)

    const ambiguous = await cli(['show', locator, shared])
    expect(ambiguous.code, ambiguous.stderr).toBe(EXIT.USAGE)
    expect(ambiguous.stdout).toBe('')
    const candidates = ids.filter((id) => id.startsWith(shared)).sort()
    for (const id of candidates.slice(0, 10)) expect(ambiguous.stderr).toContain(id)
    expect(ambiguous.stderr).toContain('ambiguous')
    const ambiguousJson = await cli(['show', locator, shared, '--json'])
    expect(jsonErrorOf(ambiguousJson.stderr)).toMatchObject({ error: { code: 'AMBIGUOUS_ID', exitCode: EXIT.USAGE } })

    // A start no job has: not found, in words.
    const free = '0123456789abcdefghjkmnpqrstvwxyz'.split('').find((c) => !ids.some((id) => id.startsWith(c))) ?? `${target}`
    const unknownPrefix = free === target ? `${target.slice(0, 25)}${target[25] === '0' ? '1' : '0'}` : free
    const unknown = await cli(['show', locator, unknownPrefix, '--json'])
    expect(unknown.code, unknown.stderr).toBe(EXIT.NOT_FOUND)
    expect(jsonErrorOf(unknown.stderr)).toMatchObject({ error: { code: 'NO_SUCH_JOB' } })
  })

  it('an ambiguous prefix lists at most 10 candidates and says how many more', async () => {
    const { store, locator } = await newStore()
    const owner = await createJob(store, 'owner')
    // Files of one job share the owner's ID as their start.
    const files: string[] = []
    for (let i = 0; i < 12; i++) files.push(await store.writeFileStream((w) => void w.end(`f${i}`), { jobStoreID: owner.jobStoreID, cleanup: true }))
    const result = await cli(['cat', locator, owner.jobStoreID.slice(0, 6)])
    expect(result.code, result.stderr).toBe(EXIT.USAGE)
    expect(result.stdout).toBe('')
    expect(files.filter((id) => result.stderr.includes(id))).toHaveLength(10)
    expect(result.stderr).toContain('and 2 more')
  })

  it('cat, export and import --job take unique prefixes of file and job IDs', async () => {
    const { store, locator } = await newStore()
    const owner = await createJob(store, 'owner')
    const a = await store.writeFileStream((w) => void w.end('content of a'), { basename: 'a.txt' })
    const b = await store.writeFileStream((w) => void w.end('content of b'), { basename: 'b.txt' })
    const prefixA = shortestUniquePrefix(a, [a, b])
    expect((await cli(['cat', locator, prefixA])).stdout).toBe('content of a')
    const dir = mkdtempSync(join(TMP, 'export-'))
    const exported = await cliJson<{ fileID: string }>(['export', locator, prefixA, join(dir, 'out.txt')])
    expect(exported.fileID).toBe(a)
    expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('content of a')
    const unknownFile = await cli(['cat', locator, '_/k/zzzzzz', '--json'])
    expect(unknownFile.code).toBe(EXIT.NOT_FOUND)
    expect(jsonErrorOf(unknownFile.stderr)).toMatchObject({ error: { code: 'NO_SUCH_FILE' } })

    writeFileSync(join(dir, 'in.txt'), 'imported')
    const imported = await cliJson<{ fileID: string }>(['import', locator, join(dir, 'in.txt'), '--job', owner.jobStoreID.slice(0, 5)])
    expect(imported.fileID.startsWith(`${owner.jobStoreID}/`)).toBe(true)
  })

  it('errors about IDs are in words a user knows: no internal function names', async () => {
    const { locator } = await newStore()
    const results = await Promise.all([
      cli(['show', locator, 'NOT-AN-ID']),
      cli(['cat', locator, '../../etc/passwd']),
      cli(['export', locator, 'x/y/z', join(TMP, 'never')]),
      cli(['import', locator, join(TMP, 'never'), '--job', 'Not/A/Job']),
    ])
    for (const result of results) {
      expect(result.code, result.stderr).toBe(EXIT.USAGE)
      expect(result.stderr).not.toMatch(/assignID|minted|\w\(\)/)
    }
    expect(results[0]?.stderr).toContain('invalid job ID')
    expect(results[0]?.stderr).toContain('26 characters')
    expect(results[1]?.stderr).toContain('invalid file ID')
  })

  it('no message of the library that reaches the CLI names an internal function (src/ids.ts, src/errors.ts)', () => {
    for (const file of ['src/ids.ts', 'src/errors.ts']) {
      const text = readFileSync(join(REPO, file), 'utf8')
      const messages = [...text.matchAll(/(?:Error|super)\(\s*`([^`]*)`/g)].map((m) => m[1] as string)
      expect(messages.length, file).toBeGreaterThan(0)
      for (const message of messages) expect(message, file).not.toMatch(/assignID|minted|[a-zA-Z]\(\)/)
    }
  })
})

describe('jobstore CLI: --json everywhere', () => {
  it('--json before the command works as after it', async () => {
    const { locator } = await newStore()
    const before = await cli(['--json', 'status', locator])
    const after = await cli(['status', locator, '--json'])
    expect(before.code, before.stderr).toBe(0)
    expect(JSON.parse(before.stdout)).toEqual(JSON.parse(after.stdout))
    const missing = await cli(['--json', 'status', join(TMP, 'nothing-here')])
    expect(missing.code).toBe(EXIT.NOT_FOUND)
    expect(jsonErrorOf(missing.stderr)).toMatchObject({ error: { code: 'NO_SUCH_JOB_STORE', exitCode: EXIT.NOT_FOUND } })
  })

  it('usage errors are one JSON line on stderr with --json, wherever it is given', async () => {
    const { locator } = await newStore()
    const cases: (readonly string[])[] = [
      ['--json', 'frobnicate'],
      ['status', '--json'],
      ['--json'],
      ['status', locator, '--no-such-option', '--json'],
      ['--json', 'init', join(TMP, 'never'), '--retry-count', 'many'],
      ['jobs', locator, '--state', 'bogus', '--json'],
      ['import', locator, join(TMP, 'never'), '--hardlink', '--symlink', '--json'],
    ]
    for (const args of cases) {
      const result = await cli(args)
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(EXIT.USAGE)
      expect(result.stdout, args.join(' ')).toBe('')
      const lines = result.stderr.trim().split('\n')
      expect(lines, args.join(' ')).toHaveLength(1)
      const parsed = JSON.parse(lines[0] as string) as { error: { code: string; message: string; exitCode: number } }
      expect(parsed.error.exitCode).toBe(EXIT.USAGE)
      expect(parsed.error.code).toBe('USAGE')
      expect(parsed.error.message).not.toMatch(/^error: /)
    }
    // Help and version stay text.
    const help = await cli(['--json', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('Usage: jobstore')
  })
})

describe('jobstore CLI: usage errors and options', () => {
  it('jobs --state with a state no job can have is a usage error naming the states; a known state with no jobs is not', async () => {
    const { store, locator } = await newStore()
    const desc = newJobDescription({ jobName: 'custom', extra: { state: 'waiting-for-data' } })
    store.assignID(desc)
    await store.create(desc)
    const bogus = await cli(['jobs', locator, '--state', 'bogus'])
    expect(bogus.code, bogus.stderr).toBe(EXIT.USAGE)
    expect(bogus.stdout).toBe('')
    expect(bogus.stderr).toContain('bogus')
    expect(bogus.stderr).toContain('failed')
    expect(bogus.stderr).toContain('waiting-for-data')
    expect((await cliJson<{ jobs: unknown[] }>(['jobs', locator, '--state', 'failed'])).jobs).toEqual([])
    expect((await cliJson<{ jobs: unknown[] }>(['jobs', locator, '--state', 'waiting-for-data'])).jobs).toHaveLength(1)
  })

  it('import --hardlink --symlink is a usage error; nothing is stored', async () => {
    const { store, locator } = await newStore()
    const source = join(TMP, `src-${randomUUID()}.txt`)
    writeFileSync(source, 'x')
    const result = await cli(['import', locator, source, '--hardlink', '--symlink'])
    expect(result.code, result.stderr).toBe(EXIT.USAGE)
    expect(result.stderr).toContain('--symlink')
    const files = []
    for await (const file of store.files()) files.push(file)
    expect(files).toEqual([])
  })

  it('import --job with a job that does not exist fails (NO_SUCH_JOB, exit 3) and stores nothing', async () => {
    const { store, locator } = await newStore()
    const source = join(TMP, `src-${randomUUID()}.txt`)
    writeFileSync(source, 'x')
    const ghost = newJobDescription({ jobName: 'ghost' })
    store.assignID(ghost)
    const result = await cli(['import', locator, source, '--job', ghost.jobStoreID as string, '--json'])
    expect(result.code, result.stderr).toBe(EXIT.NOT_FOUND)
    expect(jsonErrorOf(result.stderr)).toMatchObject({ error: { code: 'NO_SUCH_JOB' } })
    const files = []
    for await (const file of store.files()) files.push(file)
    expect(files).toEqual([])
  })

  it('options are listed on the commands they affect only, and refused elsewhere', async () => {
    const { locator } = await newStore()
    const help = async (name: string): Promise<string> => (await cli([name, '--help'])).stdout
    for (const name of ['init', 'show', 'cat', 'destroy', 'status', 'jobs', 'clean', 'logs']) {
      expect(await help(name), name).not.toContain('--no-progress')
    }
    for (const name of ['init', 'show', 'cat', 'destroy', 'import', 'export']) {
      expect(await help(name), name).not.toContain('--concurrency')
    }
    for (const name of ['copy', 'verify', 'import', 'export']) expect(await help(name), name).toContain('--no-progress')
    for (const name of ['status', 'jobs', 'clean', 'logs', 'copy', 'verify']) expect(await help(name), name).toContain('--concurrency')
    expect(await help('export')).toContain('--no-clobber')
    expect(await help('import')).not.toContain('--no-clobber')
    const refused = await cli(['show', locator, '0000', '--concurrency', '4'])
    expect(refused.code).toBe(EXIT.USAGE)
    expect(refused.stderr).toContain("unknown option '--concurrency'")
  })
})

describe('jobstore export --no-clobber', () => {
  it('refuses to replace an existing local file (DESTINATION_EXISTS, exit 4), writes an absent one', async () => {
    const { store, locator } = await newStore()
    const fileID = await store.writeFileStream((w) => void w.end('new content'), { basename: 'a.txt' })
    const dir = mkdtempSync(join(TMP, 'noclobber-'))
    const existing = join(dir, 'existing.txt')
    writeFileSync(existing, 'keep me')
    const refused = await cli(['export', locator, fileID, existing, '--no-clobber', '--json'])
    expect(refused.code, refused.stderr).toBe(EXIT.EXISTS)
    expect(jsonErrorOf(refused.stderr)).toMatchObject({ error: { code: 'DESTINATION_EXISTS', exitCode: EXIT.EXISTS } })
    expect(readFileSync(existing, 'utf8')).toBe('keep me')
    const human = await cli(['export', locator, fileID, existing, '--no-clobber'])
    expect(human.stderr).toContain('already exists')
    expect(readdirSync(dir)).toEqual(['existing.txt']) // no temporary file left behind

    const absent = join(dir, 'absent.txt')
    const written = await cli(['export', locator, fileID, absent, '--no-clobber'])
    expect(written.code, written.stderr).toBe(0)
    expect(readFileSync(absent, 'utf8')).toBe('new content')
    expect(readdirSync(dir).sort()).toEqual(['absent.txt', 'existing.txt'])
    // Without it, a regular file is replaced, as before.
    expect((await cli(['export', locator, fileID, existing])).code).toBe(0)
    expect(readFileSync(existing, 'utf8')).toBe('new content')
    expect(existsSync(join(dir, 'absent.txt'))).toBe(true)
  })
})

describe('jobstore CLI: the documented error codes', () => {
  /** docs/cli.md's exit code table: exit code → the error codes its row lists. */
  function documentedTable(): Map<number, Set<string>> {
    const docs = readFileSync(join(REPO, 'docs', 'cli.md'), 'utf8')
    const section = docs.slice(docs.indexOf('### Exit codes'), docs.indexOf('### Terminal safety'))
    const rows = new Map<number, Set<string>>()
    for (const match of section.matchAll(/^\| (\d+) \|[^|]*\|([^|]*)\|$/gm)) {
      const codes = (match[2] as string).split(',').map((c) => c.trim()).filter((c) => c !== '')
      rows.set(Number(match[1]), new Set(codes))
    }
    return rows
  }

  it('docs/cli.md lists exactly the error codes the CLI prints, each with its exit code, and so does --help', async () => {
    const expected = new Map<number, Set<string>>()
    for (const exit of Object.values(EXIT)) expected.set(exit, new Set())
    for (const [code, exit] of [...Object.entries(EXIT_CODE_BY_ERROR_CODE), ...Object.entries(CLI_ERROR_CODES)]) {
      expected.get(exit)?.add(code)
    }
    expect(documentedTable()).toEqual(expected)
    const help = (await cli(['--help'])).stdout
    expect(help).toContain(EXIT_CODE_HELP.trim())
    for (const [exit, codes] of expected) {
      const line = EXIT_CODE_HELP.split('\n').find((l) => new RegExp(`^  ${exit} `).test(l))
      expect(line, String(exit)).toBeDefined()
      for (const code of codes) expect(line, `${exit} ${code}`).toContain(code)
    }
  })

  it('the codes the CLI prints for its own errors are in the table: a usage error, verify finding problems', async () => {
    const usage = await cli(['status', '--json'])
    const verify = await (async () => {
      const { store, locator } = await newStore()
      const desc = newJobDescription({ jobName: 'unreachable' })
      store.assignID(desc)
      await store.create(desc)
      return cli(['verify', locator, '--json'])
    })()
    for (const result of [usage, verify]) {
      const { error } = jsonErrorOf(result.stderr) as { error: { code: string; exitCode: number } }
      expect(error.exitCode).toBe(result.code)
      expect(documentedTable().get(error.exitCode)?.has(error.code), error.code).toBe(true)
    }
  })
})
