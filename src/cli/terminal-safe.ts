/**
 * Terminal safety: nothing the CLI prints can drive the terminal or disguise text. Job names, log messages, IDs,
 * locators and error messages come from whoever wrote to the store or typed the command; printed raw, an escape
 * sequence clears the screen or retitles the window, a newline or a carriage return forges a row of `jobs`, a bidi
 * override shows text backwards. Every line of human output goes through {@link escapeForTerminal} (see
 * `output.ts`), which escapes these characters visibly:
 *
 * - C0 controls (U+0000–U+001F: `\n`, `\r`, `\t`, else `\xHH`), DEL (`\x7f`) and C1 controls (U+0080–U+009F,
 *   `\xHH`: U+009B is a CSI on some terminals, U+0085 a newline);
 * - format characters (Unicode category Cf: the bidi embeddings, overrides and isolates U+202A–U+202E and
 *   U+2066–U+2069, the marks U+200E/U+200F/U+061C, zero-width characters U+200B–U+200D, U+2060–U+2064, U+FEFF,
 *   tag characters…) and the line and paragraph separators U+2028/U+2029, as `\uHHHH` or `\u{HHHHH}`;
 * - lone surrogates (invalid UTF-16, which would reach the terminal as U+FFFD), as `\uHHHH`;
 * - and a backslash as `\\`, so that every backslash shown starts an escape and no text can pass for another: the
 *   escaping is reversible.
 *
 * Everything else (letters of any script, emoji, punctuation, spaces) is shown as it is. `--json` output stays
 * exact: {@link escapeJsonForTerminal} only writes the same characters as JSON `\uHHHH` escapes, which parse back
 * to the same strings. `cat` alone writes raw bytes: a file's content, like `cat` itself.
 */

/** What {@link escapeForTerminal} escapes: the characters above, and a backslash. */
const ESCAPED = /[\\\x00-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u
const ESCAPED_ALL = new RegExp(ESCAPED.source, 'gu')
/** Controls and invisible characters but a newline (text whose layout is the CLI's own). */
const CONTROL_BUT_NEWLINE = /[\x00-\x09\x0b-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u
const CONTROL_BUT_NEWLINE_ALL = new RegExp(CONTROL_BUT_NEWLINE.source, 'gu')
/** Controls and invisible characters, a newline included. */
const CONTROL = /[\x00-\x1f\x7f-\x9f\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u

const NAMED: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' }

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, '0')
}

/** The visible escape of one character (a lone surrogate is one UTF-16 code unit). */
function escapeCharacter(ch: string): string {
  const named = NAMED[ch]
  if (named !== undefined) return named
  const code = ch.codePointAt(0) as number
  if (code <= 0xff) return `\\x${hex(code, 2)}`
  if (code <= 0xffff) return `\\u${hex(code, 4)}`
  return `\\u{${hex(code, 5)}}`
}

/**
 * `text` as one line fit for a terminal: controls, DEL, C1 controls, format characters (bidi, zero-width, tags),
 * line separators and lone surrogates escaped as `\n`, `\r`, `\t`, `\xHH`, `\uHHHH` or `\u{HHHHH}`, and a backslash
 * as `\\`. Reversible, so different texts never look alike; printable text is unchanged.
 */
export function escapeForTerminal(text: string): string {
  return ESCAPED.test(text) ? text.replace(ESCAPED_ALL, escapeCharacter) : text
}

/**
 * Text whose layout (its newlines) is the CLI's own or its parser's (help, usage errors), made fit for a terminal:
 * every other control or invisible character escaped as by {@link escapeForTerminal}; backslashes are left alone
 * (this text is ours, not data to tell apart). User input quoted in it is escaped whole first, with
 * {@link escapeUserStrings}, so that a newline in an argument cannot start a line of its own.
 */
export function escapeKeepingNewlines(text: string): string {
  return CONTROL_BUT_NEWLINE.test(text) ? text.replace(CONTROL_BUT_NEWLINE_ALL, escapeCharacter) : text
}

/**
 * Replaces in `text` each of `userStrings` (command-line arguments, say) that holds a control or invisible
 * character, a newline included, by its {@link escapeForTerminal} form. For messages composed by code that is not
 * ours (the argument parser's), which quote the user's input among lines of their own.
 */
export function escapeUserStrings(text: string, userStrings: Iterable<string>): string {
  const hostile = [...new Set(userStrings)].filter((s) => CONTROL.test(s)).sort((a, b) => b.length - a.length)
  let out = text
  for (const s of hostile) out = out.split(s).join(escapeForTerminal(s))
  return out
}

/**
 * JSON text (from `JSON.stringify`) fit for a terminal and still exact: JSON already escapes C0 controls in
 * strings, but not DEL, C1 controls, format characters or line separators; those are written as JSON `\uHHHH`
 * escapes (a surrogate pair for characters beyond U+FFFF), which parse back to the same strings. The layout's
 * newlines stay.
 */
export function escapeJsonForTerminal(json: string): string {
  if (!CONTROL_BUT_NEWLINE.test(json)) return json
  return json.replace(CONTROL_BUT_NEWLINE_ALL, (ch) => {
    let out = ''
    for (let i = 0; i < ch.length; i++) out += `\\u${hex(ch.charCodeAt(i), 4)}`
    return out
  })
}

/**
 * A multi-line message (a log message) as lines fit for a terminal: each line escaped by
 * {@link escapeForTerminal}, the lines after the first indented by `indent`, and a space that starts the first
 * line escaped (`\x20`). So every line that is not indented starts a message: a message can neither forge the start
 * of another nor pass for the continuation of the one before.
 */
export function escapeMessageLines(text: string, indent = '  '): string[] {
  return text.split('\n').map((line, i) => {
    const escaped = escapeForTerminal(line)
    if (i > 0) return `${indent}${escaped}`
    return escaped.startsWith(' ') ? `\\x20${escaped.slice(1)}` : escaped
  })
}

/** The length of `text` once escaped (for table columns). */
export function terminalLength(text: string): number {
  return escapeForTerminal(text).length
}

/** `text` padded with spaces to `width` columns of escaped text (see {@link terminalLength}). */
export function padForTerminal(text: string, width: number): string {
  const length = terminalLength(text)
  return length >= width ? text : text + ' '.repeat(width - length)
}
