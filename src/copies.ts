/**
 * Same-service (server-side) copies, orchestrated once for every backend: the source is looked at and its version
 * pinned, then copied in one request or by parts (bounded concurrency, committed under the write's conditions,
 * aborted on failure); a source replaced meanwhile is copied again from its new version, in a bounded number of
 * rounds. A backend supplies only a {@link CopySink}: the requests of its service.
 */
import { forEachConcurrent, throwIfAborted } from './concurrency.js'
import { JobStoreError } from './errors.js'

const MIB = 1024 * 1024

/**
 * Thrown by a {@link CopySink} when a request pinned to the source's version finds the source replaced or deleted:
 * {@link copyObject} then starts a new round (whose look at the source reports it gone, or pins its new version).
 */
export class CopySourceChangedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('the copy source changed', options)
    this.name = 'CopySourceChangedError'
  }
}

/** One range of the source, as {@link copyObject} hands it to {@link CopySink.copyPart}. */
export interface CopyRange {
  /** 1-based, in source order. */
  readonly number: number
  readonly offset: number
  readonly count: number
}

/**
 * The requests of one server-side copy, as a backend maps them to its service. `S` is what a look at the source
 * found (its size, its version to pin, its metadata), `P` what a copied part resolves with, `R` the copy's result.
 * Each method maps its own errors (`PreconditionFailedError` for the target's conditions, the caller's not-found
 * error for a missing source), and throws {@link CopySourceChangedError} when its pin to the source fails.
 */
export interface CopySink<S extends { readonly size: number }, P, R> {
  /**
   * Looks at the source (once per round); `undefined` declines the copy (the backend cannot copy this source
   * server-side, and the caller streams it instead).
   */
  source(signal: AbortSignal | undefined): Promise<S | undefined>
  /** Copies the whole source in one request, pinned to its version. */
  copyOnce(source: S, signal: AbortSignal | undefined): Promise<R>
  /** Starts a copy by parts (S3 CreateMultipartUpload); called once per round, before the first part. */
  begin?(source: S, signal: AbortSignal | undefined): Promise<void>
  /**
   * Copies one range of the source, pinned to its version (S3 UploadPartCopy, Azure Put Block From URL). Absent
   * (with `commit`): every source goes in one request (GCS rewrites).
   */
  copyPart?(source: S, range: CopyRange, signal: AbortSignal | undefined): Promise<P>
  /** Commits the parts (in order) under the write's conditions. */
  commit?(source: S, parts: readonly P[], signal: AbortSignal | undefined): Promise<R>
  /** Cleans up a copy by parts that failed (after `begin`), with its failure; best effort, what it throws is dropped. */
  abort?(source: S, failure: unknown): Promise<void>
}

/** How {@link copyObject} copies: the service's limits. */
export interface CopyPlan {
  /** Names the source in errors. */
  readonly what: string
  /** Sources up to this size go in one request; larger ones by parts (default: every size in one request). */
  readonly maxSingleCopy?: number
  /** Bytes per copied part, raised (in MiB steps, up to `maxPartSize`) to fit `maxParts`. */
  readonly partSize?: number
  readonly maxParts?: number
  readonly maxPartSize?: number
  /** Parts copied at once (default 1). */
  readonly concurrency?: number
  /** Rounds before a source that keeps changing fails the copy (default 3). */
  readonly rounds?: number
  readonly signal?: AbortSignal | undefined
}

/**
 * Copies a source through `sink`: one request up to `maxSingleCopy`, else by parts; again from the source's new
 * version when it changed during the copy, at most `rounds` times (then a {@link JobStoreError}). Resolves with the
 * sink's result, or `undefined` when the sink declined.
 */
export async function copyObject<S extends { readonly size: number }, P, R>(
  sink: CopySink<S, P, R>,
  plan: CopyPlan,
): Promise<R | undefined> {
  const rounds = plan.rounds ?? 3
  for (let round = 1; ; round++) {
    throwIfAborted(plan.signal)
    const source = await sink.source(plan.signal)
    if (source === undefined) return undefined
    try {
      const { copyPart, commit } = sink
      if (source.size <= (plan.maxSingleCopy ?? Number.POSITIVE_INFINITY) || copyPart === undefined || commit === undefined) {
        return await sink.copyOnce(source, plan.signal)
      }
      return await copyByParts(sink, copyPart.bind(sink), commit.bind(sink), source, plan)
    } catch (err) {
      if (!(err instanceof CopySourceChangedError)) throw err
      if (round >= rounds) throw new JobStoreError(`${plan.what} kept changing during a server-side copy`, { cause: err.cause })
    }
  }
}

async function copyByParts<S extends { readonly size: number }, P, R>(
  sink: CopySink<S, P, R>,
  copyPart: NonNullable<CopySink<S, P, R>['copyPart']>,
  commit: NonNullable<CopySink<S, P, R>['commit']>,
  source: S,
  plan: CopyPlan,
): Promise<R> {
  const { size } = source
  const fit = plan.maxParts !== undefined ? Math.ceil(size / plan.maxParts / MIB) * MIB : 0
  const partSize = Math.min(plan.maxPartSize ?? Number.MAX_SAFE_INTEGER, Math.max(plan.partSize ?? 64 * MIB, fit))
  const ranges: CopyRange[] = []
  for (let offset = 0; offset < size; offset += partSize) {
    ranges.push({ number: ranges.length + 1, offset, count: Math.min(partSize, size - offset) })
  }
  await sink.begin?.(source, plan.signal)
  try {
    const parts: P[] = []
    await forEachConcurrent(ranges, plan.concurrency ?? 1, async (range) => {
      throwIfAborted(plan.signal)
      parts[range.number - 1] = await copyPart(source, range, plan.signal)
    })
    throwIfAborted(plan.signal)
    return await commit(source, parts, plan.signal)
  } catch (err) {
    await sink.abort?.(source, err).catch(() => {})
    throw err
  }
}
