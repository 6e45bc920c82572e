import { GatewayClient } from '../../src/api/client.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { formatBytes, renderTable } from '../../src/ui/table.js'

export default class SessionsList extends BaseCommand {
  static override summary = 'List live sessions on the gateway (admin)'
  static override examples = ['<%= config.bin %> sessions list', '<%= config.bin %> sessions list --json']

  async run(): Promise<void> {
    await this.parse(SessionsList)
    const sessions = await new GatewayClient(await resolveClientCredentials()).sessions()
    if (this.jsonMode) return this.printJson({ sessions })
    if (sessions.length === 0) {
      process.stdout.write('No live sessions.\n')
      return
    }
    process.stdout.write(
      renderTable(
        ['ID', 'IDENTITY', 'CONNECTION', 'CLIENT', 'STARTED', 'IN', 'OUT'],
        sessions.map((s) => [s.id, s.identity, s.connection, s.clientAddress, s.startedAt, formatBytes(s.bytesIn), formatBytes(s.bytesOut)]),
      ),
    )
  }
}
