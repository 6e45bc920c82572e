import { describe, expect, it } from 'vitest'
import { EXIT_CODES, type ErrorCode } from '../../../src/errors.js'
import {
  decodeOpenParams,
  encodeOpenParams,
  parseClientHeader,
  parseControl,
} from '../../../src/tunnel/protocol.js'
import { closeCodeFor, errorCodeForClose } from '../../../src/tunnel/protocol.js'

describe('control messages', () => {
  const valid: [string, unknown][] = [
    ['{"type":"end"}', { type: 'end' }],
    ['{"type":"ready","session":"ses_1","connection":"db"}', { type: 'ready', session: 'ses_1', connection: 'db' }],
    ['{"type":"error","code":"forbidden","message":"no"}', { type: 'error', code: 'forbidden', message: 'no' }],
    ['{"type":"error","code":"limit","message":"m","hint":"h"}', { type: 'error', code: 'limit', message: 'm', hint: 'h' }],
    ['{"type":"resize","cols":80,"rows":24}', { type: 'resize', cols: 80, rows: 24 }],
    ['{"type":"signal","signal":"SIGINT"}', { type: 'signal', signal: 'SIGINT' }],
    ['{"type":"exit","code":0}', { type: 'exit', code: 0 }],
    ['{"type":"exit","code":null,"signal":"SIGKILL"}', { type: 'exit', code: null, signal: 'SIGKILL' }],
    ['{"type":"ready","session":"s","connection":"c","extra":1}', { type: 'ready', session: 's', connection: 'c' }],
  ]
  it.each(valid)('parses %s', (text, expected) => {
    expect(parseControl(text)).toEqual(expected)
  })

  const invalid = [
    'not json',
    'null',
    '[]',
    '"end"',
    '{"type":"nope"}',
    '{"type":"ready"}',
    '{"type":"error","code":"made-up","message":"x"}',
    '{"type":"error","code":"limit"}',
    '{"type":"resize","cols":0,"rows":24}',
    '{"type":"resize","cols":80.5,"rows":24}',
    '{"type":"resize","cols":1e9,"rows":24}',
    '{"type":"signal","signal":"rm -rf"}',
    '{"type":"exit","code":"0"}',
  ]
  it.each(invalid)('rejects %s', (text) => {
    expect(parseControl(text)).toBeUndefined()
  })
})

describe('close codes', () => {
  it('round-trip every error code', () => {
    for (const code of Object.keys(EXIT_CODES) as ErrorCode[]) {
      expect(errorCodeForClose(closeCodeFor(code))).toBe(code)
    }
  })
  it('treat 1000 as a normal end and transport failures as a dropped tunnel', () => {
    expect(errorCodeForClose(1000)).toBeUndefined()
    expect(errorCodeForClose(1006)).toBe('tunnel-dropped')
    expect(errorCodeForClose(1009)).toBe('tunnel-dropped')
  })
})

describe('Airlock-Open header', () => {
  it('round-trips parameters', () => {
    const params = { cols: 120, rows: 40, args: ['--flag', 'value with spaces'], mode: 'pty' as const }
    expect(decodeOpenParams(encodeOpenParams(params))).toEqual(params)
  })
  it('treats an absent header as no parameters', () => {
    expect(decodeOpenParams(undefined)).toEqual({})
  })
  const bad = [
    'not base64 json',
    Buffer.from('[1,2]').toString('base64url'),
    Buffer.from('{"cols":-1}').toString('base64url'),
    Buffer.from('{"args":[1]}').toString('base64url'),
    Buffer.from('{"mode":"root"}').toString('base64url'),
    Buffer.from('{"unknown":true}').toString('base64url'),
    'A'.repeat(9000),
  ]
  it.each(bad)('rejects %s', (header) => {
    expect(decodeOpenParams(header)).toBeUndefined()
  })
})

describe('Airlock-Client header', () => {
  it.each([
    ['0.1.0; proto=1', { version: '0.1.0', proto: 1 }],
    ['1.2.3-beta.1;proto=2', { version: '1.2.3-beta.1', proto: 2 }],
  ])('parses %s', (header, expected) => {
    expect(parseClientHeader(header)).toEqual(expected)
  })
  it.each([undefined, '', '0.1.0', 'proto=1', '0.1.0; proto=x', 'a b; proto=1'])('rejects %s', (header) => {
    expect(parseClientHeader(header)).toBeUndefined()
  })
})
