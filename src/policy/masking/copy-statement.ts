/**
 * What a COPY statement sends to the client, read with the real PostgreSQL parser: masking must
 * split COPY TO STDOUT lines the way the server wrote them (text or CSV, and their delimiter,
 * NULL, quote and escape options), and refuse what it cannot read (binary).
 */
import { parseSql } from '../guardrails/parser.js'
import type { CopyFormat } from './copy.js'

export type CopyOutStatement = CopyFormat | { format: 'binary' } | { format: 'unreadable' }

/**
 * The format of the lines `sql` (one statement) sends as COPY TO STDOUT; undefined when it sends
 * none (not a COPY, COPY FROM, COPY to a file or program). Needs `loadSqlParser()` settled.
 */
export function copyOutStatement(sql: string): CopyOutStatement | undefined {
  const parsed = parseSql(sql)
  if (!parsed.ok || parsed.statements.length !== 1) return { format: 'unreadable' }
  const [statement] = parsed.statements
  if (statement!.node !== 'CopyStmt') return undefined
  const body = statement!.body
  if (body.is_from === true || body.filename !== undefined || body.is_program === true) return undefined
  const format: CopyFormat = { format: 'text' }
  for (const option of Array.isArray(body.options) ? body.options : []) {
    const element = (option as { DefElem?: { defname?: string; arg?: Record<string, { sval?: string }> } }).DefElem
    if (element === undefined) return { format: 'unreadable' }
    const value = element.arg?.String?.sval
    switch (element.defname) {
      case 'format':
        if (value === undefined) return { format: 'unreadable' }
        if (value.toLowerCase() === 'binary') return { format: 'binary' }
        if (value.toLowerCase() !== 'text' && value.toLowerCase() !== 'csv') return { format: 'unreadable' }
        format.format = value.toLowerCase() as 'text' | 'csv'
        break
      case 'delimiter':
      case 'null':
      case 'quote':
      case 'escape':
        if (value === undefined) return { format: 'unreadable' }
        format[element.defname] = value
        break
      default:
        // header, encoding, force_quote, ...: they do not change how a line splits.
        break
    }
  }
  // The dialect takes one byte per delimiter/quote/escape; anything else the server refuses too.
  for (const key of ['delimiter', 'quote', 'escape'] as const) {
    if (format[key] !== undefined && Buffer.byteLength(format[key]) !== 1) return { format: 'unreadable' }
  }
  return format
}
