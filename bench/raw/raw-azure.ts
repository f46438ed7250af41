/** The Azure baseline: @azure/storage-blob against the same server (Azurite), from the connection string. */
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob'
import type { Readable } from 'node:stream'
import { toBuffer } from '../util.js'
import { STREAM_CONCURRENCY, STREAM_PART_SIZE, type RawStore } from './raw-store.js'

export class RawAzureStore implements RawStore {
  readonly #container: ContainerClient
  readonly #prefix: string

  constructor(container: string, prefix: string) {
    const connectionString = process.env['AZURE_STORAGE_CONNECTION_STRING']
    if (connectionString === undefined) throw new Error('AZURE_STORAGE_CONNECTION_STRING is not set')
    this.#container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container)
    this.#prefix = prefix
  }

  #name(key: string): string {
    return `${this.#prefix}/${key}`
  }

  async setup(): Promise<void> {
    await this.#container.createIfNotExists()
  }

  async putIfAbsent(key: string, data: Buffer): Promise<void> {
    await this.#container.getBlockBlobClient(this.#name(key)).upload(data, data.length, { conditions: { ifNoneMatch: '*' } })
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.#container.getBlockBlobClient(this.#name(key)).upload(data, data.length)
  }

  async get(key: string): Promise<Buffer> {
    const response = await this.#container.getBlobClient(this.#name(key)).download()
    return toBuffer(response.readableStreamBody as NodeJS.ReadableStream as AsyncIterable<unknown>)
  }

  async delete(key: string): Promise<void> {
    await this.#container.getBlobClient(this.#name(key)).deleteIfExists()
  }

  async *list(prefix: string): AsyncGenerator<string> {
    const strip = this.#prefix.length + 1
    for await (const blob of this.#container.listBlobsFlat({ prefix: this.#name(prefix) })) yield blob.name.slice(strip)
  }

  async putStream(key: string, body: Readable): Promise<void> {
    await this.#container.getBlockBlobClient(this.#name(key)).uploadStream(body, STREAM_PART_SIZE, STREAM_CONCURRENCY)
  }

  async getStream(key: string): Promise<Readable> {
    const response = await this.#container.getBlobClient(this.#name(key)).download()
    return response.readableStreamBody as Readable
  }

  async destroy(): Promise<void> {
    const names: string[] = []
    for await (const key of this.list('')) names.push(key)
    const limit = 32
    for (let i = 0; i < names.length; i += limit) {
      await Promise.all(names.slice(i, i + limit).map((name) => this.#container.getBlobClient(this.#name(name)).deleteIfExists()))
    }
  }
}
