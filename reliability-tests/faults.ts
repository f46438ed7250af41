/**
 * Faults between the SDK and the server, on the three network backends: a fault proxy (test-servers/fault-proxy.ts)
 * resets connections (before the server saw the request, or after it answered), answers with the service's own
 * throttling and error responses, holds requests (latency spikes) and cuts response bodies, at random.
 *
 * - A mixed workload of 1,000 operations at a 10% fault rate, checked against a model (workload.ts): zero corrupt
 *   reads, zero lost writes, zero false conflicts, no stats message handed out twice, every error typed.
 * - Faults that outlast the retry budget: every kind of operation fails with a typed error after a bounded number
 *   of attempts, and the store is as it was (old contents, nothing new, no leftovers after clean()).
 *
 * - Regression tests of what the faults found: a late retry of a stats message write; GCS resumable uploads.
 *
 * faults-<backend>.test.ts registers them for each network backend. The file backend has no network between it
 * and its storage: its failure mode is the crash, tested in crashes.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { ConcurrentFileModificationError, JobStoreError } from '../src/errors.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { GcsJobStore } from '../backends/gcs/index.js'
import { startFaultProxy, type FaultKind, type FaultProxy, type ServiceFlavor } from '../test-servers/fault-proxy.js'
import { startTestServers, type TestServers } from '../test-servers/index.js'
import { isObjectRead, openThroughProxy, TARGETS, type NETWORK_BACKENDS } from './targets.js'
import { Workload } from './workload.js'
import { record } from './figures.js'

const OPERATIONS = 1000
const FAULT_RATE = 0.1
const LANES = 8
const MIB = 1024 * 1024

type Network = (typeof NETWORK_BACKENDS)[number]


/** Where a backend's fault proxies send requests, and how to open a store that bypasses them. */
interface Route {
  /** The real server. */
  readonly upstream: string
  /** A store at `locator` talking to the server directly (for setup and the final checks). */
  direct(locator: string): Promise<AbstractJobStore>
  /** For GCS: the proxy that resumable upload sessions are handed out on. */
  readonly sessionProxy?: FaultProxy
}

let gcs: { servers: TestServers; proxy: FaultProxy } | undefined

/**
 * A fake-gcs-server of its own, whose resumable upload sessions point at a fault proxy (the shared one hands out
 * its own address, which would bypass the proxy).
 */
function startDedicatedGcs(): void {
  beforeAll(async () => {
    const proxy = await startFaultProxy({ flavor: 'gcs', isObjectRead: isObjectRead('gcs') })
    const servers = await startTestServers(['fake-gcs'], { gcsExternalUrl: proxy.url })
    proxy.setTarget((servers.servers[0] as { url: string }).url)
    gcs = { servers, proxy }
  }, 120_000)

  afterAll(async () => {
    await gcs?.proxy.close()
    await gcs?.servers.stop()
  })
}

function route(name: Network): Route {
  switch (name) {
    case 's3':
      return { upstream: process.env['AWS_ENDPOINT_URL'] as string, direct: (locator) => openJobStore(locator) }
    case 'azure': {
      const endpoint = /BlobEndpoint=([^;]*)/.exec(process.env['AZURE_STORAGE_CONNECTION_STRING'] ?? '')?.[1] ?? ''
      return { upstream: new URL(endpoint).origin, direct: (locator) => openJobStore(locator) }
    }
    case 'gcs': {
      const setup = gcs as NonNullable<typeof gcs>
      const upstream = (setup.servers.servers[0] as { url: string }).url
      return {
        upstream,
        direct: async (locator) => new GcsJobStore(locator, { apiEndpoint: upstream, chunkSize: MIB }),
        sessionProxy: setup.proxy,
      }
    }
  }
}

async function keyFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-faults-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'key')
  await writeFile(path, Buffer.alloc(32, 7))
  return path
}

/** A proxy in front of the backend's server, with random faults at `rate`. */
async function proxyFor(name: Network, rate: number): Promise<FaultProxy> {
  const flavor: ServiceFlavor = name
  const proxy = await startFaultProxy({ target: route(name).upstream, rate, flavor, isObjectRead: isObjectRead(name) })
  onTestFinished(() => proxy.close())
  return proxy
}

/** Registers the fault tests of one network backend (faults-<backend>.test.ts: one file per backend, run in parallel). */
export function faultTests(name: Network): void {
  if (name === 'gcs') startDedicatedGcs()
  describe(`faults: ${name}`, () => {
    it(`${OPERATIONS} mixed operations at a ${FAULT_RATE * 100}% fault rate: no corrupt read, no lost write`, { timeout: 900_000 }, async () => {
      const target = TARGETS[name]
      const r = route(name)
      const locator = target.newLocator()
      // GCS: the session proxy is the one the dedicated server hands out, so all of its traffic goes through it.
      const proxy = r.sessionProxy ?? (await proxyFor(name, 0))
      const store = openThroughProxy(name, locator, proxy.url)
      await store.initialize({ encryptionKeyPath: await keyFile() })
      const direct = await r.direct(locator)
      onTestFinished(() => direct.destroy())
      const root = newJobDescription({ jobName: 'root' })
      store.assignID(root)
      await store.createRootJob(root)

      const before = { requests: proxy.stats.requests, faults: proxy.faultCount(), byKind: { ...proxy.stats.faults }, statuses: { ...proxy.stats.statuses } }
      const workload = new Workload({
        operations: OPERATIONS,
        lanes: LANES,
        partSize: target.partSize,
        foreignJobs: [root.jobStoreID as string],
        describeStuck: () => `requests the proxy has not answered: ${JSON.stringify(proxy.inFlight().slice(0, 8))}`,
      })
      proxy.setRate(FAULT_RATE)
      try {
        await workload.run(store)
      } finally {
        proxy.setRate(0)
      }
      const requests = proxy.stats.requests - before.requests
      const faults = proxy.faultCount() - before.faults
      const byKind = Object.fromEntries(
        Object.entries(proxy.stats.faults).map(([kind, n]) => [kind, n - (before.byKind[kind as FaultKind] ?? 0)]).filter(([, n]) => (n as number) > 0),
      )
      const statuses = Object.fromEntries(Object.entries(proxy.stats.statuses).map(([code, n]) => [code, n - (before.statuses[code] ?? 0)]))

      await direct.resume()
      const leftoversBefore = target.countLeftovers !== undefined ? await target.countLeftovers(locator) : undefined
      await workload.verify(direct)
      const leftoversAfter = target.countLeftovers !== undefined ? await target.countLeftovers(locator) : undefined
      const report = workload.report
      const failed = Object.values(report.byOp).reduce((sum, o) => sum + o.failed, 0)
      record(`faults-${name}`, {
        backend: name,
        seed: proxy.seed,
        operations: report.operations,
        requests,
        faults,
        faultsByKind: byKind,
        statusAnswers: statuses,
        failedOperations: failed,
        errorsByCode: report.errors,
        errorSamples: report.samples,
        byOperation: report.byOp,
        multipartWrites: report.multipartWrites,
        bytesWritten: report.bytesWritten,
        bytesRead: report.bytesRead,
        objects: report.objects,
        uncertainBeforeFinalCheck: report.uncertain,
        corruptReads: report.corruptReads.length,
        lostWrites: report.lostWrites.length,
        falseConflicts: report.falseConflicts.length,
        duplicateMessages: report.duplicateMessages.length,
        lostMessages: report.lostMessages.length,
        stuckOperations: report.stuck.length,
        slowestOperationMs: workload.slowestMs,
        leftoversBeforeClean: leftoversBefore ?? target.uncountableLeftovers,
        leftoversAfterClean: leftoversAfter ?? target.uncountableLeftovers,
        releasedStatsClaims: report.releasedStatsClaims,
        leftoversRemoved: report.leftoversRemoved,
      })

      expect(report.operations).toBe(OPERATIONS)
      // The faults did happen, at about the rate asked (truncation of an empty body is no fault).
      expect(faults).toBeGreaterThan(requests * FAULT_RATE * 0.6)
      expect(report.rawErrors).toEqual([])
      expect(report.corruptReads).toEqual([])
      expect(report.lostWrites).toEqual([])
      expect(report.falseConflicts).toEqual([])
      expect(report.corruptRecords).toEqual([])
      expect(report.duplicateMessages).toEqual([])
      expect(report.lostMessages).toEqual([])
      expect(report.stuck).toEqual([])
      // Retries absorb nearly all faults: an operation fails only when every attempt of one of its requests failed,
      // or when a response body was cut after the SDK handed it over.
      expect(failed).toBeLessThan(OPERATIONS * 0.05)
      if (leftoversAfter !== undefined) expect(leftoversAfter).toBe(0)
    })

    it('faults that outlast the retry budget: typed errors after bounded attempts, and a consistent store', { timeout: 600_000 }, async () => {
      const target = TARGETS[name]
      const r = route(name)
      const locator = target.newLocator()
      const direct = await r.direct(locator)
      await direct.initialize({ encryptionKeyPath: await keyFile() })
      onTestFinished(() => direct.destroy())
      const root = newJobDescription({ jobName: 'root' })
      direct.assignID(root)
      await direct.createRootJob(root)
      const newJob = async (n: number): Promise<JobDescription> => {
        const desc = newJobDescription({ jobName: 'kept', extra: { n } })
        direct.assignID(desc)
        return direct.create(desc)
      }
      const [jobA, jobB, jobC] = [await newJob(1), await newJob(1), await newJob(1)] as [JobDescription, JobDescription, JobDescription]
      const oldFile = 'old file'
      const [fileA, fileB] = [await direct.writeFileStream((w) => void w.end(oldFile)), await direct.writeFileStream((w) => void w.end(oldFile))]
      await direct.writeSharedFileStream('settings', (w) => void w.end('old settings'), { isProtected: true })
      await direct.writeStatsAndLogging('the only message')
      const filesBefore = new Set<string>()
      for await (const file of direct.files()) filesBefore.add(file.fileID)
      const big = Buffer.alloc(target.partSize * 2 + 17, 1)
      const update = (desc: JobDescription) => async (s: AbstractJobStore) => {
        const changed = structuredClone(desc)
        changed.extra['n'] = 2
        return s.update(changed, { ifVersion: desc.version })
      }
      const create = async (s: AbstractJobStore) => {
        const desc = newJobDescription({ jobName: 'new', extra: { n: 2 } })
        s.assignID(desc)
        return s.create(desc)
      }
      const figures: Record<string, unknown> = { backend: name }

      // 1. No request reaches the server: throttling answers and resets. Every operation fails, and nothing changed.
      const refused = await failEveryRequest(name, locator, ['status', 'reset-before'], {
        create,
        update: update(jobA),
        load: (s) => s.load(jobA.jobStoreID as string),
        delete: (s) => s.delete(jobB.jobStoreID as string),
        jobs: async (s) => count(s.jobs()),
        writeSmall: (s) => s.writeFileStream((w) => void w.end('new file')),
        writeBig: (s) => s.writeFileStream((w) => void w.end(big)),
        updateFile: (s) => s.updateFileStream(fileA, (w) => void w.end(big)),
        readFile: async (s) => count(await s.readFileStream(fileA)),
        deleteFile: (s) => s.deleteFile(fileB),
        writeShared: (s) => s.writeSharedFileStream('settings', (w) => void w.end('new settings'), { isProtected: true }),
        readShared: async (s) => count(await s.readSharedFileStream('settings')),
        writeStats: (s) => s.writeStatsAndLogging('a message that never lands'),
        readStats: (s) => s.readStatsAndLogging(() => {}),
      })
      figures['refused'] = refused
      const check = await r.direct(locator)
      await check.resume()
      for (const desc of [jobA, jobB, jobC]) {
        const loaded = await check.load(desc.jobStoreID as string)
        expect(loaded.extra['n']).toBe(1)
        expect(loaded.version).toBe(desc.version)
      }
      for (const id of [fileA, fileB]) expect(await collectText(await check.readFileStream(id))).toBe(oldFile)
      expect(await collectText(await check.readSharedFileStream('settings'))).toBe('old settings')
      const filesNow = new Set<string>()
      for await (const file of check.files()) filesNow.add(file.fileID)
      expect([...filesNow].sort()).toEqual([...filesBefore].sort())
      if (target.countLeftovers !== undefined) expect(await target.countLeftovers(locator)).toBe(0)

      // 2. Every request reaches the server, and every answer is lost: writes may have landed, but each object is
      // whole, old or new; clean() removes what the failed uploads left.
      const lost = await failEveryRequest(name, locator, ['reset-after'], {
        create,
        update: update(jobA),
        delete: (s) => s.delete(jobB.jobStoreID as string),
        writeSmall: (s) => s.writeFileStream((w) => void w.end('new file')),
        writeBig: (s) => s.writeFileStream((w) => void w.end(big)),
        updateFile: (s) => s.updateFileStream(fileA, (w) => void w.end(big)),
        deleteFile: (s) => s.deleteFile(fileB),
        writeShared: (s) => s.writeSharedFileStream('settings', (w) => void w.end('new settings'), { isProtected: true }),
        writeStats: (s) => s.writeStatsAndLogging('a message that may have landed'),
      })
      figures['answersLost'] = lost
      const after = await r.direct(locator)
      await after.resume()
      expect([1, 2]).toContain((await after.load(jobA.jobStoreID as string)).extra['n'])
      expect(await after.exists(jobB.jobStoreID as string).then((there) => (there ? after.load(jobB.jobStoreID as string).then((d) => String(d.extra['n'])) : 'gone'))).toMatch(/^(1|gone)$/)
      expect((await after.load(jobC.jobStoreID as string)).extra['n']).toBe(1)
      for await (const desc of after.jobs({ onCorruptRecord: (err) => expect.fail(err.message) })) {
        if (desc.jobStoreID !== root.jobStoreID) expect([1, 2]).toContain(desc.extra['n'])
      }
      const fileAText = await collectText(await after.readFileStream(fileA))
      expect(fileAText === oldFile || fileAText === big.toString('utf8')).toBe(true)
      expect(await after.fileExists(fileB).then((there) => (there ? after.readFileStream(fileB).then(collectText) : 'gone'))).toMatch(/^(old file|gone)$/)
      for await (const file of after.files()) {
        if (filesBefore.has(file.fileID)) continue
        const text = await collectText(await after.readFileStream(file.fileID))
        expect(text === 'new file' || text === big.toString('utf8'), `new file ${file.fileID} is whole`).toBe(true)
      }
      expect(await collectText(await after.readSharedFileStream('settings'))).toMatch(/^(old|new) settings$/)
      let removed = 0
      await after.clean(undefined, { leftoverAgeMs: 0, onReport: (report) => void (removed = report.leftoversRemoved) })
      figures['leftoversRemovedByClean'] = removed
      if (target.countLeftovers !== undefined) expect(await target.countLeftovers(locator)).toBe(0)
      const messages: string[] = []
      await after.readStatsAndLogging((text) => void messages.push(text))
      expect(messages.filter((m) => m === 'the only message')).toHaveLength(1)
      expect(messages.filter((m) => m !== 'the only message')).toEqual(
        messages.includes('a message that may have landed') ? ['a message that may have landed'] : [],
      )
      record(`outlast-${name}`, figures)
    })
  })

  describe(`late retries: ${name}`, () => {
    it('a stats message whose write is retried after a reader took it is never handed out twice', { timeout: 300_000 }, async () => {
      // The first attempt of the write lands but its answer is lost; the SDK retries, and the retry is held at the
      // proxy while a reader takes the message and marks it read. Then the retry reaches the server: create-if-absent
      // succeeds, as the message is no longer in unread/.
      const r = route(name)
      const locator = TARGETS[name].newLocator()
      const direct = await r.direct(locator)
      await direct.initialize()
      onTestFinished(() => direct.destroy())
      let attempts = 0
      let held: (() => void) | undefined
      const retryHeld = new Promise<void>((resolve) => (held = resolve))
      const proxy = await startFaultProxy({
        target: r.upstream,
        flavor: name,
        latencyMs: [2500, 2500],
        choose: (req) => {
          const url = decodeURIComponent(req.url ?? '')
          if ((req.method !== 'PUT' && req.method !== 'POST') || !url.includes('stats/unread/')) return undefined
          attempts++
          if (attempts === 1) return 'reset-after'
          if (attempts === 2) {
            held?.()
            return 'latency'
          }
          return undefined
        },
      })
      onTestFinished(() => proxy.close())
      const writer = openThroughProxy(name, locator, proxy.url)
      await writer.resume()
      const writing = writer.writeStatsAndLogging('only once')
      await retryHeld
      const first: string[] = []
      await direct.readStatsAndLogging((text) => void first.push(text))
      await writing
      const second: string[] = []
      await direct.readStatsAndLogging((text) => void second.push(text))
      record(`late-retry-${name}`, { backend: name, writeAttempts: attempts, firstRead: first, secondRead: second })
      expect(attempts).toBeGreaterThanOrEqual(2)
      expect(first).toEqual(['only once'])
      expect(second).toEqual([])
    })
  })

  /**
   * Resumable uploads on GCS: the backend's uploader does not retry chunks (see GcsJobStore: the SDK's chunk retry
   * can end in an uncatchable RangeError and a write that never settles; and fake-gcs-server, fakestorage/upload.go,
   * commits a session with the bytes it has on the status query that retry sends, where GCS answers 308). A failed
   * chunk fails the write, nothing is stored, and the old content stays; a lost answer to the last chunk is
   * recognised by the write ID as a success.
   */
  if (name === 'gcs') describe('gcs: resumable uploads hit by a fault', () => {
    it('leave the whole object or none, never a partial one; a lost answer to the last chunk is a success', { timeout: 300_000 }, async () => {
      let plan: (FaultKind | undefined)[] = []
      let chunk = 0
      const proxy = await startFaultProxy({
        flavor: 'gcs',
        choose: (req) => (req.method === 'PUT' && (req.url ?? '').includes('upload_id=') ? plan[chunk++] : undefined),
      })
      onTestFinished(() => proxy.close())
      const servers = await startTestServers(['fake-gcs'], { gcsExternalUrl: proxy.url })
      onTestFinished(() => servers.stop())
      proxy.setTarget((servers.servers[0] as { url: string }).url)
      const store = new GcsJobStore(TARGETS.gcs.newLocator(), { apiEndpoint: proxy.url, chunkSize: MIB })
      await store.initialize()
      const outcomes: string[] = []
      // Chunks of 1 MiB: a 2.5 MiB body is three PUTs to the session.
      const plans: [string, (FaultKind | undefined)[]][] = [
        ['first chunk refused (503)', ['status']],
        ['first chunk landed, answer lost', ['reset-after']],
        ['second chunk reset before the server', [undefined, 'reset-before']],
        ['second chunk landed, answer lost', [undefined, 'reset-after']],
        ['last chunk landed, answer lost', [undefined, undefined, 'reset-after']],
      ]
      for (const [what, faults] of plans) {
        const data = Buffer.alloc(2.5 * MIB, what.length)
        for (let i = 0; i < data.length; i += 4096) data.writeUInt32BE(i, i)
        plan = faults
        chunk = 0
        let fileID: string | undefined
        let failed: unknown
        try {
          await store.writeFileStream((w, id) => {
            fileID = id
            w.end(data)
          })
        } catch (err) {
          failed = err
        }
        plan = []
        const there = await store.fileExists(fileID as string)
        if (there) expect((await collectBytes(await store.readFileStream(fileID as string))).equals(data), what).toBe(true)
        if (failed !== undefined) {
          expect(failed, what).toBeInstanceOf(JobStoreError)
          expect(there, `${what}: a failed write left a file`).toBe(false)
        }
        outcomes.push(`${what}: ${failed === undefined ? 'stored, whole' : 'failed, nothing stored'}`)
      }
      // A replace hit by a fault keeps the old content.
      const kept = await store.writeFileStream((w) => void w.end('old content'))
      plan = [undefined, 'reset-after']
      chunk = 0
      const replace = await caught(() => store.updateFileStream(kept, (w) => void w.end(Buffer.alloc(2.5 * MIB, 7))))
      plan = []
      expect(replace).toBeInstanceOf(JobStoreError)
      expect((await collectBytes(await store.readFileStream(kept))).toString()).toBe('old content')
      outcomes.push('replace, second chunk landed, answer lost: failed, old content kept')
      record('gcs-resumable-faults', { outcomes })
      expect(outcomes[outcomes.length - 2]).toMatch(/stored, whole/)
      await store.destroy()
    })
  })

  async function caught(fn: () => Promise<unknown>): Promise<unknown> {
    try {
      await fn()
    } catch (err) {
      return err
    }
    throw new Error('expected an error, but the call succeeded')
  }

  async function collectBytes(stream: AsyncIterable<unknown>): Promise<Buffer> {
    const parts: Buffer[] = []
    for await (const part of stream) parts.push(part as Buffer)
    return Buffer.concat(parts)
  }
}

/**
 * Runs each operation against a store of its own, behind a proxy of its own that lets `resume()` through and
 * then fails every request with the given kinds of faults in turn. Each must fail with a typed error (never a
 * conflict), after more than one attempt and a bounded number of requests. Returns the requests per operation
 * and the errors.
 */
async function failEveryRequest(
  name: Network,
  locator: string,
  kinds: readonly FaultKind[],
  operations: Record<string, (store: AbstractJobStore) => Promise<unknown>>,
): Promise<{ requests: Record<string, number>; errors: Record<string, string> }> {
  const results = await Promise.all(
    Object.entries(operations).map(async ([op, run]) => {
      let failing = false
      let n = 0
      const proxy = await startFaultProxy({
        target: route(name).upstream,
        flavor: name,
        choose: () => (failing ? kinds[n++ % kinds.length] : undefined),
      })
      onTestFinished(() => proxy.close())
      const store = openThroughProxy(name, locator, proxy.url)
      await store.resume()
      failing = true
      const before = proxy.stats.requests
      let error: unknown
      try {
        await run(store)
      } catch (err) {
        error = err
      }
      return { op, error, requests: proxy.stats.requests - before }
    }),
  )
  const requests: Record<string, number> = {}
  const errors: Record<string, string> = {}
  for (const { op, error, requests: made } of results) {
    requests[op] = made
    expect(error, `${op} succeeded although every request failed`).toBeInstanceOf(JobStoreError)
    expect(error, `${op}: ${(error as Error).message}`).not.toBeInstanceOf(ConcurrentFileModificationError)
    errors[op] = `${(error as JobStoreError).code}: ${(error as Error).message.slice(0, 200)}`
    // Retried, but not without end. GCS resumable uploads are the exception: not retried (see GcsJobStore), a
    // failed session start fails the write at once.
    if (!(name === 'gcs' && op === 'writeBig')) expect(made, op).toBeGreaterThan(1)
    expect(made, op).toBeLessThanOrEqual(40)
  }
  return { requests, errors }
}

async function count(iterable: AsyncIterable<unknown>): Promise<number> {
  let n = 0
  for await (const _ of iterable) n++
  return n
}

async function collectText(stream: AsyncIterable<unknown>): Promise<string> {
  let text = ''
  for await (const part of stream) text += Buffer.isBuffer(part) ? part.toString('utf8') : String(part)
  return text
}
