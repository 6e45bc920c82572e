import { GatewayClient } from '../src/api/client.js'
import { resolveCredentialSource } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'

export default class WhoAmI extends BaseCommand {
  static override summary = 'Show who the gateway takes you for: subject, email, groups, issuer, expiry'
  static override description =
    'Asks the gateway with the credential other commands would use (AIRLOCK_TOKEN, else the stored login, renewed if needed) and prints the identity it establishes.'
  static override examples = ['<%= config.bin %> whoami', '<%= config.bin %> whoami --json']

  async run(): Promise<void> {
    await this.parse(WhoAmI)
    const { credentials, source } = await resolveCredentialSource()
    const identity = await new GatewayClient(credentials).whoami()
    // OIDC identities are `<issuer>#<sub>`; an issuer URL has no fragment, so the first # splits them.
    const split = identity.kind === 'oidc' || identity.kind === 'workload' ? identity.id.indexOf('#') : -1
    const claims = source.kind === 'login' ? source.session.current.claims : undefined
    const result = {
      gateway: credentials.gateway.href,
      kind: identity.kind,
      id: identity.id,
      subject: split > 0 ? identity.id.slice(split + 1) : null,
      issuer: split > 0 ? identity.id.slice(0, split) : null,
      name: identity.name,
      email: claims?.email ?? null,
      groups: identity.groups,
      admin: identity.admin,
      expiresAt: identity.expiresAt,
      credential: source.kind === 'login' ? 'login' : 'AIRLOCK_TOKEN',
    }
    if (this.jsonMode) return this.printJson(result)
    const rows: [string, string][] = [
      ['name', result.name],
      ['subject', result.subject ?? result.id],
      ...(result.issuer === null ? [] : [['issuer', result.issuer] as [string, string]]),
      ...(result.email === null ? [] : [['email', result.email] as [string, string]]),
      ['groups', result.groups.length > 0 ? result.groups.join(', ') : 'none'],
      ['admin', result.admin ? 'yes' : 'no'],
      ['expires', result.expiresAt ?? 'never'],
      ['gateway', result.gateway],
      ['via', result.credential],
    ]
    process.stdout.write(rows.map(([label, value]) => `${label.padEnd(9)}${value}\n`).join(''))
  }
}
