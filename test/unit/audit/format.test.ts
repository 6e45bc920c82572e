import { describe, expect, it } from 'vitest'
import { describeEvent, describeReport, eventRow, printable } from '../../../src/audit/format.js'
import type { AuditEvent } from '../../../src/audit/record.js'

const begin = {
  id: '0123456789abcdef:5',
  hash: 'h',
  v: 1,
  chain: '0123456789abcdef',
  seq: 5,
  prev: 'p',
  time: '2026-01-31T12:00:00.000Z',
  type: 'statement.begin',
  session: 'ses_1',
  connection: 'pg',
  identity: 'service:ci',
  user: 'ci\u001b[2J',
  sequence: 3,
  path: 'simple',
  text: "select '\u001b]0;owned\u0007'\nfrom t",
  redacted: [],
  verdict: 'blocked',
  rule: 'no-ddl',
} as unknown as AuditEvent

describe('audit output for terminals', () => {
  it('escapes control characters from recorded text, so a statement cannot drive the terminal', () => {
    expect(printable('a\u001b[31mb\u009b\nc')).toBe('a\\u001b[31mb\\u009b\\nc')
    const line = [...eventRow(begin), describeEvent(begin)].join(' ')
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/)
    expect(describeEvent(begin)).toBe("#3 simple BLOCKED by no-ddl select '\\u001b]0;owned\\u0007' from t")
  })

  it('names the first broken link and the missing head', () => {
    const text = describeReport({
      ok: false,
      chains: [{ chain: '0123456789abcdef', records: 4, head: { seq: 4, hash: 'a'.repeat(64) }, broken: { seq: 5, id: '0123456789abcdef:5', kind: 'edited', reason: 'record 0123456789abcdef:5 does not match its hash: it was edited' } }],
      missingHeads: [{ hash: 'b'.repeat(64), reason: 'no intact chain contains the expected head' }],
    })
    expect(text).toContain('BROKEN at 0123456789abcdef:5 (edited)')
    expect(text).toContain('FAILED')
  })

  it('summarizes authentication failures that were counted, not recorded one by one', () => {
    const summary = {
      ...begin,
      type: 'auth.failure.summary',
      since: '2026-01-31T11:59:00.000Z',
      count: 997,
      clients: [{ address: '203.0.113.7', count: 990 }, { address: '198.51.100.2\u001b[2J', count: 7 }],
      otherClients: 3,
    } as unknown as AuditEvent
    expect(describeEvent(summary)).toBe('997 more failures since 2026-01-31T11:59:00.000Z, not recorded one by one: 203.0.113.7×990 198.51.100.2\\u001b[2J×7 and 3 more addresses')
  })

  it('says what a statement or a command session masked, and nothing when it masked nothing', () => {
    const end = { ...begin, type: 'statement.end', outcome: 'ok', command: 'SELECT', rows: 2, durationUs: 1500, masked: { email: 2, 'column:ssn': 1 } } as unknown as AuditEvent
    expect(describeEvent(end)).toBe('#3 ok SELECT rows=2 1.5ms masked email×2 column:ssn×1')
    expect(describeEvent({ ...end, masked: {} } as AuditEvent)).toBe('#3 ok SELECT rows=2 1.5ms')
    const session = { ...begin, type: 'session.end', reason: { message: 'exit 0' }, bytes: { in: 10, out: 200 }, durationMs: 1200 } as unknown as AuditEvent
    expect(describeEvent(session)).toBe('exit 0 in=10B out=200B 1.2s')
    // A detector name is configuration, and shown escaped like any recorded text.
    expect(describeEvent({ ...session, masked: { canary: 1, 'x\u001b[2J': 3 } } as AuditEvent)).toBe('exit 0 in=10B out=200B 1.2s masked canary×1 x\\u001b[2J×3')
  })
})
