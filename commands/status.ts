import { loginStatus } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'
import { EXIT_CODES } from '../src/errors.js'

export default class Status extends BaseCommand {
  static override summary = 'Show the gateway, identity, token expiry and token store other commands will use'
  static override description =
    'Reads only local state (no network, nothing renewed). Exits 4 when no usable credential is there, so scripts can check before they start.'
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json']

  async run(): Promise<void> {
    await this.parse(Status)
    const status = await loginStatus()
    if (!status.loggedIn) process.exitCode = EXIT_CODES.unauthenticated
    if (this.jsonMode) return this.printJson(status)

    const rows: [string, string][] = [['gateway', status.gateway ?? 'none (run `airlock login GATEWAY_URL`)']]
    if (status.source === 'env') {
      rows.push(['token', `AIRLOCK_TOKEN${status.identity === null ? '' : ` (workload token of ${status.identity.subject} at ${status.identity.issuer})`}`])
    } else if (status.identity !== null) {
      rows.push(['identity', `${status.identity.name} (${status.identity.subject} at ${status.identity.issuer})`])
    }
    if (status.expiresAt !== null) {
      const expired = Date.parse(status.expiresAt) <= Date.now()
      const note = status.refreshable ? (expired ? 'expired; renewed on next use' : 'renewed automatically') : expired ? 'expired' : ''
      rows.push(['expires', `${status.expiresAt}${note === '' ? '' : ` (${note})`}`])
    }
    if (status.store !== null) rows.push(['tokens', status.store.kind === 'keychain' ? 'OS keychain' : `${status.store.location} (file, mode 0600)`])
    if (status.problem !== null) rows.push(['problem', status.problem])
    if (!status.loggedIn) {
      const why = status.source === 'none' ? 'not logged in: run `airlock login`' : status.problem !== null ? 'no usable credential (see problem)' : 'not logged in: the credential has expired'
      rows.push(['status', why])
    }
    const others = status.logins.filter((login) => login.gateway !== status.gateway)
    for (const [index, login] of others.entries()) rows.push([index === 0 ? 'also' : '', `${login.gateway} as ${login.name}`])
    process.stdout.write(rows.map(([label, value]) => `${label.padEnd(9)}${value}\n`).join(''))
  }
}
