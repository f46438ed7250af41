/** GCS locators (`gs://bucket[/prefix]`, Toil's `google:project:name`), bucket names and emulator endpoints. */
import { InvalidArgumentError } from '../../src/errors.js'
import { checkLocatorPrefix } from '../../src/ids.js'

/** Where a GCS store lives. */
export interface GcsLocation {
  readonly bucket: string
  /** Store prefix inside the bucket, without leading or trailing `/`; empty for the whole bucket. */
  readonly prefix: string
  /** Project from a Toil `google:project:name` locator (used to create the bucket). */
  readonly projectId?: string
}

function invalidLocator(locator: string, why: string): InvalidArgumentError {
  const shown = JSON.stringify(locator.length > 200 ? `${locator.slice(0, 200)}…` : locator)
  return new InvalidArgumentError(`invalid GCS locator ${shown}: ${why}`)
}

/** Checks a bucket name against GCS's naming rules. */
export function isValidBucketName(name: string): boolean {
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(name)) return false
  const parts = name.split('.')
  if (parts.some((part) => part === '' || part.length > 63)) return false
  if (parts.length === 1 && name.length > 63) return false
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return false
  return !name.startsWith('goog') && !/g[o0][o0]gle/.test(name)
}

/**
 * Parses `gs://bucket[/prefix]`, `google:project:name` or `google:name` (Toil's: the bucket is `name--toil`).
 * Strict: no query, fragment, credentials, port, percent-escapes, `.`/`..` segments or odd characters.
 */
export function parseGcsLocator(locator: string): GcsLocation {
  if (typeof locator !== 'string') throw new InvalidArgumentError('the GCS locator must be a string')
  // Characters that have no business in a locator: controls, spaces, and URL syntax we do not accept.
  if (/[\u0000-\u0020\u007f-\u00a0?#@\\%"'<>^`{|}]/.test(locator)) {
    throw invalidLocator(locator, 'only letters, digits and . _ - / : are allowed (no query, fragment, credentials, escapes or spaces)')
  }
  const gs = /^gs:\/\/([^/]*)(?:\/(.*))?$/i.exec(locator)
  if (gs !== null) {
    const bucket = gs[1] ?? ''
    if (!isValidBucketName(bucket)) throw invalidLocator(locator, `"${bucket}" is not a valid bucket name`)
    let prefix: string
    try {
      prefix = checkLocatorPrefix(gs[2] ?? '', locator)
    } catch {
      throw invalidLocator(locator, "prefix segments must be [A-Za-z0-9._-], not '.' or '..', at most 512 characters in all")
    }
    if (/^\/|\/\//.test(gs[2] ?? '')) throw invalidLocator(locator, 'empty segment in the prefix')
    return { bucket, prefix }
  }
  const google = /^google:(.*)$/i.exec(locator)
  if (google !== null) {
    const rest = google[1] ?? ''
    const colon = rest.indexOf(':')
    const projectId = colon >= 0 ? rest.slice(0, colon) : undefined
    const name = colon >= 0 ? rest.slice(colon + 1) : rest
    if (projectId !== undefined && !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(projectId)) {
      throw invalidLocator(locator, `"${projectId}" is not a valid project ID`)
    }
    const bucket = `${name}--toil`
    if (name === '' || !isValidBucketName(bucket)) {
      throw invalidLocator(locator, `"${name}" does not make a valid bucket name ("${bucket}")`)
    }
    return projectId === undefined ? { bucket, prefix: '' } : { bucket, prefix: '', projectId }
  }
  throw invalidLocator(locator, 'expected gs://bucket[/prefix] or google:project:name')
}

/** `http://host:port` from `STORAGE_EMULATOR_HOST` forms: `host:port`, `http://host:port`, `…/storage/v1`. */
export function normalizeEndpoint(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return undefined
  let endpoint = value.trim()
  if (!/^https?:\/\//i.test(endpoint)) endpoint = `http://${endpoint}`
  try {
    const url = new URL(endpoint)
    return `${url.origin}${url.pathname.replace(/\/+$/, '').replace(/\/storage\/v1$/, '')}`
  } catch (err) {
    throw new InvalidArgumentError(`invalid GCS endpoint ${JSON.stringify(value)}`, { cause: err })
  }
}
