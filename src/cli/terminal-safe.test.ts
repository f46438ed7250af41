/**
 * The CLI's terminal escaping (terminal-safe.ts), property-based: whatever the text, the escaped form holds no
 * character a terminal acts on or that hides text (C0, DEL, C1, bidi controls, invisible format characters, line
 * separators, lone surrogates), and it decodes back to the original, so different inputs never look alike.
 * The CLI's own output, end to end, is tested in cli.test.ts ("terminal safety").
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  escapeForTerminal,
  escapeJsonForTerminal,
  escapeKeepingNewlines,
  escapeMessageLines,
  escapeUserStrings,
  padForTerminal,
  terminalLength,
} from './terminal-safe.js'

const runs = { numRuns: 10_000 }

/** What must never reach a terminal raw (a newline only where the function keeps the layout). */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u
const UNSAFE_BUT_NEWLINE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u

/** Any UTF-16 code unit (lone surrogates included), the characters of interest, and backslash sequences. */
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((n) => String.fromCharCode(n))
const interesting = fc.constantFrom(
  '\x1b', '\x1b[2J', '\x07', '\n', '\r', '\t', '\0', '\x7f', '\u0085', '\u009b', '\u202a', '\u202e', '\u2066', '\u2069',
  '\u200b', '\u200e', '\u2028', '\u2029', '\ufeff', '\u{e0041}', '\ud800', '\udfff', '😀', 'é', '\\', '\\x1b', '\\u202e',
  '\\n', '\\\\', 'x', ' ',
)
const hostileText = fc.oneof(
  fc.string({ unit: codeUnit, maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(interesting, { maxLength: 12 }).map((parts) => parts.join('')),
)

/** The inverse of escapeForTerminal, written from its documented rules (the test's own decoder). */
function unescape(text: string): string {
  return text.replace(/\\(?:x([0-9a-f]{2})|u\{([0-9a-f]+)\}|u([0-9a-f]{4})|(.))/gsu, (all, x, braced, u, single) => {
    if (x !== undefined) return String.fromCharCode(parseInt(x, 16))
    if (braced !== undefined) return String.fromCodePoint(parseInt(braced, 16))
    if (u !== undefined) return String.fromCharCode(parseInt(u, 16))
    const simple: Record<string, string> = { '\\': '\\', n: '\n', r: '\r', t: '\t' }
    const decoded = simple[single as string]
    if (decoded === undefined) throw new Error(`not an escape of escapeForTerminal: ${all}`)
    return decoded
  })
}

describe('terminal escaping of the CLI', () => {
  it('escapeForTerminal leaves no control, bidi, invisible or lone surrogate character, and decodes back to its input', () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        const escaped = escapeForTerminal(text)
        expect(escaped).not.toMatch(UNSAFE)
        expect(unescape(escaped)).toBe(text)
      }),
      runs,
    )
  })

  it('escapeForTerminal escapes a literal backslash too (so text never looks like an escape) and shows plain text as is', () => {
    expect(escapeForTerminal('\x1b')).not.toBe(escapeForTerminal('\\x1b'))
    // Printable text, non-ASCII letters and emoji included, is shown as it is.
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (text) => {
        fc.pre(!/[\\\p{Cf}\p{Zl}\p{Zp}\p{Cc}]/u.test(text))
        expect(escapeForTerminal(text)).toBe(text)
      }),
      runs,
    )
    expect(escapeForTerminal('a\x1bb\\x1b\u202e\u009b\n\t\r\ud800\u{e0041}')).toBe(String.raw`a\x1bb\\x1b\u202e\x9b\n\t\r\ud800\u{e0041}`)
  })

  it('escapeKeepingNewlines escapes the same characters but newlines; escapeUserStrings escapes the user strings it is given whole', () => {
    fc.assert(
      fc.property(hostileText, hostileText, (text, user) => {
        expect(escapeKeepingNewlines(text)).not.toMatch(UNSAFE_BUT_NEWLINE)
        const escaped = escapeKeepingNewlines(escapeUserStrings(`${text} '${user}' ${text}`, [user]))
        expect(escaped).not.toMatch(UNSAFE_BUT_NEWLINE)
        // The user's string is shown escaped whole: its newlines cannot start a line of their own.
        if (UNSAFE.test(user)) expect(escaped).toContain(escapeForTerminal(user))
      }),
      runs,
    )
    expect(escapeKeepingNewlines(escapeUserStrings("error: unknown command 'x\x1b]0;t\x07\nforged'\nhint\n", ['x\x1b]0;t\x07\nforged']))).toBe(
      String.raw`error: unknown command 'x\x1b]0;t\x07\nforged'` + '\nhint\n',
    )
  })

  it('escapeJsonForTerminal keeps JSON exact: the same value, with no raw control, bidi or invisible character', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.array(hostileText, { maxLength: 4 }), (value, texts) => {
        const doc = { value, texts, [texts.join('')]: texts }
        const json = escapeJsonForTerminal(JSON.stringify(doc, null, 2))
        expect(json).not.toMatch(UNSAFE_BUT_NEWLINE)
        expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(doc)))
      }),
      runs,
    )
  })

  it('escapeMessageLines: one escaped line per line, the first never starting with a space, the others indented; reversible', () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        const [first, ...rest] = escapeMessageLines(text)
        for (const line of [first as string, ...rest]) expect(line).not.toMatch(UNSAFE)
        expect(first).not.toMatch(/^ /)
        for (const line of rest) expect(line.startsWith('  ')).toBe(true)
        const decoded = [first as string, ...rest.map((line) => line.slice(2))].map(unescape)
        expect(decoded.join('\n')).toBe(text)
      }),
      runs,
    )
  })

  it('terminalLength and padForTerminal measure the escaped form, so columns line up', () => {
    fc.assert(
      fc.property(hostileText, fc.nat(60), (text, width) => {
        expect(terminalLength(text)).toBe(escapeForTerminal(text).length)
        const padded = padForTerminal(text, width)
        expect(escapeForTerminal(padded).length).toBe(Math.max(width, terminalLength(text)))
      }),
      runs,
    )
  })
})
