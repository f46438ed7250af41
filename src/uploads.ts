/**
 * Uploads, orchestrated once for every backend (in the spirit of OpenDAL's `MultipartWriter`): a body is cut into
 * parts of the backend's part size, small bodies go as one put, parts go with bounded concurrency and the digests
 * the service wants, and a body error, an abort or a failed part aborts the upload. A backend supplies only an
 * {@link UploadSink}: the requests of its service (put once, begin, put part, commit, abort).
 */
import { setMaxListeners } from 'node:events'
import type { Readable } from 'node:stream'
import { linkedAbortController, throwIfAborted } from './concurrency.js'
import { AbortedError, InvalidArgumentError, JobStoreError } from './errors.js'
import type { WritePath } from './storage.js'
import { newHasher, type Hasher } from './streams.js'

const MIB = 1024 * 1024

/** One part of an upload, as {@link uploadBody} hands it to {@link UploadSink.putPart}. */
export interface UploadPart {
  /** 1-based, in body order. */
  readonly number: number
  /** Where the part starts in the body. */
  readonly offset: number
  /**
   * The part's bytes. The buffer is reused for a later part once `putPart` (or, for the final part of
   * {@link UploadPlan.finalPartCommits}, `commit`) has settled: a sink must not keep it beyond that.
   */
  readonly data: Buffer
  /** Whether this is the body's last part (known exactly: the orchestrator reads one chunk ahead). */
  readonly last: boolean
  /** Base64 digest of `data` in {@link UploadPlan.partDigest}, when the plan asks for one. */
  readonly digest?: string
}

/** What {@link uploadBody} knows about the whole body when it commits. */
export interface UploadedBody {
  /** Bytes in all parts. */
  readonly size: number
  /** Base64 digest of the whole body in {@link UploadPlan.wholeDigest}, when the plan asks for one. */
  readonly digest?: string
}

/**
 * The requests of one upload, as a backend maps them to its service. Every method gets the upload's signal, which
 * fires on the caller's abort and on the first failure of any part. A method rejects with the backend's mapped
 * errors ({@link PreconditionFailedError} on a failed condition at the commit, and so on): `uploadBody` passes
 * them on as they are.
 *
 * @typeParam P What a put part resolves with (an ETag, a block ID), handed back to `commit` in part order.
 */
export interface UploadSink<P = unknown> {
  /** Stores a body that fits in one part with one request, under the write's conditions; resolves with the version. */
  putOnce(data: Buffer, signal: AbortSignal): Promise<string>
  /** Starts a multipart upload (S3 CreateMultipartUpload, a GCS resumable session); called once, before the first part. */
  begin?(signal: AbortSignal): Promise<void>
  /** Stores one part (S3 UploadPart, Azure Put Block, a GCS chunk). Up to {@link UploadPlan.concurrency} run at once. */
  putPart(part: UploadPart, signal: AbortSignal): Promise<P>
  /**
   * Commits the parts under the write's conditions, after every part was stored (S3 CompleteMultipartUpload,
   * Azure Put Block List); resolves with the version. With {@link UploadPlan.finalPartCommits}, `finalPart` is the
   * last part, not yet sent: the request that sends it commits (a GCS resumable upload's final chunk).
   */
  commit(parts: readonly P[], body: UploadedBody, signal: AbortSignal, finalPart?: UploadPart): Promise<string>
  /**
   * Cleans up after a failure once `begin` has succeeded (S3 AbortMultipartUpload, a session's cancel), with the
   * upload's first failure; also when `commit` failed. Called after every part in flight has settled; best effort:
   * what it throws is dropped, the caller sees the write's own failure.
   */
  abort?(failure: unknown): Promise<void>
}

/** How {@link uploadBody} cuts and sends a body: the service's limits and what it checks. */
export interface UploadPlan {
  /** Names the target in errors (`s3://bucket/key`). */
  readonly what: string
  /** Bytes per part (the last one shorter); a stream that ends within the first part goes as one put. */
  readonly partSize: number
  /** Most parts in one upload; with a {@link contentLength}, parts grow to fit (in MiB steps). */
  readonly maxParts?: number
  /** Largest part the service takes (growth stops there). */
  readonly maxPartSize?: number
  /** A stream of unknown length doubles its part size every this many parts (S3: reach ~300 GiB in 10,000 parts). */
  readonly partsPerSizeStep?: number
  /** Parts in flight at once (1: in order, one after the other). */
  readonly concurrency: number
  /** The body's length, when known up front: sizes the parts. */
  readonly contentLength?: number | undefined
  /** Largest body sent as one put (default: any size): a Buffer up to it, or a stream that ends within its first part. */
  readonly maxSinglePut?: number
  /** `multipart` (the conditional-write proof): even a tiny body goes as parts and a commit. */
  readonly writePath?: WritePath | undefined
  /** Digest of each part for the sink, in `newHasher`'s algorithms (`md5`, `crc32`…). */
  readonly partDigest?: string
  /** Digest of the whole body for the commit, in the same algorithms. */
  readonly wholeDigest?: string
  /** The last part goes with the commit (GCS resumable uploads), not through `putPart`. */
  readonly finalPartCommits?: boolean
  readonly signal?: AbortSignal | undefined
}

/**
 * The part size of part `number` (1-based) under `plan`: the plan's part size, raised (in MiB steps, up to
 * `maxPartSize`) so that a body of `contentLength` fits in `maxParts`; for a stream of unknown length, doubled every
 * `partsPerSizeStep` parts.
 */
export function partSizeOf(plan: UploadPlan, number: number): number {
  const { partSize, maxParts, contentLength } = plan
  const max = plan.maxPartSize ?? Number.MAX_SAFE_INTEGER
  let base = partSize
  if (maxParts !== undefined && contentLength !== undefined && contentLength > partSize * maxParts) {
    base = Math.min(max, Math.ceil(contentLength / maxParts / MIB) * MIB)
  }
  const step = plan.partsPerSizeStep
  if (step === undefined) return base
  return Math.min(max, base * 2 ** Math.floor((number - 1) / step))
}

/**
 * Uploads `body` through `sink` and resolves with the stored version. A Buffer up to `maxSinglePut`, or a stream
 * that ends within its first part, goes as one {@link UploadSink.putOnce}. Anything else is read into parts (stream
 * buffers reused: memory stays at `(concurrency + 1) × partSize`), stored by up to `concurrency` `putPart` calls at
 * once while the next part is read, and committed once the body ended and every part is stored. On a body error,
 * the signal's abort or a failed request, nothing is committed: the parts in flight are cancelled and awaited,
 * `abort` cleans up, and the first failure is thrown (the body's own error as it is; {@link AbortedError} when the
 * caller's signal fired).
 */
export async function uploadBody<P>(body: Buffer | Readable, sink: UploadSink<P>, plan: UploadPlan): Promise<string> {
  const { signal } = plan
  throwIfAborted(signal)
  if (!Number.isInteger(plan.concurrency) || plan.concurrency < 1) {
    throw new InvalidArgumentError(`upload concurrency must be a positive integer, got ${plan.concurrency}`)
  }
  const forceParts = plan.writePath === 'multipart'
  const maxSinglePut = plan.maxSinglePut ?? Number.POSITIVE_INFINITY
  if (Buffer.isBuffer(body) && !forceParts && body.length <= maxSinglePut) {
    return sink.putOnce(body, signal ?? new AbortController().signal)
  }
  const controller = linkedAbortController(signal)
  setMaxListeners(0, controller.signal)
  // Buffers of stored parts, for the next ones: memory stays at the parts in flight, whatever the GC does.
  const spare: Buffer[] = []
  const parts = Buffer.isBuffer(body) ? partsOfBuffer(body, plan) : partsOfStream(body, plan, spare)
  // Waiting for body bytes must end when the signal fires, too.
  const stopBody = (error: unknown): void => {
    if (!Buffer.isBuffer(body)) body.destroy(error as Error)
  }
  const onAbort = (): void => stopBody(new AbortedError({ cause: signal?.reason }))
  signal?.addEventListener('abort', onAbort, { once: true })
  const results: P[] = []
  const inFlight = new Set<Promise<void>>()
  const whole: Hasher | undefined = plan.wholeDigest !== undefined ? newHasher(plan.wholeDigest) : undefined
  let failure: { error: unknown } | undefined
  let begun = false
  let size = 0
  try {
    let finalPart: UploadPart | undefined
    for await (const read of parts) {
      if (read.number === 1 && read.last && !forceParts && read.data.length <= maxSinglePut) return await sink.putOnce(read.data, controller.signal)
      if (plan.maxParts !== undefined && read.number > plan.maxParts) {
        throw new JobStoreError(
          `${plan.what}: more than ${plan.maxParts} parts of ${partSizeOf(plan, 1)} bytes; pass contentLength or use a larger part size`,
        )
      }
      whole?.update(read.data)
      size += read.data.length
      const part: UploadPart =
        plan.partDigest !== undefined ? { ...read, digest: newHasher(plan.partDigest).update(read.data).digest('base64') } : read
      if (!begun) {
        await sink.begin?.(controller.signal)
        begun = true
      }
      if (part.last && plan.finalPartCommits === true) {
        finalPart = part
        break
      }
      while (inFlight.size >= plan.concurrency && failure === undefined) await Promise.race(inFlight)
      if (failure !== undefined) throw failure.error
      const put = sink.putPart(part, controller.signal).then(
        (result) => {
          results[part.number - 1] = result
          if (!Buffer.isBuffer(body)) spare.push(part.data)
        },
        (error: unknown) => {
          if (failure !== undefined) return
          failure = { error }
          controller.abort(error)
          // Stop reading now, not when the body next yields.
          stopBody(error)
        },
      )
      inFlight.add(put)
      void put.finally(() => inFlight.delete(put))
    }
    while (inFlight.size > 0) await Promise.race(inFlight)
    if (failure !== undefined) throw failure.error
    throwIfAborted(signal)
    return await sink.commit(results, { size, ...(whole !== undefined ? { digest: whole.digest('base64') } : {}) }, controller.signal, finalPart)
  } catch (err) {
    // The first failure: a part's, else the body's own error (the caller's, passed on as it is), or the commit's.
    let first = failure !== undefined ? failure.error : err
    if (signal?.aborted && !(first instanceof AbortedError)) first = new AbortedError({ cause: signal.reason })
    failure ??= { error: first }
    controller.abort(first)
    await Promise.allSettled(inFlight)
    if (begun) await sink.abort?.(first).catch(() => {})
    throw first
  } finally {
    signal?.removeEventListener('abort', onAbort)
    controller.dispose()
  }
}

/** A part as read from the body, before its digest. */
type ReadPart = Omit<UploadPart, 'digest'>

/** A Buffer body's parts: views of it, no copies. */
function* partsOfBuffer(body: Buffer, plan: UploadPlan): Generator<ReadPart> {
  let offset = 0
  for (let number = 1; ; number++) {
    const end = Math.min(body.length, offset + partSizeOf(plan, number))
    yield { number, offset, data: body.subarray(offset, end), last: end === body.length }
    if (end === body.length) return
    offset = end
  }
}

/**
 * Cuts a stream into parts of `partSizeOf(plan, n)` bytes (the last one shorter). Each part is handed out once a
 * byte beyond it arrived or the stream ended, so `last` is exact (one put for a body within one part; the final
 * chunk of a resumable upload). The first part's buffer grows as bytes come (small bodies stay small); later ones
 * take a buffer of their size from `spare` or allocate one.
 */
async function* partsOfStream(body: Readable, plan: UploadPlan, spare: Buffer[]): AsyncGenerator<ReadPart> {
  const iterator = body[Symbol.asyncIterator]() as AsyncIterator<unknown>
  let ended = false
  // Bytes read from the body and not yet in a part: a chunk of the stream's, never copied ahead.
  let pending: Buffer | undefined
  const pull = async (): Promise<Buffer | undefined> => {
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) {
        ended = true
        return undefined
      }
      const data = toBuffer(next.value)
      if (data.length > 0) return data
    }
  }
  try {
    let offset = 0
    for (let number = 1; ; number++) {
      const part = new PartBuffer(partSizeOf(plan, number), number === 1 ? undefined : spare)
      while (!part.full) {
        if (pending === undefined && !ended) pending = await pull()
        if (pending === undefined) break
        pending = part.append(pending)
        if (pending.length === 0) pending = undefined
      }
      if (pending === undefined && !ended) pending = await pull()
      const data = part.bytes()
      const last = pending === undefined
      yield { number, offset, data, last }
      if (last) return
      offset += data.length
    }
  } finally {
    if (!ended) await iterator.return?.()
  }
}

/**
 * Collects up to `capacity` bytes. Without `spare` (a first part) the buffer grows as bytes come; with it, the
 * buffer is one of `spare` of exactly `capacity` bytes (a stored part's), or a new one.
 */
class PartBuffer {
  readonly #capacity: number
  readonly #spare: Buffer[] | undefined
  #buffer: Buffer = Buffer.alloc(0)
  #length = 0

  constructor(capacity: number, spare?: Buffer[]) {
    this.#capacity = capacity
    this.#spare = spare
  }

  get full(): boolean {
    return this.#length === this.#capacity
  }

  /** Appends what fits and returns the rest. */
  append(data: Buffer): Buffer {
    const take = Math.min(data.length, this.#capacity - this.#length)
    if (this.#length + take > this.#buffer.length) {
      let grown: Buffer | undefined
      if (this.#spare !== undefined) {
        while (grown === undefined && this.#spare.length > 0) {
          const candidate = this.#spare.pop() as Buffer
          if (candidate.length === this.#capacity) grown = candidate
        }
        grown ??= Buffer.allocUnsafe(this.#capacity)
      } else {
        grown = Buffer.allocUnsafe(Math.min(this.#capacity, Math.max(this.#length + take, this.#buffer.length * 2, 64 * 1024)))
      }
      this.#buffer.copy(grown, 0, 0, this.#length)
      this.#buffer = grown
    }
    data.copy(this.#buffer, this.#length, 0, take)
    this.#length += take
    return data.subarray(take)
  }

  bytes(): Buffer {
    return this.#buffer.subarray(0, this.#length)
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8')
  if (ArrayBuffer.isView(chunk)) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  throw new InvalidArgumentError(`a body stream yielded a ${typeof chunk}, not bytes`)
}
