import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { crc32 } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { AbortedError, JobStoreError } from './errors.js'
import { PreconditionFailedError } from './storage.js'
import { partSizeOf, uploadBody, type UploadPart, type UploadPlan, type UploadSink } from './uploads.js'

/**
 * A small object store in memory with multipart uploads, as a service has them: parts staged under an upload, a
 * commit that assembles them under a create-only condition, an abort that drops them. It records what the
 * orchestrator asked of it.
 */
class MemoryService {
  readonly objects = new Map<string, { data: Buffer; version: string }>()
  readonly uploads = new Map<number, Map<number, Buffer>>()
  readonly log: string[] = []
  /** Part buffers seen (their memory): the orchestrator reuses them. */
  readonly buffers = new Set<ArrayBufferLike>()
  inFlight = 0
  maxInFlight = 0
  #nextUpload = 0
  #nextVersion = 0
  /** Fails the put of this part number. */
  failPart: number | undefined
  /** Runs before each part is stored (after it started). */
  onPart: ((part: UploadPart) => Promise<void> | void) | undefined

  sink(key: string, options: { ifNoneMatch?: boolean } = {}): UploadSink<number> {
    let upload: number | undefined
    const commitObject = (data: Buffer): string => {
      if (options.ifNoneMatch === true && this.objects.has(key)) throw new PreconditionFailedError(key, { mayHaveLanded: false })
      const version = String(++this.#nextVersion)
      this.objects.set(key, { data, version })
      return version
    }
    return {
      putOnce: async (data) => {
        this.log.push(`once ${data.length}`)
        return commitObject(Buffer.from(data))
      },
      begin: async () => {
        upload = ++this.#nextUpload
        this.uploads.set(upload, new Map())
        this.log.push('begin')
      },
      putPart: async (part, signal) => {
        this.inFlight++
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
        this.buffers.add(part.data.buffer)
        try {
          await new Promise((resolve) => setImmediate(resolve))
          await this.onPart?.(part)
          if (signal.aborted) throw new JobStoreError('part cancelled')
          if (part.number === this.failPart) throw new JobStoreError(`part ${part.number} failed`)
          this.uploads.get(upload as number)?.set(part.number, Buffer.from(part.data))
          this.log.push(`part ${part.number} ${part.data.length}${part.digest !== undefined ? ` ${part.digest}` : ''}`)
          return part.number
        } finally {
          this.inFlight--
        }
      },
      commit: async (parts, body, _signal, finalPart) => {
        const staged = this.uploads.get(upload as number) as Map<number, Buffer>
        if (finalPart !== undefined) staged.set(finalPart.number, Buffer.from(finalPart.data))
        const numbers = finalPart !== undefined ? [...parts, finalPart.number] : [...parts]
        const data = Buffer.concat(numbers.map((n) => staged.get(n) as Buffer))
        this.log.push(`commit ${numbers.length} ${body.size}${body.digest !== undefined ? ` ${body.digest}` : ''}`)
        const version = commitObject(data)
        this.uploads.delete(upload as number)
        return version
      },
      abort: async () => {
        this.log.push('abort')
        this.uploads.delete(upload as number)
      },
    }
  }
}

const KIB = 1024

/** A stream of `data` in chunks of `chunkSize`, optionally failing with `error` after `failAfter` bytes. */
function streamOf(data: Buffer, chunkSize = 1000, fail?: { after: number; error: Error }): Readable {
  let at = 0
  return new Readable({
    read() {
      if (fail !== undefined && at >= fail.after) return void this.destroy(fail.error)
      if (at >= data.length) return void this.push(null)
      const end = Math.min(data.length, at + chunkSize)
      this.push(data.subarray(at, end))
      at = end
    },
  })
}

function crc32Base64(data: Buffer): string {
  const out = Buffer.alloc(4)
  out.writeUInt32BE(crc32(data) >>> 0)
  return out.toString('base64')
}

const plan = (overrides: Partial<UploadPlan> = {}): UploadPlan => ({ what: 'mem://k', partSize: 16 * KIB, concurrency: 3, ...overrides })

describe('uploadBody', () => {
  it('stores a Buffer and a stream that ends within one part in one put', async () => {
    const service = new MemoryService()
    const data = randomBytes(10 * KIB)
    expect(await uploadBody(data, service.sink('a'), plan())).toBe('1')
    expect(await uploadBody(streamOf(data), service.sink('b'), plan())).toBe('2')
    expect(await uploadBody(streamOf(Buffer.alloc(0)), service.sink('c'), plan())).toBe('3')
    expect(service.log).toEqual([`once ${data.length}`, `once ${data.length}`, 'once 0'])
    expect(service.objects.get('b')?.data.equals(data)).toBe(true)
    expect(service.objects.get('c')?.data.length).toBe(0)
  })

  it('cuts a stream into parts with their digests, in bounded concurrency and memory, and commits them with the whole digest', async () => {
    const service = new MemoryService()
    const data = randomBytes(16 * KIB * 10 + 5)
    await uploadBody(streamOf(data, 3000), service.sink('k'), plan({ partDigest: 'md5', wholeDigest: 'crc32' }))
    expect(service.objects.get('k')?.data.equals(data)).toBe(true)
    const parts = service.log.filter((line) => line.startsWith('part ')).sort((a, b) => Number(a.split(' ')[1]) - Number(b.split(' ')[1]))
    expect(parts).toHaveLength(11)
    for (let n = 1; n <= 11; n++) {
      const bytes = data.subarray((n - 1) * 16 * KIB, Math.min(data.length, n * 16 * KIB))
      expect(parts[n - 1]).toBe(`part ${n} ${bytes.length} ${createHash('md5').update(bytes).digest('base64')}`)
    }
    expect(service.log[0]).toBe('begin')
    expect(service.log.at(-1)).toBe(`commit 11 ${data.length} ${crc32Base64(data)}`)
    expect(service.maxInFlight).toBeLessThanOrEqual(3)
    // Buffers are reused: the parts in flight and the one being read (the first part's grows on its own).
    expect(service.buffers.size).toBeLessThanOrEqual(3 + 2)
  })

  it('cuts a Buffer larger than maxSinglePut into views of it, and goes multipart for writePath multipart', async () => {
    const service = new MemoryService()
    const data = randomBytes(40 * KIB)
    await uploadBody(data, service.sink('big'), plan({ maxSinglePut: 20 * KIB }))
    expect(service.log).toEqual(expect.arrayContaining(['begin', 'commit 3 40960']))
    expect([...service.buffers]).toEqual([data.buffer])
    const tiny = Buffer.from('tiny')
    await uploadBody(tiny, service.sink('tiny'), plan({ writePath: 'multipart' }))
    expect(service.log.slice(-3)).toEqual(['begin', 'part 1 4', 'commit 1 4'])
    expect(service.objects.get('tiny')?.data.toString()).toBe('tiny')
  })

  it('hands the last part to the commit with finalPartCommits, also when the body is an exact number of parts', async () => {
    for (const size of [16 * KIB * 3, 16 * KIB * 3 + 1]) {
      const service = new MemoryService()
      const data = randomBytes(size)
      await uploadBody(streamOf(data, 5000), service.sink('k'), plan({ concurrency: 1, finalPartCommits: true, wholeDigest: 'md5' }))
      const parts = size === 16 * KIB * 3 ? 2 : 3
      expect(service.log).toEqual([
        'begin',
        ...Array.from({ length: parts }, (_, i) => `part ${i + 1} ${16 * KIB}`),
        `commit ${parts + 1} ${size} ${createHash('md5').update(data).digest('base64')}`,
      ])
      expect(service.objects.get('k')?.data.equals(data)).toBe(true)
    }
  })

  it("passes the body's own error on as it is and aborts the upload", async () => {
    const service = new MemoryService()
    const error = new Error('the caller failed')
    const caught = await uploadBody(streamOf(randomBytes(100 * KIB), 1000, { after: 50 * KIB, error }), service.sink('k'), plan()).catch(
      (err: unknown) => err,
    )
    expect(caught).toBe(error)
    expect(service.log).toContain('abort')
    expect(service.log.some((line) => line.startsWith('commit'))).toBe(false)
    expect(service.objects.has('k')).toBe(false)
    expect(service.uploads.size).toBe(0)
  })

  it('stops reading and aborts at the first failed part', async () => {
    const service = new MemoryService()
    service.failPart = 2
    const body = streamOf(randomBytes(200 * KIB))
    const caught = await uploadBody(body, service.sink('k'), plan()).catch((err: unknown) => err)
    expect((caught as Error).message).toBe('part 2 failed')
    expect(body.destroyed).toBe(true)
    expect(service.log.at(-1)).toBe('abort')
    expect(service.objects.has('k')).toBe(false)
  })

  it('rejects with AbortedError when the signal fires, and aborts the upload', async () => {
    const service = new MemoryService()
    const controller = new AbortController()
    service.onPart = (part) => {
      if (part.number === 2) controller.abort(new Error('stop'))
    }
    const caught = await uploadBody(streamOf(randomBytes(200 * KIB)), service.sink('k'), plan({ signal: controller.signal })).catch(
      (err: unknown) => err,
    )
    expect(caught).toBeInstanceOf(AbortedError)
    expect(service.log.at(-1)).toBe('abort')
    expect(service.objects.has('k')).toBe(false)
    // A signal that fired before: nothing is asked of the service.
    const before = new MemoryService()
    await expect(uploadBody(Buffer.from('x'), before.sink('k'), plan({ signal: controller.signal }))).rejects.toBeInstanceOf(AbortedError)
    expect(before.log).toEqual([])
  })

  it("passes a failed commit's condition on and aborts the upload", async () => {
    const service = new MemoryService()
    service.objects.set('k', { data: Buffer.from('old'), version: 'v0' })
    const caught = await uploadBody(streamOf(randomBytes(40 * KIB)), service.sink('k', { ifNoneMatch: true }), plan()).catch(
      (err: unknown) => err,
    )
    expect(caught).toBeInstanceOf(PreconditionFailedError)
    expect(service.log.at(-1)).toBe('abort')
    expect(service.objects.get('k')?.data.toString()).toBe('old')
  })

  it('refuses more than maxParts parts, and sizes parts to fit a known length', async () => {
    const service = new MemoryService()
    const caught = await uploadBody(streamOf(randomBytes(50 * KIB)), service.sink('k'), plan({ maxParts: 2 })).catch((err: unknown) => err)
    expect(caught).toBeInstanceOf(JobStoreError)
    expect((caught as Error).message).toMatch(/more than 2 parts/)
    expect(service.log.at(-1)).toBe('abort')
    const sized = plan({ partSize: 5 * 1024 * KIB, maxParts: 10, contentLength: 100 * 1024 * KIB, maxPartSize: 64 * 1024 * KIB })
    expect(partSizeOf(sized, 1)).toBe(10 * 1024 * KIB)
    expect(partSizeOf(plan({ partsPerSizeStep: 2 }), 1)).toBe(16 * KIB)
    expect(partSizeOf(plan({ partsPerSizeStep: 2 }), 3)).toBe(32 * KIB)
    expect(partSizeOf(plan({ partsPerSizeStep: 2, maxPartSize: 20 * KIB }), 5)).toBe(20 * KIB)
  })
})
