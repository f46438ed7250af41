/**
 * Hostile environment: imports from servers that misbehave, exports and reads to destinations that are not regular
 * files, `file:` URLs relative to the working folder, and key files that cannot serve as keys (issue 14, items 8,
 * 9 and 11). Every server here is a real one on 127.0.0.1; every destination a real node of the file system.
 */
import { execFileSync } from 'node:child_process'
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, join, relative } from 'node:path'
import { pathToFileURL } from 'node:url'
import { describe, expect, it, onTestFinished } from 'vitest'
import { AbstractJobStore } from '../src/abstract-job-store.js'
import { openJobStore } from '../src/open.js'
import { caught, collect, randomPayload, sha256, type SuiteContext } from './harness.js'

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-hostile-'))
  onTestFinished(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Listens on 127.0.0.1 (or a Unix socket path) until the test ends; every accepted socket is destroyed then. */
async function listen(server: Server, path?: string): Promise<number> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => (path !== undefined ? server.listen(path, resolve) : server.listen(0, '127.0.0.1', resolve)))
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return path !== undefined ? 0 : (server.address() as AddressInfo).port
}

/**
 * A raw TCP server that answers every request with `script`: what a broken or stalling HTTP server sends. It counts
 * connections (each attempt of the client is one).
 */
async function rawHttpServer(script: (socket: Socket) => void): Promise<{ base: string; connections: () => number }> {
  let connections = 0
  const server = createNetServer((socket) => {
    connections++
    // These servers answer whatever is asked, once the request has come (answering before it, then closing, would
    // make the client's request meet a reset).
    socket.once('data', () => script(socket))
    socket.on('data', () => {})
  })
  const port = await listen(server)
  return { base: `http://127.0.0.1:${port}`, connections: () => connections }
}

async function fileIDs(store: AbstractJobStore): Promise<string[]> {
  const ids: string[] = []
  for await (const file of store.files()) ids.push(file.fileID)
  return ids
}

/**
 * No retries, and the default timeouts (which a cut body never reaches). A test of a timeout shortens that one only:
 * a short connect timeout on a loaded machine could fire before a stalled event loop sees the connection.
 */
const NO_RETRIES = { maxRetryTimeMs: 0 }
const QUICK_IDLE = { idleTimeoutMs: 300, maxRetryTimeMs: 0 }
const QUICK_CONNECT = { connectTimeoutMs: 1000, maxRetryTimeMs: 0 }

/**
 * Imports `url` as a new file and as an existing shared file, both of which must fail with a URL_TRANSFER error
 * whose message matches `message`, storing nothing: no file listed, no leftover, the shared file's old content.
 */
async function expectFailedImports(
  ctx: SuiteContext,
  url: string,
  message: RegExp,
  options: Record<string, number> = NO_RETRIES,
): Promise<void> {
  const { store, locator } = await ctx.freshStore()
  await store.writeSharedFileStream('ref', (w) => void w.end('the previous content'))
  const leftoversBefore = await ctx.leftovers(locator)

  const asFile = await caught(() => store.importFile(url, options))
  expect(asFile.code, asFile.message).toBe('URL_TRANSFER')
  expect(asFile.message, asFile.message).toMatch(message)
  expect(asFile.message).not.toMatch(/^terminated$|ECONNRESET$/)
  expect(await fileIDs(store)).toEqual([])

  const asShared = await caught(() => store.importFile(url, { ...options, sharedFileName: 'ref' }))
  expect(asShared.code, asShared.message).toBe('URL_TRANSFER')
  expect(asShared.message, asShared.message).toMatch(message)
  const other = await ctx.reopen(locator)
  expect((await collect(await other.readSharedFileStream('ref'))).toString()).toBe('the previous content')
  expect(await fileIDs(other)).toEqual([])
  expect(await ctx.leftovers(locator)).toBe(leftoversBefore)
}

const HEADERS_12 = 'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 12\r\n\r\n'

export function hostileUrlsTests(ctx: SuiteContext): void {
  describe('hostile environment: imports over HTTP end', () => {
    it('a chunked body cut before its terminating chunk is an error, and nothing is stored', async () => {
      const server = await rawHttpServer((socket) => {
        socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
      })
      await expectFailedImports(ctx, `${server.base}/cut.txt`, /closed the connection after 5 bytes, before the end of the chunked body/)
    })

    it('a Content-Length body cut short is an error, and nothing is stored', async () => {
      const server = await rawHttpServer((socket) => socket.end(`${HEADERS_12}hello`))
      await expectFailedImports(ctx, `${server.base}/short.txt`, /the server closed the connection after 5 of 12 bytes/)
    })

    it('a connection reset mid-body is an error, and nothing is stored', async () => {
      const server = await rawHttpServer((socket) => {
        socket.write(`${HEADERS_12}hello`, () => setTimeout(() => socket.resetAndDestroy(), 100))
      })
      await expectFailedImports(ctx, `${server.base}/reset.txt`, /the connection was reset by 127\.0\.0\.1:\d+ after \d+ of 12 bytes/)
    })

    it('a server that answers the headers, then stalls, is an error after the idle timeout, and nothing is stored', async () => {
      const server = await rawHttpServer((socket) => socket.write(`${HEADERS_12}hello`))
      await expectFailedImports(ctx, `${server.base}/stall.txt`, /127\.0\.0\.1:\d+ sent nothing for 0\.3 s after 5 of 12 bytes/, QUICK_IDLE)
    })

    it('a server that accepts the connection and never answers is an error after the idle timeout (retries bounded)', async () => {
      const server = await rawHttpServer(() => {})
      await expectFailedImports(ctx, `${server.base}/silent.txt`, /no answer from 127\.0\.0\.1:\d+ within 0\.3 s/, QUICK_IDLE)
      // With retries: still bounded by the total retry time, and every attempt reported in the message.
      const { store } = await ctx.freshStore()
      const retried = await caught(() => store.importFile(`${server.base}/silent.txt`, { ...QUICK_IDLE, maxRetryTimeMs: 700 }))
      expect(retried.code).toBe('URL_TRANSFER')
      expect(retried.message).toMatch(/no answer from 127\.0\.0\.1:\d+ within 0\.3 s \(\d+ attempts in [\d.]+ s\)/)
      expect(server.connections()).toBeGreaterThanOrEqual(3)
      expect(await fileIDs(store)).toEqual([])
      // getSize (a HEAD) ends too.
      expect((await caught(() => AbstractJobStore.getSize(`${server.base}/silent.txt`, QUICK_IDLE))).code).toBe('URL_TRANSFER')
    })

    it('an https server that accepts TCP but never finishes the TLS handshake is an error after the connect timeout', async () => {
      const server = await rawHttpServer(() => {})
      const url = `${server.base.replace('http:', 'https:')}/tls.txt`
      await expectFailedImports(ctx, url, /connected to 127\.0\.0\.1:\d+, but the TLS handshake did not finish within 1 s/, QUICK_CONNECT)
    })

    it('a slow but steady server is not timed out while bytes keep coming', async () => {
      const { store } = await ctx.freshStore()
      const body = randomPayload(30 * 1000)
      const server = createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-length': String(body.length) })
        let sent = 0
        // 30 pieces, one every 50 ms: about 1.5 s in all, longer than the idle timeout, never idle for long.
        const timer = setInterval(() => {
          res.write(body.subarray(sent, sent + 1000))
          sent += 1000
          if (sent >= body.length) {
            clearInterval(timer)
            res.end()
          }
        }, 50)
        res.on('close', () => clearInterval(timer))
      })
      const port = await listen(server)
      const id = (await store.importFile(`http://127.0.0.1:${port}/slow.bin`, { maxRetryTimeMs: 0, idleTimeoutMs: 1000 })) as string
      expect(sha256(await collect(await store.readFileStream(id)))).toBe(sha256(body))
      await store.importFile(`http://127.0.0.1:${port}/slow.bin`, { maxRetryTimeMs: 0, idleTimeoutMs: 1000, sharedFileName: 'slow' })
      expect(sha256(await collect(await store.readSharedFileStream('slow')))).toBe(sha256(body))
    })
  })

  describe('hostile environment: exports write regular files only', () => {
    /** Destinations that are not regular files, each made fresh in `dir`. */
    async function oddDestinations(dir: string): Promise<{ name: string; path: string; kind: (s: Awaited<ReturnType<typeof lstat>>) => boolean }[]> {
      const fifo = join(dir, 'fifo')
      execFileSync('mkfifo', [fifo])
      const socketPath = join(dir, 'socket')
      await listen(createNetServer(), socketPath)
      const folder = join(dir, 'folder')
      await mkdir(folder)
      const destinations = [
        { name: 'a FIFO', path: fifo, kind: (s: Awaited<ReturnType<typeof lstat>>) => s.isFIFO() },
        { name: 'a socket', path: socketPath, kind: (s: Awaited<ReturnType<typeof lstat>>) => s.isSocket() },
        { name: 'a folder', path: folder, kind: (s: Awaited<ReturnType<typeof lstat>>) => s.isDirectory() },
      ]
      // A device node of our own (a copy of /dev/null: major 1, minor 3) where we may make one (root); else the
      // system's /dev/null, which a refused write cannot harm.
      let device = '/dev/null'
      if (process.getuid?.() === 0) {
        device = join(dir, 'null-device')
        execFileSync('mknod', [device, 'c', '1', '3'])
      }
      destinations.push({ name: 'a character device', path: device, kind: (s) => s.isCharacterDevice() })
      const link = join(dir, 'link-to-device')
      await symlink(device, link)
      destinations.push({ name: 'a symlink to a device', path: link, kind: (s) => s.isSymbolicLink() })
      return destinations
    }

    it('exportFile and readFile refuse a FIFO, a socket, a folder, a device and a symlink to one, writing nothing', async () => {
      const { store } = await ctx.freshStore()
      const id = await store.writeFileStream((w) => void w.end('exported bytes'), { basename: 'data.txt' })
      const dir = await tempDir()
      for (const destination of await oddDestinations(dir)) {
        const before = (await readdir(dir)).sort()
        const exported = await caught(() => store.exportFile(id, pathToFileURL(destination.path).href))
        expect(exported.code, `export to ${destination.name}: ${exported.message}`).toBe('INVALID_IMPORT_EXPORT_URL')
        expect(exported.message).toContain(destination.path)
        expect(exported.message).not.toContain('.partial')
        const read = await caught(() => store.readFile(id, destination.path))
        expect(read.code, `readFile to ${destination.name}: ${read.message}`).toBe('INVALID_ARGUMENT')
        expect(read.message).toContain(destination.path)
        expect(read.message).not.toContain('.partial')
        expect(destination.kind(await lstat(destination.path)), destination.name).toBe(true)
        expect((await readdir(dir)).sort(), destination.name).toEqual(before)
      }
      expect(await readdir(join(dir, 'folder'))).toEqual([])
      // A regular file, or nothing, is written as before.
      await writeFile(join(dir, 'regular.txt'), 'old')
      await store.exportFile(id, pathToFileURL(join(dir, 'regular.txt')).href)
      await store.readFile(id, join(dir, 'fresh.txt'))
      expect(await readFile(join(dir, 'regular.txt'), 'utf8')).toBe('exported bytes')
      expect(await readFile(join(dir, 'fresh.txt'), 'utf8')).toBe('exported bytes')
    })

    it('file:./x and file:x in import and export URLs count from the working folder, as file:./x locators do', async () => {
      const { store } = await ctx.freshStore()
      // A folder inside the working folder (the test cannot chdir: it shares the process), so that the relative
      // path does not climb to / (from where ../../tmp/x would name the same file by chance).
      const dir = await mkdtemp(join(process.cwd(), '.jobstore-hostile-'))
      onTestFinished(() => rm(dir, { recursive: true, force: true }))
      await writeFile(join(dir, 'in.txt'), 'relative import')
      const rel = relative(process.cwd(), dir)
      expect(isAbsolute(rel) || rel.startsWith('..')).toBe(false)
      const id = (await store.importFile(`file:./${rel}/in.txt`)) as string
      expect(id).toMatch(/-in\.txt$/)
      expect((await collect(await store.readFileStream(id))).toString()).toBe('relative import')
      expect(await AbstractJobStore.getSize(`file:${rel}/in.txt`)).toBe('relative import'.length)
      await store.exportFile(id, `file:./${rel}/out.txt`)
      await store.exportFile(id, `file:${rel}/out2.txt`)
      expect(await readFile(join(dir, 'out.txt'), 'utf8')).toBe('relative import')
      expect(await readFile(join(dir, 'out2.txt'), 'utf8')).toBe('relative import')
      // Absolute forms are unchanged.
      await store.exportFile(id, pathToFileURL(join(dir, 'out3.txt')).href)
      await store.exportFile(id, `file:${join(dir, 'out4.txt')}`)
      expect(await readFile(join(dir, 'out3.txt'), 'utf8')).toBe('relative import')
      expect(await readFile(join(dir, 'out4.txt'), 'utf8')).toBe('relative import')
    })
  })

  describe('hostile environment: encryption keys are checked', () => {
    it('initialize refuses a missing, short, folder or FIFO key file before creating anything', async () => {
      const dir = await tempDir()
      await writeFile(join(dir, 'short.key'), 'abc')
      execFileSync('mkfifo', [join(dir, 'fifo.key')])
      for (const [what, path] of [
        ['a missing key file', join(dir, 'missing.key')],
        ['a 3-byte key file', join(dir, 'short.key')],
        ['a folder', dir],
        ['a FIFO', join(dir, 'fifo.key')],
      ] as const) {
        const locator = await ctx.harness.newLocator()
        const store = await openJobStore(locator)
        const error = await caught(() => store.initialize({ encryptionKeyPath: path }))
        expect(error.code, `${what}: ${error.message}`).toBe('ENCRYPTION')
        expect(error.message).toContain(path)
        // Nothing was created: there is no store to resume, and a good key initializes it afterwards.
        expect((await caught(() => (async () => (await openJobStore(locator)).resume())())).code).toBe('NO_SUCH_JOB_STORE')
      }
    })

    it('initialize stores the key path absolute; writeConfig checks a changed path before writing', async () => {
      const dir = await tempDir()
      const keyPath = join(dir, 'good.key')
      await writeFile(keyPath, randomPayload(32))
      const rel = relative(process.cwd(), keyPath)
      const { store, locator } = await ctx.freshStore({ encryptionKeyPath: rel })
      expect(store.config.encryptionKeyPath).toBe(keyPath)
      const other = await ctx.reopen(locator)
      expect(other.config.encryptionKeyPath).toBe(keyPath)
      await other.writeSharedFileStream('secret', (w) => void w.end('s3cret'), { isProtected: true })

      // A changed path is checked before anything is written: the stored config keeps the good one.
      await writeFile(join(dir, 'short.key'), 'abc')
      for (const bad of [join(dir, 'missing.key'), join(dir, 'short.key')]) {
        other.config.encryptionKeyPath = bad
        expect((await caught(() => other.writeConfig())).code).toBe('ENCRYPTION')
        expect((await ctx.reopen(locator)).config.encryptionKeyPath).toBe(keyPath)
      }
      // A relative one is stored absolute.
      const second = join(dir, 'second.key')
      await writeFile(second, await readFile(keyPath))
      other.config.encryptionKeyPath = relative(process.cwd(), second)
      await other.writeConfig()
      expect(other.config.encryptionKeyPath).toBe(second)
      const third = await ctx.reopen(locator)
      expect(third.config.encryptionKeyPath).toBe(second)
      expect((await collect(await third.readSharedFileStream('secret'))).toString()).toBe('s3cret')
      // A path that did not change is not checked again (a worker without the key may still write the config).
      await rm(second)
      third.config.retryCount = 3
      await third.writeConfig()
      expect((await ctx.reopen(locator)).config.retryCount).toBe(3)
    })
  })
}
