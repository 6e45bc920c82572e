/**
 * Per-session guardrail state: which prepared statement names exist and what they run, so that
 * `EXECUTE name` (SQL) and an extended-protocol Execute of a statement prepared with SQL `PREPARE`
 * are judged by the statement they really run. Names come from three places: SQL PREPARE (its
 * body was judged and allowed), the protocol's Parse (the relay reports the text; judged when
 * executed), and DEALLOCATE/DISCARD ALL/Close. A name the session cannot account for is unknown,
 * and executing it is denied.
 */
import type { Assessment, Decision, Guardrails } from './guardrails.js'

/** How a statement reached the server (the engine's protocol path). */
export type StatementPath = 'simple' | 'extended' | 'function-call' | 'copy'

export interface StatementInput {
  path: StatementPath
  /** The SQL text; `function <oid>` for a FunctionCall; '' when the relay does not know it. */
  text: string
  /** The prepared statement an extended-protocol Execute runs. */
  statementName?: string
}

/** A judged statement, to hand back to {@link GuardrailsSession.completed}. */
export interface Check {
  decision: Decision
  assessment: Assessment | undefined
  /** PREPAREd names this statement registered before it ran (undone if it does not complete). */
  provisional: readonly string[]
}

type Prepared = { source: 'sql' } | { source: 'protocol'; text: string }

/** How deep `EXECUTE a` → Parse text `EXECUTE b` → ... is followed before failing closed. */
const MAX_EXECUTE_DEPTH = 4
const FUNCTION_CALL_TEXT = /^function (\d+)$/

export class GuardrailsSession {
  private readonly prepared = new Map<string, Prepared>()
  private readonly provisional = new Map<string, Prepared>()

  constructor(readonly guardrails: Guardrails) {}

  /** Judges one statement before anything of it is forwarded. */
  check(input: StatementInput): Check {
    if (input.path === 'function-call') {
      const oid = FUNCTION_CALL_TEXT.exec(input.text)
      const assessment = this.guardrails.assessFunctionCall(oid === null ? -1 : Number(oid[1]))
      return { decision: assessment.decision, assessment, provisional: [] }
    }
    if (input.text === '') {
      const name = input.statementName ?? ''
      const decision = this.lookup(name)?.source === 'sql' ? { allow: true as const } : this.guardrails.unknownPrepared(name)
      return { decision, assessment: undefined, provisional: [] }
    }
    const assessment = this.guardrails.assess(input.text)
    let decision = assessment.decision
    if (decision.allow && assessment.executes.length > 0) decision = this.resolve(assessment, 0) ?? decision
    const provisional: string[] = []
    if (decision.allow) {
      // Registered now so that `PREPARE p AS ...; EXECUTE p` in one Query works; a name that
      // exists already cannot be prepared again (the server refuses), so it keeps its meaning.
      for (const name of assessment.prepares) {
        if (this.lookup(name) !== undefined) continue
        const entry: Prepared = { source: 'sql' }
        this.provisional.set(name, entry)
        provisional.push(name)
      }
    }
    return { decision, assessment, provisional }
  }

  /** The statement's outcome: a completed PREPARE defines its name, a DEALLOCATE drops it. */
  completed(check: Check, ok: boolean): void {
    for (const name of check.provisional) {
      const entry = this.provisional.get(name)
      this.provisional.delete(name)
      if (ok && entry !== undefined) this.prepared.set(name, entry)
    }
    const assessment = check.assessment
    if (!ok || assessment === undefined) return
    if (assessment.deallocatesAll) {
      this.prepared.clear()
      this.provisional.clear()
    }
    for (const name of assessment.deallocates) this.prepared.delete(name)
  }

  /** The relay's report of a protocol-level prepared statement: defined with `text`, or gone. */
  protocolStatement(name: string, text: string | undefined): void {
    this.provisional.delete(name)
    if (text === undefined) this.prepared.delete(name)
    else this.prepared.set(name, { source: 'protocol', text })
  }

  private lookup(name: string): Prepared | undefined {
    return this.provisional.get(name) ?? this.prepared.get(name)
  }

  /** The first denial among the statements an EXECUTE runs, if any. */
  private resolve(assessment: Assessment, depth: number): Decision | undefined {
    for (const name of assessment.executes) {
      const entry = this.lookup(name)
      if (entry === undefined || depth >= MAX_EXECUTE_DEPTH) return this.guardrails.unknownPrepared(name)
      if (entry.source === 'sql') continue
      const inner = this.guardrails.assess(entry.text)
      if (!inner.decision.allow) return inner.decision
      const nested = inner.executes.length > 0 ? this.resolve(inner, depth + 1) : undefined
      if (nested !== undefined) return nested
    }
    return undefined
  }
}
