import { defineConfig } from 'vitest/config'

// `npm run test:reliability`: the slow reliability tests (faults, crashes, races), apart from `npm test`.
export default defineConfig({
  test: {
    include: ['reliability-tests/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // The local servers, as for `npm test`; then dist/ built when stale: the child-process worker runs as plain
    // JavaScript from there (conformance-tests/processes.ts; a node process starts in a fraction of the time tsx
    // needs, and the crash tests start hundreds).
    globalSetup: ['./test-servers/vitest-global-setup.ts', './test-servers/build-dist.ts'],
    pool: 'forks',
    // The tests mostly wait (on servers, on child processes starting and being killed): three files at a time,
    // also on two cores (the default would be one).
    maxWorkers: 3,
    minWorkers: 1,
    testTimeout: 900_000,
    hookTimeout: 300_000,
    reporters: ['default', './conformance-tests/summary-reporter.ts'],
  },
})
