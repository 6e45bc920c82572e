/**
 * A real OpenID provider for tests (oidc-provider, through src/auth/dev-idp.ts) and a real gateway
 * process that trusts it: users alice (groups eng) and mallory (groups sales), the CLI registered
 * as the native public client `airlock-cli`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { type DevIdp, type DevIdpOptions, startDevIdp } from '../../src/auth/dev-idp.js'
import { spawnAirlock, type Spawned } from './processes.js'

export const TEST_USERS = {
  alice: { email: 'alice@example.com', name: 'Alice Example', groups: ['eng'] },
  mallory: { email: 'mallory@example.com', name: 'Mallory Example', groups: ['sales'] },
} as const

export type TestIdp = DevIdp & { notices: string[] }

export async function startTestIdp(options: Pick<DevIdpOptions, 'ttl'> = {}): Promise<TestIdp> {
  const notices: string[] = []
  const users = Object.fromEntries(Object.entries(TEST_USERS).map(([login, user]) => [login, { ...user, groups: [...user.groups] }]))
  const idp = await startDevIdp({ users, onNotice: (line) => notices.push(line), ...options })
  return Object.assign(idp, { notices })
}

export interface OidcGateway {
  url: string
  dir: string
  process: Spawned
  stop(): Promise<number | null>
}

/** A gateway process trusting `idp` for people (aud = the CLI's client id), with `connections`. */
export async function startOidcGateway(idp: DevIdp, connections: Record<string, unknown>[], auth: Record<string, unknown> = {}): Promise<OidcGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-oidc-gw-'))
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    auth: { adminGroups: ['platform'], oidc: [{ issuer: idp.issuer, cliClientId: idp.clientId, groupsClaim: 'groups' }], ...auth },
    audit: { store: 'sqlite:./audit.db', required: false },
    log: { level: 'info' },
    connections,
  }
  const configFile = join(dir, 'airlock.yaml')
  writeFileSync(configFile, stringify(config))
  const gateway = spawnAirlock(['gateway', 'serve', '--config', configFile])
  const listening = await gateway.waitFor<{ event?: string; url?: string }>((line) => line.event === 'gateway.listen')
  return { url: listening.url!, dir, process: gateway, stop: () => gateway.stop('SIGTERM') }
}

/** A fresh HOME/XDG config for CLI children: logins of one test never leak into another or into the real home. */
export function freshHome(): { HOME: string; XDG_CONFIG_HOME: string } {
  const home = mkdtempSync(join(tmpdir(), 'airlock-home-'))
  return { HOME: home, XDG_CONFIG_HOME: join(home, '.config') }
}
