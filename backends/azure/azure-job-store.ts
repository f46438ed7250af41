/**
 * The Azure Blob Storage backend: a job store in a container, optionally under a prefix
 * (`azure://account/container[/prefix]`).
 *
 * - Credentials: `AZURE_STORAGE_CONNECTION_STRING` when set (Azurite, or an account key or SAS), its account must be
 *   the locator's; otherwise `DefaultAzureCredential` (loaded only then) against `https://<account>.blob.core.windows.net`.
 * - Writes: a body up to one block goes in one Put Blob; a longer stream is read into a bounded pool of block
 *   buffers, staged (Put Block, `uploadConcurrency` at a time) and committed with one Put Block List at the end.
 *   Nothing is visible before the commit, and a failed or aborted write never commits. Conditions (`If-None-Match:
 *   *`, `If-Match: <etag>`) go on the Put Blob or on the commit. Every request body carries its MD5
 *   (`Content-MD5`), so the service rejects a corrupted block; the MD5 of the whole object, computed while
 *   streaming, is stored as the blob's Content-MD5 and handed to the core, which checks it on every read.
 * - The core's own digest (CRC32) of a file: the metadata entry `jobstorecrc32`, set by the request that commits
 *   (Put Blob or Put Block List: the body has ended by then, so the digest is known); copies carry the source's.
 *   Reads of files are checked against it (instead of the Content-MD5, which the service may recompute).
 * - Version token: the ETag. Executable flag: the metadata entry `jobstoreexecutable`.
 * - Deletes: Blob Batch (256 deletes per request), batches in parallel; single deletes where a service refuses
 *   batches. Listing: List Blobs pages of 5000.
 * - Public URLs: read-only SAS (account key from the connection string, or a user delegation key).
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import { debuglog } from 'node:util'
import type {
  BlobClient,
  BlobRequestConditions,
  BlockBlobClient,
  BlockBlobUploadOptions,
  ContainerClient,
  HttpAuthorization,
} from '@azure/storage-blob'
import { AbstractJobStore, type BucketUrlHandler, type JobStoreOptions } from '../../src/abstract-job-store.js'
import { forEachConcurrent, throwIfAborted } from '../../src/concurrency.js'

import type { ConditionalWriteProofTarget } from '../../src/conditional-write-proof.js'
import {
  InvalidArgumentError,
  InvalidImportExportUrlError,
  JobStoreError,
  NoSuchFileError,
  UnsupportedOperationError,
} from '../../src/errors.js'
import { isOwned, ownedRoots } from '../../src/layout.js'
import { decodeMetadata, encodeMetadata, type MetadataFormat } from '../../src/object-metadata.js'
import { copyObject, CopySourceChangedError, type CopySink } from '../../src/copies.js'
import { rangedRead } from '../../src/ranged-reads.js'
import { uploadBody, type UploadSink } from '../../src/uploads.js'
import { isFileDigest } from '../../src/streams.js'
import {
  ObjectNotFoundError,
  PreconditionFailedError,
  type IoOptions,
  type ListedObject,
  type ObjectInfo,
  type ObjectRead,
  type PutOptions,
} from '../../src/storage.js'
import {
  errorCode,
  httpStatus,
  isContainerNotFound,
  isInvalidBlockList,
  isNotFound,
  isPreconditionFailed,
  wrapAzureError,
} from './errors.js'
import { isAzureBlobHttpsUrl, parseAzureLocator } from './locator.js'
import { BlobDeleter } from './batch-delete.js'
import { ReadSasSigner } from './sas.js'
import { clientsFromConnectionString, tokenClients, type Clients } from './clients.js'
import { blockId, blocksDiscarded, deleteIfUncommittedOnly, removeStagedBlocks, StagedBlocks } from './staged-blocks.js'

export { isAzureBlobHttpsUrl, parseAzureLocator, type AzureLocation } from './locator.js'

const log = debuglog('jobstore:azure')

const MiB = 1024 * 1024
/** Default block size: also the largest stream sent as a single Put Blob. */
export const DEFAULT_BLOCK_SIZE = 8 * MiB
const DEFAULT_UPLOAD_CONCURRENCY = 4
/** Azure's limits: blocks per blob, size of one block. */
const MAX_BLOCKS = 50_000
const MAX_BLOCK_SIZE = 4000 * MiB
/** Buffer bodies up to this size go in one Put Blob (they are in memory already). */
const MAX_SINGLE_PUT = 256 * MiB
const LIST_PAGE_SIZE = 5000
/** The core's metadata entries, as Azure stores have always named them: keys must be C# identifiers (Azure lowercases them). */
const AZURE_METADATA: MetadataFormat = {
  executable: 'jobstoreexecutable',
  executableValues: { yes: 'true' },
  writeToken: 'jobstorewritetoken',
  digest: 'jobstorecrc32',
}

/** The write's metadata, with the core's digest of the body when it has one (call once the body has ended). */
function withDigest(write: Write): Record<string, string> {
  return { ...write.metadata, ...encodeMetadata(AZURE_METADATA, { digest: write.options.digest?.() }) }
}
/** Copy Blob From URL copies up to this much in one synchronous request; larger blobs go block by block. */
const MAX_SYNC_COPY = 256 * MiB
/** Block size of server-side block copies (Put Block From URL), raised to fit 50,000 blocks. */
const COPY_BLOCK_SIZE = 100 * MiB
/** Lifetime of the read SAS a server-side copy hands the service for its source. */
const COPY_SAS_SECONDS = 3600

/** Options of the Azure backend. */
export interface AzureJobStoreOptions extends JobStoreOptions {
  /**
   * Block size of staged uploads, and the largest stream sent in one request (default 8 MiB). Raised
   * automatically when a known length would need more than 50,000 blocks. Memory per upload is about
   * `blockSize * (uploadConcurrency + 1)`.
   */
  readonly blockSize?: number
  /** Blocks of one upload in flight at once (default 4). */
  readonly uploadConcurrency?: number
  /** Delete with Blob Batch requests (default true); false: parallel single deletes. */
  readonly batchDelete?: boolean
  /** Blobs per List Blobs page (default and maximum 5000). */
  readonly listPageSize?: number
  /**
   * Server-side copies (import from, export to Azure blob URLs of the same account and credentials) of blobs up to
   * this size are one Copy Blob From URL; larger ones are staged with Put Block From URL and committed. Default and
   * maximum 256 MiB (the service's limit for Copy Blob From URL).
   */
  readonly syncCopyLimit?: number
}

/** What one `putObject` call carries around. */
interface Write {
  readonly key: string
  readonly blob: BlockBlobClient
  /** Random per write: names its blocks, apart from those of concurrent writers of the same blob. */
  readonly writeId: string
  readonly conditions: BlobRequestConditions
  readonly metadata: Record<string, string>
  readonly options: PutOptions
}

function conditionsOf(options: PutOptions): BlobRequestConditions {
  return {
    ...(options.ifNoneMatch ? { ifNoneMatch: '*' } : {}),
    ...(options.ifMatch !== undefined ? { ifMatch: options.ifMatch } : {}),
  }
}

function md5(data: Buffer): Buffer {
  return createHash('md5').update(data).digest()
}

/** A server-side copy the service cannot do (501 to Put Block From URL: Azurite): the core streams instead. */
class CopyDeclined extends Error {}

/** A job store in an Azure Blob Storage container. */
export class AzureJobStore extends AbstractJobStore {
  readonly account: string
  readonly container: string
  readonly prefix: string
  readonly #namePrefix: string
  readonly #blockSize: number
  readonly #uploadConcurrency: number
  readonly #deleter: BlobDeleter
  readonly #listPageSize: number
  readonly #syncCopyLimit: number
  /** The service answered 501 to Put Block From URL (Azurite): large copies stream through this process. */
  #blockCopyUnsupported = false
  #clients: Promise<Clients> | undefined
  readonly #signer = new ReadSasSigner()

  constructor(locator: string, options: AzureJobStoreOptions = {}) {
    super(locator, options)
    const location = parseAzureLocator(locator)
    this.account = location.account
    this.container = location.container
    this.prefix = location.prefix
    this.#namePrefix = location.prefix === '' ? '' : `${location.prefix}/`
    this.#blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE
    if (!Number.isInteger(this.#blockSize) || this.#blockSize < 1 || this.#blockSize > MAX_BLOCK_SIZE) {
      throw new InvalidArgumentError(`blockSize must be an integer from 1 to ${MAX_BLOCK_SIZE}, got ${options.blockSize}`)
    }
    this.#uploadConcurrency = options.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY
    if (!Number.isInteger(this.#uploadConcurrency) || this.#uploadConcurrency < 1) {
      throw new InvalidArgumentError(`uploadConcurrency must be a positive integer, got ${options.uploadConcurrency}`)
    }
    this.#deleter = new BlobDeleter(options.batchDelete ?? true, this.concurrency, (name) => this.#where(name))
    this.#listPageSize = options.listPageSize ?? LIST_PAGE_SIZE
    if (!Number.isInteger(this.#listPageSize) || this.#listPageSize < 1 || this.#listPageSize > LIST_PAGE_SIZE) {
      throw new InvalidArgumentError(`listPageSize must be an integer from 1 to ${LIST_PAGE_SIZE}, got ${options.listPageSize}`)
    }
    this.#syncCopyLimit = options.syncCopyLimit ?? MAX_SYNC_COPY
    if (!Number.isInteger(this.#syncCopyLimit) || this.#syncCopyLimit < 0 || this.#syncCopyLimit > MAX_SYNC_COPY) {
      throw new InvalidArgumentError(`syncCopyLimit must be an integer from 0 to ${MAX_SYNC_COPY}, got ${options.syncCopyLimit}`)
    }
    // A connection string is checked now, so that a wrong one fails at open time rather than at the first write.
    const connectionString = process.env['AZURE_STORAGE_CONNECTION_STRING']
    if (connectionString !== undefined && connectionString.trim() !== '') {
      this.#clients = Promise.resolve(clientsFromConnectionString(connectionString, this.account, this.container, this.locator))
    }
  }

  #connect(): Promise<Clients> {
    if (this.#clients === undefined) {
      const clients = tokenClients(this.account, this.container)
      this.#clients = clients
      clients.catch(() => {
        if (this.#clients === clients) this.#clients = undefined
      })
    }
    return this.#clients
  }

  async #containerClient(): Promise<ContainerClient> {
    return (await this.#connect()).container
  }

  #name(key: string): string {
    return this.#namePrefix + key
  }

  #where(name: string): string {
    return `azure://${this.account}/${this.container}/${name}`
  }

  // ---------------------------------------------------------------- primitives

  protected override async createStorage(options: IoOptions = {}): Promise<void> {
    const container = await this.#containerClient()
    try {
      await container.createIfNotExists({ ...(options.signal ? { abortSignal: options.signal } : {}) })
    } catch (err) {
      throw wrapAzureError(err, `create container ${this.#where('')}`, options.signal)
    }
  }

  protected override async putObject(key: string, body: Buffer | Readable, options: PutOptions): Promise<string> {
    throwIfAborted(options.signal)
    const container = await this.#containerClient()
    const writeId = randomBytes(12).toString('hex')
    const write: Write = {
      key,
      blob: container.getBlockBlobClient(this.#name(key)),
      writeId,
      conditions: conditionsOf(options),
      metadata: encodeMetadata(AZURE_METADATA, { executable: options.executable, writeToken: options.writeToken }),
      options,
    }
    return uploadBody(body, this.#sink(write), {
      what: this.#where(write.blob.name),
      partSize: this.#blockSize,
      maxParts: MAX_BLOCKS,
      maxPartSize: MAX_BLOCK_SIZE,
      maxSinglePut: MAX_SINGLE_PUT,
      concurrency: this.#uploadConcurrency,
      partDigest: 'md5',
      wholeDigest: 'md5',
      contentLength: options.contentLength,
      writePath: options.writePath,
      signal: options.signal,
    })
  }

  /** The conditional-write proof's paths: Put Blob, and staged blocks committed by Put Block List. */
  protected override async conditionalWriteProofTarget(): Promise<ConditionalWriteProofTarget> {
    const url = new URL((await this.#connect()).service.url)
    return {
      // Origin and path only: a SAS in the query is a credential.
      scope: `azure ${url.origin}${url.pathname} ${this.container}`,
      paths: [
        { writePath: 'single', name: 'Put Blob' },
        { writePath: 'multipart', name: 'Put Block List (staged blocks)' },
      ],
    }
  }

  /** One Put Blob with the body's MD5, checked by the service and stored as the blob's Content-MD5. */
  async #putSingle(write: Write, data: Buffer): Promise<string> {
    throwIfAborted(write.options.signal)
    const digest = md5(data)
    // `transactionalContentMD5` (the Content-MD5 request header) is honoured by upload() though missing from its
    // options type.
    const uploadOptions: BlockBlobUploadOptions & { transactionalContentMD5: Uint8Array } = {
      conditions: write.conditions,
      metadata: withDigest(write),
      blobHTTPHeaders: { blobContentMD5: digest },
      transactionalContentMD5: digest,
      ...(write.options.signal ? { abortSignal: write.options.signal } : {}),
    }
    try {
      const response = await write.blob.upload(data, data.length, uploadOptions)
      return response.etag ?? ''
    } catch (err) {
      if (isPreconditionFailed(err)) throw new PreconditionFailedError(write.key, { cause: err })
      throw wrapAzureError(err, `upload of ${this.#where(write.blob.name)}`, write.options.signal)
    }
  }

  /**
   * The requests of one write (see uploadBody): one Put Blob, or blocks staged with their MD5 and committed with
   * the conditions, the metadata and the MD5 of the whole body. On any failure nothing is committed, and the
   * staged blocks are removed when no committed blob carries them.
   */
  #sink(write: Write): UploadSink<string> {
    const signal = write.options.signal
    const what = `upload of ${this.#where(write.blob.name)}`
    const staged = new StagedBlocks()
    let committing = false
    return {
      putOnce: (data) => this.#putSingle(write, data),
      putPart: async (part, partSignal) => {
        const id = blockId(write.writeId, part.number - 1)
        staged.sent = true
        try {
          const response = await write.blob.stageBlock(id, part.data, part.data.length, {
            transactionalContentMD5: Buffer.from(part.digest as string, 'base64'),
            abortSignal: partSignal,
          })
          staged.answered(response.date)
        } catch (err) {
          throw wrapAzureError(err, what, signal)
        }
        return id
      },
      commit: async (ids, body) => {
        committing = true
        try {
          const response = await write.blob.commitBlockList([...ids], {
            conditions: write.conditions,
            metadata: withDigest(write),
            blobHTTPHeaders: { blobContentMD5: Buffer.from(body.digest as string, 'base64') },
            ...(signal ? { abortSignal: signal } : {}),
          })
          return response.etag ?? ''
        } catch (err) {
          if (isPreconditionFailed(err)) throw new PreconditionFailedError(write.key, { cause: err })
          if (isInvalidBlockList(err)) return await blocksDiscarded(write, err, staged.first, this.#where(write.blob.name))
          throw wrapAzureError(err, what, signal)
        }
      },
      abort: async (failure) => {
        if (!committing || !(failure instanceof PreconditionFailedError)) await removeStagedBlocks(write, staged)
      },
    }
  }

  /** Every file's digest is in its metadata (see the module's TSDoc). */
  protected override get keepsFileDigests(): boolean {
    return true
  }

  protected override async getObject(key: string, options: IoOptions = {}): Promise<ObjectRead> {
    const container = await this.#containerClient()
    const name = this.#name(key)
    let response
    try {
      response = await container.getBlobClient(name).download(0, undefined, {
        ...(options.signal ? { abortSignal: options.signal } : {}),
      })
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key, { cause: err })
      throw wrapAzureError(err, `download of ${this.#where(name)}`, options.signal)
    }
    // The SDK resumes a download that ends early, but gives up when the connection closes mid-body (it calls that
    // an abort): such a read is resumed here, with ranged downloads of the same ETag. The core checks the MD5.
    const etag = response.etag
    const what = `download of ${this.#where(name)}`
    const bodyOf = (source: NodeJS.ReadableStream | undefined): Readable => {
      if (source === undefined) throw new JobStoreError(`Azure Blob ${what} returned no body`)
      return source as Readable
    }
    const body = rangedRead(bodyOf(response.readableStreamBody), {
      size: response.contentLength ?? 0,
      what: `Azure Blob ${what}`,
      signal: options.signal,
      highWaterMark: 256 * 1024,
      openRange: async (offset) => {
        const rest = await container.getBlobClient(name).download(offset, undefined, {
          ...(etag !== undefined ? { conditions: { ifMatch: etag } } : {}),
          ...(options.signal ? { abortSignal: options.signal } : {}),
        })
        return bodyOf(rest.readableStreamBody)
      },
      versionGone: (err) => isPreconditionFailed(err) || isNotFound(err),
      mapError: (err, offset) => wrapAzureError(err, offset === undefined ? what : `${what} (resuming at byte ${offset})`, options.signal),
    })
    const digest = response.contentMD5
    const coreDigest = response.metadata?.[AZURE_METADATA.digest]
    return {
      key,
      size: response.contentLength ?? 0,
      version: response.etag ?? '',
      ...decodeMetadata(AZURE_METADATA, response.metadata),
      ...(isFileDigest(coreDigest) ? { digest: coreDigest } : {}),
      body,
      ...(digest !== undefined && digest.length === 16
        ? { checksum: { algorithm: 'md5', digest: Buffer.from(digest).toString('base64') } }
        : {}),
    }
  }

  protected override async headObject(key: string, options: IoOptions = {}): Promise<ObjectInfo | undefined> {
    const container = await this.#containerClient()
    const name = this.#name(key)
    try {
      const info = await container.getBlobClient(name).getProperties({
        ...(options.signal ? { abortSignal: options.signal } : {}),
      })
      return { key, size: info.contentLength ?? 0, version: info.etag ?? '', ...decodeMetadata(AZURE_METADATA, info.metadata) }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw wrapAzureError(err, `properties of ${this.#where(name)}`, options.signal)
    }
  }

  protected override async deleteObjects(keys: readonly string[], options: IoOptions = {}): Promise<void> {
    await this.#deleteNames(keys.map((key) => this.#name(key)), options.signal)
  }

  /** Deletes blobs by name (see BlobDeleter); missing blobs are fine. */
  async #deleteNames(names: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    if (names.length > 0) await this.#deleter.delete(await this.#containerClient(), names, signal)
  }

  protected override async *listObjects(prefix: string, options: IoOptions = {}): AsyncGenerator<ListedObject> {
    for await (const page of this.#listPages(this.#name(prefix), false, options.signal)) {
      for (const item of page) {
        const size = item.properties.contentLength
        yield size === undefined ? { key: item.name.slice(this.#namePrefix.length) } : { key: item.name.slice(this.#namePrefix.length), size }
      }
    }
  }

  /** Pages of List Blobs under a blob-name prefix; nothing when the container does not exist. */
  async *#listPages(
    namePrefix: string,
    uncommitted: boolean,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<{ name: string; properties: { contentLength?: number; lastModified: Date } }[]> {
    const container = await this.#containerClient()
    const pages = container
      .listBlobsFlat({
        prefix: namePrefix,
        ...(uncommitted ? { includeUncommitedBlobs: true } : {}),
        ...(signal ? { abortSignal: signal } : {}),
      })
      .byPage({ maxPageSize: this.#listPageSize })
    const iterator = pages[Symbol.asyncIterator]()
    try {
      for (;;) {
        let next
        try {
          next = await iterator.next()
        } catch (err) {
          if (isContainerNotFound(err)) return
          throw wrapAzureError(err, `listing of ${this.#where(namePrefix)}`, signal)
        }
        if (next.done) return
        yield next.value.segment.blobItems
      }
    } finally {
      await iterator.return?.()
    }
  }

  /**
   * Pages of every blob this store owns (see ownedRoots), uncommitted-only ones included: a key root is listed
   * too, as it may exist only as uncommitted blocks.
   */
  async *#ownedPages(signal: AbortSignal | undefined): AsyncGenerator<{ name: string; properties: { contentLength?: number; lastModified: Date } }[]> {
    const roots = ownedRoots(this.#namePrefix)
    // Under a prefix, one listing of it, filtered (a nested store's blobs stay); at the root, one per entry.
    for (const listed of this.prefix === '' ? roots : [this.#namePrefix]) {
      for await (const page of this.#listPages(listed, true, signal)) yield page.filter((item) => isOwned(roots, item.name))
    }
  }

  protected override async destroyStorage(options: IoOptions = {}): Promise<void> {
    // Uncommitted-only blobs too: deleting the name removes its blocks. The container stays (other stores may use
    // it under other prefixes).
    for await (const page of this.#ownedPages(options.signal)) {
      await this.#deleteNames(
        page.map((item) => item.name),
        options.signal,
      )
    }
  }

  protected override async getObjectUrl(key: string, expiresInSeconds: number): Promise<string> {
    const clients = await this.#connect()
    const blob = clients.container.getBlobClient(this.#name(key))
    return this.#signer.sign(clients, blob, expiresInSeconds, this.#where(blob.name))
  }

  /**
   * Removes blob names that exist only as uncommitted blocks (writes killed or failed before their commit) whose
   * first block is older than `olderThanMs` (see deleteIfUncommittedOnly: a blob committed meanwhile
   * stays). Uncommitted blocks beside a committed blob cannot be removed without rewriting the blob; Azure drops
   * them at the blob's next write, or after 7 days.
   */
  protected override async removeLeftovers(olderThanMs: number, options: IoOptions = {}): Promise<number> {
    const container = await this.#containerClient()
    const cutoff = Date.now() - olderThanMs
    let removed = 0
    for await (const page of this.#ownedPages(options.signal)) {
      // An uncommitted-only name is listed with length 0; a HEAD tells it from a committed empty blob.
      const candidates = page.filter((item) => item.properties.contentLength === 0 && item.properties.lastModified.getTime() <= cutoff)
      await forEachConcurrent(candidates, this.concurrency, async (item) => {
        try {
          if (await deleteIfUncommittedOnly(container.getBlobClient(item.name))) removed++
        } catch (err) {
          throw wrapAzureError(err, `removal of the abandoned upload ${this.#where(item.name)}`, options.signal)
        }
      })
    }
    return removed
  }

  // ---------------------------------------------------------------- azure: URLs

  /**
   * Import and export of `azure://account/container/blob` and `https://<account>.blob.core.windows.net/container/blob`
   * URLs (the latter claimed from the plain https handler when they carry no query), with the credentials of the
   * environment as for locators, through the core's bucket URL handler (a store at the container's root does the
   * reads and writes).
   */
  static readonly urlHandler: BucketUrlHandler<AzureJobStore> = AzureJobStore.bucketUrlHandler<AzureJobStore>({
    schemes: ['azure'],
    claims: isAzureBlobHttpsUrl,
    locate(url) {
      const account = url.protocol === 'azure:' ? url.hostname : url.hostname.slice(0, url.hostname.indexOf('.'))
      const match = /^\/([^/]*)\/(.*)$/s.exec(url.pathname)
      if (match === null) {
        throw new InvalidImportExportUrlError(url.href, 'expected azure://account/container/blob or https://account.blob.core.windows.net/container/blob')
      }
      return { root: `azure://${account}/${match[1] ?? ''}`, rawKey: match[2] ?? '' }
    },
    open: (root) => new AzureJobStore(root),
  })

  /** Same service: the same account, at the same endpoint, with the same kind of credentials (all from the environment). */
  async #sameService(other: AzureJobStore): Promise<boolean> {
    if (other.account !== this.account) return false
    const [mine, theirs] = await Promise.all([this.#connect(), other.#connect()])
    return mine.service.url === theirs.service.url && mine.tokenAuth === theirs.tokenAuth
  }

  /** Server-side import of a blob URL of the same service (see {@link #copyBlob}). */
  protected override async copyFromUrl(url: URL, key: string, options: PutOptions): Promise<boolean> {
    const source = AzureJobStore.urlHandler.locate(url)
    if (source === undefined || !(await this.#sameService(source.store))) return false
    // A source without the core's digest (not a store's file) is streamed instead, so that the core hashes it.
    return this.#copyBlob(
      source,
      { store: this, key },
      options,
      (err) => new NoSuchFileError(url.href, { cause: err, message: `no object at ${url.href}` }),
      true,
    )
  }

  /** Server-side export to a blob URL of the same service (see {@link #copyBlob}). */
  protected override async copyToUrl(key: string, url: URL, options: IoOptions): Promise<boolean> {
    const target = AzureJobStore.urlHandler.locate(url)
    if (target === undefined || !(await this.#sameService(target.store))) return false
    return this.#copyBlob({ store: this, key }, target, options, (err) => new ObjectNotFoundError(key, { cause: err }))
  }

  /**
   * Copies a blob within the service, keeping the executable flag, under the write's conditions. Up to
   * `syncCopyLimit`: one Copy Blob From URL, synchronous and atomic, pinned to the source's ETag. Larger: Put Block
   * From URL for each range, then Put Block List, committed only if the source still has the ETag it had at the
   * start (nothing is visible before the commit). The service reads the source through a short-lived read SAS (or
   * the caller's bearer token with Entra ID). False when the service cannot copy (Azurite answers 501 to Put Block
   * From URL; a SAS connection string cannot sign a source URL): the core then streams.
   */
  async #copyBlob(
    source: { store: AzureJobStore; key: string },
    target: { store: AzureJobStore; key: string },
    options: PutOptions,
    missing: (cause: unknown) => Error,
    requireDigest = false,
  ): Promise<boolean> {
    const signal = options.signal
    const abort = signal ? { abortSignal: signal } : {}
    const sourceBlob = (await source.store.#containerClient()).getBlobClient(source.store.#name(source.key))
    const targetBlob = (await target.store.#containerClient()).getBlockBlobClient(target.store.#name(target.key))
    const from = source.store.#where(sourceBlob.name)
    const to = target.store.#where(targetBlob.name)
    type Source = { size: number; etag: string | undefined; access: { url: string; authorization?: HttpAuthorization }; write: Write }
    let staged = new StagedBlocks()
    const sink: CopySink<Source, string, true> = {
      source: async () => {
        let props
        try {
          props = await sourceBlob.getProperties(abort)
        } catch (err) {
          if (isNotFound(err)) throw missing(err)
          throw wrapAzureError(err, `properties of ${from}`, signal)
        }
        const size = props.contentLength ?? 0
        if (size > this.#syncCopyLimit && this.#blockCopyUnsupported) return undefined
        // A source no store wrote has no digest of the core's: its Content-MD5 (the service's) is adopted; without
        // one either, an import is streamed so that the core hashes it.
        const sourceMd5 = props.contentMD5 !== undefined && props.contentMD5.length === 16 ? `md5:${Buffer.from(props.contentMD5).toString('base64')}` : undefined
        const stored = props.metadata?.[AZURE_METADATA.digest]
        const digest = isFileDigest(stored) ? stored : sourceMd5
        if (requireDigest && !isFileDigest(digest)) return undefined
        const access = await source.store.#copySourceAccess(source.key, sourceBlob)
        if (access === undefined) return undefined
        staged = new StagedBlocks()
        const write: Write = {
          key: target.key,
          blob: targetBlob,
          writeId: randomBytes(12).toString('hex'),
          conditions: conditionsOf(options),
          // The copy carries the source's digest.
          metadata: encodeMetadata(AZURE_METADATA, {
            executable: options.executable === true || decodeMetadata(AZURE_METADATA, props.metadata).executable,
            writeToken: options.writeToken,
            digest: isFileDigest(digest) ? digest : undefined,
          }),
          options,
        }
        return { size, etag: props.etag, access, write }
      },
      copyOnce: async ({ etag, access, write }) => {
        try {
          await targetBlob.syncCopyFromURL(access.url, {
            metadata: write.metadata,
            conditions: write.conditions,
            ...(etag !== undefined ? { sourceConditions: { ifMatch: etag } } : {}),
            ...(access.authorization !== undefined ? { sourceAuthorization: access.authorization } : {}),
            ...abort,
          })
          log('copied %s to %s server-side (Copy Blob From URL)', from, to)
          return true
        } catch (err) {
          // The source was deleted since the HEAD (the next round reports it gone), or replaced: its ETag pin fails
          // with 412 as the target's conditions do (Azure says SourceConditionNotMet, Azurite ConditionNotMet), so
          // the source's ETag now tells which.
          if (isNotFound(err) && !isContainerNotFound(err)) throw new CopySourceChangedError({ cause: err })
          if (isPreconditionFailed(err)) {
            const now = await sourceBlob.getProperties(abort).then(
              (info) => info.etag,
              () => undefined,
            )
            if (now !== etag) throw new CopySourceChangedError({ cause: err })
            throw new PreconditionFailedError(target.key, { cause: err })
          }
          throw wrapAzureError(err, `copy of ${from} to ${to}`, signal)
        }
      },
      copyPart: async ({ access, write }, range) => {
        const id = blockId(write.writeId, range.number - 1)
        staged.sent = true
        try {
          const response = await write.blob.stageBlockFromURL(id, access.url, range.offset, range.count, {
            ...(access.authorization !== undefined ? { sourceAuthorization: access.authorization } : {}),
            ...abort,
          })
          staged.answered(response.date)
        } catch (err) {
          if (httpStatus(err) === 501) {
            log('Put Block From URL is not implemented by the service (%s): streaming instead', errorCode(err))
            this.#blockCopyUnsupported = true
            throw new CopyDeclined()
          }
          throw wrapAzureError(err, `copy of ${from} to ${to}`, signal)
        }
        return id
      },
      // Committed only if the source still has the ETag it had at the start.
      commit: async ({ etag, write }, ids) => {
        try {
          const now = await sourceBlob.getProperties(abort).catch((err: unknown) => {
            if (isNotFound(err)) return undefined
            throw err
          })
          if (now === undefined || now.etag !== etag) throw new CopySourceChangedError()
          await write.blob.commitBlockList([...ids], {
            conditions: write.conditions,
            metadata: write.metadata,
            ...(now.contentMD5 !== undefined ? { blobHTTPHeaders: { blobContentMD5: now.contentMD5 } } : {}),
            ...abort,
          })
        } catch (err) {
          if (isPreconditionFailed(err)) throw new PreconditionFailedError(write.key, { cause: err })
          throw err instanceof CopySourceChangedError ? err : wrapAzureError(err, `copy of ${from} to ${to}`, signal)
        }
        log('copied %s to %s server-side (%d blocks from URL)', from, to, ids.length)
        return true
      },
      abort: async ({ write }, failure) => {
        if (!(failure instanceof PreconditionFailedError)) await removeStagedBlocks(write, staged)
      },
    }
    try {
      return (
        (await copyObject(sink, {
          what: from,
          maxSingleCopy: this.#syncCopyLimit,
          partSize: COPY_BLOCK_SIZE,
          maxParts: MAX_BLOCKS,
          maxPartSize: MAX_BLOCK_SIZE,
          concurrency: this.#uploadConcurrency,
          signal,
        })) ?? false
      )
    } catch (err) {
      if (err instanceof CopyDeclined) return false
      throw err
    }
  }

  /** How the service may read a source blob of this store: a read SAS, or the blob's URL and a bearer token. */
  async #copySourceAccess(key: string, blob: BlobClient): Promise<{ url: string; authorization?: HttpAuthorization } | undefined> {
    const clients = await this.#connect()
    const credential = clients.service.credential
    if (clients.tokenAuth && 'getToken' in credential) {
      const token = await credential.getToken('https://storage.azure.com/.default')
      if (token === null) return undefined
      return { url: blob.url, authorization: { scheme: 'Bearer', value: token.token } }
    }
    try {
      return { url: await this.getObjectUrl(key, COPY_SAS_SECONDS) }
    } catch (err) {
      if (!(err instanceof UnsupportedOperationError)) throw err
      log('no server-side copy from %s: %s', this.#where(blob.name), err.message)
      return undefined
    }
  }

  /**
   * Nothing: a worker on another host needs the same credentials, which are secrets (the connection string) or
   * its own identity (DefaultAzureCredential). Set AZURE_STORAGE_CONNECTION_STRING in the worker's environment
   * yourself; the locator names the account and container.
   */
  override getEnv(): Record<string, string> {
    return {}
  }
}
