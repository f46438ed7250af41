/** Jobs: CRUD, big jobs, batches, listing past page sizes, corrupt records, root job, clean(). */
import { describe, expect, it } from 'vitest'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { CorruptRecordError } from '../src/errors.js'
import { keys } from '../src/ids.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'
import { caught, collect, type SuiteContext } from './harness.js'

function job(store: AbstractJobStore, name: string, fields: Partial<JobDescription> = {}): JobDescription {
  const desc = newJobDescription({ jobName: name, ...fields })
  store.assignID(desc)
  return desc
}

/** Writes raw bytes at a job's key, through the backend's own primitive, to simulate a damaged record. */
async function writeRaw(store: AbstractJobStore, key: string, bytes: string): Promise<void> {
  const put = (store as unknown as { putObject(key: string, body: Buffer, options: object): Promise<string> }).putObject
  await put.call(store, key, Buffer.from(bytes), {})
}

export function jobTests(ctx: SuiteContext): void {
  describe('jobs', () => {
    it('create, load, update, delete, seen from a second instance', async () => {
      const { store, locator } = await ctx.freshStore({ retryCount: 4 })
      const other = await ctx.reopen(locator)
      const desc = job(store, 'work', {
        command: 'run',
        extra: { inputs: { a: 1 }, outputs: [], meta: { tag: 'x' } },
        requirements: { memory: 1024, cores: 2, disk: 10, preemptible: false, accelerators: [{ kind: 'gpu', count: 1 }] },
      })
      expect(desc.version).toBe(0)
      await store.create(desc)
      expect(desc.version).toBe(1)
      expect(desc.remainingTryCount).toBe(5)
      const loaded = await other.load(desc.jobStoreID as string)
      expect(loaded).toEqual(desc)
      loaded.extra['outputs'] = ['out-1']
      await other.update(loaded)
      expect(loaded.version).toBe(2)
      expect((await store.load(desc.jobStoreID as string)).extra['outputs']).toEqual(['out-1'])
      expect(await store.exists(desc.jobStoreID as string)).toBe(true)
      await store.delete(desc.jobStoreID as string)
      expect(await other.exists(desc.jobStoreID as string)).toBe(false)
      expect((await caught(() => other.load(desc.jobStoreID as string))).code).toBe('NO_SUCH_JOB')
      expect((await caught(() => other.update(loaded, { ifVersion: loaded.version }))).code).toBe('NO_SUCH_JOB')
      expect((await caught(() => store.create(newJobDescription({ jobName: 'no id' })))).code).toBe('INVALID_ARGUMENT')
    })

    it('a job grown by 500 KB and shrunk again loads exactly', async () => {
      const { store, locator } = await ctx.freshStore()
      const other = await ctx.reopen(locator)
      const desc = job(store, 'big')
      await store.create(desc)
      desc.extra['blob'] = 'z'.repeat(500 * 1024)
      desc.extra['list'] = Array.from({ length: 2000 }, (_, i) => `item-${i}`)
      await store.update(desc)
      const grown = await other.load(desc.jobStoreID as string)
      expect((grown.extra['blob'] as string).length).toBe(500 * 1024)
      expect(grown).toEqual(desc)
      delete desc.extra['blob']
      desc.extra['list'] = []
      await store.update(desc)
      const shrunk = await other.load(desc.jobStoreID as string)
      expect(shrunk).toEqual(desc)
      expect(shrunk.extra['blob']).toBeUndefined()
    })

    it('batch() writes hundreds of jobs together, only when its body returns', async () => {
      const { store, locator } = await ctx.freshStore()
      const jobs = Array.from({ length: 300 }, (_, i) => job(store, `batched-${i}`))
      await store.batch(async () => {
        for (const desc of jobs) await store.create(desc)
        expect(await store.exists(jobs[0]?.jobStoreID as string)).toBe(false)
      })
      const other = await ctx.reopen(locator)
      const found = await Promise.all(jobs.map((desc) => other.exists(desc.jobStoreID as string)))
      expect(found.every(Boolean)).toBe(true)
      const failed = Array.from({ length: 5 }, (_, i) => job(store, `never-${i}`))
      const error = await caught(() =>
        store.batch(async () => {
          for (const desc of failed) await store.create(desc)
          throw new Error('batch body failed')
        }),
      )
      expect(error.message).toBe('batch body failed')
      for (const desc of failed) expect(await other.exists(desc.jobStoreID as string)).toBe(false)
    })

    it('jobs() lists every job past the server page size, streaming', async () => {
      const { store, locator } = await ctx.freshStore()
      const jobs = Array.from({ length: 2100 }, (_, i) => job(store, `listed-${i}`))
      await store.batch(async () => {
        for (const desc of jobs) await store.create(desc)
      })
      const other = await ctx.reopen(locator)
      const seen = new Set<string>()
      for await (const desc of other.jobs()) seen.add(desc.jobStoreID as string)
      expect(seen.size).toBe(2100)
      for (const desc of jobs) expect(seen.has(desc.jobStoreID as string)).toBe(true)
    })

    it('a corrupt record gives a clear error naming the job, and never breaks jobs()', async () => {
      const { store } = await ctx.freshStore()
      const good = job(store, 'good')
      const truncated = job(store, 'truncated')
      const wrongSchema = job(store, 'wrong-schema')
      await store.create(good)
      await writeRaw(store, keys.job(truncated.jobStoreID as string), '{"schemaVersion":1,"jobStor')
      await writeRaw(store, keys.job(wrongSchema.jobStoreID as string), JSON.stringify({ ...wrongSchema, schemaVersion: 99 }))
      const error = await caught(() => store.load(truncated.jobStoreID as string))
      expect(error).toBeInstanceOf(CorruptRecordError)
      expect(error.message).toContain(truncated.jobStoreID as string)
      expect((await caught(() => store.load(wrongSchema.jobStoreID as string))).message).toMatch(/schema version 99/)
      const reported: string[] = []
      const listed: string[] = []
      for await (const desc of store.jobs({ onCorruptRecord: (err) => reported.push(err.message) })) {
        listed.push(desc.jobStoreID as string)
      }
      expect(listed).toEqual([good.jobStoreID])
      expect(reported).toHaveLength(2)
    })

    it('root job, and its return value', async () => {
      const { store, locator } = await ctx.freshStore()
      expect((await caught(() => store.loadRootJob())).code).toBe('NO_SUCH_JOB')
      expect((await caught(() => store.getRootJobReturnValue())).code).toBe('NO_SUCH_FILE')
      const root = job(store, 'root')
      await store.createRootJob(root)
      const other = await ctx.reopen(locator)
      expect((await other.loadRootJob()).jobStoreID).toBe(root.jobStoreID)
      await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end(JSON.stringify({ answer: 42 })))
      expect(await other.getRootJobReturnValue()).toEqual({ answer: 42 })
    })

    it('clean() repairs a damaged job graph, in Toil’s way', async () => {
      const { store, locator } = await ctx.freshStore({ retryCount: 2 })
      const file = (text: string): Promise<string> => store.writeFileStream((w) => void w.end(text))
      const root = job(store, 'root')
      const a = job(store, 'a')
      const b = job(store, 'b')
      const c = job(store, 'c')
      const gone = job(store, 'never-created')
      const victim = job(store, 'to-delete')
      const orphan = job(store, 'orphan')
      const orphanChild = job(store, 'orphan-child')
      const rootFile = await file('root temp')
      const orphanFile = await file('orphan temp')
      const logFile = await file('log of b')
      const keep = await file('keep')
      root.children = [a.jobStoreID as string]
      root.followOns = [c.jobStoreID as string]
      root.filesToDelete = [rootFile]
      a.children = [b.jobStoreID as string, gone.jobStoreID as string]
      a.jobsToDelete = [victim.jobStoreID as string]
      a.remainingTryCount = 0
      b.logJobStoreFileID = logFile
      b.services = [victim.jobStoreID as string]
      orphan.children = [orphanChild.jobStoreID as string]
      orphan.filesToDelete = [orphanFile]
      for (const desc of [a, b, c, victim, orphan, orphanChild]) await store.create(desc)
      await store.createRootJob(root)

      const repaired = await store.clean()
      expect(repaired.jobStoreID).toBe(root.jobStoreID)
      expect(repaired.filesToDelete).toEqual([])

      const other = await ctx.reopen(locator)
      for (const desc of [orphan, orphanChild, victim]) expect(await other.exists(desc.jobStoreID as string)).toBe(false)
      for (const id of [rootFile, orphanFile, logFile]) expect(await other.fileExists(id)).toBe(false)
      expect(await other.fileExists(keep)).toBe(true)
      const rootAfter = await other.loadRootJob()
      expect(rootAfter.filesToDelete).toEqual([])
      expect(rootAfter.remainingTryCount).toBe(3)
      const aAfter = await other.load(a.jobStoreID as string)
      expect(aAfter.children).toEqual([b.jobStoreID])
      expect(aAfter.jobsToDelete).toEqual([])
      expect(aAfter.remainingTryCount).toBe(3)
      const bAfter = await other.load(b.jobStoreID as string)
      expect(bAfter.logJobStoreFileID).toBeUndefined()
      expect(bAfter.services).toEqual([])
      expect((await other.load(c.jobStoreID as string)).remainingTryCount).toBe(3)

      // With a job cache, clean() uses it instead of listing; a clean store stays as it is.
      const cache = new Map<string, JobDescription>()
      for await (const desc of other.jobs()) cache.set(desc.jobStoreID as string, desc)
      const versionBefore = (await other.load(a.jobStoreID as string)).version
      await other.clean(cache)
      expect((await other.load(a.jobStoreID as string)).version).toBe(versionBefore)
      expect(cache.size).toBe(4)
    })
  })

  describe('stats and logging', () => {
    it('each message goes to exactly one of two concurrent readers; readAll replays', async () => {
      const { store, locator } = await ctx.freshStore()
      const other = await ctx.reopen(locator)
      const messages = Array.from({ length: 40 }, (_, i) => `message ${i} ✓`)
      await Promise.all(messages.map((m) => store.writeStatsAndLogging(m)))
      const first: string[] = []
      const second: string[] = []
      const [n1, n2] = await Promise.all([
        store.readStatsAndLogging((text) => void first.push(text)),
        other.readStatsAndLogging((text) => void second.push(text)),
      ])
      expect(n1 + n2).toBe(40)
      expect([...first, ...second].sort()).toEqual([...messages].sort())
      expect(await store.readStatsAndLogging(() => {})).toBe(0)
      const replayed: string[] = []
      expect(await other.readStatsAndLogging((text) => void replayed.push(text), true)).toBe(40)
      expect(replayed.sort()).toEqual([...messages].sort())
    })

    it('a callback that throws loses no message', async () => {
      const { store } = await ctx.freshStore()
      await store.writeStatsAndLogging('precious')
      expect((await caught(() => store.readStatsAndLogging(() => { throw new Error('reader crashed') }))).message).toBe(
        'reader crashed',
      )
      const got: string[] = []
      expect(await store.readStatsAndLogging((text) => void got.push(text))).toBe(1)
      expect(got).toEqual(['precious'])
    })

    it('readers in separate processes never get the same message twice', async (t) => {
      ctx.requireCapability(t, 'multipleProcesses')
      const { store, locator } = await ctx.freshStore()
      const messages = Array.from({ length: 60 }, (_, i) => `m${i}`)
      await Promise.all(messages.map((m) => store.writeStatsAndLogging(m)))
      const startAt = Date.now() + 3000
      const results = await Promise.all([1, 2, 3].map(() => ctx.runWorker({ scenario: 'read-stats', locator, args: { startAt } })))
      const got: string[] = []
      for (const result of results) {
        expect(result.code, result.stderr).toBe(0)
        for (const line of result.lines) if (line.startsWith('msg ')) got.push(line.slice(4))
      }
      expect(got.sort()).toEqual([...messages].sort())
    })

    it('shared files written with a root job return value are JSON', async () => {
      const { store } = await ctx.freshStore()
      await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end('not json'))
      expect((await caught(() => store.getRootJobReturnValue())).code).toBe('CORRUPT_RECORD')
      expect((await collect(await store.readSharedFileStream('rootJobReturnValue'))).toString()).toBe('not json')
    })
  })
}
