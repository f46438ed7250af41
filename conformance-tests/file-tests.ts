/** Reads and writes: sizes, chunking, encodings, partial reads, local files, public URLs, conditional updates. */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { newJobDescription } from '../src/job-description.js'
import { caught, collect, randomPayload, sha256, writeChunks, type SuiteContext } from './harness.js'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-suite-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export function fileTests(ctx: SuiteContext): void {
  describe('reads and writes', () => {
    it('zero-byte files: an empty stream and getEmptyFileStoreID', async () => {
      const { store, locator } = await ctx.freshStore()
      const empty = await store.writeFileStream(() => {})
      const fromId = await store.getEmptyFileStoreID({ basename: 'empty.txt' })
      const other = await ctx.reopen(locator)
      for (const id of [empty, fromId]) {
        expect(await other.fileExists(id)).toBe(true)
        expect(await other.getFileSize(id)).toBe(0)
        expect((await collect(await other.readFileStream(id))).length).toBe(0)
      }
    })

    it('1-byte chunks arrive whole and in order', async () => {
      const { store } = await ctx.freshStore()
      const data = randomPayload(20_000)
      const id = await store.writeFileStream(async (w) => writeChunks(w, data, 1))
      expect(sha256(await collect(await store.readFileStream(id)))).toBe(sha256(data))
    })

    it('sizes around the part size: one under, exact, one over, several parts', async () => {
      const { store, locator } = await ctx.freshStore()
      const part = ctx.partSize
      const other = await ctx.reopen(locator)
      for (const size of [part - 1, part, part + 1, 2 * part + 3]) {
        const data = randomPayload(size)
        const id = await store.writeFileStream(async (w) => writeChunks(w, data, 64 * 1024))
        expect(await other.getFileSize(id)).toBe(size)
        expect(sha256(await collect(await other.readFileStream(id))), `size ${size}`).toBe(sha256(data))
      }
    })

    it('text encodings on write and read', async () => {
      const { store } = await ctx.freshStore()
      const text = 'héllo wörld ✓ 日本語 🎉'
      for (const encoding of ['utf8', 'utf16le', 'latin1'] as const) {
        const id = await store.writeFileStream((w) => void w.end(text), { encoding })
        const raw = await collect(await store.readFileStream(id))
        expect(raw.equals(Buffer.from(text, encoding)), encoding).toBe(true)
        let decoded = ''
        for await (const part of await store.readFileStream(id, { encoding })) decoded += part as string
        expect(decoded).toBe(Buffer.from(text, encoding).toString(encoding))
      }
    })

    it('partial reads that are destroyed never hang or exhaust connections', async () => {
      const { store } = await ctx.freshStore()
      const data = randomPayload(3 * 1024 * 1024)
      const id = await store.writeFileStream(async (w) => writeChunks(w, data, 256 * 1024))
      for (let i = 0; i < 80; i++) {
        const stream = await store.readFileStream(id)
        const first: unknown = await new Promise((resolve, reject) => {
          stream.once('data', resolve)
          stream.once('error', reject)
        })
        expect((first as Buffer).length).toBeGreaterThan(0)
        stream.destroy()
      }
      expect(sha256(await collect(await store.readFileStream(id)))).toBe(sha256(data))
    })

    it('writeFile and readFile keep content and the executable bit, atomically', async () => {
      const { store, locator } = await ctx.freshStore()
      const dir = await tempDir()
      const script = join(dir, 'run.sh')
      const plain = join(dir, 'data.bin')
      await writeFile(script, '#!/bin/sh\necho hi\n')
      await chmod(script, 0o755)
      const data = randomPayload(300_000)
      await writeFile(plain, data)
      await chmod(plain, 0o644)
      const scriptId = await store.writeFile(script)
      const plainId = await store.writeFile(plain)
      const other = await ctx.reopen(locator)
      await other.readFile(scriptId, join(dir, 'run-copy.sh'))
      await other.readFile(plainId, join(dir, 'data-copy.bin'))
      expect((await stat(join(dir, 'run-copy.sh'))).mode & 0o100).toBe(0o100)
      expect((await stat(join(dir, 'data-copy.bin'))).mode & 0o111).toBe(0)
      expect(sha256(await readFile(join(dir, 'data-copy.bin')))).toBe(sha256(data))
      // symlink: true may give a link; either way the content is there.
      await other.readFile(plainId, join(dir, 'data-link.bin'), { symlink: true })
      expect(sha256(await readFile(join(dir, 'data-link.bin')))).toBe(sha256(data))
      // Overwriting an existing local file works, and a missing file leaves the target untouched.
      await other.readFile(scriptId, join(dir, 'data-copy.bin'))
      expect((await readFile(join(dir, 'data-copy.bin'), 'utf8')).startsWith('#!/bin/sh')).toBe(true)
      await other.deleteFile(plainId)
      expect((await caught(() => other.readFile(plainId, join(dir, 'gone.bin')))).code).toBe('NO_SUCH_FILE')
      await expect(stat(join(dir, 'gone.bin'))).rejects.toThrow()
      expect((await caught(() => store.writeFile(join(dir, 'does-not-exist')))).code).toBe('NO_SUCH_FILE')
    })

    it('update, delete, exists and size, seen from a second instance', async () => {
      const { store, locator } = await ctx.freshStore()
      const dir = await tempDir()
      const other = await ctx.reopen(locator)
      const id = await store.writeFileStream((w) => void w.end('version one'))
      await other.updateFileStream(id, (w) => void w.end('version two, longer'))
      expect((await collect(await store.readFileStream(id))).toString()).toBe('version two, longer')
      await writeFile(join(dir, 'three'), 'three')
      await store.updateFile(id, join(dir, 'three'))
      expect((await collect(await other.readFileStream(id))).toString()).toBe('three')
      expect(await other.getFileSize(id)).toBe(5)
      await other.deleteFile(id)
      await other.deleteFile(id)
      expect(await store.fileExists(id)).toBe(false)
      expect(await store.getFileSize(id)).toBe(0)
      expect((await caught(() => store.readFileStream(id))).code).toBe('NO_SUCH_FILE')
      expect((await caught(() => store.updateFileStream(id, (w) => void w.end('x')))).code).toBe('NO_SUCH_FILE')
      expect((await caught(() => store.updateFile(id, join(dir, 'three')))).code).toBe('NO_SUCH_FILE')
      expect(await store.fileExists(id)).toBe(false)
    })

    it('conditional updates of a file detect a concurrent writer', async () => {
      const { store, locator } = await ctx.freshStore()
      const other = await ctx.reopen(locator)
      const id = await store.writeFileStream((w) => void w.end('0'))
      const seen = await store.readFileStream(id)
      await collect(seen)
      const versionAfterOther = await other.updateFileStream(id, (w) => void w.end('other'), { ifVersion: seen.version })
      expect(versionAfterOther).not.toBe(seen.version)
      const error = await caught(() => store.updateFileStream(id, (w) => void w.end('lost'), { ifVersion: seen.version }))
      expect(error.code).toBe('CONCURRENT_MODIFICATION')
      expect((await collect(await store.readFileStream(id))).toString()).toBe('other')
      expect(await store.getFileVersion(id)).toBe(versionAfterOther)
      await store.updateFileStream(id, (w) => void w.end('mine'), { ifVersion: versionAfterOther })
      expect((await collect(await other.readFileStream(id))).toString()).toBe('mine')
    })

    it('files written for a job with cleanup go with the job; others stay', async () => {
      const { store, locator } = await ctx.freshStore()
      const job = newJobDescription({ jobName: 'owner' })
      store.assignID(job)
      const id = job.jobStoreID as string
      // Files may be written for an assigned ID before the job is created.
      const cleanupFiles = await Promise.all(
        [1, 2, 3].map((n) => store.writeFileStream((w) => void w.end(`c${n}`), { jobStoreID: id, cleanup: true })),
      )
      const kept = await store.writeFileStream((w) => void w.end('kept'), { jobStoreID: id })
      const empty = await store.getEmptyFileStoreID({ jobStoreID: id, cleanup: true })
      await store.create(job)
      const other = await ctx.reopen(locator)
      await other.delete(id)
      await other.delete(id)
      for (const fileId of [...cleanupFiles, empty]) expect(await store.fileExists(fileId)).toBe(false)
      expect(await store.fileExists(kept)).toBe(true)
      expect(await store.exists(id)).toBe(false)
    })

    it('public URLs: none for a missing file; for a stored one a URL, or UnsupportedOperationError where the backend has none (publicUrls)', async () => {
      const { store } = await ctx.freshStore()
      const id = await store.writeFileStream((w) => void w.end('public bytes'))
      await store.writeSharedFileStream('pub.txt', (w) => void w.end('shared public'), { isProtected: false })
      if (ctx.capability('publicUrls') === true) {
        const url = await store.getPublicUrl(id)
        expect(() => new URL(url)).not.toThrow()
        expect(await store.getSharedPublicUrl('pub.txt')).toMatch(/^[a-z][a-z0-9+.-]*:/)
      } else {
        expect((await caught(() => store.getPublicUrl(id))).code).toBe('UNSUPPORTED')
        expect((await caught(() => store.getSharedPublicUrl('pub.txt'))).code).toBe('UNSUPPORTED')
      }
      await store.deleteFile(id)
      expect((await caught(() => store.getPublicUrl(id))).code).toBe('NO_SUCH_FILE')
      expect((await caught(() => store.getSharedPublicUrl('missing'))).code).toBe('NO_SUCH_FILE')
    })

    it('public URLs serve the file without credentials (fetchablePublicUrls)', async (t) => {
      ctx.requireCapability(t, 'publicUrls')
      ctx.requireCapability(t, 'fetchablePublicUrls')
      const { store } = await ctx.freshStore()
      const id = await store.writeFileStream((w) => void w.end('public bytes'))
      await store.writeSharedFileStream('pub.txt', (w) => void w.end('shared public'), { isProtected: false })
      const url = await store.getPublicUrl(id)
      const sharedUrl = await store.getSharedPublicUrl('pub.txt')
      expect(url).toMatch(/^(https?|file):/)
      const read = async (u: string): Promise<string> => {
        if (u.startsWith('file:')) return readFile(fileURLToPath(u), 'utf8')
        const response = await fetch(u)
        expect(response.status).toBe(200)
        return response.text()
      }
      expect(await read(url)).toBe('public bytes')
      expect(await read(sharedUrl)).toBe('shared public')
    })

    it('public URLs carry an expiry (expiringPublicUrls)', async (t) => {
      ctx.requireCapability(t, 'publicUrls')
      ctx.requireCapability(t, 'expiringPublicUrls')
      const { store } = await ctx.freshStore()
      const id = await store.writeFileStream((w) => void w.end('public bytes'))
      expect(await store.getPublicUrl(id)).toMatch(/expir|Expires|se=|X-Amz-Expires|X-Goog-Expires/i)
    })

    it('a missing file or shared file rejects with NoSuchFileError before any byte flows', async () => {
      const { store } = await ctx.freshStore()
      const id = await store.writeFileStream((w) => void w.end('x'))
      await store.deleteFile(id)
      const error = await caught(() => store.readFileStream(id))
      expect(error.name).toBe('NoSuchFileError')
      expect((await caught(() => store.readSharedFileStream('nothing-here'))).name).toBe('NoSuchFileError')
    })
  })
}
