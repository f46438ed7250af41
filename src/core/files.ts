/**
 * Files: writes from a local file or a body callback (streamed, digested, committed only once the body is whole),
 * reads to a local path or as a verified stream, replaces under `ifVersion`, public URLs and the listing. Shared
 * files (`shared-files.ts`) write through the same {@link putFromCallback}.
 */
import { constants as fsConstants } from 'node:fs'
import { chmod, open, rename, rm } from 'node:fs/promises'
import { basename as pathBasename, dirname, join } from 'node:path'
import { PassThrough, pipeline, type Readable } from 'node:stream'
import { finished, pipeline as pipelineAsync } from 'node:stream/promises'
import { linkedAbortController, throwIfAborted } from '../concurrency.js'
import { createEncryptStream } from '../encryption.js'
import { ConcurrentFileModificationError, InvalidArgumentError, JobStoreError, NoSuchFileError } from '../errors.js'
import { keys, mintFileId, randomId } from '../ids.js'
import { ObjectNotFoundError, PreconditionFailedError, type ObjectInfo, type PutOptions } from '../storage.js'
import { asStoreReadable, createVerifyStream, DigestStream, digestOf, type BodyWritable, type StoreReadable } from '../streams.js'
import { traceBytes } from '../tracing.js'
import { localDestinationProblem } from '../url-handlers.js'
import { io, ioWithDigest, type SignalOptions, type StoreContext } from './context.js'
import { digesting, fileChecksum, getOr, putConditional, verified } from './objects.js'

/** Options of the methods that write a new file. */
export interface NewFileOptions extends SignalOptions {
  /** The job the file belongs to. */
  readonly jobStoreID?: string
  /** Delete the file when that job is deleted. */
  readonly cleanup?: boolean
  /** Basename kept in the file ID, so the file can be recognised by name. */
  readonly basename?: string
}

/** Options of the stream write methods. */
export interface EncodingOptions {
  /** A Node.js encoding for string writes or reads; binary when absent. */
  readonly encoding?: BufferEncoding
}

/** Optimistic concurrency for replacing a file or shared file. */
export interface ConditionalOptions {
  /** Replace only this version (the `version` of a `StoreReadable` or of a previous write), else throw. */
  readonly ifVersion?: string
}

/** A body callback: write the content to `writable` (ending it is optional). */
export type BodyCallback<Extra extends unknown[] = []> = (writable: BodyWritable, ...extra: Extra) => Promise<void> | void

/** A file as listed by `files()`. */
export interface ListedFile {
  readonly fileID: string
  /** Size in bytes, when the listing tells it without another round trip. */
  readonly size?: number
}

/**
 * Throws `InvalidArgumentError` when `localPath` is a folder, device, FIFO or socket (or a symlink to one): `readFile`
 * writes regular files only (see `localDestinationProblem`). Backends call it before their rename too.
 */
export async function refuseLocalDestination(localPath: string, what: string): Promise<void> {
  const problem = await localDestinationProblem(localPath)
  if (problem !== undefined) throw new InvalidArgumentError(`cannot read ${what} to ${localPath}: ${problem}; readFile writes regular files only`)
}

/** `writeFile()`: see `AbstractJobStore.writeFile`. */
export async function writeFile(store: StoreContext, localFilePath: string, options: NewFileOptions): Promise<string> {
  const fileID = mintFileId({
    owner: options.jobStoreID,
    cleanup: options.cleanup,
    basename: options.basename ?? pathBasename(localFilePath),
  })
  await putLocalFile(store, keys.file(fileID), localFilePath, { ifNoneMatch: true }, options.signal)
  return fileID
}

async function putLocalFile(store: StoreContext, key: string, localFilePath: string, put: PutOptions, signal: AbortSignal | undefined): Promise<string> {
  const handle = await open(localFilePath, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new NoSuchFileError(localFilePath, { cause: err, message: `no local file ${localFilePath}` })
    throw new JobStoreError(`cannot open ${localFilePath}`, { cause: err })
  })
  try {
    const info = await handle.stat()
    const { body, digest } = digesting(handle.createReadStream({ highWaterMark: 256 * 1024, autoClose: false }))
    const version = await putConditional(store.storage, key, body, {
      ...put,
      digest,
      executable: (info.mode & fsConstants.S_IXUSR) !== 0,
      contentLength: info.size,
      ...io(signal),
    })
    traceBytes(info.size)
    return version
  } finally {
    await handle.close()
  }
}

/** `writeFileStream()`: see `AbstractJobStore.writeFileStream`. */
export async function writeFileStream(
  store: StoreContext,
  body: BodyCallback<[fileID: string]>,
  options: NewFileOptions & EncodingOptions,
): Promise<string> {
  const fileID = mintFileId({ owner: options.jobStoreID, cleanup: options.cleanup, basename: options.basename })
  await putFromCallback(store, keys.file(fileID), (w) => body(w, fileID), { ifNoneMatch: true }, options)
  return fileID
}

/**
 * Streams what the callback writes into `key`. The callback and the upload run together; whichever fails
 * first stops the other, and the upload commits only after the callback returned.
 */
export async function putFromCallback(
  store: StoreContext,
  key: string,
  callback: BodyCallback,
  put: PutOptions,
  options: SignalOptions & EncodingOptions & { encryptWith?: Buffer },
): Promise<string> {
  throwIfAborted(options.signal)
  // Two streams: the callback writes to `writable`; the upload reads `body`. The callback ending `writable` does
  // not end `body`: only the callback returning does, so a callback that ends its stream and then throws
  // cannot have committed anything.
  const writable = new PassThrough({ highWaterMark: 256 * 1024 })
  // `body` hashes what goes through: the core's digest of a clear file, at no extra stream layer.
  const body = new DigestStream()
  writable.pipe(body, { end: false })
  // The upload sees errors through the streams' state; these listeners only keep a destroy before the upload
  // started reading from being an uncaught 'error' event.
  writable.on('error', () => {})
  body.on('error', () => {})
  if (options.encoding !== undefined) writable.setDefaultEncoding(options.encoding)
  const controller = linkedAbortController(options.signal)
  // The digest is of the bytes stored: of the ciphertext for a protected file.
  const encrypted =
    options.encryptWith === undefined ? undefined : digesting(pipeline(body, createEncryptStream(options.encryptWith), () => {}))
  const source: Readable = encrypted?.body ?? body
  const digest = encrypted?.digest ?? body.digest
  let putFailure: { error: unknown } | undefined
  const upload = putConditional(store.storage, key, source, { ...put, digest, signal: controller.signal })
  upload.catch((error: unknown) => {
    putFailure = { error }
    writable.destroy(error as Error)
    body.destroy(error as Error)
  })
  try {
    await callback(writable)
    if (putFailure !== undefined) throw putFailure.error
    if (!writable.writableEnded) writable.end()
    // Everything written has moved into `body` once `writable` has ended as a readable.
    await finished(writable)
    body.end()
    return await upload
  } catch (err) {
    const failure = putFailure !== undefined ? putFailure.error : err
    controller.abort(failure)
    writable.destroy(failure as Error)
    body.destroy(failure as Error)
    await upload.catch(() => {})
    throw failure
  } finally {
    controller.dispose()
  }
}

/** `getEmptyFileStoreID()`: see `AbstractJobStore.getEmptyFileStoreID`. */
export async function writeEmptyFile(store: StoreContext, options: NewFileOptions): Promise<string> {
  const fileID = mintFileId({ owner: options.jobStoreID, cleanup: options.cleanup, basename: options.basename })
  const empty = Buffer.alloc(0)
  await putConditional(store.storage, keys.file(fileID), empty, { ifNoneMatch: true, digest: digestOf(empty), ...io(options.signal) })
  return fileID
}

/** `readFile()`: see `AbstractJobStore.readFile`. */
export async function readFile(store: StoreContext, jobStoreFileID: string, localFilePath: string, options: SignalOptions & { symlink?: boolean }): Promise<void> {
  const key = keys.file(jobStoreFileID)
  await refuseLocalDestination(localFilePath, `file ${jobStoreFileID}`)
  try {
    await store.storage.materializeObject(key, `file ${jobStoreFileID}`, localFilePath, {
      symlink: options.symlink ?? false,
      ...io(options.signal),
    })
  } catch (err) {
    if (err instanceof ObjectNotFoundError) throw new NoSuchFileError(jobStoreFileID, { cause: err })
    throw err
  }
}

/**
 * The default of `materializeObject`: a verified stream into a temporary file beside the target and a rename, so
 * the file appears whole or not at all.
 */
export async function materializeByCopy(
  store: StoreContext,
  key: string,
  what: string,
  localPath: string,
  options: { signal?: AbortSignal },
): Promise<void> {
  const object = await store.storage.getObject(key, ioWithDigest(options.signal))
  const checksum = fileChecksum(store, object, what)
  const temp = join(dirname(localPath), `.${pathBasename(localPath)}.${randomId()}.partial`)
  try {
    const handle = await open(temp, 'wx', object.executable ? 0o777 : 0o666)
    await pipelineAsync(object.body, createVerifyStream(what, object.size, checksum), handle.createWriteStream(), io(options.signal))
    if (object.executable) await chmod(temp, 0o755)
    await refuseLocalDestination(localPath, what)
    await rename(temp, localPath)
  } catch (err) {
    object.body.destroy()
    await rm(temp, { force: true })
    throw err
  }
}

/** `readFileStream()`: see `AbstractJobStore.readFileStream`. */
export async function readFileStream(store: StoreContext, jobStoreFileID: string, options: SignalOptions & EncodingOptions): Promise<StoreReadable> {
  const key = keys.file(jobStoreFileID)
  const object = await getOr(store.storage, key, options.signal, () => new NoSuchFileError(jobStoreFileID))
  const stream = verified(object, `file ${jobStoreFileID}`, undefined, fileChecksum(store, object, `file ${jobStoreFileID}`))
  if (options.encoding !== undefined) stream.setEncoding(options.encoding)
  return asStoreReadable(stream, { version: object.version, storedSize: object.size, executable: object.executable })
}

/** What the store knows of a file (undefined when it does not exist), for `fileExists`, `getFileSize`, `getFileVersion`. */
export async function headFile(store: StoreContext, jobStoreFileID: string, signal: AbortSignal | undefined): Promise<ObjectInfo | undefined> {
  return store.storage.headObject(keys.file(jobStoreFileID), io(signal))
}

/** `deleteFile()`: see `AbstractJobStore.deleteFile`. */
export async function deleteFile(store: StoreContext, jobStoreFileID: string, signal: AbortSignal | undefined): Promise<void> {
  await store.storage.deleteObjects([keys.file(jobStoreFileID)], io(signal))
}

/** The conditions of a replace: `ifVersion`'s, else that the file exists (NoSuchFileError when it does not). */
async function versionToReplace(store: StoreContext, key: string, what: string, options: SignalOptions & ConditionalOptions): Promise<PutOptions> {
  if (options.ifVersion !== undefined) return { ifMatch: options.ifVersion }
  const info = await store.storage.headObject(key, io(options.signal))
  if (info === undefined) throw new NoSuchFileError(what)
  return {}
}

/** A failed condition of a replace, as the caller sees it: ConcurrentFileModificationError. */
export function conditionalFailure(err: unknown, what: string, options: ConditionalOptions): unknown {
  if (err instanceof PreconditionFailedError) {
    return new ConcurrentFileModificationError(what, {
      cause: err,
      message: `${what} was modified or deleted concurrently (expected version ${options.ifVersion})`,
    })
  }
  return err
}

/** `updateFile()`: see `AbstractJobStore.updateFile`. */
export async function updateFile(
  store: StoreContext,
  jobStoreFileID: string,
  localFilePath: string,
  options: SignalOptions & ConditionalOptions,
): Promise<string> {
  const key = keys.file(jobStoreFileID)
  const put = await versionToReplace(store, key, jobStoreFileID, options)
  try {
    return await putLocalFile(store, key, localFilePath, put, options.signal)
  } catch (err) {
    throw conditionalFailure(err, `file ${jobStoreFileID}`, options)
  }
}

/** `updateFileStream()`: see `AbstractJobStore.updateFileStream`. */
export async function updateFileStream(
  store: StoreContext,
  jobStoreFileID: string,
  body: BodyCallback,
  options: SignalOptions & EncodingOptions & ConditionalOptions,
): Promise<string> {
  const key = keys.file(jobStoreFileID)
  const put = await versionToReplace(store, key, jobStoreFileID, options)
  try {
    return await putFromCallback(store, key, body, put, options)
  } catch (err) {
    throw conditionalFailure(err, `file ${jobStoreFileID}`, options)
  }
}

/** A public URL of the object at `key` (a file or a shared file named `name`); NoSuchFileError when it is missing. */
export async function publicUrl(store: StoreContext, key: string, name: string, signal: AbortSignal | undefined): Promise<string> {
  if ((await store.storage.headObject(key, io(signal))) === undefined) throw new NoSuchFileError(name)
  return store.storage.getObjectUrl(key, store.loaded?.publicUrlExpirySeconds ?? 3600)
}

/** `files()`: see `AbstractJobStore.files`. */
export async function* listFiles(store: StoreContext, signal: AbortSignal | undefined): AsyncGenerator<ListedFile> {
  for await (const object of store.storage.listObjects(keys.filesPrefix, io(signal))) {
    const fileID = keys.fileIdOfKey(object.key)
    if (fileID !== undefined) yield object.size === undefined ? { fileID } : { fileID, size: object.size }
  }
}
