/**
 * Servers that do not enforce conditional writes (docs/guarantees.md, "Conditional writes are proven, not
 * assumed"). A fault proxy in front of the real local server (MinIO, Azurite, fake-gcs-server) strips the
 * conditions from write requests and signs them again (test-servers/fault-proxy.ts, `stripConditions`): the server
 * then stores whatever comes, as some S3-compatible services do. Behind it, the store must refuse to open; behind
 * a proxy that strips them only from multipart commits, too. Through a proxy that passes everything, the proof
 * passes and the store keeps its promises (16 racers, one initialize wins, 400 compare-and-swap increments end
 * at 400).
 */
import { afterEach, describe, expect, it, onTestFinished } from 'vitest'
import { BlobServiceClient } from '@azure/storage-blob'
import type { AbstractJobStore, JobStoreOptions } from '../src/abstract-job-store.js'
import { forgetConditionalWriteVerdicts, PROOF_PREFIX, SKIP_PROOF_ENV } from '../src/conditional-write-proof.js'
import {
  ConcurrentFileModificationError,
  ConditionalWritesUnsupportedError,
  JobStoreError,
  JobStoreExistsError,
} from '../src/errors.js'
import { randomId } from '../src/ids.js'
import { newJobDescription } from '../src/job-description.js'
import { AzureJobStore } from './azure/index.js'
import { GcsJobStore } from './gcs/index.js'
import { S3JobStore } from './s3/index.js'
import { STATUS_ANSWERS, startFaultProxy, type FaultKind, type FaultProxy, type StatusAnswer, type StripConditionsOptions } from '../test-servers/fault-proxy.js'
import type { IncomingMessage } from 'node:http'

type Backend = 's3' | 'azure' | 'gcs'
/** As in issue 14: 16 racers, 400 increments. */
const RACERS = 16
const INCREMENTS = 400
const CONTAINER = 'jobstore-conditional-writes'
const PROOFS_UNDER_FAULTS = 8
const FAULT_RATE = 0.1

function need(name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set: the vitest global setup should have started the test servers`)
  return value
}

interface Target {
  /** Origin of the real server. */
  upstream(): string
  newLocator(): string
  /** A store at `locator` whose requests all go to `endpoint`. */
  open(locator: string, endpoint: string, options?: JobStoreOptions): AbstractJobStore
  /** How the proxy strips and signs again for this service. */
  strip(on: 'all' | 'multipart-commit'): StripConditionsOptions
  /** The names the backend gives its write paths (in ConditionalWritesUnsupportedError). */
  readonly single: string
  readonly multipart: string
  /** An answer that is neither a failed condition nor a success, and that the SDK does not retry. */
  readonly forbidden: StatusAnswer
}

function azureEndpoint(): URL {
  return new URL(/BlobEndpoint=([^;]*)/.exec(need('AZURE_STORAGE_CONNECTION_STRING'))?.[1] ?? '')
}

const TARGETS: Record<Backend, Target> = {
  s3: {
    upstream: () => need('AWS_ENDPOINT_URL'),
    newLocator: () => `s3://${CONTAINER}/${randomId()}`,
    open: (locator, endpoint, options = {}) => new S3JobStore(locator, { ...options, clientConfig: { endpoint } }),
    strip: (on) => ({
      service: 's3',
      on,
      s3Credentials: { accessKeyId: need('AWS_ACCESS_KEY_ID'), secretAccessKey: need('AWS_SECRET_ACCESS_KEY') },
    }),
    single: 'PutObject',
    multipart: 'CompleteMultipartUpload (multipart upload)',
    forbidden: {
      status: 403,
      code: 'AccessDenied',
      contentType: 'application/xml',
      body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>',
    },
  },
  azure: {
    upstream: () => azureEndpoint().origin,
    newLocator: () => {
      const account = BlobServiceClient.fromConnectionString(need('AZURE_STORAGE_CONNECTION_STRING')).accountName
      return `azure://${account}/${CONTAINER}/${randomId()}`
    },
    open: (locator, endpoint, options = {}) => {
      // The backend reads the connection string when constructed: one whose blob endpoint is `endpoint`, for now.
      const original = need('AZURE_STORAGE_CONNECTION_STRING')
      process.env['AZURE_STORAGE_CONNECTION_STRING'] = original.replace(/BlobEndpoint=[^;]*/, `BlobEndpoint=${endpoint}${azureEndpoint().pathname}`)
      try {
        return new AzureJobStore(locator, options)
      } finally {
        process.env['AZURE_STORAGE_CONNECTION_STRING'] = original
      }
    },
    strip: (on) => ({
      service: 'azure',
      on,
      azureAccountKey: /AccountKey=([^;]*)/.exec(need('AZURE_STORAGE_CONNECTION_STRING'))?.[1] ?? '',
    }),
    single: 'Put Blob',
    multipart: 'Put Block List (staged blocks)',
    forbidden: {
      status: 403,
      code: 'AuthorizationPermissionMismatch',
      contentType: 'application/xml',
      headers: { 'x-ms-error-code': 'AuthorizationPermissionMismatch' },
      body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>',
    },
  },
  gcs: {
    upstream: () => need('STORAGE_EMULATOR_HOST'),
    newLocator: () => `gs://${CONTAINER}/${randomId()}`,
    open: (locator, endpoint, options = {}) => new GcsJobStore(locator, { ...options, apiEndpoint: endpoint }),
    strip: (on) => ({ service: 'gcs', on }),
    single: 'single-request upload',
    multipart: 'resumable upload',
    forbidden: {
      status: 403,
      code: 'forbidden',
      contentType: 'application/json; charset=UTF-8',
      body: JSON.stringify({ error: { code: 403, message: 'Forbidden', errors: [{ message: 'Forbidden', domain: 'global', reason: 'forbidden' }] } }),
    },
  },
}

/** Whether a request is a write of the proof's scratch object. */
function isProofWrite(req: IncomingMessage): boolean {
  return (req.method === 'PUT' || req.method === 'POST') && decodeURIComponent(req.url ?? '').includes(PROOF_PREFIX)
}

function isProofRequest(req: IncomingMessage): boolean {
  return decodeURIComponent(req.url ?? '').includes(PROOF_PREFIX)
}

async function proxy(
  target: Target,
  options: { strip?: 'all' | 'multipart-commit'; choose?: (req: IncomingMessage) => FaultKind | StatusAnswer | undefined } = {},
): Promise<FaultProxy & { proofRequests: () => number }> {
  let proofRequests = 0
  const started = await startFaultProxy({
    target: target.upstream(),
    ...(options.strip !== undefined ? { stripConditions: target.strip(options.strip) } : {}),
    choose: (req) => {
      if (isProofRequest(req)) proofRequests++
      return options.choose?.(req)
    },
  })
  onTestFinished(() => started.close())
  return Object.assign(started, { proofRequests: () => proofRequests })
}

/** A store straight on the server, to set up and check; destroyed after the test. */
function direct(target: Target, locator: string): AbstractJobStore {
  const store = target.open(locator, target.upstream())
  onTestFinished(() => store.destroy())
  return store
}

/**
 * `INCREMENTS` compare-and-swap increments of a counter job, shared among `stores` (each loads, adds one, updates
 * with `ifVersion`, and on a conflict loads again). Returns the increments reported done and the counter at the end.
 */
async function incrementRace(stores: readonly AbstractJobStore[]): Promise<{ reported: number; counter: number }> {
  const [first] = stores as [AbstractJobStore]
  const counter = newJobDescription({ jobName: 'counter', extra: { count: 0 } })
  first.assignID(counter)
  await first.create(counter)
  const id = counter.jobStoreID as string
  let reported = 0
  await Promise.all(
    stores.map(async (store, i) => {
      const mine = Math.floor(INCREMENTS / stores.length) + (i < INCREMENTS % stores.length ? 1 : 0)
      for (let n = 0; n < mine; n++) {
        for (;;) {
          const desc = await store.load(id)
          desc.extra['count'] = (desc.extra['count'] as number) + 1
          try {
            await store.update(desc, { ifVersion: desc.version as number })
            reported++
            break
          } catch (err) {
            if (!(err instanceof ConcurrentFileModificationError)) throw err
          }
        }
      }
    }),
  )
  return { reported, counter: (await first.load(id)).extra['count'] as number }
}

async function proofLeftovers(store: AbstractJobStore): Promise<string[]> {
  const keys: string[] = []
  const lister = store as unknown as { listObjects(prefix: string): AsyncIterable<{ key: string }> }
  for await (const object of lister.listObjects(PROOF_PREFIX)) keys.push(object.key)
  return keys
}

function rejection(result: PromiseSettledResult<unknown>): unknown {
  return result.status === 'rejected' ? result.reason : undefined
}

afterEach(() => {
  // Each test brings its own proxy (a scope of its own); forgetting keeps a test from leaning on an earlier one.
  forgetConditionalWriteVerdicts()
})

for (const name of ['s3', 'azure', 'gcs'] as const) {
  const target = TARGETS[name]
  describe(`servers that do not enforce conditional writes: ${name}`, () => {
    it(`behind a server that ignores conditional writes, ${RACERS} racing initialize() and resume() refuse to open (CONDITIONAL_WRITES_UNSUPPORTED)`, async () => {
      const stripping = await proxy(target, { strip: 'all' })
      const locator = target.newLocator()
      const cleanup = direct(target, locator)
      const racers = Array.from({ length: RACERS }, () => target.open(locator, stripping.url))
      const results = await Promise.allSettled(racers.map((store) => store.initialize()))
      const winners = racers.filter((_, i) => results[i]?.status === 'fulfilled')
      let damage = ''
      if (winners.length > 0) {
        // What running without the guarantee does: increments reported done that the counter does not hold.
        const race = await incrementRace(winners)
        damage = `; ${race.reported} reported compare-and-swap increments left the counter at ${race.counter}`
      }
      expect(winners.length, `${winners.length} of ${RACERS} racers won initialize()${damage}`).toBe(0)
      expect(stripping.stats.conditionsStripped).toBeGreaterThan(0)
      for (const result of results) {
        const error = rejection(result)
        expect(error).toBeInstanceOf(ConditionalWritesUnsupportedError)
        expect((error as ConditionalWritesUnsupportedError).code).toBe('CONDITIONAL_WRITES_UNSUPPORTED')
        expect((error as ConditionalWritesUnsupportedError).guarantee).toBe('create-if-absent')
        expect((error as ConditionalWritesUnsupportedError).writePath).toBe(target.single)
        expect((error as Error).message).toContain(target.single)
      }
      // An existing store: resume() behind the same server refuses too, from the verdict kept in the process.
      await cleanup.initialize()
      const proofRequestsBefore = stripping.proofRequests()
      const resumed = await Promise.allSettled(
        Array.from({ length: RACERS }, () => target.open(locator, stripping.url).resume()),
      )
      for (const result of resumed) expect(rejection(result)).toBeInstanceOf(ConditionalWritesUnsupportedError)
      expect(stripping.proofRequests()).toBe(proofRequestsBefore)
      // The proof cleaned up after itself.
      expect(await proofLeftovers(cleanup)).toEqual([])
    })

    it('behind a server that honours conditions on single requests only, the store refuses to open and names the multipart path', async () => {
      const stripping = await proxy(target, { strip: 'multipart-commit' })
      const locator = target.newLocator()
      const cleanup = direct(target, locator)
      const error = await initializeError(target.open(locator, stripping.url))
      expect(error).toBeInstanceOf(ConditionalWritesUnsupportedError)
      expect((error as ConditionalWritesUnsupportedError).guarantee).toBe('create-if-absent')
      expect((error as ConditionalWritesUnsupportedError).writePath).toBe(target.multipart)
      expect(stripping.stats.conditionsStripped).toBeGreaterThan(0)
      // Nothing was created: no config, no probe object, no upload left behind.
      expect(await cleanup.resume().catch((err: JobStoreError) => err.code)).toBe('NO_SUCH_JOB_STORE')
      await cleanup.initialize()
      expect(await proofLeftovers(cleanup)).toEqual([])
    })

    it(`on a server that enforces conditional writes the proof passes once per process for a few requests, one of ${RACERS} racing initialize() wins, and ${INCREMENTS} racing increments all land`, async () => {
      const passing = await proxy(target)
      const locator = target.newLocator()
      const cleanup = direct(target, locator)
      const racers = Array.from({ length: RACERS }, () => target.open(locator, passing.url))
      const results = await Promise.allSettled(racers.map((store) => store.initialize()))
      const winners = racers.filter((_, i) => results[i]?.status === 'fulfilled')
      expect(winners).toHaveLength(1)
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(JobStoreExistsError)
      }
      const proofRequests = passing.proofRequests()
      console.log(`[${name}] conditional-write proof: ${proofRequests} requests (one proof for ${RACERS} racing stores)`)
      expect(proofRequests).toBeGreaterThan(0)
      expect(proofRequests).toBeLessThanOrEqual(20)
      const losers = racers.filter((store) => !winners.includes(store))
      await Promise.all(losers.map((store) => store.resume()))
      // Opening more stores of the same service and bucket costs no more proof.
      await target.open(target.newLocator(), passing.url).initialize().then(() => undefined)
      expect(passing.proofRequests()).toBe(proofRequests)
      // Four of the stores increment (sixteen on one key spend a minute on conflicts, and prove nothing more).
      const race = await incrementRace(racers.slice(0, 4))
      expect(race).toEqual({ reported: INCREMENTS, counter: INCREMENTS })
      await cleanup.resume()
      expect(await proofLeftovers(cleanup)).toEqual([])
    })

    it('skipConditionalWriteProof (or JOBSTORE_SKIP_CONDITIONAL_WRITE_PROOF=1) opens the store behind such a server, with one warning; a second create then overwrites silently', async () => {
      const stripping = await proxy(target, { strip: 'all' })
      const locator = target.newLocator()
      direct(target, locator)
      const warnings: Error[] = []
      const onWarning = (warning: Error): void => {
        if ((warning as Error & { code?: string }).code === 'JOBSTORE_CONDITIONAL_WRITES_UNPROVEN') warnings.push(warning)
      }
      process.on('warning', onWarning)
      onTestFinished(() => void process.off('warning', onWarning))
      const first = target.open(locator, stripping.url, { skipConditionalWriteProof: true })
      await first.initialize()
      process.env[SKIP_PROOF_ENV] = '1'
      let second: AbstractJobStore
      try {
        second = target.open(locator, stripping.url)
      } finally {
        delete process.env[SKIP_PROOF_ENV]
      }
      await second.resume()
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]?.message).toContain('single writer')
      expect(stripping.proofRequests()).toBe(0)
      // What the opt-out gives up: both creates of one job "succeed", the first one is lost.
      const job = newJobDescription({ jobName: 'first' })
      first.assignID(job)
      await first.create(job)
      await second.create({ ...structuredClone(job), jobName: 'second' })
      expect((await first.load(job.jobStoreID as string)).jobName).toBe('second')
    })

    it('the proof retries transient faults (a lost answer, a busy server) and calls an answer that is neither a rejection nor a success an ordinary error', async () => {
      let proofWrites = 0
      const [busy] = STATUS_ANSWERS[name] as [StatusAnswer]
      const faulty = await proxy(target, {
        choose: (req) => {
          if (!isProofWrite(req)) return undefined
          proofWrites++
          // The create lands but its answer is lost (the SDK retries into a failed condition); the second create
          // meets a busy server once.
          return proofWrites === 1 ? 'reset-after' : proofWrites === 2 ? busy : undefined
        },
      })
      const locator = target.newLocator()
      const cleanup = direct(target, locator)
      const store = target.open(locator, faulty.url)
      await store.initialize()
      expect(proofWrites).toBeGreaterThan(2)
      expect(faulty.stats.faults['reset-after']).toBe(1)

      let failing = true
      const forbidding = await proxy(target, {
        choose: (req) => (failing && isProofWrite(req) ? target.forbidden : undefined),
      })
      const other = target.newLocator()
      direct(target, other)
      const error = await initializeError(target.open(other, forbidding.url))
      expect(error).toBeInstanceOf(JobStoreError)
      expect((error as JobStoreError).code).not.toBe('CONDITIONAL_WRITES_UNSUPPORTED')
      // No verdict was kept: once the service answers, the proof runs again and passes.
      failing = false
      await target.open(other, forbidding.url).initialize()
      await cleanup.resume()
      expect(await proofLeftovers(cleanup)).toEqual([])
    })

    it(`under random faults (${PROOFS_UNDER_FAULTS} proofs, ${FAULT_RATE * 100}% of requests) the proof passes or fails with an ordinary error, never with a verdict`, async () => {
      const random = await startFaultProxy({
        target: target.upstream(),
        flavor: name,
        rate: FAULT_RATE,
        latencyMs: [10, 100],
        filter: isProofRequest,
      })
      onTestFinished(() => random.close())
      const locator = target.newLocator()
      direct(target, locator)
      const outcomes: Record<string, number> = {}
      const errors: string[] = []
      for (let i = 0; i < PROOFS_UNDER_FAULTS; i++) {
        forgetConditionalWriteVerdicts()
        const store = target.open(locator, random.url)
        const outcome = await (i === 0 ? store.initialize() : store.resume()).then(
          () => 'proven',
          (err: unknown) => {
            errors.push((err as Error).message.slice(0, 200))
            return err instanceof JobStoreError ? err.code : `raw ${String(err)}`
          },
        )
        // The first store must exist for the others to resume: without it there is nothing to learn from them.
        if (i === 0 && outcome !== 'proven') await direct(target, locator).initialize()
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
      }
      console.log(
        `[${name}] proofs under faults (seed ${random.seed}): ${JSON.stringify(outcomes)}; faults ${JSON.stringify(random.stats.faults)}` +
          (errors.length > 0 ? `; errors: ${errors.join(' | ')}` : ''),
      )
      expect(random.faultCount()).toBeGreaterThan(0)
      expect(outcomes['CONDITIONAL_WRITES_UNSUPPORTED']).toBeUndefined()
      expect(Object.keys(outcomes).filter((outcome) => outcome.startsWith('raw '))).toEqual([])
      expect(outcomes['proven'] ?? 0).toBeGreaterThan(PROOFS_UNDER_FAULTS / 2)
    })
  })
}

async function initializeError(store: AbstractJobStore): Promise<unknown> {
  try {
    await store.initialize()
  } catch (err) {
    return err
  }
  throw new Error('initialize() succeeded')
}
