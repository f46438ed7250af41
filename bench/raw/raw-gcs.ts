/** The GCS baseline: @google-cloud/storage against the same server (fake-gcs-server), set up as the GCS backend does. */
import { Storage, type Bucket } from '@google-cloud/storage'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { STREAM_PART_SIZE, type RawStore } from './raw-store.js'

export class RawGcsStore implements RawStore {
  readonly #storage: Storage
  readonly #bucket: Bucket
  readonly #bucketName: string
  readonly #prefix: string

  constructor(bucket: string, prefix: string) {
    let host = process.env['STORAGE_EMULATOR_HOST']
    if (host !== undefined && !/^https?:\/\//.test(host)) host = `http://${host}`
    host = host?.replace(/\/storage\/v1\/?$/, '').replace(/\/$/, '')
    this.#storage = new Storage({
      projectId: process.env['GOOGLE_CLOUD_PROJECT'] ?? 'jobstore-bench',
      ...(host !== undefined ? { apiEndpoint: host } : {}),
    })
    // As in the GCS backend: the SDK takes the emulator host verbatim as the JSON API base.
    if (host !== undefined) this.#storage.baseUrl = `${this.#storage.apiEndpoint}/storage/v1`
    this.#bucketName = bucket
    this.#bucket = this.#storage.bucket(bucket)
    this.#prefix = prefix
  }

  #name(key: string): string {
    return `${this.#prefix}/${key}`
  }

  async setup(): Promise<void> {
    const [exists] = await this.#bucket.exists()
    if (exists) return
    try {
      await this.#storage.createBucket(this.#bucketName)
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err
    }
  }

  async putIfAbsent(key: string, data: Buffer): Promise<void> {
    await this.#bucket.file(this.#name(key)).save(data, { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } })
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.#bucket.file(this.#name(key)).save(data, { resumable: false })
  }

  async get(key: string): Promise<Buffer> {
    const [data] = await this.#bucket.file(this.#name(key)).download()
    return data
  }

  async delete(key: string): Promise<void> {
    await this.#bucket.file(this.#name(key)).delete({ ignoreNotFound: true })
  }

  async *list(prefix: string): AsyncGenerator<string> {
    const strip = this.#prefix.length + 1
    let query: { prefix: string; autoPaginate: false; pageToken?: string } | undefined = { prefix: this.#name(prefix), autoPaginate: false }
    while (query !== undefined) {
      const [files, next] = (await this.#bucket.getFiles(query)) as unknown as [{ name: string }[], { pageToken?: string } | null]
      for (const file of files) yield file.name.slice(strip)
      query = next?.pageToken ? { prefix: this.#name(prefix), autoPaginate: false, pageToken: next.pageToken } : undefined
    }
  }

  async putStream(key: string, body: Readable): Promise<void> {
    await pipeline(body, this.#bucket.file(this.#name(key)).createWriteStream({ resumable: true, chunkSize: STREAM_PART_SIZE }))
  }

  async getStream(key: string): Promise<Readable> {
    return this.#bucket.file(this.#name(key)).createReadStream()
  }

  async destroy(): Promise<void> {
    const names: string[] = []
    for await (const key of this.list('')) names.push(key)
    const limit = 32
    for (let i = 0; i < names.length; i += limit) {
      await Promise.all(names.slice(i, i + limit).map((name) => this.#bucket.file(this.#name(name)).delete({ ignoreNotFound: true })))
    }
  }
}
