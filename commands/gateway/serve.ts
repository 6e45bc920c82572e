import { Flags } from '@oclif/core'
import { BaseCommand } from '../../src/cli/base-command.js'
import { configFlag } from '../../src/cli/gateway-config.js'
import { checkConfig, createSecretSource, loadConfig } from '../../src/config/index.js'
import { AirlockError } from '../../src/errors.js'
import { createLogger, startGateway } from '../../src/gateway/index.js'

export default class GatewayServe extends BaseCommand {
  static override summary = 'Run the gateway'
  static override description =
    'Serves the HTTP/WebSocket API until SIGTERM or SIGINT, then drains: no new sessions, open ones get sessions.drainGrace, then close with a reason. Logs are JSON lines on stdout.'
  static override flags = {
    config: configFlag,
    port: Flags.integer({ description: 'Override listen.port (0 picks a free port).', min: 0, max: 65535 }),
  }
  static override examples = ['<%= config.bin %> gateway serve --config /etc/airlock/airlock.yaml']

  async run(): Promise<void> {
    const { flags } = await this.parse(GatewayServe)
    const config = await loadConfig(flags.config)
    if (flags.port !== undefined) config.listen.port = flags.port
    const secrets = createSecretSource()
    const problems = (await checkConfig(config, secrets)).filter((finding) => finding.level === 'error')
    if (problems.length > 0) {
      throw new AirlockError('config', problems.map((finding) => `${finding.path}: ${finding.message}`).join('\n'), {
        hint: `run \`airlock gateway check --config ${flags.config}\``,
      })
    }
    const logger = createLogger(config.log.level)
    const gateway = await startGateway({ config, logger, secrets })
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals): void => {
        logger.info({ event: 'gateway.signal', signal }, `received ${signal}`)
        void gateway.drain().then(resolve)
      }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
    logger.flush()
  }
}
