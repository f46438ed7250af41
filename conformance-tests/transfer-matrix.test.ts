/**
 * The import/export matrix over the four built-in backends, on the local servers the vitest global setup starts
 * (MinIO, Azurite, fake-gcs-server) and a temporary folder: every ordered pair, sizes around each destination's
 * part size, server-side copies proven by counting the bytes through this process.
 */
import { mkdtempSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { AzureJobStore, DEFAULT_BLOCK_SIZE } from '../backends/azure/index.js'
import { DEFAULT_CHUNK_SIZE } from '../backends/gcs/index.js'
import { S3JobStore } from '../backends/s3/index.js'
import { AbstractJobStore } from '../src/abstract-job-store.js'
import { randomId } from '../src/ids.js'
import { openJobStore } from '../src/open.js'
import { httpUrlHandler, resolveUrlHandler } from '../src/url-handlers.js'
import { caught, collect, randomPayload, sha256 } from './harness.js'
import { clientSocketBytes, defineTransferMatrix } from './transfer-matrix.js'

const MIB = 1024 * 1024
const run = randomId().slice(0, 10)
const folder = mkdtempSync(join(tmpdir(), 'jobstore-matrix-'))
afterAll(() => rm(folder, { recursive: true, force: true }))

function azureAccount(): string {
  const account = /(?:^|;)\s*AccountName=([^;]+)/i.exec(process.env['AZURE_STORAGE_CONNECTION_STRING'] ?? '')?.[1]
  if (account === undefined) throw new Error('AZURE_STORAGE_CONNECTION_STRING is not set: the vitest global setup should have started Azurite')
  return account
}

defineTransferMatrix([
  {
    name: 'file',
    newLocator: () => `file:${join(folder, 'store')}`,
    urlBase: () => pathToFileURL(folder).href,
    // The file backend has no parts; sizes around 1 MiB still cover its copy loop's buffers.
    partSize: MIB,
    capabilities: {
      serverSideCopy: {
        unsupported: 'a local file system: import and export copy the bytes through this process (importFile can link them instead, with hardlink or symlink)',
      },
      largeServerSideCopy: { unsupported: 'no server-side copy at all (see serverSideCopy)' },
    },
  },
  {
    name: 's3',
    newLocator: () => `s3://jobstore-transfer/${run}-store`,
    urlBase: () => `s3://jobstore-transfer/${run}-urls`,
    partSize: 5 * MIB,
    // UploadPartCopy runs above 5 GiB: lowered to 5 MiB, a 12 MiB copy takes 3 parts.
    largeCopy: { size: 12 * MIB + 1, open: (locator) => new S3JobStore(locator, { multipartCopyThreshold: 5 * MIB }) },
  },
  {
    name: 'azure',
    newLocator: () => `azure://${azureAccount()}/jobstore-transfer/${run}-store`,
    urlBase: () => `azure://${azureAccount()}/jobstore-transfer/${run}-urls`,
    partSize: DEFAULT_BLOCK_SIZE,
    capabilities: {
      largeServerSideCopy: {
        unsupported:
          'Azurite 3.35 answers 501 (APINotImplemented) to Put Block From URL, which copies blobs above 256 MiB (the ' +
          'Copy Blob From URL limit) server-side on Azure; the backend then streams them through the client',
      },
    },
    largeCopy: { size: 3 * MIB, open: (locator) => new AzureJobStore(locator, { syncCopyLimit: MIB }) },
  },
  {
    name: 'gcs',
    newLocator: () => `gs://jobstore-transfer/${run}-store`,
    urlBase: () => `gs://jobstore-transfer/${run}-urls`,
    partSize: DEFAULT_CHUNK_SIZE,
    // No largeCopy: a GCS rewrite copies any size (the SDK follows its rewrite tokens).
  },
])

describe('azure: https://<account>.blob.core.windows.net/<container>/<blob> URLs', () => {
  it('are claimed from the plain https handler by host (not with a query), and copy server-side', async ({ onTestFinished }) => {
    const account = azureAccount()
    const container = 'jobstore-transfer'
    const store = await openJobStore(`azure://${account}/${container}/${run}-https`)
    await store.initialize()
    onTestFinished(() => store.destroy())
    const blob = `${run}-urls/${randomId()}/data file.bin`
    const asAzure = `azure://${account}/${container}/${encodeURI(blob)}`
    const asHttps = `https://${account}.blob.core.windows.net/${container}/${encodeURI(blob)}`
    const exportedAs = `https://${account}.blob.core.windows.net/${container}/${run}-urls/${randomId()}/out.bin`

    // The registry: by host, and only without a query (a SAS URL is a plain https download).
    expect((await resolveUrlHandler(asHttps)).handler).toBe(AzureJobStore.urlHandler)
    expect((await resolveUrlHandler(`${asHttps}?sv=2025-01-05&sig=abc`)).handler).toBe(httpUrlHandler)
    expect((await resolveUrlHandler('https://example.com/data.bin')).handler).toBe(httpUrlHandler)
    expect((await resolveUrlHandler(`https://${account}.blob.core.windows.net.example.com/c/b`)).handler).toBe(httpUrlHandler)
    expect((await caught(() => resolveUrlHandler(`https://${account}.blob.core.windows.net/${container}`))).code).toBe(
      'INVALID_IMPORT_EXPORT_URL',
    )

    const data = randomPayload(3 * MIB + 5)
    const { handler, url } = await resolveUrlHandler(asAzure)
    await handler.write?.(url, Readable.from([data]), { executable: true, size: data.length })
    const { url: out } = await resolveUrlHandler(exportedAs)
    onTestFinished(async () => {
      for (const target of [url, out]) {
        const found = AzureJobStore.urlHandler.locate(target)
        await (found?.store as unknown as { deleteObjects(keys: string[]): Promise<void> }).deleteObjects([found?.key ?? ''])
      }
    })
    expect(await AbstractJobStore.getSize(asHttps)).toBe(data.length)
    let before = clientSocketBytes()
    const id = (await store.importFile(asHttps)) as string
    expect(clientSocketBytes() - before).toBeLessThan(256 * 1024)
    expect(id).toMatch(/-data%20file\.bin$/)
    const read = await store.readFileStream(id)
    expect(read.executable).toBe(true)
    expect(sha256(await collect(read))).toBe(sha256(data))
    before = clientSocketBytes()
    await store.exportFile(id, exportedAs)
    expect(clientSocketBytes() - before).toBeLessThan(256 * 1024)
    const source = await AzureJobStore.urlHandler.openRead(out)
    expect(source.executable).toBe(true)
    expect(sha256(await collect(source.body))).toBe(sha256(data))
  })
})
