/**
 * The GCS backend against a real fake-gcs-server (started by the vitest global setup, or given by
 * STORAGE_EMULATOR_HOST with JOBSTORE_EXTERNAL_SERVERS=1): the conformance suite, then what is specific to GCS.
 * Nothing is mocked; without a server every test fails.
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { inspect } from 'node:util'
import { Storage } from '@google-cloud/storage'
import { describe, expect, it, onTestFinished } from 'vitest'
import { defineConformanceSuite } from '../../conformance-tests/index.js'
import { bytesOf as readAll, keysUnder } from '../../conformance-tests/storage-tests.js'
import { caught, collect, primitivesOf, randomPayload, sha256, writeChunks, type StorageProbe } from '../../conformance-tests/harness.js'
import { AbstractJobStore } from '../../src/abstract-job-store.js'
import { InvalidArgumentError, JobStoreError } from '../../src/errors.js'
import { keys, randomId } from '../../src/ids.js'
import { openJobStore } from '../../src/open.js'
import '../../src/builtin-backends.js'
import { ObjectNotFoundError, PreconditionFailedError, type ObjectRead } from '../../src/storage.js'
import { GcsServiceError, mapGcsError, sanitize } from './errors.js'
import { DEFAULT_CHUNK_SIZE, GcsJobStore, parseGcsLocator, type GcsJobStoreOptions } from './gcs-job-store.js'

const BUCKET = 'jobstore-gcs-test'
const SMALL_CHUNK = 256 * 1024

function emulatorHost(): string {
  const host = process.env['STORAGE_EMULATOR_HOST']
  if (host === undefined || host === '') {
    throw new Error('STORAGE_EMULATOR_HOST is not set: the vitest global setup should have started fake-gcs-server')
  }
  return host
}

/** A raw SDK client on the emulator, for the tests that check the server itself. */
function rawStorage(): Storage {
  const host = emulatorHost().replace(/\/+$/, '')
  const storage = new Storage({ apiEndpoint: host, projectId: 'jobstore-test' })
  storage.baseUrl = `${host}/storage/v1`
  return storage
}

/** A store under a random prefix of the test bucket, initialized, and its primitives; destroyed after the test. */
async function probe(options: GcsJobStoreOptions = {}, locator = `gs://${BUCKET}/${randomId()}`): Promise<{ store: GcsJobStore; storage: StorageProbe }> {
  const store = new GcsJobStore(locator, options)
  await store.initialize()
  onTestFinished(() => store.destroy())
  return { store, storage: primitivesOf(store) }
}

function streamOf(data: Buffer, piece = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += piece) yield data.subarray(at, at + piece)
    })(),
  )
}

/** A stream that yields `data`, then fails. */
function failingStream(data: Buffer, error: Error): Readable {
  return Readable.from(
    (async function* () {
      for (let at = 0; at < data.length; at += 64 * 1024) yield data.subarray(at, at + 64 * 1024)
      await new Promise((resolve) => setTimeout(resolve, 50))
      throw error
    })(),
  )
}


defineConformanceSuite({
  name: 'gcs',
  newLocator: () => `gs://jobstore-conformance/${randomId()}`,
  partSize: DEFAULT_CHUNK_SIZE,
  // The storage group's stores upload resumable chunks of 256 KiB (the smallest GCS takes): chunk edges cheaply.
  openStore: (locator) => new GcsJobStore(locator, { chunkSize: SMALL_CHUNK }),
  storagePartSize: SMALL_CHUNK,
  newBucketLocator: () => `gs://jobstore-new-${emulatorHost() && randomId().slice(0, 12)}`,
  removeBucket: async (locator) => {
    await rawStorage().bucket(parseGcsLocator(locator).bucket).delete({ ignoreNotFound: true })
  },
  corruptObject: async (locator, key, offset) => {
    // A raw rewrite with one byte changed and the custom metadata (the digest, or its sidecar's name) kept; the
    // emulator computes its own hashes of what it gets.
    const { bucket, prefix } = parseGcsLocator(locator)
    const file = rawStorage().bucket(bucket).file(prefix === '' ? key : `${prefix}/${key}`)
    const [bytes] = await file.download()
    const [metadata] = await file.getMetadata()
    bytes[offset] = (bytes[offset] as number) ^ 0x20
    await file.save(bytes, { resumable: false, validation: false, metadata: { contentType: metadata.contentType ?? 'application/octet-stream', metadata: metadata.metadata ?? {} } })
  },
  // Signed URLs are fetched from the emulator for real: test-servers starts it with -public-host on its own
  // address (it does not check signatures or expiry; the URLs are correct V4 URLs all the same).
  capabilities: {
    countableLeftovers: {
      unsupported:
        'GCS has no API that lists resumable upload sessions; a failed write cancels its session (DELETE) and an ' +
        'unfinished session is never an object (see docs/backends/gcs.md)',
    },
    abandonedUploads: {
      unsupported: 'GCS has no API that lists resumable upload sessions: what a killed writer leaves cannot be counted or removed (it expires after a week)',
    },
    enforcedPublicUrls: {
      unsupported: 'fake-gcs-server checks neither the signature nor the expiry of a signed URL (the URLs are correct V4 URLs all the same)',
    },
  },
})

describe('gcs: locators', () => {
  it('parses gs:// and Toil google: locators', () => {
    expect(parseGcsLocator('gs://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' })
    expect(parseGcsLocator('gs://my-bucket/')).toEqual({ bucket: 'my-bucket', prefix: '' })
    expect(parseGcsLocator('gs://my_bucket.example/a/b-c/d.e_f/')).toEqual({ bucket: 'my_bucket.example', prefix: 'a/b-c/d.e_f' })
    expect(parseGcsLocator('GS://abc/Run1')).toEqual({ bucket: 'abc', prefix: 'Run1' })
    expect(parseGcsLocator('google:my-project:run42')).toEqual({ bucket: 'run42--toil', prefix: '', projectId: 'my-project' })
    expect(parseGcsLocator('google:run42')).toEqual({ bucket: 'run42--toil', prefix: '' })
  })

  it('rejects hostile and malformed locators with InvalidArgumentError, before any I/O', () => {
    const hostile = [
      'gs://',
      'gs:///prefix',
      'gs:bucket',
      'gs://Bucket',
      'gs://ab',
      `gs://${'a'.repeat(64)}`,
      'gs://-bucket',
      'gs://bucket-',
      'gs://goog-bucket',
      'gs://my-google-bucket',
      'gs://my-g00gle-bucket',
      'gs://192.168.1.1',
      'gs://a..b',
      'gs://bucket/../other',
      'gs://bucket/a/../../x',
      'gs://bucket/./x',
      'gs://bucket//x',
      'gs://bucket/a//b',
      'gs://bucket/x?versions=true',
      'gs://bucket/x#frag',
      'gs://user:secret@bucket/x',
      'gs://bucket:443/x',
      'gs://bucket/%2e%2e/x',
      'gs://bucket/x\\y',
      'gs://bucket/x y',
      'gs://bucket/x\u0000y',
      'gs://bucket/x\ny',
      'gs://bucket/\u00e9t\u00e9',
      `gs://bucket/${'p'.repeat(600)}`,
      'google:',
      'google:Proj-ect:name',
      'google:proj:',
      'google::name',
      'google:my-project:na/me',
      'google:my-project:Name',
      'google:my-project:run:extra',
      's3://bucket/x',
      '',
    ]
    for (const locator of hostile) {
      let error: unknown
      try {
        parseGcsLocator(locator)
      } catch (err) {
        error = err
      }
      expect(error, JSON.stringify(locator)).toBeInstanceOf(InvalidArgumentError)
      expect((error as Error).message.length, JSON.stringify(locator)).toBeLessThan(500)
    }
  })

  it('openJobStore routes gs: and google: locators to the GCS backend', async () => {
    expect(await openJobStore('gs://some-bucket/x')).toBeInstanceOf(GcsJobStore)
    expect(await openJobStore('google:my-project:run42')).toBeInstanceOf(GcsJobStore)
    expect((await caught(() => openJobStore('gs://some-bucket/../x'))).code).toBe('INVALID_ARGUMENT')
  })

  it('getEnv gives a worker the emulator and the project, normalised', () => {
    const store = new GcsJobStore('gs://b-env/x', { apiEndpoint: '127.0.0.1:4443/storage/v1/', projectId: 'proj-env' })
    expect(store.getEnv()).toEqual({ STORAGE_EMULATOR_HOST: 'http://127.0.0.1:4443', GOOGLE_CLOUD_PROJECT: 'proj-env' })
    const toil = new GcsJobStore('google:toil-project:run', { apiEndpoint: 'http://127.0.0.1:4443' })
    expect(toil.getEnv()['GOOGLE_CLOUD_PROJECT']).toBe('toil-project')
    expect(() => new GcsJobStore('gs://b-env/x', { chunkSize: 1000 })).toThrow(InvalidArgumentError)
  })
})

describe('gcs: the emulator enforces generation preconditions (the proof)', () => {
  it('single-shot and resumable uploads get 412 on ifGenerationMatch 0 and on a stale generation', async () => {
    await probe() // makes sure the bucket exists
    const file = rawStorage().bucket(BUCKET).file(`proof/${randomId()}`)
    await file.save('v1', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } })
    const first = String(file.metadata.generation)
    const status = async (op: Promise<unknown>): Promise<unknown> => op.then(() => 'stored', (err: { code?: unknown }) => err.code)
    // Create-only on an existing object.
    expect(await status(file.save('v2', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } }))).toBe(412)
    expect(await status(file.save('v2', { resumable: true, preconditionOpts: { ifGenerationMatch: 0 } }))).toBe(412)
    // Compare-and-swap against a generation that is not the current one.
    const stale = Number(first) - 1
    expect(await status(file.save('v3', { resumable: false, preconditionOpts: { ifGenerationMatch: stale } }))).toBe(412)
    expect(await status(file.save('v3', { resumable: true, preconditionOpts: { ifGenerationMatch: stale } }))).toBe(412)
    const [content] = await file.download()
    expect(content.toString()).toBe('v1')
    // The current generation passes, and makes a new one.
    await file.save('v4', { resumable: true, preconditionOpts: { ifGenerationMatch: Number(first) } })
    expect(String(file.metadata.generation)).not.toBe(first)
    expect((await file.download())[0].toString()).toBe('v4')
    await file.delete()
  })
})

describe('gcs: atomicity', () => {
  it('a body that throws after several chunks has its resumable session cancelled (answered 499); one in its first chunk has none', async () => {
    // That nothing is stored and the old object stays: the storage group (conformance-tests/storage-tests.ts).
    const { storage } = await probe({ chunkSize: SMALL_CHUNK })
    await storage.putObject('files/a', randomPayload(5000))
    // Watch (not replace) fetch: the backend cancels the resumable sessions of failed writes with a DELETE.
    const cancels: number[] = []
    const realFetch = globalThis.fetch
    globalThis.fetch = async (input, init) => {
      const response = await realFetch(input, init)
      if (init?.method === 'DELETE' && String(input).includes('upload_id=')) cancels.push(response.status)
      return response
    }
    try {
      for (const size of [SMALL_CHUNK / 2, 6 * SMALL_CHUNK + 3]) {
        const error = new Error(`body failed at ${size}`)
        expect(await caught(() => storage.putObject('files/a', failingStream(randomPayload(size), error)))).toBe(error)
        expect(await caught(() => storage.putObject('files/new', failingStream(randomPayload(size), error), { ifNoneMatch: true }))).toBe(error)
      }
    } finally {
      globalThis.fetch = realFetch
    }
    // Only the two multi-chunk writes had a session; GCS (and the emulator) answer 499 to the cancellation.
    expect(cancels).toEqual([499, 499])
  })

  it('a body longer or shorter than announced (contentLength) is an IntegrityError and stores nothing', async () => {
    // Aborts mid-upload: the storage group (conformance-tests/storage-tests.ts).
    const { storage } = await probe({ chunkSize: SMALL_CHUNK })
    const old = randomPayload(7000)
    const version = await storage.putObject('files/b', old)
    const data = randomPayload(3 * SMALL_CHUNK)
    for (const announced of [data.length - 1, data.length + 1]) {
      expect((await caught(() => storage.putObject('files/b', streamOf(data), { contentLength: announced }))).code).toBe('INTEGRITY')
      expect((await caught(() => storage.putObject('files/c', streamOf(data.subarray(0, 100)), { contentLength: announced }))).code).toBe('INTEGRITY')
    }
    expect((await caught(() => storage.putObject('files/c', Buffer.from('abc'), { contentLength: 4 }))).code).toBe('INTEGRITY')
    // Give a stray final chunk, if there were one, time to land before looking.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(sha256(await readAll(storage, 'files/b'))).toBe(sha256(old))
    expect((await storage.headObject('files/b'))?.version).toBe(version)
    expect(await keysUnder(storage, 'files/')).toEqual(['files/b'])
  })
})

describe('gcs: sizes and integrity', () => {
  it('around the resumable chunk size, single-shot and resumable uploads return the service’s MD5 and a write ID', async () => {
    // That every size and body reads back whole: the storage group (conformance-tests/storage-tests.ts).
    const { storage } = await probe({ chunkSize: SMALL_CHUNK })
    for (const size of [0, SMALL_CHUNK - 1, SMALL_CHUNK, SMALL_CHUNK + 1, 3 * SMALL_CHUNK + 7]) {
      const data = randomPayload(size)
      for (const [label, body] of [['buffer', data], ['stream', streamOf(data)]] as const) {
        const key = `files/${size}-${label}`
        await storage.putObject(key, body)
        const read = await storage.getObject(key)
        read.body.destroy()
        // What fake-gcs-server returns (and GCS does): an MD5 for every upload, handed to the core to verify.
        expect(read.checksum, `${label} ${size}`).toEqual({ algorithm: 'md5', digest: createHash('md5').update(data).digest('base64') })
        // Every write stores a write ID (the core's write token when it gives one), read back as the write token.
        expect((await storage.headObject(key))?.writeToken, `${label} ${size}`).toEqual(expect.any(String))
      }
    }
  })

  it('the emulator stores MD5 and CRC32C for single-shot and resumable uploads, and rejects a wrong declared digest', async () => {
    await probe()
    const bucket = rawStorage().bucket(BUCKET)
    const data = randomPayload(3 * SMALL_CHUNK)
    for (const resumable of [false, true]) {
      const file = bucket.file(`digests/${randomId()}`)
      await file.save(data, { resumable, chunkSize: SMALL_CHUNK, validation: false })
      const [metadata] = await file.getMetadata()
      expect(metadata.md5Hash).toBe(createHash('md5').update(data).digest('base64'))
      expect(typeof metadata.crc32c).toBe('string')
      await file.delete()
    }
    // A single-shot upload declaring a wrong MD5 is refused (the store declares MD5 and CRC32C on those).
    const wrong = bucket.file(`digests/${randomId()}`)
    const status = await wrong
      .save(data, { resumable: false, validation: false, metadata: { md5Hash: createHash('md5').update('other').digest('base64') } })
      .then(() => 'stored', (err: { code?: unknown }) => err.code)
    expect(status).toBe(400)
    expect((await wrong.exists())[0]).toBe(false)
  })

  it('a read whose bytes differ from the stored MD5 fails with IntegrityError through the core', async () => {
    const { store, storage } = await probe()
    const id = await store.writeFileStream((w) => void w.end('the real bytes'))
    const key = keys.file(id)
    const real = await storage.getObject(key)
    real.body.destroy()
    expect(real.checksum?.algorithm).toBe('md5')
    // Same size, other bytes, the stored MD5: as if the bytes were corrupted in flight.
    const forged: ObjectRead = { ...real, body: Readable.from([Buffer.from('the fake bytes')]) }
    const target = store as unknown as { getObject(key: string, options?: object): Promise<ObjectRead> }
    const original = target.getObject.bind(store)
    target.getObject = async (k, options) => (k === key ? forged : original(k, options))
    const error = await caught(async () => collect(await store.readFileStream(id)))
    expect(error.code).toBe('INTEGRITY')
  })
})

describe('gcs: reads, listing, deletes', () => {
  it('destroying a read early leaves the other reads in flight intact', async () => {
    // The SDK's createReadStream destroys the shared agent in that case and hangs the other downloads.
    const { storage } = await probe()
    const data = randomPayload(8 * 1024 * 1024)
    await storage.putObject('files/big', data)
    const full = async (): Promise<string> => sha256(await collect((await storage.getObject('files/big')).body))
    const early = async (): Promise<void> => {
      const { body } = await storage.getObject('files/big')
      for await (const _ of body) break
      body.destroy()
    }
    const results = await Promise.all([full(), early(), full(), early(), full()])
    expect(results.filter((result) => result !== undefined)).toEqual([sha256(data), sha256(data), sha256(data)])
  })

  it('a store nested under another’s prefix survives the other’s destroy (GCS destroys a store’s layout only), as do foreign objects', async () => {
    // Sibling prefixes and a store at the bucket's root: the storage group (conformance-tests/storage-tests.ts).
    const bucket = `jobstore-iso-${randomId().slice(0, 12)}`
    const { store: root } = await probe({}, `gs://${bucket}`)
    const { store: a } = await probe({}, `gs://${bucket}/a`)
    const { store: ab } = await probe({}, `gs://${bucket}/a/b`)
    for (const store of [root, a, ab]) {
      await store.writeSharedFileStream('who', (w) => void w.end(store.locator))
      await store.writeFileStream((w) => void w.end('file'))
    }
    const foreign = rawStorage().bucket(bucket).file('not-ours/keep.txt')
    await foreign.save('foreign', { resumable: false })
    await root.destroy()
    expect((await caught(() => root.resume())).code).toBe('NO_SUCH_JOB_STORE')
    expect((await foreign.exists())[0]).toBe(true)
    await a.destroy()
    const survivor = new GcsJobStore(`gs://${bucket}/a/b`)
    await survivor.resume()
    expect((await collect(await survivor.readSharedFileStream('who'))).toString()).toBe(`gs://${bucket}/a/b`)
    expect(await keysUnder(primitivesOf(survivor), 'files/')).toHaveLength(1)
    expect((await foreign.exists())[0]).toBe(true)
    await foreign.delete()
  })
})

describe('gcs: URLs and errors', () => {
  it('getObjectUrl gives a V4 signed URL for the object, with its expiry', async () => {
    const { store, storage } = await probe()
    await storage.putObject('shared/pub', Buffer.from('public'))
    const url = new URL(await storage.getObjectUrl('shared/pub', 600))
    expect(url.pathname).toBe(`/${BUCKET}/${store.prefix}/shared/pub`)
    expect(url.searchParams.get('X-Goog-Algorithm')).toBe('GOOG4-RSA-SHA256')
    expect(url.searchParams.get('X-Goog-Expires')).toBe('600')
    expect(url.searchParams.get('X-Goog-Signature')).toMatch(/^[0-9a-f]{512}$/)
    // The emulator serves it on its public host (it checks no signature): ask as a client of that host would.
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(url, { headers: { host: url.host } }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (part: string) => (text += part)).on('end', () => resolve(`${res.statusCode} ${text}`))
      })
      req.on('error', reject).end()
    })
    expect(body).toBe('200 public')
    expect(await caught(() => storage.getObjectUrl('shared/pub', 8 * 24 * 3600))).toBeInstanceOf(InvalidArgumentError)
  })

  it('imports from and exports to gs:// URLs, executable flag included', async () => {
    const { store } = await probe()
    const { store: other } = await probe()
    const data = randomPayload(3 * SMALL_CHUNK + 11)
    const id = await store.writeFileStream(async (w) => writeChunks(w, data, 64 * 1024))
    const target = `gs://${BUCKET}/exports/${randomId()}/data%20file.bin`
    onTestFinished(async () => {
      await rawStorage().bucket(BUCKET).file(decodeURIComponent(new URL(target).pathname.slice(1))).delete({ ignoreNotFound: true })
    })
    await store.exportFile(id, target)
    expect(await AbstractJobStore.getSize(target)).toBe(data.length)
    const imported = (await other.importFile(target)) as string
    expect(imported).toMatch(/-data%20file\.bin$/)
    expect(sha256(await collect(await other.readFileStream(imported)))).toBe(sha256(data))
    expect(await AbstractJobStore.getSize(`gs://${BUCKET}/exports/none`)).toBeUndefined()
    expect((await caught(() => other.importFile(`gs://${BUCKET}/exports/none`))).code).toBe('NO_SUCH_FILE')
    // The executable flag travels through gs:// too.
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-gcs-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    await writeFile(join(dir, 'tool.sh'), '#!/bin/sh\nexit 0\n', { mode: 0o755 })
    const tool = (await store.importFile(pathToFileURL(join(dir, 'tool.sh')).href)) as string
    const toolUrl = `gs://${BUCKET}/exports/${randomId()}/tool.sh`
    onTestFinished(async () => {
      await rawStorage().bucket(BUCKET).file(new URL(toolUrl).pathname.slice(1)).delete({ ignoreNotFound: true })
    })
    await store.exportFile(tool, toolUrl)
    const toolAgain = (await other.importFile(toolUrl)) as string
    await other.readFile(toolAgain, join(dir, 'tool-again.sh'))
    expect((await stat(join(dir, 'tool-again.sh'))).mode & 0o100).toBe(0o100)
    for (const bad of [`gs://${BUCKET}/`, `gs://${BUCKET}/x?generation=1`, `gs://${BUCKET}/dir/`, 'gs://Not_A_Bucket/x']) {
      expect((await caught(() => other.importFile(bad))).code, bad).toBe('INVALID_IMPORT_EXPORT_URL')
    }
  })

  it('SDK errors are mapped with a safe cause: no token, no session ID, no request', async () => {
    const leaky = Object.assign(new Error('Request failed: https://storage.googleapis.com/upload/storage/v1/b/b/o?uploadType=resumable&upload_id=SECRETSESSION'), {
      code: 403,
      errors: [{ reason: 'forbidden' }],
      config: { headers: { Authorization: 'Bearer ya29.SECRETTOKEN' } },
      response: { status: 403, request: { headers: { Authorization: 'Bearer ya29.SECRETTOKEN' } } },
    })
    const mapped = mapGcsError(leaky, { action: 'upload of', key: 'files/x', where: 'gs://b/p' })
    expect(mapped).toBeInstanceOf(JobStoreError)
    expect(mapped.cause).toBeInstanceOf(GcsServiceError)
    const shown = `${mapped.message} ${inspect(mapped, { depth: 10 })} ${JSON.stringify(mapped)}`
    expect(shown).not.toMatch(/SECRETTOKEN|SECRETSESSION|ya29/)
    expect(mapped.message).toMatch(/HTTP 403: forbidden/)
    expect(sanitize({ code: 412, message: 'Bearer abc.def failed' }).message).toBe('Bearer *** failed')
    expect(mapGcsError({ code: 412 }, { action: 'x', key: 'k', where: 'w' })).toBeInstanceOf(PreconditionFailedError)
    expect(mapGcsError({ code: 404, errors: [{ reason: 'notFound' }] }, { action: 'x', key: 'k', where: 'w' })).toBeInstanceOf(ObjectNotFoundError)
    // A 404 without the service's reason is no proof of absence (issue 14, item 2).
    const bare404 = mapGcsError({ code: 404 }, { action: 'x', key: 'k', where: 'w' })
    expect(bare404).toBeInstanceOf(JobStoreError)
    expect(bare404).not.toBeInstanceOf(ObjectNotFoundError)

    // A real error from the emulator: writing into a bucket that does not exist.
    const nowhere = primitivesOf(new GcsJobStore(`gs://jobstore-absent-${randomId().slice(0, 10)}/x`))
    const error = await caught(() => nowhere.putObject('files/x', Buffer.from('x')))
    expect(error).toBeInstanceOf(JobStoreError)
    expect(error.message).toMatch(/does not exist/)
    expect((error as JobStoreError).cause).toBeInstanceOf(GcsServiceError)
    expect(Object.keys((error as JobStoreError).cause as object).sort()).toEqual(['name', 'reason', 'status'])
    const big = await caught(() => nowhere.putObject('files/y', streamOf(randomPayload(DEFAULT_CHUNK_SIZE + 1))))
    expect(big).toBeInstanceOf(JobStoreError)
    expect((big as JobStoreError).cause).toBeInstanceOf(GcsServiceError)
    expect(inspect(big, { depth: 10 })).not.toMatch(/upload_id=[^*]/)
  })
})
