import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { createVerifyStream } from './streams.js'

async function drain(data: Buffer, verify: NodeJS.ReadWriteStream): Promise<number> {
  let seen = 0
  await pipeline(Readable.from([data.subarray(0, 3), data.subarray(3)]), verify, async (source: AsyncIterable<string | Buffer>) => {
    for await (const part of source) seen += part.length
  })
  return seen
}

describe('read verification', () => {
  const data = Buffer.from('the bytes that were written')
  const md5 = createHash('md5').update(data).digest('base64')

  it('passes bytes that match the size and digest', async () => {
    expect(await drain(data, createVerifyStream('f', data.length, { algorithm: 'md5', digest: md5 }))).toBe(data.length)
  })

  it('fails a short read, a long read and a digest mismatch with IntegrityError', async () => {
    await expect(drain(data, createVerifyStream('f', data.length + 1))).rejects.toMatchObject({ code: 'INTEGRITY' })
    await expect(drain(data, createVerifyStream('f', data.length - 1))).rejects.toMatchObject({ code: 'INTEGRITY' })
    const corrupted = Buffer.from(data)
    corrupted[5] = 0
    await expect(
      drain(corrupted, createVerifyStream('f', data.length, { algorithm: 'md5', digest: md5 })),
    ).rejects.toThrow(/does not match the stored checksum/)
  })
})
