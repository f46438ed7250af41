/**
 * The requests that store an object, for uploads and server-side copies alike: PutObject, and the multipart upload
 * (CreateMultipartUpload, UploadPart, CompleteMultipartUpload), each under the write's conditions, and the mapping
 * of a failed commit to the core's errors (a condition that failed, a commit that may have landed).
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3'
import { JobStoreError } from '../../src/errors.js'
import { decodeMetadata, type MetadataFormat } from '../../src/object-metadata.js'
import { PreconditionFailedError, WriteMayHaveLandedError, type PutOptions } from '../../src/storage.js'
import { digestBase64 } from '../../src/streams.js'
import type { UploadedBody, UploadPart } from '../../src/uploads.js'
import { send } from './calls.js'
import { attempts, isNoSuchBucket, isNoSuchUpload, isNotFound, isPreconditionFailed, wrapS3Error } from './errors.js'

/** User metadata (`x-amz-meta-…`) of the core's entries, as S3 stores have always named them. */
export const S3_METADATA: MetadataFormat = {
  executable: 'jobstore-executable',
  executableValues: { yes: '1' },
  writeToken: 'jobstore-write',
  digest: 'jobstore-crc32',
}

/** The bucket a store writes to, through the store's client. */
export interface S3Bucket {
  readonly client: S3Client
  readonly name: string
}

/** One write in progress. */
export interface Write {
  /** Store-relative key (for errors the core maps). */
  readonly key: string
  readonly fullKey: string
  readonly options: PutOptions
  /** The object's metadata: the executable flag, the write token (always set: the core's, or one of the store's). */
  readonly metadata: Record<string, string>
}

/** The write's conditions as request fields: `If-None-Match: *` (create only), `If-Match: <ETag>`. */
export function conditions(options: PutOptions): { IfNoneMatch?: string; IfMatch?: string } {
  return {
    ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
    ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
  }
}

function urlOf(bucket: S3Bucket, write: Write): string {
  return `s3://${bucket.name}/${write.fullKey}`
}

/** One PutObject of the whole body under the write's conditions, with its CRC32 for S3 to check; returns the ETag. */
export async function putSingle(
  bucket: S3Bucket,
  write: Write,
  data: Buffer,
  metadata: Record<string, string>,
  signal: AbortSignal | undefined,
): Promise<string> {
  try {
    const out = await send<{ ETag?: string }>(
      bucket.client,
      new PutObjectCommand({
        Bucket: bucket.name,
        Key: write.fullKey,
        Body: data,
        ContentLength: data.length,
        ContentType: 'application/octet-stream',
        ChecksumCRC32: digestBase64('crc32', data),
        Metadata: metadata,
        ...conditions(write.options),
      }),
      signal,
    )
    return etagOf(out.ETag, bucket, write)
  } catch (err) {
    failedCommit(err, bucket, write, 'PutObject', signal)
  }
}

/**
 * Starts a multipart upload with `metadata`. An upload's CRC32 (`checksum`) is checked by S3 per part and for the
 * whole object; a copy by parts has none: S3-compatible services want each part's checksum, which only S3
 * computes for copied parts (reads of the copy then check its size, and the SDK whatever checksum the service
 * reports).
 */
export async function createUpload(
  bucket: S3Bucket,
  write: Write,
  metadata: Record<string, string>,
  checksum: boolean,
  signal: AbortSignal | undefined,
): Promise<string> {
  let out: { UploadId?: string }
  try {
    out = await send(
      bucket.client,
      new CreateMultipartUploadCommand({
        Bucket: bucket.name,
        Key: write.fullKey,
        ContentType: 'application/octet-stream',
        ...(checksum ? { ChecksumAlgorithm: 'CRC32', ChecksumType: 'FULL_OBJECT' } : {}),
        Metadata: metadata,
      }),
      signal,
    )
  } catch (err) {
    throw wrapS3Error(err, `CreateMultipartUpload ${urlOf(bucket, write)}`, signal)
  }
  if (out.UploadId === undefined) throw new JobStoreError(`S3 CreateMultipartUpload ${urlOf(bucket, write)}: no upload ID`)
  return out.UploadId
}

/** Uploads one part with its CRC32 (computed by uploadBody) for S3 to check. */
export async function uploadPart(bucket: S3Bucket, write: Write, uploadId: string, part: UploadPart, signal: AbortSignal): Promise<CompletedPart> {
  const { number, data, digest: checksum } = part
  let out: { ETag?: string }
  try {
    out = await send(
      bucket.client,
      new UploadPartCommand({
        Bucket: bucket.name,
        Key: write.fullKey,
        UploadId: uploadId,
        PartNumber: number,
        Body: data,
        ContentLength: data.length,
        ChecksumCRC32: checksum,
      }),
      signal,
    )
  } catch (err) {
    throw wrapS3Error(err, `UploadPart ${number} of ${urlOf(bucket, write)}`, signal)
  }
  if (out.ETag === undefined) throw new JobStoreError(`S3 UploadPart ${number} of ${urlOf(bucket, write)}: no ETag`)
  return { PartNumber: number, ETag: out.ETag, ChecksumCRC32: checksum }
}

/**
 * Commits a multipart upload under the write's condition, with the CRC32 of the whole object for S3 to check
 * (`body`; a copy by parts has none). A copy settles a failure that may hide its success itself (see
 * {@link failedCopyCommit}).
 */
export async function completeUpload(
  bucket: S3Bucket,
  write: Write,
  uploadId: string,
  parts: readonly CompletedPart[],
  body: UploadedBody | undefined,
  signal: AbortSignal | undefined,
): Promise<string> {
  try {
    const out = await send<{ ETag?: string }>(
      bucket.client,
      new CompleteMultipartUploadCommand({
        Bucket: bucket.name,
        Key: write.fullKey,
        UploadId: uploadId,
        MultipartUpload: { Parts: [...parts] },
        ...(body !== undefined ? { ChecksumCRC32: body.digest, ChecksumType: 'FULL_OBJECT', MpuObjectSize: body.size } : {}),
        ...conditions(write.options),
      }),
      signal,
    )
    return etagOf(out.ETag, bucket, write)
  } catch (err) {
    if (body === undefined) return await failedCopyCommit(err, bucket, write, 'CompleteMultipartUpload', signal)
    failedCommit(err, bucket, write, 'CompleteMultipartUpload', signal)
  }
}

/**
 * Maps the failure of a committing request. A failed condition becomes {@link PreconditionFailedError}, saying
 * whether the key is there (If-Match on a missing key is a 404 NoSuchKey; every other failed condition a 412 on
 * a key that exists) and whether it may hide this write's success: only when the SDK sent the request more than
 * once (an earlier attempt may have committed, and the retry then fails its own condition or finds the upload
 * gone, NoSuchUpload). The core settles that by the write token.
 */
export function failedCommit(err: unknown, bucket: S3Bucket, write: Write, operation: string, signal: AbortSignal | undefined): never {
  const conditional = write.options.ifNoneMatch === true || write.options.ifMatch !== undefined
  // If-Match on a missing key: 404 NoSuchKey (not a missing bucket, nor an upload that was aborted meanwhile).
  const goneForIfMatch = write.options.ifMatch !== undefined && isNotFound(err) && !isNoSuchBucket(err) && !isNoSuchUpload(err)
  const retried = attempts(err) > 1
  if (conditional && (isPreconditionFailed(err) || goneForIfMatch)) {
    throw new PreconditionFailedError(write.key, { cause: err, mayHaveLanded: retried, current: goneForIfMatch ? 'missing' : 'present' })
  }
  const mapped = wrapS3Error(err, `${operation} ${urlOf(bucket, write)}`, signal)
  if (retried && isNoSuchUpload(err)) throw new WriteMayHaveLandedError(write.key, { cause: mapped })
  throw mapped
}

/**
 * {@link failedCommit} for server-side copies, which the core's write-token check does not wrap (they are the
 * backend's own writes): a failure that may hide the copy's success is settled here, by the copy's write token.
 */
export async function failedCopyCommit(
  err: unknown,
  bucket: S3Bucket,
  write: Write,
  operation: string,
  signal: AbortSignal | undefined,
): Promise<string> {
  try {
    failedCommit(err, bucket, write, operation, signal)
  } catch (mapped) {
    if ((mapped instanceof PreconditionFailedError && mapped.mayHaveLanded === true) || mapped instanceof WriteMayHaveLandedError) {
      const version = await committedBy(bucket, write)
      if (version !== undefined) return version
      if (mapped instanceof WriteMayHaveLandedError) throw mapped.cause
    }
    throw mapped
  }
}

/** The version of the object if it is the one `write` stored (by its write token). */
async function committedBy(bucket: S3Bucket, write: Write): Promise<string | undefined> {
  try {
    const head = await send<{ ETag?: string; Metadata?: Record<string, string> }>(
      bucket.client,
      new HeadObjectCommand({ Bucket: bucket.name, Key: write.fullKey }),
      undefined,
    )
    const token = decodeMetadata(S3_METADATA, head.Metadata).writeToken
    return token !== undefined && token === write.metadata[S3_METADATA.writeToken] ? head.ETag : undefined
  } catch {
    return undefined
  }
}

/** The ETag of a write's answer: the new version token. */
export function etagOf(etag: string | undefined, bucket: S3Bucket, write: Write): string {
  if (etag === undefined || etag === '') throw new JobStoreError(`S3 write of ${urlOf(bucket, write)}: no ETag in the answer`)
  return etag
}
