import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { describe, expect, it, onTestFinished } from 'vitest'
import { AbstractJobStore } from './abstract-job-store.js'
import { InvalidImportExportUrlError } from './errors.js'
import {
  fileUrlHandler,
  httpUrlHandler,
  registerLazyUrlClaim,
  registerLazyUrlHandler,
  registerUrlHandler,
  resolveUrlHandler,
  type UrlHandler,
} from './url-handlers.js'

function fakeHandler(schemes: string[], claims?: (url: URL) => boolean, check?: UrlHandler['check']): UrlHandler {
  return {
    schemes,
    ...(claims !== undefined ? { claims } : {}),
    ...(check !== undefined ? { check } : {}),
    getSize: async () => 1,
    openRead: async () => ({ body: Readable.from([Buffer.from('x')]), size: 1, executable: false }),
  }
}

describe('URL handler registry', () => {
  it('file: and http(s): are built in; unknown schemes and non-URLs are InvalidImportExportUrlError', async () => {
    expect((await resolveUrlHandler('file:///tmp/x')).handler).toBe(fileUrlHandler)
    expect((await resolveUrlHandler('https://example.com/x')).handler).toBe(httpUrlHandler)
    expect((await resolveUrlHandler('HTTP://example.com/x')).handler).toBe(httpUrlHandler)
    await expect(resolveUrlHandler('nope://x/y')).rejects.toBeInstanceOf(InvalidImportExportUrlError)
    await expect(resolveUrlHandler('not a url')).rejects.toBeInstanceOf(InvalidImportExportUrlError)
  })

  it('a handler claims URLs of another scheme by host, ahead of that scheme; the rest stay with it', async () => {
    const blobs = fakeHandler(['blobby'], (url) => url.protocol === 'https:' && url.hostname.endsWith('.blobby.test'))
    registerUrlHandler(blobs)
    expect((await resolveUrlHandler('blobby://a/b')).handler).toBe(blobs)
    expect((await resolveUrlHandler('https://acct.blobby.test/c/b')).handler).toBe(blobs)
    expect((await resolveUrlHandler('https://example.com/c/b')).handler).toBe(httpUrlHandler)
    // Registered again (a second module instance): one claimant, the newest.
    const again = fakeHandler(['blobby'], (url) => url.hostname.endsWith('.blobby.test'))
    registerUrlHandler(again)
    expect((await resolveUrlHandler('https://acct.blobby.test/c/b')).handler).toBe(again)
  })

  it('lazy claims load their module on first match; a module that fails to load leaves the URL to its scheme', async () => {
    let loads = 0
    const lazy = fakeHandler(['lazyblob'], (url) => url.hostname === 'lazy.test')
    registerLazyUrlClaim(
      (url) => url.hostname === 'lazy.test',
      async () => {
        loads++
        registerUrlHandler(lazy)
      },
    )
    const [first, second] = await Promise.all([resolveUrlHandler('https://lazy.test/a'), resolveUrlHandler('https://lazy.test/b')])
    expect(first.handler).toBe(lazy)
    expect(second.handler).toBe(lazy)
    expect(loads).toBe(1)
    expect((await resolveUrlHandler('https://other.test/a')).handler).toBe(httpUrlHandler)

    registerLazyUrlClaim(
      (url) => url.hostname === 'broken.test',
      async () => {
        throw new Error('SDK not installed')
      },
    )
    expect((await resolveUrlHandler('https://broken.test/a')).handler).toBe(httpUrlHandler)
  })

  it('lazy schemes load their module; a failing load is InvalidImportExportUrlError', async () => {
    registerLazyUrlHandler('lazyscheme', async () => registerUrlHandler(fakeHandler(['lazyscheme'])))
    expect((await resolveUrlHandler('lazyscheme://x/y')).handler.schemes).toEqual(['lazyscheme'])
    registerLazyUrlHandler('brokenscheme', async () => {
      throw new Error('no SDK')
    })
    await expect(resolveUrlHandler('brokenscheme://x/y')).rejects.toBeInstanceOf(InvalidImportExportUrlError)
  })

  it('check() sees the URL as given, before parsing resolves its dot segments', async () => {
    const seen: string[] = []
    registerUrlHandler(
      fakeHandler(['checked'], undefined, (url, given) => {
        seen.push(`${url.pathname} ${given}`)
        if (given.includes('/../')) throw new InvalidImportExportUrlError(url.href, 'dot segment')
      }),
    )
    await resolveUrlHandler('checked://b/k')
    await expect(resolveUrlHandler('checked://b/a/../k')).rejects.toBeInstanceOf(InvalidImportExportUrlError)
    expect(seen).toEqual(['/k checked://b/k', '/k checked://b/a/../k'])
  })
})

/** A loopback HTTP server for one test. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function drain(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of body) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

describe('http(s) handler', () => {
  it('a reader that holds the body back is not timed out: only waiting for the server counts as idle', async () => {
    const body = Buffer.alloc(8 * 1024 * 1024, 7)
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) })
      res.end(body)
    })
    const source = await httpUrlHandler.openRead(new URL(`${base}/big`), { idleTimeoutMs: 200, maxRetryTimeMs: 0 })
    expect(source.size).toBe(body.length)
    const parts = source.body[Symbol.asyncIterator]()
    const first = (await parts.next()).value as Buffer
    // Then hold the body back for five idle timeouts: the server has sent what fits in the buffers and waits for us.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const rest: Buffer[] = [first]
    for (let part = await parts.next(); part.done !== true; part = await parts.next()) rest.push(part.value as Buffer)
    expect(Buffer.concat(rest).equals(body)).toBe(true)
  })

  it('follows redirects to http(s) URLs and refuses one to another scheme', async () => {
    const base = await serve((req, res) => {
      if (req.url === '/old') res.writeHead(301, { location: '/new' }).end()
      else if (req.url === '/to-file') res.writeHead(302, { location: 'file:///etc/passwd' }).end()
      else res.end('moved here')
    })
    expect((await drain((await httpUrlHandler.openRead(new URL(`${base}/old`))).body)).toString()).toBe('moved here')
    await expect(httpUrlHandler.openRead(new URL(`${base}/to-file`))).rejects.toBeInstanceOf(InvalidImportExportUrlError)
  })

  it('refuses timeouts that are not positive numbers (no retry time: 0 is fine) before any I/O', async () => {
    for (const options of [{ idleTimeoutMs: 0 }, { connectTimeoutMs: -1 }, { idleTimeoutMs: Number.NaN }, { maxRetryTimeMs: -5 }]) {
      await expect(AbstractJobStore.getSize('http://127.0.0.1:9/x', options)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
  })
})
