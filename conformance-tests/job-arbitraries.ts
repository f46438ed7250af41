/**
 * fast-check arbitraries of job descriptions, for the "accepted means readable" properties (conformance suite and
 * `src/job-validation.test.ts`). No vitest import: usable from scripts too.
 */
import fc from 'fast-check'

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
