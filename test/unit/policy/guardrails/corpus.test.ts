/**
 * The adversarial corpus against the policy alone: each case judged as the gateway judges a
 * simple-protocol Query (split into statements, each checked on one session, the Query blocked
 * when any statement is). The integration test replays the same cases against a real server.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import { createGuardrails, type Decision, type Guardrails, GuardrailsSession, loadSqlParser } from '../../../../src/policy/index.js'
import { splitStatements } from '../../../../src/protocols/postgres/split.js'
import { fill, loadCorpus } from '../../../fixtures/guardrails/corpus.js'

const corpus = loadCorpus()
const places = { out: '/tmp/airlock-out', socket: '/tmp/airlock-socket', port: 5432 }
const compiled = new Map<string, Guardrails>()

beforeAll(async () => {
  await loadSqlParser()
  for (const [name, profile] of Object.entries(corpus.profiles)) compiled.set(name, createGuardrails(profile))
})

/** The Query's verdict on `session`, as the relay would ask for it. */
function judge(session: GuardrailsSession, sql: string): Decision {
  const checks = splitStatements(sql).map((piece) => session.check({ path: /^\s*copy\b/i.test(piece) ? 'copy' : 'simple', text: piece }))
  const denial = checks.find((check) => !check.decision.allow)
  for (const check of checks) session.completed(check, denial === undefined)
  return denial?.decision ?? checks.find((check) => check.decision.rule !== undefined)?.decision ?? { allow: true }
}

describe('the corpus', () => {
  it('is large enough and covers both outcomes in every category', () => {
    expect(corpus.cases.length).toBeGreaterThanOrEqual(150)
    const notes = new Set(corpus.cases.map((entry) => entry.note))
    for (const note of notes) {
      const outcomes = new Set(corpus.cases.filter((entry) => entry.note === note).map((entry) => entry.expect))
      expect(outcomes.size > 0, note).toBe(true)
    }
    expect(corpus.cases.filter((entry) => entry.expect === 'block').length).toBeGreaterThanOrEqual(100)
    expect(corpus.cases.filter((entry) => entry.expect === 'allow').length).toBeGreaterThanOrEqual(50)
  })

  it.each(corpus.cases.map((entry) => [entry.id, entry] as const))('%s', (_id, entry) => {
    const guardrails = compiled.get(entry.profile)!
    const session = new GuardrailsSession(guardrails)
    if (entry.setup !== undefined) judge(session, fill(entry.setup, places))
    const decision = judge(session, fill(entry.sql, places))
    if (entry.audit !== undefined) {
      expect(guardrails.mode).toBe('audit-only')
      expect(decision).toMatchObject({ allow: false, rule: entry.audit })
    } else if (entry.expect === 'block') {
      expect(decision).toMatchObject({ allow: false, rule: entry.rule })
    } else {
      expect(decision).toMatchObject(entry.rule === undefined ? { allow: true } : { allow: true, rule: entry.rule })
      if (entry.rule === undefined) expect(decision).not.toHaveProperty('rule')
    }
  })

  it.each(corpus.cases.filter((entry) => entry.effect !== undefined || (entry.expect === 'allow' && entry.undo !== undefined)).map((entry) => [entry.id, entry] as const))(
    '%s: its effect check (and undo) may run through the gateway',
    (_id, entry) => {
      const session = new GuardrailsSession(compiled.get(entry.profile)!)
      if (entry.effect !== undefined) expect(judge(session, `SELECT (${entry.effect})`)).toMatchObject({ allow: true })
      if (entry.expect === 'allow' && entry.undo !== undefined) expect(judge(session, entry.undo)).toMatchObject({ allow: true })
    },
  )
})
