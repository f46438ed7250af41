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
import { constants as fsConstants } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { open, rename, rm, stat, chmod } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { debuglog } from 'node:util'
import { randomId } from './ids.js'
import { sleep } from './concurrency.js'
import {
  AbortedError,
  InvalidArgumentError,
  InvalidImportExportUrlError,
  JobStoreError,
  NoSuchFileError,
  UnsupportedOperationError,
  UrlTransferError,
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

/**
 * Timeouts of transfers over the network. The built-in http(s) handler honours them; other handlers may (the
 * bucket backends' SDKs keep their own).
 */
export interface UrlTimeoutOptions {
  /** Milliseconds to get a connection: TCP, and the TLS handshake for https. Default 30 000. */
  readonly connectTimeoutMs?: number
  /**
   * Milliseconds without a byte from the server while one is awaited (the answer, then more of the body) before the
   * transfer fails. A slow but steady server never hits it; time the reader holds the body back does not count.
   * Default 60 000.
   */
  readonly idleTimeoutMs?: number
  /**
   * Milliseconds after the first attempt past which no new attempt begins (at most 5 attempts in all), so that a
   * transfer that keeps failing ends within about this plus one attempt's timeouts. 0: no retries. Default 120 000.
   */
  readonly maxRetryTimeMs?: number
}

/** Options of handler calls. */
export interface UrlIoOptions extends UrlTimeoutOptions {
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
    parsed = typeof url === 'string' ? (relativeFileUrl(url) ?? new URL(url)) : url
  } catch (err) {
    if (err instanceof InvalidImportExportUrlError) throw err
    throw new InvalidImportExportUrlError(String(url), 'not a URL', { cause: err })
  }
  const handler = (await claimantOf(parsed)) ?? (await schemeHandler(parsed))
  handler.check?.(parsed, typeof url === 'string' ? url : url.href)
  return { handler, url: parsed }
}

/**
 * `file:./x`, `file:../x` and `file:x` (no `/` after the colon): a path relative to the working folder, taken
 * literally, as in a `file:` locator (`parseFileLocator`). WHATWG URL parsing would count it from `/`.
 */
function relativeFileUrl(given: string): URL | undefined {
  const match = /^file:(?!\/)(.+)$/is.exec(given)
  if (match === null) return undefined
  const path = match[1] as string
  if (path.includes('\0')) throw new InvalidImportExportUrlError(given, 'a NUL character in the path')
  return pathToFileURL(resolve(process.cwd(), path))
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
    const path = localPath(url)
    const refuse = async (): Promise<void> => {
      const problem = await localDestinationProblem(path)
      if (problem !== undefined) throw new InvalidImportExportUrlError(url.href, `${problem}; exports write regular files only`)
    }
    await refuse()
    await writeLocalFileAtomically(path, body, { ...options, beforeRename: refuse })
  },
}

/**
 * Why `path` cannot take a written file, or undefined when it is a regular file or absent. Writing over a folder,
 * a device, a FIFO or a socket (or a symlink to one) would replace it with a regular file (as root: `/dev/full`), or
 * fail with the name of an internal temporary file; so such a destination is refused before anything is written.
 * Errors of `stat` other than "absent" are left to the write, which reports them.
 */
export async function localDestinationProblem(path: string): Promise<string | undefined> {
  let info
  try {
    info = await stat(path)
  } catch {
    return undefined
  }
  if (info.isFile()) return undefined
  if (info.isDirectory()) return 'it is a folder: name the file to write, not the folder to put it in'
  const kind = info.isFIFO()
    ? 'a FIFO (named pipe)'
    : info.isCharacterDevice()
      ? 'a character device'
      : info.isBlockDevice()
        ? 'a block device'
        : info.isSocket()
          ? 'a socket'
          : 'not a regular file'
  return `it is ${kind}, not a regular file`
}

/**
 * Writes `body` to `path` through a temporary file in the same folder and a rename, so the file appears whole or
 * not at all. Mode 0777 or 0666 before the umask, by `executable`.
 */
export async function writeLocalFileAtomically(
  path: string,
  body: Readable,
  options: { executable: boolean; signal?: AbortSignal; beforeRename?: () => Promise<void> },
): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomId()}.partial`)
  try {
    // Opened before the copy starts: a write stream that opens its file itself may create it after a body that
    // failed at once was cleaned up below, leaving the temporary file behind (seen under load in the suite).
    const handle = await open(temp, 'wx', options.executable ? 0o777 : 0o666)
    await pipeline(body, handle.createWriteStream(), options.signal ? { signal: options.signal } : {})
    if (options.executable) {
      // The umask may have removed the owner's execute bit: an executable must stay one for its owner.
      const mode = (await stat(temp)).mode
      if ((mode & fsConstants.S_IXUSR) === 0) await chmod(temp, mode | fsConstants.S_IXUSR)
    }
    await options.beforeRename?.()
    await rename(temp, path)
  } catch (err) {
    await rm(temp, { force: true })
    throw err
  }
}

/**
 * Defaults of {@link UrlTimeoutOptions}: a connection within 30 s, a byte at least every 60 s while one is
 * awaited, and no new attempt 2 minutes after the first one began.
 */
export const DEFAULT_URL_TIMEOUTS: Readonly<Required<UrlTimeoutOptions>> = {
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxRetryTimeMs: 120_000,
}

/** Checks timeout options (before any I/O) and fills in the defaults. */
export function urlTimeouts(options: UrlTimeoutOptions | undefined): Required<UrlTimeoutOptions> {
  const out = { ...DEFAULT_URL_TIMEOUTS }
  for (const name of ['connectTimeoutMs', 'idleTimeoutMs', 'maxRetryTimeMs'] as const) {
    const value = options?.[name]
    if (value === undefined) continue
    // A zero connect or idle timeout would fail every transfer; zero retry time means "no retries".
    const ok = typeof value === 'number' && Number.isFinite(value) && (name === 'maxRetryTimeMs' ? value >= 0 : value > 0)
    if (!ok) throw new InvalidArgumentError(`${name} must be a ${name === 'maxRetryTimeMs' ? 'non-negative' : 'positive'} number of milliseconds, got ${String(value)}`)
    out[name] = value
  }
  return out
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504])
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308])
const MAX_ATTEMPTS = 5
const MAX_REDIRECTS = 10
/** Errors no retry can mend: a certificate the client does not trust, a host name that does not resolve. */
const PERMANENT_NETWORK_ERRORS = /^(ENOTFOUND|ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|ERR_INVALID_)/

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`
}

function hostPort(url: URL): string {
  return `${url.hostname}:${url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80'}`
}

function errnoOf(err: unknown): string {
  return String((err as NodeJS.ErrnoException | undefined)?.code ?? '')
}

/** A network error before the answer, in words; the error itself is the cause. */
function networkFailure(err: unknown, shown: string, where: string): UrlTransferError {
  const code = errnoOf(err)
  const message = (err as Error | undefined)?.message ?? String(err)
  if (code === 'ECONNREFUSED') return new UrlTransferError(shown, 'network', `${where} refused the connection`, { cause: err })
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new UrlTransferError(shown, 'network', `the host name ${where.replace(/:\d+$/, '')} does not resolve (${code})`, { cause: err })
  }
  if (code === 'ECONNRESET' && /hang up/.test(message)) {
    return new UrlTransferError(shown, 'closed-early', `${where} closed the connection without answering`, { cause: err })
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new UrlTransferError(shown, 'reset', `the connection was reset by ${where} before an answer`, { cause: err })
  }
  if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH') {
    return new UrlTransferError(shown, 'network', `${where} cannot be reached (${code})`, { cause: err })
  }
  return new UrlTransferError(shown, 'network', `talking to ${where}: ${message}${code !== '' && !message.includes(code) ? ` (${code})` : ''}`, { cause: err })
}

/** An answer whose headers are in; its body (GET) is a stream that errors if it ends early or stalls. */
interface HttpAnswer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Readable
  /** The URL that answered (after redirects). */
  readonly url: URL
}

interface HttpRequestContext {
  readonly timeouts: Required<UrlTimeoutOptions>
  readonly signal: AbortSignal | undefined
  /** The URL as shown in messages (the one asked for, redacted by the error). */
  readonly shown: string
}

/**
 * One request, no retries, no redirects. Resolves once the answer's headers are in; rejects with a
 * {@link UrlTransferError} (or `AbortedError`). Timers: the connect timeout from the start until the connection is
 * up (TCP, and TLS for https), then the idle timeout until the headers come, then the body's own idle timer.
 */
function requestOnce(url: URL, method: 'GET' | 'HEAD', context: HttpRequestContext): Promise<HttpAnswer> {
  const { timeouts, signal, shown } = context
  const secure = url.protocol === 'https:'
  const where = hostPort(url)
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined
    let failure: Error | undefined
    let tcpConnected = false
    let answered = false
    // agent: false, one connection per request: a pooled socket the server closed meanwhile would fail the next
    // request for no fault of the server's. No Accept-Encoding: the bytes are stored as the server sends them.
    const req = (secure ? httpsRequest : httpRequest)(url, {
      method,
      agent: false,
      headers: { 'user-agent': 'jobstore', accept: '*/*' },
    })
    const fail = (err: Error): void => {
      failure ??= err
      clearTimeout(timer)
      req.destroy(failure)
    }
    const arm = (ms: number, make: () => Error): void => {
      clearTimeout(timer)
      timer = setTimeout(() => fail(make()), ms)
      timer.unref?.()
    }
    const onAbort = (): void => fail(new AbortedError({ cause: signal?.reason }))
    if (signal?.aborted) return reject(new AbortedError({ cause: signal.reason }))
    signal?.addEventListener('abort', onAbort, { once: true })
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    const awaitAnswer = (): void =>
      arm(timeouts.idleTimeoutMs, () => new UrlTransferError(shown, 'idle-timeout', `no answer from ${where} within ${seconds(timeouts.idleTimeoutMs)}`))
    arm(timeouts.connectTimeoutMs, () =>
      tcpConnected
        ? new UrlTransferError(shown, 'connect-timeout', `connected to ${where}, but the TLS handshake did not finish within ${seconds(timeouts.connectTimeoutMs)}`)
        : new UrlTransferError(shown, 'connect-timeout', `could not connect to ${where} within ${seconds(timeouts.connectTimeoutMs)}`),
    )
    req.once('socket', (socket) => {
      socket.once('connect', () => {
        tcpConnected = true
        if (!secure) awaitAnswer()
      })
      if (secure) socket.once('secureConnect', awaitAnswer)
    })
    req.on('error', (err) => {
      done()
      // After the answer, errors are the body's business (it sees them on the response and the socket).
      if (!answered) reject(failure ?? networkFailure(err, shown, where))
    })
    req.once('response', (response) => {
      answered = true
      done()
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        body: method === 'HEAD' ? (response.resume(), Readable.from([])) : bodyOf(response, { shown, where, signal, idleTimeoutMs: timeouts.idleTimeoutMs }),
        url,
      })
    })
    req.end()
  })
}

/**
 * The body of `response` as a stream that ends only when the body is complete: a body the server cuts short (before
 * its Content-Length, before the last chunk), a reset, or no byte for the idle timeout while one is awaited, errors
 * it with a {@link UrlTransferError} that says so. Time the reader holds the body back does not count as idle.
 */
function bodyOf(
  response: IncomingMessage,
  context: { shown: string; where: string; signal: AbortSignal | undefined; idleTimeoutMs: number },
): Readable {
  const { shown, where, signal, idleTimeoutMs } = context
  const lengthHeader = response.headers['content-length']
  const chunked = /chunked/i.test(String(response.headers['transfer-encoding'] ?? ''))
  const expected = !chunked && lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined
  const socket = response.socket
  let received = 0
  let timer: NodeJS.Timeout | undefined
  let socketError: Error | undefined
  let finished = false
  /** Paused because the reader holds back (not because the server is slow). */
  let held = false

  // Bytes held back in the response's buffer came from the server too.
  const got = (): number => received + response.readableLength
  const ofBytes = (): string => (expected !== undefined ? `${got()} of ${expected} bytes` : `${got()} bytes`)
  const broken = (cause: unknown): UrlTransferError => {
    const sizes = { receivedBytes: got(), expectedBytes: expected, cause }
    const code = errnoOf(socketError)
    if (code === 'ECONNRESET' || code === 'EPIPE') {
      return new UrlTransferError(shown, 'reset', `the connection was reset by ${where} after ${ofBytes()}`, { ...sizes, cause: socketError })
    }
    if (socketError !== undefined) {
      return new UrlTransferError(shown, 'network', `the connection to ${where} failed after ${ofBytes()}: ${socketError.message}`, { ...sizes, cause: socketError })
    }
    const before = chunked ? ', before the end of the chunked body' : ''
    return new UrlTransferError(shown, 'closed-early', `the server closed the connection after ${ofBytes()}${before}`, sizes)
  }
  const fail = (err: Error): void => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
    out.destroy(signal?.aborted ? new AbortedError({ cause: signal.reason }) : err)
  }
  const onAbort = (): void => fail(new AbortedError({ cause: signal?.reason }))
  const awaitBytes = (): void => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      fail(new UrlTransferError(shown, 'idle-timeout', `${where} sent nothing for ${seconds(idleTimeoutMs)} after ${ofBytes()}`, { receivedBytes: got(), expectedBytes: expected }))
    }, idleTimeoutMs)
    timer.unref?.()
  }

  const out = new Readable({
    highWaterMark: 256 * 1024,
    read() {
      if (finished || !held) return
      held = false
      response.resume()
      awaitBytes()
    },
    destroy(err, callback) {
      finished = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      response.destroy()
      callback(err)
    },
  })
  // The body may break off before its consumer starts reading (the store opens its upload first): the error stays
  // in the stream's state for the consumer to see, and this listener keeps it from being an uncaught 'error' event.
  out.on('error', () => {})
  signal?.addEventListener('abort', onAbort, { once: true })
  socket?.on('error', (err) => {
    socketError ??= err
  })
  // The body flows into this stream's buffer at once (up to its high-water mark), so that every byte the server
  // sent is counted, and a stall is noticed, even before the reader starts.
  response.on('data', (chunk: Buffer) => {
    received += chunk.length
    if (out.push(chunk)) {
      awaitBytes()
    } else {
      // The reader holds back: not the server's fault, so the idle timer waits until it asks again.
      held = true
      clearTimeout(timer)
      response.pause()
    }
  })
  awaitBytes()
  response.on('end', () => {
    if (finished) return
    // Node ends a close-delimited body (no length, not chunked) at the close; a framed one must be complete.
    if (!response.complete || (expected !== undefined && received !== expected)) return fail(broken(undefined))
    finished = true
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
    out.push(null)
  })
  response.on('error', (err) => fail(broken(err)))
  response.on('close', () => {
    if (!finished && !response.complete) fail(broken(undefined))
  })
  return out
}

/**
 * GET or HEAD with redirects (up to 10) and bounded, jittered retries on 408, 429, 5xx and network failures before
 * the answer: at most 5 attempts, and none begun after `maxRetryTimeMs` since the first. A body that breaks off
 * after the answer is not retried here (its bytes are already on their way to the store): the import fails.
 */
async function httpAnswer(url: URL, method: 'GET' | 'HEAD', options: UrlIoOptions | undefined): Promise<HttpAnswer> {
  const context: HttpRequestContext = { timeouts: urlTimeouts(options), signal: options?.signal, shown: url.href }
  const started = Date.now()
  for (let attempt = 1; ; attempt++) {
    let answer: HttpAnswer | undefined
    let failure: unknown
    try {
      answer = await followRedirects(url, method, context)
    } catch (err) {
      if (err instanceof AbortedError || !(err instanceof UrlTransferError)) throw err
      if (PERMANENT_NETWORK_ERRORS.test(errnoOf(err.cause))) throw err
      failure = err
    }
    if (answer !== undefined && !RETRYABLE_STATUS.has(answer.status)) return answer
    const retryAfter = Number(answer?.headers['retry-after'])
    const backoff = Math.min(Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 100 * 2 ** attempt, 5000) * (0.5 + Math.random() / 2)
    const elapsed = Date.now() - started
    if (attempt >= MAX_ATTEMPTS || elapsed + backoff > context.timeouts.maxRetryTimeMs) {
      if (answer !== undefined) return answer
      const last = failure as UrlTransferError
      if (attempt === 1) throw last
      throw new UrlTransferError(url.href, last.failure, `${last.reason} (${attempt} attempts in ${seconds(elapsed)})`, { cause: last })
    }
    answer?.body.destroy()
    log('attempt %d of %s failed (%s): retrying', attempt, redactUrl(url.href), answer !== undefined ? `HTTP ${answer.status}` : (failure as Error).message)
    await sleep(backoff, context.signal)
  }
}

async function followRedirects(url: URL, method: 'GET' | 'HEAD', context: HttpRequestContext): Promise<HttpAnswer> {
  let current = url
  for (let hops = 0; ; hops++) {
    const answer = await requestOnce(current, method, context)
    const location = answer.headers.location
    if (!REDIRECT_STATUS.has(answer.status) || location === undefined) return answer
    answer.body.destroy()
    let next: URL
    try {
      next = new URL(location, current)
    } catch (err) {
      throw new InvalidImportExportUrlError(url.href, `redirected to an invalid URL`, { cause: err })
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new InvalidImportExportUrlError(url.href, `redirected to a ${next.protocol} URL`)
    }
    if (hops + 1 >= MAX_REDIRECTS) throw new InvalidImportExportUrlError(url.href, `more than ${MAX_REDIRECTS} redirects`)
    // Credentials of the URL (user info) go to its own origin only.
    if (next.origin !== current.origin) {
      next.username = ''
      next.password = ''
    }
    current = next
  }
}

/**
 * `http:` and `https:` URLs: import and size only, on Node's own http client. Timeouts and retries as in
 * {@link UrlTimeoutOptions}; a body that ends before its end (Content-Length, last chunk), is reset or stalls is a
 * {@link UrlTransferError}, never a short file. The bytes are stored as sent (no Content-Encoding decoding).
 */
export const httpUrlHandler: UrlHandler = {
  schemes: ['http', 'https'],
  async getSize(url, options) {
    const answer = await httpAnswer(url, 'HEAD', options)
    const length = answer.headers['content-length']
    return answer.status >= 200 && answer.status < 300 && length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined
  },
  async openRead(url, options) {
    const answer = await httpAnswer(url, 'GET', options)
    if (answer.status === 404 || answer.status === 410) {
      answer.body.destroy()
      throw new NoSuchFileError(redactUrl(url.href), { message: `no file at ${redactUrl(url.href)} (HTTP ${answer.status})` })
    }
    if (answer.status < 200 || answer.status >= 300) {
      answer.body.destroy()
      throw new UrlTransferError(url.href, 'status', `HTTP ${answer.status} from ${hostPort(answer.url)}`)
    }
    const length = answer.headers['content-length']
    const chunked = answer.headers['transfer-encoding'] !== undefined
    return {
      body: answer.body,
      ...(length !== undefined && !chunked && /^\d+$/.test(length) ? { size: Number(length) } : {}),
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
