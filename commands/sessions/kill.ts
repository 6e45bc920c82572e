import { Args } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'

export default class SessionsKill extends BaseCommand {
  static override summary = 'End a live session now (admin)'
  static override args = { id: Args.string({ description: 'Session id, from `airlock sessions list`', required: true }) }
  static override examples = ['<%= config.bin %> sessions kill ses_Q2h0cmVhZGVk']

  async run(): Promise<void> {
    const { args } = await this.parse(SessionsKill)
    await new GatewayClient(await resolveClientCredentials()).killSession(args.id)
    if (this.jsonMode) return this.printJson({ killed: args.id })
    process.stdout.write(`Session ${args.id} ended.\n`)
  }
}
