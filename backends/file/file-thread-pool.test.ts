/**
 * The conformance suite on the file backend with every call through libuv's thread pool, as on a network file
 * system (FileJobStoreOptions.directCalls off): file.test.ts covers the direct calls a local disk gets by default.
 * The variable reaches the suite's child processes too.
 */
import { defineConformanceSuite } from '../../conformance-tests/index.js'
import { fileHarness } from './file-harness.js'

process.env['JOBSTORE_FILE_DIRECT_CALLS'] = '0'
defineConformanceSuite(fileHarness('file (thread-pool calls)'))
