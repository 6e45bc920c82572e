/**
 * One parsed statement → the facts the rules judge: every statement node inside it (DML in CTEs,
 * EXPLAIN ANALYZE, COPY (query), CREATE TABLE AS, PREPARE bodies, rule actions, SQL function
 * bodies), every function call (including `value.function` field notation, which PostgreSQL also
 * resolves to a call), every table with read/write access, every setting change (SET, RESET,
 * set_config, BEGIN/SET TRANSACTION options), what cannot be judged statically, and the prepared
 * statement names it defines, runs or drops.
 */
import { runsSqlText } from './functions.js'
import { isStatementNode, READS_RELATIONS, statementTag } from './kinds.js'
import { parseSql, type ParsedStatement } from './parser.js'

type Body = Record<string, unknown>

export interface TableRef {
  /** As written; undefined when the name is unqualified. */
  schema: string | undefined
  name: string
  access: 'read' | 'write'
}

export interface FunctionRef {
  schema: string | undefined
  /** Lowercase, quoting and escapes resolved by the parser. */
  name: string
  argumentCount: number
  /** `call`: f(...); `field`: (value).f, which PostgreSQL may also resolve to f(value). */
  notation: 'call' | 'field'
}

export interface SettingChange {
  /** Lowercase parameter name; `*` for RESET ALL; undefined when computed at run time. */
  name: string | undefined
  /** The constant value; undefined when reset to the session default or computed. */
  value: string | undefined
  /** RESET, SET ... TO DEFAULT, SET ... FROM CURRENT: back to the session's startup value. */
  reset: boolean
  /** How: `SET`, `set_config`, or a transaction's own options (`BEGIN READ WRITE`). */
  via: 'SET' | 'set_config' | 'BEGIN'
  /** Stored for later sessions or calls (ALTER SYSTEM/ROLE/DATABASE ... SET, a function's SET clause). */
  stored: boolean
}

export interface StatementNode {
  node: string
  tag: string
  body: Body
  /** False under a plain EXPLAIN (without ANALYZE), which plans but does not run. */
  executes: boolean
  /** The tables it writes itself (DML target, DDL subjects, TRUNCATE's list), not those of statements inside it. */
  targets: TableRef[]
}

export interface Opaque {
  reason: string
  kind?: string
  function?: string
}

export interface Analysis {
  /** The statement's own text. */
  text: string
  /** Every statement node, the top-level one first. */
  statements: StatementNode[]
  functions: FunctionRef[]
  tables: TableRef[]
  settings: SettingChange[]
  /** Parts whose effect cannot be judged from the text. */
  opaque: Opaque[]
  /** Languages of functions defined and DO blocks run. */
  languages: { language: string; kind: string }[]
  /** Prepared statement names defined (PREPARE), run (EXECUTE) and dropped (DEALLOCATE). */
  prepares: string[]
  executes: string[]
  deallocates: string[]
  /** DEALLOCATE ALL or DISCARD ALL. */
  deallocatesAll: boolean
}

/** Thrown for a tree nested deeper than the walk follows: judged as unparseable. */
export class TooComplex extends Error {}

const MAX_DEPTH = 2_000
const MAX_NESTED_BODIES = 8

/** Fields that hold a node of a fixed type without the `{ Type: ... }` wrapper. */
const UNWRAPPED: Record<string, string> = {
  larg: 'SelectStmt',
  rarg: 'SelectStmt',
  setstmt: 'VariableSetStmt',
  funccall: 'FuncCall',
  base: 'CreateStmt',
}

/** DROP of these object types names relations. */
const DROPPED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_INDEX', 'OBJECT_FOREIGN_TABLE'])

export function analyze(statement: ParsedStatement): Analysis {
  const analysis: Analysis = {
    text: statement.text,
    statements: [],
    functions: [],
    tables: [],
    settings: [],
    opaque: [],
    languages: [],
    prepares: [],
    executes: [],
    deallocates: [],
    deallocatesAll: false,
  }
  new Walker(analysis).node(statement.node, statement.body)
  return analysis
}

class Walker {
  private executes = true
  /** Relations named directly by the current statement are written (DDL, TRUNCATE, VACUUM ...). */
  private writesNamed = false
  private stored = false
  private depth = 0
  private bodies = 0
  /** The innermost statement being walked: the relations it writes are its targets. */
  private current: StatementNode | undefined

  constructor(private readonly analysis: Analysis) {}

  visit(value: unknown): void {
    if (value === null || typeof value !== 'object') return
    if (++this.depth > MAX_DEPTH) throw new TooComplex('the statement is nested too deeply to check')
    try {
      if (Array.isArray(value)) {
        for (const item of value) this.visit(item)
        return
      }
      const body = value as Body
      const type = wrapperType(body)
      if (type !== undefined) this.node(type, body[type] as Body)
      else if (typeof body.relname === 'string') this.relation(body, this.writesNamed ? 'write' : 'read')
      else this.fields(body)
    } finally {
      this.depth--
    }
  }

  private fields(body: Body, skip?: string): void {
    for (const key in body) {
      if (key === skip) continue
      const value = body[key]
      if (value === null || typeof value !== 'object') continue
      const type = UNWRAPPED[key]
      if (type !== undefined && !Array.isArray(value) && wrapperType(value as Body) === undefined) this.node(type, value as Body)
      else this.visit(value)
    }
  }

  node(type: string, body: Body): void {
    if (isStatementNode(type)) {
      this.statement(type, body)
      return
    }
    switch (type) {
      case 'FuncCall':
        this.call(body)
        this.fields(body)
        return
      case 'A_Indirection':
        for (const item of asArray(body.indirection)) {
          const field = stringNode(item)
          if (field !== undefined) this.fieldCall(field)
        }
        this.fields(body)
        return
      case 'ColumnRef': {
        const fields = asArray(body.fields)
        const last = fields.length >= 2 ? stringNode(fields[fields.length - 1]) : undefined
        if (last !== undefined) this.fieldCall(last)
        return
      }
      case 'RangeVar':
        this.relation(body, this.writesNamed ? 'write' : 'read')
        return
      default:
        this.fields(body)
    }
  }

  private statement(type: string, body: Body): void {
    const { analysis } = this
    const record: StatementNode = { node: type, tag: statementTag(type, body), body, executes: this.executes, targets: [] }
    analysis.statements.push(record)
    const saved = { executes: this.executes, writesNamed: this.writesNamed, stored: this.stored, current: this.current }
    this.writesNamed = !READS_RELATIONS.has(type)
    this.current = record
    try {
      switch (type) {
        case 'InsertStmt':
        case 'UpdateStmt':
        case 'DeleteStmt':
        case 'MergeStmt':
          if (isObject(body.relation)) {
            const target = this.relation(body.relation, 'write')
            // pg_settings has an UPDATE rule that calls set_config for each row: a computed change.
            if (target.name === 'pg_settings' && (target.schema ?? 'pg_catalog') === 'pg_catalog') {
              analysis.settings.push({ name: undefined, value: undefined, reset: false, via: 'set_config', stored: false })
            }
          }
          this.fields(body, 'relation')
          break
        case 'CopyStmt':
          if (isObject(body.relation)) this.relation(body.relation, body.is_from === true ? 'write' : 'read')
          this.fields(body, 'relation')
          break
        case 'SelectStmt': {
          const into = body.intoClause
          if (isObject(into) && isObject(into.rel)) this.relation(into.rel, 'write')
          this.fields(body, 'intoClause')
          break
        }
        case 'CreateTableAsStmt': {
          const into = body.into
          if (isObject(into) && isObject(into.rel)) this.relation(into.rel, 'write')
          this.fields(body, 'into')
          break
        }
        case 'ExplainStmt':
          if (!explainAnalyzes(body.options)) this.executes = false
          this.visit(body.query)
          break
        case 'VariableSetStmt':
          this.setting(body)
          this.fields(body)
          break
        case 'TransactionStmt':
          for (const option of defElems(body.options)) {
            if (option.name === 'transaction_read_only') {
              analysis.settings.push({ name: 'transaction_read_only', value: booleanText(option.arg), reset: false, via: 'BEGIN', stored: false })
            }
          }
          break
        case 'AlterSystemStmt':
        case 'AlterRoleSetStmt':
        case 'AlterDatabaseSetStmt':
        case 'AlterFunctionStmt':
          this.stored = true
          this.fields(body)
          break
        case 'PrepareStmt':
          if (typeof body.name === 'string') analysis.prepares.push(body.name)
          this.fields(body)
          break
        case 'ExecuteStmt':
          if (typeof body.name === 'string') analysis.executes.push(body.name)
          this.visit(body.params)
          break
        case 'DeallocateStmt':
          if (body.isall === true || body.name === undefined) analysis.deallocatesAll = true
          else if (typeof body.name === 'string') analysis.deallocates.push(body.name)
          break
        case 'DiscardStmt':
          if ((body.target ?? 'DISCARD_ALL') === 'DISCARD_ALL') analysis.deallocatesAll = true
          break
        case 'DoStmt': {
          const language = stringArg(defElems(body.args).find((option) => option.name === 'language')?.arg)?.toLowerCase() ?? 'plpgsql'
          analysis.languages.push({ language, kind: record.tag })
          analysis.opaque.push({ reason: 'a DO block runs code that cannot be checked before it runs', kind: record.tag })
          break
        }
        case 'CreateFunctionStmt':
          this.functionDefinition(record, body)
          break
        case 'DropStmt':
          if (typeof body.removeType === 'string' && DROPPED_RELATIONS.has(body.removeType)) {
            for (const object of asArray(body.objects)) {
              const names = asArray((object as Body | undefined)?.List && ((object as Body).List as Body).items).map(stringNode)
              const name = names[names.length - 1]
              if (name !== undefined) this.table({ schema: names.length >= 2 ? names[names.length - 2] : undefined, name, access: 'write' })
            }
          }
          this.fields(body)
          break
        default:
          this.fields(body)
      }
    } finally {
      Object.assign(this, saved)
    }
  }

  private functionDefinition(record: StatementNode, body: Body): void {
    const options = defElems(body.options)
    const language = stringArg(options.find((option) => option.name === 'language')?.arg)?.toLowerCase() ?? 'sql'
    const definition = options.find((option) => option.name === 'as')?.arg
    this.analysis.languages.push({ language, kind: record.tag })
    this.stored = true
    this.visit(body.parameters)
    this.visit(body.options)
    this.stored = false
    if (body.sql_body !== undefined) {
      this.visit(body.sql_body)
      return
    }
    const source = listOfStrings(definition)
    if (language === 'sql' && source.length === 1 && this.bodies < MAX_NESTED_BODIES) {
      const parsed = parseSql(source[0]!)
      if (parsed.ok) {
        this.bodies++
        for (const statement of parsed.statements) this.node(statement.node, statement.body)
        this.bodies--
        return
      }
    }
    this.analysis.opaque.push({
      reason: language === 'sql' ? 'the body of this SQL function cannot be checked' : `the body of a ${language} function cannot be checked before it runs`,
      kind: record.tag,
    })
  }

  private setting(body: Body): void {
    const stored = this.stored
    const push = (change: Omit<SettingChange, 'stored' | 'via'>): void => {
      this.analysis.settings.push({ ...change, via: 'SET', stored })
    }
    const name = typeof body.name === 'string' ? body.name.toLowerCase() : undefined
    switch (body.kind) {
      case 'VAR_RESET_ALL':
        push({ name: '*', value: undefined, reset: true })
        return
      case 'VAR_RESET':
      case 'VAR_SET_DEFAULT':
      case 'VAR_SET_CURRENT':
        push({ name, value: undefined, reset: true })
        return
      case 'VAR_SET_MULTI':
        // SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ...
        for (const option of defElems(body.args)) {
          if (option.name !== 'transaction_read_only') continue
          push({
            name: name === 'session characteristics' ? 'default_transaction_read_only' : 'transaction_read_only',
            value: booleanText(option.arg),
            reset: false,
          })
        }
        return
      default: {
        const values = asArray(body.args).map(constantText)
        push({ name, value: values.some((value) => value === undefined) ? undefined : values.join(', '), reset: false })
      }
    }
  }

  private call(body: Body): void {
    const names = asArray(body.funcname).map(stringNode)
    const name = names[names.length - 1]?.toLowerCase()
    if (name === undefined) return
    const args = asArray(body.args)
    this.analysis.functions.push({ schema: names.length >= 2 ? names[names.length - 2] : undefined, name, argumentCount: args.length, notation: 'call' })
    if (runsSqlText(name, args.length)) {
      this.analysis.opaque.push({ reason: `${name} runs SQL given as text, which cannot be checked before it runs`, function: name })
    }
    if (name === 'set_config') {
      this.analysis.settings.push({
        name: constantText(args[0])?.toLowerCase(),
        value: constantText(args[1]),
        reset: false,
        via: 'set_config',
        stored: this.stored,
      })
    }
  }

  private fieldCall(field: string): void {
    const name = field.toLowerCase()
    this.analysis.functions.push({ schema: undefined, name, argumentCount: 1, notation: 'field' })
    if (runsSqlText(name, 1)) {
      this.analysis.opaque.push({ reason: `${name} runs SQL given as text, which cannot be checked before it runs`, function: name })
    }
  }

  private relation(body: Body, access: TableRef['access']): TableRef {
    return this.table({ schema: typeof body.schemaname === 'string' ? body.schemaname : undefined, name: String(body.relname), access })
  }

  private table(table: TableRef): TableRef {
    this.analysis.tables.push(table)
    if (table.access === 'write') this.current?.targets.push(table)
    return table
  }
}

/** The node type of a `{ Type: {...} }` wrapper, if `body` is one. */
function wrapperType(body: Body): string | undefined {
  let type: string | undefined
  for (const key in body) {
    if (type !== undefined) return undefined
    type = key
  }
  if (type === undefined) return undefined
  const first = type.charCodeAt(0)
  return first >= 0x41 && first <= 0x5a ? type : undefined
}

function isObject(value: unknown): value is Body {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

/** The text of a `{ String: { sval } }` node. */
function stringNode(value: unknown): string | undefined {
  if (!isObject(value) || !isObject(value.String)) return undefined
  return typeof value.String.sval === 'string' ? value.String.sval : ''
}

function stringArg(value: unknown): string | undefined {
  if (typeof value === 'string') return value
  return stringNode(value)
}

function listOfStrings(value: unknown): string[] {
  if (isObject(value) && isObject(value.List)) return asArray(value.List.items).map(stringNode).filter((item): item is string => item !== undefined)
  const single = stringNode(value)
  return single === undefined ? [] : [single]
}

function defElems(value: unknown): { name: string; arg: unknown }[] {
  const out: { name: string; arg: unknown }[] = []
  for (const item of asArray(value)) {
    if (isObject(item) && isObject(item.DefElem) && typeof item.DefElem.defname === 'string') {
      out.push({ name: item.DefElem.defname, arg: item.DefElem.arg })
    }
  }
  return out
}

/**
 * The value of a constant (a literal, possibly cast), as PostgreSQL would read it as text;
 * undefined for anything computed. Zero values are omitted from the parse tree: `{ ival: {} }` is 0.
 */
export function constantText(value: unknown): string | undefined {
  if (!isObject(value)) return undefined
  if (isObject(value.TypeCast)) return constantText(value.TypeCast.arg)
  if (isObject(value.String)) return stringNode(value)
  const constant = value.A_Const
  if (!isObject(constant) || constant.isnull === true) return undefined
  if (isObject(constant.sval)) return typeof constant.sval.sval === 'string' ? constant.sval.sval : ''
  if (isObject(constant.ival)) return String(constant.ival.ival ?? 0)
  if (isObject(constant.fval)) return String(constant.fval.fval ?? '0')
  if (isObject(constant.boolval)) return constant.boolval.boolval === true ? 'true' : 'false'
  if (isObject(constant.bsval)) return String(constant.bsval.bsval ?? '')
  return undefined
}

/** `on`/`off` for a boolean option value (READ ONLY is 1, READ WRITE is 0); undefined when not constant. */
function booleanText(value: unknown): string | undefined {
  const text = constantText(value)
  if (text === undefined) return undefined
  const parsed = parseBoolean(text)
  return parsed === undefined ? text : parsed ? 'on' : 'off'
}

/** PostgreSQL's parse_bool: true/false, yes/no, on/off, 1/0 and unique prefixes; undefined otherwise. */
export function parseBoolean(text: string): boolean | undefined {
  const value = text.trim().toLowerCase()
  if (value === '') return undefined
  if ('true'.startsWith(value) || 'yes'.startsWith(value) || value === 'on' || value === '1') return true
  if ('false'.startsWith(value) || 'no'.startsWith(value) || value === 'off' || value === 'of' || value === '0') return false
  return undefined
}

/**
 * Whether an EXPLAIN's options make it run the statement: any ANALYZE that is not a constant false
 * (the server takes the last of repeated options: `(ANALYZE false, ANALYZE true)` runs it).
 */
function explainAnalyzes(options: unknown): boolean {
  return defElems(options).some((option) => {
    if (option.name !== 'analyze') return false
    if (option.arg === undefined) return true
    const text = constantText(option.arg)
    return text === undefined || parseBoolean(text) !== false
  })
}
