/**
 * The S3 requests of digest sidecars (see src/digest-sidecars.ts: the names, reading a digest back, orphan
 * removal): putting one before a multipart commit, and reading one an object's metadata names.
 */
import { debuglog } from 'node:util'
import { Readable } from 'node:stream'
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { digestBase64, readToBuffer } from '../../src/streams.js'
import { send } from './calls.js'
import { isNotFound, wrapS3Error } from './errors.js'

const log = debuglog('jobstore:s3')

/** Puts the sidecar `bucket/fullKey` holding `digest`, with its CRC32 for S3 to check. */
export async function putSidecar(client: S3Client, bucket: string, fullKey: string, digest: string, signal: AbortSignal): Promise<void> {
  const body = Buffer.from(digest)
  try {
    await send(
      client,
      new PutObjectCommand({ Bucket: bucket, Key: fullKey, Body: body, ContentLength: body.length, ChecksumCRC32: digestBase64('crc32', body) }),
      signal,
    )
  } catch (err) {
    throw wrapS3Error(err, `PutObject s3://${bucket}/${fullKey}`, signal)
  }
}

/** The digest in the sidecar `bucket/name`, undefined when the sidecar is gone. */
export async function readSidecar(client: S3Client, bucket: string, name: string, signal: AbortSignal | undefined): Promise<string | undefined> {
  try {
    const out = await send<{ Body?: unknown }>(client, new GetObjectCommand({ Bucket: bucket, Key: name }), signal)
    return out.Body instanceof Readable ? (await readToBuffer(out.Body)).toString('latin1') : undefined
  } catch (err) {
    if (!isNotFound(err)) throw wrapS3Error(err, `GetObject s3://${bucket}/${name}`, signal)
    log('the digest sidecar %s is missing', name)
    return undefined
  }
}
