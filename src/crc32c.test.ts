import { describe, expect, it } from 'vitest'
import { crc32c } from './crc32c.js'
import { IntegrityError } from './errors.js'
import { digestBase64, newHasher, verifyBytes } from './streams.js'

describe('crc32c', () => {
  it('gives the check values of CRC-32C (RFC 3720, B.4)', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283)
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa)
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43)
    expect(crc32c(Buffer.alloc(0))).toBe(0)
  })

  it('continues from a previous value as one pass over the bytes would', () => {
    const data = Buffer.from('the quick brown fox jumps over the lazy dog')
    expect(crc32c(data.subarray(17), crc32c(data.subarray(0, 17)))).toBe(crc32c(data))
    expect(newHasher('crc32c').update(data.subarray(0, 5)).update(data.subarray(5)).digest('base64')).toBe(digestBase64('crc32c', data))
  })

  it('is a checksum the core verifies: base64 of the 4 bytes big-endian, as GCS gives it', () => {
    // x-goog-hash of "123456789" as GCS reports it.
    const data = Buffer.from('123456789')
    expect(digestBase64('crc32c', data)).toBe('4waSgw==')
    expect(verifyBytes('x', data, data.length, { algorithm: 'crc32c', digest: '4waSgw==' })).toBe(data)
    expect(() => verifyBytes('x', Buffer.from('123456780'), data.length, { algorithm: 'crc32c', digest: '4waSgw==' })).toThrow(IntegrityError)
  })
})
