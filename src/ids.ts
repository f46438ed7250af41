/**
 * IDs, names and the key layout. Every ID a caller hands back to the store is checked against the exact shape
 * the store mints before any I/O, so nothing can escape the store's root or break a service's key rules.
 *
 * Layout (store-relative keys; the file backend maps `/` to directories):
 * - `config.json`                          the store's config; its presence is what makes a store exist
 * - `meta/store-marker`                    written first: proves the location is a job store's (see `storeMarker`)
 * - `meta/root-job`                        the root job's ID
 * - `jobs/<2>/<jobID>`                     job descriptions, fanned out over 1,024 folders
 * - `files/<2>/<owner>/<c|k>/<rand>[-<basename>]`  files; owner is a job ID (or `_`), `c` marks cleanup files
 * - `shared/<name>`                        shared files
 * - `stats/unread/<id>`, `stats/read/<id>`, `stats/claims/<id>`   stats and logging messages
 */
import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from './errors.js'

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz' // Crockford base32, lower case: no I, L, O, U

/** Length of minted job IDs and of the random part of file IDs (130 random bits). */
export const RANDOM_ID_LENGTH = 26

/** A random lower-case base32 string of {@link RANDOM_ID_LENGTH} characters. */
export function randomId(): string {
  const bytes = randomBytes(RANDOM_ID_LENGTH)
  let out = ''
  for (const byte of bytes) out += ALPHABET[byte & 31]
  return out
}

/** A random ID that sorts by creation time (for stats messages): 11 chars of milliseconds, then randomness. */
export function timeOrderedId(now = Date.now()): string {
  let time = ''
  let rest = now
  for (let i = 0; i < 11; i++) {
    time = ALPHABET[rest % 32] + time
    rest = Math.floor(rest / 32)
  }
  return `${time}${randomId().slice(0, 16)}`
}

/**
 * The creation time (milliseconds since the epoch) a {@link timeOrderedId} carries, or undefined for a string that
 * is not one (stats message IDs are such IDs: this is when the message was written, by the writer's clock).
 */
export function timeOfTimeOrderedId(id: string): number | undefined {
  if (!/^[0-9a-hjkmnp-tv-z]{27}$/.test(id)) return undefined
  let time = 0
  for (const ch of id.slice(0, 11)) time = time * 32 + ALPHABET.indexOf(ch)
  return time
}

const JOB_ID = /^[0-9a-hjkmnp-tv-z]{26}$/
const FILE_ID = /^(?<owner>[0-9a-hjkmnp-tv-z]{26}|_)\/(?<mode>[ck])\/(?<rand>[0-9a-hjkmnp-tv-z]{26})(?:-(?<base>[A-Za-z0-9_.%-]{1,200}))?$/
const SHARED_NAME = /^[a-zA-Z0-9._-]+$/
const STATS_ID = /^[0-9a-hjkmnp-tv-z]{27}$/

/** Longest shared-file name accepted (fits every backend's key limit and a file name). */
export const MAX_SHARED_NAME_LENGTH = 200
/** Longest encoded basename kept in a file ID; longer ones are cut (the basename is a hint, not data). */
export const MAX_ENCODED_BASENAME_LENGTH = 200

function describe(value: unknown): string {
  if (typeof value !== 'string') return `a ${typeof value}`
  const shown = JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
  return `${shown} (length ${value.length})`
}

/** Throws {@link InvalidArgumentError} unless `id` is a job ID this store could have minted. */
export function checkJobId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !JOB_ID.test(id)) {
    throw new InvalidArgumentError(`invalid job ID ${describe(id)}: a job ID is 26 characters of 0-9 and a-z but i, l, o and u, as the store makes them`)
  }
}

/** The parts of a file ID. */
export interface ParsedFileId {
  readonly owner: string | undefined
  readonly cleanup: boolean
  readonly rand: string
  readonly basename: string | undefined
}

/** Parses a file ID, or throws {@link InvalidArgumentError}. */
export function parseFileId(id: unknown): ParsedFileId {
  const match = typeof id === 'string' ? FILE_ID.exec(id) : null
  const groups = match?.groups
  if (!groups) throw new InvalidArgumentError(`invalid file ID ${describe(id)}`)
  const owner = groups['owner'] === '_' ? undefined : groups['owner']
  let basename: string | undefined
  if (groups['base'] !== undefined) {
    try {
      basename = decodeURIComponent(groups['base'])
    } catch {
      throw new InvalidArgumentError(`invalid file ID ${describe(id)}: bad basename encoding`)
    }
  }
  return { owner, cleanup: groups['mode'] === 'c', rand: groups['rand'] as string, basename }
}

/** Whether `id` is a file ID this store could have minted (as {@link parseFileId} accepts, without throwing). */
export function isFileId(id: unknown): boolean {
  try {
    parseFileId(id)
    return true
  } catch {
    return false
  }
}

/** Throws {@link InvalidArgumentError} unless `name` is a valid shared-file name. */
export function checkSharedFileName(name: unknown): asserts name is string {
  if (
    typeof name !== 'string' ||
    !SHARED_NAME.test(name) ||
    name.length > MAX_SHARED_NAME_LENGTH ||
    /^\.+$/.test(name)
  ) {
    throw new InvalidArgumentError(
      `invalid shared file name ${describe(name)}: use 1 to ${MAX_SHARED_NAME_LENGTH} characters of [a-zA-Z0-9._-], not only dots`,
    )
  }
}

/**
 * Encodes a basename into the key-safe alphabet `[A-Za-z0-9_.-]` plus `%XX` escapes (UTF-8), cut to
 * {@link MAX_ENCODED_BASENAME_LENGTH} without splitting an escape. Returns undefined for an empty result.
 */
export function encodeBasename(basename: string): string | undefined {
  if (basename.includes('/') || basename.includes('\0')) {
    throw new InvalidArgumentError(`invalid basename ${describe(basename)}: no '/' or NUL`)
  }
  let out = ''
  for (const byte of Buffer.from(basename, 'utf8')) {
    const ch = String.fromCharCode(byte)
    const piece = /[A-Za-z0-9_.-]/.test(ch) && byte < 128 ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
    if (out.length + piece.length > MAX_ENCODED_BASENAME_LENGTH) break
    out += piece
  }
  // A cut may split a multi-byte character: drop trailing escapes that do not decode.
  while (out.length > 0) {
    try {
      decodeURIComponent(out)
      break
    } catch {
      out = out.slice(0, out.lastIndexOf('%'))
    }
  }
  return out.length > 0 ? out : undefined
}

/** Mints a file ID owned by `owner` (a job ID) or by nobody. */
export function mintFileId(options: { owner?: string | undefined; cleanup?: boolean | undefined; basename?: string | undefined }): string {
  if (options.owner !== undefined) checkJobId(options.owner)
  const owner = options.owner ?? '_'
  const mode = options.owner !== undefined && options.cleanup ? 'c' : 'k'
  const base = options.basename === undefined ? undefined : encodeBasename(options.basename)
  return `${owner}/${mode}/${randomId()}${base === undefined ? '' : `-${base}`}`
}

/** Keys of the store layout. */
export const keys = {
  /**
   * The store's top-level entries: a key, or a prefix ending in `/`. Everything the store writes is under one of
   * them, so a store at the root of a bucket can be destroyed without touching anything else there.
   */
  rootEntries: ['config.json', 'meta/', 'jobs/', 'files/', 'shared/', 'stats/'] as readonly string[],
  config: 'config.json',
  /**
   * The store marker: written before anything else of a store, deleted last by `destroy()`. It proves that what
   * is at the location is a job store's (a half-created or half-destroyed one included), so that `destroy()`
   * never deletes, and `initialize()` never adopts, data no store made.
   */
  storeMarker: 'meta/store-marker',
  rootJob: 'meta/root-job',
  jobsPrefix: 'jobs/',
  job(id: string): string {
    checkJobId(id)
    return `jobs/${id.slice(0, 2)}/${id}`
  },
  /** The job ID a job key names, or undefined for a key that is not a job. */
  jobIdOfKey(key: string): string | undefined {
    const id = key.slice(key.lastIndexOf('/') + 1)
    return JOB_ID.test(id) && key === `jobs/${id.slice(0, 2)}/${id}` ? id : undefined
  },
  filesPrefix: 'files/',
  file(fileId: string): string {
    const parsed = parseFileId(fileId)
    const shard = (parsed.owner ?? parsed.rand).slice(0, 2)
    return `files/${shard}/${fileId}`
  },
  /** The file ID a file key names, or undefined. */
  fileIdOfKey(key: string): string | undefined {
    const fileId = key.split('/').slice(2).join('/')
    try {
      return keys.file(fileId) === key ? fileId : undefined
    } catch {
      return undefined
    }
  },
  /** Prefix of the cleanup files of a job. */
  cleanupFilesPrefix(jobId: string): string {
    checkJobId(jobId)
    return `files/${jobId.slice(0, 2)}/${jobId}/c/`
  },
  sharedPrefix: 'shared/',
  shared(name: string): string {
    checkSharedFileName(name)
    return `shared/${name}`
  },
  statsUnreadPrefix: 'stats/unread/',
  statsReadPrefix: 'stats/read/',
  statsClaimsPrefix: 'stats/claims/',
  statsIdOfKey(key: string): string | undefined {
    const id = key.slice(key.lastIndexOf('/') + 1)
    return STATS_ID.test(id) ? id : undefined
  },
  newStatsId(): string {
    return timeOrderedId()
  },
} as const

/** Validates a store prefix given in a locator (`s3://bucket/<prefix>`): plain segments only. */
export function checkLocatorPrefix(prefix: string, locator: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '')
  if (trimmed === '') return ''
  for (const segment of trimmed.split('/')) {
    if (!/^[A-Za-z0-9._-]+$/.test(segment) || /^\.+$/.test(segment)) {
      throw new InvalidArgumentError(
        `invalid prefix in locator ${describe(locator)}: segments must be [A-Za-z0-9._-], not empty, '.' or '..'`,
      )
    }
  }
  if (trimmed.length > 512) throw new InvalidArgumentError(`prefix in locator ${describe(locator)} is longer than 512`)
  return trimmed
}
