/** An SDK workaround: the storage SDK's retry policy leaves some transient answers unretried (see below). */
import { debuglog } from 'node:util'
import type { BlobServiceClient } from '@azure/storage-blob'
import { sleep } from '../../src/concurrency.js'

const log = debuglog('jobstore:azure')

/**
 * Answers that mean "try again" and that the storage SDK's retry policy does not retry: it retries 500, 503 and
 * lost connections only (storage-common StorageRetryPolicyV2), so a 408 (Azurite answers one under load), a 429,
 * a 502 or a 504 from a proxy failed the operation at once.
 */
const TRANSIENT_STATUSES = new Set([408, 429, 502, 504])
/** Tries per request for those answers: the SDK's default `maxTries` for the others. */
const TRANSIENT_TRIES = 4

/** The parts of core-rest-pipeline's request, response and pipeline the retry policy uses. */
interface PipelineRequestLike {
  readonly abortSignal?: AbortSignal
}
interface PipelineResponseLike {
  readonly status: number
  readonly headers: { get(name: string): string | undefined }
  readonly readableStreamBody?: NodeJS.ReadableStream
}
interface CorePipelineLike {
  addPolicy(
    policy: {
      name: string
      sendRequest(request: PipelineRequestLike, next: (request: PipelineRequestLike) => Promise<PipelineResponseLike>): Promise<PipelineResponseLike>
    },
    options: { afterPhase: 'Retry' },
  ): void
}

/**
 * Adds to the client's pipeline (shared by the container and blob clients made from it) a retry of the answers in
 * {@link TRANSIENT_STATUSES}: inside the SDK's retry policy and before signing, so every try is signed anew; with
 * exponential backoff (or the answer's `Retry-After`, up to 10 s). A write the service acted on before such an
 * answer is retried like one whose answer was lost: the core's write token recognises it. The SDK offers no option
 * for retried statuses, so the pipeline is reached through the client's `storageClientContext`.
 */
export function retryTransientAnswers(service: BlobServiceClient): void {
  const pipeline = (service as unknown as { storageClientContext?: { pipeline?: CorePipelineLike } }).storageClientContext?.pipeline
  if (typeof pipeline?.addPolicy !== 'function') {
    log('this @azure/storage-blob has no storageClientContext.pipeline: 408/429/502/504 answers are not retried')
    return
  }
  pipeline.addPolicy(
    {
      name: 'jobstoreTransientAnswerRetry',
      async sendRequest(request, next) {
        for (let attempt = 1; ; attempt++) {
          const response = await next(request)
          if (!TRANSIENT_STATUSES.has(response.status) || attempt >= TRANSIENT_TRIES) return response
          // A streamed answer (a download) holds its connection until its body is consumed.
          ;(response.readableStreamBody as { destroy?: () => void } | undefined)?.destroy?.()
          const retryAfter = Number(response.headers.get('retry-after'))
          const backoff = 250 * 2 ** (attempt - 1) * (0.5 + Math.random())
          log('HTTP %d: try %d of %d', response.status, attempt + 1, TRANSIENT_TRIES)
          await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 10_000) : backoff, request.abortSignal)
        }
      },
    },
    { afterPhase: 'Retry' },
  )
}
