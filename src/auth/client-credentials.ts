import { AirlockError } from '../errors.js'
import { gatewayKey, LoginRegistry, LoginSession } from './logins.js'
import { airlockConfigDir } from './private-files.js'

export interface ClientCredentials {
  gateway: URL
  /**
   * The bearer token to send now: for a stored login, one that is not about to expire, renewed
   * first if needed (waiting for a renewal already running). Call it for every request and every
   * tunnel; never keep the result.
   */
  bearer(): Promise<string>
}

/** Credentials of a fixed token (AIRLOCK_TOKEN, the demo's service token). */
export function staticCredentials(gateway: URL, token: string): ClientCredentials {
  return { gateway, bearer: () => Promise.resolve(token) }
}

/** Where the credentials came from: the environment (CI, agents) or a stored `airlock login`. */
export type CredentialSource = { kind: 'env' } | { kind: 'login'; session: LoginSession }

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/i

/**
 * The gateway and bearer token the CLI uses. `AIRLOCK_TOKEN` (a service token or a workload OIDC
 * token) wins and needs `AIRLOCK_GATEWAY`: a CI token is never sent to a gateway remembered from
 * an interactive login. Otherwise the stored login for `AIRLOCK_GATEWAY`, or for the gateway last
 * logged in to, renewed if it is about to expire. Plain `http://` is refused except on loopback,
 * so a token never crosses a network in the clear.
 */
export async function resolveClientCredentials(env: NodeJS.ProcessEnv = process.env): Promise<ClientCredentials> {
  return (await resolveCredentialSource(env)).credentials
}

export async function resolveCredentialSource(env: NodeJS.ProcessEnv = process.env): Promise<{ credentials: ClientCredentials; source: CredentialSource }> {
  const token = env.AIRLOCK_TOKEN?.trim()
  if (token !== undefined && token !== '') {
    return { credentials: staticCredentials(parseGatewayUrl(env.AIRLOCK_GATEWAY), token), source: { kind: 'env' } }
  }
  const registry = new LoginRegistry(airlockConfigDir(env))
  const logins = await registry.read()
  const named = env.AIRLOCK_GATEWAY?.trim()
  if ((named === undefined || named === '') && logins.defaultGateway === undefined) {
    throw new AirlockError('unauthenticated', 'not logged in: no stored login, and AIRLOCK_TOKEN is not set', {
      hint: 'run `airlock login https://airlock.example.com`, or set AIRLOCK_GATEWAY and AIRLOCK_TOKEN (a service token or a workload OIDC token)',
    })
  }
  const gateway = parseGatewayUrl(named !== undefined && named !== '' ? named : logins.defaultGateway)
  const entry = logins.logins[gatewayKey(gateway)]
  if (entry === undefined) {
    throw new AirlockError('unauthenticated', `not logged in to ${gateway.origin}, and AIRLOCK_TOKEN is not set`, {
      hint: `run \`airlock login ${gateway.origin}\`, or set AIRLOCK_TOKEN to a service token or a workload OIDC token`,
    })
  }
  const session = await LoginSession.open(entry, registry, { onNotice: (text) => process.stderr.write(`airlock: ${text}\n`) })
  await session.fresh()
  session.keepFresh()
  // The background renewal can run late (a laptop that slept): each caller waits for a fresh token.
  const credentials: ClientCredentials = { gateway, bearer: () => session.fresh() }
  return { credentials, source: { kind: 'login', session } }
}

/** A gateway URL from `name` (AIRLOCK_GATEWAY, or a command argument): https, or http on loopback only. */
export function parseGatewayUrl(value: string | undefined, name = 'AIRLOCK_GATEWAY'): URL {
  if (value === undefined || value.trim() === '') {
    throw new AirlockError('usage', `no gateway configured: ${name} is not set`, {
      hint: 'export AIRLOCK_GATEWAY=https://airlock.example.com',
    })
  }
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    throw new AirlockError('usage', `${name} is not a URL`, {
      hint: 'use a URL such as https://airlock.example.com',
    })
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AirlockError('usage', `${name} must be an https:// URL, not ${url.protocol}`, { hint: 'use https://...' })
  }
  if (url.username !== '' || url.password !== '') {
    throw new AirlockError('usage', `${name} must not contain credentials`, { hint: 'put the token in AIRLOCK_TOKEN' })
  }
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname)) {
    throw new AirlockError('usage', `refusing plain http:// to ${url.hostname}: the token would cross the network unencrypted`, {
      hint: 'use https://, or http:// only for a gateway on this machine (127.0.0.1)',
    })
  }
  return url
}
