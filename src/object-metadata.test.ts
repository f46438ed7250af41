import { describe, expect, it } from 'vitest'
import { decodeMetadata, encodeMetadata, type MetadataFormat } from './object-metadata.js'

const flagOmitted: MetadataFormat = { executable: 'x-exec', executableValues: { yes: '1' }, writeToken: 'x-token', digest: 'x-crc' }
const flagAlways: MetadataFormat = { ...flagOmitted, executableValues: { yes: 'true', no: 'false' } }

describe('object metadata', () => {
  it('encodes the entries in the format’s names and values, leaving out absent ones', () => {
    expect(encodeMetadata(flagOmitted, { executable: true, writeToken: 't', digest: 'd' })).toEqual({ 'x-exec': '1', 'x-token': 't', 'x-crc': 'd' })
    expect(encodeMetadata(flagOmitted, { executable: false })).toEqual({})
    expect(encodeMetadata(flagAlways, { executable: false, writeToken: 't' })).toEqual({ 'x-exec': 'false', 'x-token': 't' })
    // No flag given (a digest added to a write's entries): none written, so the write's own flag stays.
    expect(encodeMetadata(flagAlways, { digest: 'd' })).toEqual({ 'x-crc': 'd' })
  })

  it('decodes what it encodes; another flag value is false, an empty or missing token none', () => {
    for (const format of [flagOmitted, flagAlways]) {
      for (const executable of [true, false]) {
        expect(decodeMetadata(format, encodeMetadata(format, { executable, writeToken: 'w' }))).toEqual({ executable, writeToken: 'w' })
      }
    }
    expect(decodeMetadata(flagAlways, { 'x-exec': '1', 'x-token': '' })).toEqual({ executable: false })
    expect(decodeMetadata(flagOmitted, undefined)).toEqual({ executable: false })
  })
})
