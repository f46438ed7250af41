/**
 * The four backends as the reliability tests use them: fresh locators on the local servers of the vitest global
 * setup, the options that keep upload parts small (so that multipart, block and resumable uploads happen at
 * modest sizes), a way to count leftovers of interrupted writes, and a way to open a store whose requests go
 * through a fault proxy.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AbortMultipartUploadCommand, ListPartsCommand, S3Client } from '@aws-sdk/client-s3'
import { BlobServiceClient, type RestError } from '@azure/storage-blob'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { randomId } from '../src/ids.js'
import { AzureJobStore, parseAzureLocator } from '../backends/azure/index.js'
import { GcsJobStore } from '../backends/gcs/index.js'
import { S3JobStore } from '../backends/s3/index.js'

export type BackendName = 'file' | 's3' | 'azure' | 'gcs'
export const BACKENDS: readonly BackendName[] = ['file', 's3', 'azure', 'gcs']
export const NETWORK_BACKENDS: readonly Exclude<BackendName, 'file'>[] = ['s3', 'azure', 'gcs']

const MIB = 1024 * 1024
const BUCKET = 'jobstore-reliability'

export interface Target {
  readonly name: BackendName
  /** A fresh locator (random prefix, or a new folder). */
  newLocator(): string
  /** Backend options (passed through `openJobStore`) for small parts. */
  readonly options: Record<string, unknown>
  /** The upload part size with those options: bodies above it are multipart/block/resumable uploads. */
  readonly partSize: number
  /** Leftovers of interrupted writes under the locator; undefined when the service cannot list them. */
  countLeftovers?(locator: string): Promise<number>
  /** The leftovers, one line each, and what aborting each one answers (to tell why `clean()` left them). */
  describeLeftovers?(locator: string): Promise<string[]>
  /** Why leftovers cannot be counted, when they cannot. */
  readonly uncountableLeftovers?: string
}

let fileBase: string | undefined

function need(name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') throw new Error(`${name} is not set: the vitest global setup should have started the test servers`)
  return value
}

export const TARGETS: Readonly<Record<BackendName, Target>> = {
  file: {
    name: 'file',
    newLocator: () => {
      fileBase ??= mkdtempSync(join(tmpdir(), 'jobstore-reliability-'))
      return `file:${join(fileBase, randomId())}`
    },
    options: {},
    partSize: MIB,
    countLeftovers: async (locator) => {
      try {
        return (await readdir(join(locator.slice('file:'.length), 'tmp'))).length
      } catch {
        return 0
      }
    },
  },
  s3: {
    name: 's3',
    newLocator: () => `s3://${BUCKET}/${need('AWS_ENDPOINT_URL') && randomId()}`,
    options: {},
    partSize: 5 * MIB, // S3's least part size
    countLeftovers: async (locator) => {
      // MinIO gap: a writer killed while MinIO was creating its multipart upload can leave an entry that
      // ListMultipartUploads keeps listing for a while although the upload does not exist (ListParts and
      // AbortMultipartUpload answer NoSuchUpload). It holds no parts and no API call can remove it: not a leftover.
      const client = new S3Client({ forcePathStyle: true })
      const bucket = locator.slice('s3://'.length).split('/')[0]
      let count = 0
      for await (const upload of new S3JobStore(locator).pendingUploads()) {
        const exists = await client.send(new ListPartsCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId })).then(
          () => true,
          (err: Error) => {
            if (err.name === 'NoSuchUpload') return false
            throw err
          },
        )
        if (exists) count++
        else console.error(`[s3] ${upload.key}: listed by ListMultipartUploads, but NoSuchUpload (a MinIO phantom, not counted)`)
      }
      return count
    },
    describeLeftovers: async (locator) => {
      const store = new S3JobStore(locator)
      const client = new S3Client({ forcePathStyle: true })
      const bucket = locator.slice('s3://'.length).split('/')[0]
      const lines: string[] = []
      for await (const upload of store.pendingUploads()) {
        const parts = await client
          .send(new ListPartsCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }))
          .then((out) => `${out.Parts?.length ?? 0} parts`, (err: Error) => `ListParts: ${err.name}`)
        const abort = await client
          .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId }))
          .then(() => 'aborted', (err: Error) => `abort: ${err.name}`)
        lines.push(`${upload.key} ${upload.uploadId} initiated ${upload.initiated?.toISOString()} (${parts}; ${abort})`)
      }
      return lines
    },
  },
  azure: {
    name: 'azure',
    newLocator: () => {
      const account = BlobServiceClient.fromConnectionString(need('AZURE_STORAGE_CONNECTION_STRING')).accountName
      return `azure://${account}/${BUCKET}/r-${randomUUID()}`
    },
    options: { blockSize: MIB },
    partSize: MIB,
    countLeftovers: async (locator) => {
      // Blob names that exist only as uncommitted blocks: writes killed or failed before their commit.
      const { container, prefix } = parseAzureLocator(locator)
      const client = BlobServiceClient.fromConnectionString(need('AZURE_STORAGE_CONNECTION_STRING')).getContainerClient(container)
      const committed = new Set<string>()
      try {
        for await (const item of client.listBlobsFlat({ prefix: `${prefix}/` })) committed.add(item.name)
        let count = 0
        for await (const item of client.listBlobsFlat({ prefix: `${prefix}/`, includeUncommitedBlobs: true })) {
          if (!committed.has(item.name)) count++
        }
        return count
      } catch (err) {
        if ((err as RestError).statusCode === 404) return 0
        throw err
      }
    },
  },
  gcs: {
    name: 'gcs',
    newLocator: () => `gs://${BUCKET}/${need('STORAGE_EMULATOR_HOST') && randomId()}`,
    options: { chunkSize: MIB },
    partSize: MIB,
    uncountableLeftovers:
      'GCS has no API that lists resumable upload sessions; an unfinished session is never an object and expires after a week',
  },
}

/** The real local server behind a network backend's SDK (what a fault proxy forwards to), from the environment. */
export function upstreamOf(name: Exclude<BackendName, 'file'>): string {
  switch (name) {
    case 's3':
      return process.env['AWS_ENDPOINT_URL_S3'] || need('AWS_ENDPOINT_URL')
    case 'azure':
      return new URL(/BlobEndpoint=([^;]*)/.exec(need('AZURE_STORAGE_CONNECTION_STRING'))?.[1] ?? '').origin
    case 'gcs':
      return need('STORAGE_EMULATOR_HOST')
  }
}

/**
 * Opens (without I/O) a store at `locator` whose requests all go to `proxyUrl` instead of the server. For GCS the
 * proxy must be in front of a fake-gcs-server started with `gcsExternalUrl` = the proxy's URL, so that resumable
 * upload sessions go through it too.
 */
export function openThroughProxy(name: Exclude<BackendName, 'file'>, locator: string, proxyUrl: string): AbstractJobStore {
  switch (name) {
    case 's3':
      return new S3JobStore(locator, { clientConfig: { endpoint: proxyUrl } })
    case 'gcs':
      return new GcsJobStore(locator, { apiEndpoint: proxyUrl, chunkSize: MIB })
    case 'azure': {
      // The backend reads the connection string from the environment when constructed: give it one whose blob
      // endpoint is the proxy, for this construction only.
      const original = need('AZURE_STORAGE_CONNECTION_STRING')
      const account = BlobServiceClient.fromConnectionString(original).accountName
      const proxied = original.replace(/BlobEndpoint=[^;]*/, `BlobEndpoint=${proxyUrl}/${account}`)
      process.env['AZURE_STORAGE_CONNECTION_STRING'] = proxied
      try {
        return new AzureJobStore(locator, { blockSize: MIB })
      } finally {
        process.env['AZURE_STORAGE_CONNECTION_STRING'] = original
      }
    }
  }
}

/** The proxy's view of which answers are object reads (whose bodies a `corrupt-response` fault may flip). */
export function isObjectRead(name: Exclude<BackendName, 'file'>): (req: { method?: string | undefined; url?: string | undefined }, answer: { statusCode?: number | undefined }) => boolean {
  return (req, answer) => {
    if (req.method !== 'GET' || (answer.statusCode !== 200 && answer.statusCode !== 206)) return false
    const url = req.url ?? ''
    switch (name) {
      case 's3':
        return !url.includes('?') || /[?&]x-id=GetObject/.test(url)
      case 'gcs':
        return url.includes('alt=media')
      case 'azure':
        return !url.includes('comp=') && !url.includes('restype=')
    }
  }
}
