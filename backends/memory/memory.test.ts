import { randomUUID } from 'node:crypto'
import { defineConformanceSuite } from '../../conformance-tests/index.js'
import { memoryBucketForTests, parseMemoryLocator } from './memory-job-store.js'

defineConformanceSuite({
  name: 'memory',
  newLocator: () => `memory:conformance-${randomUUID()}`,
  // Small parts: sizes around them are still tested, in memory, in milliseconds.
  partSize: 256 * 1024,
  capabilities: {
    multipleProcesses: { unsupported: 'a memory: store lives in the memory of the process that opened it; child processes see none of it' },
    publicUrls: { unsupported: 'a memory: store has no URLs: its objects live in this process only' },
  },
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
