/**
 * jobstore: durable job stores for workflow engines.
 *
 * ```ts
 * import { openJobStore, newJobDescription } from 'jobstore'
 * const store = await openJobStore('file:/var/lib/wf')
 * await store.initialize({ retryCount: 2 })
 * ```
 */
import './builtin-backends.js'

export {
  AbstractJobStore,
  refuseLocalDestination,
  type BodyCallback,
  type BucketUrlHandler,
  type CleanOptions,
  type CleanReport,
  type ReachabilityReport,
  type CopyOptions,
  type CopyProgress,
  type CopyReport,
  type ListedFile,
  type ConditionalOptions,
  type EncodingOptions,
  type JobCache,
  type JobStoreConfig,
  type JobStoreConfigInit,
  type JobStoreOptions,
  type JobsOptions,
  type NewFileOptions,
  type SignalOptions,
  type StatsCallback,
  type TransferProgressOptions,
} from './abstract-job-store.js'
export * from './errors.js'
export {
  DEFAULT_REQUIREMENTS,
  JOB_SCHEMA_VERSION,
  decodeJob,
  encodeJob,
  newJobDescription,
  type AcceleratorRequirement,
  type JobDescription,
  type JobDescriptionInit,
  type JobRequirements,
  type JsonObject,
  type JsonValue,
} from './job-description.js'
export { checkJobId, checkSharedFileName, isFileId, parseFileId, type ParsedFileId } from './ids.js'
export {
  locatorScheme,
  openJobStore,
  registerBackend,
  registerLazyBackend,
  type BackendModule,
  type JobStoreBackend,
} from './open.js'
export {
  objectReadOf,
  ObjectNotFoundError,
  PreconditionFailedError,
  WriteMayHaveLandedError,
  type ExpectedChecksum,
  type IoOptions,
  type ListedObject,
  type ObjectInfo,
  type ObjectRead,
  type PreconditionFailure,
  type PutOptions,
  type Storage,
  type StorageHooks,
  type StoragePrimitives,
} from './storage.js'
export type { BodyWritable, StoreReadable } from './streams.js'
export {
  DEFAULT_URL_TIMEOUTS,
  fileUrlHandler,
  httpUrlHandler,
  registerLazyUrlClaim,
  registerUrlHandler,
  resolveUrlHandler,
  type UrlHandler,
  type UrlIoOptions,
  type UrlSource,
  type UrlTimeoutOptions,
} from './url-handlers.js'
// For backend authors: bounded bulk work, abort checks, and the read checks the core applies (for a backend that
// overrides materializeObject, as the file backend does).
export { chunk, forEachConcurrent, mapConcurrent, sleep, throwIfAborted } from './concurrency.js'
export { createVerifyStream, verifyBytes, FILE_DIGEST_ALGORITHM } from './streams.js'
// For backend authors: uploads in parts (multipart, block, resumable), orchestrated once.
export { partSizeOf, uploadBody, type UploadedBody, type UploadPart, type UploadPlan, type UploadSink } from './uploads.js'
// For backend authors: same-service (server-side) copies, orchestrated once.
export { copyObject, CopySourceChangedError, type CopyPlan, type CopyRange, type CopySink } from './copies.js'
// For backend authors: ranged reads resumed where a body broke off, listing pagination, the store's top-level
// entries and bounded deletes of a listing, digest sidecars, the core's object metadata (see docs/writing-a-backend.md).
export { guardBody, rangedRead, type RangedReadOptions } from './ranged-reads.js'
export { pages, paginate, type Page, type PagesOptions } from './pagination.js'
export { backendEntries, deleteListed, isOwned, ownedNames, ownedRoots, storeEntries } from './layout.js'
export {
  DIGEST_METADATA,
  DIGESTS_PREFIX,
  digestFromMetadata,
  removeOrphanSidecars,
  sidecarKey,
  type OrphanSidecarOptions,
} from './digest-sidecars.js'
export { decodeMetadata, encodeMetadata, type CoreMetadata, type MetadataFormat } from './object-metadata.js'
export { digestBase64, newHasher, type Hasher } from './streams.js'
export type { ConditionalWritePath, ConditionalWriteProofTarget } from './conditional-write-proof.js'
export type { WritePath } from './storage.js'
export {
  OPERATION_CHANNEL,
  OPERATIONS,
  operationChannel,
  type OperationContext,
  type OperationKind,
  type OperationName,
} from './tracing.js'
export { redactLocator } from './redact.js'
