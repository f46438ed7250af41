/** The conformance harness of the file backend (file.test.ts, file-thread-pool.test.ts). */
import { mkdtempSync } from 'node:fs'
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ConformanceHarness } from '../../conformance-tests/harness.js'
import { randomId } from '../../src/ids.js'

export function fileHarness(name: string): ConformanceHarness {
  const base = mkdtempSync(join(tmpdir(), 'jobstore-file-'))
  let counter = 0
  return {
    name,
    newLocator: () => `file:${join(base, `store-${process.pid}-${++counter}`)}`,
    partSize: 1024 * 1024,
    capabilities: {
      expiringPublicUrls: { unsupported: 'file: URLs name a path; access is governed by the folder mode (0700), not by an expiry' },
      enforcedPublicUrls: { unsupported: 'file: URLs name a path; what they allow is the folder mode (0700), not a signature' },
      storedWriteTokens: { unsupported: 'the file system never retries a write, so a failed condition never hides its success: no token is kept' },
    },
    newBucketLocator: () => `file:${join(base, `bucket-${process.pid}-${++counter}`)}`,
    removeBucket: (locator) => rm(locator.slice('file:'.length), { recursive: true, force: true }),
    abandonUpload: async (locator) => {
      // What a writer on another host, killed mid-write, leaves: its temporary file (named by its host and pid).
      const tmp = join(locator.slice('file:'.length), 'tmp')
      await mkdir(tmp, { recursive: true, mode: 0o700 })
      await writeFile(join(tmp, `elsewhere-1-${randomId()}.tmp`), 'partial bytes')
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
