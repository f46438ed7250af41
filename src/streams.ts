/** Stream helpers: end-to-end verification of reads, and the readable type the store hands out. */
import { createHash } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream'
import { crc32c } from './crc32c.js'
import { IntegrityError } from './errors.js'
import type { ExpectedChecksum, PutOptions } from './storage.js'

/** A stream handed out by the store's read methods, with what the store knows about the object. */
export interface StoreReadable extends Readable {
  /** Version token of the bytes being read: pass it as `ifVersion` to a conditional update. */
  readonly version: string
  /** Size in bytes as stored (for protected shared files: of the ciphertext). */
  readonly storedSize: number
  /** Whether the file was stored as executable. */
  readonly executable: boolean
}

/**
 * A Transform that counts and hashes the bytes passing through and fails with {@link IntegrityError} at the end
 * if their count is not `expectedSize` or their digest is not `checksum`. Never lets a short or corrupted read
 * end quietly.
 */
export function createVerifyStream(what: string, expectedSize: number, checksum?: ExpectedChecksum): Transform {
  let seen = 0
  let hash: Hasher | undefined
  if (checksum !== undefined) hash = newHasher(checksum.algorithm)
  return new Transform({
    transform(data: Buffer, _encoding, callback: TransformCallback) {
      seen += data.length
      if (seen > expectedSize) return callback(tooLong(what, expectedSize))
      hash?.update(data)
      callback(null, data)
    },
    flush(callback) {
      callback(finalCheck(what, seen, expectedSize, checksum, hash))
    },
  })
}

/**
 * The same checks as {@link createVerifyStream} on bytes already in memory: the whole object, read in one call.
 * Returns them, or throws {@link IntegrityError}.
 */
export function verifyBytes(what: string, data: Buffer, expectedSize: number, checksum?: ExpectedChecksum): Buffer {
  if (data.length > expectedSize) throw tooLong(what, expectedSize)
  const hash = checksum !== undefined ? newHasher(checksum.algorithm).update(data) : undefined
  const error = finalCheck(what, data.length, expectedSize, checksum, hash)
  if (error !== null) throw error
  return data
}

function tooLong(what: string, expectedSize: number): IntegrityError {
  return new IntegrityError(`${what}: read more than the ${expectedSize} bytes stored`)
}

function finalCheck(
  what: string,
  seen: number,
  expectedSize: number,
  checksum: ExpectedChecksum | undefined,
  hash: Hasher | undefined,
): IntegrityError | null {
  if (seen !== expectedSize) return new IntegrityError(`${what}: read ${seen} bytes of the ${expectedSize} stored (short read)`)
  if (hash !== undefined && checksum !== undefined && hash.digest('base64') !== checksum.digest) {
    return new IntegrityError(`${what}: ${checksum.algorithm} of the bytes read does not match the stored checksum`)
  }
  return null
}

/**
 * The algorithm of the core's own digest of a file's bytes ({@link PutOptions.digest}): CRC32, through node:zlib.
 * Three times faster than SHA-256 with SHA-NI here (14 µs against 45 µs for 64 KiB), which keeps a verified 64 KiB
 * read within its budget; it detects every change of up to 32 consecutive bits (a flipped byte: always) and misses
 * other damage with probability 2^-32. It is no defence against someone who can rewrite the digest too: that is
 * what protected (encrypted, authenticated) shared files are for.
 */
export const FILE_DIGEST_ALGORITHM = 'crc32'

/** Incremental digest of a `node:crypto` algorithm or `crc32`. */
export interface Hasher {
  update(data: Buffer): Hasher
  digest(encoding: 'base64'): string
}

/** The CRC algorithms {@link newHasher} knows besides node:crypto's: CRC32 (node:zlib) and CRC32C (GCS's). */
const CRCS: Readonly<Record<string, (data: Uint8Array, previous?: number) => number>> = { crc32, crc32c }

/**
 * A {@link Hasher} of a `node:crypto` algorithm (`md5`, `sha256`…), `crc32` or `crc32c` (digests of a CRC: its 4
 * bytes big-endian, as S3 and GCS give them).
 */
export function newHasher(algorithm: string): Hasher {
  const crc = CRCS[algorithm]
  if (crc === undefined) return createHash(algorithm)
  let value = 0
  const hasher: Hasher = {
    update(data) {
      value = crc(data, value)
      return hasher
    },
    digest: () => crcBase64(value),
  }
  return hasher
}

/** The digest (base64) of bytes in memory, in one of {@link newHasher}'s algorithms. */
export function digestBase64(algorithm: string, data: Buffer): string {
  return newHasher(algorithm).update(data).digest('base64')
}

function crcBase64(value: number): string {
  const out = Buffer.alloc(4)
  out.writeUInt32BE(value >>> 0)
  return out.toString('base64')
}

/**
 * Whether `value` is a file digest as backends store it (`ObjectInfo.digest`): the core's own, base64 of the 4 bytes
 * of a {@link FILE_DIGEST_ALGORITHM}; or `md5:<base64>`, the service's MD5 of an object copied server-side into the
 * store, adopted as its digest (the bytes never passed through the core to be hashed).
 */
export function isFileDigest(value: unknown): value is string {
  return typeof value === 'string' && (/^[A-Za-z0-9+/]{6}==$/.test(value) || /^md5:[A-Za-z0-9+/]{22}==$/.test(value))
}

/** The checksum a stored file digest (see {@link isFileDigest}) stands for. */
export function checksumOfFileDigest(value: string): ExpectedChecksum {
  if (value.startsWith('md5:')) return { algorithm: 'md5', digest: value.slice('md5:'.length) }
  return { algorithm: FILE_DIGEST_ALGORITHM, digest: value }
}

/**
 * A pass-through that computes the core's digest ({@link FILE_DIGEST_ALGORITHM}) of the bytes going through, for
 * {@link PutOptions.digest}: `digest()` gives it once the stream has ended, and throws before.
 */
export class DigestStream extends Transform {
  readonly #hash = newHasher(FILE_DIGEST_ALGORITHM)
  #digest: string | undefined

  constructor(highWaterMark = 256 * 1024) {
    super({ highWaterMark })
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk)
    callback(null, chunk)
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash.digest('base64')
    callback()
  }

  /** The digest (base64) of everything that went through. */
  readonly digest = (): string => {
    if (this.#digest === undefined) throw new Error('the digest of a body is asked for before the body ended')
    return this.#digest
  }
}

/** {@link PutOptions.digest} of bytes in memory. */
export function digestOf(data: Buffer): () => string {
  let digest: string | undefined
  return () => (digest ??= newHasher(FILE_DIGEST_ALGORITHM).update(data).digest('base64'))
}

/** Attaches the store's metadata to a readable. */
export function asStoreReadable(
  stream: Readable,
  meta: { version: string; storedSize: number; executable: boolean },
): StoreReadable {
  return Object.assign(stream, meta) as StoreReadable
}

/**
 * Reads a whole stream into a Buffer. Only for objects the store itself keeps small (job descriptions, config,
 * stats messages); file contents are never buffered.
 */
export async function readToBuffer(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : (part as Buffer))
  return Buffer.concat(parts)
}

/** A writable handed to body callbacks: write to it, optionally end it; the store ends it when the callback returns. */
export type BodyWritable = PassThrough
