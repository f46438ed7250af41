/** `jobstore/memory`: a job store in this process's memory (`memory:<name>`), for unit tests. No dependency. */
import type { JobStoreBackend } from '../../src/open.js'
import { MemoryJobStore } from './memory-job-store.js'

export { MemoryJobStore, parseMemoryLocator } from './memory-job-store.js'

/** The backend registration: locators `memory:<name>`; one name in one process is one store. */
export const backend: JobStoreBackend = {
  schemes: ['memory'],
  create: (locator, options) => new MemoryJobStore(locator, options),
}
