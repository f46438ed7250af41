/** Import and export by URL (file:, http:), and encryption of protected shared files. */
import { createServer, type Server } from 'node:http'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { AbstractJobStore } from '../src/abstract-job-store.js'
import { keys } from '../src/ids.js'
import { digestOf } from '../src/streams.js'
import { caught, collect, randomPayload, sha256, writeChunks, type SuiteContext } from './harness.js'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-suite-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A loopback HTTP server for the test: `/flaky` fails with 503 twice before answering. */
async function httpFixture(body: Buffer): Promise<{ base: string; hits: () => number }> {
  let flakyHits = 0
  const server: Server = createServer((req, res) => {
    if (req.url === '/missing') {
      res.writeHead(404).end('no')
      return
    }
    if (req.url === '/flaky' && flakyHits++ < 2) {
      res.writeHead(503, { 'retry-after': '0' }).end('busy')
      return
    }
    res.writeHead(200, { 'content-length': String(body.length) })
    if (req.method === 'HEAD') res.end()
    else res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  return { base: `http://127.0.0.1:${port}`, hits: () => flakyHits }
}

async function rawStoredBytes(store: AbstractJobStore, key: string): Promise<Buffer> {
  const get = (store as unknown as { getObject(key: string): Promise<{ body: AsyncIterable<Buffer> }> }).getObject
  return collect((await get.call(store, key)).body)
}

export function urlTests(ctx: SuiteContext): void {
  describe('import and export by URL', () => {
    it('file: import keeps content and the executable bit; export restores both', async () => {
      const { store, locator } = await ctx.freshStore()
      const dir = await tempDir()
      const tool = join(dir, 'tool.sh')
      await writeFile(tool, '#!/bin/sh\nexit 0\n')
      await chmod(tool, 0o755)
      const data = randomPayload(ctx.partSize + 12345)
      const dataPath = join(dir, 'data.bin')
      await writeFile(dataPath, data)
      const toolId = (await store.importFile(pathToFileURL(tool).href)) as string
      const dataId = (await store.importFile(pathToFileURL(dataPath).href)) as string
      expect(toolId).toMatch(/-tool\.sh$/)
      const other = await ctx.reopen(locator)
      await other.exportFile(toolId, pathToFileURL(join(dir, 'tool-out.sh')).href)
      await other.exportFile(dataId, pathToFileURL(join(dir, 'data-out.bin')).href)
      expect((await stat(join(dir, 'tool-out.sh'))).mode & 0o100).toBe(0o100)
      expect((await stat(join(dir, 'data-out.bin'))).mode & 0o111).toBe(0)
      expect(sha256(await readFile(join(dir, 'data-out.bin')))).toBe(sha256(data))
      await other.readFile(toolId, join(dir, 'tool-read.sh'))
      expect((await stat(join(dir, 'tool-read.sh'))).mode & 0o100).toBe(0o100)
      expect(await AbstractJobStore.getSize(pathToFileURL(dataPath).href)).toBe(data.length)
      // hardlink/symlink are hints: the content must be right whatever the backend does with them.
      for (const option of [{ hardlink: true }, { symlink: true }]) {
        const id = (await store.importFile(pathToFileURL(dataPath).href, option)) as string
        expect(sha256(await collect(await other.readFileStream(id)))).toBe(sha256(data))
      }
    })

    it('import as a shared file returns nothing and stores it under the name', async () => {
      const { store } = await ctx.freshStore()
      const dir = await tempDir()
      await writeFile(join(dir, 'settings.json'), '{"a":1}')
      expect(await store.importFile(pathToFileURL(join(dir, 'settings.json')).href, { sharedFileName: 'settings' })).toBeUndefined()
      expect((await collect(await store.readSharedFileStream('settings'))).toString()).toBe('{"a":1}')
    })

    it('http import with retries on 503, a clear error on 404, and getSize', async () => {
      const { store } = await ctx.freshStore()
      const body = randomPayload(200_000)
      const server = await httpFixture(body)
      const id = (await store.importFile(`${server.base}/flaky`)) as string
      expect(server.hits()).toBe(3)
      expect(sha256(await collect(await store.readFileStream(id)))).toBe(sha256(body))
      expect((await caught(() => store.importFile(`${server.base}/missing`))).code).toBe('NO_SUCH_FILE')
      expect(await AbstractJobStore.getSize(`${server.base}/data`)).toBe(body.length)
      expect((await caught(() => store.exportFile(id, `${server.base}/upload`))).code).toBe('INVALID_IMPORT_EXPORT_URL')
    })

    it('bad URLs and missing sources fail before anything is stored', async () => {
      const { store } = await ctx.freshStore()
      const dir = await tempDir()
      const countFiles = async (): Promise<number> => {
        let n = 0
        const list = (store as unknown as { listObjects(p: string): AsyncIterable<unknown> }).listObjects
        for await (const _ of list.call(store, keys.filesPrefix)) n++
        return n
      }
      const before = await countFiles()
      expect((await caught(() => store.importFile('no-scheme-at-all'))).code).toBe('INVALID_IMPORT_EXPORT_URL')
      expect((await caught(() => store.importFile('weird-scheme://x/y'))).code).toBe('INVALID_IMPORT_EXPORT_URL')
      expect((await caught(() => store.importFile(pathToFileURL(join(dir, 'absent')).href))).code).toBe('NO_SUCH_FILE')
      expect((await caught(() => store.importFile(pathToFileURL(dir).href))).code).toBe('INVALID_IMPORT_EXPORT_URL')
      expect(await countFiles()).toBe(before)
      const id = await store.writeFileStream((w) => void w.end('x'))
      expect((await caught(() => store.exportFile(id, 'nope://where'))).code).toBe('INVALID_IMPORT_EXPORT_URL')
    })
  })

  describe('encryption of protected shared files', () => {
    it('protected shared files are encrypted at rest and read back with the key', async () => {
      const dir = await tempDir()
      const keyPath = join(dir, 'key')
      const key = randomPayload(32)
      await writeFile(keyPath, key)
      const { store, locator } = await ctx.freshStore({ encryptionKeyPath: keyPath })
      const secret = Buffer.concat([Buffer.from('TOP SECRET '), randomPayload(300_000), Buffer.from(' TOP SECRET')])
      await store.writeSharedFileStream('secret', async (w) => writeChunks(w, secret, 10_000), { isProtected: true })
      await store.writeSharedFileStream('clear', (w) => void w.end('plain text'), { isProtected: false })
      await store.writeSharedFileStream('default', (w) => void w.end('default is protected when a key is set'))
      const stored = await rawStoredBytes(store, keys.shared('secret'))
      expect(stored.includes(Buffer.from('TOP SECRET'))).toBe(false)
      expect(stored.length).toBeGreaterThan(secret.length)
      expect((await rawStoredBytes(store, keys.shared('clear'))).toString()).toBe('plain text')
      expect((await rawStoredBytes(store, keys.shared('default'))).includes(Buffer.from('default'))).toBe(false)
      const other = await ctx.reopen(locator)
      expect(sha256(await collect(await other.readSharedFileStream('secret')))).toBe(sha256(secret))
      expect((await collect(await other.readSharedFileStream('clear'))).toString()).toBe('plain text')
      expect((await collect(await other.readSharedFileStream('default'))).toString()).toBe('default is protected when a key is set')

      // A wrong key is a clear error, never garbage.
      await writeFile(keyPath, randomPayload(32))
      const wrong = await ctx.reopen(locator)
      const error = await caught(async () => collect(await wrong.readSharedFileStream('secret')))
      expect(error.code).toBe('ENCRYPTION')
      // Tampered or truncated ciphertext is detected with the right key.
      await writeFile(keyPath, key)
      const put = (store as unknown as { putObject(k: string, b: Buffer, o: object): Promise<string> }).putObject
      const tampered = Buffer.from(stored)
      tampered[tampered.length - 20] = (tampered[tampered.length - 20] as number) ^ 1
      for (const damaged of [tampered, stored.subarray(0, stored.length - 70_000)]) {
        // With the digest of the damaged bytes, as a writer would have stored them: only decryption can tell.
        await put.call(store, keys.shared('secret'), damaged, { digest: digestOf(damaged) })
        const fresh = await ctx.reopen(locator)
        expect((await caught(async () => collect(await fresh.readSharedFileStream('secret')))).code).toBe('ENCRYPTION')
      }
    })

    it('isProtected without a configured key, or with a missing key file, is a clear error', async () => {
      const { store } = await ctx.freshStore()
      expect((await caught(() => store.writeSharedFileStream('s', (w) => void w.end('x'), { isProtected: true }))).code).toBe(
        'ENCRYPTION',
      )
      const dir = await tempDir()
      // initialize checks the key file (hostile-urls-tests); one that goes missing afterwards is an error at use.
      await writeFile(join(dir, 'missing-key'), randomPayload(40))
      const { store: keyed, locator } = await ctx.freshStore({ encryptionKeyPath: join(dir, 'missing-key') })
      await keyed.writeSharedFileStream('s', (w) => void w.end('x'), { isProtected: true })
      await rm(join(dir, 'missing-key'))
      const fresh = await ctx.reopen(locator)
      expect((await caught(() => fresh.writeSharedFileStream('t', (w) => void w.end('x'), { isProtected: true }))).code).toBe(
        'ENCRYPTION',
      )
      const other = await ctx.reopen(locator)
      expect((await caught(() => other.readSharedFileStream('s'))).code).toBe('ENCRYPTION')
    })
  })
}
