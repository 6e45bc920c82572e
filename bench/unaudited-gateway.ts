/**
 * The gateway as `airlock gateway serve` runs it, but without an audit log: the benchmark's
 * baseline for what audit costs. Only the benchmark starts it; no configuration or flag of the
 * product can turn audit off. It runs the gateway's sources through tsx: the same code `serve` runs from dist/.
 *
 * Usage: node --import tsx bench/unaudited-gateway.ts CONFIG
 */
import { createSecretSource, loadConfig } from '../src/config/index.js'
import { createLogger, startGateway } from '../src/gateway/index.js'

const configFile = process.argv[2]
if (configFile === undefined) {
  process.stderr.write('usage: unaudited-gateway.ts CONFIG\n')
  process.exit(2)
}
const config = await loadConfig(configFile)
const logger = createLogger(config.log.level)
const gateway = await startGateway({ config, logger, secrets: createSecretSource(), audit: false })
const stop = (): void => {
  void gateway.drain().then(() => {
    logger.flush()
    process.exit(0)
  })
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
