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
 *
 * The same scan runs in C when the addon is built (see native.ts and native/prefilter.c, which
 * uses SIMD where it can): a value, a DataRow body, a COPY line, or every row of a read in one
 * call. The JavaScript here is the reference the C code is tested against, and what runs without
 * the addon.
 */
import { type NativeScanner, nativePrefilter } from './native.js'

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
/** Per byte: 1 for a lower-case ASCII letter or `_`, which no digit detector's finding may touch. */
const GLUE = new Uint8Array(256)
for (let code = 0; code < 256; code++) {
  FOLD[code] = code >= 0x41 && code <= 0x5a ? code | 0x20 : code
  if (code >= 0x30 && code <= 0x39) DIGIT_CLASS[code] = 1
  else if (SEPARATORS.includes(String.fromCharCode(code))) DIGIT_CLASS[code] = 2
  if ((code >= 0x61 && code <= 0x7a) || code === 0x5f) GLUE[code] = 1
}

/**
 * What {@link Prefilter.dataRows} and {@link Prefilter.copyLines} write about the messages of a
 * read, for the masker to take one by one: per message scanned, two ints of `out`, its flags and
 * where its cells' (or fields') flags are kept in `cells`, -1 when not kept (it raised nothing,
 * or they did not fit); kept there, the width (cells or fields), then each one's flags.
 */
export interface Batched {
  readonly out: Int32Array
  readonly cells: Int32Array
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
/** The most columns a PostgreSQL result can have: the native scanner's io holds a spec and flags for each. */
const MAX_COLUMNS = 1664
const SPEC_WIDTH = 4
/** A digit limit that is never reached (the C code reads 32-bit integers). */
const NO_LIMIT = 0x7fffffff
/** Values shorter than this are scanned in JavaScript: a call into C costs about as much. */
const NATIVE_MIN_BYTES = 64

/**
 * Where scans run: `native` in C (AVX-512 or AVX2 where the CPU has them, else the scalar walk),
 * falling back to JavaScript without the addon; `native-avx2` in C with AVX2 at most (what a CPU
 * without AVX-512 runs: tests); `native-scalar` in C without SIMD (a CPU without AVX2: tests);
 * `javascript` never in C.
 */
export type ScanMode = 'native' | 'native-avx2' | 'native-scalar' | 'javascript'

/** How the cells of one column are scanned (the masker's columns are such specs). */
export interface ColumnSpec {
  /** Flags this column keeps of what the scan raises. */
  readonly mask: number
  readonly digitLimit: number
  readonly digitFlags: number
  /** Flags raised whatever the bytes. */
  readonly always: number
}

/** The C scanner's SIMD setting per mode: 0 none, 1 the best the CPU has, 2 AVX2 at most. */
const SIMD = { native: 1, 'native-avx2': 2, 'native-scalar': 0, javascript: 0 } as const satisfies Record<ScanMode, number>

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
  /** The C scanner over the same tables, and the array it shares with this side. */
  private readonly scanner: NativeScanner | undefined
  private readonly io: Int32Array | undefined
  /** The column specs last written to io (sessions sharing this prefilter take turns). */
  private written: readonly ColumnSpec[] | undefined

  private constructor(spec: PrefilterSpec, mode: ScanMode) {
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
    if (mode !== 'javascript' && nativePrefilter !== undefined) {
      const keys = Int32Array.from(this.anchors.keys())
      const flags = Int32Array.from(this.anchors.values())
      this.io = new Int32Array(MAX_COLUMNS * (SPEC_WIDTH + 1) + 1)
      this.scanner = nativePrefilter.create(this.withDigits, this.withoutDigits, this.slots, keys, flags, Int32Array.of(this.atSign, this.percent, this.across, SIMD[mode]), this.io)
    }
  }

  /** The prefilter for `spec`, built once and shared (see {@link ScanMode}). */
  static for(spec: PrefilterSpec, mode: ScanMode = 'native'): Prefilter {
    const key = JSON.stringify([spec.atSign, spec.percent, spec.across, [...spec.anchors].sort(), mode])
    let built = BUILT.get(key)
    if (built === undefined) {
      built = new Prefilter(spec, mode)
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

  /** Whether scans run in C. */
  get native(): boolean {
    return this.scanner !== undefined
  }

  /** {@link scan} of one value without carry: in C when the value is long enough to pay for the call. */
  scanValue(bytes: Uint8Array, from: number, to: number, digitLimit: number, digitFlags: number): number {
    if (this.scanner === undefined || to - from < NATIVE_MIN_BYTES) return this.scan(bytes, from, to, digitLimit, digitFlags)
    return nativePrefilter!.scan(this.scanner, bytes, from, to, Math.min(digitLimit, NO_LIMIT), digitFlags, 0)
  }

  /**
   * {@link scan} of one cell of a row, with carry across cells when `carry` is given (`first`
   * starts a row): in C when built (the carry is kept there), else in JavaScript.
   */
  scanCell(bytes: Uint8Array, digitLimit: number, digitFlags: number, carry: Carry | undefined, first: boolean): number {
    if (this.scanner === undefined) return this.scan(bytes, 0, bytes.length, digitLimit, digitFlags, carry)
    return nativePrefilter!.scan(this.scanner, bytes, 0, bytes.length, Math.min(digitLimit, NO_LIMIT), digitFlags, carry === undefined ? 0 : first ? 2 : 1)
  }

  /**
   * The cells of a DataRow body (Int16 count, then per value an Int32 length, -1 for NULL, and the
   * bytes), each scanned under its column's spec, with carry across cells when `carry`: the flags of
   * all cells together (read each cell's with {@link cellFlags}); -1 when the body does not hold the
   * values it announces; undefined when only {@link scan} can do it (no addon, or a count that does
   * not match `columns`).
   */
  dataRow(body: Uint8Array, columns: readonly ColumnSpec[], carry: boolean): number | undefined {
    if (this.scanner === undefined || !this.writeSpecs(columns)) return undefined
    const raised = nativePrefilter!.dataRow(this.scanner, body, carry)
    return raised === -2 ? undefined : raised
  }

  /** The column specs into io for the C scanner, unless there already; false when they do not fit. */
  private writeSpecs(columns: readonly ColumnSpec[]): boolean {
    const io = this.io
    if (io === undefined || columns.length > MAX_COLUMNS) return false
    if (this.written === columns) return true
    columns.forEach((column, i) => {
      const at = i * SPEC_WIDTH
      io[at] = column.mask
      io[at + 1] = Math.min(column.digitLimit, NO_LIMIT)
      io[at + 2] = column.digitFlags
      io[at + 3] = column.always
    })
    io[io.length - 1] = columns.length
    this.written = columns
    return true
  }

  /**
   * {@link dataRow} over the DataRow messages (type, length, body) that follow each other whole in
   * `chunk` from `start`, in one call; the number of rows scanned (it stops at any other message,
   * one cut off, one that does not read, a full `out`, or a row that raises when `cells` is full);
   * undefined without the addon. What each row raised goes `into` (see {@link Batched}).
   */
  dataRows(chunk: Uint8Array, start: number, columns: readonly ColumnSpec[], carry: boolean, into: Batched): number | undefined {
    if (this.scanner === undefined || !this.writeSpecs(columns)) return undefined
    return nativePrefilter!.dataRows(this.scanner, chunk, start, into.out, into.cells, carry)
  }

  /**
   * {@link copyLine} over the CopyData messages that follow each other whole in `chunk` from
   * `start`: flags -1 for a line with something to unescape (a backslash in text, the quote in
   * CSV: `quote` is -1 for text); the lines scanned; undefined without the addon. What each line
   * raised goes `into` (see {@link Batched}).
   */
  copyLines(chunk: Uint8Array, start: number, quote: number, delimiter: number, nullBytes: Uint8Array, column: ColumnSpec, carry: boolean, into: Batched): number | undefined {
    if (this.scanner === undefined) return undefined
    return nativePrefilter!.copyLines(this.scanner, chunk, start, into.out, into.cells, quote, delimiter, nullBytes, Math.min(column.digitLimit, NO_LIMIT), column.digitFlags, column.mask, carry)
  }

  /** Each field's flags from the last {@link copyLine}, into `out`; false when the line has more fields than io keeps (scan them again). */
  fieldFlags(width: number, out: Int32Array): boolean {
    if (width > MAX_COLUMNS) return false
    const from = MAX_COLUMNS * SPEC_WIDTH
    out.set(this.io!.subarray(from, from + width))
    return true
  }

  /** Each cell's flags from the last {@link dataRow}, into `out`. */
  cellFlags(count: number, out: Int32Array): void {
    const from = count * SPEC_WIDTH
    out.set(this.io!.subarray(from, from + count))
  }

  /**
   * The fields of a COPY line with nothing to unescape, bytes [0, end) split at `delimiter`, each
   * scanned in place under `column` (a field equal to `nullBytes` skipped): the masked flags of
   * all fields together (each field's for {@link fieldFlags}); undefined without the addon.
   */
  copyLine(line: Uint8Array, end: number, delimiter: number, nullBytes: Uint8Array, column: ColumnSpec, carry: boolean): number | undefined {
    if (this.scanner === undefined) return undefined
    return nativePrefilter!.copyLine(this.scanner, line, end, delimiter, nullBytes, Math.min(column.digitLimit, NO_LIMIT), column.digitFlags, column.mask, carry)
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
 *
 * Digits glued to a lower-case letter or `_` (`ref 5d41402abc`, `id_123456789`) are not counted:
 * every digit detector needs a boundary there (phone, card and SSN a non-word byte, an IBAN upper
 * case), so a group of digits touching one cannot start or end a finding.
 */
function digitRunEnd(bytes: Uint8Array, from: number, to: number, at: number, limit: number): number {
  let start = at
  while (start > from && DIGIT_CLASS[bytes[start - 1]!] !== 0) start--
  let end = at
  while (end < to && DIGIT_CLASS[bytes[end]!] !== 0) end++
  let first = start
  if (start > from && GLUE[bytes[start - 1]!] === 1) while (first < end && DIGIT_CLASS[bytes[first]!] === 1) first++
  let last = end
  if (end < to && GLUE[bytes[end]!] === 1) while (last > first && DIGIT_CLASS[bytes[last - 1]!] === 1) last--
  let run = 0
  let most = 0
  let gap = 0
  for (let j = first; j < last; j++) {
    if (DIGIT_CLASS[bytes[j]!] === 1) {
      gap = 0
      if (++run > most) most = run
    } else if (++gap > MAX_GAP) {
      run = 0
    }
  }
  return most >= limit && !isDateTime(bytes, start, end) ? -1 : end
}

/**
 * Whether bytes [start, end) are a date, or a date and an hour (`2024-01-15 10` before `:23`):
 * digit groups 4-2-2(-2) that no phone, card, IBAN or SSN pattern takes. Not after a `+` (an
 * international prefix: `+1234-56-78 90` is a phone number).
 */
function isDateTime(bytes: Uint8Array, start: number, end: number): boolean {
  let at = start
  for (; at < end && DIGIT_CLASS[bytes[at]!] === 2; at++) if (bytes[at] === 0x2b) return false
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
