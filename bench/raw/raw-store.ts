/**
 * The "limit" baselines: the same operations as the job store's, done directly with each service's SDK (or
 * `node:fs`), at the same concurrency, with no job store in between. Keys are laid out like jobstore's
 * (`jobs/<2>/<id>`, `files/<2>/<id>`), under the baseline's own prefix in the same bucket or folder.
 */
import type { Readable } from 'node:stream'

export interface RawStore {
  /** Creates the bucket, container or folder when missing. */
  setup(): Promise<void>
  /** Create-if-absent write (what the store does for new jobs and files). */
  putIfAbsent(key: string, data: Buffer): Promise<void>
  /** Unconditional, atomic replace (what the store does for `update(desc)`). */
  put(key: string, data: Buffer): Promise<void>
  get(key: string): Promise<Buffer>
  delete(key: string): Promise<void>
  /** Every key under `prefix` (ending in `/`), relative to the baseline's root. */
  list(prefix: string): AsyncIterable<string>
  /** Streams a large body in (multipart/block/resumable upload with the backend's part size and concurrency). */
  putStream(key: string, body: Readable): Promise<void>
  getStream(key: string): Promise<Readable>
  /** Deletes everything under the baseline's root (untimed cleanup). */
  destroy(): Promise<void>
  /** One line saying exactly what the baseline does, for the report. */
}

/** Part size and parts in flight of the cloud backends' streaming writes (their defaults), used by the baselines too. */
export const STREAM_PART_SIZE = 8 * 1024 * 1024
export const STREAM_CONCURRENCY = 4
