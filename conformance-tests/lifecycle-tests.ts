/** Lifecycle, isolation, IDs and names. */
import { describe, expect, it, onTestFinished, vi } from 'vitest'
import { openJobStore } from '../src/open.js'
import { newJobDescription } from '../src/job-description.js'
import { parseFileId } from '../src/ids.js'
import { caught, collect, type SuiteContext } from './harness.js'

export function lifecycleTests(ctx: SuiteContext): void {
  describe('lifecycle and isolation', () => {
    it('a second instance resumes the store and sees the first one’s config and writes', async () => {
      const { store, locator } = await ctx.freshStore({ retryCount: 3 })
      const desc = newJobDescription({ jobName: 'first' })
      store.assignID(desc)
      await store.create(desc)
      const other = await ctx.reopen(locator)
      expect(other.config.workflowID).toBe(store.config.workflowID)
      expect(other.config.retryCount).toBe(3)
      expect((await other.load(desc.jobStoreID as string)).jobName).toBe('first')
    })

    it('initialize on an existing store throws JobStoreExistsError; resume on none throws NoSuchJobStoreError', async () => {
      const { locator } = await ctx.freshStore()
      const second = await openJobStore(locator)
      expect((await caught(() => second.initialize())).code).toBe('JOB_STORE_EXISTS')
      const nowhere = await openJobStore(await ctx.harness.newLocator())
      expect((await caught(() => nowhere.resume())).code).toBe('NO_SUCH_JOB_STORE')
    })

    it('the config is unavailable before initialize/resume and persisted by writeConfig', async () => {
      const { store, locator } = await ctx.freshStore()
      const unopened = await openJobStore(locator)
      expect(() => unopened.config).toThrow(/initialize\(\) or resume\(\)/)
      store.config.retryCount = 7
      store.config['engineSetting'] = 'kept'
      await store.writeConfig()
      const other = await ctx.reopen(locator)
      expect(other.config.retryCount).toBe(7)
      expect(other.config['engineSetting']).toBe('kept')
    })

    it('destroy is idempotent, works on a never-initialized store, and leaves nothing to resume', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      await store.destroy() // never initialized
      await store.initialize()
      const desc = newJobDescription({ jobName: 'doomed' })
      store.assignID(desc)
      await store.create(desc)
      await store.writeFileStream((w) => void w.end('bytes'))
      await store.destroy()
      await store.destroy()
      const again = await openJobStore(locator)
      expect((await caught(() => again.resume())).code).toBe('NO_SUCH_JOB_STORE')
      // The locator can host a new store afterwards.
      await again.initialize()
      expect(await again.exists(desc.jobStoreID as string)).toBe(false)
      await again.destroy()
    })

    it('close() is idempotent, and the data stays for other instances and for a store opened again', async () => {
      const locator = await ctx.harness.newLocator()
      const store = await openJobStore(locator)
      await store.initialize()
      const id = await store.writeFileStream((w) => void w.end('kept'))
      const other = await ctx.reopen(locator)
      onTestFinished(async () => {
        await other.destroy()
      })
      await Promise.all([store.close(), store.close()])
      await store.close()
      expect((await collect(await other.readFileStream(id))).toString()).toBe('kept')
      const again = await ctx.reopen(locator)
      expect((await collect(await again.readFileStream(id))).toString()).toBe('kept')
      await again.close()
    })

    it('two stores side by side are isolated: destroying one leaves the other whole', async () => {
      const a = await ctx.freshStore()
      const b = await ctx.freshStore()
      const jobA = newJobDescription({ jobName: 'a' })
      a.store.assignID(jobA)
      await a.store.create(jobA)
      const jobB = newJobDescription({ jobName: 'b' })
      b.store.assignID(jobB)
      await b.store.create(jobB)
      const fileB = await b.store.writeFileStream((w) => void w.end('b-bytes'))
      await b.store.writeSharedFileStream('shared.txt', (w) => void w.end('b-shared'))
      expect(await b.store.exists(jobA.jobStoreID as string)).toBe(false)
      await a.store.destroy()
      const reopened = await ctx.reopen(b.locator)
      expect((await reopened.load(jobB.jobStoreID as string)).jobName).toBe('b')
      expect((await collect(await reopened.readFileStream(fileB))).toString()).toBe('b-bytes')
      expect((await collect(await reopened.readSharedFileStream('shared.txt'))).toString()).toBe('b-shared')
    })

    it('getEnv returns string variables only, and no secrets', async () => {
      const { store } = await ctx.freshStore()
      const env = store.getEnv()
      for (const [name, value] of Object.entries(env)) {
        expect(typeof value).toBe('string')
        expect(name).not.toMatch(/SECRET|PASSWORD|CONNECTION_STRING|KEY$/i)
      }
    })
  })

  describe('IDs and names', () => {
    const hostileIds = [
      '',
      '.',
      '..',
      '../../etc/passwd',
      '/etc/passwd',
      'a/b',
      'jobs/ab/../../x',
      '\\\\server\\share',
      '0'.repeat(25),
      '0'.repeat(27),
      'A'.repeat(26),
      'i'.repeat(26),
      'x'.repeat(5000),
      'abc\0def',
      '%2e%2e%2f',
      ' ',
    ]

    it('hostile job IDs are rejected with InvalidArgumentError before any I/O', async () => {
      const { store } = await ctx.freshStore()
      const primitives = ['getObject', 'headObject', 'putObject', 'deleteObjects', 'listObjects'] as const
      const spies = primitives.map((name) => vi.spyOn(store as unknown as Record<string, () => unknown>, name))
      for (const id of hostileIds) {
        for (const call of [
          () => store.load(id),
          () => store.exists(id),
          () => store.delete(id),
          () => store.setRootJob(id),
          () => store.create({ ...newJobDescription({ jobName: 'x' }), jobStoreID: id }),
          () => store.update({ ...newJobDescription({ jobName: 'x' }), jobStoreID: id }),
          () => store.writeFileStream(() => {}, { jobStoreID: id }),
        ]) {
          const error = await caught(call)
          expect(error.code, `${JSON.stringify(id).slice(0, 40)}: ${error.message}`).toBe('INVALID_ARGUMENT')
        }
      }
      for (const spy of spies) expect(spy).not.toHaveBeenCalled()
      vi.restoreAllMocks()
    })

    it('hostile file IDs are rejected with InvalidArgumentError before any I/O', async () => {
      const { store } = await ctx.freshStore()
      const fileIds = [
        ...hostileIds,
        '_/k/../../../config.json',
        '_/k/' + '0'.repeat(26) + '/../x',
        '_/k/' + '0'.repeat(26) + '-a/b',
        '_/x/' + '0'.repeat(26),
        'files/00/_/k/' + '0'.repeat(26),
        '_/k/' + '0'.repeat(26) + '-' + 'a'.repeat(201),
        '_/k/' + '0'.repeat(26) + '-%ZZ',
      ]
      const spies = ['getObject', 'headObject', 'putObject', 'deleteObjects'].map((name) =>
        vi.spyOn(store as unknown as Record<string, () => unknown>, name),
      )
      for (const id of fileIds) {
        for (const call of [
          () => store.readFileStream(id),
          () => store.readFile(id, '/tmp/never-written'),
          () => store.deleteFile(id),
          () => store.fileExists(id),
          () => store.getFileSize(id),
          () => store.updateFileStream(id, () => {}),
          () => store.getPublicUrl(id),
          () => store.exportFile(id, 'file:///tmp/never-written'),
        ]) {
          const error = await caught(call)
          expect(error.code, `${JSON.stringify(id).slice(0, 60)}: ${error.message}`).toBe('INVALID_ARGUMENT')
        }
      }
      for (const spy of spies) expect(spy).not.toHaveBeenCalled()
      vi.restoreAllMocks()
    })

    it('hostile shared-file names are rejected with InvalidArgumentError before any I/O', async () => {
      const { store } = await ctx.freshStore()
      const names = ['', '.', '..', '...', 'a/b', '../x', '/abs', 'a\\b', 'x'.repeat(201), 'é', 'a b', 'a\0b', 'a:b', 'a*']
      const spies = ['getObject', 'headObject', 'putObject'].map((name) =>
        vi.spyOn(store as unknown as Record<string, () => unknown>, name),
      )
      for (const name of names) {
        for (const call of [
          () => store.writeSharedFileStream(name, () => {}),
          () => store.readSharedFileStream(name),
          () => store.getSharedPublicUrl(name),
          () => store.importFile('file:///etc/hostname', { sharedFileName: name }),
        ]) {
          const error = await caught(call)
          expect(error.code, `${JSON.stringify(name)}: ${error.message}`).toBe('INVALID_ARGUMENT')
        }
      }
      for (const spy of spies) expect(spy).not.toHaveBeenCalled()
      vi.restoreAllMocks()
    })

    it('long and odd shared-file names within the rules work', async () => {
      const { store, locator } = await ctx.freshStore()
      const names = ['x'.repeat(200), '.hidden', 'a..b', '-_-', 'UPPER.lower.123']
      for (const name of names) await store.writeSharedFileStream(name, (w) => void w.end(name))
      const other = await ctx.reopen(locator)
      for (const name of names) expect((await collect(await other.readSharedFileStream(name))).toString()).toBe(name)
      const listed = []
      for await (const name of other.sharedFileNames()) listed.push(name)
      expect(listed.sort()).toEqual([...names].sort())
    })

    it('odd basenames are kept (encoded) in file IDs and the files read back', async () => {
      const { store } = await ctx.freshStore()
      const basenames = ['..', '.', ' spaced name ', 'üñî日本.txt', '%41%', 'a\\b', '#?&=+;', '~tilde', 'x'.repeat(400)]
      for (const basename of basenames) {
        const id = await store.writeFileStream((w) => void w.end(basename), { basename })
        const parsed = parseFileId(id)
        if (basename.length <= 60) expect(parsed.basename).toBe(basename)
        else expect(basename.startsWith(parsed.basename as string)).toBe(true)
        expect((await collect(await store.readFileStream(id))).toString()).toBe(basename)
      }
      const error = await caught(() => store.writeFileStream(() => {}, { basename: 'a/b' }))
      expect(error.code).toBe('INVALID_ARGUMENT')
    })
  })
}
