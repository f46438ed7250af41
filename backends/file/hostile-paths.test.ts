/**
 * Hostile environment, file backend: the store never leaves its folder. Whatever is planted inside the store's
 * folder (a symbolic link in place of `tmp/`, of a fan-out folder, of `shared/`, `stats/`, `meta/`, of a stored
 * record), no operation reads, writes or deletes through a link the store did not make itself: it fails with
 * `UnsafeStorePathError` (code `UNSAFE_STORE_PATH`) instead, and a sentinel folder outside the store, the link's
 * target, is left exactly as it was. Links that `importFile(…, {symlink: true})` stores on purpose stay readable,
 * and `deleteFile`/`clean`/`destroy` remove the link, never its target.
 *
 * Every case plants on a store that is not in use, then opens a new instance (as the next worker or `jobstore`
 * command would) and runs one operation.
 */
import { createHash } from 'node:crypto'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AbstractJobStore } from '../../src/abstract-job-store.js'
import { InvalidArgumentError } from '../../src/errors.js'
import { keys, randomId } from '../../src/ids.js'
import { newJobDescription, type JobDescription } from '../../src/job-description.js'
import { openJobStore } from '../../src/open.js'
import type { FileJobStoreOptions } from './file-job-store.js'
import '../../src/builtin-backends.js'
import { caught, collect } from '../../conformance-tests/harness.js'

const base = mkdtempSync(join(tmpdir(), 'jobstore-hostile-paths-'))
afterAll(() => rmSync(base, { recursive: true, force: true }))
let counter = 0

/** Every entry under `dir`, by relative path: its kind, and for files their mode and SHA-256. Links not followed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (path: string, rel: string): void => {
    for (const name of readdirSync(path)) {
      const full = join(path, name)
      const relName = rel === '' ? name : `${rel}/${name}`
      const info = lstatSync(full)
      if (info.isSymbolicLink()) out[relName] = `link ${readlinkSync(full)}`
      else if (info.isDirectory()) {
        out[relName] = 'dir'
        walk(full, relName)
      } else out[relName] = `file ${(info.mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`
    }
  }
  walk(dir, '')
  return out
}

interface Fixture {
  readonly root: string
  readonly locator: string
  /** The folder outside the store that planted links point into; it must never change. */
  readonly outside: string
  readonly rootJob: JobDescription & { jobStoreID: string }
  readonly child: JobDescription & { jobStoreID: string }
  /** A cleanup file of `child` (so under `files/<child's fan-out>/<child>/c/`). */
  readonly fileID: string
}

function jobIn(store: AbstractJobStore, name: string, avoidFanout?: string): JobDescription & { jobStoreID: string } {
  const desc = newJobDescription({ jobName: name })
  do store.assignID(desc)
  while (avoidFanout !== undefined && (desc.jobStoreID as string).slice(0, 2) === avoidFanout)
  return desc as JobDescription & { jobStoreID: string }
}

/** A job ID in the same fan-out folder as `id`. */
function sameFanout(id: string): string {
  return id.slice(0, 2) + randomId().slice(2)
}

/** A store with a root job, a child, a file of the child's, a shared file, a log message; and a sentinel folder. */
async function fixture(): Promise<Fixture> {
  const n = ++counter
  const root = join(base, `store-${n}`)
  const locator = `file:${root}`
  const store = await openJobStore(locator, { directCalls } as FileJobStoreOptions)
  await store.initialize()
  const child = jobIn(store, 'child')
  const rootJob = jobIn(store, 'root', child.jobStoreID.slice(0, 2))
  rootJob.children = [child.jobStoreID]
  await store.create(child)
  await store.createRootJob(rootJob)
  const fileID = await store.writeFileStream((w) => void w.end('owned by child'), { jobStoreID: child.jobStoreID, cleanup: true })
  await store.writeSharedFileStream('settings', (w) => void w.end('shared bytes'))
  await store.writeStatsAndLogging('{"message":"hello"}')
  const outside = join(base, `outside-${n}`)
  mkdirSync(join(outside, 'deep'), { recursive: true })
  writeFileSync(join(outside, 'sentinel.txt'), 'must stay')
  writeFileSync(join(outside, 'deep', 'inner.txt'), 'must stay too')
  // Old enough for clean() to take them for leftovers of interrupted writes, were it to look there.
  const hourAgo = new Date(Date.now() - 3600_000)
  utimesSync(join(outside, 'sentinel.txt'), hourAgo, hourAgo)
  utimesSync(join(outside, 'deep', 'inner.txt'), hourAgo, hourAgo)
  return { root, locator, outside, rootJob, child, fileID }
}

/** Moves the store's `rel` into the outside folder and leaves a symbolic link to it in its place. */
function replaceWithLink(f: Fixture, rel: string): void {
  const target = join(f.outside, `moved-${rel.replaceAll('/', '_')}`)
  renameSync(join(f.root, ...rel.split('/')), target)
  symlinkSync(target, join(f.root, ...rel.split('/')))
}

/** Replaces the store's `tmp/` with a link to the outside folder itself. */
function linkTmp(f: Fixture): void {
  rmSync(join(f.root, 'tmp'), { recursive: true })
  symlinkSync(f.outside, join(f.root, 'tmp'))
}

async function reopened(f: Fixture): Promise<AbstractJobStore> {
  const store = await openJobStore(f.locator, { directCalls } as FileJobStoreOptions)
  await store.resume()
  return store
}

async function expectUnsafe(run: () => Promise<unknown>): Promise<void> {
  const error = await caught(run)
  expect(error.code, error.stack).toBe('UNSAFE_STORE_PATH')
  expect(error.message).toMatch(/symbolic link/)
}

async function drain(iterable: AsyncIterable<unknown>): Promise<number> {
  let n = 0
  for await (const _ of iterable) n++
  return n
}

type Op = (store: AbstractJobStore, f: Fixture) => Promise<unknown>

interface PlantCase {
  readonly name: string
  readonly plant: (f: Fixture) => void
  /** Operations that must fail with UNSAFE_STORE_PATH. */
  readonly unsafe: Record<string, Op>
  /** Operations that may succeed (they only remove the link, or replace it with a file of the store's). */
  readonly safe?: Record<string, Op>
}

const destroy: Op = (store) => store.destroy()

const cases: PlantCase[] = [
  {
    name: 'tmp/ replaced by a link to an outside folder',
    plant: linkTmp,
    unsafe: {
      'write (writeFileStream)': (store) => store.writeFileStream((w) => void w.end('x')),
      'write (create)': (store) => store.create(jobIn(store, 'new')),
      'write (importFile)': (store, f) => store.importFile(pathToFileURL(join(f.outside, 'sentinel.txt')).href),
      clean: (store) => store.clean(),
    },
    safe: { destroy },
  },
  {
    name: 'files/<fan-out>/ replaced by a link',
    plant: (f) => replaceWithLink(f, `files/${f.child.jobStoreID.slice(0, 2)}`),
    unsafe: {
      write: (store, f) => store.writeFileStream((w) => void w.end('x'), { jobStoreID: f.child.jobStoreID }),
      read: async (store, f) => collect(await store.readFileStream(f.fileID)),
      readFile: (store, f) => store.readFile(f.fileID, join(f.root, '..', `copy-${randomId()}`)),
      'exists (fileExists)': (store, f) => store.fileExists(f.fileID),
      delete: (store, f) => store.deleteFile(f.fileID),
      'delete (job with its cleanup files)': (store, f) => store.delete(f.child.jobStoreID),
      'list (files())': (store) => drain(store.files()),
      update: (store, f) => store.updateFileStream(f.fileID, (w) => void w.end('new')),
    },
    safe: { destroy },
  },
  {
    name: 'files/ replaced by a link',
    plant: (f) => replaceWithLink(f, 'files'),
    unsafe: {
      write: (store) => store.writeFileStream((w) => void w.end('x')),
      read: async (store, f) => collect(await store.readFileStream(f.fileID)),
      'list (files())': (store) => drain(store.files()),
    },
    safe: { destroy },
  },
  {
    name: 'jobs/<fan-out>/ replaced by a link',
    plant: (f) => replaceWithLink(f, `jobs/${f.child.jobStoreID.slice(0, 2)}`),
    unsafe: {
      write: (store, f) => store.create({ ...newJobDescription({ jobName: 'next door' }), jobStoreID: sameFanout(f.child.jobStoreID) }),
      read: (store, f) => store.load(f.child.jobStoreID),
      exists: (store, f) => store.exists(f.child.jobStoreID),
      update: async (store, f) => store.update({ ...f.child, jobName: 'renamed' }),
      delete: (store, f) => store.delete(f.child.jobStoreID),
      'list (jobs())': (store) => drain(store.jobs()),
      clean: (store) => store.clean(),
    },
    safe: { destroy },
  },
  {
    name: 'shared/ replaced by a link',
    plant: (f) => replaceWithLink(f, 'shared'),
    unsafe: {
      write: (store) => store.writeSharedFileStream('other', (w) => void w.end('x')),
      read: async (store) => collect(await store.readSharedFileStream('settings')),
      'list (sharedFileNames())': (store) => drain(store.sharedFileNames()),
    },
    safe: { destroy },
  },
  {
    name: 'stats/ replaced by a link',
    plant: (f) => replaceWithLink(f, 'stats'),
    unsafe: {
      write: (store) => store.writeStatsAndLogging('{"message":"more"}'),
      'read and delete (readStatsAndLogging)': (store) => store.readStatsAndLogging(() => {}),
      'list (countStatsAndLogging)': (store) => store.countStatsAndLogging(),
    },
    safe: { destroy },
  },
  {
    name: 'stats/unread/ replaced by a link',
    plant: (f) => replaceWithLink(f, 'stats/unread'),
    unsafe: {
      write: (store) => store.writeStatsAndLogging('{"message":"more"}'),
      'read and delete (readStatsAndLogging)': (store) => store.readStatsAndLogging(() => {}),
    },
    safe: { destroy },
  },
  {
    name: 'meta/ replaced by a link',
    plant: (f) => replaceWithLink(f, 'meta'),
    unsafe: {
      write: (store, f) => store.setRootJob(f.child.jobStoreID),
      read: (store) => store.loadRootJob(),
      clean: (store) => store.clean(),
      // The marker cannot be read without following the link: destroy refuses, typed, and deletes nothing.
      destroy,
    },
  },
  {
    name: 'a job record replaced by a link to an outside file',
    plant: (f) => replaceWithLink(f, keys.job(f.child.jobStoreID)),
    unsafe: {
      read: (store, f) => store.load(f.child.jobStoreID),
      exists: (store, f) => store.exists(f.child.jobStoreID),
      'list (jobs())': (store) => drain(store.jobs()),
      'update (ifVersion)': (store, f) => store.update({ ...f.child, version: 1 }, { ifVersion: 1 }),
      clean: (store) => store.clean(),
    },
    safe: {
      // unlink() and rename() act on the link itself: the outside file stays as it is.
      delete: (store, f) => store.delete(f.child.jobStoreID),
      'update (last writer wins)': (store, f) => store.update({ ...f.child, jobName: 'renamed' }),
      destroy,
    },
  },
  {
    name: 'a shared file replaced by a link to an outside file',
    plant: (f) => replaceWithLink(f, keys.shared('settings')),
    unsafe: {
      read: async (store) => collect(await store.readSharedFileStream('settings')),
      'list (sharedFileNames())': (store) => drain(store.sharedFileNames()),
    },
    safe: { destroy },
  },
]

/** Both ways the backend makes its small calls (FileJobStoreOptions.directCalls): a local disk's and a network file system's. */
let directCalls = true

for (const direct of [true, false]) describe(`hostile environment: the file backend stays inside its folder (${direct ? 'direct' : 'thread-pool'} calls)`, () => {
  beforeAll(() => {
    directCalls = direct
  })
  for (const plantCase of cases) {
    describe(plantCase.name, () => {
      const ops: [string, Op, boolean][] = [
        ...Object.entries(plantCase.unsafe).map(([name, op]): [string, Op, boolean] => [name, op, true]),
        ...Object.entries(plantCase.safe ?? {}).map(([name, op]): [string, Op, boolean] => [name, op, false]),
      ]
      for (const [opName, op, unsafe] of ops) {
        it(`${opName}: ${unsafe ? 'UnsafeStorePathError' : 'acts on the link only'}, nothing outside the store changes`, async () => {
          const f = await fixture()
          const store = await reopened(f) // before the plant: the config and marker are readable
          plantCase.plant(f)
          const before = snapshot(f.outside)
          if (unsafe) await expectUnsafe(() => op(store, f))
          else await op(store, f)
          expect(snapshot(f.outside)).toEqual(before)
        })
      }
    })
  }

  it('a config.json replaced by a link: resume fails with UnsafeStorePathError; destroy removes the link only', async () => {
    const f = await fixture()
    replaceWithLink(f, keys.config)
    const before = snapshot(f.outside)
    const store = await openJobStore(f.locator, { directCalls } as FileJobStoreOptions)
    await expectUnsafe(() => store.resume())
    await store.destroy() // the marker proves the store
    expect(existsSync(f.root)).toBe(false)
    expect(snapshot(f.outside)).toEqual(before)
  })

  it('a new instance that has not yet used a folder checks it: a link planted in files/ before the first write is refused', async () => {
    const f = await fixture()
    const store = await reopened(f)
    const owner = jobIn(store, 'new owner')
    mkdirSync(join(f.outside, 'planted'))
    mkdirSync(join(f.root, 'files', owner.jobStoreID.slice(0, 2)), { recursive: true })
    symlinkSync(join(f.outside, 'planted'), join(f.root, 'files', owner.jobStoreID.slice(0, 2), owner.jobStoreID))
    const before = snapshot(f.outside)
    await expectUnsafe(() => store.writeFileStream((w) => void w.end('x'), { jobStoreID: owner.jobStoreID }))
    expect(snapshot(f.outside)).toEqual(before)
  })

  it('files stored as links by importFile(…, {symlink: true}) stay readable; deleteFile, clean and destroy remove the link, never its target', async () => {
    const f = await fixture()
    const store = await reopened(f)
    const target = join(f.outside, 'sentinel.txt')
    const linked = await store.importFile(pathToFileURL(target).href, { symlink: true }) as string
    const owned = await store.importFile(pathToFileURL(join(f.outside, 'deep', 'inner.txt')).href, { symlink: true })
    expect(lstatSync(join(f.root, ...keys.file(linked).split('/'))).isSymbolicLink()).toBe(true)
    const before = snapshot(f.outside)
    expect((await collect(await store.readFileStream(linked))).toString()).toBe('must stay')
    const local = join(base, `read-${randomId()}`)
    await store.readFile(linked, local)
    expect(readFileSync(local, 'utf8')).toBe('must stay')
    expect(await store.getFileSize(linked)).toBe('must stay'.length)
    const listed = []
    for await (const file of store.files()) listed.push(file.fileID)
    expect(listed).toContain(linked)
    await store.clean(undefined, { leftoverAgeMs: 0 })
    expect((await collect(await store.readFileStream(linked))).toString()).toBe('must stay')
    await store.deleteFile(linked)
    expect(await store.fileExists(linked)).toBe(false)
    expect(await store.fileExists(owned as string)).toBe(true)
    await store.destroy()
    expect(existsSync(f.root)).toBe(false)
    expect(snapshot(f.outside)).toEqual(before)
  })

  it('a link in place of a folder of a file key (files/<fan-out>/<owner>/) is refused: only the final component of a file key may be a link', async () => {
    const f = await fixture()
    const store = await reopened(f)
    // files/<fan-out>/<owner>/ replaced by a link: a folder of the key, not its final component.
    const ownerDir = join(f.root, 'files', f.child.jobStoreID.slice(0, 2), f.child.jobStoreID)
    renameSync(ownerDir, join(f.outside, 'owner'))
    symlinkSync(join(f.outside, 'owner'), ownerDir)
    const before = snapshot(f.outside)
    await expectUnsafe(async () => collect(await store.readFileStream(f.fileID)))
    await expectUnsafe(() => store.deleteFile(f.fileID))
    expect(snapshot(f.outside)).toEqual(before)
  })
})

it('JOBSTORE_FILE_DIRECT_CALLS other than 1 or 0 is an InvalidArgumentError when a store is opened, not a silent default', async () => {
  process.env['JOBSTORE_FILE_DIRECT_CALLS'] = 'yes'
  try {
    const error = await caught(() => openJobStore(`file:${join(base, 'env-check')}`))
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as Error).message).toMatch(/JOBSTORE_FILE_DIRECT_CALLS must be 1 or 0/)
  } finally {
    delete process.env['JOBSTORE_FILE_DIRECT_CALLS']
  }
})
