/**
 * Binary result values rebuilt from their text form. With masking on, the gateway asks the server
 * for text (masking reads text), and sends a client that asked for binary the binary encoding
 * (PostgreSQL's `typsend`) of the masked text. Only types whose text form is unambiguous are
 * supported; any other type in binary is refused before it runs (see the relay).
 *
 * Dates and timestamps need `DateStyle` ISO: their text form depends on it.
 */
import { AirlockError } from '../../errors.js'

/** Text bytes of one value → its binary encoding. Throws AirlockError `blocked` on text it cannot read. */
export type BinaryEncoder = (text: Buffer) => Buffer

/** Type OIDs with a binary encoder (pg_type.oid). */
export const enum TypeOid {
  Bool = 16,
  Bytea = 17,
  Char = 18,
  Name = 19,
  Int8 = 20,
  Int2 = 21,
  Int4 = 23,
  Text = 25,
  Oid = 26,
  Json = 114,
  Float4 = 700,
  Float8 = 701,
  Unknown = 705,
  Bpchar = 1042,
  Varchar = 1043,
  Date = 1082,
  Timestamp = 1114,
  Timestamptz = 1184,
  Uuid = 2950,
  Jsonb = 3802,
}

const identity: BinaryEncoder = (text) => text

/**
 * The encoder for `typeOid`, or undefined when the type cannot be sent in binary under masking.
 * `isoDates`: the session's DateStyle is ISO, so date and timestamp texts can be read.
 */
export function binaryEncoder(typeOid: number, isoDates: boolean): BinaryEncoder | undefined {
  switch (typeOid) {
    case TypeOid.Text:
    case TypeOid.Varchar:
    case TypeOid.Bpchar:
    case TypeOid.Name:
    case TypeOid.Char:
    case TypeOid.Unknown:
    case TypeOid.Json:
      // The binary form of a text-like type is its text in the client encoding.
      return identity
    case TypeOid.Jsonb:
      return encodeJsonb
    case TypeOid.Bool:
      return encodeBool
    case TypeOid.Int2:
      return (text) => integer(text, 2)
    case TypeOid.Int4:
      return (text) => integer(text, 4)
    case TypeOid.Oid:
      return encodeOid
    case TypeOid.Int8:
      return encodeInt8
    case TypeOid.Float4:
      return (text) => float(text, 4)
    case TypeOid.Float8:
      return (text) => float(text, 8)
    case TypeOid.Bytea:
      return encodeBytea
    case TypeOid.Uuid:
      return encodeUuid
    case TypeOid.Date:
      return isoDates ? encodeDate : undefined
    case TypeOid.Timestamp:
      return isoDates ? (text) => encodeTimestamp(text, false) : undefined
    case TypeOid.Timestamptz:
      return isoDates ? (text) => encodeTimestamp(text, true) : undefined
    default:
      return undefined
  }
}

function unreadable(what: string): AirlockError {
  // The value itself never goes into the message: it may be what masking is there to hide.
  return new AirlockError('blocked', `a ${what} value could not be converted to binary format for the client`, {
    hint: 'ask for text results (node-postgres: leave `binary` off)',
  })
}

/** jsonb's binary form: a version byte (1), then the text. */
function encodeJsonb(text: Buffer): Buffer {
  const out = Buffer.allocUnsafe(text.length + 1)
  out[0] = 1
  text.copy(out, 1)
  return out
}

function encodeBool(text: Buffer): Buffer {
  if (text.length === 1 && text[0] === 0x74 /* t */) return Buffer.of(1)
  if (text.length === 1 && text[0] === 0x66 /* f */) return Buffer.of(0)
  throw unreadable('boolean')
}

const INTEGER = /^-?\d+$/

function integer(text: Buffer, size: 2 | 4): Buffer {
  const string = text.toString('latin1')
  if (!INTEGER.test(string)) throw unreadable('integer')
  const value = Number(string)
  const out = Buffer.allocUnsafe(size)
  if (size === 2) {
    if (value < -0x8000 || value > 0x7fff) throw unreadable('integer')
    out.writeInt16BE(value)
  } else {
    if (value < -0x80000000 || value > 0x7fffffff) throw unreadable('integer')
    out.writeInt32BE(value)
  }
  return out
}

function encodeOid(text: Buffer): Buffer {
  const string = text.toString('latin1')
  if (!/^\d+$/.test(string) || Number(string) > 0xffffffff) throw unreadable('oid')
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(Number(string))
  return out
}

function encodeInt8(text: Buffer): Buffer {
  const string = text.toString('latin1')
  if (!INTEGER.test(string)) throw unreadable('bigint')
  const value = BigInt(string)
  if (value < -(2n ** 63n) || value >= 2n ** 63n) throw unreadable('bigint')
  const out = Buffer.allocUnsafe(8)
  out.writeBigInt64BE(value)
  return out
}

const FLOAT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/

function float(text: Buffer, size: 4 | 8): Buffer {
  const string = text.toString('latin1')
  let value: number
  if (string === 'NaN') value = Number.NaN
  else if (string === 'Infinity') value = Number.POSITIVE_INFINITY
  else if (string === '-Infinity') value = Number.NEGATIVE_INFINITY
  else if (FLOAT.test(string)) value = Number(string)
  else throw unreadable('floating-point')
  const out = Buffer.allocUnsafe(size)
  if (size === 4) out.writeFloatBE(value)
  else out.writeDoubleBE(value)
  return out
}

/** bytea in either `bytea_output`: `\x` and hex digits, or the escape format (`\\`, `\ooo`, other bytes as is). */
function encodeBytea(text: Buffer): Buffer {
  if (text.length >= 2 && text[0] === 0x5c && text[1] === 0x78 /* \x */) {
    const hex = text.toString('latin1', 2)
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw unreadable('bytea')
    return Buffer.from(hex, 'hex')
  }
  const out = Buffer.allocUnsafe(text.length)
  let length = 0
  for (let i = 0; i < text.length; i++) {
    const byte = text[i]!
    if (byte !== 0x5c) {
      out[length++] = byte
    } else if (text[i + 1] === 0x5c) {
      out[length++] = 0x5c
      i++
    } else {
      const octal = text.toString('latin1', i + 1, i + 4)
      if (!/^[0-3][0-7]{2}$/.test(octal)) throw unreadable('bytea')
      out[length++] = Number.parseInt(octal, 8)
      i += 3
    }
  }
  return out.subarray(0, length)
}

function encodeUuid(text: Buffer): Buffer {
  const hex = text.toString('latin1').replaceAll('-', '')
  if (hex.length !== 32 || !/^[0-9a-fA-F]+$/.test(hex)) throw unreadable('uuid')
  return Buffer.from(hex, 'hex')
}

/** Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/** PostgreSQL's binary dates and timestamps count from 2000-01-01. */
const POSTGRES_EPOCH_DAYS = daysFromCivil(2000, 1, 1)
const MICROS_PER_DAY = 86_400_000_000n

/** ISO year, month, day; ` BC` years count 1 BC as year 0. */
function isoDays(year: string, month: string, day: string, bc: string | undefined, what: string): number {
  const y = Number(year)
  const m = Number(month)
  const d = Number(day)
  if (m < 1 || m > 12 || d < 1 || d > 31) throw unreadable(what)
  return daysFromCivil(bc === undefined ? y : 1 - y, m, d) - POSTGRES_EPOCH_DAYS
}

const DATE = /^(\d{4,})-(\d\d)-(\d\d)( BC)?$/

function encodeDate(text: Buffer): Buffer {
  const string = text.toString('latin1')
  const out = Buffer.allocUnsafe(4)
  if (string === 'infinity') out.writeInt32BE(0x7fffffff)
  else if (string === '-infinity') out.writeInt32BE(-0x80000000)
  else {
    const match = DATE.exec(string)
    if (match === null) throw unreadable('date')
    out.writeInt32BE(isoDays(match[1]!, match[2]!, match[3]!, match[4], 'date'))
  }
  return out
}

const TIMESTAMP = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$/

function encodeTimestamp(text: Buffer, zoned: boolean): Buffer {
  const string = text.toString('latin1')
  const what = zoned ? 'timestamptz' : 'timestamp'
  const out = Buffer.allocUnsafe(8)
  if (string === 'infinity') out.writeBigInt64BE(2n ** 63n - 1n)
  else if (string === '-infinity') out.writeBigInt64BE(-(2n ** 63n))
  else {
    const match = TIMESTAMP.exec(string)
    if (match === null || (match[8] !== undefined) !== zoned) throw unreadable(what)
    const [, year, month, day, hours, minutes, seconds, fraction, sign, offsetHours, offsetMinutes, offsetSeconds, bc] = match
    const days = isoDays(year!, month!, day!, bc, what)
    let micros = BigInt(days) * MICROS_PER_DAY
    micros += BigInt((Number(hours) * 3600 + Number(minutes) * 60 + Number(seconds)) * 1_000_000 + Number((fraction ?? '').padEnd(6, '0')))
    if (sign !== undefined) {
      // The text is local time at the offset: UTC = local - offset.
      const offset = (Number(offsetHours) * 3600 + Number(offsetMinutes ?? 0) * 60 + Number(offsetSeconds ?? 0)) * 1_000_000
      micros -= BigInt(sign === '-' ? -offset : offset)
    }
    out.writeBigInt64BE(micros)
  }
  return out
}
