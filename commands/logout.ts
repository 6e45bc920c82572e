import { Args } from '@oclif/core'
import { logout, targetGateway } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'

export default class Logout extends BaseCommand {
  static override summary = 'Log out of a gateway: revoke the tokens at the identity provider and delete them here'
  static override description =
    'Revokes the refresh and access tokens where the identity provider supports revocation (RFC 7009), then deletes them from the token store and forgets the login. Logs out of GATEWAY_URL, else $AIRLOCK_GATEWAY, else the default gateway.'
  static override args = {
    gateway: Args.string({ description: 'Gateway URL (default: $AIRLOCK_GATEWAY, else the default gateway)' }),
  }
  static override examples = ['<%= config.bin %> logout', '<%= config.bin %> logout https://airlock.example.com']

  async run(): Promise<void> {
    const { args } = await this.parse(Logout)
    const gateway = await targetGateway(args.gateway)
    if (gateway === undefined) {
      if (this.jsonMode) return this.printJson({ gateway: null, wasLoggedIn: false, revocation: 'none' })
      process.stdout.write('Not logged in.\n')
      return
    }
    const result = await logout({ gateway })
    if (this.jsonMode) return this.printJson(result)
    if (!result.wasLoggedIn) {
      process.stdout.write(`Not logged in to ${result.gateway}.\n`)
      return
    }
    const revocation = {
      revoked: 'the tokens were revoked at the identity provider and deleted here',
      unsupported: 'the identity provider offers no revocation: the tokens were deleted here and expire on their own',
      failed: 'the identity provider could not be reached to revoke the tokens: they were deleted here and expire on their own',
      none: 'the stored tokens were deleted',
    }[result.revocation]
    process.stdout.write(`Logged out of ${result.gateway}: ${revocation}.\n`)
  }
}
