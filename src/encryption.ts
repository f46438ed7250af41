/**
 * Encryption at rest for protected shared files: AES-256-GCM in 64 KiB chunks, so it streams with bounded memory.
 *
 * Format: `MAGIC (16 bytes) | salt (32 bytes) | chunk…`. The file key is HKDF-SHA256(key file bytes, salt), fresh
 * per file, so nonces can be the chunk counter. Each chunk is `ciphertext | tag (16)`; its nonce is the 11-byte
 * counter plus a final-chunk flag byte, so reordering, dropping or truncating chunks fails authentication.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import { EncryptionError, InvalidArgumentError } from './errors.js'

/** First bytes of every encrypted object. */
export const ENCRYPTION_MAGIC = Buffer.from('jobstore-aead-v1', 'ascii')
const SALT_LENGTH = 32
const TAG_LENGTH = 16
/** Plaintext bytes per chunk. */
export const PLAINTEXT_CHUNK = 64 * 1024
const CIPHERTEXT_CHUNK = PLAINTEXT_CHUNK + TAG_LENGTH
const HEADER_LENGTH = ENCRYPTION_MAGIC.length + SALT_LENGTH

/** Least size of a key file, in bytes. */
export const MIN_KEY_FILE_BYTES = 32

/**
 * Reads the key file named in the config: a regular file of at least 32 bytes of key material.
 * @throws EncryptionError naming the path when it is missing, unreadable, not a regular file or too short.
 */
export async function loadKeyFile(path: string): Promise<Buffer> {
  const shown = JSON.stringify(path)
  let bytes: Buffer
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, for ever.
    const handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
    try {
      const info = await handle.stat()
      if (!info.isFile()) throw new EncryptionError(`the encryption key file ${shown} is not a regular file`)
      bytes = await handle.readFile()
    } finally {
      await handle.close()
    }
  } catch (err) {
    if (err instanceof EncryptionError) throw err
    const code = (err as NodeJS.ErrnoException | undefined)?.code
    const why = code === 'ENOENT' ? 'there is no such file' : code === 'EACCES' ? 'permission denied' : ((err as Error)?.message ?? String(err))
    throw new EncryptionError(`cannot read the encryption key file ${shown}: ${why}`, { cause: err })
  }
  // The bytes as they are: a binary key may well begin or end with what looks like white space.
  if (bytes.length < MIN_KEY_FILE_BYTES) {
    throw new EncryptionError(`the encryption key file ${shown} holds ${bytes.length} bytes: it must hold at least ${MIN_KEY_FILE_BYTES}`)
  }
  return bytes
}

/**
 * Checks a key file for the config (`initialize`, `writeConfig`), before anything is written: it must load as
 * {@link loadKeyFile} loads it. Returns the path made absolute (a relative one counts from the working folder
 * now), so that every worker finds the same file whatever its own working folder.
 * @throws InvalidArgumentError when `path` is not a non-empty string; EncryptionError when the file cannot serve.
 */
export async function checkKeyFile(path: unknown): Promise<string> {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new InvalidArgumentError(`encryptionKeyPath must be the path of a key file, got ${JSON.stringify(path)}`)
  }
  const absolute = resolve(path)
  await loadKeyFile(absolute)
  return absolute
}

function fileKey(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, 'jobstore protected file', 32))
}

function nonce(counter: number, final: boolean): Buffer {
  const iv = Buffer.alloc(12)
  iv.writeUIntBE(counter, 5, 6) // 48-bit counter: 2^48 chunks of 64 KiB is far beyond any object
  iv[11] = final ? 1 : 0
  return iv
}

/** A Transform that encrypts its input. */
export function createEncryptStream(master: Buffer): Transform {
  const salt = randomBytes(SALT_LENGTH)
  const key = fileKey(master, salt)
  let counter = 0
  let pending: Buffer = Buffer.alloc(0)
  const seal = (plain: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv('aes-256-gcm', key, nonce(counter++, final))
    return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
  }
  return new Transform({
    construct(callback) {
      this.push(Buffer.concat([ENCRYPTION_MAGIC, salt]))
      callback()
    },
    transform(data: Buffer, _encoding, callback: TransformCallback) {
      pending = pending.length === 0 ? data : Buffer.concat([pending, data])
      // Keep at least one byte back: the last chunk, even a full one, must be sealed as final.
      while (pending.length > PLAINTEXT_CHUNK) {
        this.push(seal(pending.subarray(0, PLAINTEXT_CHUNK), false))
        pending = pending.subarray(PLAINTEXT_CHUNK)
      }
      callback()
    },
    flush(callback) {
      this.push(seal(pending, true))
      callback()
    },
  })
}

/**
 * A Transform that decrypts what {@link createEncryptStream} wrote; errors with {@link EncryptionError}. With
 * `plaintextAllowed`, input that does not start with {@link ENCRYPTION_MAGIC} passes through unchanged (shared files
 * may be stored in the clear).
 */
export function createDecryptStream(master: Buffer | undefined, what: string, plaintextAllowed = false): Transform {
  let passThrough = false
  let header: Buffer | undefined
  let key: Buffer | undefined
  let counter = 0
  let pending: Buffer = Buffer.alloc(0)
  const open = (sealed: Buffer, final: boolean): Buffer => {
    if (sealed.length < TAG_LENGTH) throw new EncryptionError(`${what} is truncated`)
    const decipher = createDecipheriv('aes-256-gcm', key as Buffer, nonce(counter++, final))
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH))
    try {
      return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_LENGTH)), decipher.final()])
    } catch (err) {
      throw new EncryptionError(`cannot decrypt ${what}: wrong key, or the stored bytes were altered or truncated`, {
        cause: err,
      })
    }
  }
  return new Transform({
    transform(data: Buffer, _encoding, callback: TransformCallback) {
      if (passThrough) return callback(null, data)
      try {
        pending = pending.length === 0 ? data : Buffer.concat([pending, data])
        if (header === undefined) {
          const magicSoFar = pending.subarray(0, ENCRYPTION_MAGIC.length)
          if (!ENCRYPTION_MAGIC.subarray(0, magicSoFar.length).equals(magicSoFar)) {
            if (!plaintextAllowed) throw new EncryptionError(`${what} is not an encrypted object`)
            passThrough = true
            return callback(null, pending)
          }
          if (pending.length < HEADER_LENGTH) return callback()
          header = pending.subarray(0, HEADER_LENGTH)
          if (master === undefined) {
            throw new EncryptionError(`${what} is encrypted, and the store's config names no encryption key file`)
          }
          key = fileKey(master, header.subarray(ENCRYPTION_MAGIC.length))
          pending = pending.subarray(HEADER_LENGTH)
        }
        while (pending.length > CIPHERTEXT_CHUNK) {
          this.push(open(pending.subarray(0, CIPHERTEXT_CHUNK), false))
          pending = pending.subarray(CIPHERTEXT_CHUNK)
        }
        callback()
      } catch (err) {
        callback(err as Error)
      }
    },
    flush(callback) {
      if (passThrough) return callback()
      try {
        if (header === undefined) {
          // Shorter than a header: plaintext that happens to start like the magic, or a truncated object.
          if (plaintextAllowed && pending.length < ENCRYPTION_MAGIC.length) return callback(null, pending)
          throw new EncryptionError(`${what} is truncated`)
        }
        this.push(open(pending, true))
        callback()
      } catch (err) {
        callback(err as Error)
      }
    },
  })
}
