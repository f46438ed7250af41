/**
 * Hostile environment, integrity: a byte changed in storage (by a disk, a bad copy, a server that neither checks nor
 * returns checksums, a hand edit) is always detected. Records (jobs, the config, stats messages, the root-job marker)
 * carry their own check; files the core's own digest. The damage is planted through the backend's own primitives or,
 * for files, the harness's `corruptObject` (the real SDK or node:fs, never a mock).
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { EXIT } from '../src/cli/exit-codes.js'
import { CorruptRecordError } from '../src/errors.js'
import { keys } from '../src/ids.js'
import { newJobDescription } from '../src/job-description.js'
import { caught, collect, randomPayload, sha256, writeChunks, type SuiteContext } from './harness.js'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-integrity-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const fromSource = import.meta.url.endsWith('.ts')
const CLI_ENTRY = fileURLToPath(new URL(fromSource ? '../src/cli/main.ts' : '../src/cli/main.js', import.meta.url))

interface VerifyResult {
  code: number | null
  report: { ok: boolean; problems: { kind: string; subject: string; message: string }[] }
}

/**
 * `jobstore verify --json LOCATOR`, run as a real subprocess (as the CLI tests run it); in this process, through the
 * CLI's own `run()`, for a store other processes cannot reach (`multipleProcesses` unsupported: the memory backend).
 */
async function cliVerify(locator: string, inProcess: boolean, setupModule: string | undefined): Promise<VerifyResult> {
  if (inProcess) return cliVerifyInProcess(locator)
  // A backend not built into jobstore is registered in the CLI's process by the harness's setup module.
  const setup = setupModule === undefined ? [] : ['--import', setupModule]
  const child = spawn(process.execPath, [...(fromSource ? ['--import', 'tsx'] : []), ...setup, CLI_ENTRY, 'verify', locator, '--json'], {
    env: { ...process.env, NODE_OPTIONS: '', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  try {
    return { code, report: JSON.parse(stdout) }
  } catch {
    throw new Error(`jobstore verify printed no report (exit ${code}):\n${stdout}\n${stderr}`)
  }
}

interface Primitives {
  getObject(key: string): Promise<{ data?: Buffer; body: AsyncIterable<Buffer> }>
  putObject(key: string, body: Buffer, options: object): Promise<string>
}

async function cliVerifyInProcess(locator: string): Promise<VerifyResult> {
  const { run } = await import('../src/cli/program.js')
  let stdout = ''
  let stderr = ''
  const sink = (append: (text: string) => void): Writable =>
    new Writable({ write: (chunk: Buffer, _encoding, done) => { append(chunk.toString('utf8')); done() } })
  const code = await run(
    ['verify', locator, '--json'],
    {
      stdout: sink((text) => (stdout += text)),
      stderr: sink((text) => (stderr += text)),
      stdin: Readable.from([]),
      cwd: process.cwd(),
    },
    { signal: new AbortController().signal, env: process.env },
  )
  try {
    return { code, report: JSON.parse(stdout) }
  } catch {
    throw new Error(`jobstore verify printed no report (exit ${code}):\n${stdout}\n${stderr}`)
  }
}

function primitives(store: AbstractJobStore): Primitives {
  const raw = store as unknown as Primitives
  return { getObject: (key) => raw.getObject.call(store, key), putObject: (key, body, options) => raw.putObject.call(store, key, body, options) }
}

/** The bytes stored at `key`, as the backend holds them. */
async function storedBytes(store: AbstractJobStore, key: string): Promise<Buffer> {
  const object = await primitives(store).getObject(key)
  return object.data ?? collect(object.body)
}

/** `bytes` with the first occurrence of `from` replaced by `to` (same length: a changed byte, not a shorter record). */
function replaced(bytes: Buffer, from: string, to: string): Buffer {
  const text = bytes.toString('latin1')
  const at = text.indexOf(from)
  if (at < 0 || from.length !== to.length) throw new Error(`cannot find ${from} in the stored record`)
  return Buffer.from(text.slice(0, at) + to + text.slice(at + from.length), 'latin1')
}

/** `bytes` with one bit flipped at `index` (negative: from the end). */
export function flipped(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes)
  const at = index < 0 ? copy.length + index : index
  copy[at] = (copy[at] as number) ^ 0x20
  return copy
}

export function hostileIntegrityTests(ctx: SuiteContext): void {
  const corrupt = async (locator: string, key: string, offset: number): Promise<void> => {
    // Not silently skipped: a harness either changes a stored byte or the suite says it must.
    if (ctx.harness.corruptObject === undefined) throw new Error('the harness has no corruptObject: supply it (see ConformanceHarness)')
    await ctx.harness.corruptObject(locator, key, offset)
  }
  describe('hostile environment: integrity', () => {
    describe('files are checked against the core’s own digest', () => {
      for (const [label, size] of [
        ['64 KiB', 64 * 1024],
        ['one part and a byte', ctx.partSize + 1],
      ] as const) {
        it(`a file of ${label} with one byte changed in storage: readFileStream, readFile, exportFile and jobstore verify report it`, async () => {
          const { store, locator } = await ctx.freshStore()
          const data = randomPayload(size)
          const id = await store.writeFileStream(async (w) => writeChunks(w, data, 64 * 1024))
          const intact = await store.writeFileStream(async (w) => writeChunks(w, data, 64 * 1024))
          await corrupt(locator, keys.file(id), Math.floor(size / 2))
          const other = await ctx.reopen(locator)
          const streamed = await caught(async () => collect(await other.readFileStream(id)))
          expect(streamed.code).toBe('INTEGRITY')
          expect(streamed.message).toContain(id)
          const dir = await tempDir()
          expect((await caught(() => other.readFile(id, join(dir, 'read')))).code).toBe('INTEGRITY')
          expect((await caught(() => other.exportFile(id, pathToFileURL(join(dir, 'exported')).href))).code).toBe('INTEGRITY')
          // Nothing damaged appears where the file was to go.
          expect(await readdir(dir)).toEqual([])
          // The intact copy reads whole, by every path.
          expect(sha256(await collect(await other.readFileStream(intact)))).toBe(sha256(data))
          await other.readFile(intact, join(dir, 'intact'))
          expect(existsSync(join(dir, 'intact'))).toBe(true)
          const verify = await cliVerify(locator, ctx.capability('multipleProcesses') !== true, ctx.harness.setupModule)
          expect(verify.code).toBe(EXIT.INTEGRITY)
          expect(verify.report.problems).toEqual([
            { kind: 'damaged-file', subject: id, message: expect.stringContaining(`file ${id} cannot be read back whole`) },
          ])
        })
      }

      it('a shared file with one byte changed in storage is an IntegrityError (a protected one: IntegrityError or EncryptionError)', async () => {
        const dir = await tempDir()
        const keyPath = join(dir, 'key')
        const { writeFile } = await import('node:fs/promises')
        await writeFile(keyPath, randomPayload(32))
        const { store, locator } = await ctx.freshStore({ encryptionKeyPath: keyPath })
        const data = randomPayload(100_000)
        await store.writeSharedFileStream('clear', (w) => void w.end(data), { isProtected: false })
        await store.writeSharedFileStream('secret', (w) => void w.end(data), { isProtected: true })
        for (const name of ['clear', 'secret']) await corrupt(locator, keys.shared(name), 50_000)
        const other = await ctx.reopen(locator)
        expect((await caught(async () => collect(await other.readSharedFileStream('clear')))).code).toBe('INTEGRITY')
        // Ciphertext is authenticated chunk by chunk: decryption may name the damage before the digest does.
        expect(['INTEGRITY', 'ENCRYPTION']).toContain((await caught(async () => collect(await other.readSharedFileStream('secret')))).code)
      })

      it('a file replaced behind the store’s back, without the digest the store keeps, is an IntegrityError', async () => {
        const { store, locator } = await ctx.freshStore()
        const id = await store.writeFileStream((w) => void w.end('the real content'))
        await primitives(store).putObject(keys.file(id), Buffer.from('a forged content'), {})
        const error = await caught(async () => collect(await (await ctx.reopen(locator)).readFileStream(id)))
        expect(error.code).toBe('INTEGRITY')
        expect(error.message).toContain('stored without its digest')
      })
    })

    describe('records carry their own check', () => {
      it('a job record with one changed byte that is still valid JSON, torn or truncated, is a CorruptRecordError naming it', async () => {
        const { store, locator } = await ctx.freshStore()
        const desc = newJobDescription({ jobName: 'work-alpha', extra: { note: 'kept' } })
        store.assignID(desc)
        await store.create(desc)
        const id = desc.jobStoreID as string
        const key = keys.job(id)
        const first = await storedBytes(store, key)
        desc.extra['note'] = 'next'
        await store.update(desc)
        const second = await storedBytes(store, key)
        const put = primitives(store).putObject
        const damages: [string, Buffer][] = [
          ['a changed byte, still valid JSON', replaced(second, 'work-alpha', 'work-alphb')],
          ['truncated', second.subarray(0, Math.floor(second.length / 2))],
          ['torn (the start of one version, the end of another)', Buffer.concat([second.subarray(0, 40), first.subarray(40)])],
        ]
        for (const [damage, bytes] of damages) {
          expect(bytes.equals(second), damage).toBe(false)
          await put(key, bytes, {})
          const other = await ctx.reopen(locator)
          const error = await caught(() => other.load(id))
          expect(error, damage).toBeInstanceOf(CorruptRecordError)
          expect(error.message, damage).toContain(`job ${id}`)
          expect(error.message, damage).toContain('checksum mismatch: torn or overwritten')
          const reported: string[] = []
          for await (const _ of other.jobs({ onCorruptRecord: (err) => reported.push(err.message) })) void _
          expect(reported, damage).toEqual([error.message])
        }
      })

      it('a config with a changed value is a CorruptRecordError naming it; with its check line removed (a hand edit) it is accepted', async () => {
        const { store, locator } = await ctx.freshStore({ retryCount: 3 })
        const stored = await storedBytes(store, keys.config)
        expect(stored.toString()).toMatch(/^\{\n {2}"crc32": "[0-9a-f]{8}",\n/)
        const put = primitives(store).putObject
        await put(keys.config, replaced(stored, '"retryCount": 3', '"retryCount": 7'), {})
        const error = await caught(() => ctx.reopen(locator))
        expect(error).toBeInstanceOf(CorruptRecordError)
        expect(error.message).toContain(`config of ${locator}`)
        expect(error.message).toContain('checksum mismatch: torn or overwritten')
        expect(error.message).toContain('"crc32" line')
        // The edit made on purpose: the check line goes, the edit is accepted, the next write seals it again.
        const edited = replaced(stored, '"retryCount": 3', '"retryCount": 7')
          .toString()
          .replace(/\n {2}"crc32": "[0-9a-f]{8}",/, '')
        await put(keys.config, Buffer.from(edited), {})
        const reopened = await ctx.reopen(locator)
        expect(reopened.config.retryCount).toBe(7)
        await reopened.writeConfig()
        expect((await storedBytes(store, keys.config)).toString()).toMatch(/^\{\n {2}"crc32": "[0-9a-f]{8}",\n/)
        expect((await ctx.reopen(locator)).config.retryCount).toBe(7)
      })

      it('a stats message with a changed byte or cut short is a CorruptRecordError naming it, never handed out', async () => {
        const { store, locator } = await ctx.freshStore()
        await store.writeStatsAndLogging('{"jobs": 12, "status": "all good"}')
        const listed: string[] = []
        for await (const object of (store as unknown as { listObjects(prefix: string): AsyncIterable<{ key: string }> }).listObjects.call(
          store,
          keys.statsUnreadPrefix,
        )) {
          listed.push(object.key)
        }
        expect(listed).toHaveLength(1)
        const key = listed[0] as string
        const stored = await storedBytes(store, key)
        const put = primitives(store).putObject
        for (const [damage, bytes] of [
          ['a changed byte', replaced(stored, 'all good', 'all gone')],
          ['cut short', stored.subarray(0, stored.length - 6)],
        ] as const) {
          await put(key, bytes, {})
          const other = await ctx.reopen(locator)
          const handedOut: string[] = []
          for (const peek of [true, false]) {
            const error = await caught(() => other.readStatsAndLogging((text) => void handedOut.push(text), false, { peek }))
            expect(error, damage).toBeInstanceOf(CorruptRecordError)
            expect(error.message, damage).toMatch(/stats .*checksum mismatch: torn or overwritten/)
          }
          expect(handedOut, damage).toEqual([])
        }
        // Restored, it is handed out once, whole.
        await put(key, stored, {})
        const texts: string[] = []
        expect(await store.readStatsAndLogging((text) => void texts.push(text))).toBe(1)
        expect(texts).toEqual(['{"jobs": 12, "status": "all good"}'])
      })

      it('a damaged root-job marker is a CorruptRecordError naming it', async () => {
        const { store, locator } = await ctx.freshStore()
        const root = newJobDescription({ jobName: 'root' })
        store.assignID(root)
        await store.createRootJob(root)
        const other = newJobDescription({ jobName: 'other' })
        store.assignID(other)
        await store.create(other)
        const stored = await storedBytes(store, keys.rootJob)
        // Another valid job ID in the marker (a torn write of another store's marker, a bad copy): still a job that exists.
        await primitives(store).putObject(keys.rootJob, replaced(stored, root.jobStoreID as string, other.jobStoreID as string), {})
        const error = await caught(async () => (await ctx.reopen(locator)).loadRootJob())
        expect(error).toBeInstanceOf(CorruptRecordError)
        expect(error.message).toContain('root job marker')
        expect(error.message).toContain('checksum mismatch: torn or overwritten')
      })

      it('a store writes checks into every record: one without is corrupt; a store without the digests field (an earlier release) reads unchecked records', async () => {
        const { store, locator } = await ctx.freshStore()
        expect(store.config['digests']).toBe('v1')
        const desc = newJobDescription({ jobName: 'unchecked' })
        store.assignID(desc)
        const id = desc.jobStoreID as string
        const unchecked = Buffer.from(JSON.stringify({ schemaVersion: 1, ...desc, version: 1 }))
        const put = primitives(store).putObject
        await put(keys.job(id), unchecked, {})
        const error = await caught(async () => (await ctx.reopen(locator)).load(id))
        expect(error).toBeInstanceOf(CorruptRecordError)
        expect(error.message).toContain(`job ${id}: no checksum`)
        // The records of a store an earlier release made: no digests field in its config, no check in any record.
        const { digests: _, ...legacyConfig } = store.config
        await put(keys.config, Buffer.from(JSON.stringify(legacyConfig, null, 2)), {})
        await put(keys.statsUnreadPrefix + keys.newStatsId(), Buffer.from('an old message'), {})
        const legacy = await ctx.reopen(locator)
        expect(legacy.config['digests']).toBeUndefined()
        expect((await legacy.load(id)).jobName).toBe('unchecked')
        const texts: string[] = []
        await legacy.readStatsAndLogging((text) => void texts.push(text))
        expect(texts).toEqual(['an old message'])
      })
    })
  })
}
