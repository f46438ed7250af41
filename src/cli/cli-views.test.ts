/**
 * Tests of the CLI's views of a store, as a new user asks for them: `files`, `logs` in time order with `--job`,
 * `--since` and a `--follow` that ends when the store is destroyed, `status` with failed and unreachable jobs,
 * `jobs --tree` and `graph` (DOT and SVG). Run as real subprocesses on the file backend, against stores made by the
 * library in this process, through the built binary (src/cli/test-cli.ts).
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { newJobDescription, openJobStore, type AbstractJobStore, type JobDescription } from '../index.js'
import { timeOfTimeOrderedId, timeOrderedId } from '../ids.js'
import { parseSince } from './commands/logs.js'
import { EXIT } from './exit-codes.js'
import { cli, cliJson, REPO, startCli } from './test-cli.js'

const TMP = mkdtempSync(join(tmpdir(), 'jobstore-cli-views-test-'))
afterAll(() => rmSync(TMP, { recursive: true, force: true }))
vi.setConfig({ testTimeout: 300_000 })

async function waitFor(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

function job(store: AbstractJobStore, init: Parameters<typeof newJobDescription>[0]): JobDescription & { jobStoreID: string } {
  const desc = newJobDescription(init)
  store.assignID(desc)
  return desc as JobDescription & { jobStoreID: string }
}

const newLocator = (): string => `file:${join(TMP, `store-${randomUUID()}`)}`

/** No raw control, bidi or invisible character in text meant for a terminal (the CLI's own newlines aside). */
function expectTerminalSafe(text: string): void {
  expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\p{Cf}\u2028\u2029]/u)
}

/**
 * A store with a graph worth drawing: root → children a and b, follow-on t; a and b share the child s; s has a
 * cycle back to a (as a service); lost is unreachable; b has no tries left. Files: a kept one of no job, a cleanup
 * one of a, one of b kept; two shared files.
 */
async function makeGraphFixture(locator: string, names: { lost?: string; a?: string } = {}) {
  const store = await openJobStore(locator)
  await store.initialize({ retryCount: 1 })
  const root = job(store, { jobName: 'root' })
  const a = job(store, { jobName: names.a ?? 'a' })
  const b = job(store, { jobName: 'b', remainingTryCount: 0 })
  const s = job(store, { jobName: 'shared-child' })
  const t = job(store, { jobName: 'total' })
  const lost = job(store, { jobName: names.lost ?? 'lost' })
  root.children = [a.jobStoreID, b.jobStoreID]
  root.followOns = [t.jobStoreID]
  a.children = [s.jobStoreID]
  b.children = [s.jobStoreID]
  s.services = [a.jobStoreID]
  for (const d of [a, b, s, t, lost]) await store.create(d)
  await store.createRootJob(root)
  const kept = await store.writeFileStream((w) => void w.end('hello world\n'), { basename: 'hello.txt' })
  const cleanup = await store.writeFileStream((w) => void w.end('chunk'), { jobStoreID: a.jobStoreID, cleanup: true, basename: 'chunk.txt' })
  const ofB = await store.writeFileStream((w) => void w.end('bb'), { jobStoreID: b.jobStoreID })
  await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end('{}'))
  await store.writeSharedFileStream('settings.json', (w) => void w.end('{"x":1}'))
  return { store, root, a, b, s, t, lost, kept, cleanup, ofB }
}

describe('jobstore files', () => {
  it('lists files with size, owner job and cleanup flag, and the shared files; --json exact', async () => {
    const locator = newLocator()
    const f = await makeGraphFixture(locator)
    const json = await cliJson<{ files: unknown[]; sharedFiles: unknown[] }>(['files', locator])
    const expected = [
      { fileID: f.kept, size: 12, owner: null, cleanup: false, basename: 'hello.txt' },
      { fileID: f.cleanup, size: 5, owner: f.a.jobStoreID, cleanup: true, basename: 'chunk.txt' },
      { fileID: f.ofB, size: 2, owner: f.b.jobStoreID, cleanup: false, basename: null },
    ].sort((x, y) => (x.fileID < y.fileID ? -1 : 1))
    expect(json).toEqual({ files: expected, sharedFiles: [{ name: 'rootJobReturnValue' }, { name: 'settings.json' }] })

    const human = await cli(['files', locator])
    expect(human.code, human.stderr).toBe(0)
    const lines = human.stdout.split('\n')
    expect(lines[0]).toMatch(/^FILE ID +SIZE +OWNER JOB +CLEANUP$/)
    expect(lines.find((l) => l.startsWith(f.cleanup))).toMatch(new RegExp(`^${f.cleanup.replace(/[.]/g, '\\.')} +5 B +${f.a.jobStoreID} +yes$`))
    expect(lines.find((l) => l.startsWith(f.kept))).toMatch(/ +12 B +- +no$/)
    expect(lines.slice(lines.indexOf('SHARED FILE'))).toEqual(['SHARED FILE', 'rootJobReturnValue', 'settings.json', ''])
    expect(human.stderr).toBe('3 files (19 B), 2 shared files\n')

    // What it lists is what cat takes.
    const cat = await cli(['cat', locator, f.kept])
    expect(cat.stdout).toBe('hello world\n')
  })

  it('an empty store lists nothing (exit 0); a missing store exits 3', async () => {
    const locator = newLocator()
    const store = await openJobStore(locator)
    await store.initialize()
    expect(await cliJson(['files', locator])).toEqual({ files: [], sharedFiles: [] })
    const human = await cli(['files', locator])
    expect(human).toEqual({ code: 0, stdout: '', stderr: '0 files (0 B), 0 shared files\n' })
    expect((await cli(['files', newLocator()])).code).toBe(EXIT.NOT_FOUND)
  })
})

describe('jobstore status: failed and unreachable jobs', () => {
  it('lists jobs with no tries left and jobs the root does not reach, as clean() would find them', async () => {
    const locator = newLocator()
    const f = await makeGraphFixture(locator, { lost: 'lost\x1b[2J\u202e' })
    // A job whose engine state says failed, with tries left, counts too.
    const stateFailed = job(f.store, { jobName: 'crashed', extra: { state: 'failed' } })
    await f.store.create(stateFailed)
    const json = await cliJson<Record<string, unknown>>(['status', locator])
    expect(json['failedJobs']).toEqual([
      { jobStoreID: f.b.jobStoreID, jobName: 'b', state: 'failed', remainingTryCount: 0 },
      { jobStoreID: stateFailed.jobStoreID, jobName: 'crashed', state: 'failed', remainingTryCount: 2 },
    ])
    expect(json['unreachableJobs']).toEqual(
      [
        { jobStoreID: f.lost.jobStoreID, jobName: 'lost\x1b[2J\u202e' },
        { jobStoreID: stateFailed.jobStoreID, jobName: 'crashed' },
      ].sort((x, y) => x.jobName.localeCompare(y.jobName)),
    )
    expect(json['reachableCorruptJobs']).toEqual([])

    const human = await cli(['status', locator])
    expect(human.code, human.stderr).toBe(0)
    expectTerminalSafe(human.stdout)
    expect(human.stdout).toContain('failed       2 (no tries left, or state failed)\n')
    expect(human.stdout).toMatch(new RegExp(`\\n  ${f.b.jobStoreID}  b\\n`))
    expect(human.stdout).toContain('unreachable  2 (clean deletes them)\n')
    expect(human.stdout).toContain(`  ${f.lost.jobStoreID}  lost\\x1b[2J\\u202e\n`)

    // clean deletes exactly what status called unreachable.
    const cleaned = await cliJson<{ deletedJobs: string[] }>(['clean', locator])
    expect(cleaned.deletedJobs.sort()).toEqual([f.lost.jobStoreID, stateFailed.jobStoreID].sort())
    const after = await cliJson<Record<string, unknown>>(['status', locator])
    expect(after['unreachableJobs']).toEqual([])
    // clean reset the tries of the reachable jobs: none failed now.
    expect(after['failedJobs']).toEqual([])
  })

  it('a reachable corrupt record: the jobs not reached are only maybe unreachable, as clean keeps them', async () => {
    const locator = newLocator()
    const f = await makeGraphFixture(locator)
    const path = join(locator.slice('file:'.length), 'jobs', f.b.jobStoreID.slice(0, 2), f.b.jobStoreID)
    truncateSync(path, Math.floor(statSync(path).size / 2))
    const json = await cliJson<Record<string, unknown>>(['status', locator])
    expect(json['reachableCorruptJobs']).toEqual([f.b.jobStoreID])
    expect(json['unreachableJobs']).toEqual([{ jobStoreID: f.lost.jobStoreID, jobName: 'lost' }])
    const human = await cli(['status', locator])
    expect(human.stdout).toContain(`unreachable  1 (maybe: they may be below the corrupt record(s) ${f.b.jobStoreID}; clean keeps them)\n`)
    const cleaned = await cliJson<{ keptUnreachableJobs: string[] }>(['clean', locator])
    expect(cleaned.keptUnreachableJobs).toEqual([f.lost.jobStoreID])
  })

  it('without a root job there is nothing to walk from: unreachable is null', async () => {
    const locator = newLocator()
    const store = await openJobStore(locator)
    await store.initialize()
    await store.create(job(store, { jobName: 'orphan' }))
    const json = await cliJson<Record<string, unknown>>(['status', locator])
    expect(json['unreachableJobs']).toBeNull()
    expect((await cli(['status', locator])).stdout).toContain('unreachable  - (no root job to walk from)\n')
  })
})

/** Writes each message as if at its time (message IDs carry the writer's clock), in the order given. */
async function writeMessagesAt(store: AbstractJobStore, messages: readonly { text: string; at: number }[]): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date'] })
  try {
    for (const m of messages) {
      vi.setSystemTime(m.at)
      await store.writeStatsAndLogging(m.text)
    }
  } finally {
    vi.useRealTimers()
  }
}

describe('jobstore logs: time order, --job, --since, --follow on a destroyed store', () => {
  const T0 = Date.parse('2026-01-01T00:00:00Z')
  const MINUTE = 60_000

  it('prints messages in the order they were written, not the listing order; --json carries the time', async () => {
    const locator = newLocator()
    const store = await openJobStore(locator)
    await store.initialize()
    // Written in a shuffled order, each at its own minute: the folder's order is not the time order.
    const minutes = [7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 4, 6]
    await writeMessagesAt(store, minutes.map((m) => ({ text: `minute ${m}`, at: T0 + m * MINUTE })))
    const inOrder = [...minutes].sort((a, b) => a - b).map((m) => `minute ${m}`)
    const human = await cli(['logs', locator])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout.split('\n').filter(Boolean)).toEqual(inOrder)
    const json = await cli(['logs', locator, '--json'])
    const lines = json.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { text: string; time: string })
    expect(lines.map((l) => l.text)).toEqual(inOrder)
    expect(lines[3]).toMatchObject({ text: 'minute 3', time: new Date(T0 + 3 * MINUTE).toISOString() })
    // Read ones and unread ones together, still by time.
    await cli(['logs', locator, '--consume'])
    await writeMessagesAt(store, [{ text: 'minute 4.5', at: T0 + 4.5 * MINUTE }])
    const all = await cli(['logs', locator, '--all'])
    expect(all.stdout.split('\n').filter(Boolean)).toEqual([...inOrder.slice(0, 5), 'minute 4.5', ...inOrder.slice(5)])
  })

  it('--job keeps the messages that name the job; --since those written since a time or a duration back', async () => {
    const locator = newLocator()
    const store = await openJobStore(locator)
    await store.initialize()
    const a = job(store, { jobName: 'a' })
    const b = job(store, { jobName: 'b' })
    const now = Date.now()
    await writeMessagesAt(store, [
      { text: JSON.stringify({ job: a.jobStoreID, result: 'success', n: 1 }), at: now - 3 * 60 * MINUTE },
      { text: JSON.stringify({ job: b.jobStoreID, result: 'failure' }), at: now - 90 * MINUTE },
      { text: JSON.stringify({ job: a.jobStoreID, result: 'success', n: 2 }), at: now - 30 * MINUTE },
      { text: 'a plain message', at: now - MINUTE },
    ])
    const texts = (r: { stdout: string }): string[] => r.stdout.split('\n').filter(Boolean)
    expect(texts(await cli(['logs', locator, '--job', a.jobStoreID]))).toEqual([
      JSON.stringify({ job: a.jobStoreID, result: 'success', n: 1 }),
      JSON.stringify({ job: a.jobStoreID, result: 'success', n: 2 }),
    ])
    expect(texts(await cli(['logs', locator, '--since', '2h']))).toEqual([
      JSON.stringify({ job: b.jobStoreID, result: 'failure' }),
      JSON.stringify({ job: a.jobStoreID, result: 'success', n: 2 }),
      'a plain message',
    ])
    expect(texts(await cli(['logs', locator, '--since', '45m', '--job', a.jobStoreID]))).toEqual([
      JSON.stringify({ job: a.jobStoreID, result: 'success', n: 2 }),
    ])
    const iso = new Date(now - 10 * MINUTE).toISOString()
    expect(texts(await cli(['logs', locator, '--since', iso]))).toEqual(['a plain message'])
    // Unknown times and malformed job IDs are usage errors, before any I/O.
    for (const bad of [
      ['--since', 'yesterday'],
      ['--since', '2026-13-45'],
      ['--since', '10 minutes'],
      ['--job', 'not-a-job-id'],
    ]) {
      const result = await cli(['logs', locator, ...bad])
      expect(result.code, `${bad.join(' ')}: ${result.stderr}`).toBe(EXIT.USAGE)
      expect(result.stdout).toBe('')
    }
  })

  it('--follow stops with exit 3 and says so when the store is destroyed while it follows (human and --json)', async () => {
    for (const json of [false, true]) {
      const locator = newLocator()
      const store = await openJobStore(locator)
      await store.initialize()
      await store.writeStatsAndLogging('before the end')
      const run = startCli(['logs', locator, '--follow', '--interval', '0.1', ...(json ? ['--json'] : [])])
      await waitFor(() => run.output().includes('before the end'), 'the first message')
      await store.destroy()
      let stopped = false
      void run.done.then(() => (stopped = true))
      try {
        await waitFor(() => stopped, 'logs --follow to stop once its store is destroyed')
      } finally {
        if (!stopped) run.child.kill('SIGKILL')
      }
      const result = await run.done
      expect(result.code, result.stderr).toBe(EXIT.NOT_FOUND)
      if (json) {
        const error = JSON.parse(result.stderr.trim().split('\n').pop() as string) as { error: Record<string, unknown> }
        expect(error.error).toMatchObject({ code: 'NO_SUCH_JOB_STORE', exitCode: 3 })
        expect(error.error['message']).toMatch(/was destroyed while following its logs \(1 message\(s\) printed\)/)
      } else {
        expect(result.stderr).toMatch(/^jobstore: error: the job store at file:\S+ was destroyed while following its logs \(1 message\(s\) printed\)\n$/)
      }
    }
  })
})

describe('jobstore logs building blocks', () => {
  it('a message ID gives back the time it was minted at; other strings give none', () => {
    for (const at of [0, 1, Date.parse('2026-12-02T01:02:03.456Z'), 2 ** 50]) expect(timeOfTimeOrderedId(timeOrderedId(at))).toBe(at)
    for (const other of ['', 'x', timeOrderedId().slice(1), `${timeOrderedId().slice(0, 26)}i`]) expect(timeOfTimeOrderedId(other)).toBeUndefined()
  })

  it('--since reads ISO 8601 times and durations back from now, and refuses anything else', () => {
    const now = Date.parse('2026-12-02T12:00:00Z')
    expect(parseSince('90s', now)).toBe(now - 90_000)
    expect(parseSince('10m', now)).toBe(now - 600_000)
    expect(parseSince('1.5h', now)).toBe(now - 5_400_000)
    expect(parseSince('2d', now)).toBe(now - 2 * 86_400_000)
    expect(parseSince('2026-12-02T09:30:00Z', now)).toBe(Date.parse('2026-12-02T09:30:00Z'))
    expect(parseSince('2026-12-02T09:30:00+01:00', now)).toBe(Date.parse('2026-12-02T08:30:00Z'))
    for (const bad of ['', 'now', '10', '-5m', '5 m', 'yesterday', '2026-02-30x', '12/02/2026']) expect(() => parseSince(bad, now), bad).toThrow(/ISO 8601/)
  })
})

/** A hostile job name: markup, an entity, quotes, an escape sequence, a bidi override, a C1 CSI, a NUL, a newline. */
const HOSTILE = 'a <b>&amp;"q\'\x1b[2J\u202eevil\x9b\x00\nforged'
const HOSTILE_SHOWN = String.raw`a <b>&amp;"q'\x1b[2J\u202eevil\x9b\x00\nforged`

/** The job ID on the line of `step-<i>` in a tree. */
function tailIdOf(lines: readonly string[], i: number): string {
  return /step-\d+  ([0-9a-z]{26})/.exec(lines.find((l) => l.includes(`step-${i} `)) ?? '')?.[1] ?? '(none)'
}

describe('jobstore jobs --tree', () => {
  it('draws the graph from the root: children, services, follow-ons; a shared child and a cycle shown once, then referred to', async () => {
    const locator = newLocator()
    const f = await makeGraphFixture(locator, { a: HOSTILE })
    const human = await cli(['jobs', locator, '--tree'])
    expect(human.code, human.stderr).toBe(0)
    expectTerminalSafe(human.stdout)
    const id = (d: { jobStoreID: string }): string => d.jobStoreID
    expect(human.stdout).toBe(
      [
        `root  ${id(f.root)}  unknown`,
        `├── ${HOSTILE_SHOWN}  ${id(f.a)}  unknown`,
        `│   └── shared-child  ${id(f.s)}  unknown`,
        `│       └── service: ${HOSTILE_SHOWN}  ${id(f.a)}  (shown above)`,
        `├── b  ${id(f.b)}  failed`,
        `│   └── shared-child  ${id(f.s)}  (shown above)`,
        `└── follow-on: total  ${id(f.t)}  unknown`,
        '',
        'not reachable from the root job:',
        `lost  ${id(f.lost)}  unknown`,
        '',
      ].join('\n'),
    )
    const json = await cliJson<{ root: unknown[]; unreachable: unknown[] }>(['jobs', locator, '--tree'])
    const entry = (d: { jobStoreID: string; jobName: string }, edge: string, depth: number, state = 'unknown', seen = false) => ({
      jobStoreID: d.jobStoreID,
      jobName: d.jobName,
      state,
      edge,
      depth,
      seen,
    })
    expect(json).toEqual({
      root: [
        entry(f.root, 'root', 0),
        entry(f.a, 'child', 1),
        entry(f.s, 'child', 2),
        entry(f.a, 'service', 3, 'unknown', true),
        entry(f.b, 'child', 1, 'failed'),
        entry(f.s, 'child', 2, 'unknown', true),
        entry(f.t, 'followOn', 1),
      ],
      unreachable: [entry(f.lost, 'root', 0)],
    })
    expect((json.root[1] as { jobName: string }).jobName).toBe(HOSTILE)
  })

  it('missing successors and corrupt records show as such; --tree with --name is a usage error', async () => {
    const locator = newLocator()
    const f = await makeGraphFixture(locator)
    await f.store.delete(f.t.jobStoreID)
    const path = join(locator.slice('file:'.length), 'jobs', f.b.jobStoreID.slice(0, 2), f.b.jobStoreID)
    truncateSync(path, Math.floor(statSync(path).size / 2))
    const human = await cli(['jobs', locator, '--tree'])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain(`├── (corrupt record)  ${f.b.jobStoreID}\n`)
    expect(human.stdout).toContain(`└── follow-on: (missing record)  ${f.t.jobStoreID}\n`)
    // A long chain of follow-ons is indented up to 32 levels, then shown with its depth.
    let tail = f.lost
    for (let i = 1; i <= 40; i++) {
      const next = job(f.store, { jobName: `step-${i}` })
      await f.store.create(next)
      tail.followOns = [next.jobStoreID]
      await f.store.update(tail)
      tail = next
    }
    const chain = (await cli(['jobs', locator, '--tree'])).stdout.split('\n')
    const step = (i: number): string => chain.find((l) => l.includes(`step-${i} `)) as string
    expect(step(31)).toBe(`${'    '.repeat(30)}└── follow-on: step-31  ${tailIdOf(chain, 31)}  unknown`)
    expect(step(40)).toBe(`${'    '.repeat(31)}└── (depth 40) follow-on: step-40  ${tailIdOf(chain, 40)}  unknown`)
    const usage = await cli(['jobs', locator, '--tree', '--name', 'a'])
    expect(usage.code).toBe(EXIT.USAGE)
    expect(usage.stderr).toContain('--tree shows the whole job graph')
  })
})

describe('jobstore graph', () => {
  it('--format dot (the default): a node per job, an edge per successor, names quoted and escaped', async () => {
    const locator = newLocator()
    const f = await makeGraphFixture(locator, { a: HOSTILE })
    const result = await cli(['graph', locator])
    expect(result.code, result.stderr).toBe(0)
    expectTerminalSafe(result.stdout)
    const dot = result.stdout
    expect(dot.startsWith('digraph jobs {\n')).toBe(true)
    expect(dot.endsWith('}\n')).toBe(true)
    // Every quoted string is closed on its line: no name breaks out of its label.
    for (const line of dot.split('\n').slice(2, -2)) expect(line, line).toMatch(/^  ("(?:[^"\\]|\\.)*")( -> "(?:[^"\\]|\\.)*")? \[.*\];$|^  "[0-9a-z]{26}" -> "[0-9a-z]{26}";$/)
    const label = String.raw`a <b>&amp;\"q'\\x1b[2J\\u202eevil\\x9b\\x00\\nforged`
    expect(dot).toContain(`  "${f.a.jobStoreID}" [label="${label}\\n${f.a.jobStoreID}\\nunknown"];\n`)
    expect(dot).toContain(`  "${f.root.jobStoreID}" -> "${f.a.jobStoreID}";\n`)
    expect(dot).toContain(`  "${f.root.jobStoreID}" -> "${f.t.jobStoreID}" [style=dashed, label="follow-on"];\n`)
    expect(dot).toContain(`  "${f.s.jobStoreID}" -> "${f.a.jobStoreID}" [style=dotted, label="service"];\n`)
    expect(dot).toMatch(new RegExp(`"${f.lost.jobStoreID}" \\[label="lost\\\\n[^"]*", fontcolor=gray40, color=gray60\\];`))
    expect(dot.match(/ -> /g)).toHaveLength(6)
  })

  it('--format svg: valid XML, one box per job and one edge per successor, hostile names escaped', async () => {
    const { XMLParser, XMLValidator } = await import('fast-xml-parser')
    const locator = newLocator()
    const f = await makeGraphFixture(locator, { a: HOSTILE, lost: 'lost\u2066\u{e0041}\u2028x' })
    const result = await cli(['graph', locator, '--format', 'svg'])
    expect(result.code, result.stderr).toBe(0)
    const svg = result.stdout
    expectTerminalSafe(svg)
    expect(XMLValidator.validate(svg)).toBe(true)
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', processEntities: true, isArray: (name) => ['g', 'line', 'path', 'text'].includes(name) }).parse(svg) as {
      svg: { '@xmlns': string; g: { '@class': string; g?: { '@data-id': string; text: (string | { '#text': string })[] }[]; line?: unknown[]; path?: unknown[] }[] }
    }
    expect(doc.svg['@xmlns']).toBe('http://www.w3.org/2000/svg')
    const jobs = doc.svg.g.find((g) => g['@class'] === 'jobs')?.g ?? []
    const edges = doc.svg.g.find((g) => g['@class'] === 'edges')
    expect(jobs.map((g) => g['@data-id']).sort()).toEqual([f.root, f.a, f.b, f.s, f.t, f.lost].map((d) => d.jobStoreID).sort())
    expect((edges?.line?.length ?? 0) + (edges?.path?.length ?? 0)).toBe(6)
    const textOf = (id: string): string => {
      const first = jobs.find((g) => g['@data-id'] === id)?.text[0]
      return typeof first === 'string' ? first : (first?.['#text'] ?? '')
    }
    // The name as the terminal shows it (escapes visible), cut to 40 characters, markup as text.
    expect(textOf(f.a.jobStoreID)).toBe(`${[...HOSTILE_SHOWN].slice(0, 39).join('')}…`)
    expect(textOf(f.lost.jobStoreID)).toBe(String.raw`lost\u2066\u{e0041}\u2028x`)
    expect(svg).not.toContain('<b>')
  })

  it('an unknown --format is a usage error; an empty store gives an empty graph', async () => {
    const locator = newLocator()
    const store = await openJobStore(locator)
    await store.initialize()
    expect((await cli(['graph', locator, '--format', 'png'])).code).toBe(EXIT.USAGE)
    expect((await cli(['graph', locator])).stdout).toBe('digraph jobs {\n  node [shape=box, style=rounded, fontname="Helvetica"];\n}\n')
    const { XMLValidator } = await import('fast-xml-parser')
    expect(XMLValidator.validate((await cli(['graph', locator, '--format', 'svg'])).stdout)).toBe(true)
  })
})

describe('jobstore files, graph, jobs --tree, logs --job/--since: help and docs', () => {
  it('each new command and option has help with an example, and a section or mention in docs/cli.md', async () => {
    const docs = readFileSync(join(REPO, 'docs', 'cli.md'), 'utf8')
    for (const name of ['files', 'graph']) {
      const help = await cli([name, '--help'])
      expect(help.code, name).toBe(0)
      expect(help.stdout).toContain(`$ jobstore ${name}`)
      expect(docs).toMatch(new RegExp(`^### \`${name} <locator>\`$`, 'm'))
      expect(docs).toContain(`$ jobstore ${name} file:`)
    }
    const options: [string, string][] = [['jobs', '--tree'], ['logs', '--job'], ['logs', '--since'], ['graph', '--format']]
    for (const [command, option] of options) {
      expect((await cli([command, '--help'])).stdout, `${command} ${option}`).toContain(option)
      expect(docs, `${command} ${option}`).toMatch(new RegExp(`jobstore ${command} file:\\S+ [^\\n]*${option}`))
    }
  })
})
