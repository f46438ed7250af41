/**
 * Import and export by URL: one registry, one small handler per scheme. The core brings `file:` and
 * `http(s):`; a backend module registers the handler for its own scheme when it loads, and `openUrlHandler` loads
 * the module of a known cloud scheme on demand.
 */
import { constants as fsConstants, createReadStream, createWriteStream } from 'node:fs'
import { open, rename, rm, stat, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { randomId } from './ids.js'
import { sleep } from './concurrency.js'
import {
  InvalidImportExportUrlError,
  JobStoreError,
  NoSuchFileError,
  UnsupportedOperationError,
  redactUrl,
} from './errors.js'

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
  /** Size in bytes of the object at `url`, or undefined when it cannot be told. */
  getSize(url: URL, options?: UrlIoOptions): Promise<number | undefined>
  /** Opens `url` for reading. Rejects with `NoSuchFileError` when it does not exist, before any byte flows. */
  openRead(url: URL, options?: UrlIoOptions): Promise<UrlSource>
  /** Writes `body` to `url` atomically (nothing partial visible on failure). Absent for read-only schemes. */
  write?(url: URL, body: Readable, options: UrlIoOptions & { executable: boolean; size?: number }): Promise<void>
}

const handlers = new Map<string, UrlHandler>()
const lazyHandlers = new Map<string, () => Promise<unknown>>()

/** Registers a handler for its schemes (replacing any earlier one). */
export function registerUrlHandler(handler: UrlHandler): void {
  for (const scheme of handler.schemes) handlers.set(scheme.toLowerCase(), handler)
}

/** Registers a module to import the first time a URL of `scheme` is used; importing it registers the handler. */
export function registerLazyUrlHandler(scheme: string, load: () => Promise<unknown>): void {
  lazyHandlers.set(scheme.toLowerCase(), load)
}

/** Parses `url` and finds its handler, or throws {@link InvalidImportExportUrlError}. */
export async function resolveUrlHandler(url: string | URL): Promise<{ handler: UrlHandler; url: URL }> {
  let parsed: URL
  try {
    parsed = typeof url === 'string' ? new URL(url) : url
  } catch (err) {
    throw new InvalidImportExportUrlError(String(url), 'not a URL', { cause: err })
  }
  const scheme = parsed.protocol.replace(/:$/, '').toLowerCase()
  let handler = handlers.get(scheme)
  const load = lazyHandlers.get(scheme)
  if (handler === undefined && load !== undefined) {
    try {
      await load()
    } catch (err) {
      throw new InvalidImportExportUrlError(parsed.href, `the handler for ${scheme}: could not be loaded`, { cause: err })
    }
    handler = handlers.get(scheme)
  }
  if (handler === undefined) throw new InvalidImportExportUrlError(parsed.href, `no handler for scheme ${scheme}:`)
  return { handler, url: parsed }
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
