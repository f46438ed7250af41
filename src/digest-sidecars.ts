/**
 * Digest sidecars, for backends whose object metadata is fixed when a write starts, before the core's digest of
 * the body is known (S3 multipart uploads, GCS resumable uploads). The digest then goes into a small object of its
 * own, `digests/<key>~<write ID>`, saved before the write commits, and the object's metadata names it; a write of
 * one request (the body all in before it is sent) carries the digest in its metadata instead. Written once here:
 * the names, reading an object's digest back, and removing the sidecars no object names any more.
 */
import { forEachConcurrent } from './concurrency.js'
import { backendEntries } from './layout.js'
import { isFileDigest } from './streams.js'

/** Metadata entries: the core's digest of a file (base64 CRC32, see FILE_DIGEST_ALGORITHM), or the name of its sidecar. */
export const DIGEST_METADATA = { digest: 'jobstore-crc32', sidecar: 'jobstore-crc32-sidecar' } as const

/** Where sidecars live, under the store's prefix. */
export const DIGESTS_PREFIX = backendEntries.digests

/** The store-relative key of a write's sidecar: named by the write's ID, so that concurrent writers never share one. */
export function sidecarKey(key: string, writeId: string): string {
  return `${DIGESTS_PREFIX}${key}~${writeId}`
}

/**
 * The core's digest of an object from its metadata: there, or in the sidecar it names (`readSidecar` reads it by
 * that name, undefined when it is gone). Undefined when the object has none: the core then reports the file as
 * stored without one.
 */
export async function digestFromMetadata(
  metadata: Readonly<Record<string, unknown>> | undefined,
  readSidecar: (name: string) => Promise<string | undefined>,
): Promise<string | undefined> {
  const inline = metadata?.[DIGEST_METADATA.digest]
  if (typeof inline === 'string') return isFileDigest(inline) ? inline : undefined
  const sidecar = metadata?.[DIGEST_METADATA.sidecar]
  if (typeof sidecar !== 'string') return undefined
  const digest = await readSidecar(sidecar)
  return isFileDigest(digest) ? digest : undefined
}

/** Options of {@link removeOrphanSidecars}. */
export interface OrphanSidecarOptions {
  /** The sidecars: full names, and when each was made (ms; NaN when unknown: kept). */
  readonly sidecars: AsyncIterable<{ readonly name: string; readonly created: number }>
  /** The full name of the store's sidecar prefix (`<prefix>/digests/`). */
  readonly prefix: string
  /** Sidecars made after this (ms) are left alone: their write may still be going on. */
  readonly cutoff: number
  /** The sidecar name the object at a store-relative key names in its metadata (undefined: none, or no object). */
  readonly namedBy: (key: string) => Promise<string | undefined>
  /** Deletes sidecars by full name. */
  readonly deleteNames: (names: string[]) => Promise<void>
  readonly concurrency: number
}

/**
 * Deletes the sidecars older than the cutoff whose object is gone or names another one (replaced, deleted, or a
 * write that failed before its commit). A lookup of the object per sidecar: only multipart writes make them.
 * Returns how many were deleted.
 */
export async function removeOrphanSidecars(options: OrphanSidecarOptions): Promise<number> {
  const orphans: string[] = []
  await forEachConcurrent(options.sidecars, options.concurrency, async ({ name, created }) => {
    if (!(created <= options.cutoff)) return
    const relative = name.slice(options.prefix.length)
    const at = relative.lastIndexOf('~')
    if (at < 0) return
    if ((await options.namedBy(relative.slice(0, at))) !== name) orphans.push(name)
  })
  if (orphans.length > 0) await options.deleteNames(orphans)
  return orphans.length
}
