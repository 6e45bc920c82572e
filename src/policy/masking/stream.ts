/**
 * Masking over a byte stream (command output): bytes are held back only while their tail could
 * still become part of a finding; everything before is masked and released.
 *
 * Output is released up to a cut, always at the start of a line or of a word, and never inside a
 * finding. Complete lines are final (no detector pattern crosses a line break but private-key
 * blocks); the cut moves back:
 * - in the unfinished last line, to the start of its last word (an address, key or token may go
 *   on), of a trailing run of digit groups (`+1 415 555 `) or of a trailing IBAN in groups;
 * - to the start of the last line when it names a credential (`password`, `token`, `AKIA...`,
 *   `AccountKey`, ...): what follows on the line may be the value (`Password: ` is held);
 * - to the start of the last line when custom patterns are configured (they may span words);
 * - to the line of an open `-----BEGIN ... PRIVATE KEY-----` without its END line;
 * - to the word or line where the end could be the start of a canary form (encodings wrap over
 *   lines);
 * - to the line or word where a finding that crosses the cut starts.
 *
 * Held output is released by the next write that completes it or by {@link MaskingStream.flush};
 * an engine should flush when output pauses, so a held prompt still appears.
 */
import type { Canary } from './canary.js'
import { CREDENTIAL_WORDS } from './detectors.js'

/** What the stream needs of a masker. */
export interface StreamContext {
  /** The masked form of one text, or undefined when unchanged. */
  mask(bytes: Buffer): Buffer | undefined
  /** Where findings are in one text: [start, end) pairs, merged. */
  findings(bytes: Buffer): number[]
  canary: Canary | undefined
  /** Custom patterns may span words: hold the whole unfinished line. */
  holdLines: boolean
}

export interface MaskingStreamOptions {
  /** Held output beyond this many bytes is masked and released anyway (default 64 KiB). */
  maxHeld?: number
}

/** Same shape as the command engine's `OutputMasker`, so it can be chained after the canary stream. */
export interface MaskingStream {
  /** What may be released now, masked: possibly less than given, never more than seen. */
  write(chunk: Buffer): Buffer
  /** Everything still held, masked. The stream stays usable: call it when output pauses. */
  flush(): Buffer
}

const DEFAULT_MAX_HELD = 64 * 1024
const EMPTY = Buffer.alloc(0)

/** A credential named on the line: the rest of the line may be its value. */
const CREDENTIAL_WORD = new RegExp(`${CREDENTIAL_WORDS}|authorization|AKIA|ASIA|ABIA|ACCA|AccountKey|SharedAccess`, 'i')
/** Digits with separators up to the end: a phone or card number may go on. */
const PENDING_DIGITS = /[+(]?\d[\d ().\-/]*$/
/** An IBAN in groups up to the end. */
const PENDING_IBAN = /[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4})* ?$/
/** The start of a private-key block (or of its header) up to the end. */
const PENDING_PEM = /-----BEGIN[A-Z0-9 -]*$/
const PEM_BEGIN = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/g
const PEM_END = /-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----/
/** How far from the end of the last line pending digits and IBANs are looked for. */
const PENDING_REACH = 512

export function createMaskingStream(context: StreamContext, options: MaskingStreamOptions = {}): MaskingStream {
  const maxHeld = options.maxHeld ?? DEFAULT_MAX_HELD
  let held: Buffer = EMPTY
  // Chunks written since `held` was last looked at, and their size.
  let unseen: Buffer[] = []
  let unseenBytes = 0

  const release = (bytes: Buffer): Buffer => (bytes.length === 0 ? EMPTY : (context.mask(bytes) ?? bytes))

  return {
    write(chunk) {
      // Held output is looked at again when a blank (a word or line may have ended) arrives, or
      // when it has doubled: a long word written a byte at a time costs linear time, not
      // quadratic. Holding longer only delays (a pause flushes).
      if (held.length > 0 && held.length + unseenBytes + chunk.length <= maxHeld && unseenBytes + chunk.length < held.length && !chunk.some(isBlank)) {
        unseen.push(chunk)
        unseenBytes += chunk.length
        return EMPTY
      }
      held = held.length === 0 ? chunk : Buffer.concat([held, ...unseen, chunk])
      unseen = []
      unseenBytes = 0
      const cut = held.length > maxHeld ? held.length : safeCut(held, context)
      if (cut === 0) return EMPTY
      const out = release(held.subarray(0, cut))
      // Keep the held bytes only, not the caller's whole chunk.
      held = cut === held.length ? EMPTY : Buffer.from(held.subarray(cut))
      return out
    },
    flush() {
      const out = release(unseenBytes === 0 ? held : Buffer.concat([held, ...unseen]))
      held = EMPTY
      unseen = []
      unseenBytes = 0
      return out
    },
  }
}

function isBlank(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d)
}

/** The offset up to which `bytes` can be masked and released without cutting a finding short. */
function safeCut(bytes: Buffer, context: StreamContext): number {
  const text = bytes.toString('latin1')
  const lastLine = text.lastIndexOf('\n') + 1
  const lineOf = (offset: number): number => text.lastIndexOf('\n', offset - 1) + 1
  const wordOf = (offset: number): number => {
    let start = offset
    while (start > 0 && !isBlank(text.charCodeAt(start - 1))) start--
    return start
  }
  let cut = text.length
  const holdFrom = (offset: number): void => {
    if (offset < cut) cut = offset
  }

  const line = text.slice(lastLine)
  if (line.length > 0) {
    if (context.holdLines || CREDENTIAL_WORD.test(line)) {
      holdFrom(lastLine)
    } else {
      holdFrom(wordOf(text.length))
      const tailStart = Math.max(0, line.length - PENDING_REACH)
      const tail = line.slice(tailStart)
      for (const pattern of [PENDING_DIGITS, PENDING_IBAN, PENDING_PEM]) {
        const match = pattern.exec(tail)
        if (match !== null && match[0].length > 0) holdFrom(wordOf(lastLine + tailStart + match.index))
      }
    }
  }
  PEM_BEGIN.lastIndex = 0
  let lastBegin = -1
  for (let match = PEM_BEGIN.exec(text); match !== null; match = PEM_BEGIN.exec(text)) lastBegin = match.index
  if (lastBegin >= 0 && !PEM_END.test(text.slice(lastBegin))) holdFrom(lineOf(lastBegin))
  if (context.canary !== undefined) {
    const pending = context.canary.pendingFrom(text)
    if (pending < text.length) holdFrom(pending >= lastLine ? wordOf(pending) : lineOf(pending))
  }

  if (cut > 0 && cut < text.length) {
    // Never inside a finding: back to the line (or, in the last line, the word) where it starts.
    const findings = context.findings(bytes)
    for (let moved = true; moved && cut > 0; ) {
      moved = false
      for (let i = 0; i < findings.length; i += 2) {
        if (findings[i]! < cut && findings[i + 1]! > cut) {
          const start = findings[i]!
          cut = start >= lastLine ? wordOf(start) : lineOf(start)
          moved = true
        }
      }
    }
  }
  // Whole UTF-8 characters only (a cut at a line or word start always is one; maxHeld may not be).
  while (cut > 0 && cut < bytes.length && (bytes[cut]! & 0xc0) === 0x80) cut--
  return cut
}
