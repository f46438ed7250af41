/**
 * The check every record carries (job descriptions, the config, stats and log messages, the root-job marker): a
 * SHA-256 of the record's own bytes, written into the record, so that a torn, truncated or overwritten record is
 * named as such, whatever the service stores or returns.
 *
 * - JSON records get the check as their first field, `{"sha256":"<hex>",…}`, over the record without that field
 *   (`{…}`): still JSON, still readable, and a truncation keeps the check. The config, pretty-printed, gets it on
 *   its own first line.
 * - Text records (stats messages, the root-job marker) get a first line `jobstore-sha256:<hex>`, over the text after it.
 *
 * A record without a check was written by an earlier release (or, for the config, edited by hand with its check
 * line removed): accepted as it is, unless the store says it writes checks into every record (`strict`).
 */
import { createHash } from 'node:crypto'
import { CorruptRecordError } from './errors.js'

/**
 * The config field that says a store writes checks into every record and digests of every file, and so requires
 * them (new stores). Its value names the format: `v1`, SHA-256 checks in records and CRC32 digests of files.
 */
export const DIGESTS_CONFIG_FIELD = 'digests'
/** Its value. */
export const DIGESTS_SHA256 = 'v1'

const JSON_CHECK = /^\{\s*"sha256"\s*:\s*"([0-9a-f]{64})"\s*,/
const TEXT_CHECK_PREFIX = 'jobstore-sha256:'
const TEXT_CHECK = /^jobstore-sha256:([0-9a-f]{64})\n/
/** Longest prefix the check patterns can match, with some room for the config's whitespace. */
const CHECK_PREFIX_BYTES = 128
const OPEN_BRACE = Buffer.from('{')

function sha256Hex(...parts: Buffer[]): string {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return hash.digest('hex')
}

/** The check was there and does not match: the record was torn or overwritten. */
function mismatch(what: string): CorruptRecordError {
  return new CorruptRecordError(what, 'checksum mismatch: torn or overwritten')
}

/** A store that writes checks into every record found one without. */
function missing(what: string): CorruptRecordError {
  return new CorruptRecordError(what, 'no checksum, but this store writes one into every record: torn or overwritten')
}

/**
 * Seals a JSON object's encoding (`{…}`, as `JSON.stringify` gives it) with its check as the first field.
 * `pretty`: the check on its own first line, as in a `JSON.stringify(…, null, 2)` text.
 */
export function sealJson(json: Buffer, pretty = false): Buffer {
  const digest = sha256Hex(json)
  const empty = json.length <= 2 || /^\{\s*\}$/.test(json.toString('latin1'))
  const field = pretty ? `{\n  "sha256": "${digest}"` : `{"sha256":"${digest}"`
  if (empty) return Buffer.from(`${field}${pretty ? '\n' : ''}}`)
  return Buffer.concat([Buffer.from(`${field},`), json.subarray(1)])
}

/**
 * The bytes of a JSON record without its check (what {@link sealJson} was given), after checking it.
 * @throws CorruptRecordError naming `what` when the check does not match, or is missing in a `strict` store
 * (unless `decodeUnchecked` is given: it is tried first, so that a record that does not decode is named for that).
 */
export function openJson(bytes: Buffer, what: string, strict: boolean, decodeUnchecked?: (bytes: Buffer) => unknown): Buffer {
  const head = bytes.subarray(0, CHECK_PREFIX_BYTES).toString('latin1')
  const match = JSON_CHECK.exec(head)
  if (match === null) {
    if (strict) {
      decodeUnchecked?.(bytes)
      throw missing(what)
    }
    return bytes
  }
  const rest = bytes.subarray(match[0].length)
  // `{"sha256":"…"}` alone (an empty object) has no comma: never matched here, and never written for a record.
  if (sha256Hex(OPEN_BRACE, rest) !== match[1]) throw mismatch(what)
  return Buffer.concat([OPEN_BRACE, rest])
}

/** Seals a text record (a stats message, the root-job marker) with a first line holding its check. */
export function sealText(text: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${TEXT_CHECK_PREFIX}${sha256Hex(text)}\n`), text])
}

/** The text of a sealed text record, after checking it; a record without a check as {@link openJson}. */
export function openText(bytes: Buffer, what: string, strict: boolean): Buffer {
  const match = TEXT_CHECK.exec(bytes.subarray(0, CHECK_PREFIX_BYTES).toString('latin1'))
  if (match === null) {
    if (strict) throw missing(what)
    return bytes
  }
  const text = bytes.subarray(match[0].length)
  if (sha256Hex(text) !== match[1]) throw mismatch(what)
  return text
}
