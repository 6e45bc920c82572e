/**
 * The credential canary: the connection's own secrets, found in every form a query can turn them
 * into. For a secret S (its UTF-8 bytes) the literal forms are:
 *
 * - S itself and S reversed by character, in any ASCII case (`upper(x)`, `reverse(x)`), and S
 *   upper- and lower-cased by Unicode rules when it has non-ASCII letters;
 * - S as bytea's escape output writes it (`\ooo` for bytes outside printable ASCII);
 * - hex of S, either case (`encode(x, 'hex')`, `x::bytea`);
 * - base64 and base64url of S at each of the three byte offsets S can have inside a longer
 *   encoded value: only the characters that depend on S alone;
 * - any run of at least {@link FRAGMENT_MIN} bytes of S (any case): a secret truncated to a
 *   63-byte identifier, or cut by `substr`, still does not get out.
 *
 * They are looked for in the value as it is and in decoded views of it, so escaping does not hide
 * them: percent-decoded (URL encoders, each leaving other characters literal; `+` as a space for
 * form encoding), backslash-unescaped (JSON, array elements: `\"`, `\\`, `\n`, `\u00e9`),
 * un-doubled (`""`, `''`, records' `\\`), and with line breaks removed for the encoded forms
 * (PostgreSQL's base64 wraps at 76, `xxd -p` at 60). Views are built only when the value holds
 * the character that calls for them, and the search is `indexOf` over latin1 strings.
 *
 * For the prefilter each form declares a case-folded 4-byte anchor, chosen inside a run of
 * characters that no escape, encoder (but `%HH`, which raises the prefilter itself) or join
 * separator changes, so a form split over the columns of a row still shows its anchor in the
 * concatenation of the cells; an encoding that may be wrapped over lines declares one anchor per
 * 16 characters, so a line break cannot hide them all.
 */
import type { Report } from './detectors.js'

/** What a canary finding becomes; the canary's strategy is always redact. */
export const CANARY_LABEL = '[CREDENTIAL]'
/** Shortest run of a secret's bytes that is masked on its own. */
export const FRAGMENT_MIN = 12
/** Anchors are this many bytes: the prefilter hashes a rolling window of four. */
export const ANCHOR_LENGTH = 4

/**
 * Separators a client puts between the cells of a row (CSV, TSV, psql's `|`, spaces): a secret
 * containing one may be split exactly there, so rows are also checked joined with it.
 */
export const JOIN_SEPARATORS = [0x2c /* , */, 0x09 /* \t */, 0x7c /* | */, 0x3b /* ; */, 0x20 /* space */] as const

/** Bytes that have spellings other than `%HH`, or that a join may split at: anchors avoid them. */
const UNSTABLE = new Set([0x20, 0x22, 0x25, 0x27, 0x2b, 0x2c, 0x2f, 0x3b, 0x5c, 0x7c, 0x7f])

const HEX = '0123456789abcdef'
const PERCENT = 0x25
const PLUS = 0x2b
const BACKSLASH = 0x5c
const QUOTE = 0x22
const APOSTROPHE = 0x27

/** A literal form: a latin1 string (folded when `caseless`). */
interface Literal {
  readonly text: string
  readonly caseless: boolean
  /** An encoding (hex, base64): line breaks may have been inserted into it. */
  readonly wraps: boolean
}

/** A value, or a decoded view of it, with where each of its bytes came from. */
interface View {
  readonly bytes: Buffer
  /** Original offset of the escape that produced byte i; undefined for the value itself. */
  readonly starts?: Int32Array
  /** Original offset just after the escape that produced byte i. */
  readonly ends?: Int32Array
}

/** One spelling of one byte of a form, for the stream's "could this be the start" check. */
interface Unit {
  readonly spellings: readonly string[]
}

/** A form as a sequence of units. */
interface Form {
  readonly units: readonly Unit[]
  readonly caseless: boolean
  /** A line break may sit between any two units. */
  readonly lineBreaks: boolean
}

export class Canary {
  /** Case-folded 4-byte anchors, as latin1 strings. */
  readonly anchors: readonly string[]
  /** A form without a usable anchor exists (a very short or odd secret): check every value. */
  readonly always: boolean
  /** Separators that occur in some secret: rows are also checked joined with these. */
  readonly separators: readonly number[]
  private readonly literals: readonly Literal[]
  private readonly fragments: readonly Fragment[]
  /** A secret holds a space: `+` may stand for it. */
  private readonly spaces: boolean
  /** For the stream: every form as units, the folded secrets, the longest spelling of a form. */
  private readonly forms: readonly Form[]
  private readonly folded: readonly string[]
  private readonly longest: number

  private constructor(secrets: readonly Buffer[]) {
    const literals: Literal[] = []
    const forms: Form[] = []
    const anchors = new Set<string>()
    let always = false
    const stableRaw = (code: number): boolean => !UNSTABLE.has(code) && code >= 0x20
    const add = (text: string, caseless: boolean, wraps: boolean, grams: readonly string[] | undefined): void => {
      literals.push({ text: caseless ? fold(text) : text, caseless, wraps })
      if (grams === undefined) always = true
      else for (const gram of grams) anchors.add(gram)
    }
    const one = (gram: string | undefined): string[] | undefined => (gram === undefined ? undefined : [gram])

    const fragments: Fragment[] = []
    for (const secret of secrets) {
      const raw = secret.toString('latin1')
      add(raw, true, false, one(bestAnchor(raw, stableRaw)))
      forms.push({ units: [...raw].map(rawUnit), caseless: true, lineBreaks: false })

      const reversed = Buffer.from([...secret.toString('utf8')].reverse().join(''), 'utf8').toString('latin1')
      if (reversed !== raw) {
        add(reversed, true, false, one(bestAnchor(reversed, stableRaw)))
        forms.push({ units: [...reversed].map(rawUnit), caseless: true, lineBreaks: false })
      }

      if (secret.some((byte) => byte >= 0x80)) {
        // A non-ASCII letter changes case only under Unicode rules (`upper(x)` in a UTF-8 database).
        const text = secret.toString('utf8')
        for (const cased of new Set([text.toUpperCase(), text.toLowerCase()])) {
          const bytes = Buffer.from(cased, 'utf8').toString('latin1')
          if (fold(bytes) === fold(raw)) continue
          add(bytes, true, false, one(bestAnchor(bytes, stableRaw)))
          forms.push({ units: [...bytes].map(rawUnit), caseless: true, lineBreaks: false })
        }
      }
      if (secret.some((byte) => byte < 0x20 || byte >= 0x7f)) {
        // bytea's escape output (`bytea_output = escape`, `encode(x, 'escape')`): \ooo for those bytes.
        const escaped = byteaEscape(secret)
        add(escaped, true, false, one(bestAnchor(escaped, stableRaw)))
        forms.push({ units: [...escaped].map((char) => ({ spellings: [char] })), caseless: true, lineBreaks: false })
      }

      const hex = secret.toString('hex')
      add(hex, true, true, wrappedAnchors(hex))
      forms.push({ units: [...hex].map((char) => ({ spellings: [char] })), caseless: true, lineBreaks: true })

      for (let offset = 0; offset < 3; offset++) {
        const stable = stableBase64(secret, offset)
        if (stable.length < ANCHOR_LENGTH) {
          always = true
          continue
        }
        const url = stable.replaceAll('+', '-').replaceAll('/', '_')
        add(stable, false, true, wrappedAnchors(stable))
        if (url !== stable) add(url, false, true, wrappedAnchors(url))
        const units = [...stable].map((char) => ({ spellings: char === '+' ? ['+', '-'] : char === '/' ? ['/', '_'] : [char] }))
        forms.push({ units, caseless: false, lineBreaks: true })
      }

      if (secret.length > FRAGMENT_MIN) {
        const fragment = new Fragment(secret)
        fragments.push(fragment)
        for (const gram of fragment.anchors) anchors.add(gram)
      }
      if (secret.length < ANCHOR_LENGTH) always = true
    }
    this.anchors = [...anchors]
    this.always = always
    this.separators = JOIN_SEPARATORS.filter((separator) => secrets.some((secret) => secret.includes(separator)))
    this.literals = literals
    this.fragments = fragments
    this.spaces = secrets.some((secret) => secret.includes(0x20))
    this.forms = forms
    this.folded = secrets.map((secret) => fold(secret.toString('latin1')))
    this.longest = Math.max(
      ...forms.map((form) => form.units.reduce((sum, unit) => sum + Math.max(...unit.spellings.map((spelling) => spelling.length)) + (form.lineBreaks ? 2 : 0), 0)),
    )
  }

  /** A canary over `secrets` (empty ones ignored), or undefined when there is none. */
  static create(secrets: readonly string[]): Canary | undefined {
    const values = [...new Set(secrets.filter((secret) => secret.length > 0))].map((secret) => Buffer.from(secret, 'utf8'))
    return values.length === 0 ? undefined : new Canary(values)
  }

  /** Reports every form and fragment in `bytes`, and in its decoded views. */
  find(bytes: Buffer, report: Report): void {
    const views: View[] = [{ bytes }]
    if (bytes.includes(PERCENT)) {
      views.push(decodeView(bytes, percentDecode(false)))
      if (this.spaces && bytes.includes(PLUS)) views.push(decodeView(bytes, percentDecode(true)))
    } else if (this.spaces && bytes.includes(PLUS)) {
      views.push(decodeView(bytes, percentDecode(true)))
    }
    if (bytes.includes(BACKSLASH)) views.push(decodeView(bytes, unescapeBackslash))
    if (bytes.includes(BACKSLASH) || hasDoubled(bytes)) views.push(decodeView(bytes, undouble))
    for (const view of views) {
      const folded = this.search(view, view.bytes, undefined, report)
      if (view.bytes.includes(0x0a) || view.bytes.includes(0x0d)) this.search(view, ...withoutLineBreaks(view.bytes), report)
      for (const fragment of this.fragments) {
        fragment.find(folded, view.starts === undefined ? report : (start, end) => report(view.starts![start]!, view.ends![end - 1]!))
      }
    }
  }

  /**
   * Where the end of `text` (latin1) could be the beginning of a form or a run of a secret's bytes
   * that more text would complete: the offset a stream must hold back from (`text.length` when none).
   */
  pendingFrom(text: string): number {
    for (let at = Math.max(0, text.length - this.longest); at < text.length; at++) {
      for (const form of this.forms) if (continues(form, text, 0, at)) return at
      const tail = fold(text.slice(at))
      if (this.folded.some((secret) => secret.includes(tail))) return at
    }
    return text.length
  }

  /**
   * Looks for the literals in `bytes` (a view, or a view with line breaks removed, `kept` mapping
   * back to the view), reporting spans of the original value. Returns the folded text.
   */
  private search(view: View, bytes: Buffer, kept: Int32Array | undefined, report: Report): string {
    const exact = bytes.toString('latin1')
    const folded = fold(exact)
    for (const literal of this.literals) {
      if (kept !== undefined && !literal.wraps) continue
      const text = literal.caseless ? folded : exact
      for (let at = text.indexOf(literal.text); at >= 0; at = text.indexOf(literal.text, at + 1)) {
        const end = at + literal.text.length
        // Back to the view (line breaks put back), then to the original value.
        const first = kept === undefined ? at : kept[at]!
        const last = kept === undefined ? end - 1 : kept[end - 1]!
        report(view.starts === undefined ? first : view.starts[first]!, view.ends === undefined ? last + 1 : view.ends[last]!)
      }
    }
    return folded
  }
}

// Views ----------------------------------------------------------------------------------------------

/**
 * A decoder reads one escape at `at` and returns the bytes it stands for and its length, or
 * undefined when `at` starts no escape (the byte stands for itself).
 */
type Decoder = (bytes: Buffer, at: number) => { out: number[]; length: number } | undefined

function decodeView(bytes: Buffer, decode: Decoder): View {
  const out: number[] = []
  const starts: number[] = []
  const ends: number[] = []
  for (let i = 0; i < bytes.length; ) {
    const escape = decode(bytes, i)
    if (escape === undefined) {
      out.push(bytes[i]!)
      starts.push(i)
      ends.push(i + 1)
      i++
      continue
    }
    for (const byte of escape.out) {
      out.push(byte)
      starts.push(i)
      ends.push(i + escape.length)
    }
    i += escape.length
  }
  return { bytes: Buffer.from(out), starts: Int32Array.from(starts), ends: Int32Array.from(ends) }
}

function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30
  const lower = byte | 0x20
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1
}

/** `%HH` (any case); with `plus`, `+` as a space (form encoding). */
function percentDecode(plus: boolean): Decoder {
  return (bytes, at) => {
    const byte = bytes[at]
    if (plus && byte === PLUS) return { out: [0x20], length: 1 }
    if (byte !== PERCENT) return undefined
    const high = hexValue(bytes[at + 1])
    const low = hexValue(bytes[at + 2])
    return high < 0 || low < 0 ? undefined : { out: [high * 16 + low], length: 3 }
  }
}

const SIMPLE_ESCAPES: Readonly<Record<number, number>> = {
  0x62: 0x08, // b
  0x66: 0x0c, // f
  0x6e: 0x0a, // n
  0x72: 0x0d, // r
  0x74: 0x09, // t
}

/** JSON and array-element escapes: `\"`, `\\`, `\/`, `\n` and friends, `\uXXXX` (pairs joined). */
const unescapeBackslash: Decoder = (bytes, at) => {
  if (bytes[at] !== BACKSLASH || at + 1 >= bytes.length) return undefined
  const next = bytes[at + 1]!
  if (next === 0x75 /* u */) {
    const unit = hex4(bytes, at + 2)
    if (unit < 0) return undefined
    if (unit >= 0xd800 && unit <= 0xdbff && bytes[at + 6] === BACKSLASH && bytes[at + 7] === 0x75) {
      const low = hex4(bytes, at + 8)
      if (low >= 0xdc00 && low <= 0xdfff) return { out: [...Buffer.from(String.fromCharCode(unit, low), 'utf8')], length: 12 }
    }
    return { out: [...Buffer.from(String.fromCharCode(unit), 'utf8')], length: 6 }
  }
  return { out: [SIMPLE_ESCAPES[next] ?? next], length: 2 }
}

function hex4(bytes: Buffer, at: number): number {
  let value = 0
  for (let i = 0; i < 4; i++) {
    const digit = hexValue(bytes[at + i])
    if (digit < 0) return -1
    value = value * 16 + digit
  }
  return value
}

/** Record and CSV doubling: `""`, and SQL literals' `''`; records double backslashes too. */
const undouble: Decoder = (bytes, at) => {
  const byte = bytes[at]!
  if ((byte === QUOTE || byte === APOSTROPHE || byte === BACKSLASH) && bytes[at + 1] === byte) return { out: [byte], length: 2 }
  return undefined
}

function hasDoubled(bytes: Buffer): boolean {
  for (const pair of ['""', "''"]) if (bytes.includes(pair, 0, 'latin1')) return true
  return false
}

/** `bytes` without CR and LF, and for each byte left, its offset in `bytes`. */
function withoutLineBreaks(bytes: Buffer): [Buffer, Int32Array] {
  const out = Buffer.allocUnsafe(bytes.length)
  const kept = new Int32Array(bytes.length)
  let length = 0
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!
    if (byte === 0x0a || byte === 0x0d) continue
    out[length] = byte
    kept[length++] = i
  }
  return [out.subarray(0, length), kept.subarray(0, length)]
}

// Streams: could the end of a text still become a form? ------------------------------------------------

/** Whether text[at..] is all consumed by units[unit..] of `form`, ending inside or right after one. */
function continues(form: Form, text: string, unit: number, at: number): boolean {
  if (at >= text.length) return true
  if (unit >= form.units.length) return false
  if (form.lineBreaks && unit > 0) {
    if (text[at] === '\n') return continues(form, text, unit, at + 1) || continuesUnit(form, text, unit, at)
    if (text[at] === '\r') return at + 1 >= text.length || (text[at + 1] === '\n' && continues(form, text, unit, at + 2))
  }
  return continuesUnit(form, text, unit, at)
}

function continuesUnit(form: Form, text: string, unit: number, at: number): boolean {
  for (const spelling of form.units[unit]!.spellings) {
    const length = Math.min(spelling.length, text.length - at)
    let same = true
    for (let i = 0; i < length && same; i++) {
      const a = text.charCodeAt(at + i)
      const b = spelling.charCodeAt(i)
      same = form.caseless ? foldByte(a) === foldByte(b) : a === b
    }
    if (!same) continue
    if (length < spelling.length || continues(form, text, unit + 1, at + length)) return true
  }
  return false
}

function hex2(code: number): string {
  return HEX[code >> 4]! + HEX[code & 15]!
}

/** `bytes` as bytea's escape format writes them: `\\` for a backslash, `\ooo` for a byte below 0x20 or above 0x7e. */
function byteaEscape(bytes: Buffer): string {
  let out = ''
  for (const byte of bytes) {
    if (byte === BACKSLASH) out += '\\\\'
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${byte.toString(8).padStart(3, '0')}`
    else out += String.fromCharCode(byte)
  }
  return out
}

/** One byte of a secret as it may appear: raw, percent-encoded, or escaped by JSON, arrays, records or SQL. */
function rawUnit(char: string): Unit {
  const code = char.charCodeAt(0)
  const spellings = [char, `%${hex2(code)}`]
  const unicode = `\\u00${hex2(code)}`
  switch (code) {
    case 0x20:
      spellings.push('+')
      break
    case QUOTE:
      spellings.push('\\"', '""', unicode)
      break
    case APOSTROPHE:
      spellings.push("''")
      break
    case 0x2f: // /
      spellings.push('\\/')
      break
    case BACKSLASH:
      spellings.push('\\\\', unicode)
      break
    case 0x0a:
      spellings.push('\\n', unicode)
      break
    case 0x09:
      spellings.push('\\t', unicode)
      break
    case 0x0d:
      spellings.push('\\r', unicode)
      break
    default:
      if (code < 0x20) spellings.push(unicode)
  }
  return { spellings }
}

/**
 * The base64 characters of `bytes` placed `offset` (0–2) bytes into a longer stream that depend
 * on `bytes` alone: character i covers bits [6i, 6i+6) of the stream.
 */
export function stableBase64(bytes: Buffer, offset: number): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes, Buffer.alloc(3)]).toString('base64')
  const first = Math.ceil((8 * offset) / 6)
  const end = Math.floor((8 * (offset + bytes.length)) / 6)
  return end > first ? encoded.slice(first, end) : ''
}

// Anchors --------------------------------------------------------------------------------------------

/**
 * How unlikely a (case-folded) byte is in ordinary data: anchors prefer rare ones. Digits count as
 * common: ids, amounts, dates and timestamps are full of them.
 */
function rarity(code: number): number {
  if (code >= 0x30 && code <= 0x39) return 1
  if (code < 0x61 || code > 0x7a) return 4
  return 'etaoinshrdlucm'.includes(String.fromCharCode(code)) ? 1 : 'fwypbgvk'.includes(String.fromCharCode(code)) ? 2 : 3
}

/** ASCII case folding, the same the prefilter applies to every byte. */
export function foldByte(code: number): number {
  return code >= 0x41 && code <= 0x5a ? code | 0x20 : code
}

function fold(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase())
}

/**
 * Anchors for a form that may be wrapped over lines (hex, base64): the rarest window of each of
 * at least two stretches of at most 16 characters, so line breaks, which wrappers put 60 or more
 * characters apart, leave one whole. Undefined for a form under 8 characters.
 */
function wrappedAnchors(form: string): string[] | undefined {
  if (form.length < 2 * ANCHOR_LENGTH) return undefined
  const count = Math.max(2, Math.ceil(form.length / 16))
  const size = Math.floor(form.length / count)
  const grams: string[] = []
  for (let k = 0; k < count; k++) grams.push(bestAnchor(form.slice(k * size, k === count - 1 ? form.length : (k + 1) * size), () => true)!)
  return grams
}

/** The rarest 4-byte window of `form` made only of `stable` bytes (and no CR/LF), case-folded. */
function bestAnchor(form: string, stable: (code: number) => boolean): string | undefined {
  const folded = fold(form)
  let best: string | undefined
  let bestScore = -1
  let run = 0
  for (let i = 0; i < folded.length; i++) {
    const code = folded.charCodeAt(i)
    run = stable(code) && code !== 0x0a && code !== 0x0d ? run + 1 : 0
    if (run < ANCHOR_LENGTH) continue
    const gram = folded.slice(i - ANCHOR_LENGTH + 1, i + 1)
    let score = 0
    for (let j = 0; j < ANCHOR_LENGTH; j++) score += rarity(gram.charCodeAt(j))
    if (score > bestScore) {
      best = gram
      bestScore = score
    }
  }
  return best
}

// Fragments ------------------------------------------------------------------------------------------

/** Finds runs of at least FRAGMENT_MIN bytes of one secret (ASCII case ignored). */
class Fragment {
  /** Windows every 4 bytes: any FRAGMENT_MIN-byte run contains one of them whole. */
  readonly anchors: string[] = []
  /** Where each anchor sits in the secret. */
  private readonly offsets: number[] = []
  /** The folded secret, as a latin1 string. */
  private readonly folded: string

  constructor(secret: Buffer) {
    this.folded = fold(secret.toString('latin1'))
    for (let i = 0; i + ANCHOR_LENGTH <= this.folded.length; i += ANCHOR_LENGTH) {
      const gram = this.folded.slice(i, i + ANCHOR_LENGTH)
      if (/[\r\n]/.test(gram)) continue
      this.anchors.push(gram)
      this.offsets.push(i)
    }
  }

  /** Reports each run in `folded` (a folded latin1 text), found by its anchors and grown both ways. */
  find(folded: string, report: Report): void {
    const secret = this.folded
    this.anchors.forEach((gram, k) => {
      const offset = this.offsets[k]!
      for (let at = folded.indexOf(gram); at >= 0; at = folded.indexOf(gram, at + 1)) {
        let before = 0
        while (at - before > 0 && offset - before > 0 && folded.charCodeAt(at - before - 1) === secret.charCodeAt(offset - before - 1)) before++
        let after = ANCHOR_LENGTH
        while (at + after < folded.length && offset + after < secret.length && folded.charCodeAt(at + after) === secret.charCodeAt(offset + after)) after++
        if (before + after >= FRAGMENT_MIN) report(at - before, at + after)
      }
    })
  }
}
