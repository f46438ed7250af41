/**
 * The package as a user receives it: `npm pack` (which builds, through the prepack script) on a copy of the
 * repository, the tarball installed into a new project next to the optional peer SDKs, then, from that project
 * only: every entry of package.json `exports` imported, a TypeScript consumer type-checked against the shipped
 * .d.ts (skipLibCheck off, so a .d.ts that refers to something not shipped fails), the `jobstore` binary run,
 * and every relative link in the shipped Markdown resolved inside the package.
 *
 * One test, because every step needs the one before. Run by `npm run test:package` (a step of .ci/run), not by
 * `npm test`: a minute or more on two cores (three under load), most of it the build, `npm install` (the
 * dependencies come from npm's cache after `npm ci`, else from the registry) and type-checking the SDKs' typings.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { NPM, run, type CommandResult } from './npm.js'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const WORK = await mkdtemp(join(tmpdir(), 'jobstore-packed-'))
afterAll(() => rm(WORK, { recursive: true, force: true }))

interface PackageJson {
  name: string
  version: string
  exports: Record<string, string | { types?: string; default?: string }>
  bin: Record<string, string>
  devDependencies: Record<string, string>
  peerDependencies: Record<string, string>
}

function ok(what: string, result: CommandResult): CommandResult {
  expect(result.code, `${what}\n${result.stdout}\n${result.stderr}`).toBe(0)
  return result
}

/** The repository's files as a fresh clone has them (no dist/, no node_modules/; those are linked). */
async function copyRepository(to: string): Promise<void> {
  const skip = new Set(['node_modules', 'dist', '.git', 'coverage', 'example-store'])
  await cp(REPO, to, {
    recursive: true,
    filter: (source) => {
      const rel = relative(REPO, source)
      return rel === '' || !skip.has(rel.split(/[\\/]/)[0] as string)
    },
  })
  await symlink(await realpath(join(REPO, 'node_modules')), join(to, 'node_modules'), 'dir')
}

/** Every relative link target in a Markdown text: `[text](target)`, without the #anchor; URLs left out. */
function relativeLinks(markdown: string): string[] {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '')
  const targets = [...withoutCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1] as string)
  return targets
    .filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t) && !t.startsWith('#'))
    .map((t) => decodeURIComponent(t.split('#')[0] as string))
}

async function markdownFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') out.push(...(await markdownFiles(path, base)))
    } else if (entry.name.endsWith('.md')) out.push(relative(base, path))
  }
  return out
}

describe('the packed package, installed as a user installs it', () => {
  it('imports every export, type-checks a consumer, runs the jobstore binary; its docs link inside the package', { timeout: 600_000 }, async () => {
    let last = Date.now()
    const took = (step: string) => {
      console.log(`packed package: ${step} in ${((Date.now() - last) / 1000).toFixed(1)} s`)
      last = Date.now()
    }
    const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as PackageJson

    // 1. npm pack on a clean copy: prepack builds dist/ there (the repository's own dist/ is never touched).
    const source = join(WORK, 'source')
    await copyRepository(source)
    const packed = ok('npm pack', await run(NPM, ['pack', '--json', '--pack-destination', WORK], source))
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }]
    const tarball = join(WORK, info.filename)
    const shipped = new Set(info.files.map((f) => f.path))
    took('npm pack (with the build)')
    for (const must of ['package.json', 'README.md', 'docs/api.md', 'docs/cli.md', pkg.bin['jobstore'] as string]) {
      expect(shipped, `${must} is in the package`).toContain(must)
    }

    // 2. A new project: the tarball, the optional peers (the versions this repository tests with), TypeScript's
    //    Node types. No registry needed when npm's cache has them (after `npm ci`).
    const app = join(WORK, 'app')
    await mkdir(app)
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    const peers = Object.keys(pkg.peerDependencies).map((name) => `${name}@${pkg.devDependencies[name] ?? pkg.peerDependencies[name]}`)
    ok(
      'npm install',
      await run(
        NPM,
        ['install', '--prefer-offline', '--ignore-scripts', '--loglevel=error', tarball, ...peers, `@types/node@${pkg.devDependencies['@types/node']}`],
        app,
      ),
    )
    took('npm install')
    const installed = join(app, 'node_modules', 'jobstore')
    expect(JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')).version).toBe(pkg.version)

    // 3. Every export, imported by its public name from the consumer project: by Node itself, but the conformance
    //    suite, which registers vitest tests and so is imported from a test file that the consumer's vitest runs.
    const CONFORMANCE = `${pkg.name}/conformance`
    const allEntries = Object.keys(pkg.exports).map((key) => (key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`))
    expect(allEntries).toContain(CONFORMANCE)
    const entries = allEntries.filter((name) => name !== CONFORMANCE)
    const importAll = `
      const names = ${JSON.stringify(entries)}
      const out = {}
      for (const name of names) {
        const mod = name.endsWith('.json') ? await import(name, { with: { type: 'json' } }) : await import(name)
        out[name] = Object.keys(mod).filter((k) => k !== 'default').length + (mod.default === undefined ? 0 : 1)
      }
      console.log(JSON.stringify(out))
    `
    const imported = ok('importing the exports', await run(process.execPath, ['--input-type=module', '-e', importAll], app))
    const counts = JSON.parse(imported.stdout) as Record<string, number>
    for (const name of entries) expect(counts[name], `${name} has exports`).toBeGreaterThan(0)
    await writeFile(
      join(app, 'conformance.test.js'),
      `import * as conformance from '${CONFORMANCE}'
import { expect, it } from 'vitest'
it('exports the conformance suite', () => {
  expect(typeof conformance.defineConformanceSuite).toBe('function')
})
`,
    )
    const vitest = join(app, 'node_modules', 'vitest', 'vitest.mjs')
    const inVitest = ok('the conformance export under vitest', await run(process.execPath, [vitest, 'run', '--root', app], app))
    expect(inVitest.stdout).toMatch(/1 passed/)
    took('imports')

    // 4. A TypeScript consumer, checked against the shipped .d.ts.
    await writeFile(
      join(app, 'consumer.ts'),
      `import { openJobStore, newJobDescription, JobStoreError, type AbstractJobStore } from 'jobstore'
import { FileJobStore } from 'jobstore/file'
import { S3JobStore } from 'jobstore/s3'
import { AzureJobStore } from 'jobstore/azure'
import { GcsJobStore } from 'jobstore/gcs'
import { defineConformanceSuite } from 'jobstore/conformance'

export async function main(path: string): Promise<string> {
  const store: AbstractJobStore = await openJobStore(\`file:\${path}\`)
  await store.initialize({ retryCount: 1 })
  const job = newJobDescription({ jobName: 'consumer', extra: { n: 1 } })
  store.assignID(job)
  await store.createRootJob(job)
  const id: string = await store.writeFileStream(async (w) => { w.write('hi') })
  // @ts-expect-error: a file ID is a string, not a number
  const wrong: number = id
  void wrong
  return id
}
export const classes = [FileJobStore, S3JobStore, AzureJobStore, GcsJobStore] as const
export const suite: typeof defineConformanceSuite = defineConformanceSuite
export const isJobStoreError = (e: unknown): boolean => e instanceof JobStoreError
`,
    )
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
        },
        files: ['consumer.ts'],
      }),
    )
    ok('tsc on the consumer', await run(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app))
    took('tsc on the consumer')

    // 5. The binary, as npm linked it.
    const bin = join(app, 'node_modules', '.bin', 'jobstore')
    expect(ok('jobstore --version', await run(bin, ['--version'], app)).stdout.trim()).toBe(pkg.version)
    ok('jobstore init', await run(bin, ['init', 'file:./store'], app))
    const status = JSON.parse(ok('jobstore status', await run(bin, ['status', 'file:./store', '--json'], app)).stdout) as {
      jobs: { total: number }
    }
    expect(status.jobs.total).toBe(0)
    took('the jobstore binary')

    // 6. The docs a user gets: every relative link in the shipped Markdown points at a file that is shipped.
    const broken: string[] = []
    for (const file of await markdownFiles(installed)) {
      const text = await readFile(join(installed, file), 'utf8')
      for (const target of relativeLinks(text)) {
        const resolved = posix.normalize(posix.join(posix.dirname(file.split('\\').join('/')), target))
        if (!existsSync(join(installed, resolved))) broken.push(`${file}: ${target}`)
      }
    }
    expect(broken, 'links to files that are not in the package').toEqual([])
  })
})
