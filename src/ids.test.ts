import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from './errors.js'
import { checkJobId, checkLocatorPrefix, checkSharedFileName, encodeBasename, keys, mintFileId, parseFileId, randomId } from './ids.js'

/** A key is safe when it cannot escape the store's root or break an object store's key rules. */
function expectSafeKey(key: string): void {
  expect(key.startsWith('/')).toBe(false)
  expect(key).not.toContain('//')
  expect(key).not.toContain('\\')
  expect(key).not.toContain('\0')
  for (const segment of key.split('/')) {
    expect(segment).not.toBe('')
    expect(segment).not.toBe('.')
    expect(segment).not.toBe('..')
    expect(segment).toMatch(/^[A-Za-z0-9._%-]+$/)
  }
}

const anyText = fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 40 }), fc.constantFrom('..', '.', '/', '../x', 'a/../b'))
const runs = { numRuns: 10_000 }

describe('IDs, names and keys (property-based, 10,000 cases each)', () => {
  it('any string is either a valid job ID with a safe key, or rejected with InvalidArgumentError', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        try {
          checkJobId(text)
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError)
          return
        }
        expectSafeKey(keys.job(text))
      }),
      runs,
    )
  })

  it('any string is either a valid file ID with a safe key, or rejected with InvalidArgumentError', () => {
    const fileIdLike = fc.tuple(fc.constantFrom(randomId(), '_', '..', ''), fc.constantFrom('c', 'k', 'x', '..'), fc.constantFrom(randomId(), 'a'), anyText)
      .map(([owner, mode, rand, base]) => `${owner}/${mode}/${rand}-${base}`)
    fc.assert(
      fc.property(fc.oneof(anyText, fileIdLike), (text) => {
        let key: string
        try {
          key = keys.file(text)
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError)
          return
        }
        expectSafeKey(key)
        expect(keys.fileIdOfKey(key)).toBe(text)
      }),
      runs,
    )
  })

  it('any basename is kept, encoded safely and decodably (or rejected when it has / or NUL)', () => {
    fc.assert(
      fc.property(anyText, (basename) => {
        let id: string
        try {
          id = mintFileId({ owner: randomId(), cleanup: true, basename })
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError)
          expect(basename.includes('/') || basename.includes('\0')).toBe(true)
          return
        }
        expectSafeKey(keys.file(id))
        const parsed = parseFileId(id)
        if (parsed.basename !== undefined) expect(basename.startsWith(parsed.basename)).toBe(true)
        else expect(encodeBasename(basename)).toBeUndefined()
      }),
      runs,
    )
  })

  it('any string is either a valid shared-file name with a safe key, or rejected', () => {
    fc.assert(
      fc.property(anyText, (name) => {
        try {
          checkSharedFileName(name)
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError)
          return
        }
        expectSafeKey(keys.shared(name))
      }),
      runs,
    )
  })

  it('any locator prefix is normalised to safe segments or rejected', () => {
    fc.assert(
      fc.property(anyText, (prefix) => {
        let normalised: string
        try {
          normalised = checkLocatorPrefix(prefix, 's3://b/x')
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidArgumentError)
          return
        }
        if (normalised !== '') expectSafeKey(normalised)
      }),
      runs,
    )
  })
})
