/**
 * The masking each Postgres session gets: the connection's `masking` section, and always the
 * credential canary over every secret the gateway holds for the connection. Built per session
 * (secrets are read again, so a rotated file takes effect) and handed to the engine.
 */
import type { GatewayConfig, SecretSource } from '../config/index.js'
import { secretRefsOf } from '../config/index.js'
import { loadSqlParser } from '../policy/index.js'
import { copyOutStatement, createMasker } from '../policy/masking/index.js'
import type { EngineSession } from '../protocols/engine.js'
import type { PostgresMasking } from '../protocols/postgres/result-masking.js'

/**
 * A factory of per-session masking for the Postgres engine. Undefined for a session when there
 * is nothing to mask: no `masking` section and no secret held (a trust-authenticated upstream).
 * A secret that cannot be read fails the session: it could not be masked.
 */
export function postgresMasking(config: GatewayConfig, secrets: SecretSource): (session: EngineSession) => Promise<PostgresMasking | undefined> {
  return async ({ connection }) => {
    if (connection.type !== 'postgres') return undefined
    const held = await Promise.all(secretRefsOf(connection).map((ref) => secrets.read(ref)))
    if (connection.masking === undefined && held.length === 0) return undefined
    const hashKey = config.masking.hashKey === undefined ? undefined : await secrets.read(config.masking.hashKey)
    await loadSqlParser()
    const masker = createMasker(connection.masking ?? { detectors: [] }, { secrets: held, ...(hashKey === undefined ? {} : { hashKey }) })
    return { masker, columnRules: (connection.masking?.columns.length ?? 0) > 0, copyOut: copyOutStatement }
  }
}
