import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { ENCRYPTION_MAGIC, PLAINTEXT_CHUNK, createDecryptStream, createEncryptStream } from './encryption.js'

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
