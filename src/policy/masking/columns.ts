/**
 * Columns: which rule masks a column (case-insensitive globs on its name), and what its type can
 * hold, so the prefilter does not look for phone numbers in a timestamp.
 */

/** `text`: a masked column's type as the client is told it (RowDescription). */
export const TEXT_OID = 25

/** What the values of a column can hold, by type. */
export const enum Profile {
  /** Text, arrays, records, enums, unknown types: every detector; a finding becomes its label. */
  Text,
  /** json/jsonb: every detector; a label outside a string is written as a JSON string, so the value still parses. */
  Json,
  /**
   * Numbers: a card number stored as `numeric`/`int8` is still one. A finding nulls the value
   * (a label is not a number, and a driver parsing the column would fail).
   */
  Number,
  /** Dates, times, booleans, UUIDs, addresses; and bytea, whose text form is hex: the canary only; a finding nulls the value. */
  Opaque,
}

const JSON_TYPES = new Set([114 /* json */, 3802 /* jsonb */])

const NUMBER_TYPES = new Set([
  20, // int8
  21, // int2
  23, // int4
  26, // oid
  28, // xid
  700, // float4
  701, // float8
  790, // money
  1700, // numeric
  5069, // xid8
])

const OPAQUE_TYPES = new Set([
  16, // bool
  17, // bytea: hex (or escape) text; the canary's hex form covers a secret cast to bytea
  27, // tid
  650, // cidr
  774, // macaddr8
  829, // macaddr
  869, // inet
  1001, // bytea[]
  1082, // date
  1083, // time
  1114, // timestamp
  1184, // timestamptz
  1186, // interval
  1266, // timetz
  1560, // bit
  1562, // varbit
  2950, // uuid
  3220, // pg_lsn
])

/** The profile of a column of type `typeOid` sent in `format` (0 text, 1 binary). */
export function profileOf(typeOid: number, format: number): Profile {
  // Binary values are raw bytes: look at them as text, and null any hit (they cannot be rewritten).
  if (format !== 0) return Profile.Text
  if (JSON_TYPES.has(typeOid)) return Profile.Json
  if (NUMBER_TYPES.has(typeOid)) return Profile.Number
  if (OPAQUE_TYPES.has(typeOid)) return Profile.Opaque
  return Profile.Text
}

/** A case-insensitive glob: `*` any run of characters, `?` one character, anything else literal. */
export function globToRegExp(glob: string): RegExp {
  let source = ''
  for (const char of glob) {
    if (char === '*') source += '.*'
    else if (char === '?') source += '.'
    else source += char.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')
  }
  return new RegExp(`^${source}$`, 'isu')
}
