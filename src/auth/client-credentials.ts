import { AirlockError } from '../errors.js'

export interface ClientCredentials {
  gateway: URL
  token: string
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/i

/**
 * The gateway and bearer token the CLI uses: `AIRLOCK_GATEWAY` and `AIRLOCK_TOKEN` (a service token
 * or a workload OIDC token). Plain `http://` is refused except on loopback, so a token never
 * crosses a network in the clear.
 */
export function resolveClientCredentials(env: NodeJS.ProcessEnv = process.env): ClientCredentials {
  const gateway = parseGatewayUrl(env.AIRLOCK_GATEWAY)
  const token = env.AIRLOCK_TOKEN?.trim()
  if (token === undefined || token === '') {
    throw new AirlockError('unauthenticated', 'not logged in: AIRLOCK_TOKEN is not set', {
      hint: 'set AIRLOCK_TOKEN to a service token or a workload OIDC token',
    })
  }
  return { gateway, token }
}

export function parseGatewayUrl(value: string | undefined): URL {
  if (value === undefined || value.trim() === '') {
    throw new AirlockError('usage', 'no gateway configured: AIRLOCK_GATEWAY is not set', {
      hint: 'export AIRLOCK_GATEWAY=https://airlock.example.com',
    })
  }
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    throw new AirlockError('usage', 'AIRLOCK_GATEWAY is not a URL', {
      hint: 'use a URL such as https://airlock.example.com',
    })
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AirlockError('usage', `AIRLOCK_GATEWAY must be an https:// URL, not ${url.protocol}`, { hint: 'use https://...' })
  }
  if (url.username !== '' || url.password !== '') {
    throw new AirlockError('usage', 'AIRLOCK_GATEWAY must not contain credentials', { hint: 'put the token in AIRLOCK_TOKEN' })
  }
  if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname)) {
    throw new AirlockError('usage', `refusing plain http:// to ${url.hostname}: the token would cross the network unencrypted`, {
      hint: 'use https://, or http:// only for a gateway on this machine (127.0.0.1)',
    })
  }
  return url
}
