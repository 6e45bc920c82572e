import { describe, expect, it } from 'vitest'
import {
  canonicalJson,
  eventId,
  formatLine,
  GENESIS,
  hashBody,
  parseEventId,
  parseLine,
  recordBody,
  splitLine,
  type AuditEventInput,
  type ChainFields,
} from '../../../src/audit/record.js'

const fields: ChainFields = { v: 1, chain: '0123456789abcdef', seq: 7, prev: GENESIS, time: '2026-01-31T12:00:00.000Z' }

describe('canonicalJson', () => {
  it.each([
    ['sorts keys at every level', { b: 1, a: { d: [{ z: 1, y: 2 }], c: 'x' } }, '{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}'],
    ['omits undefined members', { a: undefined, b: null }, '{"b":null}'],
    ['escapes strings as JSON.stringify does', { s: 'line\n"quote" \u0001 é \u2028' }, `{"s":${JSON.stringify('line\n"quote" \u0001 é \u2028')}}`],
    ['orders integer-like keys as strings, not as JavaScript does', { masked: { '10': 1, '9': 2, b: 3 } }, '{"masked":{"10":1,"9":2,"b":3}}'],
    ['sorts by UTF-16 code units', { é: 1, z: 2, Z: 3 }, '{"Z":3,"z":2,"é":1}'],
  ])('%s', (_, value, expected) => {
    expect(canonicalJson(value)).toBe(expected)
  })

  it.each([[1.5], [Number.NaN], [2 ** 60]])('refuses the number %s (records hold integers only)', (value) => {
    expect(() => canonicalJson({ value })).toThrow(TypeError)
  })
})

describe('recordBody', () => {
  const events: AuditEventInput[] = [
    { type: 'statement.begin', session: 's', connection: 'c', identity: 'i', user: 'u', sequence: 1, path: 'simple', text: 't', redacted: [], verdict: 'allowed' },
    { type: 'statement.end', session: 's', connection: 'c', identity: 'i', user: 'u', sequence: 1, outcome: 'ok', rows: 0, durationUs: 5, masked: { '2': 1, email: 3 } },
    { type: 'session.start', session: 's', connection: 'c', identity: { kind: 'service', id: 'service:x', display: 'x', groups: ['b', 'a'] }, client: { address: '::1', version: '1' } },
  ]
  it.each(events)('is canonicalJson of the event numbered and chained ($type)', (event) => {
    expect(recordBody(event, fields)).toBe(canonicalJson({ ...event, ...fields }))
  })

  it('keeps the format stable: a fixed record hashes to a fixed value', () => {
    const body = recordBody({ type: 'gateway.stop', reason: 'test' }, fields)
    expect(body).toBe('{"chain":"0123456789abcdef","prev":"0000000000000000000000000000000000000000000000000000000000000000","reason":"test","seq":7,"time":"2026-01-31T12:00:00.000Z","type":"gateway.stop","v":1}')
    // sha256 of the body's UTF-8 bytes, as `printf %s BODY | sha256sum` computes it.
    expect(hashBody(body)).toBe('ea5481659841a24af79fa4569771002477c5c93b7b07d47c68aa83e33143dfda')
  })
})

describe('journal and export lines', () => {
  const body = recordBody({ type: 'gateway.stop', reason: 'a "quoted" reason' }, fields)
  const hash = hashBody(body)

  it('round-trips through formatLine, splitLine and parseLine', () => {
    const line = formatLine(body, hash)
    expect(splitLine(line)).toEqual({ body, hash })
    expect(parseLine(line)).toMatchObject({ body, hash, record: { type: 'gateway.stop', seq: 7 } })
  })

  it('parses a line in any key order to the same canonical body', () => {
    const reordered = JSON.stringify({ type: 'gateway.stop', hash, ...JSON.parse(body) })
    expect(splitLine(reordered)).toBeUndefined()
    expect(parseLine(reordered)?.body).toBe(body)
  })

  it.each(['', 'not json', '[1]', '{"no":"hash"}', '{"hash":1}'])('rejects %j', (line) => {
    expect(parseLine(line)).toBeUndefined()
  })
})

describe('event ids', () => {
  it('are CHAIN:SEQ', () => {
    expect(eventId('0123456789abcdef', 42)).toBe('0123456789abcdef:42')
    expect(parseEventId('0123456789abcdef:42')).toEqual({ chain: '0123456789abcdef', seq: 42 })
  })

  it.each(['0123456789abcdef', '0123456789abcdef:0', '0123456789ABCDEF:1', 'x:1', '0123456789abcdef:1:2', '0123456789abcdef:99999999999999999'])('refuses %j', (id) => {
    expect(parseEventId(id)).toBeUndefined()
  })
})
