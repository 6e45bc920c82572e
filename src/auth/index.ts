export { type Authenticator, type AuthenticatorOptions, bearerToken, createAuthenticator } from './authenticator.js'
export { hasAnyGroup, type Identity } from './identity.js'
export {
  generateServiceToken,
  hashServiceToken,
  looksLikeServiceToken,
  SERVICE_TOKEN_PREFIX,
  type ServiceTokenEntry,
  ServiceTokenVerifier,
} from './service-tokens.js'
export { CLOCK_TOLERANCE_S, type OidcIssuerOptions, OidcVerifier, type TokenRejection, TokenRejected } from './oidc-verifier.js'
export {
  type ClientCredentials,
  type CredentialSource,
  parseGatewayUrl,
  resolveClientCredentials,
  resolveCredentialSource,
  staticCredentials,
} from './client-credentials.js'
export {
  type AdvertisedIssuer,
  browserAvailability,
  fetchGatewayAuthInfo,
  type GatewayAuthInfo,
  type GatewayIdentity,
  login,
  type LoginOptions,
  type LoginResult,
  logout,
  type LogoutResult,
  targetGateway,
} from './login.js'
export { gatewayKey } from './logins.js'
export type { LoginPrompt } from './oidc-client.js'
export { loginStatus, type LoginStatus } from './status.js'
export { type TokenStore, type TokenStoreKind } from './token-store.js'
