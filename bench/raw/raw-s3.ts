/** The S3 baseline: @aws-sdk/client-s3 against the same server (MinIO). */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3'
import type { Readable } from 'node:stream'
import { toBuffer } from '../util.js'
import { STREAM_CONCURRENCY, STREAM_PART_SIZE, type RawStore } from './raw-store.js'

export class RawS3Store implements RawStore {
  readonly #client: S3Client
  readonly #bucket: string
  readonly #prefix: string

  /** `prefix` without slashes around it. */
  constructor(bucket: string, prefix: string) {
    const endpoint = process.env['AWS_ENDPOINT_URL_S3'] ?? process.env['AWS_ENDPOINT_URL']
    // What the S3 backend does: the SDK's defaults, plus path-style addressing for a custom endpoint.
    this.#client = new S3Client({
      region: process.env['AWS_REGION'] ?? 'us-east-1',
      ...(endpoint !== undefined ? { endpoint, forcePathStyle: true } : {}),
    })
    this.#bucket = bucket
    this.#prefix = prefix
  }

  #key(key: string): string {
    return `${this.#prefix}/${key}`
  }

  async setup(): Promise<void> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.#bucket }))
    } catch {
      try {
        await this.#client.send(new CreateBucketCommand({ Bucket: this.#bucket }))
      } catch (err) {
        if ((err as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw err
      }
    }
  }

  async putIfAbsent(key: string, data: Buffer): Promise<void> {
    await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Body: data, IfNoneMatch: '*' }))
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Body: data }))
  }

  async get(key: string): Promise<Buffer> {
    const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }))
    return toBuffer(out.Body as Readable)
  }

  async delete(key: string): Promise<void> {
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }))
  }

  async *list(prefix: string): AsyncGenerator<string> {
    let token: string | undefined
    const strip = this.#prefix.length + 1
    do {
      const out: ListObjectsV2CommandOutput = await this.#client.send(
        new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#key(prefix), ...(token !== undefined ? { ContinuationToken: token } : {}) }),
      )
      for (const object of out.Contents ?? []) if (object.Key !== undefined) yield object.Key.slice(strip)
      token = out.IsTruncated ? out.NextContinuationToken : undefined
    } while (token !== undefined)
  }

  async putStream(key: string, body: Readable): Promise<void> {
    const Key = this.#key(key)
    const created = await this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key }))
    const UploadId = created.UploadId as string
    const parts: CompletedPart[] = []
    const inFlight = new Set<Promise<void>>()
    let failure: { error: unknown } | undefined
    const upload = (PartNumber: number, data: Buffer): void => {
      const sent = this.#client
        .send(new UploadPartCommand({ Bucket: this.#bucket, Key, UploadId, PartNumber, Body: data, ContentLength: data.length }))
        .then(
          (out) => {
            parts[PartNumber - 1] = { PartNumber, ETag: out.ETag as string }
          },
          (error: unknown) => {
            failure ??= { error }
          },
        )
        .finally(() => inFlight.delete(sent))
      inFlight.add(sent)
    }
    try {
      // Parts of STREAM_PART_SIZE bytes, STREAM_CONCURRENCY in flight, as the S3 backend's defaults.
      let buffered: Buffer[] = []
      let bytes = 0
      let number = 0
      for await (const chunk of body) {
        buffered.push(chunk as Buffer)
        bytes += (chunk as Buffer).length
        while (bytes >= STREAM_PART_SIZE) {
          const all = Buffer.concat(buffered)
          upload(++number, all.subarray(0, STREAM_PART_SIZE))
          buffered = all.length > STREAM_PART_SIZE ? [all.subarray(STREAM_PART_SIZE)] : []
          bytes -= STREAM_PART_SIZE
          while (inFlight.size >= STREAM_CONCURRENCY) await Promise.race(inFlight)
          if (failure !== undefined) throw failure.error
        }
      }
      if (bytes > 0 || number === 0) upload(++number, Buffer.concat(buffered))
      await Promise.all(inFlight)
      if (failure !== undefined) throw failure.error
      await this.#client.send(new CompleteMultipartUploadCommand({ Bucket: this.#bucket, Key, UploadId, MultipartUpload: { Parts: parts } }))
    } catch (err) {
      await Promise.allSettled(inFlight)
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key, UploadId })).catch(() => {})
      throw err
    }
  }

  async getStream(key: string): Promise<Readable> {
    const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }))
    return out.Body as Readable
  }

  async destroy(): Promise<void> {
    let batch: string[] = []
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return
      const Objects = batch.map((Key) => ({ Key }))
      batch = []
      await this.#client.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects, Quiet: true } }))
    }
    for await (const key of this.list('')) {
      batch.push(this.#key(key))
      if (batch.length === 1000) await flush()
    }
    await flush()
  }
}
