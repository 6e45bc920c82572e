/**
 * The rules: built-in ones that keep the policy sound, the six presets, and custom rules from the
 * configuration. Each turns an {@link Analysis} into findings; a finding names its rule, says why
 * in words a database user understands, and names its subject (a statement kind, a function, a
 * table) so that a custom `allow` rule can make an exception for exactly that subject.
 */
import type { Analysis, FunctionRef, SettingChange, StatementNode, TableRef } from './analyze.js'
import { parseBoolean } from './analyze.js'
import { serverFileReason, TRUSTED_LANGUAGES, writingReason } from './functions.js'
import { NON_WRITING, NOT_DDL } from './kinds.js'
import { type Preset, PRESETS } from './presets.js'
import { isTriviallyTrue } from './trivial.js'

export { type Preset, PRESETS }

/** Rules that apply whenever guardrails are configured; no custom rule can make an exception. */
export const BUILTIN_RULES = {
  /** The text does not parse: what the server would make of it cannot be judged. */
  unparseable: 'airlock-unparseable',
  /** standard_conforming_strings, client_encoding and backslash_quote stay as the parser reads. */
  pinnedSettings: 'airlock-pinned-settings',
  /** A FunctionCall message for a function outside the driver allowlist. */
  functionCall: 'airlock-function-call',
  /** Code that cannot be judged statically, when no preset claims it. */
  opaque: 'airlock-opaque',
} as const

/** The parameters the gateway pins, with the values it pins them to (as SET would write them). */
export const PINNED_SETTINGS: Readonly<Record<string, string>> = {
  standard_conforming_strings: 'on',
  client_encoding: 'UTF8',
  backslash_quote: 'safe_encoding',
}

/** Why each preset exists, for the README, `explain` and hints. */
export const PRESET_REASONS: Readonly<Record<Preset, string>> = {
  'read-only': 'only statements that cannot write; the session also starts with default_transaction_read_only=on',
  'no-ddl': 'no schema changes: CREATE, ALTER, DROP, TRUNCATE, COMMENT, GRANT, REVOKE and the like',
  'no-server-files': "nothing that reads or writes the database server's files or reaches out from it",
  'no-role-changes': 'no changes to roles, passwords, the session user or role, or search_path',
  'safe-writes': 'UPDATE, DELETE and MERGE must narrow the rows they touch; no TRUNCATE',
  'no-dynamic-sql': 'no code whose statements cannot be seen: DO, functions, procedures, EXECUTE of unknown statements',
}

const HINTS: Readonly<Record<Preset, string>> = {
  'read-only': 'this connection is read-only; use a connection that allows writes',
  'no-ddl': 'schema changes go through migrations, not this connection',
  'no-server-files': 'use COPY ... FROM STDIN / TO STDOUT (psql \\copy) for data; files on the server are off limits',
  'no-role-changes': 'the gateway decides who the session is; ask an admin for a connection with the access you need',
  'safe-writes': 'add a WHERE clause that selects the rows to change',
  'no-dynamic-sql': 'send the statements themselves so each can be checked',
}

export interface Subject {
  kind?: string
  function?: string
  table?: TableRef
}

export interface Finding {
  rule: string
  message: string
  hint?: string
  subject: Subject
  /** Whether a custom allow rule may make an exception (never for built-in rules that keep parsing sound). */
  suppressible: boolean
}

// ---- presets --------------------------------------------------------------------------------

type PresetCheck = (analysis: Analysis, report: (message: string, subject: Subject | Subject[]) => void) => void

const READ_ONLY_SETTINGS = new Set(['transaction_read_only', 'default_transaction_read_only'])

const readOnly: PresetCheck = (analysis, report) => {
  for (const statement of analysis.statements) {
    if (!statement.executes) continue
    const subject = statementSubject(statement)
    if (!NON_WRITING.has(statement.node)) {
      report(statement.node === 'CallStmt' ? 'CALL runs a procedure, which can write' : `${statement.tag} writes to the database`, subject)
      continue
    }
    const { body } = statement
    switch (statement.node) {
      case 'SelectStmt':
        if (body.intoClause !== undefined) report('SELECT INTO creates a table', subject)
        if (body.lockingClause !== undefined) report('SELECT ... FOR UPDATE/SHARE locks rows', subject)
        break
      case 'CopyStmt':
        if (body.is_from === true) report('COPY FROM writes rows', subject)
        break
      case 'LockStmt':
        // PostgreSQL's own rule for read-only transactions: nothing stronger than ROW EXCLUSIVE.
        if (typeof body.mode !== 'number' || body.mode > 3) report('LOCK TABLE in a mode stronger than ROW EXCLUSIVE', subject)
        break
      case 'TransactionStmt':
        if (body.kind === 'TRANS_STMT_PREPARE' || body.kind === 'TRANS_STMT_COMMIT_PREPARED' || body.kind === 'TRANS_STMT_ROLLBACK_PREPARED') {
          report(`${statement.tag} acts on two-phase transactions`, subject)
        }
        break
    }
  }
  for (const setting of analysis.settings) {
    if (setting.name === undefined || !READ_ONLY_SETTINGS.has(setting.name)) continue
    // RESET default_transaction_read_only returns to the startup value, which the gateway pins on.
    if (setting.reset && setting.name === 'default_transaction_read_only') continue
    if (setting.value !== undefined && parseBoolean(setting.value) === true) continue
    report(`${describeSetting(setting)} would let the session write`, { kind: settingKind(setting) })
  }
  for (const fn of analysis.functions) {
    const reason = writingReason(fn.name)
    if (reason !== undefined) report(reason, { function: fn.name })
  }
}

const noDdl: PresetCheck = (analysis, report) => {
  for (const statement of analysis.statements) {
    if (!statement.executes) continue
    if (!NOT_DDL.has(statement.node) || (statement.node === 'SelectStmt' && statement.body.intoClause !== undefined)) {
      report(`${statement.tag} changes the schema`, statementSubject(statement))
    }
  }
}

const OUTWARD = new Set([
  'CreateForeignServerStmt',
  'AlterForeignServerStmt',
  'CreateForeignTableStmt',
  'CreateUserMappingStmt',
  'AlterUserMappingStmt',
  'ImportForeignSchemaStmt',
  'CreateFdwStmt',
  'AlterFdwStmt',
  'CreateSubscriptionStmt',
  'AlterSubscriptionStmt',
])

const noServerFiles: PresetCheck = (analysis, report) => {
  for (const statement of analysis.statements) {
    const subject = statementSubject(statement)
    const { body } = statement
    switch (statement.node) {
      case 'CopyStmt':
        if (body.is_program === true) report(`COPY ... PROGRAM runs a program on the database server`, subject)
        else if (typeof body.filename === 'string') report('COPY to or from a file reads or writes files on the database server', subject)
        break
      case 'CreateExtensionStmt':
      case 'AlterExtensionStmt':
        report(`${statement.tag} installs code on the database server`, subject)
        break
      case 'LoadStmt':
        report('LOAD loads a library file into the database server', subject)
        break
      case 'AlterSystemStmt':
        report("ALTER SYSTEM writes the database server's configuration file", subject)
        break
      case 'CreateTableSpaceStmt':
        report('CREATE TABLESPACE uses a directory on the database server', subject)
        break
      case 'CreatePLangStmt':
        report('CREATE LANGUAGE loads code into the database server', subject)
        break
      default:
        if (OUTWARD.has(statement.node)) report(`${statement.tag} reaches other servers from the database server`, subject)
    }
  }
  for (const { language, kind } of analysis.languages) {
    if (!TRUSTED_LANGUAGES.has(language)) report(`${language} code runs with the database server's own file and program access`, { kind })
  }
  for (const fn of analysis.functions) {
    const reason = serverFileReason(fn.name)
    if (reason !== undefined) report(reason, { function: fn.name })
  }
}

const ROLE_SETTINGS: Readonly<Record<string, string>> = {
  role: "changes the session's role",
  session_authorization: "changes the session's user",
  search_path: 'changes which schemas unqualified names resolve to',
}

const noRoleChanges: PresetCheck = (analysis, report) => {
  for (const statement of analysis.statements) {
    const subject = statementSubject(statement)
    switch (statement.node) {
      case 'CreateRoleStmt':
      case 'DropRoleStmt':
      case 'AlterRoleSetStmt':
        report(`${statement.tag} changes roles`, subject)
        break
      case 'AlterRoleStmt': {
        const options = Array.isArray(statement.body.options) ? statement.body.options : []
        const password = options.some((option) => (option as { DefElem?: { defname?: string } }).DefElem?.defname === 'password')
        report(password ? `${statement.tag} ... PASSWORD changes a password` : `${statement.tag} changes roles`, subject)
        break
      }
      case 'GrantRoleStmt':
        report(`${statement.tag} of a role changes role membership`, subject)
        break
      case 'ReassignOwnedStmt':
      case 'AlterOwnerStmt':
        report(`${statement.tag} changes who owns objects`, subject)
        break
      case 'CreateUserMappingStmt':
      case 'AlterUserMappingStmt':
        report(`${statement.tag} stores credentials for another server`, subject)
        break
    }
  }
  for (const setting of analysis.settings) {
    const effect = setting.name === undefined ? undefined : ROLE_SETTINGS[setting.name]
    if (effect !== undefined) report(`${describeSetting(setting)} ${effect}`, { kind: settingKind(setting) })
  }
}

const safeWrites: PresetCheck = (analysis, report) => {
  for (const statement of analysis.statements) {
    if (!statement.executes) continue
    const subject = statementSubject(statement)
    const { body } = statement
    switch (statement.node) {
      case 'UpdateStmt':
      case 'DeleteStmt':
        if (body.whereClause === undefined) report(`${statement.tag} without a WHERE clause changes every row`, subject)
        else if (isTriviallyTrue(body.whereClause)) report(`${statement.tag} with an always-true WHERE clause changes every row`, subject)
        break
      case 'TruncateStmt':
        report('TRUNCATE empties whole tables', subject)
        break
      case 'MergeStmt':
        for (const clause of Array.isArray(body.mergeWhenClauses) ? body.mergeWhenClauses : []) {
          const when = (clause as { MergeWhenClause?: Record<string, unknown> }).MergeWhenClause
          if (when === undefined || (when.commandType !== 'CMD_DELETE' && when.commandType !== 'CMD_UPDATE')) continue
          const action = when.commandType === 'CMD_DELETE' ? 'DELETE' : 'UPDATE'
          const narrowed = when.condition !== undefined && !isTriviallyTrue(when.condition)
          if (narrowed) continue
          if (when.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE') {
            report(`MERGE ... WHEN NOT MATCHED BY SOURCE THEN ${action} changes every row the source lacks`, subject)
          } else if (body.joinCondition === undefined || isTriviallyTrue(body.joinCondition)) {
            report(`MERGE ... ${action} with an always-true ON condition changes every row`, subject)
          }
        }
        break
    }
  }
}

const noDynamicSql: PresetCheck = (analysis, report) => {
  for (const statement of analysis.statements) {
    const subject = statementSubject(statement)
    switch (statement.node) {
      case 'CreateFunctionStmt':
        report(`${statement.tag} defines code that runs later, unseen`, subject)
        break
      case 'CallStmt':
        report('CALL runs a procedure whose statements cannot be seen', subject)
        break
      case 'CreatePLangStmt':
        report('CREATE LANGUAGE adds a way to run code', subject)
        break
    }
  }
}

const PRESET_CHECKS: Readonly<Record<Preset, PresetCheck>> = {
  'read-only': readOnly,
  'no-ddl': noDdl,
  'no-server-files': noServerFiles,
  'no-role-changes': noRoleChanges,
  'safe-writes': safeWrites,
  'no-dynamic-sql': noDynamicSql,
}

/** The findings of one preset for one statement. */
export function presetFindings(preset: Preset, analysis: Analysis): Finding[] {
  const findings: Finding[] = []
  PRESET_CHECKS[preset](analysis, (message, subjects) => {
    for (const subject of Array.isArray(subjects) ? subjects : [subjects]) findings.push({ rule: preset, message, hint: HINTS[preset], subject, suppressible: true })
  })
  return findings
}

// ---- built-in rules -------------------------------------------------------------------------

/**
 * Setting changes that would make the parser read text differently from the server. RESET and
 * SET ... TO DEFAULT return to the startup value, which the gateway pins, so they pass.
 */
export function pinnedSettingFindings(analysis: Analysis): Finding[] {
  const findings: Finding[] = []
  for (const setting of analysis.settings) {
    if (setting.name === undefined) {
      findings.push({
        rule: BUILTIN_RULES.pinnedSettings,
        message: 'a setting changed by a computed name (set_config, pg_settings) cannot be checked',
        hint: 'name the parameter as a literal',
        subject: { function: 'set_config' },
        suppressible: false,
      })
      continue
    }
    const pinned = PINNED_SETTINGS[setting.name]
    if (pinned === undefined || setting.reset) continue
    if (setting.value !== undefined && sameSettingValue(setting.name, setting.value, pinned)) continue
    findings.push({
      rule: BUILTIN_RULES.pinnedSettings,
      message: `${setting.name} is pinned to ${pinned} so that Airlock reads statements as the server does`,
      hint: `leave ${setting.name} at ${pinned}`,
      subject: { kind: settingKind(setting) },
      suppressible: false,
    })
  }
  return findings
}

function sameSettingValue(name: string, value: string, pinned: string): boolean {
  switch (name) {
    case 'client_encoding':
      // PostgreSQL ignores case and punctuation in encoding names; UNICODE is an alias of UTF8.
      return ['utf8', 'unicode'].includes(value.toLowerCase().replace(/[^a-z0-9]/g, ''))
    case 'standard_conforming_strings':
      return parseBoolean(value) === true
    default:
      return value.trim().toLowerCase() === pinned
  }
}

/** Findings for what cannot be judged statically, under the rule that claims it. */
export function opaqueFindings(analysis: Analysis, rule: string): Finding[] {
  return analysis.opaque.map((opaque) => ({
    rule,
    message: opaque.reason,
    hint: HINTS['no-dynamic-sql'],
    subject: {
      ...(opaque.kind === undefined ? {} : { kind: opaque.kind }),
      ...(opaque.function === undefined ? {} : { function: opaque.function }),
    },
    suppressible: true,
  }))
}

// ---- custom rules ---------------------------------------------------------------------------

/** A custom rule as configured (`guardrails.rules[]`). */
export interface RuleConfig {
  id: string
  action: 'deny' | 'allow'
  message?: string | undefined
  kind?: string[] | undefined
  function?: string[] | undefined
  table?: string[] | undefined
  access?: 'read' | 'write' | 'any' | undefined
  pattern?: string | undefined
}

export interface CustomRule {
  id: string
  action: 'deny' | 'allow'
  message: string
  kinds: string[] | undefined
  functions: Glob[] | undefined
  tables: Glob[] | undefined
  access: 'read' | 'write' | 'any'
  pattern: RegExp | undefined
}

interface Glob {
  regex: RegExp
  qualified: boolean
}

export function compileRule(config: RuleConfig): CustomRule {
  return {
    id: config.id,
    action: config.action,
    message: config.message ?? `matches rule ${config.id}`,
    kinds: config.kind?.map((kind) => kind.trim().replace(/\s+/g, ' ').toUpperCase()),
    functions: config.function?.map(glob),
    tables: config.table?.map(glob),
    access: config.access ?? 'any',
    // Case-insensitive, as SQL keywords are; `s` so that `.` crosses the lines of a long statement.
    pattern: config.pattern === undefined ? undefined : new RegExp(config.pattern, 'is'),
  }
}

function glob(pattern: string): Glob {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return { regex: new RegExp(`^${source}$`, 'i'), qualified: pattern.includes('.') }
}

function kindMatches(kinds: string[], statement: StatementNode | { tag: string; node?: string }): boolean {
  return kinds.some((kind) => matchesKind(kind, statement.tag, statement.node))
}

function matchesKind(kind: string, tag: string, node: string | undefined): boolean {
  return tag === kind || tag.startsWith(`${kind} `) || (node !== undefined && node.toUpperCase() === kind)
}

function functionMatches(globs: Glob[], fn: { schema?: string | undefined; name: string }): boolean {
  return globs.some((g) => g.regex.test(g.qualified ? `${fn.schema ?? 'pg_catalog'}.${fn.name}` : fn.name))
}

/** Unqualified table names are matched as `public.NAME` by patterns with a schema. */
function tableMatches(rule: CustomRule, table: TableRef): boolean {
  if (rule.access !== 'any' && rule.access !== table.access) return false
  return (rule.tables ?? []).some((g) => g.regex.test(g.qualified ? `${table.schema ?? 'public'}.${table.name}` : table.name))
}

/**
 * Every combination of what a custom rule matched in the statement (one kind × one function × one
 * table, for the matchers it has), or none when a matcher finds nothing. Each is the subject of one
 * finding, so an allow rule must cover every table (function, kind) a deny rule matched.
 */
export function matchRule(rule: CustomRule, analysis: Analysis): Subject[] {
  if (rule.pattern !== undefined && !rule.pattern.test(analysis.text)) return []
  let subjects: Subject[] = [{}]
  const combine = (values: Subject[]): void => {
    subjects = subjects.flatMap((subject) => values.map((value) => ({ ...subject, ...value })))
  }
  if (rule.kinds !== undefined) {
    combine(unique(analysis.statements.filter((each) => each.executes && kindMatches(rule.kinds!, each)).map((each) => each.tag)).map((kind) => ({ kind })))
  }
  if (rule.functions !== undefined) {
    combine(unique(analysis.functions.filter((each: FunctionRef) => functionMatches(rule.functions!, each)).map((each) => each.name)).map((name) => ({ function: name })))
  }
  if (rule.tables !== undefined) combine(analysis.tables.filter((each) => tableMatches(rule, each)).map((table) => ({ table })))
  return subjects
}

/** A custom deny rule's findings (none when it does not match). */
export function denyFindings(rule: CustomRule, analysis: Analysis): Finding[] {
  return matchRule(rule, analysis).map((subject) => ({ rule: rule.id, message: rule.message, subject, suppressible: true }))
}

function unique(values: string[]): string[] {
  return [...new Set(values)]
}

/**
 * Whether an allow rule (already known to match the statement) covers a finding: the finding's
 * subject must match every kind/function/table matcher the rule has. A rule with only a pattern
 * covers every finding of the statements it matches.
 */
export function covers(rule: CustomRule, finding: Finding): boolean {
  if (!finding.suppressible) return false
  const { subject } = finding
  if (rule.kinds !== undefined && (subject.kind === undefined || !rule.kinds.some((kind) => matchesKind(kind, subject.kind!, undefined)))) return false
  if (rule.functions !== undefined && (subject.function === undefined || !functionMatches(rule.functions, { name: subject.function }))) return false
  if (rule.tables !== undefined && (subject.table === undefined || !tableMatches(rule, subject.table))) return false
  return true
}

// ---- helpers --------------------------------------------------------------------------------

/**
 * One subject per table the statement writes (an allow rule must cover each: an exception for
 * `TRUNCATE scratch` is none for `TRUNCATE scratch, victims`), or the statement kind alone.
 */
function statementSubject(statement: StatementNode): Subject[] {
  if (statement.targets.length === 0) return [{ kind: statement.tag }]
  return statement.targets.map((table) => ({ kind: statement.tag, table }))
}

function settingKind(setting: SettingChange): string {
  switch (setting.via) {
    case 'set_config':
      return 'SELECT'
    case 'BEGIN':
      return 'BEGIN'
    default:
      return setting.reset ? 'RESET' : 'SET'
  }
}

function describeSetting(setting: SettingChange): string {
  const name = setting.name ?? 'a parameter'
  switch (setting.via) {
    case 'set_config':
      return `set_config('${name}', ...)`
    case 'BEGIN':
      return 'a READ WRITE transaction'
    default:
      if (name === 'role' || name === 'session_authorization') return setting.reset ? `RESET ${name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'}` : `SET ${name === 'role' ? 'ROLE' : 'SESSION AUTHORIZATION'}`
      return `${setting.reset ? 'RESET' : 'SET'} ${name}`
  }
}
