/**
 * Splits a simple-protocol Query string into its statements the way the server's lexer would:
 * semicolons inside quotes, quoted identifiers, dollar quotes, comments and parentheses do not
 * split. Used to give each statement of a multi-statement Query its own hook call and result
 * summary; the verdict itself is the parser's business (guardrails parse the whole text).
 *
 * Known gap: SQL-standard function bodies (`BEGIN ATOMIC ... END`) contain bare semicolons; such a
 * Query is split too finely. The relay tolerates a count that differs from the server's.
 */
export function splitStatements(text: string, standardConformingStrings = true): string[] {
  return splitStatementRanges(text, standardConformingStrings).map(({ start, end }) => text.slice(start, end))
}

/** Where each statement lies in `text` (trimmed, without its semicolon): for line numbers in errors. */
export function splitStatementRanges(text: string, standardConformingStrings = true): { start: number; end: number }[] {
  // Fast path for the common single statement (what drivers and pgbench send): nothing that
  // could split or hide a split, so the whole text, trimmed, is the statement.
  if (SIMPLE.test(text)) {
    const end = text.trimEnd().replace(/;$/, '').trimEnd().length
    const start = text.length - text.trimStart().length
    return start < end ? [{ start, end }] : []
  }
  const statements: { start: number; end: number }[] = []
  // Whether the piece since the last split holds anything but comments and whitespace, as this
  // scan saw it: a piece made only of those is not a statement (the server sends no
  // CommandComplete for it). Decided here, by the same scan that skips quotes and comments, never
  // by a second reading of the piece that could disagree with it.
  let code = false
  const push = (from: number, to: number): void => {
    if (!code) return
    const piece = text.slice(from, to)
    const leading = piece.length - piece.trimStart().length
    statements.push({ start: from + leading, end: from + piece.trimEnd().length })
  }
  let start = 0
  let depth = 0
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x2d /* - */ && text.charCodeAt(i + 1) === 0x2d) {
      // The server's lexer ends a line comment at a line feed or a carriage return.
      i += 2
      while (i < n && text.charCodeAt(i) !== 0x0a && text.charCodeAt(i) !== 0x0d) i++
      continue
    }
    if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2a /* * */) {
      i = skipBlockComment(text, i + 2)
      continue
    }
    if (isSpace(c)) {
      i++
      continue
    }
    if (c !== 0x3b /* ; */ || depth > 0) code = true
    if (c === 0x27 /* ' */) {
      const escapes = !standardConformingStrings || isEscapePrefix(text, i)
      i = skipQuoted(text, i + 1, 0x27, escapes)
    } else if (c === 0x22 /* " */) {
      i = skipQuoted(text, i + 1, 0x22, false)
    } else if (c === 0x24 /* $ */ && !isIdentifierChar(text.charCodeAt(i - 1))) {
      const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(text.slice(i, i + 66))
      if (tag === null) {
        i++
      } else {
        const end = text.indexOf(tag[0], i + tag[0].length)
        i = end < 0 ? n : end + tag[0].length
      }
    } else if (c === 0x28 /* ( */) {
      depth++
      i++
    } else if (c === 0x29 /* ) */) {
      if (depth > 0) depth--
      i++
    } else if (c === 0x3b /* ; */ && depth === 0) {
      push(start, i)
      code = false
      start = ++i
    } else {
      i++
    }
  }
  push(start, n)
  return statements
}

/** No quote, dollar, comment or parenthesis characters, and at most one trailing semicolon. */
const SIMPLE = /^[^;'"$\-/()]*;?\s*$/

/** Whitespace as the server's lexer reads it: space, tab, line feed, carriage return, form feed, vertical tab. */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d)
}

/** `E'...'` (and `e'...'`) strings take backslash escapes whatever standard_conforming_strings says. */
function isEscapePrefix(text: string, quote: number): boolean {
  const prefix = text.charCodeAt(quote - 1)
  return (prefix === 0x45 || prefix === 0x65) && !isIdentifierChar(text.charCodeAt(quote - 2))
}

function skipQuoted(text: string, i: number, quote: number, backslashEscapes: boolean): number {
  const n = text.length
  while (i < n) {
    const c = text.charCodeAt(i)
    if (backslashEscapes && c === 0x5c /* \ */) {
      i += 2
    } else if (c === quote) {
      if (text.charCodeAt(i + 1) === quote) i += 2
      else return i + 1
    } else {
      i++
    }
  }
  return n
}

function skipBlockComment(text: string, i: number): number {
  let depth = 1
  const n = text.length
  while (i < n && depth > 0) {
    if (text.charCodeAt(i) === 0x2f && text.charCodeAt(i + 1) === 0x2a) {
      depth++
      i += 2
    } else if (text.charCodeAt(i) === 0x2a && text.charCodeAt(i + 1) === 0x2f) {
      depth--
      i += 2
    } else {
      i++
    }
  }
  return i
}

function isIdentifierChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80
}
