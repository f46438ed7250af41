/**
 * Hostile environment: job records. What `create()`/`update()` accept, `load()` reads back equal (anything else
 * is refused with InvalidArgumentError before any I/O); and `clean()` never turns a damaged record into lost jobs:
 * damage is planted through the backend's own storage primitives (real storage, every backend), `clean()` runs,
 * the record is restored, `clean()` runs again, and every job is still there.
 */
import { describe, expect, it, vi } from 'vitest'
import type { AbstractJobStore, CleanReport } from '../src/abstract-job-store.js'
import { CorruptRecordError, InvalidArgumentError } from '../src/errors.js'
import { keys, mintFileId, randomId } from '../src/ids.js'
import { DEFAULT_REQUIREMENTS, newJobDescription, type JobDescription } from '../src/job-description.js'
import { caught, type SuiteContext } from './harness.js'

interface Primitives {
  putObject(key: string, body: Buffer, options: object): Promise<string>
  getObject(key: string): Promise<{ body: AsyncIterable<Buffer>; data?: Buffer }>
}

function job(store: AbstractJobStore, name: string, fields: Partial<JobDescription> = {}): JobDescription & { jobStoreID: string } {
  const desc = newJobDescription({ jobName: name, ...fields })
  store.assignID(desc)
  return desc as JobDescription & { jobStoreID: string }
}

/** The bytes stored for a job, read raw through the backend's primitive. */
async function rawRecord(store: AbstractJobStore, id: string): Promise<Buffer> {
  const object = await (store as unknown as Primitives).getObject.call(store, keys.job(id))
  if (object.data !== undefined) return object.data
  const parts: Buffer[] = []
  for await (const part of object.body) parts.push(part)
  return Buffer.concat(parts)
}

/** Overwrites a job's record with the first half of its own bytes, as a crash or a bad copy would leave it. */
async function truncateRecord(store: AbstractJobStore, id: string): Promise<void> {
  const bytes = await rawRecord(store, id)
  await (store as unknown as Primitives).putObject.call(store, keys.job(id), bytes.subarray(0, Math.floor(bytes.length / 2)), {})
}

/** Runs `clean()` and hands back its report. */
async function cleanReport(store: AbstractJobStore, ...cache: [] | [Map<string, JobDescription>]): Promise<CleanReport> {
  let report: CleanReport | undefined
  await store.clean(cache[0], { onReport: (r) => (report = r) })
  expect(report).toBeDefined()
  return report as CleanReport
}

/** Spies on every storage primitive of `store`; `calls()` counts the calls made since. */
function spyPrimitives(store: AbstractJobStore): { calls(): number; restore(): void } {
  const names = ['getObject', 'headObject', 'putObject', 'deleteObjects', 'listObjects']
  const spies = names.map((name) => vi.spyOn(store as unknown as Record<string, () => unknown>, name))
  return {
    calls: () => spies.reduce((n, spy) => n + spy.mock.calls.length, 0),
    restore: () => spies.forEach((spy) => spy.mockRestore()),
  }
}

type Mutation = readonly [what: string, field: string, change: (desc: Record<string, unknown>) => void]

/** Descriptions `load()` could not read back as given, each with the field the error must name. */
const REFUSED: readonly Mutation[] = [
  ['a child that is not a job ID', 'children', (d) => void (d['children'] = ['not-a-job-id'])],
  ['a follow-on that is not a string', 'followOns', (d) => void (d['followOns'] = [42])],
  ['services that are not a list', 'services', (d) => void (d['services'] = 'x')],
  ['a job to delete that is not a job ID', 'jobsToDelete', (d) => void (d['jobsToDelete'] = ['../../etc'])],
  ['a file to delete that is not a file ID', 'filesToDelete', (d) => void (d['filesToDelete'] = ['not/a/file'])],
  ['a log file that is not a file ID', 'logJobStoreFileID', (d) => void (d['logJobStoreFileID'] = 'log.txt')],
  ['a jobName that is not a string', 'jobName', (d) => void (d['jobName'] = 7)],
  ['a command that is not a string', 'command', (d) => void (d['command'] = ['echo'])],
  ['memory that is not a number', 'requirements.memory', (d) => void ((d['requirements'] as Record<string, unknown>)['memory'] = '2G')],
  ['negative cores', 'requirements.cores', (d) => void ((d['requirements'] as Record<string, unknown>)['cores'] = -1)],
  ['infinite disk', 'requirements.disk', (d) => void ((d['requirements'] as Record<string, unknown>)['disk'] = Infinity)],
  ['an accelerator without a kind', 'requirements.accelerators[0].kind', (d) => {
    ;(d['requirements'] as Record<string, unknown>)['accelerators'] = [{ count: 1 }]
  }],
  ['NaN tries, which JSON stores as null', 'remainingTryCount', (d) => void (d['remainingTryCount'] = NaN)],
  ['a fractional version', 'version', (d) => void (d['version'] = 1.5)],
  ['a schemaVersion field, which would replace the record’s own', 'schemaVersion', (d) => void (d['schemaVersion'] = 2)],
  ['extra that is a list', 'extra', (d) => void (d['extra'] = [])],
  ['a function in extra', 'extra.run', (d) => void ((d['extra'] as Record<string, unknown>)['run'] = () => 1)],
  ['undefined in extra, which JSON drops', 'extra.gone', (d) => void ((d['extra'] as Record<string, unknown>)['gone'] = undefined)],
  ['a BigInt in extra', 'extra.big', (d) => void ((d['extra'] as Record<string, unknown>)['big'] = 10n)],
  ['NaN in extra, which JSON stores as null', 'extra.ratio', (d) => void ((d['extra'] as Record<string, unknown>)['ratio'] = NaN)],
  ['Infinity deep in extra', 'extra.a.b[1]', (d) => void ((d['extra'] as Record<string, unknown>)['a'] = { b: [1, -Infinity] })],
  ['a Date in extra, which JSON turns into a string', 'extra.when', (d) => void ((d['extra'] as Record<string, unknown>)['when'] = new Date(0))],
  ['a hole in a list in extra, which JSON turns into null', 'extra.list[1]', (d) => {
    // eslint-disable-next-line no-sparse-arrays
    ;(d['extra'] as Record<string, unknown>)['list'] = [1, , 3]
  }],
  ['a cycle in extra', 'extra.self', (d) => {
    const extra = d['extra'] as Record<string, unknown>
    extra['self'] = extra
  }],
]

export function hostileRecordsTests(ctx: SuiteContext): void {
  describe('hostile environment: records', () => {
    describe('what the store accepts, it can read back', () => {
      it('create() and update() refuse, before any I/O and naming the field, a description load() could not read back', async () => {
        const { store, locator } = await ctx.freshStore()
        const stored = job(store, 'stored', { extra: { kept: true } })
        await store.create(stored)
        const before = await store.load(stored.jobStoreID)
        for (const [what, field, change] of REFUSED) {
          const fresh = job(store, `fresh ${what}`) as unknown as Record<string, unknown>
          change(fresh)
          const changed = { ...structuredCloneSafe(before), extra: { ...before.extra } } as unknown as Record<string, unknown>
          change(changed)
          const spies = spyPrimitives(store)
          try {
            for (const call of [() => store.create(fresh as unknown as JobDescription), () => store.update(changed as unknown as JobDescription)]) {
              const error = await caught(call)
              expect(error, what).toBeInstanceOf(InvalidArgumentError)
              expect(error.message, what).toContain(field)
            }
            expect(spies.calls(), `${what}: storage was called`).toBe(0)
          } finally {
            spies.restore()
          }
          expect(await store.exists(fresh['jobStoreID'] as string), what).toBe(false)
        }
        const other = await ctx.reopen(locator)
        expect(await other.load(stored.jobStoreID)).toEqual(before)
      })

      it('absent fields get their defaults: requirements {} and a bare description are created whole and read back equal', async () => {
        const { store, locator } = await ctx.freshStore()
        const empty = job(store, 'empty requirements', { requirements: {} as JobDescription['requirements'] })
        await store.create(empty)
        expect(empty.requirements).toEqual(DEFAULT_REQUIREMENTS)
        const bare = { jobName: 'bare', jobStoreID: job(store, 'id only').jobStoreID, requirements: { memory: 5 } } as unknown as JobDescription
        await store.create(bare)
        expect(bare).toMatchObject({ children: [], followOns: [], services: [], filesToDelete: [], jobsToDelete: [], extra: {} })
        expect(bare.requirements).toEqual({ ...DEFAULT_REQUIREMENTS, memory: 5 })
        const other = await ctx.reopen(locator)
        expect(await other.load(empty.jobStoreID)).toEqual(empty)
        expect(await other.load(bare.jobStoreID as string)).toEqual(bare)
        // The parent of such jobs keeps them through clean().
        const root = job(store, 'root', { children: [empty.jobStoreID, bare.jobStoreID as string] })
        await store.createRootJob(root)
        const report = await cleanReport(other)
        expect(report.deletedJobs).toEqual([])
        expect((await other.loadRootJob()).children).toEqual(root.children)
      })

      it('a batch with one bad job writes none of its jobs', async () => {
        const { store, locator } = await ctx.freshStore()
        const good = Array.from({ length: 5 }, (_, i) => job(store, `good-${i}`))
        const bad = job(store, 'bad', { children: ['not-a-job-id'] })
        const error = await caught(() =>
          store.batch(async () => {
            for (const desc of [...good.slice(0, 2), bad, ...good.slice(2)]) await store.create(desc)
          }),
        )
        expect(error).toBeInstanceOf(InvalidArgumentError)
        expect(error.message).toContain('children')
        // A job spoiled after its create() call, before the batch is written, is caught too, and nothing written.
        const spoiled = job(store, 'spoiled')
        const late = await caught(() =>
          store.batch(async () => {
            for (const desc of good) await store.create(desc)
            await store.create(spoiled)
            spoiled.extra['when'] = new Date(0) as unknown as string
          }),
        )
        expect(late).toBeInstanceOf(InvalidArgumentError)
        expect(late.message).toContain('extra.when')
        const other = await ctx.reopen(locator)
        for (const desc of [...good, bad, spoiled]) expect(await other.exists(desc.jobStoreID)).toBe(false)
      })

      it('property: any description create() and update() accept, load() returns equal (60 random descriptions)', async () => {
        const { store, locator } = await ctx.freshStore()
        const other = await ctx.reopen(locator)
        // Seeded, and the seed is in every message: a failure can be replayed. (The suite ships to backend authors,
        // so it brings its own generator; src/job-validation.test.ts runs the same property with fast-check.)
        const seed = Math.floor(Math.random() * 2 ** 31)
        const rand = mulberry32(seed)
        let accepted = 0
        let refused = 0
        for (let i = 0; i < 60; i++) {
          const desc = randomDescription(rand) as unknown as JobDescription
          store.assignID(desc)
          const what = `seed ${seed}, case ${i}`
          const error = await caught(() => store.create(desc)).catch(() => undefined)
          if (error !== undefined) {
            expect(error, `${what}: ${String(error)}`).toBeInstanceOf(InvalidArgumentError)
            expect(await store.exists(desc.jobStoreID as string), what).toBe(false)
            refused++
            continue
          }
          accepted++
          expect(await other.load(desc.jobStoreID as string), what).toEqual(withoutNegativeZero(desc))
          desc.extra = { ...desc.extra, updated: [desc.jobName] }
          await store.update(desc)
          expect(await other.load(desc.jobStoreID as string), what).toEqual(withoutNegativeZero(desc))
        }
        expect(accepted).toBeGreaterThan(10)
        expect(refused).toBeGreaterThan(10)
      })
    })

    describe('clean() never turns damage into loss', () => {
      it('a truncated record is kept and reported with every reference to it, its successors survive; restored, nothing was lost', async () => {
        const { store, locator } = await ctx.freshStore()
        // root -> parent -> damaged -> (grandchild, its follow-on -> great-grandchild); and an orphan nobody reaches.
        const root = job(store, 'root')
        const parent = job(store, 'parent')
        const damaged = job(store, 'damaged')
        const grandchild = job(store, 'grandchild')
        const followOn = job(store, 'follow-on')
        const greatGrandchild = job(store, 'great-grandchild')
        const orphan = job(store, 'orphan')
        root.children = [parent.jobStoreID]
        parent.children = [damaged.jobStoreID]
        damaged.children = [grandchild.jobStoreID]
        damaged.followOns = [followOn.jobStoreID]
        followOn.children = [greatGrandchild.jobStoreID]
        for (const desc of [parent, damaged, grandchild, followOn, greatGrandchild, orphan]) await store.create(desc)
        await store.createRootJob(root)
        const saved = await store.load(damaged.jobStoreID)
        await truncateRecord(store, damaged.jobStoreID)
        expect(await caught(() => store.load(damaged.jobStoreID))).toBeInstanceOf(CorruptRecordError)

        const other = await ctx.reopen(locator)
        const reported: string[] = []
        let report: CleanReport | undefined
        await other.clean(undefined, { onReport: (r) => (report = r), onCorruptRecord: (err) => reported.push(err.record) })
        // Its parent keeps it; its successors cannot be told apart from unreachable jobs while it cannot be read:
        // none is deleted.
        expect((await other.load(parent.jobStoreID)).children).toEqual([damaged.jobStoreID])
        for (const desc of [grandchild, followOn, greatGrandchild, orphan]) expect(await other.exists(desc.jobStoreID)).toBe(true)
        expect((await other.load(followOn.jobStoreID)).children).toEqual([greatGrandchild.jobStoreID])
        expect(report?.deletedJobs).toEqual([])
        expect(report?.corruptJobs).toEqual([damaged.jobStoreID])
        expect(reported).toEqual([`job ${damaged.jobStoreID}`])
        expect([...(report?.keptUnreachableJobs ?? [])].sort()).toEqual(
          [grandchild, followOn, greatGrandchild, orphan].map((d) => d.jobStoreID).sort(),
        )

        // Restored from a copy: the next clean() finds the whole graph, and removes only the orphan.
        await store.update(saved)
        const after = await cleanReport(other)
        expect(after.corruptJobs).toEqual([])
        expect(after.deletedJobs).toEqual([orphan.jobStoreID])
        expect(after.reachableJobs).toBe(6)
        expect((await other.load(parent.jobStoreID)).children).toEqual([damaged.jobStoreID])
        const restored = await other.load(damaged.jobStoreID)
        expect(restored.children).toEqual([grandchild.jobStoreID])
        expect(restored.followOns).toEqual([followOn.jobStoreID])
        for (const desc of [grandchild, followOn, greatGrandchild]) expect(await other.exists(desc.jobStoreID)).toBe(true)
      })

      it('a damaged record nobody reaches is kept and reported; provably unreachable jobs still go', async () => {
        const { store } = await ctx.freshStore()
        const root = job(store, 'root')
        const child = job(store, 'child')
        const lostAndDamaged = job(store, 'unreachable, damaged')
        const lost = job(store, 'unreachable')
        const asked = job(store, 'to delete, damaged')
        root.children = [child.jobStoreID]
        child.jobsToDelete = [asked.jobStoreID]
        for (const desc of [child, lostAndDamaged, lost, asked]) await store.create(desc)
        await store.createRootJob(root)
        await truncateRecord(store, lostAndDamaged.jobStoreID)
        await truncateRecord(store, asked.jobStoreID)

        const report = await cleanReport(store)
        expect(await store.exists(lostAndDamaged.jobStoreID)).toBe(true)
        expect([...report.corruptJobs].sort()).toEqual([lostAndDamaged.jobStoreID, asked.jobStoreID].sort())
        // Asked for through jobsToDelete: deleting a damaged record is what its owner wanted.
        expect([...report.deletedJobs].sort()).toEqual([lost.jobStoreID, asked.jobStoreID].sort())
        expect(report.keptUnreachableJobs).toEqual([])
        expect(await store.exists(lostAndDamaged.jobStoreID)).toBe(true)
        expect(await store.exists(asked.jobStoreID)).toBe(false)
        expect((await store.load(child.jobStoreID)).jobsToDelete).toEqual([])
      })

      it('a damaged job in the middle of the graph: the root keeps it, and the jobs below it survive', async () => {
        const { store } = await ctx.freshStore()
        const root = job(store, 'root')
        const middle = job(store, 'middle')
        const below = job(store, 'below')
        const belowThat = job(store, 'below that')
        root.followOns = [middle.jobStoreID]
        middle.services = [below.jobStoreID]
        below.children = [belowThat.jobStoreID]
        for (const desc of [middle, below, belowThat]) await store.create(desc)
        await store.createRootJob(root)
        const saved = await store.load(middle.jobStoreID)
        await truncateRecord(store, middle.jobStoreID)
        for (let round = 0; round < 2; round++) {
          const report = await cleanReport(store)
          expect((await store.loadRootJob()).followOns).toEqual([middle.jobStoreID])
          for (const desc of [below, belowThat]) expect(await store.exists(desc.jobStoreID)).toBe(true)
          expect(report.deletedJobs).toEqual([])
          expect(report.corruptJobs).toEqual([middle.jobStoreID])
        }
        await store.update(saved)
        const after = await cleanReport(store)
        expect(after.deletedJobs).toEqual([])
        expect(after.reachableJobs).toBe(4)
        expect((await store.load(below.jobStoreID)).children).toEqual([belowThat.jobStoreID])
      })

      it('a job cache that misses a job does not make clean() drop it', async () => {
        const { store } = await ctx.freshStore()
        const root = job(store, 'root')
        const known = job(store, 'in the cache')
        const unknown = job(store, 'not in the cache')
        const belowUnknown = job(store, 'below it')
        root.children = [known.jobStoreID, unknown.jobStoreID]
        unknown.children = [belowUnknown.jobStoreID]
        for (const desc of [known, unknown, belowUnknown]) await store.create(desc)
        await store.createRootJob(root)
        const cache = new Map<string, JobDescription>([[known.jobStoreID, await store.load(known.jobStoreID)]])
        const report = await cleanReport(store, cache)
        expect(report.deletedJobs).toEqual([])
        expect((await store.loadRootJob()).children).toEqual([known.jobStoreID, unknown.jobStoreID])
        const again = await cleanReport(store)
        expect(again.deletedJobs).toEqual([])
        expect(again.reachableJobs).toBe(4)
      })

      it('a damaged root stops clean() with CorruptRecordError, and nothing changes', async () => {
        const { store } = await ctx.freshStore({ retryCount: 2 })
        const temp = await store.writeFileStream((w) => void w.end('temp'))
        const root = job(store, 'root', { filesToDelete: [temp] })
        const child = job(store, 'child', { remainingTryCount: 0 })
        const orphan = job(store, 'orphan')
        root.children = [child.jobStoreID]
        for (const desc of [child, orphan]) await store.create(desc)
        await store.createRootJob(root)
        await truncateRecord(store, root.jobStoreID)
        const damagedBytes = await rawRecord(store, root.jobStoreID)
        const childBefore = await store.load(child.jobStoreID)
        const error = await caught(() => store.clean())
        expect(error).toBeInstanceOf(CorruptRecordError)
        expect(error.code).toBe('CORRUPT_RECORD')
        expect(error.message).toContain(root.jobStoreID)
        expect(await store.exists(orphan.jobStoreID)).toBe(true)
        expect(await store.fileExists(temp)).toBe(true)
        expect(await store.load(child.jobStoreID)).toEqual(childBefore)
        expect((await rawRecord(store, root.jobStoreID)).equals(damagedBytes)).toBe(true)
      })
    })
  })
}

/** A deep copy of a JSON-only description. */
function structuredCloneSafe(desc: JobDescription): JobDescription {
  return JSON.parse(JSON.stringify(desc)) as JobDescription
}

/** -0 is stored as 0 (JSON has one zero; `-0 === 0`): the one change a round trip makes, documented in guarantees.md. */
export function withoutNegativeZero<T>(value: T): T {
  if (typeof value === 'number') return (Object.is(value, -0) ? 0 : value) as T
  if (Array.isArray(value)) return value.map(withoutNegativeZero) as T
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutNegativeZero(v)])) as T
  }
  return value
}

/** A seeded PRNG (mulberry32): uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ABSENT = Symbol('absent')

/**
 * A job description as a caller might build one: half of them with care (absent fields left to their defaults),
 * half with a one-in-eight chance of an odd value in each field (undefined, NaN, ±Infinity, -0, functions,
 * BigInts, Dates, Maps, symbols, wrong types) and odd values inside `extra`.
 */
function randomDescription(rand: () => number): Record<string, unknown> {
  const hostile = rand() < 0.5
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T
  const text = (): string =>
    pick(['', 'a', 'job ✓', '日本語', '\u0000\u001b[2J', '\ud800', '"quoted"\\', 'x'.repeat(300), '__proto__', 'constructor', String(rand())])
  const odd = (): unknown =>
    pick([undefined, null, NaN, Infinity, -Infinity, -0, '', [], {}, () => 0, 10n, new Date(0), new Map(), Symbol('s'), 1.5, -1, 'x', [1, , 2]])
  const json = (depth: number): unknown => {
    switch (Math.floor(rand() * (depth > 3 ? 4 : 6))) {
      case 0:
        return pick([null, true, false])
      case 1:
        return pick([0, -0, 1, -7, 0.1, 1e308, 5e-324, Number.MAX_SAFE_INTEGER, rand() * 1e6])
      case 2:
        return text()
      case 3:
        return hostile && rand() < 0.05 ? odd() : pick([[], {}, ''])
      case 4:
        return Array.from({ length: Math.floor(rand() * 4) }, () => json(depth + 1))
      default:
        return Object.fromEntries(Array.from({ length: Math.floor(rand() * 4) }, () => [text(), json(depth + 1)]))
    }
  }
  const field = (valid: () => unknown): unknown => (hostile && rand() < 1 / 8 ? odd() : rand() < 1 / 7 ? ABSENT : valid())
  const list = (id: () => string): unknown => field(() => Array.from({ length: Math.floor(rand() * 4) }, id))
  const fileId = (): string =>
    mintFileId({ owner: rand() < 0.5 ? randomId() : undefined, cleanup: rand() < 0.5, basename: rand() < 0.5 ? pick(['a b.txt', 'ü', 'x']) : undefined })
  const number = (): number => pick([0, -0, 1, 2.5, 2 * 1024 ** 3, Math.floor(rand() * 1e9)])
  const requirements = (): unknown =>
    strip({
      memory: field(number),
      cores: field(number),
      disk: field(number),
      preemptible: field(() => rand() < 0.5),
      accelerators: field(() => (rand() < 0.5 ? [] : [strip({ kind: 'gpu', count: 1, model: field(text) })])),
    })
  return strip({
    jobName: hostile ? field(text) : text(),
    unitName: field(text),
    displayName: field(text),
    command: field(text),
    requirements: field(requirements),
    children: list(randomId),
    followOns: list(randomId),
    services: list(randomId),
    jobsToDelete: list(randomId),
    filesToDelete: list(fileId),
    logJobStoreFileID: field(fileId),
    remainingTryCount: field(() => Math.floor(rand() * 5)),
    version: field(() => Math.floor(rand() * 100)),
    extra: field(() => Object.fromEntries(Array.from({ length: Math.floor(rand() * 5) }, () => [text(), json(0)]))),
  })
}

function strip(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== ABSENT))
}
