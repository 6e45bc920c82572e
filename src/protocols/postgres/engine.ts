/**
 * postgres: the gateway side of a Postgres connection. The client's startup parameters arrive with
 * the tunnel (`Airlock-Open`), so the gateway reaches and authenticates to the server first, and
 * only then greets the client with AuthenticationOk, the server's ParameterStatus, a BackendKeyData
 * of its own and ReadyForQuery; then {@link PostgresRelay} takes over.
 *
 *   CLI front                         gateway                              PostgreSQL
 *     │── upgrade (startup params) ──▶│── TLS, StartupMessage, SCRAM ──────▶│
 *     │                               │◀── AuthenticationOk, S*, K, Z ──────│
 *     │◀── ready; R(ok) S* K' Z ──────│   K' = the gateway's own cancel key
 *     │◀══════════ relay (StatementHooks on every statement) ══════════════▶│
 *
 * A CancelRequest arrives on a tunnel of its own with `cancel` set and never reaches a relay.
 */
import type { PostgresConnection } from '../../config/index.js'
import { AirlockError } from '../../errors.js'
import type { EngineSession, ProtocolEngine, UpstreamLink } from '../engine.js'
import { ALLOW_ALL } from '../hooks.js'
import { CancelRegistry, type ClientKey } from './cancel.js'
import { serializeAuthentication, serializeBackendKeyData, serializeReadyForQuery } from './messages.js'
import { AuthenticationType } from './protocol.js'
import { type PostgresStatementHooks, PostgresRelay } from './relay.js'
import { type PostgresMasking, ResultMasking } from './result-masking.js'
import { connectUpstream, type UpstreamSession } from './upstream.js'

/** Startup parameters a client may set (lowercase); the gateway sets user, database and application_name. */
const ALLOWED_PARAMETERS = new Set([
  'client_encoding',
  'datestyle',
  'timezone',
  'extra_float_digits',
  'intervalstyle',
  'search_path',
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'default_transaction_isolation',
  'bytea_output',
])
/** Sent by every client, decided by the gateway instead. */
const IGNORED_PARAMETERS = new Set(['user', 'database', 'application_name', 'fallback_application_name'])

export interface PostgresEngineOptions {
  /**
   * The masking of a session (the gateway builds it from the connection's configuration and
   * secrets); undefined from it, or no factory, relays results unmasked.
   */
  masking?: (session: EngineSession) => Promise<PostgresMasking | undefined>
}

export function createPostgresEngine(options: PostgresEngineOptions = {}): ProtocolEngine {
  const cancels = new CancelRegistry()
  return {
    async open(session: EngineSession): Promise<UpstreamLink> {
      const { connection, identity, params } = session
      if (connection.type !== 'postgres') throw new AirlockError('internal', `postgres engine given a ${connection.type} connection`)
      if (params.cancel !== undefined) {
        await cancels.cancel(identity.id, params.cancel.processId, Buffer.from(params.cancel.secretKey, 'hex'))
        return { relay: async () => ({ message: 'cancel request handled' }), abort: () => {} }
      }
      const hooks: PostgresStatementHooks = session.hooks ?? ALLOW_ALL
      const masked = await options.masking?.(session)
      const masking = masked === undefined ? undefined : new ResultMasking(masked)
      const parameters = withRequired(startupParameters(params.startup ?? {}), hooks.postgres?.startupParameters)
      parameters.application_name = `airlock/${identity.display}/${session.id}`
      const upstream = await connectUpstream({ connection, secrets: session.secrets, parameters })
      session.logger.debug({ event: 'postgres.upstream', serverVersion: upstream.parameterValues.get('server_version') }, 'upstream ready')
      const drift = pinnedDrift(upstream.parameterValues, hooks.postgres?.pinned)
      if (drift !== undefined) {
        upstream.socket.destroy()
        throw new AirlockError('upstream-unavailable', `the database session started with ${drift}, which the connection's guardrails cannot allow`, {
          hint: 'ask the database admin to check the role and database settings',
        })
      }
      const key = cancels.register(cancelTarget(identity.id, connection, upstream))
      const relay = new PostgresRelay(
        session.transport,
        upstream.socket,
        upstream.framer,
        hooks,
        { id: session.id, identity, connection: connection.name },
        upstream.parameterValues.get('standard_conforming_strings') !== 'off',
        masking,
      )
      return {
        relay: async () => {
          try {
            return await relay.run(greeting(upstream, key, masking))
          } finally {
            cancels.unregister(key.processId)
          }
        },
        abort: () => {
          cancels.unregister(key.processId)
          upstream.socket.destroy()
        },
      }
    },
  }
}

/** The client's parameters through the allowlist; anything else is refused, visibly. */
export function startupParameters(requested: Record<string, string>): Record<string, string> {
  const allowed: Record<string, string> = {}
  for (const [name, value] of Object.entries(requested)) {
    const key = name.toLowerCase()
    if (IGNORED_PARAMETERS.has(key) || key.startsWith('_pq_.')) continue
    if (!ALLOWED_PARAMETERS.has(key)) {
      throw new AirlockError('usage', `startup parameter ${JSON.stringify(name)} is not allowed through Airlock`, {
        hint: key === 'options' ? 'unset PGOPTIONS / remove "options" from the connection string; use SET after connecting' : 'remove it from the client settings',
      })
    }
    allowed[name] = value
  }
  return allowed
}

/**
 * The policy's required startup parameters replace the client's of the same name (any case): the
 * client learns the values in force from ParameterStatus, as after any server-side default.
 */
function withRequired(parameters: Record<string, string>, required: Readonly<Record<string, string>> | undefined): Record<string, string> {
  if (required === undefined) return parameters
  for (const name of Object.keys(parameters)) if (Object.hasOwn(required, name.toLowerCase())) delete parameters[name]
  return Object.assign(parameters, required)
}

/** `name=value` of the first pinned parameter the server reports with another value. */
function pinnedDrift(reported: ReadonlyMap<string, string>, pinned: Readonly<Record<string, string>> | undefined): string | undefined {
  for (const [name, value] of Object.entries(pinned ?? {})) {
    const actual = reported.get(name)
    if (actual !== undefined && actual !== value) return `${name}=${actual}`
  }
  return undefined
}

function cancelTarget(identityId: string, connection: PostgresConnection, upstream: UpstreamSession) {
  return {
    identityId,
    host: connection.upstream.host,
    port: connection.upstream.port,
    processId: upstream.processId,
    secretKey: upstream.secretKey,
  }
}

/** What the client receives once the server accepted the gateway: its startup reply (masked), with our key. */
function greeting(upstream: UpstreamSession, key: ClientKey, masking: ResultMasking | undefined): Buffer {
  return Buffer.concat([
    serializeAuthentication(AuthenticationType.Ok),
    ...(masking?.greeting(upstream.notices, 'notice') ?? upstream.notices.map((frame) => frame.raw)),
    ...(masking?.greeting(upstream.parameters, 'parameter') ?? upstream.parameters.map((frame) => frame.raw)),
    serializeBackendKeyData(key.processId, key.secretKey),
    serializeReadyForQuery(upstream.transactionStatus),
  ])
}
