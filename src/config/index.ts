/**
 * Gateway configuration: the YAML schema and its output types, loading and checking, durations
 * and sizes, and secrets by reference.
 */

export { parseBytes, parseDuration } from './duration.js'
export { checkConfig, loadConfig, parseConfig } from './load.js'
export type { CheckFinding, CheckOptions } from './load.js'
export {
  GUARDRAIL_PRESETS,
  JWT_ALGORITHMS,
  MASKING_DETECTORS,
  MASKING_STRATEGIES,
  connectionSecrets,
  createConfigSchema,
  isLoopbackHost,
  secretRefsOf,
} from './schema.js'
export type {
  CommandConnection,
  ConnectionConfig,
  ConnectionSecret,
  GatewayConfig,
  HttpConnection,
  MaskingConfig,
  MysqlConnection,
  OidcIssuerConfig,
  PostgresConnection,
  ServiceTokenConfig,
  SqlGuardrailsConfig,
  SqlRuleConfig,
  TcpConnection,
} from './schema.js'
export { createSecretSource, isSecretRef } from './secrets.js'
export type { SecretRef, SecretSource } from './secrets.js'
