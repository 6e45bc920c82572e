/**
 * A development OpenID provider (oidc-provider) on 127.0.0.1 for `airlock demo` and the tests: the
 * CLI registered as a native public client (loopback redirect on any port, PKCE, device flow,
 * refresh with rotation, revocation), a few users whose groups travel in the ID token, and
 * oidc-provider's built-in development login and consent pages.
 *
 * The development login pages accept any password: sign in with a user's name. oidc-provider is a
 * development dependency, so import this module dynamically and only where it is installed.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair } from 'jose'

export interface DevIdpUser {
  email: string
  name: string
  groups: string[]
}

export interface DevIdpOptions {
  /** Users by login name. */
  users: Record<string, DevIdpUser>
  clientId?: string
  /** Lifetimes in seconds. */
  ttl?: { idToken?: number; accessToken?: number; refreshToken?: number; deviceCode?: number }
  /** Where oidc-provider's own notices go (it writes them to the console otherwise). */
  onNotice?: (line: string) => void
}

export interface DevIdp {
  issuer: string
  clientId: string
  /** Events seen, e.g. `grant.success:refresh_token`, `grant.error:invalid_grant`, `grant.revoked`. */
  readonly events: readonly string[]
  count(event: string): number
  stop(): Promise<void>
}

interface ProviderInstance {
  callback(): (request: IncomingMessage, response: ServerResponse) => void
  on(event: string, listener: (...args: never[]) => void): void
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance

const DEFAULT_CLIENT_ID = 'airlock-cli'
let noticeSink: ((line: string) => void) | undefined

export async function startDevIdp(options: DevIdpOptions): Promise<DevIdp> {
  routeProviderNotices(options.onNotice ?? (() => {}))
  // A non-literal specifier: the package ships no types, and this keeps it out of production graphs.
  const specifier: string = 'oidc-provider'
  const { default: Provider } = (await import(specifier)) as { default: ProviderConstructor }

  const server: Server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const clientId = options.clientId ?? DEFAULT_CLIENT_ID

  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const signingKey = { ...(await exportJWK(privateKey)), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }
  const ttl = options.ttl ?? {}

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_name: 'Airlock CLI',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    async findAccount(_ctx: unknown, id: string) {
      const user = Object.hasOwn(options.users, id) ? options.users[id] : undefined
      if (user === undefined) return undefined
      return {
        accountId: id,
        claims: async () => ({ sub: id, email: user.email, email_verified: true, name: user.name, preferred_username: id, groups: user.groups }),
      }
    },
    claims: { openid: ['sub', 'groups'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    // Put the user's claims (groups, email) in the ID token: the gateway reads them there.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true }, revocation: { enabled: true } },
    ttl: {
      IdToken: ttl.idToken ?? 3600,
      AccessToken: ttl.accessToken ?? 3600,
      RefreshToken: ttl.refreshToken ?? 24 * 3600,
      DeviceCode: ttl.deviceCode ?? 600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: 24 * 3600,
    },
  })

  const events: string[] = []
  provider.on('grant.success', ((ctx: { oidc?: { params?: { grant_type?: string } } }) => {
    events.push(`grant.success:${shortGrant(ctx.oidc?.params?.grant_type)}`)
  }) as (...args: never[]) => void)
  provider.on('grant.error', ((ctx: { oidc?: { params?: { grant_type?: string } } }, error: { error?: string }) => {
    events.push(`grant.error:${error.error ?? 'unknown'}:${shortGrant(ctx.oidc?.params?.grant_type)}`)
  }) as (...args: never[]) => void)
  provider.on('grant.revoked', (() => events.push('grant.revoked')) as (...args: never[]) => void)
  provider.on('server_error', ((_ctx: unknown, error: Error) => noticeSink?.(`oidc-provider server_error: ${error.message}`)) as (...args: never[]) => void)

  server.on('request', provider.callback())

  return {
    issuer,
    clientId,
    events,
    count: (event) => events.filter((seen) => seen === event).length,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function shortGrant(grantType: string | undefined): string {
  return grantType === 'urn:ietf:params:oauth:grant-type:device_code' ? 'device_code' : (grantType ?? 'unknown')
}

/**
 * oidc-provider prints notices and warnings (an unsupported Node version, development-only
 * defaults) with console.info/console.warn, at import and on first use of each default; the
 * demo's terminal is no place for them. Installed once per process.
 */
function routeProviderNotices(sink: (line: string) => void): void {
  if (noticeSink !== undefined) {
    noticeSink = sink
    return
  }
  noticeSink = sink
  for (const method of ['info', 'warn'] as const) {
    const original = console[method].bind(console)
    console[method] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider ')) noticeSink?.(args.map(String).join(' '))
      else original(...args)
    }
  }
}
