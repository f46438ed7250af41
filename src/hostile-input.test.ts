/**
 * Hostile input, property-based (fast-check, 10,000 cases per property), through the public API. ids.test.ts
 * checks the ID and key functions themselves; here:
 * - whole locators of every backend, through `openJobStore`: each is rejected with InvalidArgumentError, or opens
 *   a store whose bucket/container and prefix cannot escape (plain segments; an absolute folder for `file:`); never
 *   another exception, and no connection is opened;
 * - job IDs, file IDs and shared-file names given to every method that takes one: each is rejected with
 *   InvalidArgumentError before any of the store's storage primitives is called, or is one the store could have
 *   minted.
 */
import { Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { AbstractJobStore, JobStoreOptions } from './abstract-job-store.js'
import { InvalidArgumentError } from './errors.js'
import { checkJobId, checkSharedFileName, parseFileId, randomId } from './ids.js'
import { newJobDescription } from './job-description.js'
import { openJobStore } from './open.js'
import './builtin-backends.js'

const runs = { numRuns: 10_000 }

/** Text that tries hard to break out: arbitrary code units, traversal pieces, separators, escapes, odd Unicode. */
const piece = fc.oneof(
  fc.constantFrom('..', '.', '', '/', '//', '\\', '%2e%2e', '%2F', '%00', '\0', ' ', '~', '?', '#', '@', ':', 'é', '日本', '\u202e', '\n'),
  fc.stringMatching(/^[a-z0-9.-]{1,12}$/),
  fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
)
const hostileText = fc.oneof(
  fc.array(piece, { maxLength: 8 }).map((parts) => parts.join('')),
  fc.array(piece, { maxLength: 8 }).map((parts) => parts.join('/')),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom('x'.repeat(600), 'a/'.repeat(300), '../'.repeat(50)),
)

/** Segments a store prefix may have: plain ones, never `.`/`..`, never empty. */
function expectPlainPrefix(prefix: string, locator: string): void {
  if (prefix === '') return
  expect(prefix.startsWith('/'), locator).toBe(false)
  for (const segment of prefix.split('/')) {
    expect(segment, locator).toMatch(/^[A-Za-z0-9._-]+$/)
    expect(segment, locator).not.toMatch(/^\.+$/)
  }
}

interface Parsed {
  readonly bucket?: string
  readonly bucketName?: string
  readonly container?: string
  readonly account?: string
  readonly prefix?: string
  readonly root?: string
}

const LOCATOR_SCHEMES: { name: string; make: fc.Arbitrary<string>; check(store: Parsed, locator: string): void }[] = [
  {
    name: 's3 (s3://, aws:)',
    make: fc.oneof(
      hostileText.map((t) => `s3://${t}`),
      fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]$/), hostileText).map(([b, t]) => `s3://${b}/${t}`),
      fc.tuple(hostileText, hostileText).map(([r, b]) => `aws:${r}:${b}`),
      fc.tuple(fc.constantFrom('us-east-1', 'eu-west-2'), fc.stringMatching(/^[a-z0-9.-]{1,70}$/)).map(([r, b]) => `aws:${r}:${b}`),
    ),
    check(store, locator) {
      expect(store.bucket, locator).toMatch(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
      expectPlainPrefix(store.prefix as string, locator)
    },
  },
  {
    name: 'gcs (gs://, google:)',
    make: fc.oneof(
      hostileText.map((t) => `gs://${t}`),
      fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{1,20}[a-z0-9]$/), hostileText).map(([b, t]) => `gs://${b}/${t}`),
      fc.tuple(hostileText, hostileText).map(([p, b]) => `google:${p}:${b}`),
      hostileText.map((t) => `google:${t}`),
    ),
    check(store, locator) {
      expect(store.bucketName, locator).toMatch(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/)
      expectPlainPrefix(store.prefix as string, locator)
    },
  },
  {
    name: 'azure (azure://)',
    make: fc.oneof(
      hostileText.map((t) => `azure://${t}`),
      hostileText.map((t) => `azure://devstoreaccount1/${t}`),
      fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9-]{1,20}[a-z0-9]$/), hostileText).map(([c, t]) => `azure://devstoreaccount1/${c}/${t}`),
    ),
    check(store, locator) {
      expect(store.account, locator).toBe('devstoreaccount1')
      expect(store.container, locator).toMatch(/^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$/)
      expectPlainPrefix(store.prefix as string, locator)
    },
  },
  {
    name: 'file (file:, bare paths)',
    make: fc.oneof(hostileText.map((t) => `file:${t}`), hostileText.map((t) => `file://${t}`), hostileText),
    check(store, locator) {
      const root = store.root as string
      expect(isAbsolute(root), locator).toBe(true)
      expect(resolve(root), locator).toBe(root)
      expect(root.includes('\0'), locator).toBe(false)
    },
  },
]

describe('hostile locators, through openJobStore (10,000 cases per backend)', () => {
  // Loaded once, so that the property runs measure parsing and not module loading.
  beforeAll(async () => {
    for (const locator of ['s3://warm-up', 'gs://warm-up', 'azure://devstoreaccount1/warm-up', 'file:/tmp/warm-up']) await openJobStore(locator)
  })

  it.each(LOCATOR_SCHEMES)('$name: rejected with InvalidArgumentError, or a store that cannot escape its prefix; no connection', async ({ make, check }) => {
    const connect = vi.spyOn(Socket.prototype, 'connect')
    let accepted = 0
    let rejected = 0
    try {
      await fc.assert(
        fc.asyncProperty(make, async (locator) => {
          let store: AbstractJobStore
          try {
            store = await openJobStore(locator, { concurrency: 1 } as JobStoreOptions)
          } catch (err) {
            expect(err, `${JSON.stringify(locator)}: ${String(err)}`).toBeInstanceOf(InvalidArgumentError)
            rejected++
            return
          }
          accepted++
          check(store as unknown as Parsed, JSON.stringify(locator))
        }),
        runs,
      )
      // Constructors do no I/O; give anything they might have started a moment to show.
      await new Promise((r) => setTimeout(r, 50))
      expect(connect).not.toHaveBeenCalled()
    } finally {
      connect.mockRestore()
    }
    // Both outcomes were exercised.
    expect(rejected).toBeGreaterThan(100)
    expect(accepted).toBeGreaterThan(100)
  })
})

describe('hostile IDs and names, through every method that takes one (10,000 cases each)', () => {
  let dir: string
  let store: AbstractJobStore
  const primitives = ['getObject', 'headObject', 'putObject', 'deleteObjects', 'listObjects', 'materializeObject', 'linkLocalFile'] as const
  let spies: ReturnType<typeof vi.spyOn>[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jobstore-hostile-'))
    store = await openJobStore(`file:${join(dir, 'store')}`)
    await store.initialize()
    spies = primitives.map((name) => vi.spyOn(store as unknown as Record<string, () => unknown>, name))
  })
  afterAll(async () => {
    for (const spy of spies) spy.mockRestore()
    await rm(dir, { recursive: true, force: true })
  })

  /** Runs each call with `text`: if `valid(text)` is false, each must reject with InvalidArgumentError before any primitive. */
  async function property(valid: (text: string) => boolean, calls: ((text: string) => Promise<unknown>)[], extra?: fc.Arbitrary<string>): Promise<void> {
    let invalid = 0
    await fc.assert(
      fc.asyncProperty(extra === undefined ? hostileText : fc.oneof(hostileText, extra), async (text) => {
        if (valid(text)) return
        invalid++
        for (const spy of spies) spy.mockClear()
        for (const call of calls) {
          let error: unknown
          try {
            await call(text)
          } catch (err) {
            error = err
          }
          expect(error, `${JSON.stringify(text).slice(0, 80)} was accepted`).toBeInstanceOf(InvalidArgumentError)
        }
        for (const spy of spies) expect(spy, JSON.stringify(text).slice(0, 80)).not.toHaveBeenCalled()
      }),
      runs,
    )
    expect(invalid).toBeGreaterThan(2000)
  }

  const isValid = (check: (text: string) => void) => (text: string) => {
    try {
      check(text)
      return true
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidArgumentError)
      return false
    }
  }
  const job = (id: string) => ({ ...newJobDescription({ jobName: 'x' }), jobStoreID: id })

  it('job IDs: load, exists, delete, create, update, setRootJob, and as the owner of a new file', async () => {
    await property(isValid(checkJobId), [
      (id) => store.load(id),
      (id) => store.exists(id),
      (id) => store.delete(id),
      (id) => store.create(job(id)),
      (id) => store.update(job(id), { ifVersion: 1 }),
      (id) => store.setRootJob(id),
      (id) => store.writeFileStream(() => {}, { jobStoreID: id }),
      (id) => store.getEmptyFileStoreID({ jobStoreID: id }),
      (id) => store.writeFile('/etc/hostname', { jobStoreID: id }),
    ], fc.constantFrom(randomId().toUpperCase(), `${randomId()}/`, randomId().slice(1)))
  })

  it('file IDs: read, readFile, delete, exists, size, version, update, public URL, export', async () => {
    const near = fc.tuple(fc.constantFrom(randomId(), '_', '..', ''), fc.constantFrom('c', 'k', '..'), fc.constantFrom(randomId(), 'a'), hostileText)
      .map(([owner, mode, rand, base]) => `${owner}/${mode}/${rand}-${base}`)
    await property(isValid((id) => void parseFileId(id)), [
      (id) => store.readFileStream(id),
      (id) => store.readFile(id, join(dir, 'never-written')),
      (id) => store.deleteFile(id),
      (id) => store.fileExists(id),
      (id) => store.getFileSize(id),
      (id) => store.getFileVersion(id),
      (id) => store.updateFileStream(id, () => {}),
      (id) => store.updateFile(id, '/etc/hostname'),
      (id) => store.getPublicUrl(id),
      (id) => store.exportFile(id, `file://${join(dir, 'never-exported')}`),
    ], near)
  })

  it('shared-file names: write, read, public URL, import as', async () => {
    await property(isValid(checkSharedFileName), [
      (name) => store.writeSharedFileStream(name, () => {}),
      (name) => store.readSharedFileStream(name),
      (name) => store.getSharedPublicUrl(name),
      (name) => store.importFile('file:///etc/hostname', { sharedFileName: name }),
    ])
  })

  it('basenames with a separator or NUL: new files are refused before any I/O', async () => {
    await property((text) => !text.includes('/') && !text.includes('\0'), [
      (base) => store.writeFileStream(() => {}, { basename: base }),
      (base) => store.getEmptyFileStoreID({ basename: base }),
      (base) => store.writeFile('/etc/hostname', { basename: base }),
    ], fc.array(piece, { minLength: 2, maxLength: 6 }).map((parts) => parts.join('/')))
  })
})
