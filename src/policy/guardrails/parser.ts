/**
 * The real PostgreSQL parser (libpg-query, compiled to WebAssembly), loaded once per process. It
 * reads SQL as a server with `standard_conforming_strings = on`, `backslash_quote = safe_encoding`
 * and UTF-8 text does: the reason the gateway pins those settings on every guarded session.
 */
import { loadModule, parseSync } from 'libpg-query'
import { AirlockError } from '../../errors.js'

let loading: Promise<void> | undefined
let loaded = false

/** Loads the parser (idempotent). Must have settled before the first {@link parseSql}. */
export function loadSqlParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    loaded = true
  })
  return loading
}

/** One statement of a parsed text: its parse-tree node and its own slice of the text. */
export interface ParsedStatement {
  /** The node type, e.g. `SelectStmt`. */
  node: string
  body: Record<string, unknown>
  text: string
}

export type ParseOutcome = { ok: true; statements: ParsedStatement[] } | { ok: false; error: string }

/** Parses `text` into its statements; a syntax error is an outcome, not an exception. */
export function parseSql(text: string): ParseOutcome {
  if (!loaded) throw new AirlockError('internal', 'the SQL parser is not loaded (call loadSqlParser first)')
  if (text.trim() === '') return { ok: true, statements: [] }
  let tree: { stmts?: { stmt?: Record<string, unknown>; stmt_location?: number; stmt_len?: number }[] }
  try {
    tree = parseSync(text) as typeof tree
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : 'syntax error' }
  }
  // Locations are byte offsets into the UTF-8 text.
  const bytes = Buffer.byteLength(text) === text.length ? undefined : Buffer.from(text, 'utf8')
  const total = bytes?.length ?? text.length
  const statements: ParsedStatement[] = []
  for (const raw of tree.stmts ?? []) {
    const start = raw.stmt_location ?? 0
    const end = raw.stmt_len === undefined || raw.stmt_len === 0 ? total : start + raw.stmt_len
    const slice = (bytes === undefined ? text.slice(start, end) : bytes.toString('utf8', start, end)).trim()
    const stmt = raw.stmt ?? {}
    const node = Object.keys(stmt)[0]
    if (node === undefined) continue
    statements.push({ node, body: stmt[node] as Record<string, unknown>, text: slice })
  }
  return { ok: true, statements }
}
