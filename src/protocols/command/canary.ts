/**
 * The credential canary: every form in which a secret value may show up in a command's output,
 * and one Aho–Corasick automaton that finds all of them in a single pass over the bytes.
 *
 * Forms of a value V (bytes B):
 * - raw V, and V reversed (by character);
 * - hex of B, lower and upper case;
 * - base64 and base64url of B at each of the three alignments B can have inside a longer encoded
 *   stream (`env | base64` puts B at any offset): only the characters determined by B alone;
 * - percent-encodings of V as common encoders write them (RFC 3986 unreserved kept, JavaScript's
 *   encodeURIComponent, Python's quote with `/` safe, form encodings with `+` for space as Python and
 *   browsers write them, every byte encoded), with upper- and lower-case hex digits;
 * - V as a JSON string body (escapes), and as a shell writes it between double quotes (`\$`,
 *   `` \` ``, `\"`, `\\`), when those differ from V;
 * - V with its line breaks as CRLF, as a pty delivers a value of several lines (a PEM key).
 * Derived forms shorter than {@link MIN_DERIVED_FORM} bytes are left out: they would match ordinary
 * output by chance. The raw value is always kept.
 */

/** Derived (encoded) forms shorter than this are not looked for. */
export const MIN_DERIVED_FORM = 6

/** Every form of `value` the canary masks, deduplicated. */
export function canaryForms(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8')
  if (bytes.length === 0) return []
  const derived = new Set<string>()
  const add = (form: string): void => {
    if (Buffer.byteLength(form) >= MIN_DERIVED_FORM) derived.add(form)
  }
  add([...value].reverse().join(''))
  const hex = bytes.toString('hex')
  add(hex)
  add(hex.toUpperCase())
  for (let offset = 0; offset < 3; offset++) {
    const stable = stableBase64(bytes, offset)
    add(stable)
    add(stable.replaceAll('+', '-').replaceAll('/', '_'))
  }
  for (const encoded of percentEncodings(bytes)) {
    add(encoded)
    add(encoded.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()))
  }
  add(JSON.stringify(value).slice(1, -1))
  // A shell's double-quoted spelling (`export`, `declare -p`, `set -x` print values so).
  add(value.replace(/[$`"\\]/g, '\\$&'))
  // A value of several lines as a terminal receives it (the pty turns each \n into \r\n).
  add(value.replace(/\r?\n/g, '\r\n'))
  derived.delete(value)
  return [bytes, ...[...derived].map((form) => Buffer.from(form, 'utf8'))]
}

/**
 * The base64 characters of `bytes` placed `offset` bytes (0–2) into a longer stream that depend on
 * `bytes` alone: character i covers bits [6i, 6i+6) of the stream, the value bits [8·offset, 8·(offset+n)).
 */
export function stableBase64(bytes: Buffer, offset: number): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes, Buffer.alloc(3)]).toString('base64')
  const first = Math.ceil((8 * offset) / 6)
  const end = Math.floor((8 * (offset + bytes.length)) / 6)
  return end > first ? encoded.slice(first, end) : ''
}

const UNRESERVED = /[A-Za-z0-9\-._~]/
const URI_COMPONENT_EXTRA = /[!'()*]/
/** application/x-www-form-urlencoded as browsers and URLSearchParams write it. */
const FORM_KEPT = /[A-Za-z0-9*\-._]/

function percentEncodings(bytes: Buffer): string[] {
  const encode = (keep: (char: string) => boolean, space?: string): string => {
    let out = ''
    for (const byte of bytes) {
      const char = String.fromCharCode(byte)
      if (byte < 0x80 && keep(char)) out += char
      else if (byte === 0x20 && space !== undefined) out += space
      else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
    }
    return out
  }
  return [
    encode((char) => UNRESERVED.test(char)),
    encode((char) => UNRESERVED.test(char) || URI_COMPONENT_EXTRA.test(char)),
    encode((char) => UNRESERVED.test(char) || char === '/'),
    encode((char) => UNRESERVED.test(char), '+'),
    encode((char) => FORM_KEPT.test(char), '+'),
    encode(() => false),
  ]
}

/**
 * A deterministic automaton over byte classes: `next(state, byte)` is one table lookup. Bytes that
 * occur in no pattern share class 0, so the table has (distinct pattern bytes + 1) columns.
 */
export class CanaryAutomaton {
  /** Longest pattern, in bytes. */
  readonly maxLength: number
  readonly patternCount: number
  /** Byte → class. */
  readonly classOf: Uint8Array
  readonly classCount: number
  /**
   * `delta[row + class]` → the next state's row, where a state's row is `state * classCount`: the
   * hot loop needs no multiplication.
   */
  readonly delta: Uint32Array
  /** By row: the length of the longest pattern prefix the state stands for. */
  readonly depth: Uint16Array
  /** By row: the length of the longest pattern ending in the state (0: none). */
  readonly match: Uint16Array

  constructor(patterns: readonly Buffer[]) {
    const unique = [...new Map(patterns.filter((p) => p.length > 0).map((p) => [p.toString('latin1'), p])).values()]
    if (unique.some((pattern) => pattern.length > 0xffff)) throw new RangeError('a canary pattern is longer than 65535 bytes')
    this.patternCount = unique.length
    this.maxLength = unique.reduce((max, pattern) => Math.max(max, pattern.length), 0)

    this.classOf = new Uint8Array(256)
    let classes = 1
    for (const pattern of unique) {
      for (const byte of pattern) if (this.classOf[byte] === 0) this.classOf[byte] = classes++
    }
    this.classCount = classes

    // The trie, with goto edges in a sparse map per state while building.
    const edges: Map<number, number>[] = [new Map()]
    const depth: number[] = [0]
    const terminal: number[] = [0]
    for (const pattern of unique) {
      let state = 0
      for (const byte of pattern) {
        const cls = this.classOf[byte]!
        let next = edges[state]!.get(cls)
        if (next === undefined) {
          next = edges.length
          edges.push(new Map())
          depth.push(depth[state]! + 1)
          terminal.push(0)
          edges[state]!.set(cls, next)
        }
        state = next
      }
      terminal[state] = pattern.length
    }

    const states = edges.length
    const width = classes
    const delta = new Uint32Array(states * width)
    const longest = new Uint16Array(states)
    const fail = new Uint32Array(states)
    // Breadth-first: a state's failure target is shallower, so it is complete before it is used.
    const queue: number[] = []
    for (let cls = 0; cls < classes; cls++) {
      const next = edges[0]!.get(cls)
      if (next !== undefined) {
        delta[cls] = next
        queue.push(next)
      }
    }
    for (let head = 0; head < queue.length; head++) {
      const state = queue[head]!
      longest[state] = Math.max(terminal[state]!, longest[fail[state]!]!)
      const row = state * width
      const failRow = fail[state]! * width
      for (let cls = 0; cls < classes; cls++) {
        const next = edges[state]!.get(cls)
        if (next === undefined) {
          delta[row + cls] = delta[failRow + cls]!
        } else {
          fail[next] = delta[failRow + cls]!
          delta[row + cls] = next
          queue.push(next)
        }
      }
    }
    // States → rows, once every failure target is known. Depth and match are indexed by row too
    // (only a row's first slot is used), so the hot loop never converts back.
    for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! * width
    this.delta = delta
    this.depth = new Uint16Array(states * width)
    this.match = new Uint16Array(states * width)
    for (let state = 0; state < states; state++) {
      this.depth[state * width] = depth[state]!
      this.match[state * width] = longest[state]!
    }
  }

  get stateCount(): number {
    return this.delta.length / this.classCount
  }

  /** Whether `data` contains any pattern (a whole-buffer check, for input lines and tests). */
  test(data: Buffer): boolean {
    let row = 0
    for (let i = 0; i < data.length; i++) {
      row = this.delta[row + this.classOf[data[i]!]!]!
      if (this.match[row] !== 0) return true
    }
    return false
  }

  /** `data` with every pattern occurrence replaced by `marker` (overlapping occurrences merge). */
  replaceAll(data: Buffer, marker: Buffer): Buffer {
    const spans: [number, number][] = []
    let row = 0
    for (let i = 0; i < data.length; i++) {
      row = this.delta[row + this.classOf[data[i]!]!]!
      const length = this.match[row]!
      if (length === 0) continue
      let start = i + 1 - length
      while (spans.length > 0 && spans[spans.length - 1]![1] >= start) start = Math.min(start, spans.pop()![0])
      spans.push([start, i + 1])
    }
    if (spans.length === 0) return data
    const parts: Buffer[] = []
    let at = 0
    for (const [start, end] of spans) {
      parts.push(data.subarray(at, start), marker)
      at = end
    }
    parts.push(data.subarray(at))
    return Buffer.concat(parts)
  }
}
