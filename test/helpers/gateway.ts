/** A real gateway process on a free port, with service tokens for each role the tests need. */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { generateServiceToken, hashServiceToken } from '../../src/auth/index.js'
import { spawnAirlock, type Spawned } from './processes.js'

export interface TestTokens {
  /** In groups [eng]: may use every test connection. */
  user: string
  /** In groups [platform]: a gateway admin, no connection access. */
  admin: string
  /** In groups [sales]: may use nothing. */
  outsider: string
  /** In groups [eng], expired. */
  expired: string
}

export interface TestGateway {
  url: string
  tokens: TestTokens
  configFile: string
  dir: string
  process: Spawned
  /** Environment for a CLI child acting as `who`. */
  env(who: keyof TestTokens): NodeJS.ProcessEnv
  stop(): Promise<number | null>
}

export interface TestGatewayOptions {
  connections: Record<string, unknown>[]
  sessions?: Record<string, unknown>
  limits?: Record<string, unknown>
  /** Extra env for the gateway process (e.g. values of {env} secret references). */
  env?: NodeJS.ProcessEnv
  /** Files written next to the config before the gateway starts (e.g. {file} secrets), by relative name. */
  files?: Record<string, string>
  /** Serve HTTPS with this certificate (absolute paths). */
  tls?: { cert: string; key: string }
}

export function makeTokens(): TestTokens {
  return { user: generateServiceToken(), admin: generateServiceToken(), outsider: generateServiceToken(), expired: generateServiceToken() }
}

export function writeGatewayConfig(options: TestGatewayOptions, tokens: TestTokens): { dir: string; configFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gw-'))
  const config = {
    listen: { host: '127.0.0.1', port: 0, ...(options.tls ? { tls: options.tls } : {}) },
    auth: {
      adminGroups: ['platform'],
      serviceTokens: [
        { name: 'test-user', sha256: hashServiceToken(tokens.user), groups: ['eng'] },
        { name: 'test-admin', sha256: hashServiceToken(tokens.admin), groups: ['platform'] },
        { name: 'test-outsider', sha256: hashServiceToken(tokens.outsider), groups: ['sales'] },
        { name: 'test-expired', sha256: hashServiceToken(tokens.expired), groups: ['eng'], expires: '2020-01-01' },
      ],
    },
    audit: { store: 'sqlite:./audit.db', required: false },
    ...(options.sessions ? { sessions: options.sessions } : {}),
    ...(options.limits ? { limits: options.limits } : {}),
    log: { level: 'info' },
    connections: options.connections,
  }
  const configFile = join(dir, 'airlock.yaml')
  writeFileSync(configFile, stringify(config))
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), content, { mode: 0o600 })
  return { dir, configFile }
}

export async function startTestGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const tokens = makeTokens()
  const { dir, configFile } = writeGatewayConfig(options, tokens)
  const gateway = spawnAirlock(['gateway', 'serve', '--config', configFile], { env: options.env ?? {} })
  const listening = await gateway.waitFor<{ event?: string; url?: string }>((line) => line.event === 'gateway.listen')
  const url = listening.url!
  return {
    url,
    tokens,
    configFile,
    dir,
    process: gateway,
    env: (who) => ({ AIRLOCK_GATEWAY: url, AIRLOCK_TOKEN: tokens[who] }),
    stop: () => gateway.stop('SIGTERM'),
  }
}
