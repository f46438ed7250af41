/**
 * `npm ci` accepts package-lock.json. CI systems and most users install with `npm ci`, which refuses a lockfile
 * that does not list everything package.json needs on every platform (a lockfile written by an `npm install` on
 * top of an older node_modules can lack other platforms' optional packages: "Missing: @rollup/rollup-android-arm-eabi
 * from lock file"). `npm ci --dry-run` in a copy of the two files runs that same check in a few seconds, offline,
 * without touching node_modules. .ci/run runs the real `npm ci` as well.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { NPM, cleanNpmEnv, run } from './npm.js'

const REPO = new URL('..', import.meta.url)
const dirs: string[] = []
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))))

/** `npm ci --dry-run` on a copy of package.json and the given lockfile text, with an empty npm cache. */
async function npmCiDryRun(lockfile: string) {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-npm-ci-'))
  dirs.push(dir)
  await writeFile(join(dir, 'package.json'), await readFile(new URL('package.json', REPO)))
  await writeFile(join(dir, 'package-lock.json'), lockfile)
  // An empty cache and --offline: the answer depends on the two files only, never on the network or this machine.
  const env = cleanNpmEnv({ npm_config_cache: join(dir, '.npm-cache') })
  return run(NPM, ['ci', '--dry-run', '--offline', '--ignore-scripts', '--loglevel=error'], dir, env)
}

describe('package-lock.json', () => {
  it('satisfies npm ci (every platform’s optional packages listed)', async () => {
    const result = await npmCiDryRun(await readFile(new URL('package-lock.json', REPO), 'utf8'))
    expect(result.stderr).not.toContain('npm error')
    expect(result.code, result.stderr).toBe(0)
  })

  it('the check refuses a lockfile that lacks one platform’s optional package', async () => {
    // Without this, a future npm whose --dry-run skipped the check would pass the test above whatever the lockfile.
    const lock = JSON.parse(await readFile(new URL('package-lock.json', REPO), 'utf8')) as {
      packages: Record<string, unknown>
    }
    const optional = Object.keys(lock.packages).find((key) => key.startsWith('node_modules/@rollup/rollup-android'))
    expect(optional, 'the lockfile lists rollup’s Android build').toBeDefined()
    delete lock.packages[optional as string]
    const result = await npmCiDryRun(JSON.stringify(lock, null, 2))
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain(`Missing: ${(optional as string).slice('node_modules/'.length)}@`)
  })
})
