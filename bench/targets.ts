/**
 * The backends a benchmark cell runs on: how to open the job store (only through `openJobStore`, with the
 * environment `startTestServers()` gives) and the matching raw baseline.
 */
import { join } from 'node:path'
import type { JobStoreOptions } from '../src/index.js'
import type { RawStore } from './raw/raw-store.js'

export const BACKEND_NAMES = ['file', 'file-nosync', 's3', 'azure', 'gcs'] as const
export type BackendName = (typeof BACKEND_NAMES)[number]

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name)
}

/** The bucket (S3, GCS) or container (Azure) the benchmarks use; every store and baseline has its own prefix in it. */
export const BENCH_BUCKET = 'jobstore-bench'

export interface Target {
  readonly name: BackendName
  /** Locator of a new store named `id`. */
  locator(id: string): string
  /** Options for `openJobStore` (file-nosync: `durable: false`). */
  options(concurrency: number): JobStoreOptions
  /** The raw baseline for a run named `id`. */
  raw(id: string): Promise<RawStore>
}

/** The target for `name`; `workDir` holds the file stores (on the same disk as Toil's). */
export function target(name: BackendName, workDir: string): Target {
  switch (name) {
    case 'file':
    case 'file-nosync': {
      const durable = name === 'file'
      return {
        name,
        locator: (id) => `file:${join(workDir, id)}`,
        // `durable` is an option of the file backend (FileJobStoreOptions); openJobStore passes options through.
        options: (concurrency) => ({ concurrency, durable }) as JobStoreOptions,
        raw: async (id) => new (await import('./raw/raw-file.js')).RawFileStore(join(workDir, `raw-${id}`), durable),
      }
    }
    case 's3':
      return {
        name,
        locator: (id) => `s3://${BENCH_BUCKET}/${id}`,
        options: (concurrency) => ({ concurrency }),
        raw: async (id) => new (await import('./raw/raw-s3.js')).RawS3Store(BENCH_BUCKET, `raw-${id}`),
      }
    case 'azure':
      return {
        name,
        locator: (id) => `azure://devstoreaccount1/${BENCH_BUCKET}/${id}`,
        options: (concurrency) => ({ concurrency }),
        raw: async (id) => new (await import('./raw/raw-azure.js')).RawAzureStore(BENCH_BUCKET, `raw-${id}`),
      }
    case 'gcs':
      return {
        name,
        locator: (id) => `gs://${BENCH_BUCKET}/${id}`,
        options: (concurrency) => ({ concurrency }),
        raw: async (id) => new (await import('./raw/raw-gcs.js')).RawGcsStore(BENCH_BUCKET, `raw-${id}`),
      }
  }
}
