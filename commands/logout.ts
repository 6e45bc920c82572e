import { Args } from '@oclif/core'
import { logout, targetGateway } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'
import { EXIT_CODES } from '../src/errors.js'

export default class Logout extends BaseCommand {
  static override summary = 'Log out of a gateway: revoke the tokens at the identity provider and delete them here'
  static override description =
    'Revokes the refresh and access tokens where the identity provider supports revocation (RFC 7009), then deletes them from the token store and forgets the login. Logs out of GATEWAY_URL, else $AIRLOCK_GATEWAY, else the default gateway. When the token store (e.g. a locked keychain) cannot delete the tokens, the login is kept and the command exits 4: run it again where the store works.'
  static override args = {
    gateway: Args.string({ description: 'Gateway URL (default: $AIRLOCK_GATEWAY, else the default gateway)' }),
  }
  static override examples = ['<%= config.bin %> logout', '<%= config.bin %> logout https://airlock.example.com']

  async run(): Promise<void> {
    const { args } = await this.parse(Logout)
    const gateway = await targetGateway(args.gateway)
    if (gateway === undefined) {
      if (this.jsonMode) return this.printJson({ gateway: null, outcome: 'not-logged-in', wasLoggedIn: false, revocation: 'none' })
      process.stdout.write('Not logged in.\n')
      return
    }
    const result = await logout({ gateway })
    if (result.outcome === 'store-unreachable') process.exitCode = EXIT_CODES.unauthenticated
    if (this.jsonMode) return this.printJson(result)
    if (result.outcome === 'not-logged-in') {
      process.stdout.write(`Not logged in to ${result.gateway}.\n`)
      return
    }
    if (result.outcome === 'store-unreachable') {
      const revoked = result.revocation === 'revoked' ? ' They were revoked at the identity provider, so they no longer work.' : ''
      process.stderr.write(
        `Error: not logged out of ${result.gateway}: the stored tokens could not be deleted (${result.problem ?? 'token store unreachable'}).${revoked}\n` +
          'Hint: unlock the keychain (or run this where it is reachable, e.g. your desktop session) and run `airlock logout` again\n',
      )
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
