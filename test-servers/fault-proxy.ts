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
 * Faults are picked at random at a configurable rate (seeded, so a failing run can be replayed with its seed) or
 * by a `choose` callback. Every request and every fault injected is counted in {@link FaultProxy.stats}.
 */
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

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
   * Answer headers whose (lower-case) names match are dropped from every answer passed on, faulty or not: with
   * `/^x-amz-checksum-/`, MinIO looks like an S3-compatible server that returns no checksum. Default: none.
   */
  readonly stripResponseHeaders?: RegExp
}

export interface FaultStats {
  /** Requests that reached the proxy. */
  requests: number
  /** Faults injected, by kind. */
  readonly faults: Record<FaultKind, number>
  /** `status` faults by the service's error code (`SlowDown`, `ServerBusy`…). */
  readonly statuses: Record<string, number>
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
  const strip = options.stripResponseHeaders
  const answerHeaders = (answer: IncomingMessage): Record<string, string | string[] | undefined> => {
    if (strip === undefined) return answer.headers
    return Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !strip.test(name.toLowerCase())))
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

  const pending = new Map<IncomingMessage, { method: string; url: string; fault: string; since: number }>()
  const server: Server = createServer((req, res) => {
    stats.requests++
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
  })
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
