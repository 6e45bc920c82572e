/**
 * Guardrails as the engine sees them: per session, a `StatementHooks` whose `begin` judges each
 * statement with the connection's compiled guardrails (verdicts cached by text across sessions)
 * and whose `end` keeps the session's prepared statement names current. In `audit-only` mode the
 * verdict is recorded and the statement allowed. The hooks also tell the Postgres engine what the
 * policy needs of the session: the string-parsing settings pinned (and read-only enforced a second
 * time by the server) from the first byte.
 *
 * Also `explainStatements`, the same judgement without a database for `airlock gateway explain`.
 */
import type { Identity } from '../auth/identity.js'
import type { ConnectionConfig, PostgresConnection } from '../config/index.js'
import { AirlockError } from '../errors.js'
import {
  type Check,
  createGuardrails,
  type Decision,
  type Guardrails,
  GuardrailsSession,
  loadSqlParser,
  PINNED_SETTINGS,
} from '../policy/index.js'
import type { StatementContext, StatementPlan } from '../protocols/hooks.js'
import type { PostgresSessionRequirements, PostgresStatementHooks } from '../protocols/postgres/relay.js'
import { splitStatements } from '../protocols/postgres/split.js'

/** A verdict worth recording: every denial (enforced or not) and every exception an allow rule made. */
export interface VerdictRecord {
  session: string
  connection: string
  identity: string
  sequence: number
  path: StatementContext['path']
  decision: Decision
  /** False in audit-only mode: the statement ran although the rule would have blocked it. */
  enforced: boolean
}

export interface PolicyHooksOptions {
  connections: readonly ConnectionConfig[]
  /** Where verdicts go (the gateway logs them; the audit log will take them). Never the statement text. */
  onVerdict?: (record: VerdictRecord) => void
}

export interface PolicyHooks {
  /** The hooks for a new session, or undefined when its connection has no guardrails. */
  hooksFor(session: { id: string; identity: Identity; connection: ConnectionConfig }): PostgresStatementHooks | undefined
}

const ALLOW_PLAN: StatementPlan = Object.freeze({ verdict: Object.freeze({ allow: true as const }) })

/**
 * Compiles the guardrails of every Postgres connection and loads the parser when any has them.
 *
 * @throws AirlockError `config` for a guardrails section that cannot be compiled.
 */
export async function createPolicyHooks(options: PolicyHooksOptions): Promise<PolicyHooks> {
  const compiled = new Map<string, Guardrails>()
  for (const connection of options.connections) {
    if (connection.type !== 'postgres' || connection.guardrails === undefined) continue
    compiled.set(connection.name, compileFor(connection))
  }
  if (compiled.size > 0) await loadSqlParser()
  return {
    hooksFor: ({ id, identity, connection }) => {
      const guardrails = compiled.get(connection.name)
      if (guardrails === undefined) return undefined
      return sessionHooks(guardrails, { session: id, connection: connection.name, identity: identity.id }, options.onVerdict)
    },
  }
}

function compileFor(connection: PostgresConnection): Guardrails {
  try {
    return createGuardrails(connection.guardrails!)
  } catch (error) {
    if (error instanceof AirlockError) throw new AirlockError(error.code, `connections[${connection.name}].guardrails: ${error.message}`, { hint: error.hint ?? undefined })
    throw error
  }
}

/**
 * What the Postgres session must start with and keep for these guardrails to hold. In audit-only
 * mode the session starts with the parser's settings (so the recorded verdicts are right) and
 * nothing more: no read-only session, no session closed when a setting changes.
 */
export function sessionRequirements(guardrails: Guardrails): PostgresSessionRequirements {
  if (guardrails.mode === 'audit-only') return { startupParameters: { ...PINNED_SETTINGS }, pinned: {} }
  const readOnly: Record<string, string> = guardrails.readOnly ? { default_transaction_read_only: 'on' } : {}
  return {
    startupParameters: { ...PINNED_SETTINGS, ...readOnly },
    // What the server reports in ParameterStatus (backslash_quote is never reported).
    pinned: { standard_conforming_strings: 'on', client_encoding: 'UTF8', ...readOnly },
  }
}

function sessionHooks(
  guardrails: Guardrails,
  who: { session: string; connection: string; identity: string },
  onVerdict: PolicyHooksOptions['onVerdict'],
): PostgresStatementHooks {
  const session = new GuardrailsSession(guardrails)
  const checks = new WeakMap<StatementContext, Check>()
  const enforce = guardrails.mode === 'enforce'
  const record = (context: StatementContext, decision: Decision): void => {
    if (onVerdict === undefined || (decision.allow && decision.rule === undefined)) return
    onVerdict({ ...who, sequence: context.sequence, path: context.path, decision, enforced: enforce || decision.allow })
  }
  return {
    postgres: sessionRequirements(guardrails),
    begin(context) {
      let decision: Decision
      try {
        const check = session.check({
          path: context.path,
          text: context.text,
          ...(context.statementName === undefined ? {} : { statementName: context.statementName }),
        })
        checks.set(context, check)
        decision = check.decision
      } catch {
        // A failure of the checker itself blocks: fail closed.
        decision = { allow: false, rule: 'airlock-internal', message: 'the statement could not be checked' }
      }
      record(context, decision)
      if (decision.allow || !enforce) return ALLOW_PLAN
      return { verdict: decision }
    },
    end(context, summary) {
      const check = checks.get(context)
      if (check === undefined) return
      checks.delete(context)
      session.completed(check, summary.outcome === 'ok')
    },
    preparedStatement(name, text) {
      session.protocolStatement(name, text)
    },
  }
}

// ---- explain --------------------------------------------------------------------------------

export interface ExplainedStatement {
  text: string
  decision: Decision
}

export interface Explanation {
  connection: string
  mode: 'enforce' | 'audit-only' | 'none'
  presets: readonly string[]
  /** The Query's verdict: blocked as a whole when any statement is. */
  decision: Decision
  statements: ExplainedStatement[]
}

/**
 * Judges `text` as the gateway would judge it arriving as one simple-protocol Query on a fresh
 * session of `connection`, without a database. Loads the parser.
 *
 * @throws AirlockError `usage` for a connection that is not Postgres; `config` for guardrails
 *   that do not compile.
 */
export async function explainStatements(connection: ConnectionConfig, text: string): Promise<Explanation> {
  if (connection.type !== 'postgres') {
    throw new AirlockError('usage', `connection ${connection.name} is a ${connection.type} connection; explain covers postgres connections`)
  }
  const pieces = splitStatements(text)
  if (connection.guardrails === undefined) {
    return {
      connection: connection.name,
      mode: 'none',
      presets: [],
      decision: { allow: true },
      statements: pieces.map((piece) => ({ text: piece, decision: { allow: true } })),
    }
  }
  const guardrails = compileFor(connection)
  await loadSqlParser()
  const session = new GuardrailsSession(guardrails)
  const statements = pieces.map((piece) => {
    const check = session.check({ path: /^\s*copy\b/i.test(piece) ? 'copy' : 'simple', text: piece })
    return { text: piece, check }
  })
  const denial = statements.find((each) => !each.check.decision.allow)?.check.decision
  const exception = statements.find((each) => each.check.decision.rule !== undefined)?.check.decision
  return {
    connection: connection.name,
    mode: guardrails.mode,
    presets: guardrails.presets,
    decision: denial ?? exception ?? { allow: true },
    statements: statements.map(({ text: piece, check }) => ({ text: piece, decision: check.decision })),
  }
}
