import { GatewayClient } from '../src/api/client.js'
import { resolveClientCredentials } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'
import { renderTable } from '../src/ui/table.js'

export default class Connections extends BaseCommand {
  static override summary = 'List the connections this identity may use'
  static override examples = ['<%= config.bin %> connections', '<%= config.bin %> connections --json']

  async run(): Promise<void> {
    await this.parse(Connections)
    const connections = await new GatewayClient(await resolveClientCredentials()).connections()
    if (this.jsonMode) return this.printJson({ connections })
    if (connections.length === 0) {
      process.stdout.write('No connections are available to this identity; ask a gateway admin for access.\n')
      return
    }
    process.stdout.write(renderTable(['NAME', 'TYPE', 'DESCRIPTION'], connections.map((c) => [c.name, c.type, c.description ?? ''])))
  }
}
