/**
 * The store's top-level entries, kept once: the core's layout (`keys.rootEntries`) and the entries backends keep
 * beside it for their own bookkeeping. A store at the root of a bucket, container or folder owns these and
 * nothing else there, so every backend's `destroyStorage()` goes by this list: a top-level entry added to the
 * layout is destroyed with the store everywhere, and never leaks. Also: bounded deletes of whatever a listing
 * yields, for destroying prefixes of any size.
 */
import { forEachConcurrent } from './concurrency.js'
import { keys } from './ids.js'

/** Top-level entries of backends' own, beside the core's (a key, or a prefix ending in `/`). */
export const backendEntries = {
  /** Digest sidecars of writes whose metadata was fixed before the digest was known (S3, GCS: src/digest-sidecars.ts). */
  digests: 'digests/',
  /** Temporary files of writes in progress (the file backend). */
  temp: 'tmp/',
} as const

/** Every top-level entry of a store: the core's, then those of `own` (entries of {@link backendEntries}). */
export function storeEntries(own: readonly string[] = []): readonly string[] {
  return [...new Set([...keys.rootEntries, ...own])]
}

/**
 * What a store owns in its bucket or container, as full names: its {@link storeEntries} under its `prefix` (empty,
 * or ending in `/`), and nothing else. Not the whole prefix: a store under `a/b/` is not the store under `a/`'s.
 */
export function ownedRoots(prefix: string, own: readonly string[] = []): readonly string[] {
  return storeEntries(own).map((entry) => prefix + entry)
}

/** Whether a full name is under one of `roots` (see {@link ownedRoots}). */
export function isOwned(roots: readonly string[], name: string): boolean {
  return roots.some((root) => (root.endsWith('/') ? name.startsWith(root) : name === root))
}

/**
 * Every name a store owns (see {@link ownedRoots}), with as few listings as can be: under a prefix, one listing
 * of the prefix, filtered (a nested store's names and foreign ones stay); at a bucket's root, one listing per
 * prefix entry, and key entries as they are (deleting a missing key costs nothing more than asking). `list`
 * yields listed objects, by `key` or by `name`.
 */
export async function* ownedNames(
  prefix: string,
  own: readonly string[],
  list: (prefix: string) => AsyncIterable<{ readonly key: string } | { readonly name: string }>,
): AsyncGenerator<string> {
  const roots = ownedRoots(prefix, own)
  for (const listed of prefix === '' ? roots : [prefix]) {
    if (!listed.endsWith('/')) {
      yield listed
      continue
    }
    for await (const object of list(listed)) {
      const name = 'key' in object ? object.key : object.name
      if (prefix === '' || isOwned(roots, name)) yield name
    }
  }
}

/** Groups a stream of items into arrays of `size` (the last one shorter). */
export async function* batches<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = []
  for await (const item of source) {
    batch.push(item)
    if (batch.length >= size) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0) yield batch
}

/**
 * Deletes every name `source` yields, in batches of `batchSize`, `concurrency` batches at a time. The listing is
 * read only as batches are sent, so memory stays bounded by `batchSize × concurrency` whatever the number of keys.
 */
export async function deleteListed(
  source: AsyncIterable<string>,
  deleteBatch: (names: string[]) => Promise<void>,
  options: { readonly batchSize: number; readonly concurrency: number },
): Promise<void> {
  await forEachConcurrent(batches(source, options.batchSize), options.concurrency, deleteBatch)
}
