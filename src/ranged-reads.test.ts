import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { JobStoreError } from './errors.js'
import { guardBody, rangedRead } from './ranged-reads.js'
import { readToBuffer } from './streams.js'

class ServiceError extends Error {}

/** The bytes of `data` from `offset`, failing with a service error after `cutAfter` bytes. */
function serviceBody(data: Buffer, offset: number, cutAfter?: number): Readable {
  const end = cutAfter === undefined ? data.length : offset + cutAfter
  return Readable.from(
    (async function* () {
      yield data.subarray(offset, end)
      if (end < data.length) throw new ServiceError('connection reset')
    })(),
  )
}

const mapError = (err: unknown): Error => (err instanceof JobStoreError ? err : new JobStoreError(`mapped: ${(err as Error).message}`, { cause: err }))

describe('ranged reads', () => {
  it('resumes a broken body with ranged reads of the same version: every byte once, in order', async () => {
    const data = randomBytes(50_000)
    const ranges: number[] = []
    const read = rangedRead(serviceBody(data, 0, 20_000), {
      size: data.length,
      what: 'GET x',
      mapError,
      openRange: async (offset) => {
        ranges.push(offset)
        return serviceBody(data, offset)
      },
    })
    expect((await readToBuffer(read)).equals(data)).toBe(true)
    expect(ranges).toEqual([20_000])
  })

  it('fails the read when the version is gone, and maps the errors of bodies and of range requests', async () => {
    const data = randomBytes(10_000)
    const gone = rangedRead(serviceBody(data, 0, 100), {
      size: data.length,
      what: 'GET x',
      mapError,
      openRange: async () => {
        throw new ServiceError('412')
      },
      versionGone: (err) => err instanceof ServiceError,
    })
    await expect(readToBuffer(gone)).rejects.toThrow('GET x: the object was replaced or deleted while it was read')
    const failing = rangedRead(serviceBody(data, 0, 100), {
      size: data.length,
      what: 'GET x',
      mapError,
      openRange: async () => {
        throw new ServiceError('503')
      },
    })
    await expect(readToBuffer(failing)).rejects.toThrow('mapped: 503')
  })

  it('guardBody maps the body error and destroys the body with the stream', async () => {
    const broken = guardBody(serviceBody(Buffer.alloc(10), 0, 5), mapError)
    await expect(readToBuffer(broken)).rejects.toThrow('mapped: connection reset')
    const source = new Readable({ read() {} })
    const guarded = guardBody(source, mapError)
    guarded.destroy()
    await new Promise((resolve) => setImmediate(resolve))
    expect(source.destroyed).toBe(true)
  })
})
