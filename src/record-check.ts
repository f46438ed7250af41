/**
 * The check every record carries (job descriptions, the config, stats and log messages, the root-job marker): a
 * CRC32 of the record's own bytes, written into the record, so that a torn, truncated or overwritten record is
 * named as such, whatever the service stores or returns.
 *
 * - JSON records get the check as their first field, `{"crc32":"<hex>",…}`, over the record without that field
 *   (`{…}`): still JSON, still readable, and a truncation keeps the check. The config, pretty-printed, gets it on
 *   its own first line.
 * - Text records (stats messages, the root-job marker) get a first line `jobstore-crc32:<hex>`, over the text after it.
 *
 * A record without a check was written by an earlier release (or, for the config, edited by hand with its check
 * line removed): accepted as it is, unless the store says it writes checks into every record (`strict`).
 */
import { crc32 } from 'node:zlib'
import { CorruptRecordError } from './errors.js'

/**
 * The config field that says a store writes checks into every record and digests of every file, and so requires
 * them (new stores). Its value names the format: `v1`, CRC32 checks in records and CRC32 digests of files.
 */
export const DIGESTS_CONFIG_FIELD = 'digests'
/** Its value. */
export const DIGESTS_V1 = 'v1'

const JSON_CHECK = /^\{\s*"crc32"\s*:\s*"([0-9a-f]{8})"\s*,/
const TEXT_CHECK_PREFIX = 'jobstore-crc32:'
const TEXT_CHECK = /^jobstore-crc32:([0-9a-f]{8})\n/
/** Longest prefix the check patterns can match, with some room for the config's whitespace. */
const CHECK_PREFIX_BYTES = 128
const OPEN_BRACE = Buffer.from('{')

/** The check: CRC32 (node:zlib), 8 hex digits. Half a microsecond for a 2 KiB record (SHA-256: 2 µs). */
function checkOf(...parts: Buffer[]): string {
  let value = 0
  for (const part of parts) value = crc32(part, value)
  return (value >>> 0).toString(16).padStart(8, '0')
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
  const digest = checkOf(json)
  const empty = json.length <= 2 || /^\{\s*\}$/.test(json.toString('latin1'))
  const field = pretty ? `{\n  "crc32": "${digest}"` : `{"crc32":"${digest}"`
  if (empty) return Buffer.from(`${field}${pretty ? '\n' : ''}}`)
  return Buffer.concat([Buffer.from(`${field},`), json.subarray(1)])
}

/**
 * The JSON record without its check (what {@link sealJson} was given, as bytes or text), after checking it.
 * @throws CorruptRecordError naming `what` when the check does not match, or is missing in a `strict` store
 * (unless `decodeUnchecked` is given: it is tried first, so that a record that does not decode is named for that).
 */
export function openJson(bytes: Buffer, what: string, strict: boolean, decodeUnchecked?: (bytes: Buffer) => unknown): Buffer | string {
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
  // `{"crc32":"…"}` alone (an empty object) has no comma: never matched here, and never written for a record.
  if (checkOf(OPEN_BRACE, rest) !== match[1]) throw mismatch(what)
  // The text to decode, without a copy of the bytes first.
  return `{${rest.toString('utf8')}`
}

/** Seals a text record (a stats message, the root-job marker) with a first line holding its check. */
export function sealText(text: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${TEXT_CHECK_PREFIX}${checkOf(text)}\n`), text])
}

/** The text of a sealed text record, after checking it; a record without a check as {@link openJson}. */
export function openText(bytes: Buffer, what: string, strict: boolean): Buffer {
  const match = TEXT_CHECK.exec(bytes.subarray(0, CHECK_PREFIX_BYTES).toString('latin1'))
  if (match === null) {
    if (strict) throw missing(what)
    return bytes
  }
  const text = bytes.subarray(match[0].length)
  if (checkOf(text) !== match[1]) throw mismatch(what)
  return text
}
