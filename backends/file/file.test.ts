import { defineConformanceSuite } from '../../conformance-tests/index.js'
import { fileHarness } from './file-harness.js'

// Direct small calls, as on a local disk (FileJobStoreOptions.directCalls); file-thread-pool.test.ts: the other way.
process.env['JOBSTORE_FILE_DIRECT_CALLS'] = '1'
defineConformanceSuite(fileHarness('file'))
