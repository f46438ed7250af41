import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // The outside backend's test is JavaScript, as an outside author's may be (conformance-tests/outside-backend/).
    include: ['**/*.test.ts', 'conformance-tests/outside-backend/*.test.js'],
    // reliability-tests/ run apart: `npm run test:reliability` (vitest.reliability.config.ts); so does the packed
    // package test (`npm run test:package`, vitest.package.config.ts): a build, an npm install, a type check.
    exclude: ['node_modules/**', 'dist/**', 'reliability-tests/**', 'package-tests/packed-package.test.ts'],
    // Starts MinIO, Azurite and fake-gcs-server on loopback (installing them into a cache on first use).
    // Then builds dist/ when it is stale: the CLI tests run the built bin (see src/cli/test-cli.ts).
    globalSetup: ['./test-servers/vitest-global-setup.ts', './test-servers/build-dist.ts'],
    // Child processes, not threads: the suite spawns racing and killed writers, and env set up by the global
    // setup must reach every worker.
    pool: 'forks',
    // Most files mostly wait (on the servers, on child processes, on timeouts they provoke): three files at a time,
    // also on two cores, where vitest's default (cores - 1) would run them one after the other.
    maxWorkers: 3,
    minWorkers: 1,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default', './conformance-tests/summary-reporter.ts'],
  },
})
