import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ENCRYPTION_MAGIC, PLAINTEXT_CHUNK, checkKeyFile, createDecryptStream, createEncryptStream, loadKeyFile } from './encryption.js'

async function run(input: Buffer, transform: NodeJS.ReadWriteStream, pieceSize = 10_000): Promise<Buffer> {
  const pieces: Buffer[] = []
  for (let i = 0; i < input.length; i += pieceSize) pieces.push(input.subarray(i, i + pieceSize))
  const out: Buffer[] = []
  await pipeline(Readable.from(pieces), transform, async (source: AsyncIterable<string | Buffer>) => {
    for await (const part of source) out.push(Buffer.from(part))
  })
  return Buffer.concat(out)
}

describe('chunked AES-256-GCM', () => {
  const key = randomBytes(32)

  it('round-trips every size around the chunk boundary', async () => {
    for (const size of [0, 1, PLAINTEXT_CHUNK - 1, PLAINTEXT_CHUNK, PLAINTEXT_CHUNK + 1, 3 * PLAINTEXT_CHUNK, 3 * PLAINTEXT_CHUNK + 17]) {
      const plain = randomBytes(size)
      const sealed = await run(plain, createEncryptStream(key))
      expect(sealed.subarray(0, ENCRYPTION_MAGIC.length).equals(ENCRYPTION_MAGIC)).toBe(true)
      expect(sealed.includes(plain.subarray(0, Math.min(64, size))) && size >= 16).toBe(false)
      const opened = await run(sealed, createDecryptStream(key, 'test'), 7777)
      expect(opened.equals(plain), `size ${size}`).toBe(true)
    }
  })

  it('refuses a wrong key, a dropped final chunk, reordered chunks and a flipped bit', async () => {
    const plain = randomBytes(3 * PLAINTEXT_CHUNK + 5)
    const sealed = await run(plain, createEncryptStream(key))
    const header = 16 + 32
    const chunk = PLAINTEXT_CHUNK + 16
    const first = sealed.subarray(header, header + chunk)
    const second = sealed.subarray(header + chunk, header + 2 * chunk)
    const damaged = [
      sealed.subarray(0, header + 3 * chunk), // the short final chunk dropped: the last full one is not final
      Buffer.concat([sealed.subarray(0, header), second, first, sealed.subarray(header + 2 * chunk)]),
      Buffer.from(sealed).fill(0, 100, 101),
      sealed.subarray(0, 20),
    ]
    await expect(run(sealed, createDecryptStream(randomBytes(32), 'test'))).rejects.toMatchObject({ code: 'ENCRYPTION' })
    for (const bytes of damaged) {
      await expect(run(bytes, createDecryptStream(key, 'test'))).rejects.toMatchObject({ code: 'ENCRYPTION' })
    }
  })

  it('passes plaintext through only when allowed, and needs a key for ciphertext', async () => {
    const plain = Buffer.from('plain text, not encrypted')
    expect((await run(plain, createDecryptStream(undefined, 'test', true), 3)).equals(plain)).toBe(true)
    expect((await run(Buffer.from('jobs'), createDecryptStream(undefined, 'test', true))).toString()).toBe('jobs')
    await expect(run(plain, createDecryptStream(key, 'test', false))).rejects.toMatchObject({ code: 'ENCRYPTION' })
    const sealed = await run(plain, createEncryptStream(key))
    await expect(run(sealed, createDecryptStream(undefined, 'test', true))).rejects.toThrow(/names no encryption key/)
  })
})

describe('key files', () => {
  it('a key file must be a regular file of at least 32 bytes; the error names the path; a relative path is made absolute', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-keys-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    await writeFile(join(dir, 'short'), 'abc')
    await writeFile(join(dir, 'exact'), randomBytes(32))
    execFileSync('mkfifo', [join(dir, 'fifo')])
    for (const [path, reason] of [
      [join(dir, 'missing'), /no such file/],
      [join(dir, 'short'), /holds 3 bytes: it must hold at least 32/],
      [dir, /not a regular file/],
      [join(dir, 'fifo'), /not a regular file/], // and does not wait for a writer
      ['/dev/zero', /not a regular file/], // and does not read for ever
    ] as const) {
      const error = await loadKeyFile(path).catch((err: unknown) => err as Error & { code?: string })
      expect(error, path).toMatchObject({ code: 'ENCRYPTION', message: expect.stringMatching(reason) })
      expect((error as Error).message).toContain(path)
      await expect(checkKeyFile(path)).rejects.toMatchObject({ code: 'ENCRYPTION' })
    }
    expect((await loadKeyFile(join(dir, 'exact'))).length).toBe(32)
    expect(await checkKeyFile(relative(process.cwd(), join(dir, 'exact')))).toBe(join(dir, 'exact'))
    for (const bad of ['', 42, 'a\0b']) await expect(checkKeyFile(bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
