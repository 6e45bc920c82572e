import { checkConfig, createSecretSource, loadConfig } from '../../src/config/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { configFlag } from '../../src/cli/gateway-config.js'
import { AirlockError } from '../../src/errors.js'

export default class GatewayCheck extends BaseCommand {
  static override summary = 'Validate a gateway configuration and every secret reference in it'
  static override description =
    'Parses the YAML, checks it against the schema, and tries every {env}/{file} secret reference and TLS file without printing any value. Exits 2 when anything is wrong.'
  static override flags = { config: configFlag }
  static override examples = ['<%= config.bin %> gateway check --config airlock.yaml']

  async run(): Promise<void> {
    const { flags } = await this.parse(GatewayCheck)
    const config = await loadConfig(flags.config)
    const findings = await checkConfig(config, createSecretSource())
    const errors = findings.filter((finding) => finding.level === 'error')
    if (this.jsonMode) {
      this.printJson({ ok: errors.length === 0, file: flags.config, connections: config.connections.map((c) => c.name), findings })
    } else {
      for (const finding of findings) process.stdout.write(`${finding.level}: ${finding.path}: ${finding.message}\n`)
      if (errors.length === 0) {
        process.stdout.write(`${flags.config}: ok (${config.connections.length} connection${config.connections.length === 1 ? '' : 's'})\n`)
      }
    }
    if (errors.length > 0) {
      if (this.jsonMode) process.exitCode = 2
      else throw new AirlockError('config', `${flags.config}: ${errors.length} problem${errors.length === 1 ? '' : 's'} found`, { hint: 'fix the lines above and run the check again' })
    }
  }
}
