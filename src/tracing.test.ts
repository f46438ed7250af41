/**
 * The `jobstore:operation` tracing channel, seen as a subscriber sees it: every public operation publishes its
 * events with the documented context, on the file backend and on S3 (MinIO); failures carry their code; nobody
 * subscribed, nothing is built or published.
 */
import { tracingChannel, type TracingChannelSubscribers } from 'node:diagnostics_channel'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterEach, describe, expect, it, onTestFinished } from 'vitest'
import { AbstractJobStore } from './abstract-job-store.js'
import './builtin-backends.js'
import { keys, randomId } from './ids.js'
import { newJobDescription } from './job-description.js'
import { openJobStore } from './open.js'
import { redactLocator } from './redact.js'
import { OPERATIONS, operationContextsBuilt, type OperationContext, type OperationName } from './tracing.js'

type EventName = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error'
const EVENT_NAMES: readonly EventName[] = ['start', 'end', 'asyncStart', 'asyncEnd', 'error']
// Subscribed by name, as a user would, not through the module's object.
const channel = tracingChannel<unknown, OperationContext>('jobstore:operation')

/** Subscribes for the test; the events in order, and each context's own sequence. */
function record(): { events: { name: EventName; ctx: OperationContext }[]; of: (op: OperationName) => OperationContext[]; sequence: (ctx: OperationContext) => EventName[] } {
  const events: { name: EventName; ctx: OperationContext }[] = []
  const handlers = Object.fromEntries(
    EVENT_NAMES.map((name) => [name, (ctx: OperationContext) => void events.push({ name, ctx })]),
  ) as unknown as TracingChannelSubscribers<OperationContext>
  channel.subscribe(handlers)
  onTestFinished(() => void channel.unsubscribe(handlers))
  return {
    events,
    of: (op) => [...new Set(events.filter((e) => e.name === 'start' && e.ctx.operation === op).map((e) => e.ctx))],
    sequence: (ctx) => events.filter((e) => e.ctx === ctx).map((e) => e.name),
  }
}

const BACKENDS: { name: string; scheme: string; locator: (dir: string) => string }[] = [
  { name: 'file', scheme: 'file', locator: (dir) => `file:${join(dir, `store-${randomId()}`)}` },
  { name: 's3 (MinIO)', scheme: 's3', locator: () => `s3://jobstore-tracing-test/${randomId()}` },
]

/** Calls every traced operation once (a few twice), as an engine would. */
async function exercise(store: AbstractJobStore, destination: AbstractJobStore, dir: string): Promise<Record<string, unknown>> {
  await store.initialize()
  await store.resume()
  await store.writeConfig()
  const root = newJobDescription({ jobName: 'root', command: 'run' })
  store.assignID(root)
  await store.createRootJob(root)
  const child = newJobDescription({ jobName: 'child', command: 'run' })
  store.assignID(child)
  await store.batch(async () => void (await store.create(child)))
  root.children.push(child.jobStoreID as string)
  await store.update(root)
  await store.setRootJob(root.jobStoreID as string)
  await store.loadRootJob()
  await store.exists(child.jobStoreID as string)
  await store.load(child.jobStoreID as string)
  const listed: string[] = []
  for await (const desc of store.jobs()) listed.push(desc.jobStoreID as string)
  for await (const _ of store.jobs()) break // stopped early

  const local = join(dir, `local-${randomId()}`)
  await writeFile(local, Buffer.alloc(3000, 1))
  const written = await store.writeFile(local, { jobStoreID: child.jobStoreID as string })
  const streamed = await store.writeFileStream((w) => void w.end(Buffer.alloc(1000, 2)), { jobStoreID: root.jobStoreID as string })
  const empty = await store.getEmptyFileStoreID()
  await store.readFile(streamed, join(dir, `copy-${randomId()}`))
  let read = 0
  for await (const chunk of await store.readFileStream(written)) read += (chunk as Buffer).length
  const partial = await store.readFileStream(written)
  partial.destroy()
  await new Promise((resolve) => partial.once('close', resolve))
  await store.fileExists(written)
  await store.getFileSize(written)
  await store.getFileVersion(written)
  await store.updateFile(written, local)
  await store.updateFileStream(streamed, (w) => void w.end(Buffer.alloc(500, 3)))
  await store.getPublicUrl(written)
  await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end('{"answer":42}'))
  await store.getSharedPublicUrl('rootJobReturnValue')
  for await (const _ of await store.readSharedFileStream('rootJobReturnValue'));
  await store.getRootJobReturnValue()
  for await (const _ of store.sharedFileNames());
  for await (const _ of store.files());
  await store.writeStatsAndLogging('hello')
  await store.readStatsAndLogging(() => {})
  await store.countStatsAndLogging()
  const imported = await store.importFile(pathToFileURL(local).href)
  await store.exportFile(written, pathToFileURL(join(dir, `exported-${randomId()}`)).href)
  await store.deleteFile(empty)
  await store.reachability()
  await store.clean()
  const report = await store.copyTo(destination)
  await destination.destroy()
  await destination.close()
  await store.delete(child.jobStoreID as string)
  await store.destroy()
  return { root: root.jobStoreID, child: child.jobStoreID, written, streamed, empty, imported, read, listed, report }
}

describe.each(BACKENDS)('jobstore:operation on $name', ({ scheme, locator }) => {
  let dir: string
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('every public operation publishes start, end, asyncStart and asyncEnd with the documented context', async () => {
    dir = await mkdtemp(join(tmpdir(), 'jobstore-tracing-'))
    const store = await openJobStore(locator(dir))
    const destination = await openJobStore(locator(dir))
    const seen = record()
    const ids = await exercise(store, destination, dir)

    for (const op of Object.keys(OPERATIONS) as OperationName[]) {
      const contexts = seen.of(op)
      expect(contexts.length, `${op} published`).toBeGreaterThan(0)
      for (const ctx of contexts) {
        expect(seen.sequence(ctx), `${op}'s events`).toEqual(['start', 'end', 'asyncStart', 'asyncEnd'])
        expect(ctx).toMatchObject({ operation: op, scheme, kind: OPERATIONS[op].kind })
        expect(ctx.errorCode).toBeUndefined()
      }
    }
    const top = (op: OperationName): OperationContext => {
      const found = seen.of(op).find((ctx) => ctx.parent === undefined)
      expect(found, `${op} called by the test`).toBeDefined()
      return found as OperationContext
    }
    expect(top('load').locator).toBe(redactLocator(store.locator))
    expect(top('load').jobStoreID).toBe(ids['child'])
    expect(top('exists').jobStoreID).toBe(ids['child'])
    expect(top('update').jobStoreID).toBe(ids['root'])
    expect(top('loadRootJob').jobStoreID).toBe(ids['root'])
    expect(top('writeFile')).toMatchObject({ fileID: ids['written'], jobStoreID: ids['child'], bytes: 3000 })
    expect(top('writeFileStream')).toMatchObject({ fileID: ids['streamed'], jobStoreID: ids['root'], bytes: 1000 })
    expect(top('getEmptyFileStoreID')).toMatchObject({ fileID: ids['empty'], bytes: 0 })
    expect(top('readFile')).toMatchObject({ fileID: ids['streamed'], bytes: 1000 })
    const [whole, stopped] = seen.of('readFileStream')
    expect(whole).toMatchObject({ fileID: ids['written'], bytes: 3000 })
    expect(whole?.endedEarly).toBeUndefined()
    expect(stopped?.endedEarly).toBe(true)
    expect(top('updateFile')).toMatchObject({ fileID: ids['written'], bytes: 3000 })
    expect(top('updateFileStream')).toMatchObject({ fileID: ids['streamed'], bytes: 500 })
    expect(top('writeSharedFileStream')).toMatchObject({ sharedFileName: 'rootJobReturnValue', bytes: 13 })
    expect(top('readSharedFileStream')).toMatchObject({ sharedFileName: 'rootJobReturnValue', bytes: 13 })
    expect(top('writeStatsAndLogging').bytes).toBe(5)
    expect(top('readStatsAndLogging')).toMatchObject({ bytes: 5, items: 1 })
    expect(top('importFile')).toMatchObject({ fileID: ids['imported'], url: expect.stringMatching(/^file:/) })
    expect(top('exportFile')).toMatchObject({ fileID: ids['written'], bytes: 3000 })
    expect(top('copyTo')).toMatchObject({
      destination: { scheme, locator: redactLocator(destination.locator) },
      bytes: (ids['report'] as { bytes: number }).bytes,
      items: (ids['report'] as { objects: number }).objects,
    })
    expect(top('clean').jobStoreID).toBe(ids['root'])
    const [listing, brokenOff] = seen.of('jobs').filter((ctx) => ctx.parent === undefined)
    expect(listing?.items).toBe((ids['listed'] as string[]).length)
    expect(brokenOff).toMatchObject({ items: 1, endedEarly: true })
    // The loads a listing makes are its children; the stream read of getRootJobReturnValue is its child.
    expect(seen.of('load').filter((ctx) => ctx.parent === listing).length).toBe((ids['listed'] as string[]).length)
    expect(seen.of('readSharedFileStream').some((ctx) => ctx.parent?.operation === 'getRootJobReturnValue')).toBe(true)
    // A stream's asyncEnd comes when it has been read to its end, after its promise resolved.
    expect(seen.events.findIndex((e) => e.name === 'asyncEnd' && e.ctx === whole)).toBeGreaterThan(
      seen.events.findIndex((e) => e.name === 'end' && e.ctx === whole),
    )
  })

  it('a failure publishes error, then asyncStart and asyncEnd, with the error and its code', async () => {
    dir = await mkdtemp(join(tmpdir(), 'jobstore-tracing-'))
    const store = await openJobStore(locator(dir))
    const seen = record()
    await expect(store.resume()).rejects.toMatchObject({ code: 'NO_SUCH_JOB_STORE' })
    await store.initialize()
    onTestFinished(() => store.destroy())
    const job = newJobDescription({ jobName: 'one', command: 'x' })
    store.assignID(job)
    await store.create(job)
    const missingJob = store.assignID(newJobDescription({ jobName: 'never created', command: 'x' }))
    const missingFile = await store.getEmptyFileStoreID()
    await store.deleteFile(missingFile)
    await expect(store.load(missingJob)).rejects.toMatchObject({ code: 'NO_SUCH_JOB' })
    await expect(store.readFileStream(missingFile)).rejects.toMatchObject({ code: 'NO_SUCH_FILE' })
    await expect(store.readFile(missingFile, join(dir, 'x'))).rejects.toMatchObject({ code: 'NO_SUCH_FILE' })
    // A listing that fails: an aborted one on S3; on the file backend, whose small reads do not look at the
    // signal, a damaged record whose report throws.
    const listingCode = scheme === 'file' ? 'CORRUPT_RECORD' : 'ABORTED'
    if (scheme === 'file') await writeFile(join((store as unknown as { root: string }).root, ...keys.job(job.jobStoreID as string).split('/')), 'garbage')
    await expect(
      (async () => {
        const signal = scheme === 'file' ? undefined : AbortSignal.abort()
        for await (const _ of store.jobs({ ...(signal ? { signal } : {}), onCorruptRecord: (err) => { throw err } }));
      })(),
    ).rejects.toMatchObject({ code: listingCode })
    // A stream whose bytes fail their check at the end: the read operation fails (file backend: the bytes on disk
    // are at hand to damage, same size, other content).
    if (scheme === 'file') {
      const damaged = await store.writeFileStream((w) => void w.end(Buffer.alloc(4096, 7)))
      await writeFile(join((store as unknown as { root: string }).root, ...keys.file(damaged).split('/')), Buffer.alloc(4096, 8))
      await expect(
        (async () => {
          for await (const _ of await store.readFileStream(damaged));
        })(),
      ).rejects.toMatchObject({ code: 'INTEGRITY' })
      const ctx = seen.of('readFileStream').find((c) => c.fileID === damaged)
      expect(ctx?.errorCode).toBe('INTEGRITY')
      expect(seen.sequence(ctx as OperationContext)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
    }
    const expected: [OperationName, string][] = [
      ['resume', 'NO_SUCH_JOB_STORE'],
      ['load', 'NO_SUCH_JOB'],
      ['readFileStream', 'NO_SUCH_FILE'],
      ['readFile', 'NO_SUCH_FILE'],
      ['jobs', listingCode],
    ]
    for (const [op, code] of expected) {
      const [ctx] = seen.of(op)
      expect(ctx?.errorCode, op).toBe(code)
      expect((ctx?.error as { code?: string } | undefined)?.code).toBe(code)
      expect(seen.sequence(ctx as OperationContext), op).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd'])
    }
  })
})

describe('jobstore:operation with nobody subscribed', () => {
  it('builds no context and calls nothing of the channel', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-tracing-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    expect(channel.hasSubscribers).toBe(false)
    // Counts every call into the channel's five channels (own properties: they stay when subscribing swaps the prototype).
    let calls = 0
    const spied = [channel.start, channel.end, channel.asyncStart, channel.asyncEnd, channel.error]
    for (const sub of spied) {
      for (const name of ['publish', 'runStores'] as const) {
        Object.defineProperty(sub, name, {
          configurable: true,
          // The prototype's method at the time of the call: subscribing swaps it for the active one.
          value(this: object, ...args: unknown[]) {
            calls++
            return (Object.getPrototypeOf(this) as Record<string, (...a: unknown[]) => unknown>)[name]?.apply(this, args)
          },
        })
      }
    }
    onTestFinished(() => {
      for (const sub of spied) for (const name of ['publish', 'runStores']) delete (sub as unknown as Record<string, unknown>)[name]
    })
    const before = operationContextsBuilt()
    await exercise(await openJobStore(`file:${join(dir, 'a')}`), await openJobStore(`file:${join(dir, 'b')}`), dir)
    expect(operationContextsBuilt()).toBe(before)
    expect(calls).toBe(0)
    // The same counters see a subscriber's events: they would have seen any.
    const seen = record()
    const store = await openJobStore(`file:${join(dir, 'c')}`)
    await store.initialize()
    await store.destroy()
    expect(seen.of('initialize').length).toBe(1)
    expect(calls).toBeGreaterThan(0)
    expect(operationContextsBuilt()).toBe(before + 2)
  })

  it('traces exactly the public asynchronous methods of AbstractJobStore', () => {
    const untraced = new Set(['constructor', 'getEnv', 'assignID'])
    const methods = Object.getOwnPropertyNames(AbstractJobStore.prototype).filter((name) => {
      const descriptor = Object.getOwnPropertyDescriptor(AbstractJobStore.prototype, name)
      return typeof descriptor?.value === 'function' && !untraced.has(name)
    })
    // Protected primitives a backend implements are not operations (they are not public: TypeScript says so, the
    // prototype cannot): the ones with a default body are listed here.
    const protectedDefaults = new Set([
      'findStoreData',
      'deleteStoreData',
      'removeLeftovers',
      'linkLocalFile',
      'copyFromUrl',
      'copyToUrl',
      'materializeObject',
      'conditionalWriteProofTarget',
      'storageConfigFields',
      'fileChecksum',
      'closeStorage',
    ])
    expect(methods.filter((name) => !protectedDefaults.has(name)).sort()).toEqual(Object.keys(OPERATIONS).sort())
  })

  it('redacts user info and query strings of locators and URLs', () => {
    expect(redactLocator('s3://AKIAXXXX:verysecret@bucket/p')).not.toMatch(/AKIAXXXX|verysecret/)
    expect(redactLocator('https://acct.blob.core.windows.net/c/x?sv=2020&sig=abcdefgh')).not.toMatch(/abcdefgh/)
    expect(redactLocator('file:./rel?token=abcdefgh')).toBe('file:./rel?…')
    expect(redactLocator('file:/var/lib/wf')).toBe('file:/var/lib/wf')
  })
})
