/**
 * Conditional writes are proven, not assumed. Create-if-absent and compare-and-swap are the only synchronisation
 * between the store's writers; a service that ignores `If-None-Match`/`If-Match` (or honours them on single
 * requests only) lets racing writers all "win" and lose updates without an error. So at `initialize()` and
 * `resume()` the core asks the service, on a scratch key under the store's own `meta/probe/`, whether it rejects
 *
 * 1. a second create-if-absent of an object that exists, and
 * 2. a compare-and-swap against a stale version,
 *
 * on every write path the backend commits on (one request; parts, blocks or chunks). A rejection (a failed
 * precondition) proves the guarantee; a write that succeeds disproves it, and the store refuses to open with
 * {@link ConditionalWritesUnsupportedError}; anything else (a network failure after the SDK's retries, say) is an
 * ordinary error, thrown as it is and not remembered.
 *
 * The verdict is kept for the life of the process per service and bucket (the backend's `scope`), so that a
 * worker opening many stores pays once: 2 + 2 × (write paths) writes and one delete.
 */
import { debuglog } from 'node:util'
import { sleep } from './concurrency.js'
import { AbortedError, ConditionalWritesUnsupportedError, JobStoreError, type ConditionalWriteGuarantee } from './errors.js'
import { randomId } from './ids.js'
import { PreconditionFailedError, type PutOptions, type WritePath } from './storage.js'

const log = debuglog('jobstore')

/** Environment variable that skips the proof (`1`), as the store option `skipConditionalWriteProof` does. */
export const SKIP_PROOF_ENV = 'JOBSTORE_SKIP_CONDITIONAL_WRITE_PROOF'

/** Attempts of the whole proof when the service fails it with an ordinary error (see `runProof`). */
const PROOF_ATTEMPTS = 3
const PROOF_RETRY_DELAY_MS = 250

/** Where the proof writes: under `meta/`, so that `destroy()` removes it and no job or file listing sees it. */
export const PROOF_PREFIX = 'meta/probe/'

/** One write path of a backend, as the proof exercises it. */
export interface ConditionalWritePath {
  /** Passed as `PutOptions.writePath`. */
  readonly writePath: WritePath
  /** Names the path in errors and logs: `PutObject`, `CompleteMultipartUpload (multipart upload)`… */
  readonly name: string
}

/** What a backend tells the proof (see `AbstractJobStore.conditionalWriteProofTarget`). */
export interface ConditionalWriteProofTarget {
  /**
   * The service and bucket (or container) the store writes to, e.g. `s3 http://127.0.0.1:9000 bucket`: stores of
   * the same scope share a verdict in this process. Include whatever can change how writes are served (endpoint,
   * bucket); never a credential.
   */
  readonly scope: string
  /** Every path the backend commits conditional writes on. The first is used to create the scratch object. */
  readonly paths: readonly ConditionalWritePath[]
}

/** The store's primitives, bound, as the proof uses them. */
export interface ProofPrimitives {
  /** `putObject` as it is: a failed condition rejects with {@link PreconditionFailedError}. */
  put(key: string, body: Buffer, options: PutOptions): Promise<string>
  /**
   * A conditional `putObject` that recognises its own write when a retry failed the condition (the core's
   * write-token check): for the steps that must succeed.
   */
  putConditional(key: string, body: Buffer, options: PutOptions): Promise<string>
  deleteObjects(keys: readonly string[]): Promise<void>
}

/** A disproof: the guarantee missing, and where. */
interface Disproof {
  readonly guarantee: ConditionalWriteGuarantee
  readonly path: string
}

/** Verdicts by scope: a proof in progress, a pass (undefined), or a disproof. Ordinary errors are not kept. */
const verdicts = new Map<string, Promise<Disproof | undefined>>()
/** Scopes for which the skipped proof was already warned about. */
const warned = new Set<string>()

/**
 * Proves that the service enforces conditional writes on every path of `target`, or throws
 * {@link ConditionalWritesUnsupportedError}. Runs once per scope per process (concurrent callers share the run).
 * With `skip`, logs and warns (once per scope) instead.
 */
export async function proveConditionalWrites(
  target: ConditionalWriteProofTarget,
  primitives: ProofPrimitives,
  options: { readonly locator: string; readonly skip: boolean; readonly signal?: AbortSignal | undefined },
): Promise<void> {
  if (options.skip) {
    log('conditional-write proof skipped for %s (%s)', target.scope, options.locator)
    if (!warned.has(target.scope)) {
      warned.add(target.scope)
      process.emitWarning(
        `jobstore: conditional writes of ${options.locator} are assumed, not proven (skipConditionalWriteProof or ${SKIP_PROOF_ENV}=1): safe with a single writer only`,
        { code: 'JOBSTORE_CONDITIONAL_WRITES_UNPROVEN' },
      )
    }
    return
  }
  let verdict = verdicts.get(target.scope)
  if (verdict === undefined) {
    // Not under one caller's signal: other callers share the run. Each caller stops waiting on its own signal.
    verdict = runProof(target, primitives)
    verdicts.set(target.scope, verdict)
    verdict.catch(() => {
      if (verdicts.get(target.scope) === verdict) verdicts.delete(target.scope)
    })
  }
  const disproof = await untilAborted(verdict, options.signal)
  if (disproof !== undefined) throw new ConditionalWritesUnsupportedError(options.locator, disproof.guarantee, disproof.path)
}

/** Forgets every verdict of this process (tests). */
export function forgetConditionalWriteVerdicts(): void {
  verdicts.clear()
  warned.clear()
}

/**
 * Runs the proof, again on a fresh scratch key after an ordinary service failure (`JOBSTORE_ERROR`: a network
 * failure or a 5xx the SDK's retries did not absorb, a cut answer), up to {@link PROOF_ATTEMPTS} times: an
 * attempt's failure says nothing about the next one's key, and a store should not fail to open for one bad request
 * among a dozen. A verdict is never retried, nor an error of another kind (abort, bad argument).
 */
async function runProof(target: ConditionalWriteProofTarget, primitives: ProofPrimitives): Promise<Disproof | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await proveOnce(target, primitives)
    } catch (err) {
      if (attempt >= PROOF_ATTEMPTS || !(err instanceof JobStoreError) || err.code !== 'JOBSTORE_ERROR') throw err
      log('conditional-write proof for %s: attempt %d failed (%s); trying again', target.scope, attempt, err.message)
      await sleep(PROOF_RETRY_DELAY_MS * attempt)
    }
  }
}

async function proveOnce(target: ConditionalWriteProofTarget, primitives: ProofPrimitives): Promise<Disproof | undefined> {
  const [first] = target.paths
  if (first === undefined) return undefined
  const started = Date.now()
  const key = `${PROOF_PREFIX}${randomId()}`
  let writes = 0
  // Every write stores other bytes: S3 ETags of single PUTs are the MD5 of the body, and a version token that
  // did not change would make the stale compare-and-swap a current one.
  const body = (): Buffer => Buffer.from(`jobstore conditional-write proof ${writes++} ${randomId()}\n`, 'utf8')
  /** A write that must be rejected: a failed precondition proves, a stored object disproves. */
  const mustReject = async (put: PutOptions, path: ConditionalWritePath, guarantee: ConditionalWriteGuarantee): Promise<Disproof | undefined> => {
    try {
      await primitives.put(key, body(), { ...put, writePath: path.writePath })
    } catch (err) {
      if (err instanceof PreconditionFailedError) return undefined
      throw err
    }
    log('conditional-write proof for %s: the %s path accepted a write that broke %s', target.scope, path.name, guarantee)
    return { guarantee, path: path.name }
  }
  try {
    const created = await primitives.putConditional(key, body(), { ifNoneMatch: true, writePath: first.writePath })
    for (const path of target.paths) {
      const disproof = await mustReject({ ifNoneMatch: true }, path, 'create-if-absent')
      if (disproof !== undefined) return disproof
    }
    // A current compare-and-swap goes through; the version it replaced is then stale on every path.
    await primitives.putConditional(key, body(), { ifMatch: created, writePath: first.writePath })
    for (const path of target.paths) {
      const disproof = await mustReject({ ifMatch: created }, path, 'compare-and-swap')
      if (disproof !== undefined) return disproof
    }
    log(
      'conditional writes proven for %s on %s: %d writes, %d ms',
      target.scope,
      target.paths.map((p) => p.name).join(', '),
      writes,
      Date.now() - started,
    )
    return undefined
  } finally {
    // The scratch object goes in any case (a rejected multipart write has already aborted its upload).
    await primitives.deleteObjects([key]).catch((err: unknown) => {
      log('conditional-write proof: cannot delete %s (destroy() removes it): %s', key, (err as Error).message)
    })
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) return Promise.reject(new AbortedError({ cause: signal.reason }))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AbortedError({ cause: signal.reason }))
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
