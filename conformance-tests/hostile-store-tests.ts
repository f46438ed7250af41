/**
 * Hostile environment: `initialize` and `destroy` act only on stores. A location that holds data under the names
 * of the store's layout (`jobs/`, `files/`, a `config.json` of someone else's) but nothing that proves it is a job
 * store (the store marker `meta/store-marker`, or a config of ours) is neither adopted nor deleted. The remains of
 * a store (a marker, no config: a half-created or half-destroyed store) are destroyable; a store made before the
 * marker existed (a config, no marker) still resumes and is destroyable.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { keys, randomId } from '../src/ids.js'
import { newJobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import { caught, collect, type SuiteContext } from './harness.js'

/** The store's storage primitives, reached through a cast: real storage, to plant data as another program would. */
interface Primitives {
  putObject(key: string, body: Buffer, options: object): Promise<string>
  headObject(key: string): Promise<{ size: number } | undefined>
  getObject(key: string): Promise<{ body: NodeJS.ReadableStream }>
  deleteObjects(keys: readonly string[]): Promise<void>
}

function primitives(store: AbstractJobStore): Primitives {
  return store as unknown as Primitives
}

/** Someone else's data under the layout's names: no marker, and a config.json that is not ours. */
async function plantForeignData(store: AbstractJobStore): Promise<Record<string, string>> {
  const planted: Record<string, string> = {
    [keys.config]: JSON.stringify({ name: 'my web app', port: 8080 }),
    [`jobs/${randomId().slice(0, 2)}/${randomId()}`]: 'a job of another program',
    'files/readme.txt': 'not a job store file',
    'shared/settings': 'someone else’s settings',
    'meta/owner': 'someone else',
  }
  for (const [key, text] of Object.entries(planted)) await primitives(store).putObject(key, Buffer.from(text), {})
  return planted
}

async function expectIntact(store: AbstractJobStore, planted: Record<string, string>): Promise<void> {
  for (const [key, text] of Object.entries(planted)) {
    const object = await primitives(store).getObject(key)
    expect((await collect(object.body as AsyncIterable<unknown>)).toString(), key).toBe(text)
  }
}

/** Removes what a test planted, behind the store's back (destroy() refuses to). */
function removeAfterwards(store: AbstractJobStore, planted: Record<string, string>): void {
  onTestFinished(async () => {
    await primitives(store).deleteObjects(Object.keys(planted))
    await store.destroy().catch(() => {})
  })
}

export function hostileStoreTests(ctx: SuiteContext): void {
  describe('hostile environment: only stores are destroyed or initialized', () => {
    it('destroy on foreign data under the layout’s names (no marker, someone else’s config.json) deletes nothing and throws NotAJobStoreError', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      const planted = await plantForeignData(store)
      removeAfterwards(store, planted)
      const error = await caught(() => store.destroy())
      expect(error.code).toBe('NOT_A_JOB_STORE')
      expect(error.message).toMatch(/not a job store/)
      await expectIntact(store, planted)
      // A second instance, as the CLI would open it, refuses too.
      const other = await openJobStore(locator)
      expect((await caught(() => other.destroy())).code).toBe('NOT_A_JOB_STORE')
      await expectIntact(store, planted)
    })

    it('initialize on foreign data refuses with NotAJobStoreError and adopts nothing', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      const job = `jobs/${randomId().slice(0, 2)}/${randomId()}`
      const planted = { [job]: 'a job of another program', 'files/readme.txt': 'not ours' }
      for (const [key, text] of Object.entries(planted)) await primitives(store).putObject(key, Buffer.from(text), {})
      removeAfterwards(store, planted)
      expect((await caught(() => store.initialize())).code).toBe('NOT_A_JOB_STORE')
      expect(await primitives(store).headObject(keys.config)).toBeUndefined()
      expect(await primitives(store).headObject(keys.storeMarker)).toBeUndefined()
      expect((await caught(() => store.resume())).code).toBe('NO_SUCH_JOB_STORE')
      await expectIntact(store, planted)
      // Someone else's config.json alone is not a store either: initialize does not call it one.
      const configOnly = await openJobStore(await ctx.harness.newLocator())
      const foreignConfig = { [keys.config]: JSON.stringify({ name: 'my web app' }) }
      await primitives(configOnly).putObject(keys.config, Buffer.from(foreignConfig[keys.config]), {})
      removeAfterwards(configOnly, foreignConfig)
      expect((await caught(() => configOnly.initialize())).code).toBe('NOT_A_JOB_STORE')
      expect((await caught(() => configOnly.destroy())).code).toBe('NOT_A_JOB_STORE')
      await expectIntact(configOnly, foreignConfig)
    })

    it('initialize writes the store marker; on the remains of a store (marker and jobs, no config) it refuses with JobStoreExistsError, and destroy removes them', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      await store.initialize()
      expect(await primitives(store).headObject(keys.storeMarker)).toBeDefined()
      const desc = newJobDescription({ jobName: 'left behind' })
      store.assignID(desc)
      await store.create(desc)
      const fileID = await store.writeFileStream((w) => void w.end('left behind'))
      // A destroy cut short after the config went: the marker and the data are left.
      await primitives(store).deleteObjects([keys.config])
      const fresh = await openJobStore(locator)
      const error = await caught(() => fresh.initialize())
      expect(error.code).toBe('JOB_STORE_EXISTS')
      expect(error.message).toMatch(/remains of a job store/)
      expect(await primitives(store).headObject(keys.config)).toBeUndefined()
      expect(await primitives(store).headObject(keys.job(desc.jobStoreID as string))).toBeDefined()
      await fresh.destroy()
      expect(await primitives(store).headObject(keys.job(desc.jobStoreID as string))).toBeUndefined()
      expect(await primitives(store).headObject(keys.file(fileID))).toBeUndefined()
      expect(await primitives(store).headObject(keys.storeMarker)).toBeUndefined()
      await fresh.destroy() // nothing at all is "already destroyed"
      await fresh.initialize() // and the location can host a new store
      await fresh.destroy()
    })

    it('16 racing initializers on an empty location: exactly one wins, the others get JobStoreExistsError, one marker stays', async () => {
      const locator = await ctx.harness.newLocator()
      const stores = await Promise.all(Array.from({ length: 16 }, () => openJobStore(locator)))
      onTestFinished(async () => {
        await (stores[0] as AbstractJobStore).destroy()
        await Promise.all(stores.map((store) => store.close()))
      })
      const results = await Promise.allSettled(stores.map((store) => store.initialize()))
      const winners = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []))
      expect(winners).toHaveLength(1)
      for (const result of results) {
        if (result.status === 'rejected') expect((result.reason as { code?: string }).code, String(result.reason)).toBe('JOB_STORE_EXISTS')
      }
      expect((await ctx.reopen(locator)).config.workflowID).toBe(winners[0]?.workflowID)
      expect(await primitives(stores[0] as AbstractJobStore).headObject(keys.storeMarker)).toBeDefined()
    })

    it('a half-created store (marker, no config) is destroyable, and initialize completes it', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      await store.initialize()
      await primitives(store).deleteObjects([keys.config])
      const half = await openJobStore(locator)
      expect((await caught(() => half.resume())).code).toBe('NO_SUCH_JOB_STORE')
      await half.destroy()
      expect(await primitives(store).headObject(keys.storeMarker)).toBeUndefined()
      // Crashed again between marker and config: initialize goes on from there.
      await store.initialize()
      await primitives(store).deleteObjects([keys.config])
      const again = await openJobStore(locator)
      const config = await again.initialize()
      expect((await ctx.reopen(locator)).config.workflowID).toBe(config.workflowID)
      await again.destroy()
      await again.destroy()
    })

    it('a store of the previous release (config, no marker) resumes, works and is destroyable', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      const { workflowID } = await store.initialize()
      await primitives(store).deleteObjects([keys.storeMarker])
      const old = await ctx.reopen(locator)
      expect(old.config.workflowID).toBe(workflowID)
      const desc = newJobDescription({ jobName: 'old release' })
      old.assignID(desc)
      await old.create(desc)
      const fileID = await old.writeFileStream((w) => void w.end('old'))
      expect((await caught(() => openJobStore(locator).then((s) => s.initialize()))).code).toBe('JOB_STORE_EXISTS')
      await old.destroy()
      expect(await primitives(store).headObject(keys.job(desc.jobStoreID as string))).toBeUndefined()
      expect(await primitives(store).headObject(keys.file(fileID))).toBeUndefined()
      expect(await primitives(store).headObject(keys.config)).toBeUndefined()
      expect(await primitives(store).headObject(keys.storeMarker)).toBeUndefined()
      expect((await caught(() => ctx.reopen(locator))).code).toBe('NO_SUCH_JOB_STORE')
      await old.destroy()
    })

    it('copyTo a location holding foreign data refuses with NotAJobStoreError; an interrupted copy resumes and is destroyable', async () => {
      const { store } = await ctx.freshStore()
      await store.writeSharedFileStream('x', (w) => void w.end('x'))
      const target = await openJobStore(await ctx.harness.newLocator())
      const planted = { 'jobs/ab/not-a-job': 'another program' }
      await primitives(target).putObject('jobs/ab/not-a-job', Buffer.from(planted['jobs/ab/not-a-job']), {})
      removeAfterwards(target, planted)
      expect((await caught(() => store.copyTo(target))).code).toBe('NOT_A_JOB_STORE')
      expect(await primitives(target).headObject(keys.shared('x'))).toBeUndefined()
      await expectIntact(target, planted)
      // A copy cut short (here: its config not yet written) leaves a destination destroy() recognises.
      const destination = await openJobStore(await ctx.harness.newLocator())
      await store.copyTo(destination)
      await primitives(destination).deleteObjects([keys.config])
      // Its marker names the workflow it copies: the copy resumes there (another initialize would not).
      expect((await caught(() => openJobStore(destination.locator).then((s) => s.initialize()))).code).toBe('JOB_STORE_EXISTS')
      expect((await store.copyTo(destination)).skipped).toBeGreaterThan(0)
      expect((await ctx.reopen(destination.locator)).config.workflowID).toBe(store.config.workflowID)
      await primitives(destination).deleteObjects([keys.config])
      const leftover = await openJobStore(destination.locator)
      await leftover.destroy()
      expect(await primitives(destination).headObject(keys.shared('x'))).toBeUndefined()
    })
  })
}
