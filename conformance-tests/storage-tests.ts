/**
 * The storage group: the primitives every backend supplies (`src/storage.ts`), called directly as the core calls
 * them, on every backend. What each cloud backend's test file used to check for itself (sizes around the part size,
 * conditions, a body failing or aborted mid-upload, prefixes of one bucket, leftovers, URLs) is written here once;
 * what is left in a backend's file is about its service alone.
 */
import { PassThrough, Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { AbortedError } from '../src/errors.js'
import { ObjectNotFoundError, PreconditionFailedError, type ListedObject, type PutOptions } from '../src/storage.js'
import { caught, collect, randomPayload, sha256, writeChunks, type StorageProbe, type SuiteContext } from './harness.js'

/** A Readable that hands out `data` in chunks of `size`, then fails with `error` if given. */
export function chunked(data: Buffer, size: number, error?: Error): Readable {
  let offset = 0
  return new Readable({
    read() {
      if (offset < data.length) {
        this.push(data.subarray(offset, offset + size))
        offset += size
      } else if (error !== undefined) this.destroy(error)
      else this.push(null)
    },
  })
}

async function listed(storage: StorageProbe, prefix: string): Promise<ListedObject[]> {
  const out: ListedObject[] = []
  for await (const object of storage.listObjects(prefix)) out.push(object)
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

/** The keys under `prefix`, sorted. */
export async function keysUnder(storage: StorageProbe, prefix: string): Promise<string[]> {
  return (await listed(storage, prefix)).map((object) => object.key)
}

/** The whole body of `key`. */
export async function bytesOf(storage: StorageProbe, key: string): Promise<Buffer> {
  return collect((await storage.getObject(key)).body)
}

/** Waits for `condition` (a state to reach, not a duration to check). */
async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Runs `work` over `items` with 32 at a time (writing a thousand objects one by one is slow on a service). */
async function inParallel<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<void> {
  const queue = [...items]
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      for (let item = queue.pop(); item !== undefined; item = queue.pop()) await work(item)
    }),
  )
}

/** Registers the storage group (`describe('storage primitives')`) for the harness in `ctx`. */
export function storageTests(ctx: SuiteContext): void {
  const part = ctx.storagePartSize
  /** The primitives of a store at `locator` (default: a fresh one), its storage created; destroyed after the test. */
  const fresh = async (locator?: string): Promise<StorageProbe & { locator: string }> => {
    const at = locator ?? (await ctx.harness.newLocator())
    const { storage } = await ctx.openStore(at)
    await storage.createStorage()
    return { ...storage, locator: at }
  }

  /**
   * Stores at `locators`, each with an object and an abandoned upload; destroying the first, then the second, takes
   * their own uploads only.
   */
  const abandonedUploadsGo = async (locators: readonly string[]): Promise<void> => {
    const stores = await Promise.all(locators.map((locator) => fresh(locator)))
    for (const storage of stores) {
      await storage.putObject('files/ab/kept', Buffer.from('kept'))
      await ctx.abandonUpload(storage.locator, 'files/ab/abandoned')
    }
    const leftovers = async (): Promise<number[]> => Promise.all(locators.map((locator) => ctx.leftovers(locator)))
    expect(await leftovers()).toEqual([1, 1, 1])
    await (stores[0] as StorageProbe).destroyStorage()
    expect(await leftovers()).toEqual([0, 1, 1])
    await (stores[1] as StorageProbe).destroyStorage()
    expect(await leftovers()).toEqual([0, 0, 1])
    expect((await bytesOf(stores[2] as StorageProbe, 'files/ab/kept')).toString()).toBe('kept')
  }

  describe('storage primitives', () => {
    describe('writes and reads', () => {
      it('sizes around the part size, as Buffers and as streams (with and without a length): put, head, get and list agree', async () => {
        const storage = await fresh()
        for (const size of [0, 1, part - 1, part, part + 1, 2 * part, 3 * part + 7]) {
          const data = randomPayload(size)
          const writes: [string, Buffer | Readable, PutOptions][] = [
            [`files/ab/buffer-${size}`, data, { executable: size % 2 === 0 }],
            // 65,537-byte pieces never line up with a part; a length is announced for half the sizes.
            [`files/ab/stream-${size}`, chunked(data, 65_537), { executable: size % 2 === 1, ...(size % 2 === 0 ? { contentLength: size } : {}) }],
          ]
          for (const [key, body, options] of writes) {
            const version = await storage.putObject(key, body, options)
            const executable = options.executable === true
            expect(await storage.headObject(key), key).toMatchObject({ key, size, version, executable })
            const read = await storage.getObject(key)
            expect(read, key).toMatchObject({ key, size, version, executable })
            expect(sha256(await collect(read.body)), key).toBe(sha256(data))
          }
        }
        const objects = await listed(storage, 'files/')
        expect(objects).toHaveLength(14)
        for (const object of objects) {
          if (object.size !== undefined) expect(object.size, object.key).toBe(Number(object.key.split('-').pop()))
        }
        expect(await ctx.leftovers(storage.locator)).toBe(0)
      })

      it('a missing key: get rejects with ObjectNotFoundError before any byte, head is undefined, a delete is no error', async () => {
        const storage = await fresh()
        expect(await caught(() => storage.getObject('files/ab/none'))).toBeInstanceOf(ObjectNotFoundError)
        expect(await storage.headObject('files/ab/none')).toBeUndefined()
        await storage.deleteObjects(['files/ab/none'])
        await storage.putObject('files/ab/gone', Buffer.from('x'))
        await storage.deleteObjects(['files/ab/gone', 'files/ab/gone'])
        expect(await caught(() => storage.getObject('files/ab/gone'))).toBeInstanceOf(ObjectNotFoundError)
        expect(await storage.headObject('files/ab/gone')).toBeUndefined()
      })

      it('storage that does not exist reads as empty: get, head, list, delete and destroy; resume finds no store', async () => {
        const locator = await ctx.newBucketLocator({ root: false })
        const { store, storage } = await ctx.openStore(locator)
        expect(await caught(() => storage.getObject('files/ab/x'))).toBeInstanceOf(ObjectNotFoundError)
        expect(await storage.headObject('files/ab/x')).toBeUndefined()
        expect(await keysUnder(storage, 'files/')).toEqual([])
        await storage.deleteObjects(['files/ab/x', 'shared/y'])
        await storage.destroyStorage()
        expect((await caught(() => store.resume())).code).toBe('NO_SUCH_JOB_STORE')
      })

      it('odd keys round-trip through put, get, list and delete: percent escapes, dots, dashes, long names', async () => {
        const storage = await fresh()
        const names = [
          'files/ab/_/k/0123456789abcdefghjkmnpqrs-a%2Fb%25c',
          'files/ab/_/k/0123456789abcdefghjkmnpqrs-trailing.',
          'files/ab/_/k/0123456789abcdefghjkmnpqrs-..',
          'files/ab/_/k/0123456789abcdefghjkmnpqrs-%20spaced%20',
          'files/ab/_/k/0123456789abcdefghjkmnpqrs-%E6%97%A5%E6%9C%AC',
          `files/ab/_/k/0123456789abcdefghjkmnpqrs-${'x'.repeat(200)}`,
          'shared/.hidden',
          'shared/a..b',
          'shared/-_-',
        ]
        for (const key of names) await storage.putObject(key, Buffer.from(key))
        for (const key of names) expect((await bytesOf(storage, key)).toString(), key).toBe(key)
        expect([...(await keysUnder(storage, 'files/')), ...(await keysUnder(storage, 'shared/'))].sort()).toEqual([...names].sort())
        await storage.deleteObjects(names)
        expect(await keysUnder(storage, 'files/')).toEqual([])
        expect(await keysUnder(storage, 'shared/')).toEqual([])
      })

      it('lists every key past a page (1,500 objects) with its size where given; deletes past a batch, missing keys included, and again', async () => {
        const storage = await fresh()
        const names = Array.from({ length: 1500 }, (_, i) => `jobs/${String(i % 97).padStart(2, '0')}/k${i}`)
        await inParallel(names, (key) => storage.putObject(key, Buffer.from(key)))
        const objects = await listed(storage, 'jobs/')
        expect(objects.map((object) => object.key)).toEqual([...names].sort())
        for (const object of objects) if (object.size !== undefined) expect(object.size).toBe(object.key.length)
        await storage.deleteObjects([...names, 'jobs/zz/never-there', 'shared/also-missing'])
        await storage.deleteObjects(names.slice(0, 10))
        expect(await keysUnder(storage, 'jobs/')).toEqual([])
      })
    })

    describe('conditional writes', () => {
      it('create-only on an existing key, and compare-and-swap on a stale, bogus or missing version, fail with PreconditionFailedError and change nothing, small and of several parts', async () => {
        const storage = await fresh()
        for (const size of [10, part + 10]) {
          const key = `shared/conditional-${size}`
          const body = (): Readable => chunked(randomPayload(size), 64 * 1024)
          const v1 = await storage.putObject(key, body(), { ifNoneMatch: true })
          expect(await caught(() => storage.putObject(key, body(), { ifNoneMatch: true }))).toBeInstanceOf(PreconditionFailedError)
          const kept = await bytesOf(storage, key)
          const v2 = await storage.putObject(key, body(), { ifMatch: v1 })
          expect(v2).not.toBe(v1)
          expect(await caught(() => storage.putObject(key, body(), { ifMatch: v1 }))).toBeInstanceOf(PreconditionFailedError)
          expect(await caught(() => storage.putObject(key, Buffer.from('x'), { ifMatch: 'not-a-version' }))).toBeInstanceOf(PreconditionFailedError)
          expect(await caught(() => storage.putObject(`${key}-absent`, body(), { ifMatch: v2 }))).toBeInstanceOf(PreconditionFailedError)
          expect(await storage.headObject(`${key}-absent`)).toBeUndefined()
          expect((await storage.headObject(key))?.version).toBe(v2)
          const read = await storage.getObject(key)
          // Released at once: a body left open would be resumed, and fail, once the store is destroyed.
          read.body.destroy()
          expect(read.version).toBe(v2)
          expect((await bytesOf(storage, key)).equals(kept)).toBe(false)
        }
      })

      it('a condition is checked when the write commits: a replace or a create by another writer while it streams wins', async () => {
        const storage = await fresh()
        const other = (await ctx.openStore(storage.locator)).storage
        // Compare-and-swap: another writer replaces the object while ours streams several parts.
        const v1 = await storage.putObject('files/ab/x', Buffer.from('v1'))
        const replacing = new PassThrough()
        const replace = storage.putObject('files/ab/x', replacing, { ifMatch: v1 })
        replace.catch(() => {})
        await writeChunks(replacing, randomPayload(part + 64 * 1024), 64 * 1024)
        await other.putObject('files/ab/x', Buffer.from('theirs'))
        replacing.end(randomPayload(1000))
        expect(await caught(() => replace)).toBeInstanceOf(PreconditionFailedError)
        expect((await bytesOf(storage, 'files/ab/x')).toString()).toBe('theirs')
        // Create-only: another writer creates the key while ours streams.
        const creating = new PassThrough()
        const create = storage.putObject('files/ab/y', creating, { ifNoneMatch: true })
        create.catch(() => {})
        await writeChunks(creating, randomPayload(part + 10), 64 * 1024)
        await other.putObject('files/ab/y', Buffer.from('first'), { ifNoneMatch: true })
        creating.end()
        expect(await caught(() => create)).toBeInstanceOf(PreconditionFailedError)
        expect((await bytesOf(storage, 'files/ab/y')).toString()).toBe('first')
        expect(await ctx.leftovers(storage.locator)).toBe(0)
      })

      it('of 8 create-only writers of one key from two instances, exactly one wins and is stored whole, small and of several parts', async () => {
        const storage = await fresh()
        const other = (await ctx.openStore(storage.locator)).storage
        for (const size of [1000, part + 4321]) {
          const key = `shared/race-${size}`
          const payloads = Array.from({ length: 8 }, () => randomPayload(size))
          const results = await Promise.allSettled(
            payloads.map((data, i) => (i % 2 ? storage : other).putObject(key, chunked(data, 128 * 1024), { ifNoneMatch: true })),
          )
          const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []))
          expect(winners, `size ${size}`).toHaveLength(1)
          for (const result of results) if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(PreconditionFailedError)
          const read = await storage.getObject(key)
          expect(read.version).toBe((results[winners[0] as number] as PromiseFulfilledResult<string>).value)
          expect(sha256(await collect(read.body)), `size ${size}`).toBe(sha256(payloads[winners[0] as number] as Buffer))
        }
        expect(await ctx.leftovers(storage.locator)).toBe(0)
      })

      it('the write token is kept with the object and read back by head and get, small and of several parts (storedWriteTokens)', async (t) => {
        ctx.requireCapability(t, 'storedWriteTokens')
        const storage = await fresh()
        for (const size of [5, part + 5]) {
          const key = `shared/token-${size}`
          const data = randomPayload(size)
          const version = await storage.putObject(key, chunked(data, 64 * 1024), { ifNoneMatch: true, writeToken: 'tok-1' })
          // What an SDK retry of a landed write sees: its own condition fails; the token tells the core it landed.
          expect(await caught(() => storage.putObject(key, chunked(data, 64 * 1024), { ifNoneMatch: true, writeToken: 'tok-1' }))).toBeInstanceOf(
            PreconditionFailedError,
          )
          expect(await storage.headObject(key)).toMatchObject({ version, writeToken: 'tok-1' })
          const read = await storage.getObject(key)
          read.body.destroy()
          expect(read.writeToken).toBe('tok-1')
          await storage.putObject(key, Buffer.from('again'), { ifMatch: version, writeToken: 'tok-2' })
          expect((await storage.headObject(key))?.writeToken).toBe('tok-2')
        }
      })
    })

    describe('failed and aborted writes', () => {
      it('a body that fails, in its first part or after several, stores nothing: the old object and version stay, a new key stays absent, no upload is left', async () => {
        const storage = await fresh()
        const old = randomPayload(5000)
        const version = await storage.putObject('files/ab/old', old)
        for (const size of [Math.floor(part / 2), 3 * part]) {
          const boom = new Error(`body failed after ${size} bytes`)
          expect(await caught(() => storage.putObject('files/ab/old', chunked(randomPayload(size), 64 * 1024, boom)))).toBe(boom)
          expect(await caught(() => storage.putObject('files/ab/new', chunked(randomPayload(size), 64 * 1024, boom), { ifNoneMatch: true }))).toBe(boom)
        }
        expect(sha256(await bytesOf(storage, 'files/ab/old'))).toBe(sha256(old))
        expect((await storage.headObject('files/ab/old'))?.version).toBe(version)
        expect(await storage.headObject('files/ab/new')).toBeUndefined()
        expect(await keysUnder(storage, 'files/')).toEqual(['files/ab/old'])
        expect(await ctx.leftovers(storage.locator)).toBe(0)
      })

      it('an abort while the body stalls ends the write with AbortedError and commits nothing (abortsStalledWrites)', async (t) => {
        ctx.requireCapability(t, 'abortsStalledWrites')
        const storage = await fresh()
        await storage.putObject('files/ab/old', Buffer.from('old'))
        const countable = ctx.capability('countableLeftovers') === true
        for (const [key, options] of [['files/ab/new', { ifNoneMatch: true }], ['files/ab/old', {}]] as const) {
          const body = new PassThrough()
          const controller = new AbortController()
          const write = storage.putObject(key, body, { ...options, signal: controller.signal })
          write.catch(() => {})
          await writeChunks(body, randomPayload(2 * part + 1), 64 * 1024)
          // Where leftovers can be counted, the abort comes once the upload is under way (a new key's is counted).
          if (countable && key === 'files/ab/new') await until(async () => (await ctx.leftovers(storage.locator)) > 0, 'the upload to start')
          controller.abort(new Error('stop'))
          // The body never ends: only the signal can end the write.
          expect(await caught(() => write), key).toBeInstanceOf(AbortedError)
        }
        expect(await storage.headObject('files/ab/new')).toBeUndefined()
        expect((await bytesOf(storage, 'files/ab/old')).toString()).toBe('old')
        expect(await ctx.leftovers(storage.locator)).toBe(0)
      })

      it('a write whose signal is already aborted rejects with AbortedError and stores nothing', async () => {
        const storage = await fresh()
        const aborted = new AbortController()
        aborted.abort()
        expect(await caught(() => storage.putObject('files/ab/never', Buffer.from('x'), { signal: aborted.signal }))).toBeInstanceOf(AbortedError)
        expect(await caught(() => storage.putObject('files/ab/never', chunked(randomPayload(part + 1), 64 * 1024), { signal: aborted.signal }))).toBeInstanceOf(AbortedError)
        expect(await storage.headObject('files/ab/never')).toBeUndefined()
        expect(await ctx.leftovers(storage.locator)).toBe(0)
      })
    })

    describe('prefixes and leftovers', () => {
      it('stores under prefixes that start alike are isolated; destroying one, twice, leaves the others whole', async () => {
        // Not a store nested under another's prefix: S3 and Azure destroy a prefix whole, GCS and the file system
        // the store's layout only (docs/writing-a-backend.md).
        const base = await ctx.harness.newLocator()
        const a = await fresh(base)
        const others = [await fresh(`${base}0`), await fresh(`${base}-sib`)]
        for (const storage of [a, ...others]) {
          await storage.putObject('shared/name', Buffer.from(storage.locator))
          await storage.putObject('files/ab/f', randomPayload(part + 1))
        }
        expect(await keysUnder(a, 'shared/')).toEqual(['shared/name'])
        await a.destroyStorage()
        await a.destroyStorage()
        expect(await keysUnder(a, 'shared/')).toEqual([])
        expect(await keysUnder(a, 'files/')).toEqual([])
        for (const storage of others) {
          const again = (await ctx.openStore(storage.locator)).storage
          expect((await bytesOf(again, 'shared/name')).toString()).toBe(storage.locator)
          expect(await keysUnder(again, 'files/')).toEqual(['files/ab/f'])
        }
      })

      it('a store at the root of its bucket owns only its own layout: nested stores, also under names that start like its entries, survive its destroy (sharedRoots)', async (t) => {
        ctx.requireCapability(t, 'sharedRoots')
        const root = await ctx.newBucketLocator()
        const store = await fresh(root)
        const nested = await Promise.all(['run-1', 'jobsx', 'filesystem', 'config.json.bak'].map((name) => fresh(`${root}/${name}`)))
        await store.putObject('files/ab/x', Buffer.from('root'))
        await store.putObject('jobs/ab/j', Buffer.from('root job'))
        for (const storage of nested) await storage.putObject('files/ab/x', Buffer.from(storage.locator))
        await store.destroyStorage()
        expect(await keysUnder(store, 'files/')).toEqual([])
        expect(await keysUnder(store, 'jobs/')).toEqual([])
        for (const storage of nested) {
          expect((await bytesOf(storage, 'files/ab/x')).toString()).toBe(storage.locator)
          expect(await keysUnder(storage, 'files/')).toEqual(['files/ab/x'])
        }
      })

      it('stores racing to create storage that does not exist yet all succeed', async () => {
        const root = await ctx.newBucketLocator({ root: false })
        const stores = await Promise.all(Array.from({ length: 6 }, async (_, i) => (await ctx.openStore(i === 0 ? root : `${root}/s${i}`)).storage))
        await Promise.all(stores.map((storage) => storage.createStorage()))
        for (const storage of stores) {
          const version = await storage.putObject('shared/here', Buffer.from('here'), { ifNoneMatch: true })
          expect((await storage.headObject('shared/here'))?.version).toBe(version)
        }
      })

      it('abandoned uploads belong to their store: destroying one takes its own, not those of stores under prefixes that start alike (abandonedUploads)', async (t) => {
        ctx.requireCapability(t, 'abandonedUploads')
        const base = await ctx.harness.newLocator()
        await abandonedUploadsGo([base, `${base}0`, `${base}-sib`])
      })

      it('a store at the root of its bucket takes its abandoned uploads along when destroyed, not those of the stores under it (sharedRoots, abandonedUploads)', async (t) => {
        ctx.requireCapability(t, 'sharedRoots')
        ctx.requireCapability(t, 'abandonedUploads')
        const root = await ctx.newBucketLocator()
        await abandonedUploadsGo([root, `${root}/run-1`, `${root}/jobsx`])
      })

      it('removeLeftovers removes this store’s abandoned uploads older than the age asked, and nothing else (abandonedUploads)', async (t) => {
        ctx.requireCapability(t, 'abandonedUploads')
        const storage = await fresh()
        const sibling = await fresh(`${storage.locator}x`)
        for (const at of [storage, sibling]) await ctx.abandonUpload(at.locator, 'files/ab/abandoned')
        await storage.putObject('files/ab/empty', Buffer.alloc(0))
        await storage.putObject('files/ab/full', Buffer.from('full'))
        expect(await ctx.leftovers(storage.locator)).toBe(1)
        // Younger than the age asked: kept.
        expect(await storage.removeLeftovers(60 * 60_000)).toBe(0)
        expect(await ctx.leftovers(storage.locator)).toBe(1)
        expect(await storage.removeLeftovers(0)).toBe(1)
        expect(await ctx.leftovers(storage.locator)).toBe(0)
        expect(await ctx.leftovers(sibling.locator)).toBe(1)
        expect((await storage.headObject('files/ab/empty'))?.size).toBe(0)
        expect((await bytesOf(storage, 'files/ab/full')).toString()).toBe('full')
      })
    })

    describe('URLs', () => {
      it('an object URL reads the object without credentials, allows no write or delete, and is refused once expired (enforcedPublicUrls)', async (t) => {
        ctx.requireCapability(t, 'publicUrls')
        ctx.requireCapability(t, 'fetchablePublicUrls')
        ctx.requireCapability(t, 'enforcedPublicUrls')
        const storage = await fresh()
        const data = randomPayload(70_000)
        await storage.putObject('shared/public', data)
        const url = await storage.getObjectUrl('shared/public', 600)
        const answer = await fetch(url)
        expect(answer.status).toBe(200)
        expect(sha256(Buffer.from(await answer.arrayBuffer()))).toBe(sha256(data))
        // Read-only: the same URL does not allow a write or a delete.
        for (const init of [{ method: 'PUT', body: 'x', headers: { 'x-ms-blob-type': 'BlockBlob' } }, { method: 'DELETE' }]) {
          const refused = await fetch(url, init)
          expect(refused.status, init.method).toBeGreaterThanOrEqual(400)
          expect(refused.status, init.method).toBeLessThan(500)
        }
        expect(sha256(await bytesOf(storage, 'shared/public'))).toBe(sha256(data))
        // And it expires: a URL of one second, asked for again once that second is well past.
        const short = await storage.getObjectUrl('shared/public', 1)
        await new Promise((resolve) => setTimeout(resolve, 2500))
        expect((await fetch(short)).status).toBe(403)
      })
    })
  })
}
