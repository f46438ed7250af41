/**
 * Import and export by URL: one registry, one small handler per scheme. The core brings `file:` and `http(s):`;
 * a backend module brings the handler for its own scheme (`backend.urlHandler`), and `resolveUrlHandler` loads the
 * module of a known cloud scheme on demand.
 *
 * A handler serves every URL of its `schemes`. It may also claim URLs of another scheme by host with `claims`
 * (`https://<account>.blob.core.windows.net/…` belongs to the Azure handler): claims are asked first, so every
 * other `https:` URL still goes to the plain http(s) handler. Lazy claims (`registerLazyUrlClaim`) load a backend
 * module the first time one of its URLs is seen.
 */
import { constants as fsConstants, createWriteStream } from 'node:fs'
import { open, rename, rm, stat, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { debuglog } from 'node:util'
import { randomId } from './ids.js'
import { sleep } from './concurrency.js'
import {
  InvalidImportExportUrlError,
  JobStoreError,
  NoSuchFileError,
  UnsupportedOperationError,
  redactUrl,
} from './errors.js'

const log = debuglog('jobstore')

/** An opened source of an import. */
export interface UrlSource {
  readonly body: Readable
  /** Size in bytes when the source knows it. */
  readonly size?: number
  /** Whether the source is an executable local file. */
  readonly executable: boolean
}

/** Options of handler calls. */
export interface UrlIoOptions {
  readonly signal?: AbortSignal
}

/** Reads (and optionally writes) the URLs of some schemes. */
export interface UrlHandler {
  /** Schemes handled, without the colon: `file`, `https`, `s3`… */
  readonly schemes: readonly string[]
  /**
   * URLs of other schemes this handler takes over, decided without I/O (by host, typically): asked before the
   * scheme's own handler. Absent: only `schemes`.
   */
  claims?(url: URL): boolean
  /**
   * Checks a URL of this handler without I/O, throwing {@link InvalidImportExportUrlError} when it is malformed.
   * `given` is the URL as the caller wrote it: WHATWG parsing silently resolves `.`/`..` segments, which an
   * object key must not have.
   */
  check?(url: URL, given: string): void
  /** Size in bytes of the object at `url`, or undefined when it cannot be told. */
  getSize(url: URL, options?: UrlIoOptions): Promise<number | undefined>
  /** Opens `url` for reading. Rejects with `NoSuchFileError` when it does not exist, before any byte flows. */
  openRead(url: URL, options?: UrlIoOptions): Promise<UrlSource>
  /** Writes `body` to `url` atomically (nothing partial visible on failure). Absent for read-only schemes. */
  write?(url: URL, body: Readable, options: UrlIoOptions & { executable: boolean; size?: number }): Promise<void>
}

const handlers = new Map<string, UrlHandler>()
/** Handlers with `claims`, in registration order; a handler registered again replaces its earlier self. */
const claimants: UrlHandler[] = []
const lazyHandlers = new Map<string, () => Promise<unknown>>()
const lazyClaims: { matches: (url: URL) => boolean; load: () => Promise<unknown>; loading?: Promise<void> | undefined }[] = []

/** Registers a handler for its schemes, and for the URLs it claims (replacing any earlier one). */
export function registerUrlHandler(handler: UrlHandler): void {
  for (const scheme of handler.schemes) handlers.set(scheme.toLowerCase(), handler)
  if (handler.claims !== undefined && !claimants.includes(handler)) {
    const schemes = new Set(handler.schemes.map((scheme) => scheme.toLowerCase()))
    // The same backend registered again (a second module instance): its old claimant goes.
    const replaced = claimants.findIndex((other) => other.schemes.some((scheme) => schemes.has(scheme.toLowerCase())))
    if (replaced >= 0) claimants.splice(replaced, 1)
    claimants.push(handler)
  }
}

/** Registers a module to import the first time a URL of `scheme` is used; importing it registers the handler. */
export function registerLazyUrlHandler(scheme: string, load: () => Promise<unknown>): void {
  lazyHandlers.set(scheme.toLowerCase(), load)
}

/**
 * Registers a module to import the first time a URL that `matches` (a cheap test, no I/O) is used: its handler
 * then decides with its own `claims`. If the module cannot be loaded (its SDK is not installed), the URL goes to
 * its scheme's handler (a public `https:` blob can still be fetched).
 */
export function registerLazyUrlClaim(matches: (url: URL) => boolean, load: () => Promise<unknown>): void {
  lazyClaims.push({ matches, load })
}

/** Parses `url` and finds its handler, or throws {@link InvalidImportExportUrlError}. */
export async function resolveUrlHandler(url: string | URL): Promise<{ handler: UrlHandler; url: URL }> {
  let parsed: URL
  try {
    parsed = typeof url === 'string' ? new URL(url) : url
  } catch (err) {
    throw new InvalidImportExportUrlError(String(url), 'not a URL', { cause: err })
  }
  const handler = (await claimantOf(parsed)) ?? (await schemeHandler(parsed))
  handler.check?.(parsed, typeof url === 'string' ? url : url.href)
  return { handler, url: parsed }
}

async function claimantOf(url: URL): Promise<UrlHandler | undefined> {
  for (const lazy of lazyClaims) {
    if (!lazy.matches(url)) continue
    lazy.loading ??= lazy.load().then(
      () => undefined,
      (err: unknown) => {
        lazy.loading = undefined
        log('cannot load the handler for %s: %s', redactUrl(url.href), (err as Error)?.message)
      },
    )
    await lazy.loading
  }
  return claimants.find((handler) => handler.claims?.(url) === true)
}

async function schemeHandler(url: URL): Promise<UrlHandler> {
  const scheme = url.protocol.replace(/:$/, '').toLowerCase()
  let handler = handlers.get(scheme)
  const load = lazyHandlers.get(scheme)
  if (handler === undefined && load !== undefined) {
    try {
      await load()
    } catch (err) {
      throw new InvalidImportExportUrlError(url.href, `the handler for ${scheme}: could not be loaded`, { cause: err })
    }
    handler = handlers.get(scheme)
  }
  if (handler === undefined) throw new InvalidImportExportUrlError(url.href, `no handler for scheme ${scheme}:`)
  return handler
}

function localPath(url: URL): string {
  try {
    return fileURLToPath(url)
  } catch (err) {
    throw new InvalidImportExportUrlError(url.href, 'not a local file URL', { cause: err })
  }
}

/** `file:` URLs: local files, executable bits kept, atomic writes by rename. */
export const fileUrlHandler: UrlHandler = {
  schemes: ['file'],
  async getSize(url) {
    try {
      return (await stat(localPath(url))).size
    } catch {
      return undefined
    }
  },
  async openRead(url) {
    const path = localPath(url)
    const handle = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new NoSuchFileError(url.href, { cause: err, message: `no file at ${url.href}` })
      throw new JobStoreError(`cannot open ${url.href}`, { cause: err })
    })
    const info = await handle.stat()
    if (!info.isFile()) {
      await handle.close()
      throw new InvalidImportExportUrlError(url.href, 'not a regular file')
    }
    return {
      body: handle.createReadStream({ highWaterMark: 256 * 1024 }),
      size: info.size,
      executable: (info.mode & fsConstants.S_IXUSR) !== 0,
    }
  },
  async write(url, body, options) {
    await writeLocalFileAtomically(localPath(url), body, options)
  },
}

/**
 * Writes `body` to `path` through a temporary file in the same folder and a rename, so the file appears whole or
 * not at all. Mode 0777 or 0666 before the umask, by `executable`.
 */
export async function writeLocalFileAtomically(
  path: string,
  body: Readable,
  options: { executable: boolean; signal?: AbortSignal },
): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomId()}.partial`)
  try {
    const out = createWriteStream(temp, { flags: 'wx', mode: options.executable ? 0o777 : 0o666 })
    await pipeline(body, out, options.signal ? { signal: options.signal } : {})
    if (options.executable) {
      // The umask may have removed the owner's execute bit: an executable must stay one for its owner.
      const mode = (await stat(temp)).mode
      if ((mode & fsConstants.S_IXUSR) === 0) await chmod(temp, mode | fsConstants.S_IXUSR)
    }
    await rename(temp, path)
  } catch (err) {
    await rm(temp, { force: true })
    throw err
  }
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504])

/** Fetches with bounded, jittered retries on 408, 429 and 5xx and on network errors. */
async function fetchWithRetry(url: URL, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
  const attempts = 5
  for (let attempt = 1; ; attempt++) {
    let response: Response | undefined
    let failure: unknown
    try {
      response = await fetch(url, signal ? { ...init, signal } : init)
    } catch (err) {
      if (signal?.aborted) throw err
      failure = err
    }
    if (response !== undefined && !RETRYABLE_STATUS.has(response.status)) return response
    if (attempt >= attempts) {
      if (response !== undefined) return response
      throw new JobStoreError(`cannot fetch ${redactUrl(url.href)}`, { cause: failure })
    }
    await response?.body?.cancel()
    const retryAfter = Number(response?.headers.get('retry-after'))
    const backoff = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 100 * 2 ** attempt
    await sleep(Math.min(backoff, 5000) * (0.5 + Math.random() / 2), signal)
  }
}

/** `http:` and `https:` URLs: import and size only. */
export const httpUrlHandler: UrlHandler = {
  schemes: ['http', 'https'],
  async getSize(url, options) {
    const response = await fetchWithRetry(url, { method: 'HEAD' }, options?.signal)
    const length = response.headers.get('content-length')
    return response.ok && length !== null ? Number(length) : undefined
  },
  async openRead(url, options) {
    const response = await fetchWithRetry(url, { method: 'GET' }, options?.signal)
    if (response.status === 404 || response.status === 410) {
      await response.body?.cancel()
      throw new NoSuchFileError(redactUrl(url.href), { message: `no file at ${redactUrl(url.href)} (HTTP ${response.status})` })
    }
    if (!response.ok || response.body === null) {
      await response.body?.cancel()
      throw new JobStoreError(`cannot import ${redactUrl(url.href)}: HTTP ${response.status}`)
    }
    const length = response.headers.get('content-length')
    // Content-Encoding would make the byte count differ from Content-Length; only trust it for identity bodies.
    const encoded = (response.headers.get('content-encoding') ?? 'identity') !== 'identity'
    return {
      body: Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
      ...(length !== null && !encoded ? { size: Number(length) } : {}),
      executable: false,
    }
  },
}

registerUrlHandler(fileUrlHandler)
registerUrlHandler(httpUrlHandler)

/** Throws if a handler cannot write (http is import-only). */
export function requireWritable(handler: UrlHandler, url: URL): Required<Pick<UrlHandler, 'write'>> {
  if (handler.write === undefined) {
    throw new InvalidImportExportUrlError(url.href, `${url.protocol} URLs can be imported from, not exported to`)
  }
  return handler as Required<Pick<UrlHandler, 'write'>>
}

export { UnsupportedOperationError }
