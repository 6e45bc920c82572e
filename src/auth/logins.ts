/**
 * Logins as the CLI keeps them. Two places:
 *
 * - `logins.json` (0600, in the config dir): which gateways the user logged in to, the default
 *   one, each login's issuer, identity and token store. Nothing secret; `status` reads only this.
 * - the token store (keychain or private files): the tokens of each login, keyed by gateway URL
 *   and issuer, so that logins to several gateways never overwrite each other.
 *
 * A login's bearer is its ID token (audience: the CLI's client id) unless the gateway advertises
 * an audience and the access token is a JWT for it. It is renewed with the refresh token before it
 * expires, under a lock shared by every `airlock` process: the store is re-read after taking the
 * lock, so one process refreshes and the others use the result.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { AirlockError } from '../errors.js'
import { acquireLock, withLock } from './lock.js'
import { unverifiedClaims } from './jwt-claims.js'
import type { TokenSet } from './oidc-client.js'
import { ensurePrivateDir, readPrivateFile, writePrivateFile } from './private-files.js'
import { openTokenStore, type TokenStore, type TokenStoreKind } from './token-store.js'

/** Non-secret facts about one login, in `logins.json`. */
export interface LoginEntry {
  gateway: string
  issuer: string
  clientId: string
  store: TokenStoreKind
  subject: string
  /** Email, preferred name or subject, for display. */
  name: string
  loggedInAt: string
}

interface LoginsFile {
  version: 1
  defaultGateway?: string
  logins: Record<string, LoginEntry>
}

/** Identity claims kept from the last ID token (a refresh may not return a new one). */
export interface IdentityClaims {
  sub: string
  email?: string
  name?: string
  preferred_username?: string
  groups?: string[]
}

/** What the token store holds for one login. */
export interface StoredTokens {
  version: 1
  idToken?: string
  accessToken?: string
  refreshToken?: string
  bearer: 'id_token' | 'access_token'
  /** Lifetime of the bearer (ms since epoch). */
  issuedAt: number
  expiresAt: number
  claims: IdentityClaims
  /** The audience the gateway advertised for JWT access tokens, if any. */
  audience?: string
  scopes: string[]
}

/** Renew this long before expiry at most (or halfway through a shorter lifetime). */
const REFRESH_MARGIN_MS = 60_000
/** How long a process waits for another one's login or refresh when its own token has expired. */
const WAIT_FOR_OTHER_MS = 6 * 60_000

/** The normalised gateway URL logins are keyed by (no query, no fragment). */
export function gatewayKey(gateway: URL): string {
  const url = new URL(gateway.href)
  url.search = ''
  url.hash = ''
  return url.href
}

export function storeKey(gateway: string, issuer: string): string {
  return `${gateway} ${issuer}`
}

/** The registry of logins (`logins.json`) in one config directory. */
export class LoginRegistry {
  readonly file: string

  constructor(readonly configDir: string) {
    this.file = join(configDir, 'logins.json')
  }

  async read(): Promise<LoginsFile> {
    const text = await readPrivateFile(this.file)
    if (text === undefined) return { version: 1, logins: {} }
    try {
      const parsed = JSON.parse(text) as Partial<LoginsFile>
      return { version: 1, logins: parsed.logins ?? {}, ...(typeof parsed.defaultGateway === 'string' ? { defaultGateway: parsed.defaultGateway } : {}) }
    } catch {
      return { version: 1, logins: {} }
    }
  }

  async entry(gateway: string): Promise<LoginEntry | undefined> {
    return (await this.read()).logins[gateway]
  }

  /** Read-modify-write under a lock, so concurrent logins to different gateways both stay. */
  async update(change: (file: LoginsFile) => void): Promise<LoginsFile> {
    await ensurePrivateDir(this.configDir)
    return withLock(this.lockFile('logins'), { waitMs: 10_000 }, async () => {
      const file = await this.read()
      change(file)
      await writePrivateFile(this.file, `${JSON.stringify(file, null, 2)}\n`)
      return file
    })
  }

  lockFile(name: string): string {
    return join(this.configDir, `.${name}.lock`)
  }

  /** The lock serialising login and refresh of one gateway + issuer. */
  tokenLockFile(gateway: string, issuer: string): string {
    return this.lockFile(`tokens-${createHash('sha256').update(storeKey(gateway, issuer)).digest('hex').slice(0, 32)}`)
  }
}

/**
 * Builds what is stored from a token response: the bearer and its lifetime, the identity claims.
 * `previous` supplies what a refresh response may leave out (ID token claims, refresh token).
 */
export function storedTokens(
  tokens: TokenSet,
  context: { audience?: string | undefined; scopes: readonly string[] },
  previous?: StoredTokens,
): StoredTokens {
  const claims = identityClaims(tokens.claims) ?? previous?.claims
  if (claims === undefined) {
    throw new AirlockError('unauthenticated', 'the identity provider returned no ID token', {
      hint: 'the login needs the openid scope; check auth.oidc[].scopes on the gateway',
    })
  }
  if (previous !== undefined && claims.sub !== previous.claims.sub) {
    throw new AirlockError('unauthenticated', 'the identity provider renewed the login for another user', { hint: 'run `airlock login`' })
  }
  // Only what is needed is kept: the bearer and the refresh token (fewer secrets at rest, and
  // Windows Credential Manager holds only a few KiB per entry).
  const refreshToken = tokens.refreshToken ?? previous?.refreshToken
  const base = {
    version: 1 as const,
    ...(refreshToken === undefined ? {} : { refreshToken }),
    claims,
    ...(context.audience !== undefined ? { audience: context.audience } : {}),
    scopes: [...context.scopes],
  }
  const access = tokens.accessToken === undefined ? undefined : accessTokenTimes(tokens.accessToken, context.audience)
  if (access !== undefined) return { ...base, accessToken: tokens.accessToken, bearer: 'access_token', ...access }
  const id = tokens.idToken === undefined ? undefined : idTokenTimes(tokens.idToken)
  if (id !== undefined) return { ...base, idToken: tokens.idToken, bearer: 'id_token', ...id }
  throw new AirlockError('unauthenticated', 'the identity provider renewed the login without an ID token, and this gateway takes no access tokens from it', {
    hint: 'run `airlock login`',
  })
}

/** An access token is the bearer only when it is a JWT whose `aud` is the audience the gateway advertises. */
function accessTokenTimes(token: string, audience: string | undefined): { issuedAt: number; expiresAt: number } | undefined {
  if (audience === undefined) return undefined
  const payload = unverifiedClaims(token)
  const audiences = typeof payload?.aud === 'string' ? [payload.aud] : Array.isArray(payload?.aud) ? payload.aud : []
  return payload !== undefined && audiences.includes(audience) ? lifetime(payload) : undefined
}

function idTokenTimes(token: string): { issuedAt: number; expiresAt: number } | undefined {
  const payload = unverifiedClaims(token)
  return payload === undefined ? undefined : lifetime(payload)
}

function lifetime(payload: Record<string, unknown>): { issuedAt: number; expiresAt: number } | undefined {
  if (typeof payload.exp !== 'number') return undefined
  const expiresAt = payload.exp * 1000
  return { expiresAt, issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : expiresAt - 5 * 60_000 }
}

function identityClaims(claims: Record<string, unknown> | undefined): IdentityClaims | undefined {
  if (claims === undefined || typeof claims.sub !== 'string') return undefined
  const text = (name: string): Record<string, string> => (typeof claims[name] === 'string' ? { [name]: claims[name] as string } : {})
  const groups = Array.isArray(claims.groups) ? claims.groups.filter((group): group is string => typeof group === 'string') : undefined
  return { sub: claims.sub, ...text('email'), ...text('name'), ...text('preferred_username'), ...(groups ? { groups } : {}) }
}

export function displayName(claims: IdentityClaims): string {
  return claims.email ?? claims.preferred_username ?? claims.name ?? claims.sub
}

export function bearerOf(tokens: StoredTokens): string {
  const token = tokens.bearer === 'access_token' ? tokens.accessToken : tokens.idToken
  if (token === undefined) throw new AirlockError('unauthenticated', 'the stored login has no usable token', { hint: 'run `airlock login`' })
  return token
}

/** When to renew: a minute before expiry, or halfway through a lifetime shorter than two minutes. */
export function refreshDueAt(tokens: Pick<StoredTokens, 'issuedAt' | 'expiresAt'>): number {
  return tokens.expiresAt - Math.min(REFRESH_MARGIN_MS, Math.max(0, tokens.expiresAt - tokens.issuedAt) / 2)
}

export interface LoginSessionOptions {
  now?: () => number
  /** Told when this process waits for another one's login or renewal. */
  onNotice?: (text: string) => void
}

/**
 * A login in use by this process: the current bearer, renewed on demand or in the background.
 * Renewal re-reads the store under the shared lock, so concurrent processes refresh once.
 */
export class LoginSession {
  private refreshing: Promise<string> | undefined
  private timer: NodeJS.Timeout | undefined

  private constructor(
    readonly entry: LoginEntry,
    private tokens: StoredTokens,
    private readonly store: TokenStore,
    private readonly registry: LoginRegistry,
    private readonly options: LoginSessionOptions,
  ) {}

  /** The stored login for `entry`; `unauthenticated` when its tokens are gone. */
  static async open(entry: LoginEntry, registry: LoginRegistry, options: LoginSessionOptions = {}): Promise<LoginSession> {
    const store = await openTokenStore(entry.store, registry.configDir)
    const tokens = parseTokens(await store.get(storeKey(entry.gateway, entry.issuer)))
    if (tokens === undefined) {
      throw new AirlockError('unauthenticated', `not logged in to ${entry.gateway}: the stored tokens are gone`, { hint: 'run `airlock login`' })
    }
    return new LoginSession(entry, tokens, store, registry, options)
  }

  private now(): number {
    return (this.options.now ?? Date.now)()
  }

  get token(): string {
    return bearerOf(this.tokens)
  }

  get current(): Readonly<StoredTokens> {
    return this.tokens
  }

  /** A bearer that is not about to expire: the current one, or a renewed one. */
  async fresh(): Promise<string> {
    if (this.now() < refreshDueAt(this.tokens)) return this.token
    this.refreshing ??= this.renew().finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  /**
   * Keeps the bearer fresh for a long-running process (`connect`): renews shortly before it is
   * due, again and again. The timer never keeps the process alive.
   */
  keepFresh(): void {
    clearTimeout(this.timer)
    const delay = Math.max(1_000, refreshDueAt(this.tokens) - this.now())
    this.timer = setTimeout(() => {
      this.fresh().then(
        () => this.keepFresh(),
        () => {
          // Not renewable now (IdP down, login revoked): try again later; new tunnels are refused
          // by the gateway with "run `airlock login`" once the token has expired.
          this.timer = setTimeout(() => this.keepFresh(), 30_000)
          this.timer.unref()
        },
      )
    }, delay)
    this.timer.unref()
  }

  private async renew(): Promise<string> {
    const expired = this.now() >= this.tokens.expiresAt
    const { gateway, issuer } = this.entry
    const lock = await acquireLock(this.registry.tokenLockFile(gateway, issuer), {
      waitMs: expired ? WAIT_FOR_OTHER_MS : 0,
      onWait: () => this.options.onNotice?.(`Your login to ${gateway} has expired; waiting for another airlock process that is renewing it or logging in...`),
    })
    if (lock === undefined) {
      // Another process is renewing (or logging in); our token is still valid meanwhile.
      if (!expired) return this.token
      throw new AirlockError('unauthenticated', `your login to ${gateway} expired while another airlock process was renewing it`, {
        hint: 'run `airlock login`',
      })
    }
    try {
      const latest = parseTokens(await this.store.get(storeKey(gateway, issuer)))
      if (latest === undefined) throw new AirlockError('unauthenticated', `not logged in to ${gateway} (logged out meanwhile)`, { hint: 'run `airlock login`' })
      if (this.now() < refreshDueAt(latest)) {
        this.tokens = latest
        return this.token
      }
      if (latest.refreshToken === undefined) {
        if (this.now() < latest.expiresAt) return bearerOf(latest)
        throw new AirlockError('unauthenticated', `your login to ${gateway} expired`, { hint: 'run `airlock login`' })
      }
      const key = storeKey(gateway, issuer)
      let response: TokenSet
      try {
        const { OidcClient } = await import('./oidc-client.js')
        const oidc = await OidcClient.discover({ issuer, clientId: this.entry.clientId, scopes: latest.scopes })
        response = await oidc.refresh(latest.refreshToken)
      } catch (error) {
        // Still valid: keep using it and try again next time.
        if (this.now() < latest.expiresAt) {
          this.tokens = latest
          return this.token
        }
        throw error
      }
      // A rotated refresh token spends the old one: sending the old one again would make an IdP with
      // reuse detection revoke the whole login. So the new one is kept before anything else can fail,
      // and if it cannot be kept the login is forgotten rather than left holding the spent one.
      const rotated = response.refreshToken !== undefined && response.refreshToken !== latest.refreshToken
      const current = rotated ? { ...latest, refreshToken: response.refreshToken! } : latest
      if (rotated) {
        try {
          await this.store.set(key, JSON.stringify(current))
        } catch (error) {
          // The store may not delete either: the login is forgotten all the same, so no command
          // sends the spent refresh token again.
          await this.store.delete(key).catch(() => false)
          await this.registry.update((file) => removeLogin(file, this.entry)).catch(() => {})
          throw new AirlockError('unauthenticated', `the renewed login to ${gateway} could not be stored, so it was removed`, {
            hint: 'run `airlock login`',
            cause: error,
          })
        }
      }
      let renewed: StoredTokens
      try {
        renewed = storedTokens(response, { audience: latest.audience, scopes: latest.scopes }, latest)
      } catch (error) {
        // No usable bearer in the response: the current one serves until it expires.
        if (this.now() < current.expiresAt) {
          this.tokens = current
          return this.token
        }
        throw error
      }
      await this.store.set(key, JSON.stringify(renewed))
      this.tokens = renewed
      return this.token
    } finally {
      await lock.release()
    }
  }
}

/**
 * Deletes a login's tokens and forgets it; the default gateway moves to another login if any.
 * Throws when the store cannot delete the tokens, and then the login is kept.
 */
export async function forgetLogin(registry: LoginRegistry, store: TokenStore, entry: Pick<LoginEntry, 'gateway' | 'issuer'>): Promise<void> {
  await store.delete(storeKey(entry.gateway, entry.issuer))
  await registry.update((file) => removeLogin(file, entry))
}

function removeLogin(file: LoginsFile, entry: Pick<LoginEntry, 'gateway' | 'issuer'>): void {
  if (file.logins[entry.gateway]?.issuer !== entry.issuer) return
  delete file.logins[entry.gateway]
  if (file.defaultGateway === entry.gateway) {
    const remaining = Object.keys(file.logins)
    if (remaining.length > 0) file.defaultGateway = remaining[0]!
    else delete file.defaultGateway
  }
}

export function parseTokens(text: string | undefined): StoredTokens | undefined {
  if (text === undefined) return undefined
  try {
    const parsed = JSON.parse(text) as Partial<StoredTokens>
    if (parsed.version !== 1 || typeof parsed.expiresAt !== 'number' || typeof parsed.claims?.sub !== 'string') return undefined
    return parsed as StoredTokens
  } catch {
    return undefined
  }
}
