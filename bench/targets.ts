/**
 * The backends a benchmark cell runs on: how to open the job store (only through `openJobStore`, with the
 * environment `startTestServers()` gives) and the matching raw baseline.
 */
import { join } from 'node:path'
import type { JobStoreOptions } from '../src/index.js'
import type { RawStore } from './raw/raw-store.js'

export const BACKEND_NAMES = ['file', 'file-nosync', 'file-fuse-0.5ms', 'file-fuse-2ms', 's3', 'azure', 'gcs'] as const
export type BackendName = (typeof BACKEND_NAMES)[number]

export function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name)
}

/** The bucket (S3, GCS) or container (Azure) the benchmarks use; every store and baseline has its own prefix in it. */
export const BENCH_BUCKET = 'jobstore-bench'

/**
 * The file backend on delayfs, the FUSE stand-in for a shared file system (test-servers/delayfs/), with this delay
 * per request in milliseconds. bench/run.ts mounts it before the cells run.
 */
export const FUSE_DELAY_MS: Partial<Record<BackendName, number>> = { 'file-fuse-0.5ms': 0.5, 'file-fuse-2ms': 2 }

export const isFuseBackend = (name: string): boolean => name in FUSE_DELAY_MS

/** The folders of a FUSE backend's mount: the files are in `backing`, seen with the delay at `mountPoint`. */
export function fusePaths(name: BackendName, workDir: string): { backing: string; mountPoint: string } {
  return { backing: join(workDir, name, 'back'), mountPoint: join(workDir, name, 'mnt') }
}

export interface Target {
  readonly name: BackendName
  /** Locator of a new store named `id`. */
  locator(id: string): string
  /** Options for `openJobStore` (file-nosync: `durable: false`). */
  options(concurrency: number): JobStoreOptions
  /** The raw baseline for a run named `id`. */
  raw(id: string): Promise<RawStore>
  /**
   * The same store and baseline as `locator(id)` and `raw(id)`, seen without the delay (a FUSE backend's backing
   * folder): where the untimed set-up of workloads 4 and status writes. Absent: the set-up uses `locator` / `raw`.
   */
  setupLocator?(id: string): string
  rawSetup?(id: string): Promise<RawStore>
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
    case 'file-fuse-0.5ms':
    case 'file-fuse-2ms': {
      const { backing, mountPoint } = fusePaths(name, workDir)
      const rawFile = async (root: string) => new (await import('./raw/raw-file.js')).RawFileStore(root, true)
      return {
        name,
        locator: (id) => `file:${join(mountPoint, id)}`,
        options: (concurrency) => ({ concurrency }),
        raw: (id) => rawFile(join(mountPoint, `raw-${id}`)),
        setupLocator: (id) => `file:${join(backing, id)}`,
        rawSetup: (id) => rawFile(join(backing, `raw-${id}`)),
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
