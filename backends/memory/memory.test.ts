import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { defineConformanceSuite } from '../../conformance-tests/index.js'
import { caught, collect, randomPayload, sha256, writeChunks } from '../../conformance-tests/harness.js'
import { openJobStore } from '../../src/open.js'
import '../../src/builtin-backends.js'
import { memoryBucketForTests, parseMemoryLocator } from './memory-job-store.js'

defineConformanceSuite({
  name: 'memory',
  newLocator: () => `memory:conformance-${randomUUID()}`,
  // Small parts: sizes around them are still tested, in memory, in milliseconds.
  partSize: 256 * 1024,
  capabilities: {
    multipleProcesses: { unsupported: 'a memory: store lives in the memory of the process that opened it; child processes see none of it' },
    publicUrls: { unsupported: 'a memory: store has no URLs: its objects live in this process only' },
    abandonedUploads: { unsupported: 'a memory: upload lives in its put call; nothing of it outlives its writer (a killed process takes the store along)' },
  },
  newBucketLocator: () => `memory:bucket-${randomUUID()}`,
  countLeftovers: async (locator) => memoryBucketForTests(parseMemoryLocator(locator))?.uploadsInProgress ?? 0,
  corruptObject: async (locator, key, offset) => {
    // In place, as a bad disk would: the stored bytes change, the digest kept beside them does not.
    const object = memoryBucketForTests(parseMemoryLocator(locator))?.objects.get(key)
    if (object === undefined) throw new Error(`no object ${key} in ${locator}`)
    let at = offset
    for (const block of object.blocks) {
      if (at < block.length) {
        block[at] = (block[at] as number) ^ 0x20
        return
      }
      at -= block.length
    }
    throw new Error(`offset ${offset} is past the end of ${key}`)
  },
})

describe('memory: locators and names', () => {
  it('memory:<name> opens; an empty, spaced, control-character or over-long name is an InvalidArgumentError', async () => {
    expect(parseMemoryLocator('memory:a/b.c-1')).toBe('a/b.c-1')
    for (const locator of ['memory:', 'memory:has space', 'memory:tab\there', `memory:${'x'.repeat(1025)}`]) {
      expect((await caught(() => openJobStore(locator))).code, locator).toBe('INVALID_ARGUMENT')
    }
  })

  it('one name is one store in the process; another name sees nothing; destroy() forgets the name', async () => {
    const name = `names-${randomUUID()}`
    const first = await openJobStore(`memory:${name}`)
    await first.initialize()
    const id = await first.writeFileStream((w) => void w.end('shared by name'))
    const second = await openJobStore(`memory:${name}`)
    await second.resume()
    expect((await collect(await second.readFileStream(id))).toString()).toBe('shared by name')
    expect((await caught(async () => (await openJobStore(`memory:${name}-other`)).resume())).code).toBe('NO_SUCH_JOB_STORE')
    await second.destroy()
    expect(memoryBucketForTests(name)).toBeUndefined()
    expect((await caught(() => first.resume())).code).toBe('NO_SUCH_JOB_STORE')
  })

  it('bytes a read hands out are copies: changing them changes nothing stored', async () => {
    const store = await openJobStore(`memory:copies-${randomUUID()}`)
    await store.initialize()
    onTestFinished(() => store.destroy())
    for (const size of [1000, 1024 * 1024]) {
      const data = randomPayload(size)
      const id = await store.writeFileStream(async (w) => writeChunks(w, data, 64 * 1024))
      for await (const chunk of await store.readFileStream(id)) (chunk as Buffer).fill(0)
      expect(sha256(await collect(await store.readFileStream(id))), `${size} bytes`).toBe(sha256(data))
    }
  })
})
