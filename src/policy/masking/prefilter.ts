/**
 * The fast path: one pass over a value's bytes that answers "could any detector or the canary
 * find something here?" without decoding, allocating or running a regex. The result is a bit
 * mask of the detectors worth running.
 *
 * The pass is a Wu–Manber scan with 2-byte blocks: one table lookup per examined block says how
 * far the scan may jump (up to 2 bytes: no 4-byte anchor, no `@`, `%` or digit can be skipped
 * over) or that the block needs a look: the last two bytes of an anchor (then the case-folded
 * 4-byte window is looked up), a digit (then the run of digits and separators around it is
 * counted), `@` or `%`. On prose about every second byte is examined.
 *
 * Windows across the boundary between two cells of a row are checked from the last three bytes
 * carried over, so a canary form split over columns still shows its anchor.
 */

const enum Block {
  /** The block ends a 4-byte anchor (in some ASCII case). */
  Anchor = 1,
  /** The block holds a digit. */
  Digit = 2,
  AtSign = 4,
  Percent = 8,
}

/** Bytes that keep a run of digits going: `(415) 555-2671`, `4111 1111`, `+44 20`. */
const SEPARATORS = ' -.()/+'
/** Up to this many separators in a row keep a digit run going: `(415) 555` has two. */
const MAX_GAP = 2
const MAX_SHIFT = 2
const SLOT_BITS = 16

const FOLD = new Uint8Array(256)
/** Per byte: 1 digit, 2 separator, 0 other. */
const DIGIT_CLASS = new Uint8Array(256)
for (let code = 0; code < 256; code++) {
  FOLD[code] = code >= 0x41 && code <= 0x5a ? code | 0x20 : code
  if (code >= 0x30 && code <= 0x39) DIGIT_CLASS[code] = 1
  else if (SEPARATORS.includes(String.fromCharCode(code))) DIGIT_CLASS[code] = 2
}

/** The case-folded 4-byte window as an Int32 (how anchors are keyed). */
export function anchorKey(gram: string): number {
  let key = 0
  for (let i = 0; i < gram.length; i++) key = (key << 8) | FOLD[gram.charCodeAt(i) & 0xff]!
  return key
}

function slotOf(key: number): number {
  return Math.imul(key, 0x9e3779b1) >>> (32 - SLOT_BITS)
}

/** Every ASCII-case spelling of a folded byte. */
function spellings(code: number): number[] {
  return code >= 0x61 && code <= 0x7a ? [code, code & ~0x20] : [code]
}

/** The bytes carried from one cell of a row to the next: the last three, folded. */
export interface Carry {
  window: number
  length: number
}

/** What a prefilter looks for. */
export interface PrefilterSpec {
  /** Flags an `@` raises (0: `@` is not looked for). */
  atSign: number
  /** Flags a `%` raises (0: not looked for). */
  percent: number
  /** Flags a window across a cell boundary may raise (the canary's). */
  across: number
  /** Case-folded 4-byte anchors and the flags each raises. */
  anchors: readonly (readonly [gram: string, flags: number])[]
}

/** Built prefilters by spec: the tables are 128 KiB, so sessions with the same policy share them. */
const BUILT = new Map<string, Prefilter>()
const MAX_BUILT = 32

export class Prefilter {
  /**
   * Per block (two raw bytes), in two tables (with and without digits looked for): the jump in the
   * low 2 bits (0 when the block needs a look), what it holds ({@link Block}) above them.
   */
  private readonly withDigits = new Uint8Array(1 << 16)
  private readonly withoutDigits = new Uint8Array(1 << 16)
  /** A 65,536-bit set of anchor slots, checked before the map. */
  private readonly slots = new Int32Array((1 << SLOT_BITS) >>> 5)
  /** Anchor → the flags it raises. */
  private readonly anchors = new Map<number, number>()
  private readonly atSign: number
  private readonly percent: number
  private readonly across: number

  private constructor(spec: PrefilterSpec) {
    this.atSign = spec.atSign
    this.percent = spec.percent
    this.across = spec.across
    this.withDigits.fill(MAX_SHIFT)
    this.withoutDigits.fill(MAX_SHIFT)
    for (let other = 0; other < 256; other++) {
      for (let digit = 0x30; digit <= 0x39; digit++) this.mark(digit, other, Block.Digit, false)
      if (spec.atSign !== 0) this.mark(0x40, other, Block.AtSign, true)
      if (spec.percent !== 0) this.mark(0x25, other, Block.Percent, true)
    }
    for (const [gram, flags] of spec.anchors) this.add(gram, flags)
  }

  /** The prefilter for `spec`, built once and shared. */
  static for(spec: PrefilterSpec): Prefilter {
    const key = JSON.stringify([spec.atSign, spec.percent, spec.across, [...spec.anchors].sort()])
    let built = BUILT.get(key)
    if (built === undefined) {
      built = new Prefilter(spec)
      if (BUILT.size >= MAX_BUILT) BUILT.delete(BUILT.keys().next().value!)
      BUILT.set(key, built)
    }
    return built
  }

  /**
   * The flags bytes [from, to) raise: anchors, `@`, `%`, and `digitFlags` (when not 0) once a run
   * of `digitLimit` digits (up to two separators between them) is seen. With `carry`, windows
   * across the boundary with the previous cells are checked too, and the carry moves on past them.
   */
  scan(bytes: Uint8Array, from: number, to: number, digitLimit: number, digitFlags: number, carry?: Carry): number {
    const table = digitFlags === 0 ? this.withoutDigits : this.withDigits
    let flags = carry === undefined || carry.length === 0 ? 0 : this.straddle(bytes, from, to, carry)
    let digitsDone = -1
    let i = from + 1
    while (i < to) {
      const entry = table[(bytes[i - 1]! << 8) | bytes[i]!]!
      if ((entry & 3) !== 0) {
        i += entry & 3
        continue
      }
      if ((entry & (Block.Anchor << 2)) !== 0 && i >= from + 3) flags |= this.lookup((FOLD[bytes[i - 3]!]! << 24) | (FOLD[bytes[i - 2]!]! << 16) | (FOLD[bytes[i - 1]!]! << 8) | FOLD[bytes[i]!]!)
      if ((entry & (Block.Digit << 2)) !== 0 && i > digitsDone) {
        digitsDone = digitRunEnd(bytes, from, to, i, digitLimit)
        if (digitsDone < 0) {
          flags |= digitFlags
          digitsDone = to
        }
      }
      if ((entry & (Block.AtSign << 2)) !== 0) flags |= this.atSign
      if ((entry & (Block.Percent << 2)) !== 0) flags |= this.percent
      i++
    }
    // A jump past the end skips no anchor, but may skip a last `@` or `%` (a value split over cells).
    if (to - from >= 2) {
      const entry = table[(bytes[to - 2]! << 8) | bytes[to - 1]!]!
      if ((entry & (Block.AtSign << 2)) !== 0) flags |= this.atSign
      if ((entry & (Block.Percent << 2)) !== 0) flags |= this.percent
    } else if (to - from === 1) {
      if (bytes[from] === 0x40) flags |= this.atSign
      if (bytes[from] === 0x25) flags |= this.percent
    }
    if (carry !== undefined) advance(carry, bytes, from, to)
    return flags
  }

  /** Makes the 4-byte case-folded `gram` raise `flags`. */
  private add(gram: string, flags: number): void {
    if (gram.length !== 4) throw new Error(`an anchor is 4 bytes, got ${JSON.stringify(gram)}`)
    const key = anchorKey(gram)
    this.anchors.set(key, (this.anchors.get(key) ?? 0) | flags)
    const slot = slotOf(key)
    this.slots[slot >>> 5]! |= 1 << (slot & 31)
    const folded = [...gram].map((char) => FOLD[char.charCodeAt(0) & 0xff]!)
    // The block ending at anchor offset q (1..3) lets the scan jump 3 - q at most.
    for (let q = 1; q <= 3; q++) {
      for (const first of spellings(folded[q - 1]!)) {
        for (const second of spellings(folded[q]!)) {
          const block = (first << 8) | second
          for (const table of [this.withDigits, this.withoutDigits]) {
            const entry = table[block]!
            const jump = Math.min(entry & 3, 3 - q)
            table[block] = (entry & ~3) | jump | (q === 3 ? Block.Anchor << 2 : 0)
          }
        }
      }
    }
  }

  private lookup(key: number): number {
    const slot = Math.imul(key, 0x9e3779b1) >>> (32 - SLOT_BITS)
    return (this.slots[slot >>> 5]! & (1 << (slot & 31))) === 0 ? 0 : (this.anchors.get(key) ?? 0)
  }

  /** The windows that end in the first three bytes of [from, to) and start in the carried ones. */
  private straddle(bytes: Uint8Array, from: number, to: number, carry: Carry): number {
    let window = carry.window
    let known = carry.length
    let flags = 0
    for (let j = from; j < from + 3 && j < to; j++) {
      window = (window << 8) | FOLD[bytes[j]!]!
      if (++known >= 4) flags |= this.lookup(window)
    }
    return flags & this.across
  }

  /** Blocks holding byte `a` (either side of `b`) need a look, in both tables or only with digits. */
  private mark(a: number, b: number, kind: Block, both: boolean): void {
    for (const block of [(a << 8) | b, (b << 8) | a]) {
      for (const table of both ? [this.withDigits, this.withoutDigits] : [this.withDigits]) table[block] = (table[block]! & ~3) | (kind << 2)
    }
  }
}

/** Moves `carry` past bytes [from, to): it keeps the last three bytes seen in the row, folded. */
function advance(carry: Carry, bytes: Uint8Array, from: number, to: number): void {
  let window = carry.window
  for (let j = to - from > 3 ? to - 3 : from; j < to; j++) window = (window << 8) | FOLD[bytes[j]!]!
  carry.window = window & 0xffffff
  carry.length = Math.min(3, carry.length + to - from)
}

/**
 * Counts the run of digits and separators around offset `at` (within [from, to)): -1 when it
 * holds `limit` digits with at most {@link MAX_GAP} separators between any two (and is not a date),
 * else the offset where the run ends.
 */
function digitRunEnd(bytes: Uint8Array, from: number, to: number, at: number, limit: number): number {
  let start = at
  while (start > from && DIGIT_CLASS[bytes[start - 1]!] !== 0) start--
  let run = 0
  let most = 0
  let gap = 0
  let j = start
  for (; j < to; j++) {
    const kind = DIGIT_CLASS[bytes[j]!]!
    if (kind === 0) break
    if (kind === 1) {
      gap = 0
      if (++run > most) most = run
    } else if (++gap > MAX_GAP) {
      run = 0
    }
  }
  return most >= limit && !isDateTime(bytes, start, j) ? -1 : j
}

/**
 * Whether bytes [start, end) are a date, or a date and an hour (`2024-01-15 10` before `:23`):
 * digit groups 4-2-2(-2) that no phone, card, IBAN or SSN pattern takes.
 */
function isDateTime(bytes: Uint8Array, start: number, end: number): boolean {
  let at = start
  while (at < end && DIGIT_CLASS[bytes[at]!] === 2) at++
  const digits = (count: number): boolean => {
    if (at + count > end) return false
    for (let k = 0; k < count; k++) if (DIGIT_CLASS[bytes[at + k]!] !== 1) return false
    at += count
    return true
  }
  if (!digits(4) || at >= end || bytes[at++] !== 0x2d || !digits(2) || at >= end || bytes[at++] !== 0x2d || !digits(2)) return false
  if (at < end && (bytes[at] === 0x20 || bytes[at] === 0x54) && at + 3 <= end) {
    at++
    if (!digits(2)) return false
  }
  return at === end
}
