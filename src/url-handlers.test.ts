import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
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
