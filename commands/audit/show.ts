import { Args } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { describeEventFully } from '../../src/audit/index.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'

export default class AuditShow extends BaseCommand {
  static override summary = 'Show one audit event with every field (admin)'
  static override args = { id: Args.string({ description: 'Event id (CHAIN:SEQ), from `airlock audit list`', required: true }) }
  static override examples = ['<%= config.bin %> audit show 3f9c0a1b2c3d4e5f:1042']

  async run(): Promise<void> {
    const { args } = await this.parse(AuditShow)
    const event = await new GatewayClient(await resolveClientCredentials()).auditEvent(args.id)
    if (this.jsonMode) return this.printJson(event)
    process.stdout.write(describeEventFully(event))
  }
}
