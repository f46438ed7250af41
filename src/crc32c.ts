/**
 * CRC32C (Castagnoli), the checksum GCS keeps of every object (`x-goog-hash: crc32c=…`, `crc32c` in its metadata):
 * node:zlib has CRC32 only. Table-driven, one byte at a time, as the GCS SDK's own; used for objects the service
 * has no MD5 of (composite objects) and for the checksum a single-request upload declares.
 */

/** Reflected polynomial of CRC32C. */
const POLYNOMIAL = 0x82f63b78

const TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? POLYNOMIAL ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** The CRC32C of `data`, continuing from `previous` (the CRC32C of the bytes before it), as node:zlib's `crc32`. */
export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0
  for (let i = 0; i < data.length; i++) crc = (TABLE[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8)
  return ~crc >>> 0
}
