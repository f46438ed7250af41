/**
 * Shared files: named files of the whole store, written atomically from a body callback, encrypted at rest with
 * the config's key when protected (and decrypted on read).
 */
import { loadKeyFile } from '../encryption.js'
import { EncryptionError, NoSuchFileError } from '../errors.js'
import { keys } from '../ids.js'
import type { PutOptions } from '../storage.js'
import { asStoreReadable, type StoreReadable } from '../streams.js'
import { io, type SignalOptions, type StoreContext } from './context.js'
import { conditionalFailure, putFromCallback, type BodyCallback, type ConditionalOptions, type EncodingOptions } from './files.js'
import { fileChecksum, getOr, verified } from './objects.js'

/** Options of `writeSharedFileStream()`. */
export type SharedFileWriteOptions = SignalOptions & EncodingOptions & ConditionalOptions & { isProtected?: boolean; ifAbsent?: boolean }

/** `writeSharedFileStream()`: see `AbstractJobStore.writeSharedFileStream`. */
export async function writeSharedFile(store: StoreContext, sharedFileName: string, body: BodyCallback, options: SharedFileWriteOptions): Promise<string> {
  const key = keys.shared(sharedFileName)
  const encrypt = options.isProtected ?? store.loaded?.encryptionKeyPath !== undefined
  const encryptWith = encrypt ? await encryptionKey(store, sharedFileName) : undefined
  const put: PutOptions = {
    ...(options.ifVersion !== undefined ? { ifMatch: options.ifVersion } : {}),
    ...(options.ifAbsent ? { ifNoneMatch: true } : {}),
  }
  try {
    return await putFromCallback(store, key, body, put, { ...options, ...(encryptWith ? { encryptWith } : {}) })
  } catch (err) {
    throw conditionalFailure(err, `shared file ${sharedFileName}`, options)
  }
}

/** The config's encryption key, loaded once (a failure is not kept: the key file may appear later). */
async function encryptionKey(store: StoreContext, what: string): Promise<Buffer> {
  const path = store.loaded?.encryptionKeyPath
  if (path === undefined) {
    throw new EncryptionError(`cannot protect ${what}: the store's config names no encryptionKeyPath`)
  }
  store.encryptionKey ??= loadKeyFile(path).catch((err: unknown) => {
    store.encryptionKey = undefined
    throw err
  })
  return store.encryptionKey
}

/** `readSharedFileStream()`: see `AbstractJobStore.readSharedFileStream`. */
export async function readSharedFile(store: StoreContext, sharedFileName: string, options: SignalOptions & EncodingOptions): Promise<StoreReadable> {
  const key = keys.shared(sharedFileName)
  const object = await getOr(store.storage, key, options.signal, () => new NoSuchFileError(sharedFileName))
  let master: Buffer | undefined
  const checksum = fileChecksum(store, object, `shared file ${sharedFileName}`)
  if (store.loaded?.encryptionKeyPath !== undefined) {
    try {
      master = await encryptionKey(store, sharedFileName)
    } catch (err) {
      object.body.destroy()
      throw err
    }
  }
  const stream = verified(object, `shared file ${sharedFileName}`, { key: master }, checksum)
  if (options.encoding !== undefined) stream.setEncoding(options.encoding)
  return asStoreReadable(stream, { version: object.version, storedSize: object.size, executable: object.executable })
}

/** `sharedFileNames()`: see `AbstractJobStore.sharedFileNames`. */
export async function* listSharedFiles(store: StoreContext, signal: AbortSignal | undefined): AsyncGenerator<string> {
  for await (const object of store.storage.listObjects(keys.sharedPrefix, io(signal))) {
    yield object.key.slice(keys.sharedPrefix.length)
  }
}
