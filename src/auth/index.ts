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
export { type ClientCredentials, resolveClientCredentials } from './client-credentials.js'
