/** The conformance harness of the file backend (file.test.ts, file-thread-pool.test.ts). */
import { mkdtempSync } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConformanceHarness } from '../../conformance-tests/harness.js'

export function fileHarness(name: string): ConformanceHarness {
  const base = mkdtempSync(join(tmpdir(), 'jobstore-file-'))
  let counter = 0
  return {
    name,
    newLocator: () => `file:${join(base, `store-${process.pid}-${++counter}`)}`,
    partSize: 1024 * 1024,
    capabilities: {
      expiringPublicUrls: { unsupported: 'file: URLs name a path; access is governed by the folder mode (0700), not by an expiry' },
    },
    corruptObject: async (locator, key, offset) => {
      // In place, as a disk or another program would: same inode, the digest's sidecar untouched.
      const handle = await open(join(locator.slice('file:'.length), ...key.split('/')), 'r+')
      try {
        const byte = Buffer.alloc(1)
        await handle.read(byte, 0, 1, offset)
        byte[0] = (byte[0] as number) ^ 0x20
        await handle.write(byte, 0, 1, offset)
      } finally {
        await handle.close()
      }
    },
    countLeftovers: async (locator) => {
      try {
        return (await readdir(join(locator.slice('file:'.length), 'tmp'))).length
      } catch {
        return 0
      }
    },
  }
}
