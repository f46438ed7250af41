/**
 * The `node:fs` calls the file backend makes on its hot paths, as promises over the callback API.
 *
 * Why not `node:fs/promises`: on Node 20 its calls cost two to three times more than the callback API for the
 * small operations a job store makes by the million (each `FileHandle` is a tracked object with its own promise
 * plumbing, and every call goes through it). Measured on this project's 2-vCPU machines, 32 calls in flight on
 * 2 KiB files: open + fstat + read + close through a `FileHandle` 15k–28k/s against 25k–55k/s with callbacks
 * (`npx tsx bench/micro/fs-calls.mts`); `stat` 37k–70k/s against 98k–129k/s. File descriptors here are plain numbers: every path that opens one closes
 * it in a `finally`.
 */
import fs from 'node:fs'
import { dirname } from 'node:path'
import { promisify } from 'node:util'

export const open = promisify(fs.open)
export const close = promisify(fs.close)
export const fstat = promisify(fs.fstat)
export const fsync = promisify(fs.fsync)
export const fchmod = promisify(fs.fchmod)
export const stat = promisify(fs.stat)
export const lstat = promisify(fs.lstat)
export const link = promisify(fs.link)
export const rename = promisify(fs.rename)
export const unlink = promisify(fs.unlink)
export const mkdir = promisify(fs.mkdir)
export const read = promisify(fs.read)
export const write = promisify(fs.write)
export const readFile = promisify(fs.readFile)
/** realpath(3): every component of a path resolved in one call to the thread pool (the JS version lstats each). */
export const realpath = promisify(fs.realpath.native)
export const statfs = promisify(fs.statfs)
/**
 * symlink(2), always through the thread pool, also where the backend makes its other small calls directly: it
 * allocates an inode, and ext4 without a journal skips every inode deleted in the last minutes while looking for a
 * free one (the kernel's recently_deleted()), ~0.5 ms of system time per call on a disk with churn: as a direct
 * call, the event loop would wait that long.
 */
export const symlink = promisify(fs.symlink)

/** Writes all of `data` at the descriptor's position (a write may take less than it is given). */
export async function writeAll(fd: number, data: Buffer): Promise<void> {
  let offset = 0
  while (offset < data.length) {
    const { bytesWritten } = await write(fd, data, offset, data.length - offset)
    offset += bytesWritten
  }
}

/**
 * Reads up to `size` bytes from offset 0; fewer if the file is shorter (the caller's size check reports that).
 */
export async function readExactly(fd: number, size: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(size)
  let filled = 0
  while (filled < size) {
    const { bytesRead } = await read(fd, buffer, filled, size - filled, filled)
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return filled === size ? buffer : buffer.subarray(0, filled)
}

/** Opens `path`, calls `body` with the descriptor, closes it whatever happens. */
export async function withFd<T>(path: string, flags: string | number, body: (fd: number) => Promise<T>, mode?: number): Promise<T> {
  const fd = await open(path, flags, mode)
  try {
    return await body(fd)
  } finally {
    await close(fd)
  }
}

/**
 * `statfs` types of local file systems, where a metadata call costs a few microseconds in the kernel: less than a
 * trip to libuv's thread pool, so the backend may make it synchronously (`FileJobStoreOptions.directCalls`).
 * Anything else (nfs, lustre, gpfs, cifs, fuse, beegfs, ceph, unknown) may take milliseconds: asynchronous.
 */
const LOCAL_FILE_SYSTEMS = new Set([
  0xef53, // ext2/3/4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x2fc12fc1, // zfs
  0x794c7630, // overlayfs
  0x858458f6, // ramfs
  0xf2f52010, // f2fs
])

/** Whether the folder `path` (or its nearest existing parent) is on a local file system (see LOCAL_FILE_SYSTEMS). */
export async function isLocalFileSystem(path: string): Promise<boolean> {
  for (let dir = path; ; ) {
    try {
      return LOCAL_FILE_SYSTEMS.has((await statfs(dir)).type)
    } catch (err) {
      const parent = dirname(dir)
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === dir) return false
      dir = parent
    }
  }
}

/**
 * The metadata calls of the digest sidecars and the per-key locks (key-lock.ts), made directly (synchronously) or
 * through the thread pool. `symlink` goes through the pool in both (see `symlink` above): it allocates an inode,
 * which is not always a few microseconds.
 */
export interface MetadataCalls {
  symlink(target: string, path: string): Promise<void>
  readlink(path: string): Promise<string>
  unlink(path: string): Promise<void>
  stat(path: string): Promise<fs.BigIntStats>
}

export const threadPoolCalls: MetadataCalls = {
  symlink: (target, path) => symlink(target, path),
  readlink: promisify(fs.readlink),
  unlink,
  stat: (path) => stat(path, { bigint: true }),
}

/** Synchronous calls behind the same interface: one system call each, no thread-pool round trip. */
export const directCalls: MetadataCalls = {
  symlink: (target, path) => symlink(target, path),
  readlink: async (path) => fs.readlinkSync(path),
  unlink: async (path) => fs.unlinkSync(path),
  stat: async (path) => fs.statSync(path, { bigint: true }),
}
