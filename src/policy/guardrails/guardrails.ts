/**
 * A connection's guardrails: its configuration compiled once, then every statement text judged
 * (parse, analyse, apply the rules) and the verdict cached by text. Pure: no I/O, no catalog.
 *
 * The verdict of a text depends on nothing else but the string-parsing settings, which the gateway
 * pins (see {@link PINNED_SETTINGS}) and whose change ends the session: a cached verdict holds for
 * every session of the connection.
 */
import { AirlockError } from '../../errors.js'
import { analyze, type Analysis, TooComplex } from './analyze.js'
import { FUNCTION_CALL_ALLOWLIST } from './functions.js'
import { parseSql } from './parser.js'
import {
  BUILTIN_RULES,
  compileRule,
  covers,
  type CustomRule,
  denyFindings,
  type Finding,
  matchRule,
  opaqueFindings,
  pinnedSettingFindings,
  type Preset,
  presetFindings,
  PRESETS,
  type RuleConfig,
} from './rules.js'

/** A connection's `guardrails` section. */
export interface GuardrailsConfig {
  mode: 'enforce' | 'audit-only'
  presets: readonly string[]
  rules: readonly RuleConfig[]
}

/** A verdict with the rule that decided it: the denying rule, or the allow rule that made an exception. */
export type Decision =
  | { allow: true; rule?: string }
  | { allow: false; rule: string; message: string; hint?: string }

export interface StatementVerdict {
  text: string
  decision: Decision
}

/** What the rules made of one text (one or more statements). */
export interface Assessment {
  /** The first denial among the statements, else an allow (naming an allow rule that was needed). */
  decision: Decision
  statements: readonly StatementVerdict[]
  /** Prepared statement names the text defines, runs and drops; resolved per session. */
  prepares: readonly string[]
  executes: readonly string[]
  deallocates: readonly string[]
  deallocatesAll: boolean
}

export interface Guardrails {
  readonly mode: 'enforce' | 'audit-only'
  readonly presets: readonly Preset[]
  /** Whether the session must start with default_transaction_read_only=on. */
  readonly readOnly: boolean
  /** Judges a statement text (cached). */
  assess(text: string): Assessment
  /** Judges a FunctionCall message by its function OID. */
  assessFunctionCall(oid: number): Assessment
  /** The denial for an EXECUTE of a prepared statement whose text is unknown. */
  unknownPrepared(name: string): Decision & { allow: false }
}

const CACHE_ENTRIES = 10_000
/** What the cache may hold in all, in characters of statement text (the rest of an entry is small). */
const CACHE_CHARACTERS = 8 * 1024 * 1024
/** Longer texts are judged every time rather than held in memory. */
const CACHE_TEXT_LENGTH = 32 * 1024
/**
 * Parsing runs on the event loop at roughly half a second per MiB: a longer statement is refused
 * rather than stall every session of the gateway. Bulk data belongs in COPY ... FROM STDIN.
 */
export const MAX_CHECKED_TEXT = 1024 * 1024
const ALLOW: Decision = { allow: true }

/**
 * Compiles a connection's guardrails.
 *
 * @throws AirlockError `config` for a rule id that a preset or built-in rule already uses.
 */
export function createGuardrails(config: GuardrailsConfig): Guardrails {
  const presets: Preset[] = []
  for (const preset of config.presets) {
    if (!(PRESETS as readonly string[]).includes(preset)) throw new AirlockError('config', `unknown guardrail preset ${JSON.stringify(preset)}`)
    if (!presets.includes(preset as Preset)) presets.push(preset as Preset)
  }
  const reserved = new Set<string>([...PRESETS, ...Object.values(BUILTIN_RULES), 'airlock-internal'])
  const rules = config.rules.map((rule) => {
    if (reserved.has(rule.id)) {
      throw new AirlockError('config', `guardrail rule id ${JSON.stringify(rule.id)} is reserved for a built-in rule`, { hint: 'give the rule another id' })
    }
    return compileRule(rule)
  })
  const denies = rules.filter((rule) => rule.action === 'deny')
  const allows = rules.filter((rule) => rule.action === 'allow')
  // What cannot be judged statically is claimed by no-dynamic-sql, else by the first preset.
  const opaqueRule = presets.includes('no-dynamic-sql') ? 'no-dynamic-sql' : (presets[0] ?? BUILTIN_RULES.opaque)

  const judge = (analysis: Analysis): Decision => {
    const findings: Finding[] = [...pinnedSettingFindings(analysis), ...opaqueFindings(analysis, opaqueRule)]
    for (const rule of denies) findings.push(...denyFindings(rule, analysis))
    for (const preset of presets) findings.push(...presetFindings(preset, analysis))
    if (findings.length === 0) return ALLOW
    const applicable = allows.filter((rule) => matchRule(rule, analysis).length > 0)
    let exception: CustomRule | undefined
    for (const finding of findings) {
      const allowedBy = applicable.find((rule) => covers(rule, finding))
      if (allowedBy === undefined) return deny(finding)
      exception ??= allowedBy
    }
    return exception === undefined ? ALLOW : { allow: true, rule: exception.id }
  }

  const compute = (text: string): Assessment => {
    if (text.length > MAX_CHECKED_TEXT) {
      return denied(text.slice(0, 100), {
        allow: false,
        rule: BUILTIN_RULES.unparseable,
        message: `the statement is longer than the ${MAX_CHECKED_TEXT / 1024 / 1024} MiB Airlock checks`,
        hint: 'send bulk data with COPY ... FROM STDIN, or in smaller statements',
      })
    }
    const parsed = parseSql(text)
    if (!parsed.ok) return denied(text, unparseable(parsed.error))
    const statements: StatementVerdict[] = []
    const prepares: string[] = []
    const executes: string[] = []
    const deallocates: string[] = []
    let deallocatesAll = false
    for (const statement of parsed.statements) {
      let analysis: Analysis
      try {
        analysis = analyze(statement)
      } catch (error) {
        if (error instanceof TooComplex || error instanceof RangeError) return denied(text, unparseable(error.message))
        throw error
      }
      statements.push({ text: statement.text, decision: judge(analysis) })
      prepares.push(...analysis.prepares)
      executes.push(...analysis.executes)
      deallocates.push(...analysis.deallocates)
      deallocatesAll ||= analysis.deallocatesAll
    }
    const decision = statements.find((each) => !each.decision.allow)?.decision ?? statements.find((each) => each.decision.rule !== undefined)?.decision ?? ALLOW
    return freeze({ decision, statements, prepares, executes, deallocates, deallocatesAll })
  }

  const cache = new Map<string, Assessment>()
  let cachedCharacters = 0
  const functionCalls = new Map<number, Assessment>()

  return {
    mode: config.mode,
    presets,
    readOnly: presets.includes('read-only'),
    assess(text) {
      const cached = cache.get(text)
      if (cached !== undefined) return cached
      const assessment = compute(text)
      if (text.length <= CACHE_TEXT_LENGTH) {
        // Oldest first out: a Map iterates in insertion order.
        while (cache.size > 0 && (cache.size >= CACHE_ENTRIES || cachedCharacters + text.length > CACHE_CHARACTERS)) {
          const oldest = cache.keys().next().value!
          cache.delete(oldest)
          cachedCharacters -= oldest.length
        }
        cache.set(text, assessment)
        cachedCharacters += text.length
      }
      return assessment
    },
    assessFunctionCall(oid) {
      let assessment = functionCalls.get(oid)
      if (assessment === undefined) {
        assessment = functionCall(oid, judge)
        if (functionCalls.size < 1_000) functionCalls.set(oid, assessment)
      }
      return assessment
    },
    unknownPrepared(name) {
      return {
        allow: false,
        rule: opaqueRule,
        message: `EXECUTE of prepared statement ${JSON.stringify(name)}, whose text Airlock has not seen, cannot be checked`,
        hint: 'prepare the statement on this session (PREPARE or the protocol) before executing it',
      }
    },
  }
}

function functionCall(oid: number, judge: (analysis: Analysis) => Decision): Assessment {
  const text = `function ${oid}`
  const name = FUNCTION_CALL_ALLOWLIST.get(oid)
  if (name === undefined) {
    return denied(text, {
      allow: false,
      rule: BUILTIN_RULES.functionCall,
      message: `a FunctionCall of function ${oid}, which is not one drivers need, cannot be checked`,
      hint: 'call the function in a SELECT so that its arguments can be seen',
    })
  }
  const analysis: Analysis = {
    text,
    statements: [{ node: 'FunctionCall', tag: 'FUNCTION CALL', body: {}, executes: true, targets: [] }],
    functions: [{ schema: 'pg_catalog', name, argumentCount: 0, notation: 'call' }],
    tables: [],
    settings: [],
    opaque: [],
    languages: [],
    prepares: [],
    executes: [],
    deallocates: [],
    deallocatesAll: false,
  }
  const decision = judge(analysis)
  return freeze({ decision, statements: [{ text, decision }], prepares: [], executes: [], deallocates: [], deallocatesAll: false })
}

function unparseable(error: string): Decision & { allow: false } {
  return {
    allow: false,
    rule: BUILTIN_RULES.unparseable,
    message: `the statement could not be parsed (${error}), so it cannot be checked`,
    hint: 'Airlock parses statements as PostgreSQL 18 does; fix the syntax',
  }
}

function denied(text: string, decision: Decision): Assessment {
  return freeze({ decision, statements: [{ text, decision }], prepares: [], executes: [], deallocates: [], deallocatesAll: false })
}

function deny(finding: Finding): Decision {
  return finding.hint === undefined
    ? { allow: false, rule: finding.rule, message: finding.message }
    : { allow: false, rule: finding.rule, message: finding.message, hint: finding.hint }
}

function freeze(assessment: Assessment): Assessment {
  return Object.freeze(assessment)
}
