/**
 * Payloads that verify themselves, for the workers killed mid-write (worker.ts): whatever object a killed writer
 * left visible, the parent can tell whether it is whole.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { JobDescription } from '../src/job-description.js'

/** A payload of `size` random bytes that carries its own length and SHA-256 in a 40-byte header. */
export function selfChecking(size: number): { data: Buffer; digest: string } {
  const body = randomBytes(size)
  const digest = createHash('sha256').update(body).digest('hex')
  const header = Buffer.alloc(40)
  header.writeBigUInt64BE(BigInt(size))
  Buffer.from(digest, 'hex').copy(header, 8)
  return { data: Buffer.concat([header, body]), digest: digest.slice(0, 24) }
}

/** The digest of a self-checking payload, or undefined when it is not whole. */
export function checkSelf(data: Buffer): string | undefined {
  if (data.length < 40) return undefined
  const size = data.readBigUInt64BE(0)
  const body = data.subarray(40)
  if (BigInt(body.length) !== size) return undefined
  const digest = createHash('sha256').update(body).digest('hex')
  return digest === data.subarray(8, 40).toString('hex') ? digest.slice(0, 24) : undefined
}

/** A job payload that verifies itself: `extra.payload`, its tag and their digest. */
export function fillJob(desc: JobDescription, size: number): string {
  const payload = randomBytes(Math.ceil((size * 3) / 4)).toString('base64')
  const tag = randomBytes(9).toString('hex')
  desc.extra['payload'] = payload
  desc.extra['tag'] = tag
  desc.extra['digest'] = createHash('sha256').update(`${tag}:${payload}`).digest('hex')
  return tag
}

/** The tag of a job whose payload matches its digest, else undefined. */
export function jobTag(desc: JobDescription): string | undefined {
  const { payload, tag, digest } = desc.extra as { payload?: unknown; tag?: unknown; digest?: unknown }
  if (typeof payload !== 'string' || typeof tag !== 'string') return undefined
  return createHash('sha256').update(`${tag}:${payload}`).digest('hex') === digest ? tag : undefined
}
