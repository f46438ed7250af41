/** `jobstore/s3`: the S3 backend (AWS S3 and S3-compatible services such as MinIO). */
import type { JobStoreBackend } from '../../src/open.js'
import { S3JobStore, type S3JobStoreOptions } from './s3-job-store.js'

export {
  S3JobStore,
  checkBucketName,
  parseS3Locator,
  type PendingUpload,
  type S3JobStoreOptions,
  type S3Locator,
} from './s3-job-store.js'

/** The backend registration: locators `s3://bucket[/prefix]` and `aws:region:bucket`; `s3://bucket/key` URLs. */
export const backend: JobStoreBackend = {
  schemes: ['s3', 'aws'],
  create: (locator, options) => new S3JobStore(locator, options as S3JobStoreOptions),
  urlHandler: S3JobStore.urlHandler,
}
