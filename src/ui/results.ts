/**
 * Result sets as text: `table` for people, `csv`/`tsv` for pipes, `json` (one object per result
 * set per line) for programs. NULL and the empty string stay distinguishable in every format:
 * table `NULL` vs nothing, CSV unquoted-empty vs `""`, TSV `\N` vs nothing, JSON `null` vs `""`.
 * Rows stream: nothing holds a whole result, except a table's first rows while it sizes columns.
 */
import type { Writable } from 'node:stream'

export type OutputFormat = 'table' | 'csv' | 'tsv' | 'json'

export interface Column {
  name: string
  typeOid: number
}

export interface ResultWriter {
  columns(columns: Column[]): void
  /** False when the destination is full: wait for its `drain`. */
  row(values: (string | null)[]): boolean
  raw(data: Buffer): boolean
  complete(tag: string | undefined, notices: string[]): void
}

/** Rows a table buffers to size its columns; later rows are printed with those widths. */
const TABLE_SAMPLE = 1_000

export function createResultWriter(format: OutputFormat, out: Writable): ResultWriter {
  switch (format) {
    case 'csv':
      return delimited(out, ',', csvField)
    case 'tsv':
      return delimited(out, '\t', tsvField)
    case 'json':
      return jsonLines(out)
    case 'table':
      return table(out)
  }
}

function delimited(out: Writable, separator: string, field: (value: string | null) => string): ResultWriter {
  return {
    columns: (columns) => {
      out.write(columns.map((column) => field(column.name)).join(separator) + '\n')
    },
    row: (values) => out.write(values.map(field).join(separator) + '\n'),
    raw: (data) => out.write(data),
    complete: () => {},
  }
}

/** RFC 4180, with PostgreSQL's convention: NULL is an unquoted empty field, '' is `""`. */
export function csvField(value: string | null): string {
  if (value === null) return ''
  if (value === '' || /[",\r\n]/.test(value) || /^\s|\s$/.test(value)) return `"${value.replace(/"/g, '""')}"`
  return value
}

/** PostgreSQL text-COPY conventions: NULL is `\N`; backslash, tab, newline, CR escaped. */
export function tsvField(value: string | null): string {
  if (value === null) return '\\N'
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'))
}

/** Type OIDs whose text form is a JSON number or boolean. */
const JSON_NUMBER_TYPES = new Set([21 /* int2 */, 23 /* int4 */, 26 /* oid */, 700 /* float4 */, 701 /* float8 */])
const JSON_BOOL = 16
const JSON_DOCUMENT_TYPES = new Set([114 /* json */, 3802 /* jsonb */])

function jsonLines(out: Writable): ResultWriter {
  let columns: Column[] | undefined
  let rows = 0
  let open = false
  const begin = (): void => {
    out.write(`{"columns":${JSON.stringify((columns ?? []).map((column) => ({ name: column.name, typeOid: column.typeOid })))},"rows":[`)
    open = true
  }
  return {
    columns: (described) => {
      columns = described
      rows = 0
      begin()
    },
    row: (values) => {
      const cells = values.map((value, index) => jsonValue(value, columns?.[index]?.typeOid))
      return out.write(`${rows++ === 0 ? '' : ','}[${cells.join(',')}]`)
    },
    raw: (data) => out.write(data),
    complete: (tag, notices) => {
      if (!open) {
        columns = undefined
        rows = 0
        begin()
      }
      out.write(`],"command":${JSON.stringify(tag ?? null)},"rowCount":${rowCount(tag, rows)},"notices":${JSON.stringify(notices)}}\n`)
      open = false
      columns = undefined
    },
  }
}

function jsonValue(value: string | null, typeOid: number | undefined): string {
  if (value === null) return 'null'
  if (typeOid === JSON_BOOL) return value === 't' ? 'true' : 'false'
  if (typeOid !== undefined && JSON_NUMBER_TYPES.has(typeOid) && /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(value)) return value
  if (typeOid !== undefined && JSON_DOCUMENT_TYPES.has(typeOid)) return value
  return JSON.stringify(value)
}

/** The count a command tag reports (`UPDATE 3`, `INSERT 0 2`, `SELECT 5`), else the rows seen. */
function rowCount(tag: string | undefined, rows: number): number {
  const match = tag === undefined ? null : /(\d+)$/.exec(tag)
  return match === null ? rows : Number(match[1])
}

function table(out: Writable): ResultWriter {
  let columns: Column[] | undefined
  let sample: (string | null)[][] = []
  let widths: number[] | undefined
  let rows = 0
  const cell = (value: string | null): string => (value === null ? 'NULL' : value.replace(/\r?\n/g, '↵').replace(/\t/g, '⇥'))
  const line = (values: string[]): string => values.map((value, index) => pad(value, widths![index] ?? 0)).join(' | ').trimEnd() + '\n'
  const flushSample = (): boolean => {
    if (columns === undefined || widths !== undefined) return true
    widths = columns.map((column, index) => Math.max(width(column.name), ...sample.map((row) => width(cell(row[index] ?? null)))))
    out.write(line(columns.map((column) => column.name)))
    out.write(widths.map((w) => '-'.repeat(w)).join('-+-') + '\n')
    let ok = true
    for (const row of sample) ok = out.write(line(row.map(cell))) && ok
    sample = []
    return ok
  }
  return {
    columns: (described) => {
      columns = described
      sample = []
      widths = undefined
      rows = 0
    },
    row: (values) => {
      rows++
      if (widths === undefined) {
        sample.push(values)
        return sample.length < TABLE_SAMPLE ? true : flushSample()
      }
      return out.write(line(values.map(cell)))
    },
    raw: (data) => out.write(data),
    complete: (tag) => {
      if (columns !== undefined) {
        flushSample()
        out.write(`(${rows} row${rows === 1 ? '' : 's'})\n\n`)
      } else if (tag !== undefined) {
        out.write(`${tag}\n`)
      }
      columns = undefined
      widths = undefined
    },
  }
}

/** Terminal columns a string takes: East Asian wide and fullwidth characters take two. */
function width(text: string): number {
  let count = 0
  for (const char of text) count += isWide(char.codePointAt(0)!) ? 2 : 1
  return count
}

function pad(text: string, columns: number): string {
  return text + ' '.repeat(Math.max(0, columns - width(text)))
}

function isWide(code: number): boolean {
  return (
    (code >= 0x1100 && code <= 0x115f) ||
    (code >= 0x2e80 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) ||
    (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6) ||
    (code >= 0x1f300 && code <= 0x1faff) ||
    (code >= 0x20000 && code <= 0x3fffd)
  )
}
