import { Args, Flags } from '@oclif/core'
import { GatewayClient } from '../src/api/client.js'
import { login, type LoginPrompt, type LoginResult, staticCredentials, targetGateway } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'
import { AirlockError } from '../src/errors.js'

export default class Login extends BaseCommand {
  static override summary = 'Log in to a gateway through its identity provider (browser, or a device code)'
  static override description = `Asks the gateway which identity provider (OIDC) it trusts, then logs in: in a browser by default
(authorization code with PKCE, answered by a one-time listener on 127.0.0.1), or with --device by entering a code on any
other device. The URL is always printed; --no-browser only prints it. Tokens are kept in the OS keychain, or in a 0600 file
under ~/.config/airlock when no keychain is usable (AIRLOCK_TOKEN_STORE=keychain|file forces one), and are renewed before
they expire. The gateway becomes the default for other commands; logins to several gateways are kept side by side.`
  static override args = {
    gateway: Args.string({ description: 'Gateway URL (default: $AIRLOCK_GATEWAY, else the gateway last logged in to)' }),
  }
  static override flags = {
    device: Flags.boolean({ description: 'Log in with a device code (machines without a browser, SSH sessions).', default: false }),
    browser: Flags.boolean({ description: 'Open a browser; --no-browser only prints the URL.', default: true, allowNo: true }),
    issuer: Flags.string({ description: 'The identity provider to use when the gateway trusts several.' }),
  }
  static override examples = [
    '<%= config.bin %> login https://airlock.example.com',
    '<%= config.bin %> login --device',
    '<%= config.bin %> login --no-browser --json',
  ]

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Login)
    const gateway = await targetGateway(args.gateway)
    if (gateway === undefined) {
      throw new AirlockError('usage', 'which gateway? no GATEWAY_URL given and none logged in to before', {
        hint: 'run `airlock login https://airlock.example.com`',
      })
    }
    const notice = (text: string): void => {
      process.stderr.write(`${text}\n`)
    }
    const result = await login({
      gateway,
      flow: flags.device ? 'device' : 'browser',
      openBrowser: flags.browser,
      ...(flags.issuer === undefined ? {} : { issuer: flags.issuer }),
      confirm: async (token) => {
        const identity = await new GatewayClient(staticCredentials(gateway, token)).whoami()
        return { name: identity.name, groups: identity.groups, admin: identity.admin }
      },
      onPrompt: (prompt) => (this.jsonMode ? this.printJson(prompt) : process.stderr.write(describePrompt(prompt))),
      onNotice: notice,
    })
    if (process.env.AIRLOCK_TOKEN?.trim()) notice('Note: AIRLOCK_TOKEN is set in this environment; commands use it instead of this login until it is unset.')
    if (this.jsonMode) return this.printJson({ type: 'logged-in', ...result })
    process.stdout.write(describeResult(result))
  }
}

function describePrompt(prompt: LoginPrompt): string {
  if (prompt.type === 'device') {
    const lines = [
      '',
      `To log in, open ${prompt.verificationUri} on any device and enter the code`,
      '',
      `    ${prompt.userCode}`,
      '',
    ]
    if (prompt.verificationUriComplete !== undefined) lines.push(`(or open ${prompt.verificationUriComplete})`)
    lines.push(`The code expires in ${Math.round(prompt.expiresIn / 60)} minutes. Waiting for the login...`, '')
    return lines.join('\n')
  }
  const lines = ['', 'Log in with your identity provider at:', '', `    ${prompt.url}`, '']
  if (prompt.reason !== undefined) {
    lines.push(`No browser can be opened here (${prompt.reason}): open the URL in a browser on this machine, or use \`airlock login --device\`.`)
  } else if (prompt.opened) {
    lines.push('Your browser has been opened at that address.')
  }
  lines.push('Waiting for the login to complete...', '')
  return lines.join('\n')
}

function describeResult(result: LoginResult): string {
  const groups = result.groups.length > 0 ? result.groups.join(', ') : 'none'
  const renewal = result.refreshable ? 'renewed automatically' : 'run `airlock login` again then'
  return [
    `Logged in to ${result.gateway} as ${result.name}${result.shared ? ' (by another airlock process)' : ''}.`,
    `  groups   ${groups}${result.admin ? ' (gateway admin)' : ''}`,
    `  expires  ${result.expiresAt} (${renewal})`,
    `  tokens   ${result.store === 'keychain' ? 'OS keychain' : `${result.storeLocation} (file, mode 0600)`}`,
    '',
  ].join('\n')
}
