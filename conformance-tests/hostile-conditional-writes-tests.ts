/**
 * Hostile environment: a service that may not enforce conditional writes. The store proves at `initialize()` and
 * `resume()` that it does (src/conditional-write-proof.ts); here, on every backend: the proof leaves nothing a
 * reader or a count of leftovers would see, and every write path a backend declares honours the conditions when
 * forced for a tiny body (`PutOptions.writePath`), as the proof relies on. Servers that do not enforce them are
 * emulated by the fault proxy in backends/conditional-writes.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { forgetConditionalWriteVerdicts, PROOF_PREFIX } from '../src/conditional-write-proof.js'
import { keys } from '../src/ids.js'
import { PreconditionFailedError, type ObjectRead, type PutOptions, type WritePath } from '../src/storage.js'
import { caught, collect, type SuiteContext } from './harness.js'

/** The store's primitives, reached through a cast: real storage, no mock. */
interface Primitives {
  putObject(key: string, body: Buffer, options: PutOptions): Promise<string>
  getObject(key: string): Promise<ObjectRead>
  listObjects(prefix: string): AsyncIterable<{ key: string }>
}

export function hostileConditionalWritesTests(ctx: SuiteContext): void {
  describe('hostile environment: conditional writes', () => {
    it('the conditional-write proof at initialize() and resume() leaves no object, upload or listing entry behind', async () => {
      // Forgotten, so that this process proves again instead of using an earlier verdict.
      forgetConditionalWriteVerdicts()
      const { store, locator } = await ctx.freshStore()
      forgetConditionalWriteVerdicts()
      const other = await ctx.reopen(locator)
      const primitives = other as unknown as Primitives
      const probeKeys: string[] = []
      for await (const object of primitives.listObjects(PROOF_PREFIX)) probeKeys.push(object.key)
      expect(probeKeys).toEqual([])
      const jobs: unknown[] = []
      for await (const job of store.jobs()) jobs.push(job)
      const files: unknown[] = []
      for await (const file of store.files()) files.push(file)
      const shared: string[] = []
      for await (const name of store.sharedFileNames()) shared.push(name)
      expect({ jobs, files, shared }).toEqual({ jobs: [], files: [], shared: [] })
      expect(await ctx.leftovers(locator)).toBe(0)
    })

    it('every write path honours create-if-absent and compare-and-swap, also for a tiny body (PutOptions.writePath)', async () => {
      const { store, locator } = await ctx.freshStore()
      const primitives = store as unknown as Primitives
      for (const writePath of ['single', 'multipart'] as WritePath[]) {
        const key = keys.shared(`conditional-${writePath}`)
        const first = await primitives.putObject(key, Buffer.from('first'), { ifNoneMatch: true, writePath })
        const again = await caught(() => primitives.putObject(key, Buffer.from('again'), { ifNoneMatch: true, writePath }))
        expect(again, writePath).toBeInstanceOf(PreconditionFailedError)
        const second = await primitives.putObject(key, Buffer.from('second'), { ifMatch: first, writePath })
        expect(second, writePath).not.toBe(first)
        const stale = await caught(() => primitives.putObject(key, Buffer.from('stale'), { ifMatch: first, writePath }))
        expect(stale, writePath).toBeInstanceOf(PreconditionFailedError)
        const stored = await primitives.getObject(key)
        expect((stored.data ?? (await collect(stored.body))).toString('utf8'), writePath).toBe('second')
        expect(stored.version, writePath).toBe(second)
      }
      expect(await ctx.leftovers(locator)).toBe(0)
    })
  })
}
