import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { IntegrityError, JobStoreError } from './errors.js'
import { resumableRead } from './resumable-read.js'

/** A body that hands out `data` from `offset` in chunks, and breaks off (error or early end) after `cutAfter` bytes. */
function body(data: Buffer, offset: number, cutAfter: number | undefined, how: 'error' | 'end' = 'error'): Readable {
  let at = offset
  return new Readable({
    read() {
      if (cutAfter !== undefined && at - offset >= cutAfter) {
        if (how === 'error') this.destroy(new JobStoreError('connection reset'))
        else this.push(null)
        return
      }
      if (at >= data.length) return void this.push(null)
      const end = Math.min(data.length, at + 7000, cutAfter === undefined ? Infinity : offset + cutAfter)
      this.push(data.subarray(at, end))
      at = end
    },
  })
}

async function drain(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

describe('resumableRead', () => {
  it('resumes a body that breaks off, from where it stopped, until the whole object is read', async () => {
    const data = randomBytes(100_000)
    const offsets: number[] = []
    const stream = resumableRead(body(data, 0, 30_000), {
      size: data.length,
      what: 'test',
      reopen: async (offset) => {
        offsets.push(offset)
        return body(data, offset, offsets.length === 1 ? 12_345 : undefined, 'end')
      },
    })
    expect((await drain(stream)).equals(data)).toBe(true)
    expect(offsets).toEqual([30_000, 42_345])
  })

  it('gives up after the resumes allowed, with the last error', async () => {
    const data = randomBytes(50_000)
    let opened = 0
    const stream = resumableRead(body(data, 0, 1000), {
      size: data.length,
      what: 'test',
      resumes: 2,
      reopen: async (offset) => {
        opened++
        return body(data, offset, 1000)
      },
    })
    await expect(drain(stream)).rejects.toThrow('connection reset')
    expect(opened).toBe(2)
  })

  it('never resumes after an integrity error or the caller’s abort', async () => {
    const data = randomBytes(20_000)
    const failing = new Readable({
      read() {
        this.destroy(new IntegrityError('checksum mismatch'))
      },
    })
    let opened = 0
    const reopen = async (offset: number): Promise<Readable> => {
      opened++
      return body(data, offset, undefined)
    }
    await expect(drain(resumableRead(failing, { size: data.length, what: 'test', reopen }))).rejects.toBeInstanceOf(IntegrityError)
    const controller = new AbortController()
    controller.abort()
    await expect(drain(resumableRead(body(data, 0, 100), { size: data.length, what: 'test', reopen, signal: controller.signal }))).rejects.toThrow()
    expect(opened).toBe(0)
  })

  it('keeps back-pressure, and destroying it destroys the body being read', async () => {
    const data = randomBytes(2_000_000)
    let current: Readable | undefined
    const stream = resumableRead((current = body(data, 0, 500_000)), {
      size: data.length,
      what: 'test',
      reopen: async (offset) => (current = body(data, offset, undefined)),
    })
    let read = 0
    for await (const part of stream) {
      read += (part as Buffer).length
      await new Promise((resolve) => setImmediate(resolve))
      if (read > 1_000_000) break
    }
    // 'close' is emitted on the next tick after the destroy.
    await new Promise((resolve) => setImmediate(resolve))
    expect(read).toBeLessThan(data.length)
    expect(current?.destroyed).toBe(true)
  })
})
