/**
 * Audit events and verification reports in words, for `airlock audit` on a terminal. Everything a
 * client could have typed (statement text, names) is shown with control characters escaped, so a
 * recorded statement cannot drive the admin's terminal.
 */
import type { AuditEvent } from './record.js'
import type { Head } from './store.js'
import { formatHead, type VerifyReport } from './verify.js'

/** `value` with control characters (C0, DEL, C1) shown as escapes. */
export function printable(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))
}

function cut(value: string, width: number): string {
  const flat = printable(value.replace(/\s+/g, ' ').trim())
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat
}

/** ` masked email×2 canary×1` for a record's masked counts; nothing when there are none. */
function masked(counts: Readonly<Record<string, number>> | undefined): string {
  const entries = Object.entries(counts ?? {})
  return entries.length === 0 ? '' : ` masked ${cut(entries.map(([name, count]) => `${name}×${count}`).join(' '), 60)}`
}

function field(event: AuditEvent, name: string): unknown {
  return (event as unknown as Record<string, unknown>)[name]
}

/** What happened, in one line (without who/where/when, which have their own columns). */
export function describeEvent(event: AuditEvent): string {
  const text = (name: string): string => {
    const value = field(event, name)
    return typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value)
  }
  switch (event.type) {
    case 'statement.begin': {
      const verdict = event.verdict === 'allowed' ? (event.rule === undefined ? '' : `allowed by ${event.rule} `) : `${event.verdict.toUpperCase()} by ${event.rule ?? '?'} `
      return `#${event.sequence} ${event.path} ${verdict}${cut(event.text, 100)}`
    }
    case 'statement.end':
      return `#${event.sequence} ${event.outcome}${event.command === undefined ? '' : ` ${event.command}`}${event.sqlstate === undefined ? '' : ` SQLSTATE ${event.sqlstate}`} rows=${event.rows} ${(event.durationUs / 1000).toFixed(1)}ms${masked(event.masked)}`
    case 'session.start':
      return `${cut(event.identity.display, 60)} (${event.identity.kind}) from ${event.client.address}, CLI ${cut(event.client.version, 20)}`
    case 'session.end':
      return `${cut(event.reason.message, 80)}${event.reason.code === undefined ? '' : ` [${event.reason.code}]`} in=${event.bytes.in}B out=${event.bytes.out}B ${(event.durationMs / 1000).toFixed(1)}s${masked(event.masked)}`
    case 'auth.failure':
      return `from ${event.client.address} ${cut(event.path, 60)}: ${event.code}: ${cut(event.reason, 80)}`
    case 'auth.failure.summary':
      return `${event.count} more failures since ${printable(event.since)}, not recorded one by one: ${event.clients.map((client) => `${cut(client.address, 45)}×${client.count}`).join(' ')}${event.otherClients > 0 ? ` and ${event.otherClients} more addresses` : ''}`
    case 'command.blocked':
      return `BLOCKED by ${event.rule} (${cut(event.where, 20)}): ${cut(event.message, 60)}${event.text === undefined ? '' : ` ${cut(event.text, 60)}`}`
    case 'admin.kill':
      return `killed session ${event.session}`
    case 'admin.replay':
      return `replayed the recording of session ${event.session}`
    case 'admin.export':
      return `exported the audit log (${Object.entries(event.filter).map(([key, value]) => `${key}=${cut(value, 40)}`).join(' ')})`
    case 'gateway.start':
      return `gateway ${cut(event.version, 20)} started (pid ${event.pid})${event.unclean ? '; the previous run ended without stopping' : ''}`
    case 'gateway.stop':
      return `gateway stopped: ${cut(event.reason, 80)}`
    default:
      return cut(text('type'), 80)
  }
}

/** Rows for the `audit list` / `tail` table: id, time, type, user, connection, session, what. */
export function eventRow(event: AuditEvent): string[] {
  const user = field(event, 'user')
  const identity = field(event, 'identity')
  const who = typeof user === 'string' ? user : typeof identity === 'object' && identity !== null ? String((identity as { display?: unknown }).display ?? '') : ''
  const text = (value: unknown): string => (typeof value === 'string' ? cut(value, 40) : '')
  return [printable(event.id), printable(event.time), printable(event.type), cut(who, 40), text(field(event, 'connection')), text(field(event, 'session')), describeEvent(event)]
}

export const EVENT_COLUMNS = ['ID', 'TIME', 'TYPE', 'USER', 'CONNECTION', 'SESSION', 'WHAT'] as const

/** Every field of one event, one per line, for `audit show`. */
export function describeEventFully(event: AuditEvent): string {
  const lines: string[] = []
  const width = Math.max(...Object.keys(event).map((key) => key.length))
  for (const [key, value] of Object.entries(event)) {
    const shown = typeof value === 'string' ? printable(value) : printable(JSON.stringify(value))
    lines.push(`${key.padEnd(width)}  ${shown}`)
  }
  return `${lines.join('\n')}\n`
}

/** The verification report in words. */
export function describeReport(report: VerifyReport): string {
  const lines: string[] = []
  if (report.chains.length === 0) lines.push('The audit log holds no records.')
  for (const chain of report.chains) {
    if (chain.broken === undefined) {
      lines.push(`chain ${chain.chain}: ${chain.records} records intact; head ${chain.head === undefined ? '(none)' : formatHead({ chain: chain.chain, ...chain.head })}`)
    } else {
      lines.push(`chain ${chain.chain}: BROKEN at ${chain.broken.id ?? chain.broken.seq} (${chain.broken.kind}): ${chain.broken.reason}`)
      lines.push(`  ${chain.records} records before it are intact${chain.head === undefined ? '' : `; last intact ${formatHead({ chain: chain.chain, ...chain.head })}`}`)
    }
  }
  for (const head of report.missingHeads) lines.push(`expected head ${head.hash.slice(0, 16)}…: ${head.reason}`)
  lines.push(report.ok ? 'OK: every chain is intact.' : 'FAILED: the audit log was altered (see above).')
  return `${lines.join('\n')}\n`
}

/** Heads as `CHAIN:SEQ:HASH` lines (what `--expect-head` takes), with their times. */
export function describeHeads(heads: readonly Head[]): string {
  if (heads.length === 0) return 'The audit log holds no records.\n'
  return heads.map((head) => `${formatHead(head)}  ${head.time}\n`).join('')
}
