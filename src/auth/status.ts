/**
 * What `airlock status` reports, read locally (the registry and the token store; no network, no
 * renewal): which gateway commands will use, with which credential, until when, kept where.
 */
import { AirlockError } from '../errors.js'
import { parseGatewayUrl } from './client-credentials.js'
import { unverifiedClaims } from './jwt-claims.js'
import { gatewayKey, LoginRegistry, parseTokens, storeKey } from './logins.js'
import { airlockConfigDir } from './private-files.js'
import { looksLikeServiceToken } from './service-tokens.js'
import { openTokenStore, type TokenStoreKind } from './token-store.js'

export interface LoginStatus {
  /** The gateway commands use now, or null when none is configured. */
  gateway: string | null
  /** `env`: AIRLOCK_TOKEN; `login`: a stored login; `none`: not logged in. */
  source: 'env' | 'login' | 'none'
  /** The credential is present and not expired, or renewable. */
  loggedIn: boolean
  identity: { subject: string; name: string; issuer: string } | null
  /** Expiry of the bearer token (null for a service token or when unknown). */
  expiresAt: string | null
  /** A stored login can be renewed without the browser. */
  refreshable: boolean
  store: { kind: TokenStoreKind; location: string } | null
  /** A problem reading the stored login (e.g. an unusable keychain), without secrets. */
  problem: string | null
  /** Every stored login; `default` marks the one used without AIRLOCK_GATEWAY. */
  logins: { gateway: string; name: string; issuer: string; store: TokenStoreKind; default: boolean }[]
}

export async function loginStatus(env: NodeJS.ProcessEnv = process.env, now: number = Date.now()): Promise<LoginStatus> {
  const registry = new LoginRegistry(airlockConfigDir(env))
  const file = await registry.read()
  const logins = Object.values(file.logins).map((entry) => ({
    gateway: entry.gateway,
    name: entry.name,
    issuer: entry.issuer,
    store: entry.store,
    default: entry.gateway === file.defaultGateway,
  }))
  const named = env.AIRLOCK_GATEWAY?.trim()
  const gateway = named !== undefined && named !== '' ? gatewayKey(parseGatewayUrl(named)) : (file.defaultGateway ?? null)
  const base: LoginStatus = {
    gateway,
    source: 'none',
    loggedIn: false,
    identity: null,
    expiresAt: null,
    refreshable: false,
    store: null,
    problem: null,
    logins,
  }

  const token = env.AIRLOCK_TOKEN?.trim()
  if (token !== undefined && token !== '') {
    // As every other command: AIRLOCK_TOKEN is never sent to a gateway remembered from a login.
    if (named === undefined || named === '') {
      return {
        ...base,
        gateway: null,
        source: 'env',
        problem: 'AIRLOCK_TOKEN is set but AIRLOCK_GATEWAY is not: commands refuse to send the token to a remembered gateway',
      }
    }
    if (looksLikeServiceToken(token)) return { ...base, source: 'env', loggedIn: true }
    // A workload JWT: what it claims (unverified; the gateway verifies), for display only.
    const claims = unverifiedClaims(token)
    if (claims === undefined) return { ...base, source: 'env', loggedIn: true }
    const expiresAt = typeof claims.exp === 'number' ? claims.exp * 1000 : undefined
    return {
      ...base,
      source: 'env',
      loggedIn: expiresAt === undefined || expiresAt > now,
      identity: typeof claims.sub === 'string' && typeof claims.iss === 'string' ? { subject: claims.sub, name: claims.sub, issuer: claims.iss } : null,
      expiresAt: expiresAt === undefined ? null : new Date(expiresAt).toISOString(),
    }
  }

  const entry = gateway === null ? undefined : file.logins[gateway]
  if (entry === undefined) return base
  const identity = { subject: entry.subject, name: entry.name, issuer: entry.issuer }
  try {
    const store = await openTokenStore(entry.store, registry.configDir)
    const tokens = parseTokens(await store.get(storeKey(entry.gateway, entry.issuer)))
    if (tokens === undefined) return { ...base, identity, store: { kind: store.kind, location: store.location }, problem: 'the stored tokens are gone' }
    const refreshable = tokens.refreshToken !== undefined
    return {
      ...base,
      source: 'login',
      loggedIn: tokens.expiresAt > now || refreshable,
      identity,
      expiresAt: new Date(tokens.expiresAt).toISOString(),
      refreshable,
      store: { kind: store.kind, location: store.location },
    }
  } catch (error) {
    return { ...base, identity, problem: error instanceof AirlockError ? error.message : 'the token store cannot be read' }
  }
}
