import { Flags } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { EVENT_COLUMNS, eventRow } from '../../src/audit/index.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { renderTable } from '../../src/ui/table.js'

/** The filters `audit list` and `audit tail` share. */
export const filterFlags = {
  user: Flags.string({ description: 'Only this identity: its id (service:NAME, ISSUER#SUB) or its name (token name, email).' }),
  connection: Flags.string({ description: 'Only this connection.' }),
  session: Flags.string({ description: 'Only this session (ses_...).' }),
  since: Flags.string({ description: 'Only events at or after this time (2026-01-31T12:00:00Z) or this long ago (15m, 2h, 7d).' }),
  verdict: Flags.string({ description: 'Only statements with this verdict.', options: ['allowed', 'blocked', 'flagged'] }),
  type: Flags.string({ description: 'Only this event type (statement.begin, session.start, auth.failure, ...).' }),
}

export default class AuditList extends BaseCommand {
  static override summary = 'List audit events, newest first (admin)'
  static override description = `Who ran what, where, when, and what the gateway did about it. Each statement has a statement.begin
(recorded before it ran: text with secrets redacted, verdict and rule) and a statement.end (outcome, rows,
SQLSTATE, duration). --json prints {"events":[...],"next":CURSOR}; pass CURSOR to --cursor for older events.`
  static override flags = {
    ...filterFlags,
    limit: Flags.integer({ description: 'How many events (1-999).', default: 50, min: 1, max: 999 }),
    cursor: Flags.string({ description: 'Continue after a previous page (its `next`).' }),
  }
  static override examples = [
    '<%= config.bin %> audit list --since 1h',
    '<%= config.bin %> audit list --verdict blocked --connection pg-prod',
    '<%= config.bin %> audit list --user alice@example.com --json',
  ]

  async run(): Promise<void> {
    const { flags } = await this.parse(AuditList)
    const { limit, cursor, ...filter } = flags
    const page = await new GatewayClient(await resolveClientCredentials()).auditEvents({ ...filter, limit, ...(cursor === undefined ? {} : { cursor }) })
    if (this.jsonMode) return this.printJson(page)
    if (page.events.length === 0) {
      process.stdout.write('No audit events match.\n')
      return
    }
    process.stdout.write(renderTable(EVENT_COLUMNS, page.events.map(eventRow)))
    if (page.next !== null) process.stderr.write(`More: --cursor ${page.next}\n`)
  }
}
