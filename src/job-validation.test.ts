/**
 * "What the store accepts, it can read back", property-based (fast-check): `checkJobDescription` (what `create()`
 * and `update()` apply) and `decodeJob` (what `load()` applies) are one schema. The conformance suite runs the
 * same property through the store on every backend (`conformance-tests/hostile-records-tests.ts`); here it runs
 * 10,000 times without I/O, and 1,000 times through a file store with spies on its storage primitives.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { AbstractJobStore } from './abstract-job-store.js'
import { CorruptRecordError, InvalidArgumentError } from './errors.js'
import { randomId } from './ids.js'
import { checkJobDescription, decodeJob, encodeJob, newJobDescription, type JobDescription } from './job-description.js'
import { openJobStore } from './open.js'
import './builtin-backends.js'
import { withoutNegativeZero } from '../conformance-tests/hostile-records-tests.js'


describe('accepted means readable: checkJobDescription and decodeJob are one schema (10,000 cases)', () => {
  it('a description checkJobDescription accepts is decoded equal; a refused one is an InvalidArgumentError and is left as it was', () => {
    let accepted = 0
    let refused = 0
    fc.assert(
      fc.property(arbitraryDescription(), (init) => {
        const id = randomId()
        const desc = { ...init, jobStoreID: id } as unknown as JobDescription
        const before = Object.entries(desc)
        try {
          checkJobDescription(desc)
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError)
          expect((err as Error).message).toMatch(/^invalid job description \S+: \S/)
          // Nothing filled in, nothing replaced.
          expect(Object.entries(desc)).toEqual(before)
          for (const [key, value] of before) expect(Object.is((desc as unknown as Record<string, unknown>)[key], value)).toBe(true)
          refused++
          return
        }
        accepted++
        expect(decodeJob(encodeJob(desc), id)).toEqual(withoutNegativeZero(desc))
      }),
      { numRuns: 10_000 },
    )
    expect(accepted).toBeGreaterThan(2000)
    expect(refused).toBeGreaterThan(2000)
  })

  it('a stored record is held to the same fields: what create() would refuse, load() calls corrupt, naming the field', () => {
    const id = randomId()
    const good = { ...newJobDescription({ jobName: 'x' }), jobStoreID: id, version: 1 }
    const record = (fields: Record<string, unknown>): string => JSON.stringify({ schemaVersion: 1, ...good, ...fields })
    expect(decodeJob(record({}), id)).toEqual(good)
    for (const [fields, field] of [
      [{ requirements: {} }, 'requirements.memory'],
      [{ requirements: { ...good.requirements, accelerators: [{ kind: 'gpu' }] } }, 'requirements.accelerators[0].count'],
      [{ children: ['not-a-job-id'] }, 'children[0]'],
      [{ filesToDelete: ['nope'] }, 'filesToDelete[0]'],
      [{ logJobStoreFileID: 'log' }, 'logJobStoreFileID'],
      [{ displayName: 3 }, 'displayName'],
      [{ remainingTryCount: null }, 'remainingTryCount'],
      [{ extra: null }, 'extra'],
      [{ children: undefined }, 'children'], // a record that lost its successors is damage, never "no successors"
    ] as const) {
      let error: unknown
      try {
        decodeJob(record(fields), id)
      } catch (err) {
        error = err
      }
      expect(error, field).toBeInstanceOf(CorruptRecordError)
      expect((error as Error).message, field).toContain(field)
    }
  })
})

describe('accepted means readable, through a file store (1,000 cases)', () => {
  let dir: string
  let store: AbstractJobStore
  const primitives = ['getObject', 'headObject', 'putObject', 'deleteObjects', 'listObjects'] as const
  let spies: ReturnType<typeof vi.spyOn>[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jobstore-validation-'))
    store = await openJobStore(`file:${join(dir, 'store')}`, { durable: false } as never)
    await store.initialize()
    spies = primitives.map((name) => vi.spyOn(store as unknown as Record<string, () => unknown>, name))
  })
  afterAll(async () => {
    for (const spy of spies) spy.mockRestore()
    await rm(dir, { recursive: true, force: true })
  })

  it('create() accepts and load() returns equal, or create() and update() refuse before any storage primitive is called', async () => {
    let accepted = 0
    let refused = 0
    await fc.assert(
      fc.asyncProperty(arbitraryDescription(), async (init) => {
        const desc = init as unknown as JobDescription
        store.assignID(desc)
        for (const spy of spies) spy.mockClear()
        let error: unknown
        try {
          await store.create(desc)
        } catch (err) {
          error = err
        }
        if (error !== undefined) {
          expect(error, String(error)).toBeInstanceOf(InvalidArgumentError)
          expect((await caughtOf(() => store.update(desc))) instanceof InvalidArgumentError).toBe(true)
          for (const spy of spies) expect(spy).not.toHaveBeenCalled()
          refused++
          return
        }
        accepted++
        expect(await store.load(desc.jobStoreID as string)).toEqual(withoutNegativeZero(desc))
      }),
      { numRuns: 1_000 },
    )
    expect(accepted).toBeGreaterThan(200)
    expect(refused).toBeGreaterThan(200)
  })
})

async function caughtOf(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn()
  } catch (err) {
    return err
  }
  return undefined
}

/**
 * Job descriptions as a caller might build them: fields present or absent, right or wrong, with hostile extras
 * (any JSON, odd numbers, undefined, functions, dates, cycles aside). Half are built with care (every present
 * field of the right shape, absent ones left to their defaults), half with a one-in-eight chance of an odd value
 * in each field, so that both acceptance and refusal are exercised.
 */
export function arbitraryDescription(): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(describedWith(0), describedWith(1))
}

function describedWith(oddWeight: number): fc.Arbitrary<Record<string, unknown>> {
  const jobId = fc.stringMatching(/^[0-9a-hjkmnp-tv-z]{26}$/)
  const fileId = fc
    .tuple(fc.oneof(jobId, fc.constant('_')), fc.constantFrom('c', 'k'), jobId, fc.option(fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/), { nil: undefined }))
    .map(([owner, mode, rand, base]) => `${owner}/${owner === '_' ? 'k' : mode}/${rand}${base === undefined ? '' : `-${base}`}`)
  const oddValue = fc.oneof(
    fc.constantFrom<unknown>(undefined, null, NaN, Infinity, -Infinity, -0, 1e308, '', [], {}, () => 0, 10n, new Date(0), new Map(), Symbol('s')),
    fc.double(),
    fc.integer(),
    fc.string(),
    fc.string({ unit: 'binary' }),
  )
  /** Mostly `arb`, sometimes absent, and an odd value with weight `oddWeight` (of 8). */
  const maybe = (arb: fc.Arbitrary<unknown>, odd: fc.Arbitrary<unknown> = oddValue): fc.Arbitrary<unknown> =>
    oddWeight === 0
      ? fc.oneof({ weight: 6, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(ABSENT) })
      : fc.oneof({ weight: 6, arbitrary: arb }, { weight: 1, arbitrary: fc.constant(ABSENT) }, { weight: oddWeight, arbitrary: odd })
  const idList = (id: fc.Arbitrary<string>): fc.Arbitrary<unknown> =>
    maybe(fc.array(id, { maxLength: 4 }), fc.oneof(oddValue, fc.array(fc.oneof(id, fc.string(), oddValue), { minLength: 1, maxLength: 3 })))
  const number = fc.oneof(fc.nat(), fc.double({ min: 0, max: 1e12, noNaN: true }), fc.constant(-0))
  const requirements = fc.record(
    {
      memory: maybe(number),
      cores: maybe(number),
      disk: maybe(number),
      preemptible: maybe(fc.boolean()),
      accelerators: maybe(
        fc.array(
          fc.record({ kind: fc.string(), count: fc.nat(), model: fc.string(), brand: fc.string(), api: fc.string() }, { requiredKeys: ['kind', 'count'] }),
          { maxLength: 2 },
        ),
      ),
    },
    { requiredKeys: [] },
  )
  const jsonWithOdd = fc.oneof({ weight: 12, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, { weight: oddWeight, arbitrary: oddValue })
  const extra = fc.oneof(
    fc.dictionary(fc.string(), jsonWithOdd, { maxKeys: 6 }),
    fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3, noNullPrototype: false }),
  )
  return fc
    .record({
      jobName: oddWeight === 0 ? fc.string() : maybe(fc.string()),
      unitName: maybe(fc.string()),
      displayName: maybe(fc.string()),
      command: maybe(fc.string()),
      requirements: maybe(requirements),
      children: idList(jobId),
      followOns: idList(jobId),
      services: idList(jobId),
      jobsToDelete: idList(jobId),
      filesToDelete: idList(fileId),
      logJobStoreFileID: maybe(fileId),
      remainingTryCount: maybe(fc.integer({ min: -1, max: 10 })),
      version: maybe(fc.nat({ max: 1000 })),
      extra: maybe(extra),
    })
    .map((record) => stripAbsent(record) as Record<string, unknown>)
}

const ABSENT = Symbol('absent')

function stripAbsent(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value
  const proto = Object.getPrototypeOf(value) as unknown
  if (proto !== Object.prototype && proto !== null) return value
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) if (v !== ABSENT) out[key] = key === 'requirements' ? stripAbsent(v) : v
  return out
}
