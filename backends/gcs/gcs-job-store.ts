/**
 * The Google Cloud Storage backend.
 *
 * - Locators: `gs://bucket[/prefix]`, and Toil's `google:project:name` / `google:name` (bucket `name--toil`, as
 *   Toil names it). Credentials: Application Default Credentials. `STORAGE_EMULATOR_HOST` (or the `apiEndpoint`
 *   option) points at an emulator such as fake-gcs-server, without authentication.
 * - Atomic writes: small bodies (Buffers, and streams that end within one chunk) in one multipart request that
 *   declares their MD5 and CRC32C, so the server rejects corrupted bytes; larger streams as a chunked resumable
 *   upload, whose object exists only once the final chunk lands. A body that errors or an abort never sends the
 *   final chunk, and the session is cancelled.
 * - Preconditions: `ifGenerationMatch: 0` (create only) and `ifGenerationMatch: <generation>` (compare and swap).
 *   The version token is the object's generation.
 * - Reads: one GET per object (not the SDK's `createReadStream`, see `getObject`), verified end to end against the
 *   object's MD5 by the core.
 * - The core's own digest (CRC32) of a file: custom metadata `jobstore-crc32` of a single-request upload (the
 *   body is all in before it is sent). A resumable upload's metadata is fixed when its session starts, before the
 *   digest is known: the digest goes into a small sidecar object `digests/<key>~<write ID>`, saved before the final
 *   chunk is sent (so never after the object appears), and the metadata names it (`jobstore-crc32-sidecar`).
 *   Rewrites carry the source's digest in the copy's metadata. Files are checked against it instead of the MD5.
 */
import { generateKeyPairSync } from 'node:crypto'
import type { Readable } from 'node:stream'
import { debuglog } from 'node:util'
import {
  IdempotencyStrategy,
  Storage,
  type Bucket,
  type File,
  type FileMetadata,
  type StorageOptions,
} from '@google-cloud/storage'
import { AbstractJobStore, type BucketUrlHandler, type JobStoreOptions } from '../../src/abstract-job-store.js'
import type { ConditionalWriteProofTarget } from '../../src/conditional-write-proof.js'
import { forEachConcurrent, mapConcurrent, throwIfAborted } from '../../src/concurrency.js'
import {
  AbortedError,
  IntegrityError,
  InvalidArgumentError,
  JobStoreError,
  NoSuchFileError,
  UnsupportedOperationError,
} from '../../src/errors.js'
import { randomId } from '../../src/ids.js'
import { deleteListed, ownedNames } from '../../src/layout.js'
import { DIGEST_METADATA, DIGESTS_PREFIX, digestFromMetadata, removeOrphanSidecars, sidecarKey } from '../../src/digest-sidecars.js'
import { decodeMetadata, encodeMetadata, type MetadataFormat } from '../../src/object-metadata.js'
import { paginate } from '../../src/pagination.js'
import { copyObject, CopySourceChangedError, type CopySink } from '../../src/copies.js'
import { resumableRead } from '../../src/resumable-read.js'
import { uploadBody, type UploadPart, type UploadSink } from '../../src/uploads.js'
import { digestBase64, isFileDigest } from '../../src/streams.js'
import {
  ObjectNotFoundError,
  PreconditionFailedError,
  type IoOptions,
  type ListedObject,
  type ObjectInfo,
  type ObjectRead,
  type PutOptions,
} from '../../src/storage.js'
import { gcsStatus, isGcsNotFound, mapGcsError, sanitize, type NotFoundMeaning } from './errors.js'
import { cancelSession, fetchMedia, mediaBody, putChunk, type GcsContext } from './http.js'
import { normalizeEndpoint, parseGcsLocator } from './locator.js'

export { isValidBucketName, parseGcsLocator, type GcsLocation } from './locator.js'

const log = debuglog('jobstore:gcs')

/** GCS wants resumable chunks in multiples of 256 KiB. */
const CHUNK_GRANULARITY = 256 * 1024
/** Default resumable chunk size; also the largest stream sent in a single request. */
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
/** V4 signed URLs live at most 7 days. */
const MAX_URL_EXPIRY_SECONDS = 7 * 24 * 3600
/** Listing page size: the service's maximum (fake-gcs-server has no default limit; we ask for real pages). */
const LIST_PAGE_SIZE = 1000
/** Custom metadata of the core's entries, as GCS stores have always named them: the flag is always set. */
const GCS_METADATA: MetadataFormat = {
  executable: 'jobstore-executable',
  executableValues: { yes: 'true', no: 'false' },
  writeToken: 'jobstore-write-id',
  digest: DIGEST_METADATA.digest,
}
/**
 * Time a JSON API request may take before it is abandoned (and retried). The SDK documents a 60 s default, but its
 * service layer overwrites the request's timeout with the client's `timeout` option, so without one a request whose
 * answer never comes hangs forever (seen under the fault tests).
 */
const REQUEST_TIMEOUT_MS = 60_000

/** Options of the GCS backend. */
export interface GcsJobStoreOptions extends JobStoreOptions {
  /**
   * Endpoint of a GCS emulator (`http://127.0.0.1:4443`), used without authentication, as the SDK does for custom
   * endpoints. Default: `STORAGE_EMULATOR_HOST` when set, else Google's endpoint with ADC.
   */
  readonly apiEndpoint?: string
  /** Project that owns a bucket `initialize()` creates. Default: the locator's, `GOOGLE_CLOUD_PROJECT`, or ADC's. */
  readonly projectId?: string
  /**
   * Resumable upload chunk size in bytes, a multiple of 256 KiB (default 8 MiB). Streams that end within one
   * chunk go in a single request. Memory per upload is about twice this.
   */
  readonly chunkSize?: number
  /** Extra options for the `Storage` client (`keyFilename`, `credentials`, `retryOptions`…). */
  readonly storageOptions?: StorageOptions
}

/** Custom metadata naming the sidecar that holds the core's digest of a file (see src/digest-sidecars.ts). */
const META_DIGEST_SIDECAR = DIGEST_METADATA.sidecar

/** An in-process key for signing URLs for an emulator, which has no credentials and checks no signatures. */
let emulatorSigningKey: string | undefined
function emulatorKey(): string {
  emulatorSigningKey ??= generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  }).privateKey
  return emulatorSigningKey
}

/** The upload's metadata with the core's digest of the body, when it has one (call once the body has ended). */
function withDigest(metadata: FileMetadata, options: PutOptions): FileMetadata {
  if (options.digest === undefined) return metadata
  return { ...metadata, metadata: { ...metadata.metadata, ...encodeMetadata(GCS_METADATA, { digest: options.digest() }) } }
}

/** A job store in a Google Cloud Storage bucket, optionally under a prefix. */
export class GcsJobStore extends AbstractJobStore {
  /** The bucket. */
  readonly bucketName: string
  /** The store's prefix in the bucket (empty: the bucket's root). */
  readonly prefix: string
  readonly #storage: Storage
  readonly #bucket: Bucket
  /** The bucket, through the client that does not retry, for resumable uploads. */
  readonly #uploadBucket: Bucket
  readonly #chunkSize: number
  /** Requests go without credentials (an emulator, or a custom endpoint, as the SDK does). */
  readonly #anonymous: boolean
  readonly #emulatorHost: string | undefined
  readonly #projectId: string | undefined
  /** Where the credentials come from (an option's object or path; undefined: ADC): half of "same service". */
  readonly #credentialSource: unknown
  #signer: Storage | undefined
  /** What the requests made without the SDK (./http.ts) need of the store. */
  readonly #http: GcsContext

  constructor(locator: string, options: GcsJobStoreOptions = {}) {
    super(locator, options)
    const location = parseGcsLocator(locator)
    this.bucketName = location.bucket
    this.prefix = location.prefix
    this.#chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE
    if (!Number.isInteger(this.#chunkSize) || this.#chunkSize < CHUNK_GRANULARITY || this.#chunkSize % CHUNK_GRANULARITY !== 0) {
      throw new InvalidArgumentError(`chunkSize must be a positive multiple of ${CHUNK_GRANULARITY}, got ${options.chunkSize}`)
    }
    this.#emulatorHost = normalizeEndpoint(options.apiEndpoint ?? process.env['STORAGE_EMULATOR_HOST'])
    const envProject = process.env['GOOGLE_CLOUD_PROJECT'] ?? process.env['GCLOUD_PROJECT']
    this.#projectId = options.projectId ?? location.projectId ?? (envProject === '' ? undefined : envProject)
    const storageOptions: StorageOptions = {
      timeout: REQUEST_TIMEOUT_MS,
      ...options.storageOptions,
      ...(this.#projectId !== undefined ? { projectId: this.#projectId } : {}),
      ...(this.#emulatorHost !== undefined ? { apiEndpoint: this.#emulatorHost } : {}),
      retryOptions: {
        autoRetry: true,
        maxRetries: 4,
        // Every operation here is safe to retry: deletes are idempotent, conditional writes are recognised by
        // their write ID (see putObject), unconditional ones are last-writer-wins. It also keeps the SDK from
        // switching retries off on the shared client while another operation runs (it does for the others).
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
        ...options.storageOptions?.retryOptions,
      },
    }
    this.#storage = new Storage(storageOptions)
    if (this.#emulatorHost !== undefined) {
      // The SDK takes STORAGE_EMULATOR_HOST verbatim as the JSON API base (`http://host:port/b/…`), while
      // emulators and the other Google SDKs expect the host only and serve `/storage/v1/…`: set the base here.
      this.#storage.baseUrl = `${this.#storage.apiEndpoint}/storage/v1`
    }
    this.#anonymous = this.#storage.customEndpoint && this.#storage.useAuthWithCustomEndpoint !== true
    this.#bucket = this.#storage.bucket(this.bucketName)
    // Resumable sessions start through a client of their own that does not retry, and their chunks are sent by
    // #putChunk, once each, not by the SDK's uploader: when a chunk fails, that one (7.22) asks the session for its
    // offset, and when the answer is not 308 (the last chunk had landed and its answer was lost, or the session is
    // gone) it raises a RangeError no listener can catch and the upload never settles (googleapis/nodejs-storage#2193,
    // #2494); it can also stop without settling at all. A failed chunk fails the write, and a lost answer to the
    // final one is settled by the write ID (see #sink). Single-request writes keep their retries.
    const uploadStorage = new Storage({ ...storageOptions, retryOptions: { ...storageOptions.retryOptions, autoRetry: false } })
    uploadStorage.baseUrl = this.#storage.baseUrl
    this.#uploadBucket = uploadStorage.bucket(this.bucketName)
    this.#credentialSource = options.storageOptions?.authClient ?? options.storageOptions?.credentials ?? options.storageOptions?.keyFilename
    this.#http = {
      where: this.#where(),
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      mediaUrl: (key) => `${this.#storage.baseUrl}/b/${encodeURIComponent(this.bucketName)}/o/${encodeURIComponent(this.#name(key))}?alt=media`,
      authHeaders: () => this.#authHeaders(),
      metadata: (key) => this.#metadata(key),
      error: (err, action, key, notFound) => this.#error(err, action, key, notFound),
    }
  }

  #where(): string {
    return `gs://${this.bucketName}${this.prefix === '' ? '' : `/${this.prefix}`}`
  }

  #name(key: string): string {
    return this.prefix === '' ? key : `${this.prefix}/${key}`
  }

  /** The store-relative key of an object name in the bucket. */
  #relative(name: string): string {
    return this.prefix === '' ? name : name.slice(this.prefix.length + 1)
  }

  #error(err: unknown, action: string, key?: string, notFound?: NotFoundMeaning): JobStoreError {
    return mapGcsError(err, {
      action,
      where: this.#where(),
      ...(key !== undefined ? { key } : {}),
      ...(notFound !== undefined ? { notFound } : {}),
    })
  }

  override getEnv(): Record<string, string> {
    const env: Record<string, string> = {}
    if (this.#emulatorHost !== undefined) env['STORAGE_EMULATOR_HOST'] = this.#emulatorHost
    if (this.#projectId !== undefined) env['GOOGLE_CLOUD_PROJECT'] = this.#projectId
    return env
  }

  // ---------------------------------------------------------------- bucket

  protected override async createStorage(options: IoOptions = {}): Promise<void> {
    throwIfAborted(options.signal)
    if (await this.#bucketExists()) return
    try {
      await this.#storage.createBucket(this.bucketName)
      log('created bucket %s', this.bucketName)
    } catch (err) {
      if (gcsStatus(err) === 409) {
        // Created concurrently (by another store of ours), or the name belongs to someone else.
        if (await this.#bucketExists()) return
        throw new JobStoreError(`the bucket name ${this.bucketName} is taken by another project`, { cause: sanitize(err) })
      }
      if (gcsStatus(err) === undefined && /project id/i.test(String((err as Error)?.message))) {
        throw new JobStoreError(
          `cannot create the bucket ${this.bucketName}: no project; set GOOGLE_CLOUD_PROJECT or use a google:project:name locator`,
          { cause: sanitize(err) },
        )
      }
      throw this.#error(err, 'creation of the bucket for', undefined)
    }
  }

  async #bucketExists(): Promise<boolean> {
    try {
      await this.#bucket.getMetadata()
      return true
    } catch (err) {
      const status = gcsStatus(err)
      if (isGcsNotFound(err)) return false
      // Object-level permissions only (no storage.buckets.get): the bucket may well exist; writes will tell.
      if (status === 403) {
        log('cannot read the metadata of bucket %s (403): assuming it exists', this.bucketName)
        return true
      }
      throw this.#error(err, 'lookup of the bucket for', undefined)
    }
  }

  // ---------------------------------------------------------------- writes

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    throwIfAborted(options.signal)
    const file = this.#bucket.file(this.#name(key))
    const preconditionOpts = this.#precondition(key, options)
    // The core's write token (the write-token protocol, see PreconditionFailedError), or one of ours.
    const writeId = options.writeToken ?? randomId()
    const metadata: FileMetadata = {
      contentType: 'application/octet-stream',
      metadata: encodeMetadata(GCS_METADATA, { executable: options.executable === true, writeToken: writeId }),
    }
    try {
      return await uploadBody(body, this.#sink(file, key, metadata, preconditionOpts, options), {
        what: `${this.#where()}/${key}`,
        partSize: this.#chunkSize,
        // A resumable session takes its chunks in order, one at a time; the final one creates the object.
        concurrency: 1,
        finalPartCommits: true,
        wholeDigest: 'md5',
        writePath: options.writePath,
        signal: options.signal,
      })
    } catch (err) {
      if (!Buffer.isBuffer(body)) body.destroy()
      throw this.#writeError(err, key, body, options.signal)
    }
  }

  /** The conditional-write proof's paths: single-request uploads, and resumable uploads. */
  protected override async conditionalWriteProofTarget(): Promise<ConditionalWriteProofTarget> {
    return {
      scope: `gcs ${this.#storage.apiEndpoint} ${this.bucketName}`,
      paths: [
        { writePath: 'single', name: 'single-request upload' },
        { writePath: 'multipart', name: 'resumable upload' },
      ],
    }
  }

  #precondition(key: string, options: PutOptions): { ifGenerationMatch: number } | undefined {
    if (options.ifNoneMatch) return { ifGenerationMatch: 0 }
    if (options.ifMatch === undefined) return undefined
    const generation = /^[1-9]\d{0,15}$/.test(options.ifMatch) ? Number(options.ifMatch) : Number.NaN
    // A token that is not a generation cannot match any stored version.
    if (!Number.isSafeInteger(generation)) throw new PreconditionFailedError(key)
    return { ifGenerationMatch: generation }
  }

  #writeError(err: unknown, key: string, body: Buffer | Readable, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted) return err instanceof AbortedError ? err : new AbortedError({ cause: signal.reason })
    // The caller's own failure (the body stream's error) is theirs to see, as is.
    const bodyError = Buffer.isBuffer(body) ? null : body.errored
    if (bodyError !== null && bodyError !== undefined && bodyError === err) return err
    return this.#error(err, 'upload of', key, 'bucket')
  }

  #generationOf(metadata: FileMetadata, key: string): string {
    const generation = metadata.generation
    if (generation === undefined || generation === null || String(generation) === '') {
      throw new JobStoreError(`GCS upload of ${key} to ${this.#where()} returned no generation`)
    }
    return String(generation)
  }

  /** One multipart request that declares the MD5 and CRC32C: the service rejects a corrupted body. */
  async #putSingle(
    file: File,
    key: string,
    data: Buffer,
    metadata: FileMetadata,
    preconditionOpts: { ifGenerationMatch: number } | undefined,
  ): Promise<FileMetadata> {
    const md5 = digestBase64('md5', data)
    await file.save(data, {
      resumable: false,
      // The SDK's own check deletes the object on a mismatch, whatever its generation by then: ours below is exact.
      validation: false,
      metadata: { ...metadata, md5Hash: md5, crc32c: digestBase64('crc32c', data) },
      ...(preconditionOpts !== undefined ? { preconditionOpts } : {}),
    })
    await this.#checkStored(file, key, file.metadata, data.length, md5)
    return file.metadata
  }

  /**
   * The requests of one write (see uploadBody): one multipart request, or a resumable session whose chunks go one
   * at a time, with the final chunk (which creates the object) sent only after the digest sidecar was saved. A
   * failed session is cancelled and its sidecar deleted; a final chunk whose answer was lost is recognised by the
   * write ID (and kept only if whole).
   */
  #sink(
    file: File,
    key: string,
    base: FileMetadata,
    preconditionOpts: { ifGenerationMatch: number } | undefined,
    options: PutOptions,
  ): UploadSink<void> {
    const announced = (size: number): void => {
      if (options.contentLength !== undefined && size !== options.contentLength) {
        throw new IntegrityError(`${key}: the body has ${size} bytes, ${options.contentLength} were announced`)
      }
    }
    const writeId = base.metadata?.[GCS_METADATA.writeToken] as string
    // The digest is known only once the body is all in, after the session (and its metadata) started: it goes into
    // the sidecar the metadata names, saved before the final chunk.
    const sidecar = options.digest !== undefined ? this.#name(sidecarKey(key, writeId)) : undefined
    let session: string | undefined
    let sidecarSaved = false
    return {
      putOnce: async (data) => {
        announced(data.length)
        return this.#generationOf(await this.#putSingle(file, key, data, withDigest(base, options), preconditionOpts), key)
      },
      begin: async () => {
        const metadata = sidecar !== undefined ? { ...base, metadata: { ...base.metadata, [META_DIGEST_SIDECAR]: sidecar } } : base
        const [uri] = await this.#uploadBucket.file(file.name).createResumableUpload({
          metadata,
          ...(preconditionOpts !== undefined ? { preconditionOpts } : {}),
        })
        session = uri
      },
      putPart: async (part, signal) => {
        await putChunk(this.#http, session as string, key, part, undefined, signal)
      },
      commit: async (_parts, body, signal, final) => {
        announced(body.size)
        if (sidecar !== undefined && options.digest !== undefined) {
          await this.#bucket.file(sidecar).save(Buffer.from(options.digest()), { resumable: false, contentType: 'text/plain' })
          sidecarSaved = true
        }
        let stored: FileMetadata
        try {
          stored = await putChunk(this.#http, session as string, key, final as UploadPart, body.size, signal)
        } catch (err) {
          if (err instanceof PreconditionFailedError || signal.aborted) throw err
          // The final chunk may have landed, its answer lost: an object of this write is kept only if it is whole; a
          // partial one is deleted (that very generation), never left visible.
          const current = await this.#metadata(key).catch(() => undefined)
          if (current?.metadata?.[GCS_METADATA.writeToken] !== writeId || current?.generation === undefined) throw err
          if (Number(current.size) === body.size && current.md5Hash === body.digest) return this.#generationOf(current, key)
          log('%s: deleting the partial object a failed resumable upload left', key)
          await file.delete({ ifGenerationMatch: Number(current.generation) }).catch((deleteError: unknown) => {
            log('cannot delete the partial upload of %s: %s', key, sanitize(deleteError).message)
          })
          throw err
        }
        await this.#checkStored(file, key, stored, body.size, body.digest as string)
        return this.#generationOf(stored, key)
      },
      abort: async () => {
        if (session !== undefined) await cancelSession(session)
        if (sidecarSaved && sidecar !== undefined) await this.#bucket.file(sidecar).delete({ ignoreNotFound: true }).catch(() => {})
      },
    }
  }

  /**
   * Compares what the service stored with what was sent. Resumable uploads are verified only after the service
   * created the object (the SDK sends no checksum with them): a mismatch deletes exactly that generation.
   */
  async #checkStored(file: File, key: string, stored: FileMetadata, size: number, md5: string): Promise<void> {
    const storedSize = Number(stored.size)
    const mismatch =
      stored.size !== undefined && storedSize !== size
        ? `${storedSize} bytes stored, ${size} sent`
        : stored.md5Hash !== undefined && stored.md5Hash !== md5
          ? 'the stored MD5 differs from the MD5 of the bytes sent'
          : undefined
    if (mismatch === undefined) return
    if (stored.generation !== undefined) {
      await file.delete({ ifGenerationMatch: Number(stored.generation) }).catch((err: unknown) => {
        log('cannot delete corrupted upload of %s: %s', key, sanitize(err).message)
      })
    }
    throw new IntegrityError(`GCS upload of ${key} to ${this.#where()} was corrupted: ${mismatch}`)
  }

  // ---------------------------------------------------------------- reads

  async #metadata(key: string): Promise<FileMetadata | undefined> {
    try {
      const [metadata] = await this.#bucket.file(this.#name(key)).getMetadata()
      return metadata
    } catch (err) {
      if (isGcsNotFound(err)) return undefined
      throw this.#error(err, 'metadata lookup of', key, 'bucket')
    }
  }

  protected override async headObject(key: string, options: IoOptions = {}): Promise<ObjectInfo | undefined> {
    throwIfAborted(options.signal)
    const metadata = await this.#metadata(key)
    if (metadata === undefined) return undefined
    return {
      key,
      size: Number(metadata.size ?? 0),
      version: this.#generationOf(metadata, key),
      ...decodeMetadata(GCS_METADATA, metadata.metadata),
    }
  }

  async #authHeaders(): Promise<Record<string, string>> {
    if (this.#anonymous) return {}
    try {
      const headers = await this.#storage.authClient.getRequestHeaders()
      return { ...(headers as Record<string, string>) }
    } catch (err) {
      throw this.#error(err, 'authentication for', undefined)
    }
  }

  /**
   * One GET of the object's media. Not the SDK's `createReadStream`: when one of its streams is destroyed early it
   * destroys the client's shared keep-alive agent, and every other download in flight in the process then hangs
   * forever (seen with @google-cloud/storage 7.22). With `fetch`, destroying the body closes only its connection.
   * Generation, hashes and custom metadata come from the same response, so they describe the bytes read.
   */
  protected override async getObject(key: string, options: IoOptions = {}): Promise<ObjectRead> {
    const { signal } = options
    for (let round = 0; ; round++) {
      throwIfAborted(signal)
      const { response, controller } = await fetchMedia(this.#http, key, signal)
      const headers = response.headers
      const version = headers.get('x-goog-generation') ?? ''
      const storedEncoding = headers.get('x-goog-stored-content-encoding')
      const size = Number(headers.get('x-goog-stored-content-length') ?? headers.get('content-length') ?? Number.NaN)
      const hashes = new Map<string, string>()
      for (const part of (headers.get('x-goog-hash') ?? '').split(',')) {
        const at = part.indexOf('=')
        if (at > 0) hashes.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim())
      }
      const fail = (error: JobStoreError): never => {
        controller.abort()
        throw error
      }
      if (!/^\d+$/.test(version) || !Number.isSafeInteger(size)) {
        fail(new JobStoreError(`GCS read of ${key} in ${this.#where()}: the response has no generation or size`))
      }
      if (storedEncoding !== null && storedEncoding !== 'identity') {
        fail(new UnsupportedOperationError(`${key} in ${this.#where()} is stored with Content-Encoding ${storedEncoding}; jobstore never writes such objects`))
      }
      // The core's custom metadata, as the response's `x-goog-meta-` headers echo it.
      const names = [GCS_METADATA.executable, GCS_METADATA.writeToken, GCS_METADATA.digest, META_DIGEST_SIDECAR]
      let custom: Record<string, unknown> | undefined = Object.fromEntries(names.map((name) => [name, headers.get(`x-goog-meta-${name}`) ?? undefined]))
      if (custom[GCS_METADATA.executable] === undefined) {
        // Custom metadata not echoed on media downloads: ask for this very generation's metadata.
        try {
          const [metadata] = await this.#bucket.file(this.#name(key), { generation: Number(version) }).getMetadata()
          custom = metadata.metadata ?? undefined
        } catch (err) {
          controller.abort()
          // Replaced between the GET and the lookup: read the new generation instead.
          if (isGcsNotFound(err) && round < 3) continue
          throw this.#error(err, 'metadata lookup of', key)
        }
      }
      // A body cut mid-way is resumed with ranged GETs of the same generation; the core checks the MD5 of all of it
      // (or the CRC32C, for objects without an MD5, such as composite objects).
      const body: Readable = resumableRead(mediaBody(this.#http, key, response, controller, signal), {
        size,
        what: `${key} in ${this.#where()}`,
        signal,
        reopen: async (offset) => {
          const rest = await fetchMedia(this.#http, key, signal, { offset, generation: version })
          return mediaBody(this.#http, key, rest.response, rest.controller, signal)
        },
      })
      const md5 = hashes.get('md5')
      const crc32c = hashes.get('crc32c')
      const checksum = md5 !== undefined ? { algorithm: 'md5', digest: md5 } : crc32c !== undefined ? { algorithm: 'crc32c', digest: crc32c } : undefined
      let digest: string | undefined
      try {
        digest = await this.#digestOf(this.#bucket, custom)
      } catch (err) {
        body.destroy()
        throw err
      }
      return {
        key,
        size,
        version,
        ...decodeMetadata(GCS_METADATA, custom),
        ...(digest !== undefined ? { digest } : {}),
        body,
        ...(checksum !== undefined ? { checksum } : {}),
      }
    }
  }

  /** Every file's digest is in its metadata or a sidecar (see the module's TSDoc). */
  protected override get keepsFileDigests(): boolean {
    return true
  }

  /** The core's digest of an object, from its custom metadata (see digestFromMetadata), its sidecar in `bucket`. */
  #digestOf(bucket: Bucket, metadata: Record<string, unknown> | undefined): Promise<string | undefined> {
    return digestFromMetadata(metadata, async (sidecar) => {
      try {
        return (await bucket.file(sidecar).download())[0].toString('latin1')
      } catch (err) {
        if (gcsStatus(err) !== 404) throw mapGcsError(err, { action: 'read of the digest sidecar', where: `gs://${bucket.name}/${sidecar}` })
        log('the digest sidecar %s is missing', sidecar)
        return undefined
      }
    })
  }

  /**
   * Deletes the orphan digest sidecars older than `olderThanMs` (see removeOrphanSidecars): a metadata lookup per
   * sidecar. (Unfinished resumable sessions cannot be listed; they expire on their own.)
   */
  protected override removeLeftovers(olderThanMs: number, options: IoOptions = {}): Promise<number> {
    const prefix = this.#name(DIGESTS_PREFIX)
    return removeOrphanSidecars({
      sidecars: mapConcurrent(this.#listRaw(prefix, 'timeCreated', options.signal), 1, async (item) => ({
        name: item.name,
        created: Date.parse(String(item.timeCreated ?? '')),
      })),
      prefix,
      cutoff: Date.now() - olderThanMs,
      // A lookup that fails counts as no object: the sidecar goes.
      namedBy: async (key) => (await this.#metadata(key).catch(() => undefined))?.metadata?.[META_DIGEST_SIDECAR] as string | undefined,
      deleteNames: (names) => forEachConcurrent(names, this.concurrency, (name) => this.#bucket.file(name).delete({ ignoreNotFound: true }).then(() => {})),
      concurrency: this.concurrency,
    })
  }

  // ---------------------------------------------------------------- listing and deletes

  protected override async deleteObjects(keyList: readonly string[], options: IoOptions = {}): Promise<void> {
    // The JSON API's batch endpoint is not in the Node.js SDK: single deletes, many in flight.
    await forEachConcurrent(keyList, this.concurrency, (key) => this.#delete(this.#name(key), options.signal))
  }

  /** Deletes one object by its name in the bucket; a missing one (or bucket) is fine. */
  async #delete(name: string, signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal)
    try {
      // Not the SDK's ignoreNotFound: it ignores any 404, whatever the reason.
      await this.#bucket.file(name).delete()
    } catch (err) {
      if (isGcsNotFound(err)) return // no such object, or no bucket: nothing to delete
      throw this.#error(err, 'delete of', this.#relative(name), 'bucket')
    }
  }

  protected override async *listObjects(prefix: string, options: IoOptions = {}): AsyncGenerator<ListedObject> {
    for await (const item of this.#listRaw(this.#name(prefix), 'size', options.signal)) {
      const size = Number(item.size)
      yield { key: this.#relative(item.name), ...(Number.isSafeInteger(size) ? { size } : {}) }
    }
  }

  /**
   * The raw listing items (name and `field`) of every object under a bucket prefix; none when the bucket is
   * missing. With `fields`, the SDK hands out the listing's items as they are, not File objects.
   */
  #listRaw(prefix: string, field: 'size' | 'timeCreated', signal: AbortSignal | undefined): AsyncGenerator<{ name: string } & Partial<Record<typeof field, unknown>>> {
    type Item = { name: string } & Partial<Record<typeof field, unknown>>
    return paginate<Item, string>(
      async (pageToken) => {
        try {
          const [items, next] = (await this.#bucket.getFiles({
            prefix,
            autoPaginate: false,
            maxResults: LIST_PAGE_SIZE,
            fields: `items(name,${field}),nextPageToken`,
            ...(pageToken !== undefined ? { pageToken } : {}),
          })) as unknown as [Item[], { pageToken?: string } | null]
          return { items, next: next?.pageToken }
        } catch (err) {
          if (isGcsNotFound(err)) return undefined // no bucket: an empty store
          throw this.#error(err, 'listing of', this.#relative(prefix), 'bucket')
        }
      },
      { signal },
    )
  }

  protected override async destroyStorage(options: IoOptions = {}): Promise<void> {
    // Only what the store owns (see ownedRoots): a store at the bucket's root must not take the stores under
    // prefixes of the same bucket with it. The bucket stays.
    const names = ownedNames(this.#name(''), [DIGESTS_PREFIX], (prefix) => this.#listRaw(prefix, 'size', options.signal))
    await deleteListed(names, ([name]) => this.#delete(name as string, options.signal), { batchSize: 1, concurrency: this.concurrency })
  }

  // ---------------------------------------------------------------- URLs

  /**
   * A V4 signed GET URL. Signing uses ADC: a service-account key signs locally, other credentials through IAM
   * `signBlob`. An emulator has no credentials: the URL is signed with an in-process key, which it does not check.
   */
  protected override async getObjectUrl(key: string, expiresInSeconds: number): Promise<string> {
    if (!(expiresInSeconds > 0) || expiresInSeconds > MAX_URL_EXPIRY_SECONDS) {
      throw new InvalidArgumentError(`GCS signed URLs expire within 1 s to 7 days; ${expiresInSeconds} s asked`)
    }
    const storage = this.#anonymous ? this.#emulatorSigner() : this.#storage
    try {
      const [url] = await storage
        .bucket(this.bucketName)
        .file(this.#name(key))
        .getSignedUrl({ version: 'v4', action: 'read', expires: Date.now() + Math.ceil(expiresInSeconds) * 1000 })
      return url
    } catch (err) {
      throw new UnsupportedOperationError(
        `cannot sign a URL for ${key} in ${this.#where()} (signed URLs need a service-account key, or the ` +
          `iam.serviceAccounts.signBlob permission for the ADC identity): ${sanitize(err).message}`,
        { cause: sanitize(err) },
      )
    }
  }

  // ---------------------------------------------------------------- gs: URLs

  /**
   * Import and export of `gs://bucket/object` URLs, with the environment's credentials and emulator, through the
   * core's bucket URL handler (a store at the bucket's root does the reads and writes).
   */
  static readonly urlHandler: BucketUrlHandler<GcsJobStore> = GcsJobStore.bucketUrlHandler<GcsJobStore>({
    schemes: ['gs'],
    locate: (url) => ({ root: `gs://${url.hostname}`, rawKey: url.pathname.slice(1) }),
    open: (root) => new GcsJobStore(root),
  })

  /** Same service: the same endpoint (Google's, or an emulator) and the same credentials. */
  #sameService(other: GcsJobStore): boolean {
    return (
      this.#storage.apiEndpoint === other.#storage.apiEndpoint &&
      this.#anonymous === other.#anonymous &&
      this.#credentialSource === other.#credentialSource
    )
  }

  /** Server-side import of a `gs://` URL of the same service: a rewrite. */
  protected override async copyFromUrl(url: URL, key: string, options: PutOptions): Promise<boolean> {
    const source = GcsJobStore.urlHandler.locate(url)
    if (source === undefined || !this.#sameService(source.store)) return false
    // A source without the core's digest (not a store's file) is streamed instead, so that the core hashes it.
    const copied = await this.#copyIn(
      source.store.bucketName,
      source.key,
      key,
      options,
      (err) => new NoSuchFileError(url.href, { cause: sanitize(err), message: `no object at ${url.href}` }),
      true,
    )
    return copied !== undefined
  }

  /** Server-side export to a `gs://` URL of the same service: a rewrite, made by the target's store. */
  protected override async copyToUrl(key: string, url: URL, options: IoOptions): Promise<boolean> {
    const target = GcsJobStore.urlHandler.locate(url)
    if (target === undefined || !this.#sameService(target.store)) return false
    await target.store.#copyIn(this.bucketName, this.#name(key), target.key, options, (err) =>
      new ObjectNotFoundError(key, { cause: sanitize(err) }),
    )
    return true
  }

  /**
   * Copies `sourceBucket/sourceName` to the store-relative `key` with the JSON API's rewrite (the SDK follows its
   * rewrite tokens until done), pinned to the source generation read first, so the executable flag kept is that
   * version's. The object appears whole when the rewrite is done; `ifGenerationMatch` carries the conditions, and
   * a write ID in the metadata recognises a retried request whose first attempt landed.
   */
  async #copyIn(
    sourceBucket: string,
    sourceName: string,
    key: string,
    options: PutOptions,
    missing: (cause: unknown) => Error,
    requireDigest = false,
  ): Promise<string | undefined> {
    const source = `gs://${sourceBucket}/${sourceName}`
    type Source = { size: number; pinned: File; metadata: FileMetadata; digest: string | undefined }
    // One rewrite (the SDK follows its rewrite tokens), pinned to the source's generation.
    const sink: CopySink<Source, never, string> = {
      source: async () => {
        let metadata: FileMetadata
        try {
          ;[metadata] = await this.#storage.bucket(sourceBucket).file(sourceName).getMetadata()
        } catch (err) {
          if (isGcsNotFound(err)) throw missing(err)
          throw mapGcsError(err, { action: 'metadata lookup of', where: source })
        }
        const generation = Number(metadata.generation)
        const pinned = this.#storage
          .bucket(sourceBucket)
          .file(sourceName, Number.isSafeInteger(generation) ? { generation } : {})
        // The copy carries the source's digest in its own metadata (never the source's sidecar). A source no store
        // wrote has none: its MD5 (the service's) is adopted; without one (a composite object), an import is streamed
        // so that the core hashes it.
        const sourceMd5 = typeof metadata.md5Hash === 'string' ? `md5:${metadata.md5Hash}` : undefined
        const digest =
          (await this.#digestOf(this.#storage.bucket(sourceBucket), metadata.metadata ?? undefined)) ??
          (isFileDigest(sourceMd5) ? sourceMd5 : undefined)
        if (digest === undefined && requireDigest) return undefined
        return { size: Number(metadata.size ?? 0), pinned, metadata, digest }
      },
      copyOnce: async ({ pinned, metadata, digest }) => {
        const writeId = randomId()
        const executable = options.executable === true || decodeMetadata(GCS_METADATA, metadata.metadata).executable
        const preconditionOpts = this.#precondition(key, options)
        try {
          const [, response] = await pinned.copy(this.#bucket.file(this.#name(key)), {
            contentType: 'application/octet-stream',
            metadata: encodeMetadata(GCS_METADATA, { executable, writeToken: writeId, digest }),
            ...(preconditionOpts !== undefined ? { preconditionOpts } : {}),
          })
          log('copied %s to %s/%s server-side (rewrite)', source, this.#where(), key)
          const resource = (response as { resource?: FileMetadata } | undefined)?.resource
          return this.#generationOf(resource ?? (await this.#metadata(key)) ?? {}, key)
        } catch (err) {
          if (err instanceof JobStoreError) throw err
          const status = gcsStatus(err)
          if (status === 412) {
            const current = await this.#metadata(key).catch(() => undefined)
            if (current?.metadata?.[GCS_METADATA.writeToken] === writeId) return this.#generationOf(current, key)
            throw new PreconditionFailedError(key, { cause: sanitize(err) })
          }
          if (isGcsNotFound(err)) {
            // The pinned generation went: the source was replaced (copy the new one) or deleted; or the target's
            // bucket is missing.
            const [exists] = await this.#storage.bucket(sourceBucket).file(sourceName).exists().catch(() => [true])
            if (!exists) throw missing(err)
            throw new CopySourceChangedError({ cause: this.#error(err, `copy from ${source} to`, key, 'bucket') })
          }
          throw this.#error(err, `copy from ${source} to`, key, 'bucket')
        }
      },
    }
    return copyObject(sink, { what: source, signal: options.signal })
  }

  #emulatorSigner(): Storage {
    this.#signer ??= new Storage({
      apiEndpoint: this.#storage.apiEndpoint,
      projectId: this.#projectId ?? 'jobstore-emulator',
      credentials: { client_email: 'jobstore-emulator-signer@jobstore.invalid', private_key: emulatorKey() },
    })
    return this.#signer
  }
}
