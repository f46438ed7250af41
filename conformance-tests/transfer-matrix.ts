/**
 * The import/export matrix: every ordered pair of backends as source and destination, with sizes around the
 * destination's multipart threshold, checked by SHA-256 and executable flag; import as a shared file; http import
 * of a multipart-sized body from a flaky local server; and proof that copies within one service are server-side
 * (bytes through this process's sockets are counted).
 *
 * Unlike `defineConformanceSuite` (one backend at a time), the matrix needs every backend at once, so it takes a
 * list. One store per backend serves the whole matrix; pairs run concurrently (vitest's `maxConcurrency`).
 */
import { subscribe } from 'node:diagnostics_channel'
import { randomBytes } from 'node:crypto'
import { chmod, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Readable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AbstractJobStore, type BucketUrlHandler } from '../src/abstract-job-store.js'
import { randomId } from '../src/ids.js'
import { openJobStore } from '../src/open.js'
import { resolveUrlHandler } from '../src/url-handlers.js'
import '../src/builtin-backends.js'
import { caught, collect, sha256, type Capability } from './harness.js'

/** What the matrix knows about copies within one backend. */
export interface TransferCapabilities {
  /**
   * Import from and export to URLs of the backend's own service copy server-side: no file bytes pass through
   * this process. `{ unsupported: reason }` where they cannot (a local file system copies through the process).
   */
  readonly serverSideCopy: Capability
  /**
   * Server-side copies of objects above the service's single-request copy limit (S3 UploadPartCopy above 5 GiB,
   * Azure Put Block From URL above 256 MiB), exercised with {@link TransferBackend.largeCopy}'s lowered limit.
   */
  readonly largeServerSideCopy: Capability
}

/** One backend of the matrix. */
export interface TransferBackend {
  /** Shown in test names. */
  readonly name: string
  /** A fresh locator: the matrix opens one store on it for all its tests, and destroys it at the end. */
  newLocator(): string | Promise<string>
  /**
   * Where the matrix may create objects by URL (`s3://bucket/some/prefix`, a `file:` folder that exists), in the
   * bucket or container the store's `initialize()` creates. Objects get random names under it and are deleted.
   */
  urlBase(): string | Promise<string>
  /** Writes to this backend switch to multipart (parts, chunks, blocks) above this size. */
  readonly partSize: number
  /** Unlisted capabilities are `true`. */
  readonly capabilities?: Partial<TransferCapabilities>
  /**
   * A store on `locator` whose single-request copy limit is lowered to below `size`, so that a same-service copy of
   * `size` bytes takes the large-object path. Absent where the service has one copy call for every size (GCS
   * rewrite).
   */
  readonly largeCopy?: { readonly size: number; open(locator: string): AbstractJobStore }
}

// ------------------------------------------------------------------------------------------------ byte counting

const openSockets = new Set<Socket>()
let closedSocketBytes = 0
subscribe('net.client.socket', (message) => {
  const socket = (message as { socket: Socket }).socket
  openSockets.add(socket)
  socket.once('close', () => {
    closedSocketBytes += socket.bytesRead + socket.bytesWritten
    openSockets.delete(socket)
  })
})

/**
 * Bytes read and written by every client socket of this process so far (every SDK and `fetch` connects with
 * `net.connect`, which reports its sockets on the `net.client.socket` diagnostics channel).
 */
export function clientSocketBytes(): number {
  let total = closedSocketBytes
  for (const socket of openSockets) total += socket.bytesRead + socket.bytesWritten
  return total
}

// ------------------------------------------------------------------------------------------------ helpers

/** Writes `data` at `url` through its registered handler (a local file with its mode for `file:`). */
async function putUrl(url: string, data: Buffer, executable: boolean): Promise<void> {
  if (url.startsWith('file:')) {
    const path = fileURLToPath(url)
    await writeFile(path, data)
    await chmod(path, executable ? 0o755 : 0o644)
    return
  }
  const { handler, url: parsed } = await resolveUrlHandler(url)
  if (handler.write === undefined) throw new Error(`${url}: not writable`)
  await handler.write(parsed, Readable.from([data]), { executable, size: data.length })
}

/** The bytes at `url` and whether it is executable. */
async function readUrl(url: string): Promise<{ data: Buffer; executable: boolean }> {
  const { handler, url: parsed } = await resolveUrlHandler(url)
  const source = await handler.openRead(parsed)
  return { data: await collect(source.body), executable: source.executable }
}

/** Deletes the object at `url`: a local file, or through the store its bucket URL handler opens. */
async function deleteUrl(url: string): Promise<void> {
  if (url.startsWith('file:')) return rm(fileURLToPath(url), { force: true })
  const { handler, url: parsed } = await resolveUrlHandler(url)
  const found = (handler as Partial<BucketUrlHandler<AbstractJobStore>>).locate?.(parsed)
  if (found === undefined) throw new Error(`cannot delete ${url}: not a bucket URL`)
  const store = found.store as unknown as { deleteObjects(keys: string[]): Promise<void> }
  await store.deleteObjects([found.key])
}

/** One line on stderr: the measured evidence, for whoever reads the test log. */
function report(line: string): void {
  process.stderr.write(`[transfer matrix] ${line}\n`)
}

function mib(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 2)} MiB` : `${bytes} B`
}

/** Sizes around a part size: 0, 1 byte, one under, at and over the threshold, and three parts. */
function sizesAround(part: number): { label: string; size: number }[] {
  return [
    { label: '0 bytes', size: 0 },
    { label: '1 byte', size: 1 },
    { label: 'part - 1', size: part - 1 },
    { label: 'part', size: part },
    { label: 'part + 1', size: part + 1 },
    { label: '3 parts', size: 2 * part + 1 },
  ]
}

/** A loopback server for `data` at `/flaky`, which answers 503 twice before it serves. */
async function flakyServer(data: Buffer): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0
  const server: Server = createServer((req, res) => {
    if (hits++ < 2) {
      res.writeHead(503, { 'retry-after': '0' }).end('busy')
      return
    }
    res.writeHead(200, { 'content-length': String(data.length) })
    res.end(req.method === 'HEAD' ? undefined : data)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/flaky/data.bin`,
    hits: () => hits,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

// ------------------------------------------------------------------------------------------------ the matrix

interface Opened {
  readonly backend: TransferBackend
  store: AbstractJobStore
  locator: string
  base: string
}

/** Registers the matrix over `backends` under `describe('transfer matrix')`. */
export function defineTransferMatrix(backends: readonly TransferBackend[]): void {
  const opened = new Map<string, Opened>()
  const get = (name: string): Opened => {
    const entry = opened.get(name)
    if (entry === undefined) throw new Error(`${name}: its store did not open (see beforeAll)`)
    return entry
  }
  const newUrl = (on: Opened, name: string): string => `${on.base.replace(/\/$/, '')}/${randomId()}-${name}`
  const capability = (backend: TransferBackend, name: keyof TransferCapabilities): Capability =>
    backend.capabilities?.[name] ?? true

  describe('transfer matrix', () => {
    beforeAll(async () => {
      await Promise.all(
        backends.map(async (backend) => {
          const locator = await backend.newLocator()
          const store = await openJobStore(locator)
          await store.initialize()
          opened.set(backend.name, { backend, store, locator, base: await backend.urlBase() })
        }),
      )
    })
    afterAll(async () => {
      await Promise.all([...opened.values()].map(({ store }) => store.destroy()))
    })

    for (const source of backends) {
      for (const target of backends) {
        describe.concurrent(`${source.name} -> ${target.name}`, () => {
          for (const { label, size } of sizesAround(target.partSize)) {
            it(`${label} (${mib(size)}): import and export, checksum and executable bit`, async ({ expect, onTestFinished }) => {
              const from = get(source.name)
              const to = get(target.name)
              const data = randomBytes(size)
              const executable = size % 2 === 1
              const sourceUrl = newUrl(from, `source-${size}.bin`)
              const targetUrl = newUrl(to, `target-${size}.bin`)
              onTestFinished(() => Promise.all([deleteUrl(sourceUrl), deleteUrl(targetUrl)]).then(() => {}))
              await putUrl(sourceUrl, data, executable)
              expect(await AbstractJobStore.getSize(sourceUrl)).toBe(size)

              // Import: a URL of the source backend into a store of the target backend.
              const imported = (await to.store.importFile(sourceUrl)) as string
              onTestFinished(() => to.store.deleteFile(imported))
              expect(imported).toMatch(new RegExp(`-source-${size}\\.bin$`))
              const read = await to.store.readFileStream(imported)
              expect(read.executable).toBe(executable)
              expect(sha256(await collect(read))).toBe(sha256(data))

              // Export: a file of a store of the source backend to a URL of the target backend.
              const held = (await from.store.importFile(sourceUrl)) as string
              onTestFinished(() => from.store.deleteFile(held))
              await from.store.exportFile(held, targetUrl)
              expect(await AbstractJobStore.getSize(targetUrl)).toBe(size)
              const exported = await readUrl(targetUrl)
              expect(exported.executable).toBe(executable)
              expect(sha256(exported.data)).toBe(sha256(data))
            })
          }

          it('import as a shared file', async ({ expect, onTestFinished }) => {
            const from = get(source.name)
            const to = get(target.name)
            const data = randomBytes(100_000)
            const sourceUrl = newUrl(from, 'settings.json')
            onTestFinished(() => deleteUrl(sourceUrl))
            await putUrl(sourceUrl, data, true)
            const name = `imported-${source.name}-${randomId()}`
            expect(await to.store.importFile(sourceUrl, { sharedFileName: name })).toBeUndefined()
            const read = await to.store.readSharedFileStream(name)
            expect(read.executable).toBe(true)
            expect(sha256(await collect(read))).toBe(sha256(data))
            // Replaced by a second import under the same name.
            const again = randomBytes(10)
            await putUrl(sourceUrl, again, false)
            await to.store.importFile(sourceUrl, { sharedFileName: name })
            expect(sha256(await collect(await to.store.readSharedFileStream(name)))).toBe(sha256(again))
          })
        })
      }
    }

    describe.concurrent('http import, multipart-sized, from a server that fails twice first', () => {
      for (const target of backends) {
        it(`http -> ${target.name} (${mib(2 * target.partSize + 1)})`, async ({ expect, onTestFinished }) => {
          const to = get(target.name)
          const data = randomBytes(2 * target.partSize + 1)
          const server = await flakyServer(data)
          onTestFinished(server.close)
          const id = (await to.store.importFile(server.url)) as string
          onTestFinished(() => to.store.deleteFile(id))
          expect(server.hits()).toBe(3)
          expect(id).toMatch(/-data\.bin$/)
          expect(sha256(await collect(await to.store.readFileStream(id)))).toBe(sha256(data))
        })
      }
    })

    describe('bad URLs and missing sources: typed errors, before anything is written', () => {
      for (const backend of backends) {
        it(`${backend.name}`, async ({ onTestFinished }) => {
          const on = get(backend.name)
          const other = get((backends.find((b) => b.name !== backend.name) ?? backend).name)
          const base = on.base.replace(/\/$/, '')
          const countFiles = async (): Promise<number> => {
            let n = 0
            for await (const _ of on.store.files()) n++
            return n
          }
          const before = await countFiles()
          const absent = `${base}/${randomId()}-absent.bin`
          expect((await caught(() => on.store.importFile(absent))).code).toBe('NO_SUCH_FILE')
          expect((await caught(() => on.store.importFile(absent, { sharedFileName: 'never' }))).code).toBe('NO_SUCH_FILE')
          expect(await AbstractJobStore.getSize(absent)).toBeUndefined()
          const id = await on.store.writeFileStream((w) => void w.end('x'))
          onTestFinished(() => on.store.deleteFile(id))
          if (!base.startsWith('file:')) {
            const malformed = [
              `${base}/a/../b.bin`,
              `${base}/./b.bin`,
              `${base}/%2e%2e/b.bin`,
              `${base}//b.bin`,
              `${base}/dir/`,
              `${base}/b.bin?versionId=1`,
              `${base}/b.bin#part`,
              `${base}/%ZZ.bin`,
              `${base}/a%00b.bin`,
              `${base}/a%5Cb.bin`,
              `${base}/${'k'.repeat(1100)}`,
            ]
            for (const bad of malformed) {
              expect((await caught(() => on.store.importFile(bad))).code, bad).toBe('INVALID_IMPORT_EXPORT_URL')
              expect((await caught(() => on.store.exportFile(id, bad))).code, bad).toBe('INVALID_IMPORT_EXPORT_URL')
              expect((await caught(() => AbstractJobStore.getSize(bad))).code, bad).toBe('INVALID_IMPORT_EXPORT_URL')
            }
          }
          // Exporting a file that does not exist, within the service and to another one: nothing appears.
          const gone = await on.store.writeFileStream((w) => void w.end('gone'))
          await on.store.deleteFile(gone)
          for (const target of [`${base}/${randomId()}-never.bin`, `${other.base.replace(/\/$/, '')}/${randomId()}-never.bin`]) {
            expect((await caught(() => on.store.exportFile(gone, target))).code, target).toBe('NO_SUCH_FILE')
            expect(await AbstractJobStore.getSize(target)).toBeUndefined()
          }
          expect(await countFiles()).toBe(before + 1)
        })
      }
    })

    describe('copies within one service are server-side (bytes through this process counted)', () => {
      const SIZE = 12 * 1024 * 1024 + 3
      /** Far below the size: the requests and answers of a copy, not its bytes. */
      const REQUEST_BYTES = 256 * 1024
      for (const backend of backends) {
        const serverSide = capability(backend, 'serverSideCopy')
        const title =
          serverSide === true
            ? `${backend.name}: import and export within the service move no file bytes through the client`
            : `${backend.name}: no server-side copy (declared: ${serverSide.unsupported}); import and export stream`
        it(title, async ({ onTestFinished }) => {
          const on = get(backend.name)
          const data = randomBytes(SIZE)
          const sourceUrl = newUrl(on, 'big-source.bin')
          const targetUrl = newUrl(on, 'big-target.bin')
          onTestFinished(() => Promise.all([deleteUrl(sourceUrl), deleteUrl(targetUrl)]).then(() => {}))
          await putUrl(sourceUrl, data, true)

          let before = clientSocketBytes()
          const id = (await on.store.importFile(sourceUrl)) as string
          const importBytes = clientSocketBytes() - before
          onTestFinished(() => on.store.deleteFile(id))
          before = clientSocketBytes()
          await on.store.exportFile(id, targetUrl)
          const exportBytes = clientSocketBytes() - before

          report(`${backend.name}: ${mib(SIZE)} import moved ${importBytes} bytes through the client, export ${exportBytes}`)
          const read = await on.store.readFileStream(id)
          expect(read.executable).toBe(true)
          expect(sha256(await collect(read))).toBe(sha256(data))
          const exported = await readUrl(targetUrl)
          expect(exported.executable).toBe(true)
          expect(sha256(exported.data)).toBe(sha256(data))
          // An export replaces what is at the URL, flag included.
          const small = await on.store.writeFileStream((w) => void w.end('replaced'))
          onTestFinished(() => on.store.deleteFile(small))
          await on.store.exportFile(small, targetUrl)
          const replaced = await readUrl(targetUrl)
          expect(replaced.data.toString()).toBe('replaced')
          expect(replaced.executable).toBe(false)
          if (serverSide === true) {
            expect(importBytes, 'bytes through the client during a same-service import').toBeLessThan(REQUEST_BYTES)
            expect(exportBytes, 'bytes through the client during a same-service export').toBeLessThan(REQUEST_BYTES)
          } else {
            expect(serverSide.unsupported.length).toBeGreaterThan(10)
          }
        })
      }

      it('the counter sees bytes that do go through the client: a file: import into each cloud store', async ({ onTestFinished }) => {
        const file = backends.find((backend) => backend.name === 'file')
        const clouds = backends.filter((backend) => capability(backend, 'serverSideCopy') === true)
        if (file === undefined || clouds.length === 0) return
        const data = randomBytes(SIZE)
        const sourceUrl = newUrl(get(file.name), 'control.bin')
        onTestFinished(() => deleteUrl(sourceUrl))
        await putUrl(sourceUrl, data, false)
        for (const cloud of clouds) {
          const on = get(cloud.name)
          const before = clientSocketBytes()
          const id = (await on.store.importFile(sourceUrl)) as string
          const moved = clientSocketBytes() - before
          report(`control: a ${mib(SIZE)} file: import into ${cloud.name} moved ${moved} bytes through the client`)
          onTestFinished(() => on.store.deleteFile(id))
          expect(moved, `bytes through the client for a file: import into ${cloud.name}`).toBeGreaterThanOrEqual(SIZE)
        }
      })

      for (const backend of backends) {
        const large = backend.largeCopy
        if (large === undefined) continue
        const declared = capability(backend, 'largeServerSideCopy')
        const title =
          declared === true
            ? `${backend.name}: above the single-request copy limit, still server-side (${mib(large.size)}, limit lowered)`
            : `${backend.name}: above the single-request copy limit: declared gap (${declared.unsupported}); it streams instead`
        it(title, async ({ onTestFinished }) => {
          const on = get(backend.name)
          const store = large.open(on.locator)
          await store.resume()
          const data = randomBytes(large.size)
          const sourceUrl = newUrl(on, 'large-source.bin')
          const targetUrl = newUrl(on, 'large-target.bin')
          onTestFinished(() => Promise.all([deleteUrl(sourceUrl), deleteUrl(targetUrl)]).then(() => {}))
          await putUrl(sourceUrl, data, true)
          let before = clientSocketBytes()
          const id = (await store.importFile(sourceUrl)) as string
          const importBytes = clientSocketBytes() - before
          onTestFinished(() => store.deleteFile(id))
          before = clientSocketBytes()
          await store.exportFile(id, targetUrl)
          const exportBytes = clientSocketBytes() - before
          report(`${backend.name}, copy limit lowered: ${mib(large.size)} import moved ${importBytes} bytes through the client, export ${exportBytes}`)
          const read = await store.readFileStream(id)
          expect(read.executable).toBe(true)
          expect(sha256(await collect(read))).toBe(sha256(data))
          const exported = await readUrl(targetUrl)
          expect(exported.executable).toBe(true)
          expect(sha256(exported.data)).toBe(sha256(data))
          if (declared === true) {
            expect(importBytes).toBeLessThan(REQUEST_BYTES)
            expect(exportBytes).toBeLessThan(REQUEST_BYTES)
          } else {
            // The gap is real (not a silent skip): the bytes did go through the client.
            expect(declared.unsupported.length).toBeGreaterThan(10)
            expect(importBytes).toBeGreaterThanOrEqual(large.size)
            expect(exportBytes).toBeGreaterThanOrEqual(large.size)
          }
        })
      }
    })
  })
}
