// Where the file backend keeps the core's digest of a file: an extended attribute of the file's inode (no second
// inode per file), or a sidecar link where attributes are not to be had. Real folders, real attributes, real
// child processes without the module; delayfs (FUSE, no attributes, as NFSv3) where this machine can mount it.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { keys } from '../../src/ids.js'
import { mountDelayfs } from '../../test-servers/index.js'
import { attributeCalls, DIGEST_ATTRIBUTE } from './digest-attribute.js'
import { DIGEST_LOCATION_FIELD, FileJobStore } from './file-job-store.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const dirs: string[] = []
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))))

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-digest-attr-'))
  dirs.push(dir)
  return dir
}

async function collect(stream: AsyncIterable<Buffer | string>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks)
}

/** The core's digest text of `data`: `crc32-<hex>`. */
async function digestText(data: Buffer): Promise<string> {
  const { crc32 } = await import('node:zlib')
  return `crc32-${(crc32(data) >>> 0).toString(16).padStart(8, '0')}`
}

/** Runs `script` (ESM, with `FileJobStore` and `root` in scope) in a child process; its stdout and exit code. */
function child(script: string, root: string, env: Record<string, string> = {}): { code: number | null; out: string; err: string } {
  const prelude = `const { FileJobStore } = await import(${JSON.stringify(join(HERE, 'file-job-store.ts'))}); const root = ${JSON.stringify(root)};`
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `${prelude}\n${script}`], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  })
  return { code: result.status, out: result.stdout.trim(), err: result.stderr }
}

describe('file digests in extended attributes', () => {
  it('this machine has the module and user attributes on its temporary folder (else the tests below prove nothing)', () => {
    expect(attributeCalls, '@napi-rs/xattr loads').toBeDefined()
  })

  it('a new store keeps each file’s digest on the file itself: no sidecar, the attribute holds the bytes’ CRC32', async () => {
    const root = join(await tempDir(), 'store')
    const store = new FileJobStore(root)
    const config = await store.initialize()
    expect(config[DIGEST_LOCATION_FIELD]).toBe('attribute')
    const data = Buffer.from('the bytes of a job’s output file\n'.repeat(100))
    const id = await store.writeFileStream(async (w) => void w.end(data))
    const path = join(root, ...keys.file(id).split('/'))
    expect(await readdir(dirname(path))).toEqual([path.slice(dirname(path).length + 1)])
    expect(attributeCalls?.getSync(path)).toBe(await digestText(data))
    expect(await collect(await store.readFileStream(id))).toEqual(data)
  })

  it('an attribute that no longer matches the bytes (changed behind the store’s back) is an IntegrityError', async () => {
    const root = join(await tempDir(), 'store')
    const store = new FileJobStore(root)
    await store.initialize()
    const id = await store.writeFileStream(async (w) => void w.end('original'))
    const path = join(root, ...keys.file(id).split('/'))
    attributeCalls?.setSync(path, await digestText(Buffer.from('something else')))
    const other = new FileJobStore(root)
    await other.resume()
    await expect(other.readFileStream(id).then(collect)).rejects.toMatchObject({ code: 'INTEGRITY' })
  })

  it('a file replaced by hand (a new inode, without the attribute) is an IntegrityError, not an unchecked read', async () => {
    const root = join(await tempDir(), 'store')
    const store = new FileJobStore(root)
    await store.initialize()
    const id = await store.writeFileStream(async (w) => void w.end('original'))
    const path = join(root, ...keys.file(id).split('/'))
    await rm(path)
    await writeFile(path, 'planted')
    const other = new FileJobStore(root)
    await other.resume()
    await expect(other.readFileStream(id).then(collect)).rejects.toMatchObject({ code: 'INTEGRITY' })
  })

  it('reads racing replaces of a shared file never see a false IntegrityError (the attribute is read by path)', async () => {
    const root = join(await tempDir(), 'store')
    const store = new FileJobStore(root)
    await store.initialize()
    const versions = Array.from({ length: 20 }, (_, i) => Buffer.from(`version ${i} `.repeat(50 + i)))
    await store.writeSharedFileStream('racy', async (w) => void w.end(versions[0]))
    const known = new Set(versions.map((v) => v.toString('hex')))
    let writing = true
    const writer = (async () => {
      for (let round = 0; round < 10; round++) {
        for (const version of versions) await store.writeSharedFileStream('racy', async (w) => void w.end(version))
      }
      writing = false
    })()
    let reads = 0
    const reader = async (): Promise<void> => {
      while (writing) {
        const bytes = await collect(await store.readSharedFileStream('racy'))
        expect(known.has(bytes.toString('hex'))).toBe(true)
        reads++
        // A small read with direct calls settles without a trip to the event loop: let the writer's I/O run.
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
    await Promise.all([writer, reader(), reader(), reader()])
    expect(reads).toBeGreaterThan(0)
  })

  it('a store made where attributes are not to be had keeps sidecars, and a process with the module follows that choice', async () => {
    const root = join(await tempDir(), 'store')
    // A process without the module (JOBSTORE_FILE_DIGEST_ATTRIBUTES=0 acts as if it were not installed).
    const made = child(
      `const s = new FileJobStore(root); const c = await s.initialize(); const id = await s.writeFileStream(async (w) => void w.end('from a sidecar process')); console.log(JSON.stringify({ location: c.fileDigests, id }))`,
      root,
      { JOBSTORE_FILE_DIGEST_ATTRIBUTES: '0' },
    )
    expect(made.code, made.err).toBe(0)
    const { location, id } = JSON.parse(made.out) as { location: string; id: string }
    expect(location).toBe('sidecar')
    const store = new FileJobStore(root)
    expect((await store.resume())[DIGEST_LOCATION_FIELD]).toBe('sidecar')
    expect((await collect(await store.readFileStream(id))).toString()).toBe('from a sidecar process')
    // This process has the module, yet writes a sidecar: the other process must be able to check what it writes.
    const mine = await store.writeFileStream(async (w) => void w.end('from this process'))
    const path = join(root, ...keys.file(mine).split('/'))
    expect((await readdir(dirname(path))).filter((name) => name.includes('~'))).toHaveLength(1)
    expect(attributeCalls?.getSync(path)).toBeUndefined()
    const read = child(`const s = new FileJobStore(root); await s.resume(); const chunks = []; for await (const c of await s.readFileStream(${JSON.stringify(mine)})) chunks.push(c); console.log(Buffer.concat(chunks).toString())`, root, { JOBSTORE_FILE_DIGEST_ATTRIBUTES: '0' })
    expect(read.code, read.err).toBe(0)
    expect(read.out).toBe('from this process')
  })

  it('a process that cannot read attributes refuses a store that keeps them, at resume, with a typed error naming the module', async () => {
    const root = join(await tempDir(), 'store')
    await new FileJobStore(root).initialize()
    const opened = child(
      `try { await new FileJobStore(root).resume(); console.log('opened') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`,
      root,
      { JOBSTORE_FILE_DIGEST_ATTRIBUTES: '0' },
    )
    expect(opened.code, opened.err).toBe(0)
    const error = JSON.parse(opened.out) as { code: string; message: string }
    expect(error.code).toBe('UNSUPPORTED')
    expect(error.message).toContain('@napi-rs/xattr')
  })

  it('the store’s own config field cannot be set by the caller', async () => {
    const store = new FileJobStore(join(await tempDir(), 'store'))
    await expect(store.initialize({ [DIGEST_LOCATION_FIELD]: 'attribute' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('on a file system without user attributes (delayfs, as NFSv3) the store keeps sidecars and checks every read', async () => {
    const fuseHere = existsSync('/dev/fuse') && process.getuid?.() === 0
    expect(fuseHere, 'this suite runs as root with /dev/fuse (as CI does)').toBe(true)
    const dir = await tempDir()
    const mount = await mountDelayfs({ backing: join(dir, 'backing'), mountPoint: join(dir, 'mnt'), delayMs: 0 })
    try {
      const root = join(mount.mountPoint, 'store')
      const store = new FileJobStore(root)
      expect((await store.initialize())[DIGEST_LOCATION_FIELD]).toBe('sidecar')
      const data = Buffer.from('through FUSE')
      const id = await store.writeFileStream(async (w) => void w.end(data))
      expect(await collect(await store.readFileStream(id))).toEqual(data)
      // Changed in place (same inode, the sidecar untouched), through the mount: the kernel's cache sees it too.
      const path = join(root, ...keys.file(id).split('/'))
      const bytes = await readFile(path)
      bytes[0] = (bytes[0] as number) ^ 0x20
      await writeFile(path, bytes, { flag: 'r+' })
      const other = new FileJobStore(root)
      await other.resume()
      await expect(other.readFileStream(id).then(collect)).rejects.toMatchObject({ code: 'INTEGRITY' })
    } finally {
      // No destroy() here: on delayfs a recursive rm leaves dangling links it lists but cannot look up (its
      // loopback's quirk, not the store's); the temporary folder goes in afterAll.
      await mount.stop()
    }
  })
})
