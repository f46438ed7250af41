import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { objectReadOf } from './storage.js'
import { createVerifyStream, readToBuffer, verifyBytes } from './streams.js'

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

  it('checks bytes already in memory the same way', () => {
    expect(verifyBytes('f', data, data.length, { algorithm: 'md5', digest: md5 })).toBe(data)
    expect(() => verifyBytes('f', data, data.length + 1)).toThrow(/short read/)
    expect(() => verifyBytes('f', data, data.length - 1)).toThrow(/more than the/)
    const corrupted = Buffer.from(data)
    corrupted[5] = 0
    expect(() => verifyBytes('f', corrupted, data.length, { algorithm: 'md5', digest: md5 })).toThrow(/does not match/)
  })

  it('an object read whole still streams the same bytes to whoever asks for its body', async () => {
    const object = objectReadOf({ key: 'k', size: data.length, version: 'v', executable: false }, data)
    expect(object.data).toBe(data)
    expect(object.body).toBe(object.body)
    expect(await readToBuffer(object.body)).toEqual(data)
    const empty = objectReadOf({ key: 'e', size: 0, version: 'v', executable: false }, Buffer.alloc(0))
    expect((await readToBuffer(empty.body)).length).toBe(0)
  })
})
