import { AirlockError } from '../errors.js'
import type { Identity } from './identity.js'
import { looksLikeJwt, type OidcIssuerOptions, OidcVerifier, type OidcVerifierOptions } from './oidc-verifier.js'
import { looksLikeServiceToken, type ServiceTokenEntry, ServiceTokenVerifier } from './service-tokens.js'

/** Turns the bearer credential of a request into an identity, or throws `unauthenticated`. */
export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Identity>
}

export interface AuthenticatorOptions {
  serviceTokens: readonly ServiceTokenEntry[]
  /** Trusted OIDC issuers (`auth.oidc`): people's ID/access tokens and workload tokens. */
  oidc?: readonly OidcIssuerOptions[]
  now?: () => number
  /** JWKS caching knobs; the defaults suit production. */
  jwks?: Pick<OidcVerifierOptions, 'jwksCooldownMs' | 'jwksMaxAgeMs' | 'fetchTimeoutMs'>
}

/**
 * Service tokens (`alk_...`) are looked up by hash; anything shaped like a JWT goes to the OIDC
 * verifier. Every refusal is `unauthenticated` and never repeats the token.
 */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const serviceTokens = new ServiceTokenVerifier(options.serviceTokens, options.now)
  const oidc = new OidcVerifier({ issuers: options.oidc ?? [], ...(options.now ? { now: options.now } : {}), ...options.jwks })
  return {
    async authenticate(authorization) {
      const token = bearerToken(authorization)
      if (looksLikeServiceToken(token)) return serviceTokens.verify(token)
      if (oidc.size > 0 && looksLikeJwt(token)) return oidc.verify(token)
      throw new AirlockError('unauthenticated', 'the token is not valid for this gateway', {
        hint: 'check AIRLOCK_TOKEN, or run `airlock login`',
      })
    },
  }
}

/** `Bearer <token>` → token; anything else is `unauthenticated` without echoing the header. */
export function bearerToken(authorization: string | undefined): string {
  if (authorization === undefined || authorization === '') {
    throw new AirlockError('unauthenticated', 'no credentials were sent', { hint: 'set AIRLOCK_TOKEN, or run `airlock login`' })
  }
  const match = /^Bearer ([\x21-\x7e]{1,8192})$/i.exec(authorization)
  if (match === null) {
    throw new AirlockError('unauthenticated', 'the Authorization header is not a bearer token', { hint: 'set AIRLOCK_TOKEN, or run `airlock login`' })
  }
  return match[1]!
}
