/**
 * The guardrails as the gateway hands them to an engine (src/gateway/policy-hooks.ts): per-session
 * hooks, what they ask of the Postgres session, audit-only, and `explain`.
 */
import { describe, expect, it } from 'vitest'
import type { Identity } from '../../../src/auth/identity.js'
import { parseConfig } from '../../../src/config/index.js'
import { createPolicyHooks, explainStatements, type VerdictRecord } from '../../../src/gateway/policy-hooks.js'
import type { StatementContext } from '../../../src/protocols/hooks.js'

const identity = { id: 'service:test', display: 'test', kind: 'service', groups: ['eng'] } as unknown as Identity

function connections(guardrails: Record<string, unknown> | undefined, extra: Record<string, unknown>[] = []) {
  const config = parseConfig(
    {
      auth: { serviceTokens: [] },
      audit: { required: false },
      connections: [
        {
          name: 'pg',
          type: 'postgres',
          upstream: { host: 'db.internal', database: 'app', user: 'app' },
          access: { groups: ['eng'] },
          ...(guardrails === undefined ? {} : { guardrails }),
        },
        ...extra,
      ],
    },
    '/tmp',
  )
  return config.connections
}

let sequence = 0
const context = (text: string, path: StatementContext['path'] = 'simple', statementName?: string): StatementContext => ({
  session: { id: 'ses_test', identity, connection: 'pg' },
  sequence: ++sequence,
  path,
  text,
  ...(statementName === undefined ? {} : { statementName }),
})
const ended = { outcome: 'ok' as const, rows: 0, durationMs: 1 }

describe('createPolicyHooks', () => {
  it('gives no hooks to a connection without guardrails or of another type', async () => {
    const all = connections(undefined, [{ name: 'redis', type: 'tcp', upstream: { host: 'r', port: 6379 }, access: { groups: ['eng'] } }])
    const policy = await createPolicyHooks({ connections: all })
    for (const connection of all) expect(policy.hooksFor({ id: 'ses_x', identity, connection })).toBeUndefined()
  })

  it('asks the engine to pin the parser settings, and read-only sessions twice', async () => {
    const [connection] = connections({ presets: ['read-only'] })
    const hooks = (await createPolicyHooks({ connections: [connection!] })).hooksFor({ id: 'ses_x', identity, connection: connection! })!
    expect(hooks.postgres).toEqual({
      startupParameters: { standard_conforming_strings: 'on', client_encoding: 'UTF8', backslash_quote: 'safe_encoding', default_transaction_read_only: 'on' },
      pinned: { standard_conforming_strings: 'on', client_encoding: 'UTF8', default_transaction_read_only: 'on' },
    })
  })

  it('enforces: a denial is the verdict, and every verdict with a rule is recorded', async () => {
    const [connection] = connections({ presets: ['no-ddl'], rules: [{ id: 'ok-index', action: 'allow', kind: 'CREATE INDEX' }] })
    const records: VerdictRecord[] = []
    const hooks = (await createPolicyHooks({ connections: [connection!], onVerdict: (record) => records.push(record) })).hooksFor({ id: 'ses_x', identity, connection: connection! })!
    expect(hooks.begin(context('SELECT 1'))).toEqual({ verdict: { allow: true } })
    expect(hooks.begin(context('DROP TABLE t'))).toMatchObject({ verdict: { allow: false, rule: 'no-ddl' } })
    expect(hooks.begin(context('CREATE INDEX ON t (x)'))).toEqual({ verdict: { allow: true } })
    expect(records.map((record) => [record.decision.allow, record.decision.rule, record.enforced, record.connection, record.identity])).toEqual([
      [false, 'no-ddl', true, 'pg', 'service:test'],
      [true, 'ok-index', true, 'pg', 'service:test'],
    ])
  })

  it('in audit-only mode records the denial and allows the statement, asking nothing of the session but the parser settings', async () => {
    const [connection] = connections({ mode: 'audit-only', presets: ['read-only'] })
    const records: VerdictRecord[] = []
    const hooks = (await createPolicyHooks({ connections: [connection!], onVerdict: (record) => records.push(record) })).hooksFor({ id: 'ses_x', identity, connection: connection! })!
    expect(hooks.begin(context('DELETE FROM t'))).toEqual({ verdict: { allow: true } })
    expect(records).toEqual([expect.objectContaining({ decision: expect.objectContaining({ allow: false, rule: 'read-only' }), enforced: false })])
    expect(hooks.postgres).toEqual({ startupParameters: { standard_conforming_strings: 'on', client_encoding: 'UTF8', backslash_quote: 'safe_encoding' }, pinned: {} })
  })

  it('tracks prepared statements through end() and the relay’s reports', async () => {
    const [connection] = connections({ presets: ['safe-writes'] })
    const hooks = (await createPolicyHooks({ connections: [connection!] })).hooksFor({ id: 'ses_x', identity, connection: connection! })!
    const prepare = context('PREPARE p AS SELECT 1')
    hooks.begin(prepare)
    hooks.end(prepare, ended)
    expect(hooks.begin(context('', 'extended', 'p'))).toEqual({ verdict: { allow: true } })
    hooks.preparedStatement!('q', 'DELETE FROM t')
    expect(hooks.begin(context('EXECUTE q'))).toMatchObject({ verdict: { allow: false, rule: 'safe-writes' } })
  })

  it('fails closed when the checker itself fails', async () => {
    const [connection] = connections({ presets: ['read-only'] })
    const hooks = (await createPolicyHooks({ connections: [connection!] })).hooksFor({ id: 'ses_x', identity, connection: connection! })!
    expect(hooks.begin({ ...context('SELECT 1'), text: undefined as unknown as string })).toMatchObject({ verdict: { allow: false, rule: 'airlock-internal' } })
  })

  it('refuses guardrails that do not compile, naming the connection', async () => {
    await expect(createPolicyHooks({ connections: connections({ rules: [{ id: 'read-only', pattern: 'x' }] }) })).rejects.toMatchObject({
      code: 'config',
      message: expect.stringContaining('connections[pg].guardrails'),
    })
  })
})

describe('explainStatements', () => {
  it('judges each statement as one Query on a fresh session', async () => {
    const [connection] = connections({ presets: ['no-server-files'] })
    const explanation = await explainStatements(connection!, "PREPARE p AS SELECT 1; EXECUTE p; SELECT pg_read_file('/etc/passwd')")
    expect(explanation).toMatchObject({ connection: 'pg', mode: 'enforce', presets: ['no-server-files'], decision: { allow: false, rule: 'no-server-files' } })
    expect(explanation.statements.map((each) => [each.text, each.decision.allow])).toEqual([
      ['PREPARE p AS SELECT 1', true],
      ['EXECUTE p', true],
      ["SELECT pg_read_file('/etc/passwd')", false],
    ])
  })

  it('allows everything on a connection without guardrails', async () => {
    const [connection] = connections(undefined)
    expect(await explainStatements(connection!, 'DROP TABLE t')).toMatchObject({ mode: 'none', decision: { allow: true } })
  })

  it('covers postgres connections only', async () => {
    const all = connections(undefined, [{ name: 'redis', type: 'tcp', upstream: { host: 'r', port: 6379 }, access: { groups: ['eng'] } }])
    await expect(explainStatements(all[1]!, 'SELECT 1')).rejects.toMatchObject({ code: 'usage' })
  })
})
