/**
 * The CLI as an OAuth 2.0 native public client (openid-client): discovery, the authorization code
 * flow with PKCE S256 through a loopback redirect, the device authorization grant (RFC 8628),
 * refresh and revocation. Every failure becomes an AirlockError; no token, code or verifier is
 * ever part of one.
 */
import * as client from 'openid-client'
import { AirlockError } from '../errors.js'
import { listenForCallback } from './loopback.js'
import { secureUrl } from './oidc-verifier.js'

/** What the token endpoint returned, reduced to what the CLI keeps. */
export interface TokenSet {
  idToken?: string
  accessToken?: string
  refreshToken?: string
  /** Seconds until the access token expires, if the IdP said. */
  expiresIn?: number
  /** The verified ID token's claims, when one was returned. */
  claims?: Record<string, unknown>
}

export interface OidcClientOptions {
  issuer: string
  clientId: string
  scopes: readonly string[]
}

/** Something the user must see or do during a login, printed by the command. */
export type LoginPrompt =
  | { type: 'browser'; url: string; opened: boolean; reason?: string }
  | { type: 'device'; userCode: string; verificationUri: string; verificationUriComplete?: string; expiresIn: number }

export class OidcClient {
  private constructor(
    private readonly config: client.Configuration,
    private readonly options: OidcClientOptions,
  ) {}

  static async discover(options: OidcClientOptions): Promise<OidcClient> {
    if (!secureUrl(options.issuer)) {
      throw new AirlockError('gateway-unreachable', `the gateway advertises an identity provider without https: ${options.issuer}`, {
        hint: 'auth.oidc[].issuer must be https:// (http:// only on this machine)',
      })
    }
    const insecure = new URL(options.issuer).protocol === 'http:'
    let config: client.Configuration
    try {
      config = await client.discovery(new URL(options.issuer), options.clientId, undefined, client.None(), {
        timeout: 15,
        ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
      })
    } catch (error) {
      throw idpUnreachable(options.issuer, error)
    }
    return new OidcClient(config, options)
  }

  get issuer(): string {
    return this.options.issuer
  }

  get supportsDeviceFlow(): boolean {
    return typeof this.config.serverMetadata().device_authorization_endpoint === 'string'
  }

  get supportsRevocation(): boolean {
    return typeof this.config.serverMetadata().revocation_endpoint === 'string'
  }

  /**
   * Authorization code + PKCE (S256) through a loopback redirect. `show` receives the URL to open;
   * it must print it (and may open a browser).
   */
  async browserLogin(show: (url: URL) => Promise<void>, options: { timeoutMs: number }): Promise<TokenSet> {
    // An IdP that lists its PKCE methods must list S256. Some that support S256 list nothing
    // (Microsoft Entra ID, Amazon Cognito): S256 is sent to them all the same.
    const methods = this.config.serverMetadata().code_challenge_methods_supported
    if (Array.isArray(methods) && !methods.includes('S256')) {
      throw new AirlockError('unauthenticated', `the identity provider ${this.issuer} does not support PKCE with S256`, {
        hint: 'a native login without PKCE S256 is not safe; ask the IdP admin to enable it, or use `airlock login --device`',
      })
    }
    const state = client.randomState()
    const nonce = client.randomNonce()
    const verifier = client.randomPKCECodeVerifier()
    const listener = await listenForCallback({ state, timeoutMs: options.timeoutMs })
    try {
      const parameters: Record<string, string> = {
        redirect_uri: listener.redirectUri,
        scope: this.options.scopes.join(' '),
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      }
      // OIDC Core 11: offline access (a refresh token) is asked for with prompt=consent.
      if (this.options.scopes.includes('offline_access')) parameters.prompt = 'consent'
      await show(client.buildAuthorizationUrl(this.config, parameters))
      const callback = await listener.callback
      try {
        const tokens = await client.authorizationCodeGrant(this.config, callback.url, {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
          idTokenExpected: true,
        })
        callback.finish({ ok: true })
        return tokenSet(tokens)
      } catch (error) {
        const failure = loginRefused(this.issuer, error)
        callback.finish({ ok: false, message: failure.message })
        throw failure
      }
    } finally {
      await listener.close()
    }
  }

  /** RFC 8628: shows the user code, then polls at the IdP's interval (slowing down when told) until `expires_in`. */
  async deviceLogin(show: (prompt: Extract<LoginPrompt, { type: 'device' }>) => void, options: { signal?: AbortSignal } = {}): Promise<TokenSet> {
    if (!this.supportsDeviceFlow) {
      throw new AirlockError('usage', `the identity provider ${this.issuer} does not offer device login`, {
        hint: 'use `airlock login` (browser) instead',
      })
    }
    let authorization: client.DeviceAuthorizationResponse
    try {
      authorization = await client.initiateDeviceAuthorization(this.config, { scope: this.options.scopes.join(' ') })
    } catch (error) {
      throw loginRefused(this.issuer, error)
    }
    show({
      type: 'device',
      userCode: authorization.user_code,
      verificationUri: authorization.verification_uri,
      ...(authorization.verification_uri_complete ? { verificationUriComplete: authorization.verification_uri_complete } : {}),
      expiresIn: authorization.expires_in,
    })
    const expiry = AbortSignal.timeout(authorization.expires_in * 1000)
    try {
      return tokenSet(
        await client.pollDeviceAuthorizationGrant(this.config, authorization, undefined, {
          signal: options.signal ? AbortSignal.any([expiry, options.signal]) : expiry,
        }),
      )
    } catch (error) {
      if (expiry.aborted || (error instanceof client.ResponseBodyError && error.error === 'expired_token')) {
        throw new AirlockError('unauthenticated', `the device code expired after ${authorization.expires_in} s before the login was approved`, {
          hint: 'run `airlock login --device` again and enter the new code',
        })
      }
      throw loginRefused(this.issuer, error)
    }
  }

  async refresh(refreshToken: string): Promise<TokenSet> {
    try {
      return tokenSet(await client.refreshTokenGrant(this.config, refreshToken))
    } catch (error) {
      if (error instanceof client.ResponseBodyError) {
        throw new AirlockError('unauthenticated', `the identity provider no longer renews this login (${error.error})`, {
          hint: 'run `airlock login`',
        })
      }
      throw idpUnreachable(this.issuer, error)
    }
  }

  /** Revokes a token at the IdP (RFC 7009); false when the IdP offers no revocation. */
  async revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<boolean> {
    if (!this.supportsRevocation) return false
    try {
      await client.tokenRevocation(this.config, token, { token_type_hint: hint })
      return true
    } catch (error) {
      throw idpUnreachable(this.issuer, error)
    }
  }
}

function tokenSet(response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): TokenSet {
  const claims = response.claims()
  return {
    ...(response.id_token ? { idToken: response.id_token } : {}),
    ...(response.access_token ? { accessToken: response.access_token } : {}),
    ...(response.refresh_token ? { refreshToken: response.refresh_token } : {}),
    ...(typeof response.expires_in === 'number' ? { expiresIn: response.expires_in } : {}),
    ...(claims ? { claims: { ...claims } } : {}),
  }
}

/** The IdP said no (denied, invalid response, wrong nonce...): `unauthenticated`, with its OAuth error code only. */
function loginRefused(issuer: string, error: unknown): AirlockError {
  if (error instanceof AirlockError) return error
  if (error instanceof client.AuthorizationResponseError || error instanceof client.ResponseBodyError) {
    return new AirlockError('unauthenticated', `the identity provider refused the login (${error.error})`, {
      hint: error.error === 'access_denied' ? 'the login was cancelled or denied; run `airlock login` again' : `check the client registration at ${issuer}`,
    })
  }
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && code.startsWith('OAUTH_')) {
    return new AirlockError('unauthenticated', `the identity provider's answer failed validation (${code})`, {
      hint: `run \`airlock login\` again; if it persists, check the client registration at ${issuer}`,
    })
  }
  return idpUnreachable(issuer, error)
}

function idpUnreachable(issuer: string, error: unknown): AirlockError {
  if (error instanceof AirlockError) return error
  const code = (error as { code?: unknown; cause?: { code?: unknown } }).cause?.code ?? (error as { code?: unknown }).code
  return new AirlockError('unauthenticated', `cannot reach the identity provider ${issuer}${typeof code === 'string' ? ` (${code})` : ''}`, {
    hint: 'check the network; the IdP must be reachable from this machine to log in or renew a login',
    cause: error,
  })
}
