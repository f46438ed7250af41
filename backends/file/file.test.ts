import { mkdtempSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineConformanceSuite } from '../../conformance-tests/index.js'

const base = mkdtempSync(join(tmpdir(), 'jobstore-file-'))
let counter = 0

defineConformanceSuite({
  name: 'file',
  newLocator: () => `file:${join(base, `store-${process.pid}-${++counter}`)}`,
  partSize: 1024 * 1024,
  capabilities: {
    expiringPublicUrls: { unsupported: 'file: URLs name a path; access is governed by the folder mode (0700), not by an expiry' },
  },
  countLeftovers: async (locator) => {
    try {
      return (await readdir(join(locator.slice('file:'.length), 'tmp'))).length
    } catch {
      return 0
    }
  },
})
