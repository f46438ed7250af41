/** `jobstore/file`: the file-system backend. */
import type { JobStoreBackend } from '../../src/open.js'
import { FileJobStore, type FileJobStoreOptions } from './file-job-store.js'

export { FileJobStore, parseFileLocator, type FileJobStoreOptions } from './file-job-store.js'

/** The backend registration: locators `file:/abs`, `file:./rel`, `file:///abs` and bare paths. */
export const backend: JobStoreBackend = {
  schemes: ['file'],
  create: (locator, options) => new FileJobStore(locator, options as FileJobStoreOptions),
}
