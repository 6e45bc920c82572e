/**
 * Audit around whatever statement hooks the gateway composed (policy): `begin` lets the policy
 * decide, then journals `statement.begin` with the verdict and rule — synchronously, so the record
 * is in the kernel before the relay forwards anything — and `end` records `statement.end`. When
 * the audit log cannot record a statement and audit is required, the statement is blocked.
 *
 * Also the gateway's other audit records (sessions, authentication failures, admin actions), built
 * here so server.ts stays a composition root.
 */
import type { Identity } from '../auth/identity.js'
import type { AuditEventInput, AuditLog, AuditVerdict, Redactor } from '../audit/index.js'
import { createRedactor } from '../audit/index.js'
import { type ConnectionConfig, type SecretSource, secretRefsOf } from '../config/index.js'
import type { StatementContext, StatementHooks, StatementPlan, StatementSummary, Verdict } from '../protocols/hooks.js'
import type { CloseReason } from '../tunnel/transport.js'
import { BUILTIN_RULES } from '../policy/guardrails/rules.js'
import type { VerdictRecord } from './policy-hooks.js'

const UNPARSEABLE_MESSAGE = 'the statement could not be parsed, so it cannot be checked'
const BACKSLASH_ESCAPES = { backslashEscapes: true } as const

/** The rule a statement is blocked by when the audit log cannot record it. */
export const AUDIT_RULE = 'airlock-audit'

/** Statement text beyond this many characters is cut in the record (`textLength` keeps the original length). */
export const MAX_AUDIT_TEXT = 1024 * 1024

const AUDIT_FAILED: StatementPlan = Object.freeze({
  verdict: Object.freeze({
    allow: false as const,
    rule: AUDIT_RULE,
    message: 'the audit log cannot record this statement, so it was not run',
    hint: 'a gateway admin must fix the audit journal (see the gateway log); retry then',
  }),
})

type StatementBeginEvent = Extract<AuditEventInput, { type: 'statement.begin' }>
type StatementEndEvent = Extract<AuditEventInput, { type: 'statement.end' }>

/** A StatementSummary as masking will extend it: values masked by detector or column rule. */
export type AuditedSummary = StatementSummary & { masked?: Readonly<Record<string, number>> }

export interface AuditSessionInfo {
  id: string
  identity: Identity
  connection: ConnectionConfig
}

/**
 * Verdicts the policy reports through its `onVerdict` callback while it decides (rule ids of
 * audit-only violations and allow exceptions, which the plan itself does not carry), held per
 * session until that statement's `begin` record is written.
 */
export class VerdictNotes {
  private readonly notes = new Map<string, VerdictRecord>()

  note(record: VerdictRecord): void {
    this.notes.set(`${record.session}\u0000${record.sequence}`, record)
    // Taken within the same statement's begin; anything older was never going to be.
    if (this.notes.size > 10_000) this.notes.delete(this.notes.keys().next().value!)
  }

  get size(): number {
    return this.notes.size
  }

  take(session: string, sequence: number): VerdictRecord | undefined {
    const key = `${session}\u0000${sequence}`
    const record = this.notes.get(key)
    if (record !== undefined) this.notes.delete(key)
    return record
  }
}

/** Reads the connection's secrets (for the credential canary); unreadable ones are skipped. */
export async function connectionCanary(connection: ConnectionConfig, secrets: SecretSource): Promise<Redactor> {
  const values = await Promise.all(secretRefsOf(connection).map((ref) => secrets.read(ref).catch(() => undefined)))
  return createRedactor(values.filter((value): value is string => value !== undefined))
}

/**
 * Wraps `inner` so every statement is recorded. The result keeps everything else `inner` offers
 * (engine-specific requirements, prepared-statement tracking) by inheriting from it.
 */
export function withAudit<H extends StatementHooks>(
  inner: H,
  options: { log: AuditLog; required: boolean; session: AuditSessionInfo; redactor: Redactor; verdicts?: VerdictNotes },
): H {
  const { log, required, session, redactor, verdicts } = options
  const record = (context: StatementContext, plan: StatementPlan): StatementPlan => {
    const noted = verdicts?.take(session.id, context.sequence)
    const { verdict, rule, message } = describeVerdict(plan.verdict, noted)
    const cut = context.text.length > MAX_AUDIT_TEXT
    const { text, redacted } = redactor.redact(cut ? context.text.slice(0, MAX_AUDIT_TEXT) : context.text, context.backslashEscapes === true ? BACKSLASH_ESCAPES : undefined)
    // Built field by field: object spreads are slow on this path.
    const event: StatementBeginEvent = {
      type: 'statement.begin',
      session: session.id,
      connection: session.connection.name,
      identity: session.identity.id,
      user: session.identity.display,
      sequence: context.sequence,
      path: context.path,
      text,
      redacted,
      verdict,
    }
    if (cut) event.textLength = context.text.length
    if (context.statementName !== undefined) event.statementName = context.statementName
    if (rule !== undefined) event.rule = rule
    // The parser's error quotes the text near where it failed (an unterminated PASSWORD literal):
    // the record keeps the redacted text instead, and says only that it did not parse.
    if (message !== undefined) event.message = rule === BUILTIN_RULES.unparseable ? UNPARSEABLE_MESSAGE : redactor.redactSecrets(message)
    return log.append(event, { durable: true }) || !required ? plan : AUDIT_FAILED
  }

  const hooks = Object.create(inner) as H
  Object.defineProperties(hooks, {
    begin: {
      value(context: StatementContext): StatementPlan | Promise<StatementPlan> {
        const plan = inner.begin(context)
        if (!(plan instanceof Promise)) return record(context, plan)
        return plan.then(
          (settled) => record(context, settled),
          (error: unknown) => {
            // The relay blocks a statement whose hook failed; the record says so.
            record(context, { verdict: { allow: false, rule: 'airlock-internal', message: 'the statement could not be checked' } })
            throw error
          },
        )
      },
    },
    end: {
      value(context: StatementContext, summary: AuditedSummary): void {
        try {
          inner.end(context, summary)
        } finally {
          const event: StatementEndEvent = {
            type: 'statement.end',
            session: session.id,
            connection: session.connection.name,
            identity: session.identity.id,
            user: session.identity.display,
            sequence: context.sequence,
            outcome: summary.outcome,
            rows: summary.rows,
            durationUs: Math.round(summary.durationMs * 1000),
            masked: summary.masked === undefined ? {} : { ...summary.masked },
          }
          if (summary.command !== undefined) event.command = summary.command
          if (summary.sqlstate !== undefined) event.sqlstate = summary.sqlstate
          log.append(event)
        }
      },
    },
  })
  return hooks
}

function describeVerdict(verdict: Verdict, noted: VerdictRecord | undefined): { verdict: AuditVerdict; rule?: string; message?: string } {
  if (!verdict.allow) return { verdict: 'blocked', rule: verdict.rule, message: verdict.message }
  const decision = noted?.decision
  if (decision === undefined || decision.rule === undefined) return { verdict: 'allowed' }
  // Allowed with a rule: an allow rule's exception, or a denial not enforced (audit-only mode).
  return decision.allow ? { verdict: 'allowed', rule: decision.rule } : { verdict: 'flagged', rule: decision.rule, message: decision.message }
}

// ---- the gateway's other records ---------------------------------------------------------------

export function sessionStartEvent(session: {
  id: string
  identity: Identity
  connection: string
  clientAddress: string
  clientVersion: string
  /** Command connections: mode and extra arguments. */
  command?: { mode: string; args: readonly string[] }
}, redactor?: Redactor): AuditEventInput {
  return {
    type: 'session.start',
    session: session.id,
    connection: session.connection,
    identity: { kind: session.identity.kind, id: session.identity.id, display: session.identity.display, groups: [...session.identity.groups] },
    client: { address: session.clientAddress, version: session.clientVersion },
    ...(session.command === undefined
      ? {}
      : { command: { mode: session.command.mode, args: session.command.args.map((arg) => redactor?.redactSecrets(arg) ?? arg) } }),
  }
}

export function sessionEndEvent(
  session: { id: string; identity: Identity; connection: string },
  outcome: { reason: CloseReason; bytesIn: number; bytesOut: number; durationMs: number; recording?: { path: string; sha256: string; bytes: number }; masked?: Readonly<Record<string, number>> },
  redactor: Redactor | undefined,
): AuditEventInput {
  const message = redactor?.redactSecrets(outcome.reason.message) ?? outcome.reason.message
  return {
    type: 'session.end',
    session: session.id,
    connection: session.connection,
    identity: session.identity.id,
    user: session.identity.display,
    bytes: { in: outcome.bytesIn, out: outcome.bytesOut },
    durationMs: Math.round(outcome.durationMs),
    reason: outcome.reason.code === undefined ? { message } : { code: outcome.reason.code, message },
    ...(outcome.recording === undefined ? {} : { recording: { ...outcome.recording } }),
    ...(outcome.masked === undefined ? {} : { masked: { ...outcome.masked } }),
  }
}

/** A command connection's deny pattern refused input (`text`, when given, is redacted once more). */
export function commandBlockedEvent(
  session: { id: string; identity: Identity; connection: string },
  blocked: { rule: string; message: string; where: string; text?: string },
  redactor: Redactor | undefined,
): AuditEventInput {
  return {
    type: 'command.blocked',
    session: session.id,
    connection: session.connection,
    identity: session.identity.id,
    user: session.identity.display,
    rule: blocked.rule,
    message: blocked.message,
    where: blocked.where,
    ...(blocked.text === undefined ? {} : { text: redactor?.redactSecrets(blocked.text) ?? blocked.text }),
  }
}
