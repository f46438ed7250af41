/** `jobstore/gcs`: the Google Cloud Storage backend (needs `@google-cloud/storage`). */
import type { JobStoreBackend } from '../../src/open.js'
import { GcsJobStore, type GcsJobStoreOptions } from './gcs-job-store.js'

export {
  DEFAULT_CHUNK_SIZE,
  GcsJobStore,
  isValidBucketName,
  parseGcsLocator,
  type GcsJobStoreOptions,
  type GcsLocation,
} from './gcs-job-store.js'
export { GcsServiceError } from './errors.js'

/**
 * The backend registration: locators `gs://bucket[/prefix]` and Toil's `google:project:name`; import and export
 * of `gs://bucket/object` URLs.
 */
export const backend: JobStoreBackend = {
  schemes: ['gs', 'google'],
  create: (locator, options) => new GcsJobStore(locator, options as GcsJobStoreOptions),
  urlHandler: GcsJobStore.urlHandler,
}
