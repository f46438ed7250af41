// The conformance suite run as an outside author runs it: plain JavaScript, importing only the package's public
// entry points by name (`jobstore`, `jobstore/conformance`). Inside this repository the names resolve through the
// package's self-reference (package.json "name" and "exports") to the build in dist/, the files npm publishes: so
// `npm run build` comes first (`npm test` does it). Child processes (racing and killed writers, `jobstore verify`)
// register the backend by importing the same module (`setupModule`), which must therefore be JavaScript.
import { mkdtempSync, readdirSync, statSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Not a stale build: the suite would pass or fail on code that is no longer the sources.
const repo = fileURLToPath(new URL('../../', import.meta.url))
/** @param {string} dir @returns {number} */
const newestSource = (dir) =>
  readdirSync(dir, { withFileTypes: true }).reduce((newest, entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return Math.max(newest, newestSource(path))
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? Math.max(newest, statSync(path).mtimeMs) : newest
  }, 0)
/** @param {string} path */
const builtAt = (path) => {
  try {
    return statSync(join(repo, 'dist', path)).mtimeMs
  } catch {
    return -1
  }
}
const built = Math.min(builtAt('src/index.js'), builtAt('conformance-tests/index.js'))
const sources = Math.max(...['src', 'backends', 'conformance-tests'].map((dir) => newestSource(join(repo, dir))))
if (built < sources) throw new Error('dist/ is missing or older than the sources: run `npm run build` first (npm test does)')

const { defineConformanceSuite } = await import('jobstore/conformance')
await import('./folder-job-store.js')

const base = mkdtempSync(join(tmpdir(), 'jobstore-outside-'))
let counter = 0
/** @param {string} locator */
const rootOf = (locator) => locator.slice('folder:'.length)

defineConformanceSuite({
  name: 'outside (folder)',
  newLocator: () => `folder:${join(base, `store-${++counter}`)}`,
  setupModule: new URL('./folder-job-store.js', import.meta.url).href,
  partSize: 1024 * 1024,
  capabilities: {
    publicUrls: { unsupported: 'folder: files end with a metadata trailer, so no URL serves their bytes alone' },
    sharedRoots: { unsupported: 'folder: a store owns its whole folder, and destroy removes it with whatever is inside' },
  },
  /** What a writer killed mid-write leaves: a temporary file (named by a live process: removed by age only). @param {string} locator */
  abandonUpload: async (locator) => {
    await mkdir(join(rootOf(locator), 'tmp'), { recursive: true })
    await writeFile(join(rootOf(locator), 'tmp', `${process.pid}-${randomBytes(12).toString('hex')}`), 'partial')
  },
  countLeftovers: async (locator) => (await readdir(join(rootOf(locator), 'tmp')).catch(() => [])).length,
  corruptObject: async (locator, key, offset) => {
    // In place in the current version's file: the trailer (and its digest) stays.
    const dir = join(rootOf(locator), 'objects', encodeURIComponent(key))
    const latest = (await readdir(dir)).reduce((max, name) => Math.max(max, Number(name) || 0), 0)
    const handle = await open(join(dir, String(latest)), 'r+')
    try {
      const byte = Buffer.alloc(1)
      await handle.read(byte, 0, 1, offset)
      byte[0] = /** @type {number} */ (byte[0]) ^ 0x20
      await handle.write(byte, 0, 1, offset)
    } finally {
      await handle.close()
    }
  },
})
