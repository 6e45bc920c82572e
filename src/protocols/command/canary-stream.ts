/**
 * The credential canary over a terminal output stream. Two cursors of one {@link CanaryAutomaton}
 * run over every byte:
 *
 * - the *visible* cursor reads what a terminal would show: escape sequences (CSI, OSC, DCS, ...),
 *   other control characters and DEL are dropped, a backspace removes the character before it (so
 *   `s\bs`, `_\bs` and `x\bs` all read as `s`), and a line break ends a match in progress unless
 *   the line is a long run of base64/hex characters: wrapped encodings (`base64`, `xxd -p`) are read
 *   across their line breaks, while ordinary lines end where they end (so `echo started` is not
 *   held back because its last letter could start an encoded form);
 * - the *raw* cursor reads the bytes as they are, which catches a value inside an escape sequence's
 *   payload (a window title, an OSC 52 clipboard write).
 *
 * A match of either replaces the original bytes it spans, escape sequences included, with a marker.
 * Output is held back only while its tail could still be the start of a canary form, and released
 * as soon as it cannot; no timer is involved, so a value printed one character at a time with pauses
 * is held until it completes or stops being one. Two refinements:
 *
 * - the last visible character is provisional (a backspace may still erase it), so the live prefix
 *   before it stays held until another visible character arrives;
 * - held output that only repeats what the user just typed (the terminal's echo) is released: the
 *   user knows those characters, and the automaton keeps its state, so a value completed by later
 *   output is still masked from there on.
 *
 * What it does not see: a value drawn out of order with cursor movement, split into pieces,
 * hard-wrapped by the program (`fold`, `more`) so that a line ends with fewer than WRAPPED_MATCH_MIN
 * of its characters (and fewer than WRAPPED_LINE_MIN base64/hex characters), or transformed in a
 * way not listed in `canary.ts`. The
 * canary catches a secret that is printed; it cannot stop a user who can run arbitrary code next to
 * it from exfiltrating it deliberately.
 */
import type { CanaryAutomaton } from './canary.js'
import type { OutputMasker } from './masker.js'

export const CANARY_MARKER = '[CREDENTIAL]'

export interface CanaryStreamOptions {
  /** What a masked span becomes. */
  marker?: string
  /**
   * Held output beyond this many bytes is released anyway, to bound memory against a prefix
   * followed by endless escape sequences: fail closed, the visible characters of the partial match
   * it held are masked (escape sequences between them go out as they are), and the automaton keeps
   * its state, so the rest of the value is masked too when it completes.
   */
  maxHeld?: number
}

export interface CanaryStreamStats {
  /** Spans replaced by the marker. */
  masked: number
  /** Bytes currently held back. */
  held: number
  /** Times `maxHeld` forced a release. */
  forcedReleases: number
}

const enum Parse {
  Ground,
  Escape,
  EscapeIntermediate,
  Csi,
  String,
  StringEscape,
}

const enum Byte {
  Backspace = 0x08,
  Bell = 0x07,
  LineFeed = 0x0a,
  CarriageReturn = 0x0d,
  Cancel = 0x18,
  Substitute = 0x1a,
  Escape = 0x1b,
  Space = 0x20,
  Delete = 0x7f,
  /** `[` after ESC: Control Sequence Introducer. */
  CsiIntroducer = 0x5b,
  /** `]`: Operating System Command. */
  OscIntroducer = 0x5d,
  /** `P`: Device Control String. */
  DcsIntroducer = 0x50,
  /** `X`: Start of String. */
  SosIntroducer = 0x58,
  /** `^`: Privacy Message. */
  PmIntroducer = 0x5e,
  /** `_`: Application Program Command. */
  ApcIntroducer = 0x5f,
  /** `\` after ESC inside a string: String Terminator. */
  StringTerminator = 0x5c,
}

const DEFAULT_MAX_HELD = 64 * 1024
/** A line whose last run of base64/hex characters is at least this long may be a wrapped encoding. */
const WRAPPED_LINE_MIN = 32
/**
 * A line that ends with at least this many characters of a canary form in progress may be a value
 * the program hard-wrapped (`fold`, `more`): the match goes on across the line break.
 */
const WRAPPED_MATCH_MIN = 8
/** base64, base64url and hex characters (hex is a subset). */
const ENCODING_CHAR = new Uint8Array(256)
for (const char of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_') ENCODING_CHAR[char.charCodeAt(0)] = 1
const TYPED_CAPACITY = 256
const EMPTY = Buffer.alloc(0)

/** A streaming canary over one output stream (a pty, or one of stdout/stderr). */
export function createCanaryStream(automaton: CanaryAutomaton, options: CanaryStreamOptions = {}): OutputMasker & { readonly stats: CanaryStreamStats } {
  return new CanaryStream(automaton, options)
}

class CanaryStream implements OutputMasker {
  readonly stats: CanaryStreamStats = { masked: 0, held: 0, forcedReleases: 0 }
  /** stats.masked at the last {@link masked} call. */
  private reported = 0
  private readonly marker: Buffer
  private readonly maxHeld: number

  /** Absolute offsets: bytes seen, and bytes already released. */
  private consumed = 0
  private released = 0
  /** The bytes in [released, consumed). */
  private pending: Buffer[] = []
  /** Spans to mask, [start, end) pairs, sorted and merged, all at or after `released`. */
  private spans: number[] = []

  private mode = Parse.Ground
  /** The cursors' states, as table rows. */
  private raw = 0
  private visible = 0
  /** Ring of the most recent visible bytes: the state (row) after each, its offset, the byte. */
  private readonly ringMask: number
  private readonly ringState: Uint32Array
  private readonly ringOffset: Float64Array
  private readonly ringByte: Uint8Array
  private ringTop = 0
  private ringCount = 0
  /** The visible state before the oldest entry still in the ring. */
  private baseState = 0
  /** Visible base64/hex characters in a row, line breaks not counted. */
  private encodingRun = 0

  private readonly typed = new Uint8Array(TYPED_CAPACITY)
  private typedLength = 0

  constructor(
    private readonly automaton: CanaryAutomaton,
    options: CanaryStreamOptions,
  ) {
    this.marker = Buffer.from(options.marker ?? CANARY_MARKER)
    this.maxHeld = options.maxHeld ?? DEFAULT_MAX_HELD
    let capacity = 64
    while (capacity < 2 * automaton.maxLength + 64) capacity *= 2
    this.ringMask = capacity - 1
    this.ringState = new Uint32Array(capacity)
    this.ringOffset = new Float64Array(capacity)
    this.ringByte = new Uint8Array(capacity)
  }

  write(chunk: Buffer): Buffer {
    if (chunk.length === 0) return EMPTY
    const wasEmpty = this.pending.length === 0
    this.scan(chunk)
    this.pending.push(chunk)
    const hold = this.holdBoundary()
    if (wasEmpty && hold === this.consumed && this.spans.length === 0) {
      // Nothing held and nothing to mask: the chunk passes as it is.
      this.pending = []
      this.released = this.consumed
      this.stats.held = 0
      return chunk
    }
    return this.release(hold)
  }

  flush(): Buffer {
    return this.release(this.consumed)
  }

  masked(): Record<string, number> {
    const count = this.stats.masked - this.reported
    this.reported = this.stats.masked
    return count === 0 ? {} : { canary: count }
  }

  noteInput(chunk: Buffer): void {
    for (const byte of chunk) {
      if (byte === Byte.Delete || byte === Byte.Backspace) {
        if (this.typedLength > 0) this.typedLength--
      } else if (byte >= Byte.Space) {
        if (this.typedLength === TYPED_CAPACITY) {
          this.typed.copyWithin(0, TYPED_CAPACITY / 2)
          this.typedLength = TYPED_CAPACITY / 2
        }
        this.typed[this.typedLength++] = byte
      }
    }
  }

  /**
   * Runs both cursors and the escape-sequence parser over `chunk`, recording spans to mask. States
   * are kept as table rows (see {@link CanaryAutomaton.delta}). Printable bytes outside escape
   * sequences, nearly all output, take the inline path; everything else goes through `control`.
   */
  private scan(chunk: Buffer): void {
    const { delta, classOf, match } = this.automaton
    const mask = this.ringMask
    const ringState = this.ringState
    const ringOffset = this.ringOffset
    const ringByte = this.ringByte
    const capacity = mask + 1
    const base = this.consumed
    const length = chunk.length
    let raw = this.raw
    let visible = this.visible
    let top = this.ringTop
    let count = this.ringCount
    let run = this.encodingRun
    let ground = this.mode === Parse.Ground

    for (let i = 0; i < length; i++) {
      const byte = chunk[i]!
      const cls = classOf[byte]!
      raw = delta[raw + cls]!
      if (match[raw] !== 0) this.addSpan(base + i + 1 - match[raw]!, base + i + 1)
      if (ground && byte >= Byte.Space) {
        if (byte === Byte.Delete) continue
        visible = delta[visible + cls]!
        run = ENCODING_CHAR[byte] === 1 ? run + 1 : 0
        if (count === capacity) this.baseState = ringState[top]!
        else count++
        ringState[top] = visible
        ringOffset[top] = base + i
        ringByte[top] = byte
        top = (top + 1) & mask
        const found = match[visible]!
        if (found !== 0) this.addSpan(ringOffset[(top - Math.min(found, count)) & mask]!, base + i + 1)
        // In ground state other C0 controls are not displayed.
      } else if (!ground || byte === Byte.Escape || byte === Byte.Backspace || byte === Byte.LineFeed || byte === Byte.CarriageReturn) {
        this.visible = visible
        this.ringTop = top
        this.ringCount = count
        this.encodingRun = run
        this.control(byte, base + i)
        visible = this.visible
        top = this.ringTop
        count = this.ringCount
        run = this.encodingRun
        ground = this.mode === Parse.Ground
      }
    }
    this.raw = raw
    this.visible = visible
    this.ringTop = top
    this.ringCount = count
    this.encodingRun = run
    this.consumed = base + length
  }

  /** One byte that is not plain printable output: the escape-sequence parser and backspace. */
  private control(byte: number, offset: number): void {
    switch (this.mode) {
      case Parse.Ground:
        if (byte === Byte.Escape) {
          this.mode = Parse.Escape
        } else if (byte === Byte.LineFeed || byte === Byte.CarriageReturn) {
          // Not part of a match: skipped inside a wrapped encoding or a long unfinished match (a
          // wrapped value), a boundary anywhere else.
          const { depth, match } = this.automaton
          const unfinished = depth[this.visible]! >= WRAPPED_MATCH_MIN && match[this.visible] === 0
          if (this.encodingRun < WRAPPED_LINE_MIN && !unfinished) {
            this.visible = 0
            this.baseState = 0
            this.ringCount = 0
          }
        } else if (byte === Byte.Backspace && this.ringCount > 0) {
          // Erase one character: a UTF-8 sequence's continuation bytes go with their lead byte.
          let erased: number
          do {
            this.ringTop = (this.ringTop - 1) & this.ringMask
            this.ringCount--
            erased = this.ringByte[this.ringTop]!
          } while (this.ringCount > 0 && (erased & 0xc0) === 0x80)
          this.visible = this.ringCount > 0 ? this.ringState[(this.ringTop - 1) & this.ringMask]! : this.baseState
        }
        return
      case Parse.Escape:
        if (byte === Byte.CsiIntroducer) this.mode = Parse.Csi
        else if (
          byte === Byte.OscIntroducer ||
          byte === Byte.DcsIntroducer ||
          byte === Byte.SosIntroducer ||
          byte === Byte.PmIntroducer ||
          byte === Byte.ApcIntroducer
        )
          this.mode = Parse.String
        else if (byte >= 0x20 && byte <= 0x2f) this.mode = Parse.EscapeIntermediate
        else if (byte >= 0x30 && byte <= 0x7e) this.mode = Parse.Ground
        else this.endSequence(byte, offset)
        // ESC restarts the sequence; other C0 controls execute without ending it.
        return
      case Parse.EscapeIntermediate:
        if (byte >= 0x30 && byte <= 0x7e) this.mode = Parse.Ground
        else if (byte < 0x20 || byte > 0x2f) this.endSequence(byte, offset)
        return
      case Parse.Csi:
        if (byte >= 0x40 && byte <= 0x7e) this.mode = Parse.Ground
        else if (byte < 0x20 || byte > 0x3f) this.endSequence(byte, offset)
        return
      case Parse.String:
        if (byte === Byte.Bell || byte === Byte.Cancel || byte === Byte.Substitute) this.mode = Parse.Ground
        else if (byte === Byte.Escape) this.mode = Parse.StringEscape
        return
      case Parse.StringEscape:
        // ESC \ ends the string; ESC followed by anything else ends it and starts a new sequence.
        if (byte === Byte.StringTerminator) {
          this.mode = Parse.Ground
        } else {
          this.mode = Parse.Escape
          this.control(byte, offset)
        }
        return
    }
  }

  /**
   * A byte that does not continue an escape sequence: ESC restarts it, CAN and SUB abort it, other C0
   * controls execute inside it, and a non-ASCII byte aborts it and is displayed (so it is read as
   * output, the conservative choice).
   */
  private endSequence(byte: number, offset: number): void {
    if (byte === Byte.Escape) {
      this.mode = Parse.Escape
    } else if (byte === Byte.Cancel || byte === Byte.Substitute) {
      this.mode = Parse.Ground
    } else if (byte >= 0x80) {
      this.mode = Parse.Ground
      this.pushVisible(byte, offset)
    }
  }

  private pushVisible(byte: number, offset: number): void {
    const { delta, classOf, match } = this.automaton
    const top = this.ringTop
    this.visible = delta[this.visible + classOf[byte]!]!
    if (this.ringCount === this.ringMask + 1) this.baseState = this.ringState[top]!
    else this.ringCount++
    this.ringState[top] = this.visible
    this.ringOffset[top] = offset
    this.ringByte[top] = byte
    this.ringTop = (top + 1) & this.ringMask
    const length = match[this.visible]!
    if (length !== 0) this.addSpan(this.ringOffset[(top + 1 - Math.min(length, this.ringCount)) & this.ringMask]!, offset + 1)
  }

  private addSpan(start: number, end: number): void {
    if (end <= this.released) return
    let from = Math.max(start, this.released)
    const spans = this.spans
    while (spans.length > 0 && spans[spans.length - 1]! >= from) {
      from = Math.min(from, spans[spans.length - 2]!)
      spans.length -= 2
    }
    spans.push(from, end)
  }

  /** Offset of the k-th most recent visible byte (1 = the last). */
  private visibleOffset(k: number): number {
    const index = Math.min(k, this.ringCount)
    return this.ringOffset[(this.ringTop - index) & this.ringMask]!
  }

  /** Where the output that must still be held starts. */
  private holdBoundary(): number {
    const { depth } = this.automaton
    let hold = this.consumed
    if (this.ringCount > 0) {
      const live = depth[this.visible]!
      if (live > 0) hold = Math.min(hold, this.visibleOffset(live))
      const before = this.ringCount > 1 ? this.ringState[(this.ringTop - 2) & this.ringMask]! : this.baseState
      const provisional = depth[before]!
      if (provisional > 0) hold = Math.min(hold, this.visibleOffset(provisional + 1))
    }
    const rawLive = depth[this.raw]!
    if (rawLive > 0) hold = Math.min(hold, this.consumed - rawLive)
    hold = Math.max(hold, this.released)

    if (hold < this.consumed && this.isEcho(hold, rawLive)) hold = this.consumed
    if (this.consumed - hold > this.maxHeld) {
      this.maskHeld(hold, rawLive)
      hold = this.consumed
      this.stats.forcedReleases++
    }
    // A completed match that covers all that is held goes out now: should a longer form complete
    // later, its own part after this span is masked then.
    const spans = this.spans.length
    if (spans > 0 && this.spans[spans - 2]! <= hold && this.spans[spans - 1] === this.consumed) hold = this.consumed
    // A span is released whole or not at all.
    for (let i = 0; i < this.spans.length; i += 2) {
      if (this.spans[i]! < hold && this.spans[i + 1]! > hold) {
        hold = this.spans[i]!
        break
      }
    }
    return hold
  }

  /**
   * A forced release: what is held from `hold` on could be the start of a secret, so its visible
   * characters (from the first to the last) and the raw cursor's live tail are masked.
   */
  private maskHeld(hold: number, rawLive: number): void {
    let held = 0
    while (held < this.ringCount && this.visibleOffset(held + 1) >= hold) held++
    if (held > 0) this.insertSpan(this.visibleOffset(held), this.visibleOffset(1) + 1)
    if (rawLive > 0) this.insertSpan(Math.max(hold, this.consumed - rawLive), this.consumed)
  }

  /** Adds [start, end) to the sorted, merged spans wherever it falls among them. */
  private insertSpan(start: number, end: number): void {
    let from = Math.max(start, this.released)
    let to = end
    if (to <= from) return
    const merged: number[] = []
    let placed = false
    for (let i = 0; i < this.spans.length; i += 2) {
      const spanStart = this.spans[i]!
      const spanEnd = this.spans[i + 1]!
      if (spanEnd < from) {
        merged.push(spanStart, spanEnd)
      } else if (spanStart > to) {
        if (!placed) merged.push(from, to)
        placed = true
        merged.push(spanStart, spanEnd)
      } else {
        from = Math.min(from, spanStart)
        to = Math.max(to, spanEnd)
      }
    }
    if (!placed) merged.push(from, to)
    this.spans = merged
  }

  /** Whether everything held from `hold` on repeats the end of what the user typed. */
  private isEcho(hold: number, rawLive: number): boolean {
    if (this.typedLength === 0) return false
    let visibleHeld = 0
    while (visibleHeld < this.ringCount && this.visibleOffset(visibleHeld + 1) >= hold) visibleHeld++
    if (visibleHeld === 0 || visibleHeld > this.typedLength) return false
    for (let k = 1; k <= visibleHeld; k++) {
      if (this.ringByte[(this.ringTop - k) & this.ringMask] !== this.typed[this.typedLength - k]) return false
    }
    if (rawLive > visibleHeld) return false
    const tail = this.tail(rawLive)
    for (let k = 1; k <= rawLive; k++) if (tail[tail.length - k] !== this.typed[this.typedLength - k]) return false
    return true
  }

  /** The last `length` pending bytes. */
  private tail(length: number): Buffer {
    if (length === 0) return EMPTY
    const last = this.pending[this.pending.length - 1]!
    if (last.length >= length) return last.subarray(last.length - length)
    const all = Buffer.concat(this.pending)
    return all.subarray(all.length - length)
  }

  /** Emits [released, hold) with every span in it replaced by the marker. */
  private release(hold: number): Buffer {
    const parts: Buffer[] = []
    let at = this.released
    while (this.spans.length > 0 && this.spans[0]! < hold) {
      const start = this.spans[0]!
      const end = this.spans[1]!
      if (start > at) parts.push(this.take(start - at))
      this.take(end - start)
      parts.push(this.marker)
      this.stats.masked++
      at = end
      this.spans.splice(0, 2)
    }
    if (hold > at) parts.push(this.take(hold - at))
    this.released = Math.max(this.released, hold)
    this.stats.held = this.consumed - this.released
    if (parts.length === 0) return EMPTY
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** Removes and returns the first `length` pending bytes. */
  private take(length: number): Buffer {
    const first = this.pending[0]!
    if (first.length > length) {
      this.pending[0] = first.subarray(length)
      return first.subarray(0, length)
    }
    if (first.length === length) {
      this.pending.shift()
      return first
    }
    const parts: Buffer[] = []
    let left = length
    while (left > 0) {
      const head = this.pending[0]!
      if (head.length <= left) {
        parts.push(head)
        this.pending.shift()
        left -= head.length
      } else {
        parts.push(head.subarray(0, left))
        this.pending[0] = head.subarray(left)
        left = 0
      }
    }
    return Buffer.concat(parts)
  }
}
