/**
 * `jobstore/conformance`: the conformance suite. One call registers every test (vitest) against a backend:
 *
 * ```ts
 * import { defineConformanceSuite } from 'jobstore/conformance'
 * defineConformanceSuite({ name: 'my-backend', newLocator: () => `my://bucket/${crypto.randomUUID()}` })
 * ```
 *
 * Every test opens fresh, isolated stores from `newLocator()`, and a second instance of the same store where it
 * matters (as a worker on another host would). Racing and killed writers run in real child processes.
 */
import { describe } from 'vitest'
import { atomicityTests } from './atomicity-tests.js'
import { fileTests } from './file-tests.js'
import { hostileRecordsTests } from './hostile-records-tests.js'
import { hostileIntegrityTests } from './hostile-integrity-tests.js'
import { makeContext, type ConformanceHarness } from './harness.js'
import { hostileStoreTests } from './hostile-store-tests.js'

import { hostileConditionalWritesTests } from './hostile-conditional-writes-tests.js'
import { jobTests } from './job-tests.js'
import { lifecycleTests } from './lifecycle-tests.js'
import { storageTests } from './storage-tests.js'
import { urlTests } from './url-tests.js'
import { hostileUrlsTests } from './hostile-urls-tests.js'

export type { Capabilities, Capability, ConformanceHarness, StorageProbe, SuiteContext } from './harness.js'
export { primitivesOf } from './harness.js'
export { clientSocketBytes, defineTransferMatrix, type TransferBackend, type TransferCapabilities } from './transfer-matrix.js'

/**
 * What the suite needs of each test: vitest's default of 5 s is too short for the tests that write several parts,
 * spawn 16 processes or wait out an import's idle timeout (they take 5–30 s on local test servers, more on a real
 * service). Set on the suite's `describe`, so that an author's vitest config need not raise it.
 */
export const CONFORMANCE_TEST_TIMEOUT_MS = 120_000

/** Registers the whole conformance suite for one backend under `describe('conformance: <name>')`. */
export function defineConformanceSuite(harness: ConformanceHarness): void {
  const ctx = makeContext(harness)
  describe(`conformance: ${harness.name}`, { timeout: CONFORMANCE_TEST_TIMEOUT_MS }, () => {
    storageTests(ctx)
    lifecycleTests(ctx)
    fileTests(ctx)
    atomicityTests(ctx)
    jobTests(ctx)
    urlTests(ctx)
    hostileRecordsTests(ctx)
    hostileUrlsTests(ctx)
    hostileStoreTests(ctx)
    hostileConditionalWritesTests(ctx)
    hostileIntegrityTests(ctx)
  })
}
