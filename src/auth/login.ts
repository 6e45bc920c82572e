/**
 * `airlock login` and `airlock logout`, without the CLI framework: ask the gateway which identity
 * provider it trusts, run the browser (PKCE, loopback) or device flow against it, check the
 * gateway accepts the result, and store it. Concurrent processes share one login flow: the flow
 * runs under the lock of its gateway + issuer, and a process that waited for another's login
 * re-reads the store and uses that login instead of starting its own.
 */
import { AirlockError } from '../errors.js'
import { parseGatewayUrl } from './client-credentials.js'
import { acquireLock, withLock } from './lock.js'
import { bearerOf, displayName, forgetLogin, gatewayKey, type LoginEntry, LoginRegistry, parseTokens, storedTokens, storeKey, type StoredTokens } from './logins.js'
import type { LoginPrompt, OidcClient, TokenSet } from './oidc-client.js'
import { airlockConfigDir, ensurePrivateDir } from './private-files.js'
import { openTokenStore, selectTokenStore, type TokenStoreKind } from './token-store.js'

/** One interactive issuer as `GET /.well-known/airlock` advertises it. */
export interface AdvertisedIssuer {
  issuer: string
  cliClientId?: string
  scopes: string[]
  audience?: string
}

export interface GatewayAuthInfo {
  version: string
  oidc: AdvertisedIssuer[]
}

/** What the gateway says about the identity a token carries (`GET /v1/whoami`). */
export interface GatewayIdentity {
  name: string
  groups: string[]
  admin: boolean
}

export interface LoginOptions {
  gateway: URL
  env?: NodeJS.ProcessEnv
  flow: 'browser' | 'device'
  /** Try to open a browser (the URL is always shown as well). */
  openBrowser: boolean
  /** Which advertised issuer, when the gateway trusts several. */
  issuer?: string
  /** Asks the gateway who the new token is; it must accept it before it is stored. */
  confirm: (token: string) => Promise<GatewayIdentity>
  onPrompt: (prompt: LoginPrompt) => void
  /** One-line notices for the user (waiting for another process, where tokens are kept). */
  onNotice: (text: string) => void
  browserTimeoutMs?: number
}

export interface LoginResult {
  gateway: string
  issuer: string
  subject: string
  name: string
  email: string | null
  groups: string[]
  admin: boolean
  expiresAt: string
  refreshable: boolean
  store: TokenStoreKind
  storeLocation: string
  /** Another airlock process completed this login while we waited for it. */
  shared: boolean
}

const BROWSER_TIMEOUT_MS = 5 * 60_000
const LOGIN_WAIT_MS = 6 * 60_000

/** The gateway a login command acts on: its argument, else AIRLOCK_GATEWAY, else the default login's. */
export async function targetGateway(argument: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<URL | undefined> {
  if (argument !== undefined && argument.trim() !== '') return parseGatewayUrl(argument, 'GATEWAY_URL')
  const named = env.AIRLOCK_GATEWAY?.trim()
  if (named !== undefined && named !== '') return parseGatewayUrl(named)
  const file = await new LoginRegistry(airlockConfigDir(env)).read()
  return file.defaultGateway === undefined ? undefined : new URL(file.defaultGateway)
}

export async function fetchGatewayAuthInfo(gateway: URL): Promise<GatewayAuthInfo> {
  const base = gatewayKey(gateway)
  const url = new URL('.well-known/airlock', base.endsWith('/') ? base : `${base}/`)
  let response: Response
  try {
    response = await fetch(url, { headers: { accept: 'application/json' }, redirect: 'error', signal: AbortSignal.timeout(15_000) })
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name
    throw new AirlockError('gateway-unreachable', `cannot reach the gateway at ${gateway.origin} (${code})`, {
      hint: /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)
        ? "the gateway's TLS certificate is not trusted here: if it comes from a private CA, set NODE_EXTRA_CA_CERTS=/path/to/ca.pem"
        : 'check the URL and that the gateway is running',
      cause: error,
    })
  }
  let body: Partial<GatewayAuthInfo> | undefined
  try {
    body = (await response.json()) as Partial<GatewayAuthInfo>
  } catch {
    body = undefined
  }
  if (!response.ok || body === undefined || !Array.isArray(body.oidc)) {
    throw new AirlockError('gateway-unreachable', `${gateway.origin} did not answer like an Airlock gateway (HTTP ${response.status})`, {
      hint: 'check the gateway URL',
    })
  }
  const oidc = body.oidc.filter(
    (entry): entry is AdvertisedIssuer => typeof entry === 'object' && entry !== null && typeof entry.issuer === 'string' && Array.isArray(entry.scopes),
  )
  return { version: String(body.version ?? ''), oidc }
}

export async function login(options: LoginOptions): Promise<LoginResult> {
  const env = options.env ?? process.env
  const gateway = gatewayKey(options.gateway)
  const info = await fetchGatewayAuthInfo(options.gateway)
  const advertised = pickIssuer(info, options.gateway, options.issuer)
  const clientId = advertised.cliClientId!
  const oidc = await discover({ issuer: advertised.issuer, clientId, scopes: advertised.scopes })

  const registry = new LoginRegistry(airlockConfigDir(env))
  await ensurePrivateDir(registry.configDir)
  // A login completed by another process after this one started is shared, even if that process
  // finished before this one reached the lock.
  const startedAt = performance.timeOrigin
  const lock = await acquireLock(registry.tokenLockFile(gateway, advertised.issuer), {
    waitMs: LOGIN_WAIT_MS,
    onWait: () => options.onNotice(`Another airlock process is logging in to ${options.gateway.origin}; waiting for it...`),
  })
  if (lock === undefined) {
    throw new AirlockError('unauthenticated', `another airlock process is still logging in to ${options.gateway.origin}`, {
      hint: 'finish or cancel that login first',
    })
  }
  try {
    const shared = await loginCompletedSince(registry, gateway, advertised.issuer, startedAt)
    if (shared !== undefined) {
      const identity = await options.confirm(bearerOf(shared.tokens))
      return result(shared.entry, shared.tokens, identity, shared.location, true)
    }

    const { store, fallbackReason } = await selectTokenStore(registry.configDir, env)
    if (fallbackReason !== undefined) {
      options.onNotice(`No usable OS keychain (${fallbackReason}): tokens are kept in ${store.location} (mode 0600).`)
    }

    let tokenSet: TokenSet
    if (options.flow === 'device') {
      tokenSet = await oidc.deviceLogin((prompt) => options.onPrompt(prompt))
    } else {
      tokenSet = await oidc.browserLogin(
        async (url) => {
          const where = browserAvailability(env)
          let opened = false
          if (options.openBrowser && where.available) opened = await openInBrowser(url)
          options.onPrompt({ type: 'browser', url: url.href, opened, ...(where.available ? {} : { reason: where.reason }) })
        },
        { timeoutMs: options.browserTimeoutMs ?? BROWSER_TIMEOUT_MS },
      )
    }

    const tokens = storedTokens(tokenSet, { audience: advertised.audience, scopes: advertised.scopes })
    const identity = await options.confirm(bearerOf(tokens))

    const previous = await registry.entry(gateway)
    await store.set(storeKey(gateway, advertised.issuer), JSON.stringify(tokens))
    const entry: LoginEntry = {
      gateway,
      issuer: advertised.issuer,
      clientId,
      store: store.kind,
      subject: tokens.claims.sub,
      name: displayName(tokens.claims),
      loggedInAt: new Date().toISOString(),
    }
    await registry.update((file) => {
      file.logins[gateway] = entry
      file.defaultGateway = gateway
    })
    // The same gateway's login under another issuer or in another store is replaced, not kept.
    if (previous !== undefined && (previous.issuer !== entry.issuer || previous.store !== entry.store)) {
      await openTokenStore(previous.store, registry.configDir)
        .then((old) => old.delete(storeKey(previous.gateway, previous.issuer)))
        .catch(() => {})
    }
    return result(entry, tokens, identity, store.location, false)
  } finally {
    await lock.release()
  }
}

export interface LogoutResult {
  gateway: string
  /**
   * `logged-out`: the tokens are deleted here and the login forgotten; `not-logged-in`: there was
   * no login; `store-unreachable`: the token store could not delete the tokens, so the login is
   * kept (they are still there) and the logout must be run again where the store works.
   */
  outcome: 'logged-out' | 'not-logged-in' | 'store-unreachable'
  wasLoggedIn: boolean
  /** `revoked` at the IdP, `unsupported` by the IdP, `failed` (IdP unreachable), or `none` (nothing to revoke, or the tokens could not be read). */
  revocation: 'revoked' | 'unsupported' | 'failed' | 'none'
  /** Why the token store could not delete the tokens (`store-unreachable`), without secrets. */
  problem?: string
}

/**
 * Revokes the login's tokens where the IdP supports it, then deletes them and forgets the login.
 * The login is forgotten only once its tokens are deleted: forgetting it while they stay in an
 * unreachable keychain would leave secrets behind that no command knows about any more.
 */
export async function logout(options: { gateway: URL; env?: NodeJS.ProcessEnv }): Promise<LogoutResult> {
  const env = options.env ?? process.env
  const gateway = gatewayKey(options.gateway)
  const registry = new LoginRegistry(airlockConfigDir(env))
  const entry = await registry.entry(gateway)
  if (entry === undefined) return { gateway, outcome: 'not-logged-in', wasLoggedIn: false, revocation: 'none' }

  // Under the login's lock, so a refresh running elsewhere cannot store a new token after the delete.
  return withLock(registry.tokenLockFile(gateway, entry.issuer), { waitMs: 30_000 }, async () => {
    const key = storeKey(gateway, entry.issuer)
    let store
    try {
      store = await openTokenStore(entry.store, registry.configDir)
    } catch (error) {
      return { gateway, outcome: 'store-unreachable', wasLoggedIn: true, revocation: 'none', problem: storeProblem(error) }
    }
    const tokens = parseTokens(await store.get(key).catch(() => undefined))
    const revocation = tokens === undefined ? 'none' : await revokeAtIdp(entry, tokens)
    try {
      await forgetLogin(registry, store, entry)
    } catch (error) {
      return { gateway, outcome: 'store-unreachable', wasLoggedIn: true, revocation, problem: storeProblem(error) }
    }
    return { gateway, outcome: 'logged-out', wasLoggedIn: true, revocation }
  })
}

async function revokeAtIdp(entry: LoginEntry, tokens: StoredTokens): Promise<LogoutResult['revocation']> {
  const revocable = tokens.refreshToken ?? tokens.accessToken
  if (revocable === undefined) return 'none'
  try {
    const oidc = await discover({ issuer: entry.issuer, clientId: entry.clientId, scopes: tokens.scopes })
    // Revoking the refresh token ends the grant (RFC 7009 §2.1); the access token goes too where it is separate.
    let revoked = await oidc.revoke(revocable, tokens.refreshToken !== undefined ? 'refresh_token' : 'access_token')
    if (revoked && tokens.refreshToken !== undefined && tokens.accessToken !== undefined) {
      revoked = await oidc.revoke(tokens.accessToken, 'access_token')
    }
    return revoked ? 'revoked' : 'unsupported'
  } catch {
    return 'failed'
  }
}

function storeProblem(error: unknown): string {
  return error instanceof AirlockError ? error.message : 'the token store cannot be used'
}

/** openid-client is loaded only by the commands that talk to the IdP. */
async function discover(options: Parameters<typeof OidcClient.discover>[0]): Promise<OidcClient> {
  const { OidcClient } = await import('./oidc-client.js')
  return OidcClient.discover(options)
}

function pickIssuer(info: GatewayAuthInfo, gateway: URL, wanted: string | undefined): AdvertisedIssuer {
  const interactive = info.oidc.filter((entry) => entry.cliClientId !== undefined && entry.cliClientId !== '')
  if (interactive.length === 0) {
    throw new AirlockError('usage', `the gateway at ${gateway.origin} offers no interactive login`, {
      hint: 'use a service token (AIRLOCK_TOKEN), or ask the gateway admin to add an auth.oidc issuer with cliClientId',
    })
  }
  if (wanted === undefined) return interactive[0]!
  const found = interactive.find((entry) => entry.issuer === wanted)
  if (found === undefined) {
    throw new AirlockError('usage', `the gateway at ${gateway.origin} does not trust the issuer ${wanted}`, {
      hint: `choose one of: ${interactive.map((entry) => entry.issuer).join(', ')}`,
    })
  }
  return found
}

async function loginCompletedSince(
  registry: LoginRegistry,
  gateway: string,
  issuer: string,
  since: number,
): Promise<{ entry: LoginEntry; tokens: StoredTokens; location: string } | undefined> {
  const entry = await registry.entry(gateway)
  if (entry === undefined || entry.issuer !== issuer || Date.parse(entry.loggedInAt) < since) return undefined
  const store = await openTokenStore(entry.store, registry.configDir)
  const tokens = parseTokens(await store.get(storeKey(gateway, issuer)))
  return tokens === undefined || tokens.expiresAt <= Date.now() ? undefined : { entry, tokens, location: store.location }
}

function result(entry: LoginEntry, tokens: StoredTokens, identity: GatewayIdentity, location: string, shared: boolean): LoginResult {
  return {
    gateway: entry.gateway,
    issuer: entry.issuer,
    subject: tokens.claims.sub,
    name: identity.name,
    email: tokens.claims.email ?? null,
    groups: identity.groups,
    admin: identity.admin,
    expiresAt: new Date(tokens.expiresAt).toISOString(),
    refreshable: tokens.refreshToken !== undefined,
    store: entry.store,
    storeLocation: location,
    shared,
  }
}

/** Whether a browser can be opened on this machine; when not, why (for the `--device` suggestion). */
export function browserAvailability(env: NodeJS.ProcessEnv = process.env): { available: true } | { available: false; reason: string } {
  if (process.platform === 'darwin' || process.platform === 'win32') {
    return env.SSH_CONNECTION || env.SSH_TTY ? { available: false, reason: 'this is an SSH session' } : { available: true }
  }
  const display = Boolean(env.DISPLAY || env.WAYLAND_DISPLAY)
  if (!display) return { available: false, reason: env.SSH_CONNECTION || env.SSH_TTY ? 'this is an SSH session without a display' : 'there is no display' }
  return { available: true }
}

async function openInBrowser(url: URL): Promise<boolean> {
  try {
    const { default: open } = await import('open')
    const child = await open(url.href, { wait: false })
    child.on('error', () => {})
    return true
  } catch {
    return false
  }
}
