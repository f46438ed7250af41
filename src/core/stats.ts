/**
 * Stats and log messages: written under `stats/unread/`, handed to exactly one reader each by a create-if-absent
 * claim (`stats/claims/`), moved to `stats/read/` once the reader's callback returned; claims of crashed readers
 * are released by `clean()`.
 */
import { forEachConcurrent, mapConcurrent } from '../concurrency.js'
import { keys } from '../ids.js'
import { openText, sealText } from '../record-check.js'
import { ObjectNotFoundError, PreconditionFailedError } from '../storage.js'
import { io, type StoreContext } from './context.js'
import { bytesOf, putConditional } from './objects.js'

/**
 * Receives one stats/logging message: its text, its ID (unique, sorting by the time it was written) and whether it
 * had been read before (a `readAll` replay or a `peek` of a read message).
 */
export type StatsCallback = (text: string, message: { id: string; read: boolean }) => Promise<void> | void

/** `writeStatsAndLogging()`: see `AbstractJobStore.writeStatsAndLogging`. */
export async function writeStats(store: StoreContext, text: string, signal: AbortSignal | undefined): Promise<void> {
  const key = `${keys.statsUnreadPrefix}${keys.newStatsId()}`
  await putConditional(store.storage, key, sealText(Buffer.from(text, 'utf8')), { ifNoneMatch: true, ...io(signal) })
}

/** The text of the stats message at `key`, checked; undefined when it is gone (read and moved meanwhile). */
async function readMessage(store: StoreContext, key: string, id: string, what: string, signal: AbortSignal | undefined): Promise<{ id: string; text: string } | undefined> {
  try {
    const bytes = await bytesOf(await store.storage.getObject(key, io(signal)), what)
    const text = openText(bytes, `stats ${id}`, store.strict).toString('utf8')
    return { id, text }
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return undefined
    throw err
  }
}

/** `readStatsAndLogging()`: see `AbstractJobStore.readStatsAndLogging`. */
export async function readStats(
  store: StoreContext,
  callback: StatsCallback,
  readAll: boolean,
  options: { signal?: AbortSignal; peek?: boolean },
): Promise<number> {
  const { storage } = store
  const signal = options.signal
  if (options.peek) return peekStats(store, callback, readAll, signal)
  const claimedUnprocessed = new Set<string>()
  const processed = new Set<string>()
  const finishing: Promise<void>[] = []
  let count = 0
  const claimed = mapConcurrent(storage.listObjects(keys.statsUnreadPrefix, io(signal)), storage.concurrency, async (object) => {
    const id = keys.statsIdOfKey(object.key)
    return id === undefined ? undefined : claimStats(store, id, signal, claimedUnprocessed)
  })
  try {
    for await (const message of claimed) {
      if (message === undefined) continue
      await callback(message.text, { id: message.id, read: false })
      count++
      claimedUnprocessed.delete(message.id)
      processed.add(message.id)
      finishing.push(markStatsRead(store, message.id, message.bytes, signal))
    }
  } catch (err) {
    await Promise.allSettled(finishing)
    await storage.deleteObjects([...claimedUnprocessed].map((id) => keys.statsClaimsPrefix + id), io(signal)).catch(() => {})
    throw err
  }
  await Promise.all(finishing)
  if (readAll) {
    const replay = mapConcurrent(storage.listObjects(keys.statsReadPrefix, io(signal)), storage.concurrency, async (object) => {
      const id = keys.statsIdOfKey(object.key)
      if (id === undefined || processed.has(id)) return undefined
      return readMessage(store, object.key, id, `stats ${id}`, signal)
    })
    for await (const message of replay) {
      if (message === undefined) continue
      await callback(message.text, { id: message.id, read: true })
      count++
    }
  }
  return count
}

/** Hands out messages without claiming them or marking them read (for inspection tools). */
async function peekStats(store: StoreContext, callback: StatsCallback, readAll: boolean, signal: AbortSignal | undefined): Promise<number> {
  const { storage } = store
  let count = 0
  for (const prefix of readAll ? [keys.statsUnreadPrefix, keys.statsReadPrefix] : [keys.statsUnreadPrefix]) {
    const messages = mapConcurrent(storage.listObjects(prefix, io(signal)), storage.concurrency, async (object) => {
      const id = keys.statsIdOfKey(object.key)
      if (id === undefined) return undefined
      return readMessage(store, object.key, id, object.key, signal)
    })
    for await (const message of messages) {
      if (message === undefined) continue
      await callback(message.text, { id: message.id, read: prefix === keys.statsReadPrefix })
      count++
    }
  }
  return count
}

async function claimStats(
  store: StoreContext,
  id: string,
  signal: AbortSignal | undefined,
  claimed: Set<string>,
): Promise<{ id: string; text: string; bytes: Buffer } | undefined> {
  const { storage } = store
  const claimKey = keys.statsClaimsPrefix + id
  try {
    await putConditional(storage, claimKey, Buffer.from(String(Date.now())), { ifNoneMatch: true, ...io(signal) })
  } catch (err) {
    if (err instanceof PreconditionFailedError) return undefined // another reader has it
    throw err
  }
  claimed.add(id)
  try {
    // A late SDK retry of the message's create-if-absent write can put an already read message back into
    // `unread/`: if `read/` has it, it was handed out once already, so drop the copy instead. Looked up in
    // parallel with the read, so it costs no latency.
    const [bytes, alreadyRead] = await Promise.all([
      storage.getObject(keys.statsUnreadPrefix + id, io(signal)).then((object) => bytesOf(object, `stats ${id}`)),
      storage.headObject(keys.statsReadPrefix + id, io(signal)).then((info) => info !== undefined),
    ])
    if (alreadyRead) {
      await storage.deleteObjects([keys.statsUnreadPrefix + id], io(signal))
      claimed.delete(id)
      await storage.deleteObjects([claimKey], io(signal))
      return undefined
    }
    return { id, text: openText(bytes, `stats ${id}`, store.strict).toString('utf8'), bytes }
  } catch (err) {
    claimed.delete(id)
    await storage.deleteObjects([claimKey], io(signal))
    // Gone: another reader finished it between our listing and our claim.
    if (err instanceof ObjectNotFoundError) return undefined
    throw err
  }
}

async function markStatsRead(store: StoreContext, id: string, bytes: Buffer, signal: AbortSignal | undefined): Promise<void> {
  const { storage } = store
  await storage.putObject(keys.statsReadPrefix + id, bytes, io(signal))
  // Unread before claim: a reader that claims after us then finds nothing to read.
  await storage.deleteObjects([keys.statsUnreadPrefix + id], io(signal))
  await storage.deleteObjects([keys.statsClaimsPrefix + id], io(signal))
}

/** Releases the claims older than `olderThanMs` (of readers that crashed); returns how many. */
export async function releaseStaleStatsClaims(store: StoreContext, olderThanMs: number, signal: AbortSignal | undefined): Promise<number> {
  const { storage } = store
  const now = Date.now()
  let released = 0
  await forEachConcurrent(storage.listObjects(keys.statsClaimsPrefix, io(signal)), storage.concurrency, async (object) => {
    try {
      const since = Number((await bytesOf(await storage.getObject(object.key, io(signal)), object.key)).toString('utf8'))
      if (!(now - since < olderThanMs)) {
        await storage.deleteObjects([object.key], io(signal))
        released++
      }
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err
    }
  })
  return released
}

/** `countStatsAndLogging()`: see `AbstractJobStore.countStatsAndLogging`. */
export async function countStats(store: StoreContext, signal: AbortSignal | undefined): Promise<{ unread: number; read: number }> {
  let unread = 0
  let read = 0
  for await (const _ of store.storage.listObjects(keys.statsUnreadPrefix, io(signal))) unread++
  for await (const _ of store.storage.listObjects(keys.statsReadPrefix, io(signal))) read++
  return { unread, read }
}
