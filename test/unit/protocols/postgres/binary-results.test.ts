/**
 * Text → binary re-encoding, table-driven. The integration test compares these encodings with the
 * server's own binary output over a mixed table; here the cases a table there cannot hold: both
 * bytea outputs, edge values, and text that must be refused rather than guessed.
 */
import { describe, expect, it } from 'vitest'
import { AirlockError } from '../../../../src/errors.js'
import { binaryEncoder, TypeOid } from '../../../../src/protocols/postgres/binary-results.js'

const hex = (text: string) => Buffer.from(text, 'hex')

const cases: [string, number, string, Buffer][] = [
  ['bool true', TypeOid.Bool, 't', hex('01')],
  ['bool false', TypeOid.Bool, 'f', hex('00')],
  ['int2', TypeOid.Int2, '-2', hex('fffe')],
  ['int4', TypeOid.Int4, '2147483647', hex('7fffffff')],
  ['int8 beyond 2^53', TypeOid.Int8, '9007199254740993', hex('0020000000000001')],
  ['oid', TypeOid.Oid, '4294967295', hex('ffffffff')],
  ['float8', TypeOid.Float8, '-1e+300', Buffer.from(new Float64Array([-1e300]).buffer).reverse()],
  ['float8 NaN', TypeOid.Float8, 'NaN', hex('7ff8000000000000')],
  ['float4 -Infinity', TypeOid.Float4, '-Infinity', hex('ff800000')],
  ['bytea hex', TypeOid.Bytea, '\\x00ff10', hex('00ff10')],
  ['bytea escape', TypeOid.Bytea, 'a\\\\b\\000\\377', Buffer.from([0x61, 0x5c, 0x62, 0x00, 0xff])],
  ['uuid', TypeOid.Uuid, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', hex('a0eebc999c0b4ef8bb6d6bb9bd380a11')],
  ['jsonb', TypeOid.Jsonb, '{"a": 1}', Buffer.concat([hex('01'), Buffer.from('{"a": 1}')])],
  ['text', TypeOid.Text, '[EMAIL]', Buffer.from('[EMAIL]')],
  ['date 2000-01-01', TypeOid.Date, '2000-01-01', hex('00000000')],
  ['date 1999-12-31', TypeOid.Date, '1999-12-31', hex('ffffffff')],
  ['date infinity', TypeOid.Date, 'infinity', hex('7fffffff')],
  ['timestamp', TypeOid.Timestamp, '2000-01-02 00:00:00.000001', hex('000000141dd76001')],
  ['timestamptz with offset', TypeOid.Timestamptz, '2000-01-01 02:00:00+02', hex('0000000000000000')],
  ['timestamptz with minutes', TypeOid.Timestamptz, '2000-01-01 05:30:00+05:30', hex('0000000000000000')],
]

describe('binaryEncoder', () => {
  it.each(cases)('%s', (_name, oid, text, expected) => {
    expect(binaryEncoder(oid, true)!(Buffer.from(text, 'latin1')).equals(expected)).toBe(true)
  })

  it.each([
    ['an array', 1009],
    ['numeric', 1700],
    ['a record', 2249],
    ['interval', 1186],
  ])('has no encoder for %s', (_name, oid) => {
    expect(binaryEncoder(oid, true)).toBeUndefined()
  })

  it('has no date or timestamp encoder unless DateStyle is ISO', () => {
    for (const oid of [TypeOid.Date, TypeOid.Timestamp, TypeOid.Timestamptz]) expect(binaryEncoder(oid, false)).toBeUndefined()
  })

  it.each([
    ['int4 out of range', TypeOid.Int4, '2147483648'],
    ['int2 with a label', TypeOid.Int2, '[REDACTED]'],
    ['bool', TypeOid.Bool, 'true'],
    ['float8', TypeOid.Float8, '1.2.3'],
    ['bytea odd hex', TypeOid.Bytea, '\\x0'],
    ['uuid', TypeOid.Uuid, 'not-a-uuid'],
    ['date in another style', TypeOid.Date, '12/31/1999'],
    ['timestamptz without a zone', TypeOid.Timestamptz, '2000-01-01 00:00:00'],
  ])('refuses %s text (blocked), without quoting it', (_name, oid, text) => {
    let error: unknown
    try {
      binaryEncoder(oid, true)!(Buffer.from(text))
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(AirlockError)
    expect((error as AirlockError).code).toBe('blocked')
    expect((error as AirlockError).message).not.toContain(text)
  })
})
