import { defineConfig } from 'vitest/config'

// `npm run test:package`: the package as a user receives it (package-tests/packed-package.test.ts). Apart from
// `npm test` because it builds the package, installs it and the cloud SDKs into a new project and type-checks their
// typings: a minute or more of mostly one core, and the registry on a cold npm cache. No test servers needed.
export default defineConfig({
  test: {
    include: ['package-tests/packed-package.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    pool: 'forks',
    testTimeout: 600_000,
    reporters: ['default'],
  },
})
