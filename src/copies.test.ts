import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { copyObject, CopySourceChangedError, type CopySink } from './copies.js'
import { JobStoreError } from './errors.js'
import { ObjectNotFoundError } from './storage.js'

const MIB = 1024 * 1024

/**
 * A bucket in memory with server-side copies as services have them: requests pinned to a source version, parts
 * staged under an upload and assembled by a commit. `beforeRequest` runs before each request (to change the
 * source in the middle of a copy).
 */
class MemoryBucket {
  readonly objects = new Map<string, { data: Buffer; version: number }>()
  readonly uploads = new Map<number, Map<number, Buffer>>()
  readonly log: string[] = []
  #versions = 0
  #uploadIds = 0
  beforeRequest: ((request: string) => void) | undefined

  put(key: string, data: Buffer): void {
    this.objects.set(key, { data, version: ++this.#versions })
  }

  #pinned(key: string, version: number): Buffer {
    const object = this.objects.get(key)
    if (object === undefined || object.version !== version) throw new CopySourceChangedError()
    return object.data
  }

  sink(from: string, to: string): CopySink<{ size: number; version: number }, number, string> {
    let upload: number | undefined
    const request = (name: string): void => {
      this.log.push(name)
      this.beforeRequest?.(name)
    }
    return {
      source: async () => {
        request('head')
        const object = this.objects.get(from)
        if (object === undefined) throw new ObjectNotFoundError(from)
        return { size: object.data.length, version: object.version }
      },
      copyOnce: async (source) => {
        request('copy')
        this.put(to, Buffer.from(this.#pinned(from, source.version)))
        return to
      },
      begin: async () => {
        request('begin')
        upload = ++this.#uploadIds
        this.uploads.set(upload, new Map())
      },
      copyPart: async (source, range) => {
        request(`part ${range.number}`)
        const data = this.#pinned(from, source.version).subarray(range.offset, range.offset + range.count)
        this.uploads.get(upload as number)?.set(range.number, Buffer.from(data))
        return range.number
      },
      commit: async (_source, parts) => {
        request(`commit ${parts.length}`)
        const staged = this.uploads.get(upload as number) as Map<number, Buffer>
        this.put(to, Buffer.concat(parts.map((n) => staged.get(n) as Buffer)))
        this.uploads.delete(upload as number)
        return to
      },
      abort: async () => {
        this.log.push('abort')
        this.uploads.delete(upload as number)
      },
    }
  }
}

const plan = { what: 'mem://src', maxSingleCopy: 4 * MIB, partSize: 2 * MIB, maxParts: 100, maxPartSize: 64 * MIB, concurrency: 2 }

describe('copyObject', () => {
  it('copies a small source in one request and a large one by parts, pinned to the version it looked at', async () => {
    const bucket = new MemoryBucket()
    const small = randomBytes(1000)
    const large = randomBytes(5 * MIB + 3)
    bucket.put('small', small)
    bucket.put('large', large)
    expect(await copyObject(bucket.sink('small', 'a'), plan)).toBe('a')
    expect(await copyObject(bucket.sink('large', 'b'), plan)).toBe('b')
    expect(bucket.objects.get('a')?.data.equals(small)).toBe(true)
    expect(bucket.objects.get('b')?.data.equals(large)).toBe(true)
    expect(bucket.log.slice(0, 2)).toEqual(['head', 'copy'])
    expect(bucket.log.slice(2).sort()).toEqual(['begin', 'commit 3', 'head', 'part 1', 'part 2', 'part 3'])
  })

  it('copies again from the new version when the source changes during the copy, and gives up after three rounds', async () => {
    const bucket = new MemoryBucket()
    bucket.put('src', randomBytes(5 * MIB))
    const latest = randomBytes(5 * MIB)
    let replaced = false
    bucket.beforeRequest = (request) => {
      if (request === 'part 2' && !replaced) {
        replaced = true
        bucket.put('src', latest)
      }
    }
    await copyObject(bucket.sink('src', 'dst'), plan)
    expect(bucket.objects.get('dst')?.data.equals(latest)).toBe(true)
    expect(bucket.log.filter((line) => line === 'head')).toHaveLength(2)
    expect(bucket.log).toContain('abort')
    expect(bucket.uploads.size).toBe(0)

    // A source replaced before every copy request: three rounds, then an error naming it; nothing copied.
    const busy = new MemoryBucket()
    busy.put('src', randomBytes(10))
    busy.beforeRequest = (request) => {
      if (request === 'copy') busy.put('src', randomBytes(10))
    }
    const caught = await copyObject(busy.sink('src', 'dst'), plan).catch((err: unknown) => err)
    expect(caught).toBeInstanceOf(JobStoreError)
    expect((caught as Error).message).toBe('mem://src kept changing during a server-side copy')
    expect(busy.log.filter((line) => line === 'head')).toHaveLength(3)
    expect(busy.objects.has('dst')).toBe(false)
  })

  it("passes the sink's errors on (a missing source), aborts a copy by parts that failed, and resolves undefined when declined", async () => {
    const bucket = new MemoryBucket()
    await expect(copyObject(bucket.sink('missing', 'dst'), plan)).rejects.toBeInstanceOf(ObjectNotFoundError)
    bucket.put('src', randomBytes(5 * MIB))
    bucket.beforeRequest = (request) => {
      if (request === 'part 3') throw new JobStoreError('part failed')
    }
    await expect(copyObject(bucket.sink('src', 'dst'), { ...plan, concurrency: 1 })).rejects.toThrow('part failed')
    expect(bucket.log.at(-1)).toBe('abort')
    expect(bucket.uploads.size).toBe(0)
    expect(bucket.objects.has('dst')).toBe(false)
    const declining = { ...bucket.sink('src', 'dst'), source: async () => undefined }
    expect(await copyObject(declining, plan)).toBeUndefined()
  })
})
