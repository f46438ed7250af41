/**
 * Azure's uncommitted blocks, which a write of several requests stages before its Put Block List: the service
 * keeps one set per blob name, a concurrent commit or delete of the name discards them, and there is no call to
 * drop them beside a committed blob. What the backend does about that: block IDs of one length per write, a
 * record of what a write staged, the removal of a failed write's blocks when no committed blob holds them, and
 * what a commit whose blocks were discarded means.
 */
import { debuglog } from 'node:util'
import type { BlobClient, BlockBlobClient, RestError } from '@azure/storage-blob'
import { JobStoreError } from '../../src/errors.js'
import { PreconditionFailedError, type PutOptions } from '../../src/storage.js'
import { isNotFound, isPreconditionFailed } from './errors.js'

const log = debuglog('jobstore:azure')

/** What these functions need of a write. */
export interface StagedWrite {
  readonly key: string
  readonly blob: BlockBlobClient
  /** Random per write: names its blocks, apart from those of concurrent writers of the same blob. */
  readonly writeId: string
  readonly options: PutOptions
}

/** Block IDs: base64 of a fixed-length string, as Azure requires all IDs of one blob to have the same length. */
export function blockId(writeId: string, index: number): string {
  return Buffer.from(`${writeId}-${String(index).padStart(7, '0')}`).toString('base64')
}

/** The blocks one write staged: whether it sent any, and the service's date of the earliest answer. */
export class StagedBlocks {
  sent = false
  first: Date | undefined
  answered(date: Date | undefined): void {
    if (date !== undefined && (this.first === undefined || date < this.first)) this.first = date
  }
}

/**
 * The commit named blocks the service no longer has: a concurrent commit or delete of the same blob discarded
 * this write's uncommitted blocks (Azure keeps one set of uncommitted blocks per blob name). Decides what that
 * means for this write.
 */
export async function blocksDiscarded(write: StagedWrite, err: unknown, firstStaged: Date | undefined, where: string): Promise<string> {
  let current: { etag?: string; lastModified?: Date } | undefined
  try {
    current = await write.blob.getProperties()
  } catch (headError) {
    if (!isNotFound(headError)) throw headError
  }
  const { ifNoneMatch, ifMatch } = write.options
  if ((ifNoneMatch && current !== undefined) || (ifMatch !== undefined && current?.etag !== ifMatch)) {
    throw new PreconditionFailedError(write.key, { cause: err })
  }
  if (!ifNoneMatch && ifMatch === undefined && current?.lastModified !== undefined && firstStaged !== undefined) {
    // Last writer wins, and another writer committed after this one began: this write took effect first and was
    // replaced at once. Its version token matches nothing, as the version it would name is gone.
    if (current.lastModified.getTime() >= Math.floor(firstStaged.getTime() / 1000) * 1000) {
      log('%s: superseded by a concurrent commit while uploading', write.key)
      return `"superseded-${write.writeId}"`
    }
  }
  throw new JobStoreError(
    `Azure Blob upload of ${where} failed: its staged blocks were discarded by a concurrent write or cleanup of the same blob before the commit; nothing was stored, try again`,
    { cause: err },
  )
}

/**
 * Removes this write's uncommitted blocks after a failure, when no committed blob has them: the name then
 * exists only as uncommitted blocks, and deleting it removes them. When a committed blob is there, Azure has no
 * call to drop uncommitted blocks without rewriting the blob: they stay until its next commit (on Azure also
 * its next Put Blob) or Azure's garbage collection after 7 days.
 */
export async function removeStagedBlocks(write: StagedWrite, staged: StagedBlocks): Promise<void> {
  // A block whose answer was lost (an abort, a reset) may be there all the same.
  if (!staged.sent) return
  try {
    const fallback = staged.first !== undefined ? new Date(staged.first.getTime() - 1000) : undefined
    if (!(await deleteIfUncommittedOnly(write.blob, fallback))) {
      log('%s: a committed blob keeps the uncommitted blocks of a failed write until its next commit', write.key)
    }
  } catch (err) {
    log('%s: uncommitted blocks of a failed write not removed: %s', write.key, (err as Error).message)
  }
}

/**
 * Deletes `blob` if it exists only as uncommitted blocks; true if it did. A HEAD first (404: no committed
 * blob), then a delete with `If-Unmodified-Since` a second before the HEAD's answer (by the service's clock),
 * so that a blob another writer commits in between stays. `fallback` is the condition when the 404 carries no
 * date.
 */
export async function deleteIfUncommittedOnly(blob: BlobClient, fallback?: Date): Promise<boolean> {
  let since = fallback
  try {
    await blob.getProperties()
    return false
  } catch (err) {
    if (!isNotFound(err)) throw err
    const date = (err as RestError).response?.headers.get('date')
    const seen = date === undefined ? NaN : Date.parse(date)
    if (!Number.isNaN(seen)) since = new Date(Math.floor(seen / 1000) * 1000 - 1000)
  }
  if (since === undefined) return false
  try {
    await blob.delete({ conditions: { ifUnmodifiedSince: since } })
    return true
  } catch (err) {
    if (isNotFound(err) || isPreconditionFailed(err)) return false
    throw err
  }
}
