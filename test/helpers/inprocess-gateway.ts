/** A gateway inside the test process, for tests that inject statement hooks or read its log lines. */
import { Writable } from 'node:stream'
import { createSecretSource, parseConfig } from '../../src/config/index.js'
import { createLogger, type Gateway, startGateway } from '../../src/gateway/index.js'
import type { GatewayOptions } from '../../src/gateway/server.js'
import { makeTokens, type TestGatewayOptions, type TestTokens, writeGatewayConfig } from './gateway.js'

export interface InProcessGateway {
  gateway: Gateway
  url: string
  tokens: TestTokens
  /** Every log line the gateway wrote. */
  logs: string[]
  env(who: keyof TestTokens): NodeJS.ProcessEnv
  stop(): Promise<void>
}

export async function startInProcessGateway(
  options: TestGatewayOptions & { secrets?: NodeJS.ProcessEnv; hooks?: GatewayOptions['hooks'] },
): Promise<InProcessGateway> {
  const tokens = makeTokens()
  const { dir } = writeGatewayConfig(options, tokens)
  const { parse } = await import('yaml')
  const { readFileSync } = await import('node:fs')
  const config = parseConfig(parse(readFileSync(`${dir}/airlock.yaml`, 'utf8')), dir)
  const logs: string[] = []
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(chunk.toString('utf8'))
      callback()
    },
  })
  const gateway = await startGateway({
    config,
    logger: createLogger('debug', destination),
    secrets: createSecretSource(options.secrets ?? {}),
    ...(options.hooks ? { hooks: options.hooks } : {}),
  })
  return {
    gateway,
    url: gateway.url.href,
    tokens,
    logs,
    env: (who) => ({ AIRLOCK_GATEWAY: gateway.url.href, AIRLOCK_TOKEN: tokens[who] }),
    stop: () => gateway.drain(0),
  }
}
