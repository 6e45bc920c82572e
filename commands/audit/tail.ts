import { GatewayClient } from '../../src/api/client.js'
import { decodeCursor, describeEvent, eventRow } from '../../src/audit/index.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { filterFlags } from './list.js'

export default class AuditTail extends BaseCommand {
  static override summary = 'Follow the audit log as events are stored (admin)'
  static override description = 'Prints events as they arrive until interrupted; --json prints one event per line. --since starts earlier than now.'
  static override flags = { ...filterFlags }
  static override examples = ['<%= config.bin %> audit tail', '<%= config.bin %> audit tail --verdict blocked --json']

  async run(): Promise<void> {
    const { flags } = await this.parse(AuditTail)
    const client = new GatewayClient(await resolveClientCredentials())
    let stopped = false
    const stop = (): void => {
      stopped = true
      process.exitCode ??= 0
      process.exit()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    let cursor: string | undefined
    const { since, ...filter } = flags
    if (since !== undefined) {
      // Where "now" is first, then what --since covers up to it, then everything after it: no gap, no repeat.
      cursor = (await client.auditTail({ ...filter, wait: '0s' })).cursor
      const upTo = decodeCursor(cursor)
      const earlier = await client.auditEvents({ ...filter, since, limit: 999 })
      for (const event of [...earlier.events].reverse()) if (event.seq <= (upTo[event.chain] ?? 0)) this.print(event)
    }
    while (!stopped) {
      const page = await client.auditTail({ ...filter, ...(cursor === undefined ? {} : { cursor }), wait: '20s' })
      for (const event of page.events) this.print(event)
      cursor = page.cursor
    }
  }

  private print(event: Parameters<typeof describeEvent>[0]): void {
    if (this.jsonMode) return this.printJson(event)
    const [id, time, type, user] = eventRow(event)
    process.stdout.write(`${time} ${id} ${type}${user === '' ? '' : ` ${user}`} ${describeEvent(event)}\n`)
  }
}
