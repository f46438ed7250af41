/** `jobstore/azure`: the Azure Blob Storage backend (`azure://account/container[/prefix]`). */
import type { JobStoreBackend } from '../../src/open.js'
import { AzureJobStore, type AzureJobStoreOptions } from './azure-job-store.js'

export {
  AzureJobStore,
  DEFAULT_BLOCK_SIZE,
  isAzureBlobHttpsUrl,
  parseAzureLocator,
  type AzureJobStoreOptions,
  type AzureLocation,
} from './azure-job-store.js'

/**
 * The backend registration: locators `azure://account/container[/prefix]`; import and export of
 * `azure://account/container/blob` and `https://<account>.blob.core.windows.net/container/blob` URLs.
 */
export const backend: JobStoreBackend = {
  schemes: ['azure'],
  create: (locator, options) => new AzureJobStore(locator, options as AzureJobStoreOptions),
  urlHandler: AzureJobStore.urlHandler,
}
