import { Flags } from '@oclif/core'
import { generateServiceToken, hashServiceToken } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { AirlockError } from '../../src/errors.js'

export default class GatewayToken extends BaseCommand {
  static override summary = 'Create a service token for CI jobs and agents'
  static override description =
    'Prints a new random token once, and the auth.serviceTokens entry to add to the gateway config. The gateway stores only the SHA-256; give the token to the job as AIRLOCK_TOKEN through your CI secret store.'
  static override flags = {
    name: Flags.string({ description: 'Name shown in logs and sessions.', required: true }),
    groups: Flags.string({ description: 'Comma-separated groups the token grants.', required: true }),
    expires: Flags.string({ description: 'Expiry date (YYYY-MM-DD).' }),
  }
  static override examples = ['<%= config.bin %> gateway token --name nightly-ci --groups ci --expires 2027-01-01']

  async run(): Promise<void> {
    const { flags } = await this.parse(GatewayToken)
    const groups = flags.groups.split(',').map((group) => group.trim()).filter(Boolean)
    if (groups.length === 0) throw new AirlockError('usage', '--groups needs at least one group')
    if (flags.expires !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(flags.expires)) {
      throw new AirlockError('usage', `--expires must be a date like 2027-01-01`)
    }
    const token = generateServiceToken()
    const sha256 = hashServiceToken(token)
    if (this.jsonMode) return this.printJson({ name: flags.name, token, sha256, groups, expires: flags.expires ?? null })
    const entry = `{ name: ${flags.name}, sha256: "${sha256}", groups: [${groups.join(', ')}]${flags.expires ? `, expires: ${flags.expires}` : ''} }`
    process.stdout.write(`Token (shown once; store it in your secret manager):\n\n  ${token}\n\nAdd to the gateway config under auth.serviceTokens:\n\n  - ${entry}\n`)
  }
}
