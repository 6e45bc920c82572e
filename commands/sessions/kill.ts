import { Args, Flags } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { AirlockError } from '../../src/errors.js'

export default class SessionsKill extends BaseCommand {
  static override summary = 'End a live session, or revoke an identity: end all its sessions and refuse new ones (admin)'
  static override description =
    'With ID, ends that session. With --identity, ends every live session of the identity and refuses it new tunnels (exit 5) for --for, or until the gateway restarts: revocations are kept in the memory of the gateway that took them. Revoke the user at the identity provider too for a lasting effect.'
  static override args = { id: Args.string({ description: 'Session id, from `airlock sessions list`' }) }
  static override flags = {
    identity: Flags.string({ description: 'Revoke this identity: <issuer>#<sub> (as `airlock whoami --json` shows it as id) or service:<name>' }),
    for: Flags.string({ description: 'With --identity: refuse new tunnels for this long (30m, 8h); default until the gateway restarts', dependsOn: ['identity'] }),
  }
  static override examples = [
    '<%= config.bin %> sessions kill ses_Q2h0cmVhZGVk',
    "<%= config.bin %> sessions kill --identity 'https://idp.example.com#248289761001'",
    "<%= config.bin %> sessions kill --identity 'https://idp.example.com#248289761001' --for 8h",
  ]

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SessionsKill)
    if ((args.id === undefined) === (flags.identity === undefined)) {
      throw new AirlockError('usage', 'give either a session id or --identity', { hint: 'see `airlock sessions kill --help`' })
    }
    const client = new GatewayClient(await resolveClientCredentials())
    if (flags.identity !== undefined) {
      const result = await client.revokeIdentity(flags.identity, flags.for)
      if (this.jsonMode) return this.printJson(result)
      const until = result.until === null ? 'until the gateway restarts' : `until ${result.until}`
      process.stdout.write(`Revoked ${result.identity}: ${result.killed.length} session(s) ended; new tunnels refused ${until}.\n`)
      return
    }
    await client.killSession(args.id!)
    if (this.jsonMode) return this.printJson({ killed: args.id })
    process.stdout.write(`Session ${args.id} ended.\n`)
  }
}
