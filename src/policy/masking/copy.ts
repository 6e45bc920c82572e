/**
 * COPY ... TO STDOUT data lines: split into fields and unescaped, so detectors see the values a
 * client will read, then written back with the same escaping. PostgreSQL sends one row per
 * CopyData message, newline included.
 *
 * Text format: fields separated by the delimiter (tab), `\N` for NULL, backslash escapes
 * (`\\`, `\n`, `\t`, `\r`, `\b`, `\f`, `\v`, octal `\ooo`, hex `\xHH`, `\` + any other byte).
 * CSV: fields separated by the delimiter (`,`), quoted with `"` when needed, a quote inside
 * doubled (or preceded by the ESCAPE character); NULL is an unquoted empty field.
 */

/** The COPY options that shape a data line, as in the statement's `WITH (...)`. */
export interface CopyFormat {
  format: 'text' | 'csv'
  /** One byte; default tab (text) or `,` (csv). */
  delimiter?: string
  /** The NULL spelling; default `\N` (text) or the empty string (csv). */
  null?: string
  /** csv: the quote byte, default `"`. */
  quote?: string
  /** csv: the escape byte, default the quote. */
  escape?: string
}

/** A COPY format with every option filled in, as bytes. */
export interface CopyDialect {
  csv: boolean
  delimiter: number
  null: Buffer
  quote: number
  escape: number
}

const BACKSLASH = 0x5c
const NEWLINE = 0x0a
const RETURN = 0x0d

export function dialectOf(format: CopyFormat): CopyDialect {
  const csv = format.format === 'csv'
  const byte = (value: string | undefined, fallback: string, what: string): number => {
    const bytes = Buffer.from(value ?? fallback, 'utf8')
    if (bytes.length !== 1) throw new TypeError(`COPY ${what} must be one byte`)
    return bytes[0]!
  }
  const quote = byte(format.quote, '"', 'QUOTE')
  return {
    csv,
    delimiter: byte(format.delimiter, csv ? ',' : '\t', 'DELIMITER'),
    null: Buffer.from(format.null ?? (csv ? '' : '\\N'), 'utf8'),
    quote,
    escape: format.escape === undefined ? quote : byte(format.escape, '"', 'ESCAPE'),
  }
}

/** One parsed line: the values and the raw bytes of each field as sent. */
export interface CopyLine {
  values: (Buffer | null)[]
  raw: Buffer[]
  /** What ended the line (`\n`, `\r\n`, or nothing). */
  ending: Buffer
}

/** Splits and unescapes `line`; undefined when it is not well-formed (an unterminated CSV quote). */
export function parseCopyLine(line: Buffer, dialect: CopyDialect): CopyLine | undefined {
  let end = line.length
  if (end > 0 && line[end - 1] === NEWLINE) end--
  if (dialect.csv && end > 0 && line[end - 1] === RETURN) end--
  const ending = line.subarray(end)
  const body = line.subarray(0, end)
  return dialect.csv ? parseCsv(body, ending, dialect) : parseText(body, ending, dialect)
}

function parseText(body: Buffer, ending: Buffer, dialect: CopyDialect): CopyLine {
  const values: (Buffer | null)[] = []
  const raw: Buffer[] = []
  if (!body.includes(BACKSLASH)) {
    // Nothing escaped: the fields are what lies between delimiters (found by memchr, not a loop here).
    for (let start = 0; ; ) {
      let stop = body.indexOf(dialect.delimiter, start)
      if (stop < 0) stop = body.length
      const field = body.subarray(start, stop)
      raw.push(field)
      values.push(field.equals(dialect.null) ? null : field)
      if (stop >= body.length) return { values, raw, ending }
      start = stop + 1
    }
  }
  let start = 0
  let escaped = false
  for (let i = 0; i <= body.length; i++) {
    if (i < body.length) {
      const byte = body[i]!
      if (byte === BACKSLASH) {
        escaped = true
        i++
        continue
      }
      if (byte !== dialect.delimiter) continue
    }
    const field = body.subarray(start, i)
    raw.push(field)
    values.push(field.equals(dialect.null) ? null : escaped ? unescapeText(field) : field)
    start = i + 1
    escaped = false
  }
  return { values, raw, ending }
}

const SIMPLE_ESCAPES: Readonly<Record<number, number>> = {
  0x62: 0x08, // b
  0x66: 0x0c, // f
  0x6e: 0x0a, // n
  0x72: 0x0d, // r
  0x74: 0x09, // t
  0x76: 0x0b, // v
}

function unescapeText(field: Buffer): Buffer {
  const out = Buffer.allocUnsafe(field.length)
  let length = 0
  for (let i = 0; i < field.length; i++) {
    const byte = field[i]!
    if (byte !== BACKSLASH || i + 1 >= field.length) {
      out[length++] = byte
      continue
    }
    const next = field[++i]!
    if (next >= 0x30 && next <= 0x37) {
      let value = next - 0x30
      for (let digits = 1; digits < 3 && i + 1 < field.length && field[i + 1]! >= 0x30 && field[i + 1]! <= 0x37; digits++) value = value * 8 + field[++i]! - 0x30
      out[length++] = value & 0xff
    } else if (next === 0x78 /* x */ && i + 1 < field.length && isHex(field[i + 1]!)) {
      let value = hexValue(field[++i]!)
      if (i + 1 < field.length && isHex(field[i + 1]!)) value = value * 16 + hexValue(field[++i]!)
      out[length++] = value
    } else {
      out[length++] = SIMPLE_ESCAPES[next] ?? next
    }
  }
  return out.subarray(0, length)
}

function isHex(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x66)
}

function hexValue(byte: number): number {
  return byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x61 + 10
}

function parseCsv(body: Buffer, ending: Buffer, dialect: CopyDialect): CopyLine | undefined {
  const values: (Buffer | null)[] = []
  const raw: Buffer[] = []
  let i = 0
  for (;;) {
    const start = i
    let value: Buffer | null
    if (i < body.length && body[i] === dialect.quote) {
      const pieces: Buffer[] = []
      i++
      for (;;) {
        // Up to the next quote or escape byte in one piece (memchr), then that byte.
        let next = body.indexOf(dialect.quote, i)
        if (dialect.escape !== dialect.quote) {
          const escape = body.indexOf(dialect.escape, i)
          if (escape >= 0 && (next < 0 || escape < next)) next = escape
        }
        if (next < 0) return undefined
        if (next > i) pieces.push(body.subarray(i, next))
        i = next
        const byte = body[i]!
        if (byte === dialect.escape && i + 1 < body.length && (body[i + 1] === dialect.quote || body[i + 1] === dialect.escape) && (byte !== dialect.quote || body[i + 1] === dialect.quote)) {
          pieces.push(body.subarray(i + 1, i + 2))
          i += 2
        } else if (byte === dialect.quote) {
          i++
          break
        } else {
          pieces.push(body.subarray(i, i + 1))
          i++
        }
      }
      if (i < body.length && body[i] !== dialect.delimiter) return undefined
      value = Buffer.concat(pieces)
    } else {
      while (i < body.length && body[i] !== dialect.delimiter) i++
      const field = body.subarray(start, i)
      value = field.equals(dialect.null) ? null : field
    }
    values.push(value)
    raw.push(body.subarray(start, i))
    if (i >= body.length) break
    i++ // the delimiter
  }
  return { values, raw, ending }
}

/** Text format: the letter after a backslash for each byte that must be escaped (0: written as it is); {@link SIMPLE_ESCAPES} reversed. */
const TEXT_ESCAPES = new Uint8Array(256)
TEXT_ESCAPES[BACKSLASH] = BACKSLASH
for (const [letter, byte] of Object.entries(SIMPLE_ESCAPES)) TEXT_ESCAPES[byte] = Number(letter)
const TEXT_SPECIALS = [...TEXT_ESCAPES.keys()].filter((byte) => TEXT_ESCAPES[byte] !== 0)

/** A field value written back: escaped (text) or quoted (csv); null as the NULL spelling. */
export function writeCopyField(value: Buffer | null, dialect: CopyDialect): Buffer {
  if (value === null) return dialect.null
  // The common case, nothing to escape, found by memchr rather than a loop here.
  if (dialect.csv) {
    if (!value.includes(dialect.quote) && !value.includes(dialect.escape)) return Buffer.concat([Buffer.of(dialect.quote), value, Buffer.of(dialect.quote)])
  } else if (!value.includes(dialect.delimiter) && !TEXT_SPECIALS.some((byte) => value.includes(byte))) {
    return value
  }
  // At most two bytes out per byte in, and the quotes.
  const out = Buffer.allocUnsafe(value.length * 2 + 2)
  let at = 0
  if (dialect.csv) {
    out[at++] = dialect.quote
    for (const byte of value) {
      if (byte === dialect.quote || byte === dialect.escape) out[at++] = dialect.escape
      out[at++] = byte
    }
    out[at++] = dialect.quote
  } else {
    for (const byte of value) {
      const escape = TEXT_ESCAPES[byte] !== 0 ? TEXT_ESCAPES[byte]! : byte === dialect.delimiter ? byte : 0
      if (escape !== 0) out[at++] = BACKSLASH
      out[at++] = escape !== 0 ? escape : byte
    }
  }
  return out.subarray(0, at)
}

/** Scratch for {@link writeCopyLine}: the changed fields of the line being written, as written. */
const written: (Buffer | undefined)[] = []

/**
 * `source` (the line `line` was parsed from) with its `changed` fields (a value that is not the
 * parsed one) written in place of theirs: the fields that stay are copied from `source` in runs
 * between the changed ones. With `headroom`, the line starts that many bytes into the result,
 * for the caller's message header.
 */
export function writeCopyLine(source: Buffer, line: CopyLine, changed: readonly (Buffer | null)[], dialect: CopyDialect, headroom = 0): Buffer {
  let size = headroom + source.length
  for (let i = 0; i < line.raw.length; i++) {
    if (changed[i] === line.values[i]) continue
    const field = writeCopyField(changed[i] ?? null, dialect)
    written[i] = field
    size += field.length - line.raw[i]!.length
  }
  const out = Buffer.allocUnsafe(size)
  let at = headroom
  let from = 0
  for (let i = 0; i < line.raw.length; i++) {
    const field = written[i]
    if (field === undefined) continue
    written[i] = undefined
    const raw = line.raw[i]!
    const start = raw.byteOffset - source.byteOffset
    at += source.copy(out, at, from, start)
    at += field.copy(out, at)
    from = start + raw.length
  }
  source.copy(out, at, from)
  return out
}
