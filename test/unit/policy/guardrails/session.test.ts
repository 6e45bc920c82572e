/** Per-session prepared statement names: SQL PREPARE, protocol Parse/Close, DEALLOCATE, EXECUTE. */
import { beforeAll, describe, expect, it } from 'vitest'
import { createGuardrails, type Guardrails, GuardrailsSession, loadSqlParser } from '../../../../src/policy/index.js'

let guardrails: Guardrails

beforeAll(async () => {
  await loadSqlParser()
  guardrails = createGuardrails({ mode: 'enforce', presets: ['safe-writes', 'no-server-files'], rules: [] })
})

function run(session: GuardrailsSession, text: string, ok = true) {
  const check = session.check({ path: 'simple', text })
  session.completed(check, ok && check.decision.allow)
  return check.decision
}

describe('GuardrailsSession', () => {
  it('knows a name once its PREPARE completed, and forgets it when the PREPARE failed', () => {
    const session = new GuardrailsSession(guardrails)
    expect(run(session, 'EXECUTE p')).toMatchObject({ allow: false })
    run(session, 'PREPARE p AS SELECT 1', false)
    expect(run(session, 'EXECUTE p')).toMatchObject({ allow: false })
    run(session, 'PREPARE p AS SELECT 1')
    expect(run(session, 'EXECUTE p')).toEqual({ allow: true })
  })

  it('lets a Query prepare and execute in one go (the EXECUTE is judged before the PREPARE ran)', () => {
    const session = new GuardrailsSession(guardrails)
    const prepare = session.check({ path: 'simple', text: 'PREPARE q AS SELECT 1' })
    const execute = session.check({ path: 'simple', text: 'EXECUTE q' })
    expect(execute.decision).toEqual({ allow: true })
    session.completed(prepare, false)
    session.completed(execute, false)
    expect(run(session, 'EXECUTE q')).toMatchObject({ allow: false })
  })

  it('never lets a PREPARE of a name that exists change what the name runs', () => {
    const session = new GuardrailsSession(guardrails)
    session.protocolStatement('p', 'DELETE FROM victims')
    // The server refuses this PREPARE (the name exists): p still runs the DELETE.
    run(session, 'PREPARE p AS SELECT 1', false)
    expect(run(session, 'EXECUTE p')).toMatchObject({ allow: false, rule: 'safe-writes' })
  })

  it('drops names only once DEALLOCATE or DISCARD ALL completed', () => {
    const session = new GuardrailsSession(guardrails)
    run(session, 'PREPARE p AS SELECT 1')
    run(session, 'DEALLOCATE p', false)
    expect(run(session, 'EXECUTE p')).toEqual({ allow: true })
    run(session, 'DEALLOCATE p')
    expect(run(session, 'EXECUTE p')).toMatchObject({ allow: false })
    run(session, 'PREPARE r AS SELECT 1')
    run(session, 'DISCARD ALL')
    expect(run(session, 'EXECUTE r')).toMatchObject({ allow: false })
  })

  it('judges EXECUTE of a protocol-level statement by the text the relay reported', () => {
    const session = new GuardrailsSession(guardrails)
    session.protocolStatement('evil', 'DELETE FROM victims')
    session.protocolStatement('fine', 'DELETE FROM victims WHERE id = $1')
    expect(run(session, 'EXECUTE evil')).toMatchObject({ allow: false, rule: 'safe-writes' })
    expect(run(session, 'EXECUTE fine(1)')).toEqual({ allow: true })
    session.protocolStatement('fine', undefined)
    expect(run(session, 'EXECUTE fine(1)')).toMatchObject({ allow: false })
  })

  it('follows EXECUTE through protocol texts that EXECUTE, and gives up past a depth', () => {
    const session = new GuardrailsSession(guardrails)
    session.protocolStatement('a', 'EXECUTE b')
    session.protocolStatement('b', "SELECT pg_read_file('x')")
    expect(run(session, 'EXECUTE a')).toMatchObject({ allow: false, rule: 'no-server-files' })
    for (const [name, next] of [['l1', 'l2'], ['l2', 'l3'], ['l3', 'l4'], ['l4', 'l5'], ['l5', 'l6']]) session.protocolStatement(name!, `EXECUTE ${next}`)
    session.protocolStatement('l6', 'SELECT 1')
    expect(run(session, 'EXECUTE l1')).toMatchObject({ allow: false })
  })

  it('judges an extended Execute whose text the relay does not know by the SQL PREPARE behind it', () => {
    const session = new GuardrailsSession(guardrails)
    run(session, 'PREPARE known AS SELECT 1')
    expect(session.check({ path: 'extended', text: '', statementName: 'known' }).decision).toEqual({ allow: true })
    expect(session.check({ path: 'extended', text: '', statementName: 'unknown' }).decision).toMatchObject({ allow: false })
    expect(session.check({ path: 'extended', text: '' }).decision).toMatchObject({ allow: false })
  })

  it('judges a FunctionCall by the OID in its text', () => {
    const session = new GuardrailsSession(guardrails)
    expect(session.check({ path: 'function-call', text: 'function 952' }).decision).toEqual({ allow: true })
    expect(session.check({ path: 'function-call', text: 'function 2624' }).decision).toMatchObject({ allow: false, rule: 'airlock-function-call' })
    expect(session.check({ path: 'function-call', text: 'garbage' }).decision).toMatchObject({ allow: false })
  })
})
