/**
 * Deletes of blobs by name: Blob Batch requests (256 deletes each), in parallel; single deletes where the service
 * refuses batches (some emulators, some account kinds: then for good), or for a batch that failed transiently.
 */
import { debuglog } from 'node:util'
import type { ContainerClient } from '@azure/storage-blob'
import { chunk, forEachConcurrent, throwIfAborted } from '../../src/concurrency.js'
import { JobStoreError } from '../../src/errors.js'
import { httpStatus, isAbort, isContainerNotFound, isNotFound, isNotFoundCode, wrapAzureError } from './errors.js'

const log = debuglog('jobstore:azure')

/** Sub-requests per Blob Batch request (the service's limit). */
const BATCH_SIZE = 256

export class BlobDeleter {
  #batch: boolean
  readonly #concurrency: number
  readonly #where: (name: string) => string

  /** `batch`: use Blob Batch (the `batchDelete` option); `where` names a blob in messages. */
  constructor(batch: boolean, concurrency: number, where: (name: string) => string) {
    this.#batch = batch
    this.#concurrency = concurrency
    this.#where = where
  }

  /** Deletes blobs by name: Blob Batch requests of 256, `concurrency` at once; missing blobs are fine. */
  async delete(container: ContainerClient, names: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    await forEachConcurrent(chunk(names, BATCH_SIZE), this.#concurrency, async (part) => {
      throwIfAborted(signal)
      if (this.#batch && part.length > 1) {
        let response
        try {
          response = await container.getBlobBatchClient().deleteBlobs(
            part.map((name) => container.getBlobClient(name)),
            { deleteSnapshots: 'include', ...(signal ? { abortSignal: signal } : {}) },
          )
        } catch (err) {
          if (isAbort(err, signal)) throw wrapAzureError(err, 'batch delete', signal)
          if (isContainerNotFound(err)) return
          // A service that refuses batches (some emulators, some account kinds): single deletes from now on,
          // if they work. A transient failure (5xx, a lost connection) only falls back for this batch.
          log('batch delete failed (%s): falling back to single deletes', (err as Error).message)
          await this.#deleteEach(container, part, signal)
          const status = httpStatus(err)
          if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) this.#batch = false
          return
        }
        // A missing blob is fine; a 404 with another code (or none) is not proof that it is gone.
        const failed = response.subResponses.find((sub) => sub.status >= 300 && !(sub.status === 404 && isNotFoundCode(sub.errorCode)))
        if (failed !== undefined) {
          throw new JobStoreError(
            `Azure Blob delete of ${this.#where(decodeURIComponent(new URL(failed._request.url).pathname))} failed: ${failed.errorCode ?? 'Error'} (HTTP ${failed.status})`,
          )
        }
        return
      }
      await this.#deleteEach(container, part, signal)
    })
  }

  async #deleteEach(container: ContainerClient, names: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    await forEachConcurrent(names, this.#concurrency, async (name) => {
      try {
        await container.getBlobClient(name).delete({ deleteSnapshots: 'include', ...(signal ? { abortSignal: signal } : {}) })
      } catch (err) {
        if (!isNotFound(err)) throw wrapAzureError(err, `delete of ${this.#where(name)}`, signal)
      }
    })
  }
}
