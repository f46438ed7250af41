/**
 * The S3 backend: a job store in an S3 bucket (or under a prefix of one), on AWS or any S3-compatible service
 * (MinIO in the tests).
 *
 * - Atomic writes: one PutObject for bodies up to one part, else a multipart upload committed by
 *   CompleteMultipartUpload. Until the commit nothing is visible; a failed or aborted write aborts its upload
 *   before `putObject` rejects, so none is left behind.
 * - Conditional writes: `If-None-Match: *` (create only) and `If-Match: <ETag>` (compare-and-swap) go on the
 *   request that commits: PutObject, or CompleteMultipartUpload for multipart writes, so the condition is checked
 *   at the commit and not before.
 * - Integrity: every upload carries a CRC32 that S3 checks (per request, and for multipart also of the whole
 *   object, `ChecksumType: FULL_OBJECT`); every read asks for it back (`ChecksumMode: ENABLED`) and the SDK
 *   checks the bytes against it, failing the stream on a mismatch.
 * - The core's digest (CRC32) of a file: user metadata `jobstore-crc32` of a single PutObject (the body is
 *   buffered, so the digest is known when it is sent). A multipart upload's metadata is fixed at its creation,
 *   before the digest is known: the digest then goes into a small sidecar object `digests/<key>~<write ID>`, put
 *   before the commit, and the metadata names it (`jobstore-crc32-sidecar`). Server-side copies write the
 *   source's digest into the copy's metadata. Every whole read is checked against it by the core, whatever the
 *   server checks or returns.
 * - Version token: the ETag.
 */
import { randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { debuglog } from 'node:util'
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import { AbstractJobStore, type BucketUrlHandler, type JobStoreOptions } from '../../src/abstract-job-store.js'
import type { ConditionalWriteProofTarget } from '../../src/conditional-write-proof.js'
import { chunk, forEachConcurrent, mapConcurrent, throwIfAborted } from '../../src/concurrency.js'
import { InvalidArgumentError, JobStoreError, NoSuchFileError } from '../../src/errors.js'
import { deleteListed, isOwned, ownedNames, ownedRoots } from '../../src/layout.js'
import { DIGEST_METADATA, DIGESTS_PREFIX, digestFromMetadata, removeOrphanSidecars, sidecarKey } from '../../src/digest-sidecars.js'
import { decodeMetadata, encodeMetadata } from '../../src/object-metadata.js'
import { copyObject, CopySourceChangedError, type CopySink } from '../../src/copies.js'
import { rangedRead } from '../../src/ranged-reads.js'
import { uploadBody, type UploadSink } from '../../src/uploads.js'
import { isFileDigest, readToBuffer } from '../../src/streams.js'
import {
  objectReadOf,
  ObjectNotFoundError,
  PreconditionFailedError,
  WriteMayHaveLandedError,
  type IoOptions,
  type ListedObject,
  type ObjectInfo,
  type ObjectRead,
  type PutOptions,
} from '../../src/storage.js'
import { errorCode, headNotFound, isNotFound, isPreconditionFailed, retryRequestTimeouts, wrapS3Error } from './errors.js'
import { abortUpload, headers, headersByGet, pendingUploads, send, type ObjectHeaders, type PendingUpload } from './calls.js'
import { DELETE_BATCH, deleteKeys, listKeys, type BucketKey } from './bucket-keys.js'
import { clientConfigOf, createBucket, regionOf, s3Environment } from './client.js'
import { parseS3Locator } from './locator.js'
import { presignGet } from './presign.js'
import { putSidecar, readSidecar } from './sidecars.js'
import {
  completeUpload,
  conditions,
  createUpload,
  etagOf,
  failedCopyCommit,
  putSingle,
  S3_METADATA,
  uploadPart,
  type S3Bucket,
  type Write,
} from './writes.js'

export { checkBucketName, parseS3Locator, type S3Locator } from './locator.js'
export type { PendingUpload } from './calls.js'

const log = debuglog('jobstore:s3')

const MIB = 1024 * 1024
const DEFAULT_PART_SIZE = 5 * MIB
const MIN_PART_SIZE = 5 * MIB
const MAX_PART_SIZE = 5 * 1024 * MIB
const MAX_PARTS = 10_000
/** The largest object one CopyObject copies; larger ones are copied in parts (UploadPartCopy). */
const MAX_SINGLE_COPY = 5 * 1024 * MIB
/** Part size of server-side multipart copies (raised to fit 10,000 parts). */
const COPY_PART_SIZE = 512 * MIB
/** Unknown-length streams double their part size every this many parts: 10,000 parts of 5 MiB and up reach ~300 GiB. */
const PARTS_PER_SIZE_STEP = 2000
const DEFAULT_UPLOAD_CONCURRENCY = 4
/** Objects up to this size are read whole in getObject (see there). */
const SMALL_READ_BYTES = 256 * 1024
/** SigV4 presigned URLs live at most 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600
/** The metadata entry naming a multipart write's digest sidecar (see src/digest-sidecars.ts). */
const META_DIGEST_SIDECAR = DIGEST_METADATA.sidecar

// ------------------------------------------------------------------------------------------------ the store

/** Options of the S3 backend. */
export interface S3JobStoreOptions extends JobStoreOptions {
  /**
   * Settings merged over the store's S3Client config (credentials, endpoint, retries, request handler…). By
   * default: the SDK's credential and region chains (us-east-1 if none), and `AWS_ENDPOINT_URL_S3` or
   * `AWS_ENDPOINT_URL` as endpoint with path-style addressing when set.
   */
  readonly clientConfig?: S3ClientConfig
  /**
   * Bytes per part of a multipart upload (default 5 MiB, the least S3 allows; up to 5 GiB). Bodies up to this size are one
   * PutObject. Memory per streaming write is about `(uploadConcurrency + 1) × partSize`.
   */
  readonly partSize?: number
  /** Parts of one write uploaded at once (default 4). */
  readonly uploadConcurrency?: number
  /**
   * Server-side copies (import from, export to `s3://` URLs of the same endpoint and credentials) of objects up to
   * this size are one CopyObject; larger ones a multipart upload of UploadPartCopy parts. Default and maximum
   * 5 GiB (CopyObject's limit), minimum 5 MiB.
   */
  readonly multipartCopyThreshold?: number
}

/** A job store in an S3 bucket, optionally under a prefix. */

export class S3JobStore extends AbstractJobStore {
  /** The bucket. */
  readonly bucket: string
  /** The store's prefix in the bucket, without slashes around it; empty for a store at the bucket's root. */
  readonly prefix: string
  readonly #client: S3Client
  /** The client and bucket, for the write requests (./writes.ts). */
  readonly #bucket: S3Bucket
  readonly #clientConfig: S3ClientConfig
  readonly #customEndpoint: boolean
  readonly #partSize: number
  readonly #uploadConcurrency: number
  readonly #copyThreshold: number
  readonly #env: Record<string, string>
  /** The store's prefix in the bucket as key names start with it: empty, or ending in `/`. */
  readonly #namePrefix: string
  /** What the store owns in the bucket (see ownedRoots). */
  readonly #roots: readonly string[]
  #presignClient: Promise<S3Client> | undefined

  constructor(locator: string, options: S3JobStoreOptions = {}) {
    super(locator, options)
    const parsed = parseS3Locator(locator)
    this.bucket = parsed.bucket
    this.prefix = parsed.prefix
    this.#namePrefix = this.prefix === '' ? '' : `${this.prefix}/`
    this.#roots = ownedRoots(this.#namePrefix, [DIGESTS_PREFIX])
    this.#partSize = options.partSize ?? DEFAULT_PART_SIZE
    if (!Number.isInteger(this.#partSize) || this.#partSize < MIN_PART_SIZE || this.#partSize > MAX_PART_SIZE) {
      throw new InvalidArgumentError(`partSize must be an integer from 5 MiB to 5 GiB, got ${options.partSize}`)
    }
    this.#uploadConcurrency = options.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY
    if (!Number.isInteger(this.#uploadConcurrency) || this.#uploadConcurrency < 1) {
      throw new InvalidArgumentError(`uploadConcurrency must be a positive integer, got ${options.uploadConcurrency}`)
    }
    this.#copyThreshold = options.multipartCopyThreshold ?? MAX_SINGLE_COPY
    if (!Number.isInteger(this.#copyThreshold) || this.#copyThreshold < MIN_PART_SIZE || this.#copyThreshold > MAX_SINGLE_COPY) {
      throw new InvalidArgumentError(`multipartCopyThreshold must be an integer from 5 MiB to 5 GiB, got ${options.multipartCopyThreshold}`)
    }
    this.#env = s3Environment()
    ;({ config: this.#clientConfig, customEndpoint: this.#customEndpoint } = clientConfigOf(parsed.region, this.#env, options.clientConfig))
    this.#client = new S3Client(this.#clientConfig)
    this.#bucket = { client: this.#client, name: this.bucket }
    retryRequestTimeouts(this.#client)
  }

  /** `s3://bucket/key` of a full key, for messages. */
  #url(fullKey: string): string {
    return `s3://${this.bucket}/${fullKey}`
  }

  /** The bucket key of a store-relative key (or prefix ending in `/`). */
  #full(key: string): string {
    if (key === '' || key.startsWith('/') || key.includes('//')) {
      throw new InvalidArgumentError(`invalid object key ${JSON.stringify(key)}`)
    }
    return this.prefix === '' ? key : `${this.prefix}/${key}`
  }

  /** The store-relative key of a bucket key. */
  #relative(fullKey: string): string {
    return this.prefix === '' ? fullKey : fullKey.slice(this.prefix.length + 1)
  }

  /** Sends without wrapping errors (for callers that look at them). */
  #sendRaw<Output>(command: { readonly input: object }, signal: AbortSignal | undefined): Promise<Output> {
    return send<Output>(this.#client, command, signal)
  }

  // ---------------------------------------------------------------------------------------------- lifecycle

  protected override async createStorage(options: IoOptions = {}): Promise<void> {
    await createBucket(this.#client, this.bucket, options.signal)
  }

  #region(): Promise<string> {
    return regionOf(this.#client)
  }

  protected override async destroyStorage(options: IoOptions = {}): Promise<void> {
    const signal = options.signal
    await Promise.all([
      this.#abortUploads(() => true, signal),
      deleteListed(
        ownedNames(this.#namePrefix, [DIGESTS_PREFIX], (prefix) => this.#listRaw(prefix, signal)),
        (batch) => this.#deleteBatch(batch, signal),
        { batchSize: DELETE_BATCH, concurrency: this.concurrency },
      ),
    ])
  }

  /** Every file's digest is in its metadata or a sidecar (see the module's TSDoc). */
  protected override get keepsFileDigests(): boolean {
    return true
  }

  /** Destroys the store's S3 clients (their sockets), made by the store itself, never shared. */
  protected override async closeStorage(): Promise<void> {
    const presign = await this.#presignClient?.catch(() => undefined)
    this.#client.destroy()
    if (presign !== undefined && presign !== this.#client) presign.destroy()
  }

  /** Environment a worker on another host needs: the endpoint and region variables, never credentials. */
  override getEnv(): Record<string, string> {
    return { ...this.#env }
  }

  // ---------------------------------------------------------------------------------------------- writes

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    const fullKey = this.#full(key)
    throwIfAborted(options.signal)
    const write: Write = {
      key,
      fullKey,
      options,
      // The core's write token (the write-token protocol, see PreconditionFailedError), or one of ours.
      metadata: encodeMetadata(S3_METADATA, { writeToken: options.writeToken ?? randomUUID(), executable: options.executable }),
    }
    return uploadBody(body, this.#sink(write), {
      what: this.#url(fullKey),
      partSize: this.#partSize,
      maxParts: MAX_PARTS,
      maxPartSize: MAX_PART_SIZE,
      partsPerSizeStep: PARTS_PER_SIZE_STEP,
      concurrency: this.#uploadConcurrency,
      partDigest: 'crc32',
      wholeDigest: 'crc32',
      contentLength: options.contentLength,
      writePath: options.writePath,
      signal: options.signal,
    })
  }

  /**
   * The requests of one write (see uploadBody): one PutObject, or a multipart upload committed by
   * CompleteMultipartUpload after the digest sidecar; a failed one is aborted, and its sidecar deleted unless the
   * commit may have landed.
   */
  #sink(write: Write): UploadSink<CompletedPart> {
    let uploadId: string | undefined
    let sidecar: string | undefined
    return {
      // The whole body is here: its digest is known (for a stream, it ended within one part).
      putOnce: (data) => {
        const metadata = { ...write.metadata, ...encodeMetadata(S3_METADATA, { digest: write.options.digest?.() }) }
        return putSingle(this.#bucket, write, data, metadata, write.options.signal)
      },
      begin: async (signal) => {
        // An upload's digest goes into the sidecar the metadata names.
        const metadata = write.options.digest !== undefined ? { ...write.metadata, [META_DIGEST_SIDECAR]: this.#sidecarKey(write) } : write.metadata
        uploadId = await createUpload(this.#bucket, write, metadata, true, signal)
      },
      putPart: (part, signal) => uploadPart(this.#bucket, write, uploadId as string, part, signal),
      commit: async (parts, body, signal) => {
        throwIfAborted(write.options.signal)
        // The digest is known now, after the metadata was fixed: into the sidecar the metadata names, before the commit.
        if (write.options.digest !== undefined) {
          await putSidecar(this.#client, this.bucket, this.#sidecarKey(write), write.options.digest(), signal)
          sidecar = this.#sidecarKey(write)
        }
        return completeUpload(this.#bucket, write, uploadId as string, parts, body, signal)
      },
      abort: async (failure) => {
        if (uploadId !== undefined) await abortUpload(this.#client, this.bucket, write.fullKey, uploadId, { quiet: true })
        // A commit that may have landed (the core settles it by the write token) keeps its sidecar: the object may
        // name it. If the object is not this write's after all, clean() removes the orphan.
        const mayHaveLanded =
          (failure instanceof PreconditionFailedError && failure.mayHaveLanded !== false) || failure instanceof WriteMayHaveLandedError
        if (sidecar !== undefined && !mayHaveLanded) await this.#deleteBatch([sidecar], undefined).catch(() => {})
      },
    }
  }

  /** The conditional-write proof's paths: PutObject, and multipart uploads committed by CompleteMultipartUpload. */
  protected override async conditionalWriteProofTarget(): Promise<ConditionalWriteProofTarget> {
    const endpoint = this.#clientConfig.endpoint
    const where =
      typeof endpoint === 'string'
        ? endpoint
        : endpoint instanceof URL
          ? endpoint.href
          : endpoint === undefined
            ? `aws ${await this.#region()}`
            : typeof endpoint === 'object' && 'hostname' in endpoint
              ? `${endpoint.protocol}//${endpoint.hostname}:${endpoint.port ?? ''}${endpoint.path}`
              : // An endpoint provider: no verdict shared with other stores.
                `endpoint of store ${randomUUID()}`
    return {
      scope: `s3 ${where} ${this.bucket}`,
      paths: [
        { writePath: 'single', name: 'PutObject' },
        { writePath: 'multipart', name: 'CompleteMultipartUpload (multipart upload)' },
      ],
    }
  }

  /** The full key of the digest sidecar of a multipart write: named by the write's ID, so writers never share one. */
  #sidecarKey(write: Write): string {
    return this.#full(sidecarKey(write.key, write.metadata[S3_METADATA.writeToken] as string))
  }

  /** The core's digest of an object, from its metadata (see digestFromMetadata), its sidecar in `bucket`. */
  #digestOf(bucket: string, metadata: Record<string, string> | undefined, signal: AbortSignal | undefined): Promise<string | undefined> {
    return digestFromMetadata(metadata, (sidecar) => readSidecar(this.#client, bucket, sidecar, signal))
  }

  // ---------------------------------------------------------------------------------------------- reads

  protected override async getObject(key: string, options: IoOptions = {}): Promise<ObjectRead> {
    const fullKey = this.#full(key)
    const signal = options.signal
    let out: {
      Body?: unknown
      ContentLength?: number
      ETag?: string
      Metadata?: Record<string, string>
      ChecksumCRC32?: string
      ChecksumType?: string
    }
    try {
      out = await this.#sendRaw(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey, ChecksumMode: 'ENABLED' }), signal)
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key, { cause: err })
      throw wrapS3Error(err, `GetObject ${this.#url(fullKey)}`, signal)
    }
    const body = out.Body
    const etag = out.ETag
    if (!(body instanceof Readable) || out.ContentLength === undefined || etag === undefined) {
      if (body instanceof Readable) body.destroy()
      throw new JobStoreError(`S3 GetObject ${this.#url(fullKey)}: incomplete answer (no body, length or ETag)`)
    }
    // A body cut mid-way is resumed with ranged GETs of the same ETag. The SDK checks the stored CRC32 of a
    // whole body only: a full-object CRC32 goes to the core, which checks it over all the bytes (when the object
    // has no digest of the core's).
    const what = `GetObject ${this.#url(fullKey)}`
    const resumed = rangedRead(body, {
      size: out.ContentLength,
      what: `S3 ${what}`,
      signal,
      openRange: async (offset) => {
        const rest = await this.#sendRaw<{ Body?: unknown }>(
          new GetObjectCommand({ Bucket: this.bucket, Key: fullKey, Range: `bytes=${offset}-`, IfMatch: etag }),
          signal,
        )
        if (!(rest.Body instanceof Readable)) throw new JobStoreError(`S3 ${what}: no body in the answer`)
        return rest.Body
      },
      versionGone: (err) => isPreconditionFailed(err) || isNotFound(err),
      mapError: (err, offset) =>
        offset === undefined ? wrapS3Error(err, what) : wrapS3Error(err, `${what} (resuming at byte ${offset})`, signal),
    })
    const crc = out.ChecksumType === 'FULL_OBJECT' ? out.ChecksumCRC32 : undefined
    let digest: string | undefined
    try {
      digest = await this.#digestOf(this.bucket, out.Metadata, signal)
    } catch (err) {
      resumed.destroy()
      throw err
    }
    const info = {
      key,
      size: out.ContentLength,
      version: etag,
      ...decodeMetadata(S3_METADATA, out.Metadata),
      ...(digest !== undefined ? { digest } : {}),
    }
    const checksum = crc !== undefined ? { algorithm: 'crc32', digest: crc } : undefined
    // Jobs, stats, small files: read whole here and handed to the core as bytes; no stream layers per read for
    // the core to drain.
    if (out.ContentLength <= SMALL_READ_BYTES) return objectReadOf(info, await readToBuffer(resumed), checksum)
    return { ...info, body: resumed, ...(checksum !== undefined ? { checksum } : {}) }
  }

  protected override async headObject(key: string, options: IoOptions = {}): Promise<ObjectInfo | undefined> {
    const fullKey = this.#full(key)
    const out = await this.#headers(fullKey, options.signal)
    if (out === undefined) return undefined
    if (out.ETag === undefined) throw new JobStoreError(`S3 HeadObject ${this.#url(fullKey)}: no ETag in the answer`)
    return { key, size: out.ContentLength ?? 0, version: out.ETag, ...decodeMetadata(S3_METADATA, out.Metadata) }
  }

  /** The headers of the object at `fullKey`, undefined when it is absent (see headers: a HEAD's 404 proves nothing). */
  #headers(fullKey: string, signal: AbortSignal | undefined): Promise<ObjectHeaders | undefined> {
    return headers(this.#client, this.bucket, fullKey, signal)
  }

  protected override async *listObjects(prefix: string, options: IoOptions = {}): AsyncGenerator<ListedObject> {
    for await (const object of this.#listRaw(this.#full(prefix), options.signal)) {
      yield { key: this.#relative(object.key), ...(object.size !== undefined ? { size: object.size } : {}) }
    }
  }

  /** Every object under a bucket prefix (full keys); see listKeys. */
  #listRaw(prefix: string, signal: AbortSignal | undefined): AsyncGenerator<BucketKey> {
    return listKeys(this.#client, this.bucket, prefix, signal)
  }

  // ---------------------------------------------------------------------------------------------- deletes

  protected override async deleteObjects(keys: readonly string[], options: IoOptions = {}): Promise<void> {
    const signal = options.signal
    const fullKeys = keys.map((key) => this.#full(key))
    if (fullKeys.length === 1) {
      const fullKey = fullKeys[0] as string
      try {
        await this.#sendRaw(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey }), signal)
      } catch (err) {
        if (!isNotFound(err)) throw wrapS3Error(err, `DeleteObject ${this.#url(fullKey)}`, signal)
      }
      return
    }
    await forEachConcurrent(chunk(fullKeys, DELETE_BATCH), this.concurrency, (batch) => this.#deleteBatch(batch, signal))
  }

  /** One DeleteObjects call of full keys; see deleteKeys. */
  #deleteBatch(fullKeys: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    return deleteKeys(this.#client, this.bucket, fullKeys, signal)
  }

  // ---------------------------------------------------------------------------------------------- leftovers

  /** The multipart uploads in progress under this store (see pendingUploads in ./calls.ts). */
  pendingUploads(options: IoOptions = {}): AsyncGenerator<PendingUpload> {
    return pendingUploads(this.#client, this.bucket, this.#namePrefix, (key) => isOwned(this.#roots, key), options.signal)
  }

  async #abortUploads(select: (upload: PendingUpload) => boolean, signal: AbortSignal | undefined): Promise<number> {
    let aborted = 0
    await forEachConcurrent(this.pendingUploads(signal ? { signal } : {}), this.concurrency, async (upload) => {
      if (select(upload) && (await abortUpload(this.#client, this.bucket, upload.key, upload.uploadId, { signal }))) {
        aborted++
      }
    })
    return aborted
  }

  /** Aborts the multipart uploads under this store started more than `olderThanMs` ago. */
  protected override async removeLeftovers(olderThanMs: number, options: IoOptions = {}): Promise<number> {
    const cutoff = Date.now() - olderThanMs
    const [aborted, sidecars] = await Promise.all([
      this.#abortUploads((upload) => (upload.initiated?.getTime() ?? 0) <= cutoff, options.signal),
      this.#removeOrphanSidecars(cutoff, options.signal),
    ])
    return aborted + sidecars
  }

  /** Deletes the orphan digest sidecars older than `cutoff` (see removeOrphanSidecars): a HEAD per sidecar. */
  #removeOrphanSidecars(cutoff: number, signal: AbortSignal | undefined): Promise<number> {
    const prefix = this.#full(DIGESTS_PREFIX)
    return removeOrphanSidecars({
      sidecars: mapConcurrent(this.#listRaw(prefix, signal), 1, async (o) => ({ name: o.key, created: o.modified?.getTime() ?? 0 })),
      prefix,
      cutoff,
      namedBy: async (key) => (await this.#headers(this.#full(key), signal))?.Metadata?.[META_DIGEST_SIDECAR],
      deleteNames: (names) => forEachConcurrent(chunk(names, DELETE_BATCH), this.concurrency, (batch) => this.#deleteBatch(batch, signal)),
      concurrency: this.concurrency,
    })
  }

  // ---------------------------------------------------------------------------------------------- URLs

  /** A presigned (SigV4 query-string) GET URL, valid for `expiresInSeconds` (at most 7 days). */
  protected override async getObjectUrl(key: string, expiresInSeconds: number): Promise<string> {
    const expiresIn = Math.ceil(expiresInSeconds)
    if (!(expiresIn > 0) || expiresIn > MAX_PRESIGN_SECONDS) {
      throw new InvalidArgumentError(`S3 presigned URLs last 1 second to 7 days, not ${expiresInSeconds} seconds`)
    }
    const fullKey = this.#full(key)
    try {
      return await presignGet(await this.#clientForPresigning(), this.bucket, fullKey, expiresIn)
    } catch (err) {
      throw wrapS3Error(err, `presigning a GET of ${this.#url(fullKey)}`)
    }
  }

  /**
   * A presigned URL must name the bucket's own region (S3 does not redirect them). On AWS, ask the bucket for its
   * region once and sign with a client of that region; with a custom endpoint, the configured region is it.
   */
  async #clientForPresigning(): Promise<S3Client> {
    if (this.#customEndpoint) return this.#client
    this.#presignClient ??= (async () => {
      try {
        const head = await this.#sendRaw<{ BucketRegion?: string }>(new HeadBucketCommand({ Bucket: this.bucket }), undefined)
        const region = head.BucketRegion
        if (region !== undefined && region !== (await this.#region())) return new S3Client({ ...this.#clientConfig, region })
      } catch (err) {
        log('cannot find the region of %s: %s', this.bucket, errorCode(err))
        this.#presignClient = undefined
      }
      return this.#client
    })()
    return this.#presignClient
  }

  // ---------------------------------------------------------------------------------------------- s3: URLs

  /**
   * Import and export of `s3://bucket/key` URLs, with the environment's credentials and endpoint, through the
   * core's bucket URL handler (a store at the bucket's root does the reads and writes).
   */
  static readonly urlHandler: BucketUrlHandler<S3JobStore> = S3JobStore.bucketUrlHandler<S3JobStore>({
    schemes: ['s3'],
    locate: (url) => ({ root: `s3://${url.hostname}`, rawKey: url.pathname.slice(1) }),
    open: (root) => new S3JobStore(root),
  })

  /**
   * Same service: the same endpoint and the same credentials (both from the environment, or the same objects
   * passed in `clientConfig`), so one client may read the source and write the target.
   */
  #sameService(other: S3JobStore): boolean {
    return (
      this.#clientConfig.endpoint === other.#clientConfig.endpoint &&
      this.#clientConfig.credentials === other.#clientConfig.credentials
    )
  }

  /** Server-side import of an `s3://` URL of the same service: CopyObject, or UploadPartCopy parts. */
  protected override async copyFromUrl(url: URL, key: string, options: PutOptions): Promise<boolean> {
    const source = S3JobStore.urlHandler.locate(url)
    if (source === undefined || !this.#sameService(source.store)) return false
    // A source without the core's digest (not a store's file) is streamed instead, so that the core hashes it.
    const copied = await this.#copyIn(source.store.bucket, source.key, key, options, this.#copyThreshold, (err) =>
      new NoSuchFileError(url.href, { cause: err, message: `no object at ${url.href}` }),
    true)
    return copied !== undefined
  }

  /** Server-side export to an `s3://` URL of the same service; the target's store does the copy. */
  protected override async copyToUrl(key: string, url: URL, options: IoOptions): Promise<boolean> {
    const target = S3JobStore.urlHandler.locate(url)
    if (target === undefined || !this.#sameService(target.store)) return false
    await target.store.#copyIn(this.bucket, this.#full(key), target.key, options, this.#copyThreshold, (err) =>
      new ObjectNotFoundError(key, { cause: err }),
    )
    return true
  }

  /**
   * Copies `sourceBucket/sourceKey` to the store-relative `key` without the bytes leaving S3 (the core's
   * copyObject), keeping the executable flag (or setting it, `options.executable`) and honouring the write's
   * conditions: one CopyObject (S3 computes the CRC32 of the copy) up to `threshold`, else a multipart upload of
   * UploadPartCopy parts, committed under the conditions, aborted on failure. Every request is pinned to the
   * source's ETag: a source replaced meanwhile is copied again from its new version, never mixed.
   */
  async #copyIn(
    sourceBucket: string,
    sourceKey: string,
    key: string,
    options: PutOptions,
    threshold: number,
    missing: (cause: unknown) => Error,
    requireDigest = false,
  ): Promise<string | undefined> {
    const signal = options.signal
    const source = `s3://${sourceBucket}/${sourceKey}`
    const copySource = `${sourceBucket}/${sourceKey.split('/').map(encodeURIComponent).join('/')}`
    type Source = { size: number; etag: string; write: Write; pinned: { CopySource: string; CopySourceIfMatch: string } }
    let uploadId: string | undefined
    const sink: CopySink<Source, CompletedPart, string> = {
      source: async () => {
        let head: { ContentLength?: number; ETag?: string; Metadata?: Record<string, string>; ChecksumCRC32?: string; ChecksumType?: string }
        try {
          head = await this.#sendRaw(new HeadObjectCommand({ Bucket: sourceBucket, Key: sourceKey, ChecksumMode: 'ENABLED' }), signal)
        } catch (err) {
          const absent = headNotFound(err)
          if (absent === 'absent' || (absent === 'unproven' && !((await headersByGet(this.#client, sourceBucket, sourceKey, signal)) !== undefined))) {
            throw missing(err)
          }
          throw wrapS3Error(err, `HeadObject ${source}`, signal)
        }
        if (head.ETag === undefined) throw new JobStoreError(`S3 HeadObject ${source}: no ETag in the answer`)
        const executable = options.executable === true || decodeMetadata(S3_METADATA, head.Metadata).executable
        // The copy carries the source's digest, in its own metadata (a copy's metadata is set with the copy). A source
        // no store wrote has none: its full-object CRC32, which S3 computed from its bytes, is adopted as the digest
        // (the same algorithm as the core's); without one either, an import is streamed so that the core hashes it.
        const sourceCrc = head.ChecksumType === 'FULL_OBJECT' && head.ChecksumCRC32 !== undefined ? head.ChecksumCRC32 : undefined
        const digest = (await this.#digestOf(sourceBucket, head.Metadata, signal)) ?? (isFileDigest(sourceCrc) ? sourceCrc : undefined)
        if (digest === undefined && requireDigest) return undefined
        const write: Write = {
          key,
          fullKey: this.#full(key),
          options,
          metadata: encodeMetadata(S3_METADATA, { writeToken: randomUUID(), executable, digest }),
        }
        return { size: head.ContentLength ?? 0, etag: head.ETag, write, pinned: { CopySource: copySource, CopySourceIfMatch: head.ETag } }
      },
      copyOnce: async ({ write, pinned, etag }) => {
        try {
          const out = await this.#sendRaw<{ CopyObjectResult?: { ETag?: string } }>(
            new CopyObjectCommand({
              Bucket: this.bucket,
              Key: write.fullKey,
              ...pinned,
              MetadataDirective: 'REPLACE',
              Metadata: write.metadata,
              ContentType: 'application/octet-stream',
              ChecksumAlgorithm: 'CRC32',
              ...conditions(options),
            }),
            signal,
          )
          log('copied %s to %s server-side (CopyObject)', source, this.#url(write.fullKey))
          return etagOf(out.CopyObjectResult?.ETag, this.#bucket, write)
        } catch (err) {
          // NoSuchKey: the source went (a missing target matters only to If-Match, which failedCommit maps).
          if (errorCode(err) === 'NoSuchKey' && options.ifMatch === undefined) throw new CopySourceChangedError({ cause: err })
          // 412: the target's condition, or the source's ETag pin; a HEAD of the source tells which.
          if (isPreconditionFailed(err)) {
            const now = await this.#sendRaw<{ ETag?: string }>(new HeadObjectCommand({ Bucket: sourceBucket, Key: sourceKey }), signal).catch(
              () => undefined,
            )
            if (now?.ETag !== etag) throw new CopySourceChangedError({ cause: err })
          }
          return await failedCopyCommit(err, this.#bucket, write, 'CopyObject', signal)
        }
      },
      begin: async ({ write }) => {
        uploadId = await createUpload(this.#bucket, write, write.metadata, false, signal)
      },
      copyPart: async ({ write, pinned }, range) => {
        let out: { CopyPartResult?: { ETag?: string } }
        try {
          out = await this.#sendRaw(
            new UploadPartCopyCommand({
              Bucket: this.bucket,
              Key: write.fullKey,
              UploadId: uploadId,
              PartNumber: range.number,
              ...pinned,
              CopySourceRange: `bytes=${range.offset}-${range.offset + range.count - 1}`,
            }),
            signal,
          )
        } catch (err) {
          // A part has no target condition: 412 is the source's ETag pin, NoSuchKey the source gone.
          if (isPreconditionFailed(err) || errorCode(err) === 'NoSuchKey') throw new CopySourceChangedError({ cause: err })
          throw wrapS3Error(err, `UploadPartCopy ${range.number} of ${this.#url(write.fullKey)} from ${source}`, signal)
        }
        const etag = out.CopyPartResult?.ETag
        if (etag === undefined) throw new JobStoreError(`S3 UploadPartCopy ${range.number} of ${this.#url(write.fullKey)}: no ETag`)
        return { PartNumber: range.number, ETag: etag }
      },
      commit: async ({ write }, parts) => {
        const version = await completeUpload(this.#bucket, write, uploadId as string, parts, undefined, signal)
        uploadId = undefined
        log('copied %s to %s server-side (%d UploadPartCopy parts)', source, this.#url(write.fullKey), parts.length)
        return version
      },
      abort: async ({ write }) => {
        if (uploadId !== undefined) await abortUpload(this.#client, this.bucket, write.fullKey, uploadId, { quiet: true })
        uploadId = undefined
      },
    }
    return copyObject(sink, {
      what: source,
      maxSingleCopy: threshold,
      partSize: Math.min(threshold, COPY_PART_SIZE),
      maxParts: MAX_PARTS,
      maxPartSize: MAX_PART_SIZE,
      concurrency: this.#uploadConcurrency,
      signal,
    })
  }
}
