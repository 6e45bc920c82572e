/**
 * What an audit record must never hold: the connection's own secrets (the credential canary, in
 * raw and encoded forms, anywhere in the text) and secret literals in statement text — the value
 * after PASSWORD or a secret-looking setting, connection-string and URL passwords, and well-known
 * token formats. Each redaction leaves `[REDACTED:<detector>]` and names its detector, using the
 * masking detector names where one fits.
 *
 * The scan is lexical: string literals are found as the server's lexer would find them (standard,
 * E'', U&'' and N'' strings, dollar quotes; comments and quoted identifiers skipped), so a literal
 * is judged by the words before it and by its content. Every literal argument of a pgcrypto
 * function that takes a password or key (`crypt`, `pgp_sym_encrypt`, `hmac`, ...) is a secret. A
 * literal that is not a secret itself is scanned again as SQL (a function or DO body, an EXECUTE
 * string), up to a few levels deep. The scan runs only when a cheap pre-check sees a hint of a
 * secret; ordinary statements cost one regular expression test.
 */

/** Redaction result: the text to record and the detectors that fired. */
export interface Redaction {
  text: string
  redacted: string[]
}

export interface Redactor {
  /** `backslashEscapes`: the session has standard_conforming_strings off, so '...' takes backslash escapes. */
  redact(text: string, options?: { backslashEscapes?: boolean }): Redaction
  /** Only the canary (the connection's secrets), for free text such as error messages. */
  redactSecrets(text: string): string
}

/** Anything that could start a secret: the scan runs only when this matches. */
const HINT = /pass|pwd|secret|token|key|cred|auth|crypt|pgp_|hmac|:\/\/|eyJ|AKIA|ASIA|AIza|gh[pousr]_|github_pat_|xox[abposr]-|sk_(?:live|test)_|-----BEGIN/i

/** Words that make the literal after them a secret (`PASSWORD 'x'`, `SET app.api_token = 'x'`, `OPTIONS (password 'x')`). */
const SECRET_WORD = /(?:^|[._])(?:pass(?:word|wd|phrase)?|pwd|secret|secrets|token|api_?key|apikey|private_?key|access_?key|secret_?key|client_?secret|credentials?|auth_?token)$/i
const SECRET_WORD_SUFFIX = /(?:password|passwd|secret|token|api_?key|private_?key|access_?key|credential)s?$/i

/** Token formats that are secrets wherever they appear. */
const TOKEN_PATTERNS: readonly { detector: string; pattern: RegExp }[] = [
  { detector: 'private-key', pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g },
  { detector: 'jwt', pattern: /\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g },
  { detector: 'cloud-keys', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { detector: 'cloud-keys', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/g },
  { detector: 'api-keys', pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk_(?:live|test)_[A-Za-z0-9]{16,})\b/g },
]

/** `scheme://user:PASSWORD@host` */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@'"]*:)([^\s@'"/]+)(@)/gi
/**
 * `password=VALUE` in a libpq connection string or similar key=value text: quoted (also with the
 * quotes doubled, as inside an SQL literal), or up to whitespace or a quote, as libpq reads an
 * unquoted value (`;`, `&` or `,` may be part of it: redacting past them is the safe side).
 */
const KEY_VALUE_PASSWORD = /\b((?:password|passwd|pwd|secret|token|api_?key|sslpassword)\s*[=:]\s*)(''(?:[^'\\]|\\.|'''')*''|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)/gi

/**
 * A redactor for one connection. `secrets` are the values the connection holds (its password,
 * header and environment secrets); each is also matched base64, base64url, hex, percent-encoded
 * and SQL-quoted.
 */
export function createRedactor(secrets: readonly string[] = []): Redactor {
  const forms = canaryForms(secrets)
  const redactSecrets = (text: string): string => {
    let out = text
    for (const form of forms) if (out.includes(form)) out = out.split(form).join('[REDACTED:credential]')
    return out
  }
  return {
    redactSecrets,
    redact(text, options) {
      const redacted: string[] = []
      const backslashEscapes = options?.backslashEscapes === true
      let out = text
      let canaried = redactSecrets(out)
      // The connection's secret spelt with escapes (E'\x70...', U&'\0070...') is still the secret.
      if (forms.length > 0 && out.includes('\\') && (backslashEscapes || ESCAPED_LITERAL.test(out))) canaried = redactEscapedSecrets(canaried, redactSecrets, backslashEscapes)
      if (canaried !== out) {
        redacted.push('credential')
        out = canaried
      }
      if (HINT.test(out)) out = redactSecretLiterals(out, redacted, backslashEscapes)
      return { text: out, redacted }
    },
  }
}

/** An E'' or U&'' literal may be present. */
const ESCAPED_LITERAL = /(?:^|[^A-Za-z0-9_])(?:[Ee]|[Uu]&)'/

/** Replaces each E'' and U&'' literal whose decoded value holds a secret. */
function redactEscapedSecrets(text: string, redactSecrets: (text: string) => string, backslashEscapes: boolean): string {
  let out = ''
  let last = 0
  for (const token of lexLiterals(text, backslashEscapes)) {
    if (token.kind !== 'literal' || (token.quoting !== 'escape' && token.quoting !== 'unicode')) continue
    const content = text.slice(token.contentStart, token.contentEnd)
    const decoded = token.quoting === 'escape' ? decodeEscapeString(content) : decodeUnicodeString(content)
    if (redactSecrets(decoded) === decoded) continue
    out += `${text.slice(last, token.contentStart)}[REDACTED:credential]`
    last = token.contentEnd
  }
  return out + text.slice(last)
}

/** The value of an E'' string's content, as PostgreSQL reads it: `\\x` and octal escapes are bytes of UTF-8. */
function decodeEscapeString(content: string): string {
  const parts: Buffer[] = []
  const escape = /''|\\(?:x([0-9A-Fa-f]{1,2})|([0-7]{1,3})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([\s\S]))/g
  let last = 0
  for (let match = escape.exec(content); match !== null; match = escape.exec(content)) {
    parts.push(Buffer.from(content.slice(last, match.index), 'utf8'))
    last = match.index + match[0].length
    const [all, hex, octal, u4, u8, c] = match
    if (all === "''") parts.push(Buffer.from("'"))
    else if (hex !== undefined || octal !== undefined) parts.push(Buffer.of(hex !== undefined ? Number.parseInt(hex, 16) : Number.parseInt(octal!, 8) & 0xff))
    else if (c !== undefined) parts.push(Buffer.from(({ b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' } as Record<string, string>)[c] ?? c, 'utf8'))
    else {
      const code = Number.parseInt((u4 ?? u8)!, 16)
      if (code <= 0x10ffff) parts.push(Buffer.from(String.fromCodePoint(code), 'utf8'))
    }
  }
  parts.push(Buffer.from(content.slice(last), 'utf8'))
  return Buffer.concat(parts).toString('utf8')
}

/** The value of a U&'' string's content (the default escape character). */
function decodeUnicodeString(content: string): string {
  return content.replace(/''|\\(?:\+([0-9A-Fa-f]{6})|([0-9A-Fa-f]{4})|\\)/g, (all, u6?: string, u4?: string) => {
    if (all === "''") return "'"
    if (u6 === undefined && u4 === undefined) return '\\'
    const code = Number.parseInt((u6 ?? u4)!, 16)
    return code <= 0x10ffff ? String.fromCodePoint(code) : ''
  })
}

function canaryForms(secrets: readonly string[]): string[] {
  const forms = new Set<string>()
  for (const secret of secrets) {
    if (secret === '') continue
    const bytes = Buffer.from(secret, 'utf8')
    for (const form of [
      secret,
      secret.replaceAll("'", "''"),
      encodeURIComponent(secret),
      bytes.toString('base64'),
      bytes.toString('base64').replace(/=+$/, ''),
      bytes.toString('base64url'),
      bytes.toString('hex'),
      bytes.toString('hex').toUpperCase(),
      JSON.stringify(secret).slice(1, -1),
    ]) {
      if (form !== '') forms.add(form)
    }
  }
  // Longest first, so a form that contains another is replaced whole.
  return [...forms].sort((a, b) => b.length - a.length)
}

/** pgcrypto functions that take a password or key: every literal among their arguments is a secret. */
const SECRET_FUNCTION = /^(?:crypt|pgp_sym_(?:en|de)crypt(?:_bytea)?|pgp_pub_decrypt(?:_bytea)?|hmac|(?:en|de)crypt(?:_iv)?)$/i
/** A `format()` template that puts an argument where a password goes: `'ALTER ROLE %I PASSWORD %L'`. */
const SECRET_TEMPLATE = /(?:pass(?:word|wd)?|secret|token|api_?key)\s*(?:=\s*)?%[-0-9*$]*[ILs]/i
/** How deep literals inside literals are scanned again as SQL (a DO body's EXECUTE strings, and strings in those). */
const MAX_NESTING = 4

function redactSecretLiterals(text: string, redacted: string[], backslashEscapes: boolean): string {
  const note = (detector: string): void => {
    if (!redacted.includes(detector)) redacted.push(detector)
  }
  // Outside literals too (comments, identifiers): only the unmistakable formats.
  return redactContent(scanSql(text, note, 0, backslashEscapes).text, note, false)
}

/**
 * Redacts the secret literals of SQL text. Returns the text and whether it ends where a secret
 * literal would follow (`'ALTER ROLE x PASSWORD ' || quote_literal('pw')`), so the text around a
 * literal that held this SQL can go on judging.
 */
function scanSql(text: string, note: (detector: string) => void, nesting: number, backslashEscapes = false): { text: string; secretNext: boolean } {
  let out = ''
  let last = 0
  /** The last two words (identifiers, keywords) before the current position, ignoring `=`, `TO`, `:=`, `,`, `(` and `||`. */
  let words: string[] = []
  let parens = 0
  /** The paren depth of the innermost call whose literal arguments are all secret (pgcrypto), if any. */
  let secretCall: number | undefined
  /** A `format(` call: its depth, and whether its template was seen yet. */
  let formatCall: { depth: number; template: boolean } | undefined
  let previousWord: string | undefined
  /**
   * The last token was a secret literal: a literal right after it is the same value, continued
   * (the server joins literals separated by whitespace with a line break: `'abc'\n'def'`).
   */
  let continued = false
  const secretContext = (): boolean => words.some((word) => SECRET_WORD.test(word) || SECRET_WORD_SUFFIX.test(word))
  /** The last token was `=`, `:=` or `TO`: a value may follow. */
  let assigning = false
  /**
   * A bare word assigned to a secret name (`SET app.password = hunter2`), redacted unless the next
   * token opens a call (`password = crypt(...)`: a function name).
   */
  let bareValue: { start: number; end: number } | undefined
  const redactBareValue = (): void => {
    if (bareValue === undefined) return
    out += `${text.slice(last, bareValue.start)}[REDACTED:secret-assignment]`
    last = bareValue.end
    note('secret-assignment')
    bareValue = undefined
  }
  for (const token of lexLiterals(text, backslashEscapes)) {
    const afterSecret = continued
    continued = false
    const assigned = assigning
    assigning = false
    if (bareValue !== undefined) {
      if (token.kind === 'other' && token.text === '(') bareValue = undefined
      else redactBareValue()
    }
    if (token.kind === 'word') {
      const word = token.text.toLowerCase()
      previousWord = word.slice(word.lastIndexOf('.') + 1)
      if (word === 'to') assigning = true
      if (word === 'to' || word === 'with' || word === 'encrypted') continue
      if (assigned && secretContext()) {
        bareValue = { start: token.start, end: token.end }
        words = []
        continue
      }
      words = [words.at(-1) ?? '', word]
      continue
    }
    const called = previousWord
    previousWord = undefined
    if (token.kind === 'other') {
      if (token.text === '(') {
        parens++
        if (secretCall === undefined && called !== undefined && SECRET_FUNCTION.test(called)) secretCall = parens
        else if (called === 'format') formatCall = { depth: parens, template: false }
      } else if (token.text === ')') {
        if (secretCall === parens) secretCall = undefined
        if (formatCall?.depth === parens) formatCall = undefined
        parens = Math.max(0, parens - 1)
      }
      if (token.text === '=') assigning = true
      if (!/^[=:,(|]+$/.test(token.text)) words = []
      continue
    }
    // A literal: its content starts after the opening quote or tag.
    const content = text.slice(token.contentStart, token.contentEnd)
    let replacement: string | undefined
    let secretNext = false
    if (afterSecret || secretCall !== undefined || secretContext()) {
      replacement = '[REDACTED:secret-assignment]'
      note('secret-assignment')
      continued = true
    } else {
      replacement = redactContent(content, note, true)
      if (replacement === content && nesting < MAX_NESTING && HINT.test(content)) {
        // The literal may itself be SQL: a function or DO body, an EXECUTE string.
        const inner = scanLiteralAsSql(content, token.quoting, note, nesting + 1)
        replacement = inner.text
        secretNext = inner.secretNext
      }
      if (formatCall !== undefined && formatCall.depth === parens && !formatCall.template) {
        formatCall.template = true
        if (SECRET_TEMPLATE.test(content)) secretCall = parens
      }
      if (replacement === content) replacement = undefined
    }
    if (replacement !== undefined) {
      out += text.slice(last, token.contentStart) + replacement
      last = token.contentEnd
    }
    if (secretNext) words = ['', 'password']
    else if (replacement !== undefined) words = []
    else {
      // A literal naming a setting counts as a word: set_config('app.api_key', 'x', false).
      words = /^[A-Za-z_][A-Za-z0-9_.]{0,62}$/.test(content) ? [words.at(-1) ?? '', content.toLowerCase()] : []
    }
  }
  redactBareValue()
  out += text.slice(last)
  return { text: out, secretNext: secretContext() }
}

/**
 * Scans a literal's content as SQL. Quotes inside a string literal are doubled (`''`, or `\'` in an
 * E'' string), so the content is unescaped first and escaped again after: a redaction never
 * changes where the literal ends. An E'' string comes back with `''` for each quote.
 */
function scanLiteralAsSql(content: string, quoting: Quoting, note: (detector: string) => void, nesting: number): { text: string; secretNext: boolean } {
  if (quoting === 'dollar') return scanSql(content, note, nesting)
  const sql = quoting === 'escape' ? content.replace(/\\(.)|''/gs, (all, c: string | undefined) => (c === "'" || all === "''" ? "'" : all)) : content.replaceAll("''", "'")
  const inner = scanSql(sql, note, nesting)
  if (inner.text === sql) return { text: content, secretNext: inner.secretNext }
  return { text: inner.text.replaceAll("'", "''"), secretNext: inner.secretNext }
}

function redactContent(content: string, note: (detector: string) => void, keyValues: boolean): string {
  let out = content
  for (const { detector, pattern } of TOKEN_PATTERNS) {
    const next = out.replace(pattern, `[REDACTED:${detector}]`)
    if (next !== out) {
      note(detector)
      out = next
    }
  }
  let next = out.replace(URL_PASSWORD, (_, before: string, value: string, at: string) => (value.includes('[REDACTED:') ? `${before}${value}${at}` : `${before}[REDACTED:dsn-password]${at}`))
  if (next !== out) {
    if (next.includes('[REDACTED:dsn-password]')) note('dsn-password')
    out = next
  }
  if (!keyValues) return out
  next = out.replace(KEY_VALUE_PASSWORD, (_, before: string, value: string) => (value.includes('[REDACTED:') ? `${before}${value}` : `${before}[REDACTED:dsn-password]`))
  if (next !== out) {
    if (next.includes('[REDACTED:dsn-password]')) note('dsn-password')
    out = next
  }
  return out
}

type LexToken =
  | { kind: 'word'; text: string; start: number; end: number }
  | { kind: 'other'; text: string }
  | { kind: 'literal'; contentStart: number; contentEnd: number; quoting: Quoting }

/**
 * How a literal's content is written: quotes doubled (standard, `N''`), also Unicode escapes
 * (`U&''`), quotes doubled or backslashed and backslash escapes (`E''`), or verbatim (dollar quotes).
 */
type Quoting = 'standard' | 'unicode' | 'escape' | 'dollar'

/**
 * The words, punctuation and string literals of SQL text, skipping whitespace, comments and
 * quoted identifiers (a quoted identifier counts as a word). Unterminated literals run to the end.
 */
function* lexLiterals(text: string, backslashEscapes = false): Generator<LexToken> {
  const n = text.length
  let i = 0
  while (i < n) {
    const c = text[i]!
    if (/\s/.test(c)) {
      i++
    } else if (c === '-' && text[i + 1] === '-') {
      // As in the server's lexer, a line comment ends at a line feed or a carriage return.
      i += 2
      while (i < n && text[i] !== '\n' && text[i] !== '\r') i++
    } else if (c === '/' && text[i + 1] === '*') {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        if (text[i] === '/' && text[i + 1] === '*') {
          depth++
          i += 2
        } else if (text[i] === '*' && text[i + 1] === '/') {
          depth--
          i += 2
        } else i++
      }
    } else if (c === '"') {
      let j = i + 1
      while (j < n) {
        if (text[j] === '"') {
          if (text[j + 1] === '"') j += 2
          else break
        } else j++
      }
      yield { kind: 'word', text: text.slice(i + 1, j).replaceAll('""', '"'), start: i, end: Math.min(j + 1, n) }
      i = j + 1
    } else if (c === "'" || (!isWordChar(text[i - 1]) && stringPrefix(text, i) > 0)) {
      // A string, or one with a prefix: E'' (backslash escapes), U&'' (Unicode escapes), N'' (national).
      const prefix = c === "'" ? 0 : stringPrefix(text, i)
      // With standard_conforming_strings off every string but U&'' takes backslash escapes.
      const escapes = (prefix === 1 && (c === 'E' || c === 'e')) || (backslashEscapes && prefix !== 2)
      const start = i + prefix + 1
      let j = start
      while (j < n) {
        if (escapes && text[j] === '\\') j += 2
        else if (text[j] === "'") {
          if (text[j + 1] === "'") j += 2
          else break
        } else j++
      }
      yield { kind: 'literal', contentStart: start, contentEnd: Math.min(j, n), quoting: escapes ? 'escape' : prefix === 2 ? 'unicode' : 'standard' }
      i = j + 1
    } else if (c === '$' && !isWordChar(text[i - 1])) {
      const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(text.slice(i, i + 66))
      if (tag === null) {
        yield { kind: 'other', text: c }
        i++
        continue
      }
      const start = i + tag[0].length
      const close = text.indexOf(tag[0], start)
      const end = close < 0 ? n : close
      yield { kind: 'literal', contentStart: start, contentEnd: end, quoting: 'dollar' }
      i = close < 0 ? n : close + tag[0].length
    } else if (isWordChar(c)) {
      let j = i + 1
      while (j < n && (isWordChar(text[j]) || text[j] === '.')) j++
      yield { kind: 'word', text: text.slice(i, j), start: i, end: j }
      i = j
    } else {
      yield { kind: 'other', text: c }
      i++
    }
  }
}

/** The length of a string-literal prefix at `i` (`E'`, `N'`, `U&'`, any case), or 0. */
function stringPrefix(text: string, i: number): number {
  const c = text[i]
  if ((c === 'E' || c === 'e' || c === 'N' || c === 'n') && text[i + 1] === "'") return 1
  if ((c === 'U' || c === 'u') && text[i + 1] === '&' && text[i + 2] === "'") return 2
  return 0
}

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_\u0080-\uffff]/.test(c)
}
