// Vitest global setup (of `npm test` and `npm run test:reliability`): builds dist/ (`npm run build`) when it is
// missing or older than the sources it is built from, once per run, so that the CLI tests run the built bin
// (dist/src/cli/main.js) as users do and the child-process worker runs as plain JavaScript
// (dist/conformance-tests/worker.js, see conformance-tests/processes.ts): one build instead of a TypeScript
// transpile in every process they start (see src/cli/test-cli.ts).
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
/** What `tsconfig.build.json` compiles, and the files that steer the build. */
const SOURCE_FOLDERS = ['src', 'backends', 'conformance-tests', 'examples']
const BUILD_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package.json']
const BUILT_BIN = join(REPO, 'dist', 'src', 'cli', 'main.js')

/** The newest modification time (ms) of a non-test .ts file under `folder`. */
function newestSource(folder: string): number {
  let newest = 0
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') newest = Math.max(newest, newestSource(path))
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, statSync(path).mtimeMs)
    }
  }
  return newest
}

/** Whether dist/ is missing or older than a source (tsc rewrites every output, the bin included, on each build). */
export function distIsStale(): boolean {
  let built: number
  try {
    built = statSync(BUILT_BIN).mtimeMs
  } catch {
    return true
  }
  const sources = Math.max(
    ...SOURCE_FOLDERS.map((folder) => newestSource(join(REPO, folder))),
    ...BUILD_FILES.map((file) => statSync(join(REPO, file)).mtimeMs),
  )
  return sources > built
}

export default function setup(): void {
  if (!distIsStale()) return
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const result = spawnSync(npm, ['run', 'build'], { cwd: REPO, encoding: 'utf8' })
  if (result.status !== 0) {
    throw new Error(`npm run build failed (needed by the CLI tests and the child-process workers, which run dist/):\n${result.stdout}${result.stderr}`)
  }
}
