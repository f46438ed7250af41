/**
 * The URL handler of a bucket-like service (`s3://`, `gs://`, Azure blob URLs), built on the stores' own
 * primitives: a backend supplies only where a URL points (see `AbstractJobStore.bucketUrlHandler`).
 */
import { pipeline } from 'node:stream'
import { InvalidImportExportUrlError, NoSuchFileError } from '../errors.js'
import { ObjectNotFoundError, type ObjectRead } from '../storage.js'
import { createVerifyStream } from '../streams.js'
import type { UrlHandler } from '../url-handlers.js'
import { io, ioWithDigest, type StoreContext } from './context.js'
import { fileChecksum } from './objects.js'

/** A URL handler of a bucket-like service, made by `AbstractJobStore.bucketUrlHandler`. */
export interface BucketUrlHandler<S> extends UrlHandler {
  /**
   * The store at the root of the bucket (container) `url` names, and the object's key, checked; undefined when
   * `url` is not one of this handler's. Throws {@link InvalidImportExportUrlError} when it is, but malformed.
   */
  locate(url: URL): { store: S; key: string } | undefined
}

/** What a backend says of its URLs: see `AbstractJobStore.bucketUrlHandler`. */
export interface BucketUrlSpec<S> {
  /** The schemes of the service's own URLs (`s3`). */
  readonly schemes: readonly string[]
  /** Other URLs it takes over (by host, no I/O): `https://<account>.blob.core.windows.net/…`. */
  readonly claims?: (url: URL) => boolean
  /** Where a URL of the handler's points; throw `InvalidImportExportUrlError` when it names no object. */
  readonly locate: (url: URL) => { readonly root: string; readonly rawKey: string }
  /** A store at a root locator (no I/O). */
  readonly open: (root: string) => S
}

/** The handler of `spec`; `contextOf` gives the core's view of a store it opened. */
export function makeBucketUrlHandler<S>(spec: BucketUrlSpec<S>, contextOf: (store: S) => StoreContext): BucketUrlHandler<S> {
  const schemes = new Set(spec.schemes.map((scheme) => scheme.toLowerCase()))
  const stores = new Map<string, S>()
  const locate = (url: URL, given = url.href): { store: S; key: string } | undefined => {
    if (!schemes.has(url.protocol.slice(0, -1).toLowerCase()) && spec.claims?.(url) !== true) return undefined
    if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '' || url.port !== '') {
      throw new InvalidImportExportUrlError(url.href, 'an object URL takes no query, fragment, credentials or port')
    }
    const { root, rawKey } = spec.locate(url)
    const key = checkObjectKey(url, rawKey, given)
    let store = stores.get(root)
    if (store === undefined) {
      try {
        store = spec.open(root)
      } catch (err) {
        throw new InvalidImportExportUrlError(url.href, (err as Error)?.message ?? 'invalid bucket', { cause: err })
      }
      stores.set(root, store)
    }
    return { store, key }
  }
  const target = (url: URL): { context: StoreContext; key: string } => {
    const found = locate(url)
    if (found === undefined) throw new InvalidImportExportUrlError(url.href, `not a ${[...schemes].join('/')} URL`)
    return { context: contextOf(found.store), key: found.key }
  }
  const handler: BucketUrlHandler<S> = {
    schemes: [...spec.schemes],
    ...(spec.claims !== undefined ? { claims: spec.claims } : {}),
    locate: (url) => locate(url),
    check(url, given) {
      if (locate(url, given) === undefined) throw new InvalidImportExportUrlError(url.href, `not a ${[...schemes].join('/')} URL`)
    },
    async getSize(url, options) {
      const { context, key } = target(url)
      return (await context.storage.headObject(key, io(options?.signal)))?.size
    },
    async openRead(url, options) {
      const { context, key } = target(url)
      let object: ObjectRead
      try {
        object = await context.storage.getObject(key, ioWithDigest(options?.signal))
      } catch (err) {
        if (err instanceof ObjectNotFoundError) throw new NoSuchFileError(url.href, { cause: err, message: `no object at ${url.href}` })
        throw err
      }
      // Verified like a read of the store's own files: size always, the core's digest when the object has one
      // (a store at a bucket's root has no config: it requires none), else the service's.
      const body = pipeline(object.body, createVerifyStream(url.href, object.size, fileChecksum(context, object, url.href)), () => {})
      return { body, size: object.size, executable: object.executable }
    },
    async write(url, body, options) {
      const { context, key } = target(url)
      // No digest: the object is outside any store (a sidecar there would be litter in someone's bucket).
      await context.storage.putObject(key, body, {
        executable: options.executable,
        ...(options.size !== undefined ? { contentLength: options.size } : {}),
        ...io(options.signal),
      })
    },
  }
  return handler
}

const MAX_OBJECT_KEY_BYTES = 1024

/** The decoded object key of a bucket URL, checked (see `AbstractJobStore.bucketUrlHandler`). */
function checkObjectKey(url: URL, rawKey: string, given: string): string {
  const bad = (why: string, cause?: unknown): InvalidImportExportUrlError =>
    new InvalidImportExportUrlError(url.href, `${why} in the object key`, cause !== undefined ? { cause } : undefined)
  // The path as given: URL parsing has already resolved `.`/`..` (and `%2e`) segments away.
  const givenPath = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(given)?.[1] ?? ''
  for (const segment of givenPath.split(/[/\\]/)) {
    if (/^(\.|%2e){1,2}$/i.test(segment)) throw bad('a . or .. segment')
  }
  let key: string
  try {
    key = decodeURIComponent(rawKey)
  } catch (err) {
    throw bad('bad percent-encoding', err)
  }
  if (key === '') throw new InvalidImportExportUrlError(url.href, 'no object key')
  if (key.startsWith('/')) throw bad('a leading /')
  const segments = key.split('/')
  if (segments.includes('')) throw bad('an empty segment (// or a trailing /)')
  if (segments.some((segment) => segment === '.' || segment === '..')) throw bad('a . or .. segment')
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw bad('a control character or a backslash')
  if (Buffer.byteLength(key) > MAX_OBJECT_KEY_BYTES) throw bad(`more than ${MAX_OBJECT_KEY_BYTES} bytes`)
  return key
}
