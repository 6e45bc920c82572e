/**
 * The engine ↔ policy/audit contract, per statement (never per row). The gateway hands each engine
 * a `StatementHooks`; engines never import policy or audit.
 */
import type { Identity } from '../auth/identity.js'

/** How the statement reached the server. */
export type ProtocolPath = 'simple' | 'extended' | 'function-call' | 'copy'

export interface StatementContext {
  session: { id: string; identity: Identity; connection: string }
  /** 1-based, per session, in the order statements were sent upstream. */
  sequence: number
  path: ProtocolPath
  /**
   * The statement's SQL (one statement of a multi-statement Query), or `function <oid>` for a
   * FunctionCall. Empty when the relay cannot know it (an Execute of a statement prepared with SQL
   * `PREPARE`): a policy must decide such a statement without its text, failing closed.
   */
  text: string
  /** The prepared statement's name for an extended-protocol Execute ('' for the unnamed one). */
  statementName?: string
  /** The session has standard_conforming_strings off: plain string literals take backslash escapes. */
  backslashEscapes?: boolean
}

export type Verdict = { allow: true } | { allow: false; rule: string; message: string; hint?: string }

export interface StatementPlan {
  verdict: Verdict
}

export interface StatementSummary {
  /** `ok`: completed; `error`: the server reported an error; `blocked`: a guardrail stopped it;
   * `skipped`: an earlier error in the same Query or pipeline meant it never ran. */
  outcome: 'ok' | 'error' | 'blocked' | 'skipped'
  /** DataRows returned. */
  rows: number
  /** The CommandComplete tag, e.g. `UPDATE 3`. */
  command?: string
  sqlstate?: string
  durationMs: number
  /** Values masked in what the statement returned, by detector name and `column:<name>` for column rules. */
  masked?: Record<string, number>
}

export interface StatementHooks {
  /**
   * Called before anything of the statement is forwarded upstream. May answer synchronously (the
   * relay then stays on its fast path) or with a promise (the relay holds later messages until it
   * settles, so order is kept).
   */
  begin(context: StatementContext): StatementPlan | Promise<StatementPlan>
  end(context: StatementContext, summary: StatementSummary): void
}

const ALLOW: StatementPlan = { verdict: { allow: true } }

/** No policy, no audit: every statement is allowed. */
export const ALLOW_ALL: StatementHooks = {
  begin: () => ALLOW,
  end: () => {},
}
