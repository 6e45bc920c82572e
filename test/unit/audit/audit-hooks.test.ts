/** The audit wrapper around the gateway's statement hooks (src/gateway/audit-hooks.ts). */
import { describe, expect, it } from 'vitest'
import type { AuditEventInput, AuditLog } from '../../../src/audit/index.js'
import { createRedactor } from '../../../src/audit/redact.js'
import { AUDIT_RULE, VerdictNotes, withAudit } from '../../../src/gateway/audit-hooks.js'
import type { StatementContext, StatementHooks } from '../../../src/protocols/hooks.js'
import type { PostgresStatementHooks } from '../../../src/protocols/postgres/relay.js'

const identity = { kind: 'service' as const, id: 'service:ci', display: 'ci', groups: ['eng'] }
const session = { id: 'ses_1', identity, connection: { name: 'pg' } as never }

/** Records appends; `fail` makes durable appends fail as a full disk would. */
function fakeLog(fail = false): AuditLog & { appended: { event: AuditEventInput; durable: boolean }[] } {
  const appended: { event: AuditEventInput; durable: boolean }[] = []
  return {
    appended,
    append(event: AuditEventInput, options?: { durable?: boolean }) {
      if (fail && options?.durable === true) return false
      appended.push({ event, durable: options?.durable === true })
      return true
    },
  } as never
}

const context = (sequence: number, text: string): StatementContext => ({ session: { id: 'ses_1', identity, connection: 'pg' }, sequence, path: 'simple', text })

describe('withAudit', () => {
  it('journals statement.begin (durably, after the policy decided) and statement.end', () => {
    const log = fakeLog()
    const order: string[] = []
    const policy: StatementHooks = {
      begin: (ctx) => {
        order.push(`policy ${ctx.sequence}`)
        return ctx.text.includes('drop') ? { verdict: { allow: false, rule: 'no-ddl', message: 'no DDL here' } } : { verdict: { allow: true } }
      },
      end: () => void order.push('policy end'),
    }
    const hooks = withAudit(policy, { log, required: true, session, redactor: createRedactor(['s3cret']) })
    expect(hooks.begin(context(1, "select 's3cret'"))).toEqual({ verdict: { allow: true } })
    expect(hooks.begin(context(2, 'drop table t'))).toEqual({ verdict: { allow: false, rule: 'no-ddl', message: 'no DDL here' } })
    hooks.end(context(2, 'drop table t'), { outcome: 'blocked', rows: 0, sqlstate: '42501', durationMs: 1.2345 })
    expect(order).toEqual(['policy 1', 'policy 2', 'policy end'])
    expect(log.appended).toEqual([
      {
        durable: true,
        event: { type: 'statement.begin', session: 'ses_1', connection: 'pg', identity: 'service:ci', user: 'ci', sequence: 1, path: 'simple', text: "select '[REDACTED:credential]'", redacted: ['credential'], verdict: 'allowed' },
      },
      { durable: true, event: expect.objectContaining({ sequence: 2, verdict: 'blocked', rule: 'no-ddl', message: 'no DDL here' }) },
      {
        durable: false,
        event: { type: 'statement.end', session: 'ses_1', connection: 'pg', identity: 'service:ci', user: 'ci', sequence: 2, outcome: 'blocked', rows: 0, sqlstate: '42501', durationUs: 1235, masked: {} },
      },
    ])
  })

  it("records that a statement did not parse without the parser's error, which quotes the text", () => {
    const log = fakeLog()
    const message = 'the statement could not be parsed (unterminated quoted string at or near "\'Leak3_unterminated"), so it cannot be checked'
    const policy: StatementHooks = { begin: () => ({ verdict: { allow: false, rule: 'airlock-unparseable', message } }), end: () => {} }
    const hooks = withAudit(policy, { log, required: true, session, redactor: createRedactor() })
    expect(hooks.begin(context(1, "alter role x password 'Leak3_unterminated"))).toMatchObject({ verdict: { allow: false, message } })
    expect(log.appended[0]!.event).toMatchObject({ verdict: 'blocked', rule: 'airlock-unparseable', message: 'the statement could not be parsed, so it cannot be checked' })
    expect(JSON.stringify(log.appended)).not.toContain('Leak3')
  })

  it('blocks a statement it cannot record when audit is required, and lets it through when not', () => {
    const allow: StatementHooks = { begin: () => ({ verdict: { allow: true } }), end: () => {} }
    const required = withAudit(allow, { log: fakeLog(true), required: true, session, redactor: createRedactor() })
    expect(required.begin(context(1, 'select 1'))).toMatchObject({ verdict: { allow: false, rule: AUDIT_RULE } })
    const optional = withAudit(allow, { log: fakeLog(true), required: false, session, redactor: createRedactor() })
    expect(optional.begin(context(1, 'select 1'))).toEqual({ verdict: { allow: true } })
  })

  it('records after an asynchronous policy settles, and records a failed check as blocked', async () => {
    const log = fakeLog()
    let fail = false
    const slow: StatementHooks = {
      begin: () => (fail ? Promise.reject(new Error('checker down')) : new Promise((resolve) => setTimeout(() => resolve({ verdict: { allow: true } }), 10))),
      end: () => {},
    }
    const hooks = withAudit(slow, { log, required: true, session, redactor: createRedactor() })
    const pending = hooks.begin(context(1, 'select 1'))
    expect(log.appended).toHaveLength(0)
    await pending
    expect(log.appended[0]!.event).toMatchObject({ verdict: 'allowed' })
    fail = true
    await expect(hooks.begin(context(2, 'select 2'))).rejects.toThrow('checker down')
    expect(log.appended[1]!.event).toMatchObject({ verdict: 'blocked', rule: 'airlock-internal' })
  })

  it("records audit-only violations and allow-rule exceptions from the policy's verdict notes", () => {
    const log = fakeLog()
    const notes = new VerdictNotes()
    const policy: StatementHooks = {
      begin: (ctx) => {
        const decision = ctx.sequence === 1 ? { allow: false as const, rule: 'no-writes', message: 'read only' } : { allow: true as const, rule: 'ticket-123' }
        notes.note({ session: 'ses_1', connection: 'pg', identity: 'service:ci', sequence: ctx.sequence, path: 'simple', decision, enforced: false } as never)
        return { verdict: { allow: true } }
      },
      end: () => {},
    }
    const hooks = withAudit(policy, { log, required: true, session, redactor: createRedactor(), verdicts: notes })
    hooks.begin(context(1, 'delete from t'))
    hooks.begin(context(2, 'select 1'))
    expect(log.appended.map(({ event }) => event)).toMatchObject([
      { verdict: 'flagged', rule: 'no-writes', message: 'read only' },
      { verdict: 'allowed', rule: 'ticket-123' },
    ])
    expect(notes.size).toBe(0)
  })

  it("keeps what the inner hooks offer the engine: session requirements, prepared-statement tracking", () => {
    const prepared: [string, string | undefined][] = []
    const inner: PostgresStatementHooks = {
      postgres: { startupParameters: { standard_conforming_strings: 'on' }, pinned: {} },
      begin: () => ({ verdict: { allow: true } }),
      end: () => {},
      preparedStatement(name, text) {
        prepared.push([name, text])
      },
    }
    const hooks = withAudit(inner, { log: fakeLog(), required: true, session, redactor: createRedactor() })
    expect(hooks.postgres).toBe(inner.postgres)
    hooks.preparedStatement?.('s1', 'select 1')
    expect(prepared).toEqual([['s1', 'select 1']])
  })

  it('cuts a huge statement and says how long it was', () => {
    const log = fakeLog()
    const allow: StatementHooks = { begin: () => ({ verdict: { allow: true } }), end: () => {} }
    const hooks = withAudit(allow, { log, required: true, session, redactor: createRedactor() })
    const text = `select '${'x'.repeat(2 * 1024 * 1024)}'`
    hooks.begin(context(1, text))
    const event = log.appended[0]!.event as { text: string; textLength: number }
    expect(event.text.length).toBe(1024 * 1024)
    expect(event.textLength).toBe(text.length)
  })
})
