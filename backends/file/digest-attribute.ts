/**
 * The core's digest of a stored file, kept on the file's own inode as the extended attribute `user.jobstore.digest`
 * (value `crc32-<hex>`, the same text a digest sidecar holds).
 *
 * Why an attribute rather than the sidecar link alone: a sidecar is one more inode per file, and on some file
 * systems allocating an inode costs far more than writing 64 KiB (ext4 without a journal skips every inode deleted
 * in the last minutes while it looks for a free one: ~0.5–1 ms of system time per inode on a disk with churn). An
 * attribute of a few bytes lives inside the inode: ~10 µs to set, no allocation, kept across `rename` and by every
 * hard link, and an in-place edit of the file (same inode) is still checked against it.
 *
 * Node has no xattr call: `@napi-rs/xattr` (an optional dependency with prebuilt binaries) makes them. Where it is
 * not installed, or the file system refuses user attributes (NFSv3, many FUSE file systems, tmpfs before Linux 6.6),
 * the backend falls back to sidecars (see file-job-store.ts).
 */
import { createRequire } from 'node:module'

/** The attribute's name: in the `user.` namespace, which an unprivileged owner of the file may set. */
export const DIGEST_ATTRIBUTE = 'user.jobstore.digest'

/** The calls the backend makes; all act on the path itself, never through a final symbolic link. */
export interface AttributeCalls {
  /** Sets the attribute; throws (ENOTSUP and the like) where the file system has no user attributes. */
  set(path: string, value: string): Promise<void>
  setSync(path: string, value: string): void
  /** The attribute's value, or undefined if there is none, or the file is not there, or it cannot be read. */
  get(path: string): Promise<string | undefined>
  getSync(path: string): string | undefined
}

interface XattrModule {
  getAttribute(path: string, name: string): Promise<Buffer | null>
  getAttributeSync(path: string, name: string): Buffer | null
  setAttribute(path: string, name: string, value: Buffer | string): Promise<void>
  setAttributeSync(path: string, name: string, value: Uint8Array | string): void
}

function load(): AttributeCalls | undefined {
  // JOBSTORE_FILE_DIGEST_ATTRIBUTES=0: sidecars only, as on a platform without the module (tests of the fallback).
  if (process.env['JOBSTORE_FILE_DIGEST_ATTRIBUTES'] === '0') return undefined
  let xattr: XattrModule
  try {
    xattr = createRequire(import.meta.url)('@napi-rs/xattr') as XattrModule
  } catch {
    return undefined // not installed, or no prebuilt binary for this platform
  }
  const text = (value: Buffer | null): string | undefined => (value === null ? undefined : value.toString('latin1'))
  return {
    set: (path, value) => xattr.setAttribute(path, DIGEST_ATTRIBUTE, value),
    setSync: (path, value) => xattr.setAttributeSync(path, DIGEST_ATTRIBUTE, value),
    get: async (path) => text(await xattr.getAttribute(path, DIGEST_ATTRIBUTE)),
    getSync: (path) => text(xattr.getAttributeSync(path, DIGEST_ATTRIBUTE)),
  }
}

/** The attribute calls of this process, or undefined where there are none (the module is missing). */
export const attributeCalls: AttributeCalls | undefined = load()
