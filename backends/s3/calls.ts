/**
 * S3 requests that work around the service or its look-alikes, apart from the backend's mapping:
 * - a HEAD's 404 carries no error code on AWS S3 (the answer has no body), so it proves nothing: a GET decides;
 * - MinIO matches ListMultipartUploads' `Prefix` only against whole keys: a prefixed listing that finds nothing
 *   is repeated unfiltered, and filtered here.
 */
import { debuglog } from 'node:util'
import { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { paginate } from '../../src/pagination.js'
import { errorCode, headNotFound, isNoSuchBucket, isNoSuchUpload, isNotFound, wrapS3Error } from './errors.js'

const log = debuglog('jobstore:s3')

/** Sends a command, its errors unwrapped (for callers that look at them). */
export async function send<Output>(client: S3Client, command: { readonly input: object }, signal: AbortSignal | undefined): Promise<Output> {
  return (await client.send(command as never, signal ? { abortSignal: signal } : {})) as Output
}

/** The headers of an object the store reads: from a HeadObject, or from a GetObject whose body is dropped. */
export type ObjectHeaders = { ContentLength?: number; ETag?: string; Metadata?: Record<string, string> }

/**
 * The headers of `bucket/fullKey` (a HEAD), or undefined when the service's coded answer says it is absent. A 404
 * without a code proves nothing: a GET's answer decides, and if the key is there (made meanwhile, or a HEAD the
 * server answered wrongly), the GET's headers are the metadata.
 */
export async function headers(client: S3Client, bucket: string, fullKey: string, signal: AbortSignal | undefined): Promise<ObjectHeaders | undefined> {
  try {
    return await send<ObjectHeaders>(client, new HeadObjectCommand({ Bucket: bucket, Key: fullKey }), signal)
  } catch (err) {
    const missing = headNotFound(err)
    if (missing === 'absent') return undefined
    if (missing === undefined) throw wrapS3Error(err, `HeadObject s3://${bucket}/${fullKey}`, signal)
    return headersByGet(client, bucket, fullKey, signal)
  }
}

/**
 * The object's headers from a GET (its body dropped), or undefined when the GET's coded answer says it is absent:
 * the proof a HEAD's 404 lacks, as a GET's error answer has a body with the code. Only asked after such a 404.
 */
export async function headersByGet(client: S3Client, bucket: string, fullKey: string, signal: AbortSignal | undefined): Promise<ObjectHeaders | undefined> {
  try {
    const out = await send<ObjectHeaders & { Body?: unknown }>(client, new GetObjectCommand({ Bucket: bucket, Key: fullKey }), signal)
    if (out.Body instanceof Readable) out.Body.destroy()
    return out
  } catch (err) {
    if (isNotFound(err)) return undefined
    throw wrapS3Error(err, `GetObject s3://${bucket}/${fullKey} (after a HEAD answered 404 without an error code)`, signal)
  }
}

/** One multipart upload in progress under a store. */
export interface PendingUpload {
  /** Full object key in the bucket. */
  readonly key: string
  readonly uploadId: string
  readonly initiated: Date | undefined
}

/**
 * The multipart uploads in progress under `prefix` (ending in `/`; empty: the whole bucket) that `owns` keeps.
 * S3 filters them by prefix; MinIO matches `Prefix` only against whole keys, so a prefixed listing that finds
 * nothing is repeated unfiltered.
 */
export async function* pendingUploads(
  client: S3Client,
  bucket: string,
  prefix: string,
  owns: (key: string) => boolean,
  signal: AbortSignal | undefined,
): AsyncGenerator<PendingUpload> {
  if (prefix !== '') {
    let found = false
    for await (const upload of listUploads(client, bucket, prefix, signal)) {
      found = true
      if (owns(upload.key)) yield upload
    }
    if (found) return
  }
  for await (const upload of listUploads(client, bucket, undefined, signal)) if (owns(upload.key)) yield upload
}

function listUploads(client: S3Client, bucket: string, prefix: string | undefined, signal: AbortSignal | undefined): AsyncGenerator<PendingUpload> {
  type Markers = { KeyMarker?: string; UploadIdMarker?: string }
  return paginate(async (markers: Markers | undefined) => {
    let out: { Uploads?: { Key?: string; UploadId?: string; Initiated?: Date }[]; IsTruncated?: boolean; NextKeyMarker?: string; NextUploadIdMarker?: string }
    try {
      out = await send(client, new ListMultipartUploadsCommand({ Bucket: bucket, ...(prefix !== undefined ? { Prefix: prefix } : {}), ...markers }), signal)
    } catch (err) {
      if (isNoSuchBucket(err)) return undefined
      throw wrapS3Error(err, `ListMultipartUploads s3://${bucket}/${prefix ?? ''}`, signal)
    }
    const items = (out.Uploads ?? []).flatMap((u) =>
      u.Key !== undefined && u.UploadId !== undefined ? [{ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated }] : [],
    )
    const more = out.IsTruncated === true && (out.NextKeyMarker !== undefined || out.NextUploadIdMarker !== undefined)
    const next: Markers = {
      ...(out.NextKeyMarker !== undefined ? { KeyMarker: out.NextKeyMarker } : {}),
      ...(out.NextUploadIdMarker !== undefined ? { UploadIdMarker: out.NextUploadIdMarker } : {}),
    }
    return { items, next: more ? next : undefined }
  })
}

/**
 * Aborts an upload; false if it was gone already. `quiet` (cleaning up after a failed write): a failure is logged,
 * never thrown over the write's own error; removeLeftovers gets the upload later.
 */
export async function abortUpload(
  client: S3Client,
  bucket: string,
  fullKey: string,
  uploadId: string,
  options: { quiet?: boolean; signal?: AbortSignal | undefined },
): Promise<boolean> {
  try {
    // Not under the write's signal: a write aborted by it must still abort its upload.
    await send(client, new AbortMultipartUploadCommand({ Bucket: bucket, Key: fullKey, UploadId: uploadId }), options.signal)
    return true
  } catch (err) {
    if (isNoSuchUpload(err)) return false
    if (!options.quiet) throw wrapS3Error(err, `AbortMultipartUpload s3://${bucket}/${fullKey}`, options.signal)
    log('cannot abort the multipart upload %s of %s: %s', uploadId, fullKey, errorCode(err))
    return false
  }
}
