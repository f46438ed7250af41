/**
 * `importFile()` and `exportFile()`: a URL's handler (`src/url-handlers.ts`) or, within one service, the backend's
 * server-side copy; `file:` imports by link where the backend can. Streamed bytes are digested on the way in and
 * verified on the way out.
 */
import { Transform, pipeline, type Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { debuglog } from 'node:util'
import { InvalidImportExportUrlError, NoSuchFileError } from '../errors.js'
import { keys, mintFileId } from '../ids.js'
import { ObjectNotFoundError, type PutOptions } from '../storage.js'
import { requireWritable, resolveUrlHandler, urlTimeouts, type UrlIoOptions, type UrlTimeoutOptions } from '../url-handlers.js'
import { io, type SignalOptions, type StoreContext } from './context.js'
import { digesting, fileChecksum, getOr, putConditional, verified } from './objects.js'

const log = debuglog('jobstore')

/** Options of transfers that can report progress. */
export interface TransferProgressOptions {
  /** Called as bytes go through (not for server-side copies, which move no bytes through this process). */
  readonly onProgress?: (bytes: number, totalBytes: number | undefined) => void
}

/** Options of `importFile()`. */
export type ImportOptions = SignalOptions &
  TransferProgressOptions &
  UrlTimeoutOptions & { sharedFileName?: string; hardlink?: boolean; symlink?: boolean; jobStoreID?: string }

/** `importFile()`: see `AbstractJobStore.importFile`. */
export async function importFile(store: StoreContext, srcUrl: string, options: ImportOptions): Promise<string | undefined> {
  const storage = store.storage
  const transfer = urlIo(options)
  const { handler, url } = await resolveUrlHandler(srcUrl)
  let fileID: string | undefined
  let key: string
  if (options.sharedFileName !== undefined) {
    key = keys.shared(options.sharedFileName)
  } else {
    let name: string
    try {
      name = decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf('/') + 1))
    } catch (err) {
      throw new InvalidImportExportUrlError(srcUrl, 'bad percent-encoding in the path', { cause: err })
    }
    fileID = mintFileId({ owner: options.jobStoreID, basename: name === '' ? undefined : name })
    key = keys.file(fileID)
  }
  const put: PutOptions = fileID !== undefined ? { ifNoneMatch: true } : {}
  if (url.protocol === 'file:' && (options.hardlink || options.symlink)) {
    const linked = await storage.linkLocalFile(fileURLToPath(url), key, {
      hardlink: options.hardlink ?? false,
      symlink: options.symlink ?? false,
    })
    if (linked) return fileID
  }
  if (await storage.copyFromUrl(url, key, { ...put, ...io(options.signal) })) {
    log('imported %s server-side', url.href)
    return fileID
  }
  const source = await handler.openRead(url, transfer)
  try {
    const { body, digest } = digesting(withProgress(source.body, source.size, options.onProgress))
    await putConditional(storage, key, body, {
      ...put,
      digest,
      executable: source.executable,
      ...(source.size !== undefined ? { contentLength: source.size } : {}),
      ...io(options.signal),
    })
  } catch (err) {
    source.body.destroy()
    throw err
  }
  return fileID
}

/** `exportFile()`: see `AbstractJobStore.exportFile`. */
export async function exportFile(
  store: StoreContext,
  jobStoreFileID: string,
  dstUrl: string,
  options: SignalOptions & TransferProgressOptions & UrlTimeoutOptions,
): Promise<void> {
  const transfer = urlIo(options)
  const key = keys.file(jobStoreFileID)
  const { handler, url } = await resolveUrlHandler(dstUrl)
  const writer = requireWritable(handler, url)
  let copied: boolean
  try {
    copied = await store.storage.copyToUrl(key, url, io(options.signal))
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new NoSuchFileError(jobStoreFileID, { cause: err })
    throw err
  }
  if (copied) {
    log('exported %s server-side', url.href)
    return
  }
  const object = await getOr(store.storage, key, options.signal, () => new NoSuchFileError(jobStoreFileID))
  const checksum = fileChecksum(store, object, `file ${jobStoreFileID}`)
  await writer.write(url, withProgress(verified(object, `file ${jobStoreFileID}`, undefined, checksum), object.size, options.onProgress), {
    executable: object.executable,
    size: object.size,
    ...transfer,
  })
}

/** `AbstractJobStore.getSize`: the size of the object at `url`, from its handler. */
export async function sizeAtUrl(url: string, options: SignalOptions & UrlTimeoutOptions): Promise<number | undefined> {
  const transfer = urlIo(options)
  const { handler, url: parsed } = await resolveUrlHandler(url)
  return handler.getSize(parsed, transfer)
}

/** The signal and the network timeouts of an import or export, the timeouts checked before any I/O. */
function urlIo(options: SignalOptions & UrlTimeoutOptions): UrlIoOptions {
  urlTimeouts(options)
  return {
    ...io(options.signal),
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.maxRetryTimeMs !== undefined ? { maxRetryTimeMs: options.maxRetryTimeMs } : {}),
  }
}

function withProgress(stream: Readable, total: number | undefined, onProgress: TransferProgressOptions['onProgress']): Readable {
  if (onProgress === undefined) return stream
  let bytes = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length
      onProgress(bytes, total)
      callback(null, chunk)
    },
  })
  return pipeline(stream, counter, () => {})
}
