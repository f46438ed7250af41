/**
 * A fault-injecting HTTP proxy for tests: it sits on loopback between an SDK and a local server (MinIO, Azurite,
 * fake-gcs-server) and passes requests through unchanged (Host header and all, so signatures hold), except those
 * it picks for a fault:
 *
 * | kind | what the client sees | did the server see the request? |
 * | --- | --- | --- |
 * | `reset-before` | the connection is reset (TCP RST) before any answer | no |
 * | `reset-after` | the server answered, but the connection is reset before the answer reaches the client | yes: a write has happened, its response is lost |
 * | `status` | an error answer in the service's own format: S3 `503 SlowDown`/`500 InternalError`, Azure `503 ServerBusy`/`500 InternalError`, GCS `429 rateLimitExceeded`/`503`/`500` | no |
 * | `latency` | the request is held for a while (a latency spike), then passed through | yes |
 * | `truncate` | the headers and half of the body (announced length unchanged), then the connection is reset | yes |
 * | `corrupt-response` | one bit of the body flipped (object reads only, see {@link FaultProxyOptions.isObjectRead}) | yes |
 * | `corrupt-request` | one bit of the request body flipped on its way to the server | yes (corrupted) |
 *
 * A separate mode, {@link FaultProxyOptions.replaceAnswer}, answers chosen requests with a given answer, either
 * instead of the server (it never sees the request) or after it (it acted, its answer is replaced): with
 * {@link FOREIGN_NOT_FOUND} (a 404 that does not say "no such object") and {@link REQUEST_TIMEOUT} (408).
 *
 * Faults are picked at random at a configurable rate (seeded, so a failing run can be replayed with its seed) or
 * by a `choose` callback. Every request and every fault injected is counted in {@link FaultProxy.stats}.
 *
 * Apart from faults, {@link FaultProxyOptions.stripConditions} emulates a server that does not enforce conditional
 * writes: the proxy removes their conditions from write requests (and signs them again where the service checks
 * a signature over them), so the server stores whatever comes.
 */
import { createHash, createHmac, type BinaryLike } from 'node:crypto'
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
// A dependency of @aws-sdk/client-s3 (its SigV4 signer), not of this package: used only by the test proxy.
import { SignatureV4 } from '@smithy/signature-v4'

export type FaultKind =
  | 'reset-before'
  | 'reset-after'
  | 'status'
  | 'latency'
  | 'truncate'
  | 'corrupt-response'
  | 'corrupt-request'

export const FAULT_KINDS: readonly FaultKind[] = [
  'reset-before',
  'reset-after',
  'status',
  'latency',
  'truncate',
  'corrupt-response',
  'corrupt-request',
]

/** The service whose error format `status` faults use. */
export type ServiceFlavor = 's3' | 'azure' | 'gcs' | 'generic'

/** An error answer the proxy sends instead of passing a request on. */
export interface StatusAnswer {
  readonly status: number
  /** The service's error code, for counting (`SlowDown`, `ServerBusy`…). */
  readonly code: string
  readonly contentType: string
  readonly body: string
  readonly headers?: Readonly<Record<string, string>>
}

/** Error answers in each service's format, as the service sends them when it throttles or fails. */
export const STATUS_ANSWERS: Readonly<Record<ServiceFlavor, readonly StatusAnswer[]>> = {
  s3: [
    xmlError(503, 'SlowDown', 'Please reduce your request rate.'),
    xmlError(500, 'InternalError', 'We encountered an internal error. Please try again.'),
  ],
  // Azure Storage throttles with 503 ServerBusy (never 429).
  azure: [
    azureError(503, 'ServerBusy', 'The server is busy.'),
    azureError(500, 'InternalError', 'The server encountered an internal error. Please retry the request.'),
  ],
  gcs: [
    gcsError(429, 'rateLimitExceeded', 'The rate of change requests to the object is too high.'),
    gcsError(503, 'backendError', 'Backend Error'),
    gcsError(500, 'internalError', 'Internal Error'),
  ],
  generic: [
    { status: 503, code: '503', contentType: 'text/plain', body: 'busy' },
    { status: 500, code: '500', contentType: 'text/plain', body: 'error' },
    { status: 429, code: '429', contentType: 'text/plain', body: 'slow down' },
  ],
}

function xmlError(status: number, code: string, message: string): StatusAnswer {
  return {
    status,
    code,
    contentType: 'application/xml',
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`,
  }
}

function azureError(status: number, code: string, message: string): StatusAnswer {
  return {
    status,
    code,
    contentType: 'application/xml',
    headers: { 'x-ms-error-code': code, 'x-ms-request-id': 'fault-proxy' },
    body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}\nRequestId:fault-proxy</Message></Error>`,
  }
}

function gcsError(status: number, reason: string, message: string): StatusAnswer {
  return {
    status,
    code: reason,
    contentType: 'application/json; charset=UTF-8',
    body: JSON.stringify({ error: { code: status, message, errors: [{ message, domain: 'global', reason }] } }),
  }
}

/**
 * 404 answers that do not mean "no such object": what a server (or a gateway in front of it) may answer an unknown
 * access key, a missing route or a misconfigured endpoint. A store must report these as errors, never as absence.
 * HEAD answers carry no body, so for HEAD only the status and headers reach the client.
 */
export const FOREIGN_NOT_FOUND: Readonly<Record<Exclude<ServiceFlavor, 'generic'>, readonly StatusAnswer[]>> = {
  s3: [
    xmlError(404, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'),
    htmlNotFound(),
  ],
  azure: [
    azureError(404, 'AuthenticationFailed', 'Server failed to authenticate the request.'),
    htmlNotFound(),
  ],
  gcs: [gcsError(404, 'accountDisabled', 'The account for the specified project has been disabled.'), htmlNotFound()],
}

function htmlNotFound(): StatusAnswer {
  return { status: 404, code: 'html-404', contentType: 'text/html', body: '<html><body><h1>404 Not Found</h1>nginx</body></html>' }
}

/**
 * 408 answers: in the service's own format (S3 `RequestTimeout`, Azure `OperationTimedOut`, GCS `requestTimeout`),
 * and `bare`, the empty 408 that Node.js servers (Azurite among them) send when a request takes too long.
 */
export const REQUEST_TIMEOUT: Readonly<Record<ServiceFlavor | 'bare', StatusAnswer>> = {
  s3: xmlError(408, 'RequestTimeout', 'Your socket connection to the server was not read from or written to within the timeout period.'),
  azure: azureError(408, 'OperationTimedOut', 'The operation could not be completed within the permitted time.'),
  gcs: gcsError(408, 'requestTimeout', 'The request timed out.'),
  generic: { status: 408, code: '408', contentType: 'text/plain', body: 'request timeout' },
  bare: { status: 408, code: 'bare-408', contentType: 'text/plain', body: '', headers: { connection: 'close' } },
}

/** What {@link FaultProxyOptions.replaceAnswer} answers a request with. */
export interface ReplacedAnswer {
  readonly answer: StatusAnswer
  /**
   * `instead` (default): answered by the proxy, the server never sees the request. `after`: the server gets the
   * request and acts on it (a write happens), then its answer is dropped and this one sent (a timeout reported
   * for a request that did take effect).
   */
  readonly when?: 'instead' | 'after'
}

export interface FaultProxyOptions {
  /** Base URL of the real server (`http://127.0.0.1:9000`). Can be set later with {@link FaultProxy.setTarget}. */
  readonly target?: string
  /** Port to listen on (default: a free one). */
  readonly port?: number
  /** Probability that a request (one that {@link filter} lets through) gets a fault. Default 0. */
  readonly rate?: number
  /** Relative weights of the kinds picked at random. Default: resets, status answers, latency, truncation. */
  readonly weights?: Partial<Record<FaultKind, number>>
  /** Error format of `status` faults. Default `generic`. */
  readonly flavor?: ServiceFlavor
  /** Held time of a `latency` fault, uniform in [min, max] ms. Default [200, 1500]. */
  readonly latencyMs?: readonly [number, number]
  /** Which requests may get a random fault (default: all). */
  readonly filter?: (req: IncomingMessage) => boolean
  /**
   * Picks the fault for a request; `undefined` passes it through, a {@link StatusAnswer} is a `status` fault with
   * that answer. Replaces the random choice when given (rate, weights and filter are then not used).
   */
  readonly choose?: (req: IncomingMessage) => FaultKind | StatusAnswer | undefined
  /** Which answers are object reads (whose bodies `corrupt-response` may flip). Default: any 200 to a GET. */
  readonly isObjectRead?: (req: IncomingMessage, answer: IncomingMessage) => boolean
  /** Seed of the random choices (default: random; see {@link FaultProxy.seed}). */
  readonly seed?: number
  /**
   * Answer-replacement mode: a request it returns an answer for gets that answer (see {@link ReplacedAnswer}),
   * counted in {@link FaultStats.replaced}; other requests go on to `choose` or the random faults.
   */
  readonly replaceAnswer?: (req: IncomingMessage) => ReplacedAnswer | undefined
  /**
   * Emulates a server that ignores the conditions of conditional writes: they are removed from write requests
   * before the server sees them (see {@link StripConditionsOptions}). Faults apply as usual on top.
   */
  readonly stripConditions?: StripConditionsOptions
  /**
   * Answer headers whose (lower-case) names match are dropped from every answer passed on, faulty or not: with
   * `/^x-amz-checksum-/`, MinIO looks like an S3-compatible server that returns no checksum. Default: none.
   */
  readonly stripResponseHeaders?: RegExp
}

/**
 * What {@link FaultProxyOptions.stripConditions} strips, and how the stripped request is signed again.
 *
 * - S3: the `If-None-Match` and `If-Match` headers of PUT and POST requests (PutObject, CopyObject,
 *   CompleteMultipartUpload). `x-amz-copy-source-if-*` stay: they pin a copy's source, they are no condition on
 *   the target. The headers are part of the SigV4 signature, so the request is signed again with `s3Credentials`.
 * - Azure: `If-None-Match` and `If-Match` of PUT requests (Put Blob, Put Block List, copies). SharedKey signs them,
 *   so the request is signed again with `azureAccountKey` (for Azurite, the dev account's well-known key).
 * - GCS: the `ifGenerationMatch` (and `ifMetagenerationMatch`, `…NotMatch`) query parameters and
 *   `x-goog-if-generation-match` headers of POST and PUT requests. The emulator checks no signature.
 */
export interface StripConditionsOptions {
  readonly service: 's3' | 'azure' | 'gcs'
  /**
   * `all` (default): every write request. `multipart-commit`: only the requests that commit a write of several
   * requests (S3 CompleteMultipartUpload, `POST ?uploadId=`; Azure Put Block List, `PUT ?comp=blocklist`; GCS the
   * start of a resumable upload, `uploadType=resumable`, and its chunks), as a server that honours conditions
   * on single-request writes only.
   */
  readonly on?: 'all' | 'multipart-commit'
  /** S3: the key pair the client signs with, to sign stripped requests again (SigV4). */
  readonly s3Credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string }
  /** Azure: the storage account key (base64), to sign stripped requests again (SharedKey). */
  readonly azureAccountKey?: string
}

export interface FaultStats {
  /** Requests that reached the proxy. */
  requests: number
  /** Faults injected, by kind. */
  readonly faults: Record<FaultKind, number>
  /** `status` faults by the service's error code (`SlowDown`, `ServerBusy`…). */
  readonly statuses: Record<string, number>
  /** Answers sent by {@link FaultProxyOptions.replaceAnswer}, by code (`InvalidAccessKeyId`, `bare-408`…). */
  readonly replaced: Record<string, number>

  /** Requests whose conditions were removed (see {@link FaultProxyOptions.stripConditions}). */
  conditionsStripped: number
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: give it to the SDK as its endpoint. */
  readonly url: string
  readonly port: number
  /** The seed of the random choices, to replay a run. */
  readonly seed: number
  readonly stats: FaultStats
  /** Total faults injected. */
  faultCount(): number
  /** Requests not yet answered in full, oldest first: to tell where a stuck client waits. */
  inFlight(): { method: string; url: string; fault: string; ageMs: number }[]
  /** Sets the probability of a fault per request (0 turns faults off). */
  setRate(rate: number): void
  /** Points the proxy at another server. */
  setTarget(target: string): void
  /** Stops listening and closes every connection. */
  close(): Promise<void>
}

/** A small seeded PRNG (mulberry32): reproducible fault sequences for a given seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const DEFAULT_WEIGHTS: Partial<Record<FaultKind, number>> = {
  'reset-before': 2,
  'reset-after': 2,
  status: 3,
  latency: 2,
  truncate: 1,
}

/** Starts a fault proxy on 127.0.0.1. */
export async function startFaultProxy(options: FaultProxyOptions = {}): Promise<FaultProxy> {
  let target = options.target !== undefined ? new URL(options.target) : undefined
  let rate = options.rate ?? 0
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31)
  const random = seededRandom(seed)
  const flavor = options.flavor ?? 'generic'
  const answers = STATUS_ANSWERS[flavor]
  const [latencyMin, latencyMax] = options.latencyMs ?? [200, 1500]
  const weights = Object.entries(options.weights ?? DEFAULT_WEIGHTS).filter(
    (entry): entry is [FaultKind, number] => typeof entry[1] === 'number' && entry[1] > 0,
  )
  const totalWeight = weights.reduce((sum, [, w]) => sum + w, 0)
  const stats: FaultStats = {
    requests: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>,
    statuses: {},
    replaced: {},

    conditionsStripped: 0,
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 256 })
  const sockets = new Set<Socket>()

  const pick = (req: IncomingMessage): FaultKind | StatusAnswer | undefined => {
    if (options.choose !== undefined) return options.choose(req)
    if (rate <= 0 || totalWeight === 0) return undefined
    if (options.filter !== undefined && !options.filter(req)) return undefined
    if (random() >= rate) return undefined
    let roll = random() * totalWeight
    for (const [kind, weight] of weights) {
      roll -= weight
      if (roll < 0) return kind
    }
    return weights[weights.length - 1]?.[0]
  }

  const reset = (socket: Socket): void => {
    // resetAndDestroy sends a TCP RST (ECONNRESET on the client), where destroy would close cleanly.
    if (typeof socket.resetAndDestroy === 'function' && !socket.destroyed) socket.resetAndDestroy()
    else socket.destroy()
  }

  const isObjectRead = options.isObjectRead ?? ((req: IncomingMessage, answer: IncomingMessage) => req.method === 'GET' && answer.statusCode === 200)
  const stripHeaders = options.stripResponseHeaders
  const answerHeaders = (answer: IncomingMessage): Record<string, string | string[] | undefined> => {
    if (stripHeaders === undefined) return answer.headers
    return Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !stripHeaders.test(name.toLowerCase())))
  }

  const handle = (req: IncomingMessage, res: ServerResponse, fault: FaultKind | undefined): void => {
    if (target === undefined) {
      res.writeHead(502).end('fault proxy: no target')
      return
    }
    const headers = { ...req.headers }
    // The SDKs may ask for 100-continue; the proxy reads the whole request anyway.
    delete headers['expect']
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      (answer) => {
        if (fault === 'reset-after') {
          // Let the server finish (a write has happened), then lose its answer.
          answer.resume()
          answer.on('end', () => {
            stats.faults['reset-after']++
            reset(req.socket)
          })
          answer.on('error', () => reset(req.socket))
          return
        }
        const hasBody = req.method !== 'HEAD' && answer.statusCode !== 204 && answer.statusCode !== 304
        if (fault === 'truncate' || (fault === 'corrupt-response' && isObjectRead(req, answer))) {
          const parts: Buffer[] = []
          answer.on('data', (data: Buffer) => parts.push(data))
          answer.on('error', () => reset(req.socket))
          answer.on('end', () => {
            const body = Buffer.concat(parts)
            const out: Record<string, string | string[] | undefined> = { ...answerHeaders(answer) }
            if (fault === 'truncate') {
              if (!hasBody || body.length < 2) {
                // Nothing to cut: pass the answer on as it is (no fault counted).
                res.writeHead(answer.statusCode ?? 502, answerHeaders(answer))
                res.end(body)
                return
              }
              delete out['transfer-encoding']
              out['content-length'] = String(body.length)
              stats.faults.truncate++
              res.writeHead(answer.statusCode ?? 502, out)
              res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => reset(req.socket), 20))
              return
            }
            if (body.length > 0) {
              const at = Math.floor(random() * body.length)
              body[at] = (body[at] as number) ^ 0x01
              stats.faults['corrupt-response']++
            }
            delete out['transfer-encoding']
            out['content-length'] = String(body.length)
            res.writeHead(answer.statusCode ?? 502, out)
            res.end(body)
          })
          return
        }
        res.writeHead(answer.statusCode ?? 502, answerHeaders(answer))
        answer.pipe(res)
        answer.on('error', () => res.destroy())
      },
    )
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end('fault proxy: upstream failed')
      else res.destroy()
    })
    req.on('error', () => upstream.destroy())
    if (fault === 'corrupt-request') {
      let flipped = false
      req.on('data', (data: Buffer) => {
        if (!flipped && data.length > 0) {
          const copy = Buffer.from(data)
          const at = copy.length >> 1
          copy[at] = (copy[at] as number) ^ 0x01
          flipped = true
          stats.faults['corrupt-request']++
          upstream.write(copy)
        } else upstream.write(data)
      })
      req.on('end', () => upstream.end())
    } else {
      req.pipe(upstream)
    }
  }

  const sendAnswer = (res: ServerResponse, answer: StatusAnswer): void => {
    res.writeHead(answer.status, {
      'content-type': answer.contentType,
      'content-length': String(Buffer.byteLength(answer.body)),
      ...answer.headers,
    })
    res.end(answer.body)
  }

  /** The answer-replacement mode: the request is answered with `replaced.answer`, instead of the server or after it. */
  const replace = (req: IncomingMessage, res: ServerResponse, replaced: ReplacedAnswer): void => {
    const { answer } = replaced
    stats.replaced[answer.code] = (stats.replaced[answer.code] ?? 0) + 1
    if (replaced.when !== 'after' || target === undefined) {
      req.resume()
      req.on('end', () => sendAnswer(res, answer))
      return
    }
    const headers = { ...req.headers }
    delete headers['expect']
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
      (served) => {
        // The server has acted on the request; what it said is lost.
        served.resume()
        served.on('end', () => sendAnswer(res, answer))
        served.on('error', () => reset(req.socket))
      },
    )
    upstream.on('error', () => reset(req.socket))
    req.on('error', () => upstream.destroy())
    req.pipe(upstream)
  }

  const pending = new Map<IncomingMessage, { method: string; url: string; fault: string; since: number }>()
  const strip = options.stripConditions
  const server: Server = createServer((req, res) => {
    if (strip === undefined) return dispatch(req, res)
    // Rewritten in place (headers, URL, signature) before anything else looks at the request.
    stripConditions(req, strip).then(
      (stripped) => {
        if (stripped) stats.conditionsStripped++
        dispatch(req, res)
      },
      (err: unknown) => {
        req.resume()
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`fault proxy: cannot strip conditions: ${(err as Error).message}`)
      },
    )
  })
  const dispatch = (req: IncomingMessage, res: ServerResponse): void => {
    stats.requests++
    const replaced = options.replaceAnswer?.(req)
    if (replaced !== undefined) {
      pending.set(req, { method: req.method ?? '', url: req.url ?? '', fault: `replaced:${replaced.answer.code}`, since: Date.now() })
      res.on('close', () => pending.delete(req))
      replace(req, res, replaced)
      return
    }
    const picked = pick(req)
    const fault = typeof picked === 'object' ? 'status' : picked
    pending.set(req, { method: req.method ?? '', url: req.url ?? '', fault: fault ?? 'none', since: Date.now() })
    res.on('close', () => pending.delete(req))
    switch (fault) {
      case 'reset-before':
        stats.faults['reset-before']++
        req.resume()
        reset(req.socket)
        return
      case 'status': {
        const answer = typeof picked === 'object' ? picked : (answers[Math.floor(random() * answers.length)] as StatusAnswer)
        stats.faults.status++
        stats.statuses[answer.code] = (stats.statuses[answer.code] ?? 0) + 1
        // Read the request first: answering an upload mid-body would break the connection instead.
        req.resume()
        req.on('end', () => {
          res.writeHead(answer.status, {
            'content-type': answer.contentType,
            'content-length': String(Buffer.byteLength(answer.body)),
            ...answer.headers,
          })
          res.end(answer.body)
        })
        return
      }
      case 'latency': {
        stats.faults.latency++
        req.pause()
        const wait = latencyMin + random() * (latencyMax - latencyMin)
        setTimeout(() => handle(req, res, undefined), wait)
        return
      }
      default:
        handle(req, res, fault)
    }
  }
  server.keepAliveTimeout = 30_000
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    // A reset socket emits errors that nobody else listens to.
    socket.on('error', () => {})
  })
  server.on('clientError', (_err, socket) => socket.destroy())
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  let closing: Promise<void> | undefined
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seed,
    stats,
    faultCount: () => Object.values(stats.faults).reduce((sum, n) => sum + n, 0),
    inFlight: () =>
      [...pending.values()].map(({ since, ...rest }) => ({ ...rest, ageMs: Date.now() - since })).sort((a, b) => b.ageMs - a.ageMs),
    setRate(value) {
      if (!(value >= 0 && value <= 1)) throw new RangeError(`fault rate must be within [0, 1], got ${value}`)
      rate = value
    },
    setTarget(value) {
      target = new URL(value)
    },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        agent.destroy()
        server.close(() => resolve())
      })),
  }
}

// ------------------------------------------------------------------------------------------------ conditions

const S3_CONDITIONS = ['if-none-match', 'if-match']
const AZURE_CONDITIONS = ['if-none-match', 'if-match']
const GCS_CONDITION_PARAMS = /^if(Generation|Metageneration)(Not)?Match$/
const GCS_CONDITION_HEADERS = /^x-goog-if-(generation|metageneration)-(not-)?match$/

/** Whether the request is one whose conditions `strip` removes. */
function strippable(req: IncomingMessage, strip: StripConditionsOptions): boolean {
  const method = req.method ?? ''
  const query = new URL(req.url ?? '/', 'http://proxy').searchParams
  const multipartOnly = strip.on === 'multipart-commit'
  switch (strip.service) {
    case 's3':
      return (method === 'PUT' || method === 'POST') && (!multipartOnly || (method === 'POST' && query.has('uploadId')))
    case 'azure':
      return method === 'PUT' && (!multipartOnly || query.get('comp') === 'blocklist')
    case 'gcs':
      return (method === 'PUT' || method === 'POST') && (!multipartOnly || query.get('uploadType') === 'resumable' || query.has('upload_id'))
  }
}

/** Removes the conditions of `req` in place and signs it again; true if there were any. */
async function stripConditions(req: IncomingMessage, strip: StripConditionsOptions): Promise<boolean> {
  if (!strippable(req, strip)) return false
  const headers = req.headers
  switch (strip.service) {
    case 's3': {
      const present = S3_CONDITIONS.filter((name) => headers[name] !== undefined)
      if (present.length === 0) return false
      for (const name of present) delete headers[name]
      if (strip.s3Credentials === undefined) throw new Error('stripConditions: s3Credentials are needed to sign again')
      await signS3Again(req, strip.s3Credentials)
      return true
    }
    case 'azure': {
      const present = AZURE_CONDITIONS.filter((name) => headers[name] !== undefined)
      if (present.length === 0) return false
      for (const name of present) delete headers[name]
      if (strip.azureAccountKey === undefined) throw new Error('stripConditions: azureAccountKey is needed to sign again')
      signAzureAgain(req, strip.azureAccountKey)
      return true
    }
    case 'gcs': {
      let stripped = false
      for (const name of Object.keys(headers)) {
        if (GCS_CONDITION_HEADERS.test(name)) {
          delete headers[name]
          stripped = true
        }
      }
      const url = req.url ?? '/'
      const at = url.indexOf('?')
      if (at >= 0) {
        // Only the condition parameters go; the others stay byte for byte.
        const kept = url
          .slice(at + 1)
          .split('&')
          .filter((pair) => !GCS_CONDITION_PARAMS.test(decodeURIComponent(pair.split('=')[0] ?? '')))
        if (kept.length !== url.slice(at + 1).split('&').length) {
          req.url = kept.length > 0 ? `${url.slice(0, at)}?${kept.join('&')}` : url.slice(0, at)
          stripped = true
        }
      }
      return stripped
    }
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): BinaryLike {
  if (typeof data === 'string') return data
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data)
}

/** SHA-256 (and HMAC-SHA256, given a secret) from node:crypto, in the shape the SigV4 signer wants. */
class NodeSha256 {
  readonly #hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret))
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes(data))
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest())
  }
}

/**
 * Signs an S3 request again (SigV4, header auth) after headers were removed: the same credential scope, date and
 * signed headers as the client's signature (less the removed ones), and the client's `x-amz-content-sha256` as the
 * payload hash, so the body passes through untouched.
 */
async function signS3Again(req: IncomingMessage, credentials: { accessKeyId: string; secretAccessKey: string }): Promise<void> {
  const auth = String(req.headers['authorization'] ?? '')
  const parsed = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=[0-9a-f]+$/.exec(auth)
  if (parsed === null) throw new Error('not a SigV4 header signature')
  const [, , , region, service, signedList] = parsed as unknown as [string, string, string, string, string, string]
  const amzDate = String(req.headers['x-amz-date'] ?? '')
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate)
  if (date === null) throw new Error('no x-amz-date')
  const [, y, mo, d, h, mi, sec] = date.map(Number) as [number, number, number, number, number, number, number]
  const signingDate = new Date(Date.UTC(y, mo - 1, d, h, mi, sec))
  const headers: Record<string, string> = {}
  for (const name of signedList.split(';')) {
    const value = req.headers[name]
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value
  }
  const url = req.url ?? '/'
  const at = url.indexOf('?')
  const query: Record<string, string | string[]> = {}
  if (at >= 0) {
    for (const pair of url.slice(at + 1).split('&')) {
      if (pair === '') continue
      const eq = pair.indexOf('=')
      const name = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq))
      const value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1))
      const before = query[name]
      query[name] = before === undefined ? value : [...(Array.isArray(before) ? before : [before]), value]
    }
  }
  const host = String(req.headers['host'] ?? '')
  const signer = new SignatureV4({ credentials, region, service, sha256: NodeSha256, uriEscapePath: false, applyChecksum: false })
  const signed = await signer.sign(
    { method: req.method ?? 'GET', protocol: 'http:', hostname: host, path: at >= 0 ? url.slice(0, at) : url, query, headers },
    { signingDate },
  )
  req.headers['authorization'] = signed.headers['authorization']
}

/**
 * Signs an Azure Storage request again with the account key (SharedKey, as `@azure/storage-common` signs it): the
 * standard headers, the `x-ms-` headers and the canonical resource, with the client's `x-ms-date`.
 */
function signAzureAgain(req: IncomingMessage, accountKey: string): void {
  const auth = /^SharedKey ([^:]+):/.exec(String(req.headers['authorization'] ?? ''))
  if (auth === null) throw new Error('not a SharedKey signature')
  const account = auth[1] as string
  const header = (name: string): string => {
    const value = req.headers[name]
    const text = value === undefined ? '' : Array.isArray(value) ? value.join(',') : value
    return name === 'content-length' && text === '0' ? '' : text
  }
  const standard = [
    'content-encoding',
    'content-language',
    'content-length',
    'content-md5',
    'content-type',
    'date',
    'if-modified-since',
    'if-match',
    'if-none-match',
    'if-unmodified-since',
    'range',
  ].map(header)
  // The service sorts as .NET does, which ignores '-' first: sort on the names without it, then on the names.
  const bare = (name: string): string => name.replaceAll('-', '')
  const msHeaders = Object.keys(req.headers)
    .filter((name) => name.startsWith('x-ms-'))
    .sort((a, b) => (bare(a) < bare(b) ? -1 : bare(a) > bare(b) ? 1 : a < b ? -1 : a > b ? 1 : 0))
    .map((name) => `${name}:${header(name).trimStart()}\n`)
    .join('')
  const url = new URL(req.url ?? '/', 'http://proxy')
  let resource = `/${account}${url.pathname || '/'}`
  const params = new Map<string, string>()
  for (const pair of url.search.replace(/^\?/, '').split('&')) {
    const eq = pair.indexOf('=')
    if (eq <= 0 || eq !== pair.lastIndexOf('=') || eq === pair.length - 1) continue
    params.set(pair.slice(0, eq).toLowerCase(), decodeURIComponent(pair.slice(eq + 1)))
  }
  for (const name of [...params.keys()].sort()) resource += `\n${name}:${params.get(name)}`
  const stringToSign = `${(req.method ?? 'GET').toUpperCase()}\n${standard.join('\n')}\n${msHeaders}${resource}`
  const signature = createHmac('sha256', Buffer.from(accountKey, 'base64')).update(stringToSign, 'utf8').digest('base64')
  req.headers['authorization'] = `SharedKey ${account}:${signature}`
}
