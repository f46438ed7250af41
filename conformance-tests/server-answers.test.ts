/**
 * What the object backends make of odd server answers, through the fault proxy's answer-replacement mode
 * (test-servers/fault-proxy.ts `replaceAnswer`), on the real local servers (MinIO, Azurite, fake-gcs-server):
 *
 * - "Not found means not found" (issue 14, item 2): a 404 whose error code is not the service's "no such object"
 *   (an unknown access key, a gateway's HTML page) is a JobStoreError on every operation, never "absent".
 * - "Timeouts are retried" (issue 14, item 12): 408 answers (in the service's format, and the bare 408 of a
 *   Node.js server) are retried within the retry budget, also for a conditional write the server acted on.
 */
import type { IncomingMessage } from 'node:http'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { JobStoreError, NoSuchFileError, NoSuchJobError, NoSuchJobStoreError } from '../src/errors.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import {
  FOREIGN_NOT_FOUND,
  REQUEST_TIMEOUT,
  startFaultProxy,
  type ReplacedAnswer,
  type StatusAnswer,
} from '../test-servers/fault-proxy.js'
import { openThroughProxy, TARGETS, upstreamOf, type NETWORK_BACKENDS } from '../reliability-tests/targets.js'
import { collect } from './harness.js'

type Network = (typeof NETWORK_BACKENDS)[number]
const NETWORK: readonly Network[] = ['s3', 'azure', 'gcs']

/** A fresh store on the real server (destroyed after the test), and the same store seen through a proxy. */
async function storeBehindProxy(
  name: Network,
  replaceAnswer: (req: IncomingMessage) => ReplacedAnswer | undefined,
): Promise<{ direct: AbstractJobStore; proxied: AbstractJobStore; locator: string; replaced: Record<string, number> }> {
  const locator = TARGETS[name].newLocator()
  const direct = await openJobStore(locator)
  await direct.initialize()
  onTestFinished(() => direct.destroy())
  const proxy = await startFaultProxy({ target: upstreamOf(name), flavor: name, replaceAnswer })
  onTestFinished(() => proxy.close())
  return { direct, proxied: openThroughProxy(name, locator, proxy.url), locator, replaced: proxy.stats.replaced }
}

function job(store: AbstractJobStore, name: string): JobDescription {
  const desc = newJobDescription({ jobName: name })
  store.assignID(desc)
  return desc
}

async function writeBytes(store: AbstractJobStore, text: string): Promise<string> {
  return store.writeFileStream(async (w) => {
    w.end(text)
  })
}

/** The error `fn` rejects with; fails the test when it resolves (with what it resolved to). */
async function rejection(what: string, fn: () => Promise<unknown>): Promise<unknown> {
  let value: unknown
  try {
    value = await fn()
  } catch (err) {
    return err
  }
  throw new Error(`${what} resolved (to ${JSON.stringify(value)}) instead of failing`)
}

/** An error that is a JobStoreError, and none of the errors that mean "absent". */
function expectNotAbsence(what: string, err: unknown): void {
  expect(err, what).toBeInstanceOf(JobStoreError)
  for (const absence of [NoSuchFileError, NoSuchJobError, NoSuchJobStoreError]) {
    expect(err, `${what}: ${(err as Error).message}`).not.toBeInstanceOf(absence)
  }
}

for (const name of NETWORK) {
  describe(`${name}: server answers`, () => {
    const foreign = FOREIGN_NOT_FOUND[name]
    for (const answer of foreign) {
      it(`a 404 ${answer.code} to every request is an error on every operation, never "absent"`, async () => {
        let on = false
        const { direct, proxied } = await storeBehindProxy(name, () => (on ? { answer } : undefined))
        const desc = await direct.create(job(direct, 'there'))
        const fileID = await writeBytes(direct, 'present')
        const ghost = job(direct, 'never-created')
        on = true
        const checks: [string, () => Promise<unknown>][] = [
          ['resume', () => proxied.resume()],
          ['exists (present job)', () => proxied.exists(desc.jobStoreID as string)],
          ['exists (missing job)', () => proxied.exists(ghost.jobStoreID as string)],
          ['load', () => proxied.load(desc.jobStoreID as string)],
          ['fileExists', () => proxied.fileExists(fileID)],
          ['getFileSize', () => proxied.getFileSize(fileID)],
          ['readFileStream', async () => collect(await proxied.readFileStream(fileID))],
          ['deleteFile', () => proxied.deleteFile(fileID)],
          ['delete (job)', () => proxied.delete(desc.jobStoreID as string)],
        ]
        for (const [what, fn] of checks) expectNotAbsence(what, await rejection(what, fn))
        on = false
        // Nothing was deleted on the way.
        expect(await direct.exists(desc.jobStoreID as string)).toBe(true)
        expect((await collect(await direct.readFileStream(fileID))).toString()).toBe('present')
      })
    }

    it('the server’s own "no such object" answers still mean absent, through the proxy', async () => {
      const { direct, proxied, locator } = await storeBehindProxy(name, () => undefined)
      const ghost = job(direct, 'never-created')
      const fileID = await writeBytes(direct, 'x')
      await direct.deleteFile(fileID)
      await proxied.resume()
      expect(await proxied.exists(ghost.jobStoreID as string)).toBe(false)
      expect(await proxied.fileExists(fileID)).toBe(false)
      expect(await proxied.getFileSize(fileID)).toBe(0)
      await proxied.deleteFile(fileID)
      expect(await rejection('load', () => proxied.load(ghost.jobStoreID as string))).toBeInstanceOf(NoSuchJobError)
      expect(await rejection('readFileStream', () => proxied.readFileStream(fileID))).toBeInstanceOf(NoSuchFileError)
      await direct.destroy()
      const gone = await openJobStore(locator)
      expect(await rejection('resume of a destroyed store', () => gone.resume())).toBeInstanceOf(NoSuchJobStoreError)
    })

    it('408 answers (the service’s and a bare one) to the first two attempts of every request are retried', async () => {
      const seen = new Map<string, number>()
      const timeouts: StatusAnswer[] = [REQUEST_TIMEOUT[name], REQUEST_TIMEOUT.bare]
      // Armed once the store is open: the conditional-write proof of resume() takes GCS's resumable-upload path,
      // whose chunks the SDK does not retry (a known gap, docs/reliability.md); every operation after it is tested.
      let armed = false
      const { proxied, direct, replaced } = await storeBehindProxy(name, (req) => {
        if (!armed) return undefined
        const key = `${req.method} ${req.url}`
        const n = seen.get(key) ?? 0
        seen.set(key, n + 1)
        return n < timeouts.length ? { answer: timeouts[n] as StatusAnswer } : undefined
      })
      await proxied.resume()
      armed = true
      const desc = await proxied.create(job(proxied, 'timed-out'))
      expect(await proxied.exists(desc.jobStoreID as string)).toBe(true)
      desc.command = 'updated'
      await proxied.update(desc)
      expect((await proxied.load(desc.jobStoreID as string)).command).toBe('updated')
      const fileID = await writeBytes(proxied, 'through timeouts')
      expect(await proxied.fileExists(fileID)).toBe(true)
      expect(await proxied.getFileSize(fileID)).toBe('through timeouts'.length)
      expect((await collect(await proxied.readFileStream(fileID))).toString()).toBe('through timeouts')
      await proxied.writeStatsAndLogging('stats message')
      const messages: string[] = []
      expect(await proxied.readStatsAndLogging((m) => void messages.push(String(m)))).toBe(1)
      expect(messages).toEqual(['stats message'])
      await proxied.deleteFile(fileID)
      expect(await direct.fileExists(fileID)).toBe(false)
      await proxied.delete(desc.jobStoreID as string)
      expect(await direct.exists(desc.jobStoreID as string)).toBe(false)
      expect(replaced[REQUEST_TIMEOUT[name].code]).toBeGreaterThan(10)
      expect(replaced[REQUEST_TIMEOUT.bare.code]).toBeGreaterThan(10)
    })

    it('create-if-absent writes the server acted on, answered with 408, succeed once when retried', async () => {
      // The service's 408 for the job, the bare one for the file and the stats message.
      const armed: StatusAnswer[] = []
      const { proxied, direct, replaced } = await storeBehindProxy(name, (req) => {
        // The writes of new objects: S3 and Azure PUT, GCS POST to the upload endpoint.
        const write = req.method === 'PUT' || (req.method === 'POST' && (req.url ?? '').includes('/upload/'))
        const answer = write ? armed.shift() : undefined
        return answer === undefined ? undefined : { answer, when: 'after' }
      })
      await proxied.resume()
      armed.push(REQUEST_TIMEOUT[name])
      const desc = await proxied.create(job(proxied, 'acted-on'))
      expect((await direct.load(desc.jobStoreID as string)).jobName).toBe('acted-on')
      armed.push(REQUEST_TIMEOUT.bare)
      const fileID = await proxied.writeFileStream(async (w) => {
        w.end('once')
      })
      expect((await collect(await direct.readFileStream(fileID))).toString()).toBe('once')
      armed.push(REQUEST_TIMEOUT.bare)
      await proxied.writeStatsAndLogging('one message')
      const messages: string[] = []
      await direct.readStatsAndLogging((m) => void messages.push(String(m)))
      expect(messages).toEqual(['one message'])
      expect(replaced).toEqual({ [REQUEST_TIMEOUT[name].code]: 1, [REQUEST_TIMEOUT.bare.code]: 2 })
    })
  })
}

describe('s3: a HEAD 404 without an error code', () => {
  // AWS S3 answers a HEAD of a missing key with a bare 404 (MinIO adds x-minio-error-code): the proxy strips the
  // code, so that MinIO answers as AWS does.
  const bareHead = (req: IncomingMessage): ReplacedAnswer | undefined =>
    req.method === 'HEAD' ? { answer: { status: 404, code: 'bare-head-404', contentType: 'application/xml', body: '' } } : undefined

  it('is trusted only when a GET proves the key missing', async () => {
    const { direct, proxied, replaced } = await storeBehindProxy('s3', bareHead)
    const desc = await direct.create(job(direct, 'there'))
    const fileID = await writeBytes(direct, 'present')
    const gone = await writeBytes(direct, 'gone')
    await direct.deleteFile(gone)
    expect(await proxied.fileExists(gone)).toBe(false)
    expect(await proxied.getFileSize(gone)).toBe(0)
    expect(await proxied.exists(job(direct, 'never-created').jobStoreID as string)).toBe(false)
    // The HEADs say 404, the GET finds the object: not absent; the GET's headers are its metadata.
    expect(await proxied.fileExists(fileID)).toBe(true)
    expect(await proxied.getFileSize(fileID)).toBe('present'.length)
    expect(await proxied.exists(desc.jobStoreID as string)).toBe(true)
    expect(replaced['bare-head-404']).toBeGreaterThanOrEqual(6)
  })
})
