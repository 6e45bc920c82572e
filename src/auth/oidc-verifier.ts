/**
 * Gateway-side verification of OIDC bearer tokens: a JWT signed by a trusted issuer, checked with
 * jose against that issuer's JWKS. Two kinds are accepted, as the Kubernetes API server does:
 * an ID token whose `aud` is the CLI's client id (works with every IdP), or a JWT access token
 * whose `aud` is the configured audience.
 *
 *   token ─▶ shape ─▶ iss (exact) ─▶ alg ∈ allowlist ─▶ kid ─▶ JWKS key ─▶ signature
 *         ─▶ exp / nbf (fixed tolerance) ─▶ aud / azp ─▶ required claims ─▶ Identity(iss#sub, groups)
 *
 * Everything before the key lookup uses only the unverified token and configuration, so junk
 * never makes the gateway fetch anything. The JWKS is cached; a token with an unknown `kid` makes
 * at most one refetch per cooldown (key rotation is honoured, a flood of random kids is not).
 */
import type { JWTPayload } from 'jose'
import { AirlockError } from '../errors.js'
import type { Identity } from './identity.js'

/** One trusted issuer, as configured under `auth.oidc` (the gateway passes its parsed config). */
export interface OidcIssuerOptions {
  issuer: string
  /** `aud` of JWT access tokens. */
  audience?: string | undefined
  /** `aud` of ID tokens obtained by `airlock login`. */
  cliClientId?: string | undefined
  groupsClaim: string
  /** A workload issuer (CI): groups come from `groups`, never from the token. */
  machine: boolean
  /** Claims that must have exactly these values. */
  require?: Readonly<Record<string, string | number | boolean>> | undefined
  /** Groups every identity of this issuer gets (a workload issuer's only groups). */
  groups: readonly string[]
  algorithms: readonly string[]
}

/** Why a token was refused; stable, for tests and log searches. */
export type TokenRejection =
  | 'malformed'
  | 'issuer'
  | 'algorithm'
  | 'unknown-key'
  | 'signature'
  | 'expired'
  | 'not-yet-valid'
  | 'claims'
  | 'audience'
  | 'authorized-party'
  | 'constraint'

/** A refused bearer token: `unauthenticated` with a reason that never quotes the token. */
export class TokenRejected extends AirlockError {
  constructor(
    readonly reason: TokenRejection,
    detail: string,
  ) {
    super('unauthenticated', `the token is not valid for this gateway: ${detail}`, {
      hint: 'run `airlock login` again, or check AIRLOCK_TOKEN',
    })
  }
}

export interface OidcVerifierOptions {
  issuers: readonly OidcIssuerOptions[]
  now?: () => number
  /** Minimum time between two JWKS fetches triggered by an unknown `kid`. */
  jwksCooldownMs?: number
  /** How long fetched keys are used before they are fetched again. */
  jwksMaxAgeMs?: number
  /** Timeout of each discovery and JWKS request. */
  fetchTimeoutMs?: number
}

/** `exp` and `nbf` are accepted this far past/before the gateway's clock; fixed, not configurable. */
export const CLOCK_TOLERANCE_S = 30
/** After a failed discovery, the issuer is not asked again for this long. */
const DISCOVERY_RETRY_MS = 5_000
const JWT_SHAPE = /^[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{2,65536}\.[A-Za-z0-9_-]{0,4096}$/
const KID = /^[\x21-\x7e]{1,256}$/
const MAX_GROUPS = 1000

type Jose = typeof import('jose')
let jose: Promise<Jose> | undefined
/** jose is loaded on first use: CLI commands share this module's package but never verify. */
function loadJose(): Promise<Jose> {
  jose ??= import('jose')
  return jose
}

export function looksLikeJwt(token: string): boolean {
  return JWT_SHAPE.test(token)
}

/** Verifies OIDC JWTs against the configured issuers. */
export class OidcVerifier {
  private readonly issuers: Map<string, TrustedIssuer>
  private readonly now: () => number

  constructor(options: OidcVerifierOptions) {
    // Fail closed even when the configuration schema was bypassed: a workload token without an
    // audience check would be accepted whatever service it was minted for.
    const unbound = options.issuers.find((issuer) => issuer.machine && issuer.audience === undefined)
    if (unbound !== undefined) {
      throw new AirlockError('config', `auth.oidc: the workload issuer ${unbound.issuer} needs an audience`, { hint: 'set audience to the aud your CI jobs request' })
    }
    this.now = options.now ?? Date.now
    this.issuers = new Map(options.issuers.map((issuer) => [issuer.issuer, new TrustedIssuer(issuer, options)]))
    if (this.issuers.size > 0) void loadJose()
  }

  get size(): number {
    return this.issuers.size
  }

  async verify(token: string): Promise<Identity> {
    if (!JWT_SHAPE.test(token)) throw new TokenRejected('malformed', 'not a well-formed JWT')
    const { decodeJwt, decodeProtectedHeader, jwtVerify, errors } = await loadJose()
    let header: ReturnType<typeof decodeProtectedHeader>
    let unverified: JWTPayload
    try {
      header = decodeProtectedHeader(token)
      unverified = decodeJwt(token)
    } catch {
      throw new TokenRejected('malformed', 'not a well-formed JWT')
    }
    // Exact string match: a prefix, a trailing slash or another scheme is another issuer.
    const trusted = typeof unverified.iss === 'string' ? this.issuers.get(unverified.iss) : undefined
    if (trusted === undefined) throw new TokenRejected('issuer', 'its issuer is not trusted by this gateway')
    const { config } = trusted
    // The allowlist decides, never the header alone: `none` and HMAC algorithms are never listed.
    if (typeof header.alg !== 'string' || !config.algorithms.includes(header.alg)) {
      throw new TokenRejected('algorithm', `its signing algorithm is not accepted for ${config.issuer}`)
    }
    if (header.kid !== undefined && (typeof header.kid !== 'string' || !KID.test(header.kid))) {
      throw new TokenRejected('malformed', 'its key id is malformed')
    }

    const keys = await trusted.keys(this.now())
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, keys, {
        issuer: config.issuer,
        algorithms: [...config.algorithms],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'sub'],
      }))
    } catch (error) {
      throw rejection(error, config.issuer, errors)
    }

    if (typeof payload.sub !== 'string' || payload.sub === '' || typeof payload.exp !== 'number') {
      throw new TokenRejected('claims', 'claim sub or exp is missing or invalid')
    }
    checkAudience(payload, config)
    for (const [claim, expected] of Object.entries(config.require ?? {})) {
      const actual = payload[claim]
      const comparable = typeof actual === 'string' || typeof actual === 'number' || typeof actual === 'boolean'
      if (!comparable || String(actual) !== String(expected)) {
        throw new TokenRejected('constraint', `claim ${claim} does not have the value this gateway requires`)
      }
    }

    const subject = payload.sub
    const groups = config.machine ? [...config.groups] : unique([...groupsFrom(payload, config.groupsClaim), ...config.groups])
    return {
      kind: config.machine ? 'workload' : 'oidc',
      id: `${config.issuer}#${subject}`,
      display: displayName(payload, config.machine),
      groups,
      expiresAt: payload.exp * 1000,
    }
  }
}

/** One configured issuer: its discovery document and JWKS, fetched lazily and cached. */
class TrustedIssuer {
  private jwks: ReturnType<Jose['createRemoteJWKSet']> | undefined
  private pending: Promise<ReturnType<Jose['createRemoteJWKSet']>> | undefined
  private failedAt = Number.NEGATIVE_INFINITY

  constructor(
    readonly config: OidcIssuerOptions,
    private readonly options: OidcVerifierOptions,
  ) {}

  async keys(now: number): Promise<ReturnType<Jose['createRemoteJWKSet']>> {
    if (this.jwks !== undefined) return this.jwks
    if (this.pending === undefined) {
      if (now - this.failedAt < DISCOVERY_RETRY_MS) throw this.unavailable()
      this.pending = this.discover().then(
        (jwks) => {
          this.jwks = jwks
          return jwks
        },
        (error: unknown) => {
          this.failedAt = now
          this.pending = undefined
          throw error instanceof AirlockError ? error : this.unavailable(error)
        },
      )
    }
    return this.pending
  }

  private async discover(): Promise<ReturnType<Jose['createRemoteJWKSet']>> {
    const { issuer } = this.config
    const url = new URL(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)
    const response = await fetch(url, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5_000),
    })
    if (!response.ok) throw this.unavailable(new Error(`discovery answered HTTP ${response.status}`))
    const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown }
    if (metadata.issuer !== issuer) {
      throw new AirlockError('upstream-unavailable', `the discovery document of ${issuer} names another issuer`, {
        hint: 'auth.oidc[].issuer must be exactly the issuer the IdP publishes (mind a trailing slash)',
      })
    }
    if (typeof metadata.jwks_uri !== 'string' || !secureUrl(metadata.jwks_uri)) {
      throw new AirlockError('upstream-unavailable', `the discovery document of ${issuer} has no usable jwks_uri`)
    }
    const { createRemoteJWKSet } = await loadJose()
    return createRemoteJWKSet(new URL(metadata.jwks_uri), {
      cooldownDuration: this.options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: this.options.jwksMaxAgeMs ?? 10 * 60_000,
      timeoutDuration: this.options.fetchTimeoutMs ?? 5_000,
    })
  }

  unavailable(cause?: unknown): AirlockError {
    return new AirlockError('upstream-unavailable', `the gateway cannot fetch the signing keys of ${this.config.issuer}`, {
      hint: 'retry in a moment; if it persists, tell a gateway admin',
      ...(cause === undefined ? {} : { cause }),
    })
  }
}

function checkAudience(payload: JWTPayload, config: OidcIssuerOptions): void {
  const audiences = typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud : []
  if (config.cliClientId !== undefined && audiences.includes(config.cliClientId)) {
    // An ID token: when it names an authorized party, that must be the CLI (OIDC Core 3.1.3.7).
    if (payload.azp !== undefined && payload.azp !== config.cliClientId) {
      throw new TokenRejected('authorized-party', 'it was issued to another client')
    }
    return
  }
  if (config.audience !== undefined && audiences.includes(config.audience)) return
  throw new TokenRejected('audience', 'it was issued for another audience')
}

function rejection(error: unknown, issuer: string, errors: Jose['errors']): AirlockError {
  if (error instanceof AirlockError) return error
  if (error instanceof errors.JWTExpired) return new TokenRejected('expired', 'it has expired')
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return new TokenRejected('not-yet-valid', 'it is not valid yet')
    if (error.claim === 'iss') return new TokenRejected('issuer', 'its issuer is not trusted by this gateway')
    return new TokenRejected('claims', `claim ${error.claim} is missing or invalid`)
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new TokenRejected('algorithm', `its signing algorithm is not accepted for ${issuer}`)
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return new TokenRejected('unknown-key', `it is signed with a key ${issuer} does not publish`)
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new TokenRejected('signature', 'its signature does not verify')
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return new TokenRejected('malformed', 'not a well-formed JWT')
  }
  return new AirlockError('upstream-unavailable', `the gateway cannot fetch the signing keys of ${issuer}`, {
    hint: 'retry in a moment; if it persists, tell a gateway admin',
    cause: error,
  })
}

/** Groups from a claim: a list of strings or one string; `a.b` walks into nested objects (Keycloak's `realm_access.roles`). */
function groupsFrom(payload: JWTPayload, claim: string): string[] {
  let value: unknown = payload[claim]
  if (value === undefined && claim.includes('.')) {
    value = claim.split('.').reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined), payload)
  }
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : []
  return list.filter((group): group is string => typeof group === 'string' && group.length > 0 && group.length <= 256).slice(0, MAX_GROUPS)
}

function displayName(payload: JWTPayload, machine: boolean): string {
  const sub = payload.sub as string
  if (machine) return sub
  for (const claim of ['email', 'preferred_username', 'name']) {
    const value = payload[claim]
    if (typeof value === 'string' && value !== '') return value
  }
  return sub
}

function unique(values: string[]): string[] {
  return [...new Set(values)]
}

/** https, or http to this machine only (a development IdP). */
export function secureUrl(value: string): boolean {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  if (url.protocol === 'https:') return true
  return url.protocol === 'http:' && /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/i.test(url.hostname)
}
