/**
 * Listing and batch deletion of keys in a bucket (full keys, not store-relative): ListObjectsV2 pages and
 * DeleteObjects batches. A missing bucket has no keys, and deleting from one is done.
 */
import { DeleteObjectsCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client } from '@aws-sdk/client-s3'
import { JobStoreError } from '../../src/errors.js'
import { paginate } from '../../src/pagination.js'
import { send } from './calls.js'
import { isNoSuchBucket, wrapS3Error } from './errors.js'

/** Keys one DeleteObjects call takes at most. */
export const DELETE_BATCH = 1000

/** One listed key. */
export interface BucketKey {
  readonly key: string
  readonly size?: number
  readonly modified?: Date
}

/** Every object under a bucket prefix (full keys), one page fetched ahead. A missing bucket has none. */
export function listKeys(client: S3Client, bucket: string, prefix: string, signal: AbortSignal | undefined): AsyncGenerator<BucketKey> {
  return paginate(
    async (token: string | undefined) => {
      let out: ListObjectsV2CommandOutput
      try {
        out = await send<ListObjectsV2CommandOutput>(
          client,
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token !== undefined ? { ContinuationToken: token } : {}) }),
          signal,
        )
      } catch (err) {
        if (isNoSuchBucket(err)) return undefined
        throw wrapS3Error(err, `ListObjectsV2 s3://${bucket}/${prefix}`, signal)
      }
      const items = (out.Contents ?? []).flatMap((o) =>
        o.Key === undefined ? [] : [{ key: o.Key, ...(o.Size !== undefined ? { size: o.Size } : {}), ...(o.LastModified !== undefined ? { modified: o.LastModified } : {}) }],
      )
      return { items, next: out.IsTruncated ? out.NextContinuationToken : undefined }
    },
    { ahead: true },
  )
}

/** One DeleteObjects call (up to {@link DELETE_BATCH} keys); missing keys and a missing bucket are fine. */
export async function deleteKeys(client: S3Client, bucket: string, fullKeys: readonly string[], signal: AbortSignal | undefined): Promise<void> {
  if (fullKeys.length === 0) return
  let out: { Errors?: { Key?: string; Code?: string; Message?: string }[] }
  try {
    out = await send(client, new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: fullKeys.map((Key) => ({ Key })), Quiet: true } }), signal)
  } catch (err) {
    if (isNoSuchBucket(err)) return
    throw wrapS3Error(err, `DeleteObjects in s3://${bucket} (${fullKeys.length} keys)`, signal)
  }
  const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey')
  const first = errors[0]
  if (first !== undefined) {
    throw new JobStoreError(
      `S3 DeleteObjects in s3://${bucket} failed for ${errors.length} of ${fullKeys.length} keys, ` +
        `first ${first.Key}: ${first.Code}${first.Message ? `: ${first.Message}` : ''}`,
    )
  }
}
