/**
 * The shared audit store: PostgreSQL, for several gateways writing one log (one chain each, so they
 * never wait on one another's head). The gateway creates and migrates the schema itself, under an
 * advisory lock so gateways starting together do not race; a read-only open (offline verify) runs
 * no DDL and takes no lock, so a role with SELECT on the two tables can verify. A batch is one
 * INSERT ... SELECT FROM unnest(...): one round trip, atomic, durable at commit (the session sets
 * synchronous_commit = on). Every query has a timeout (STORE_TIMEOUTS).
 *
 * The URL carries no password (the configuration refuses one): it comes from `audit.password` (a
 * secret reference; see StorePassword), else node-postgres reads PGPASSWORD or PGPASSFILE from the
 * gateway's environment.
 */
import pg from 'pg'
import { parseIntoClientConfig } from 'pg-connection-string'
import { createSecretSource } from '../config/secrets.js'
import { AirlockError } from '../errors.js'
import type { ChainTip } from './journal.js'
import { type AuditStore, type ChainCursor, describeStore, type EventFilter, type Head, MAX_PAGE, type NewRow, type StoredRow, type StorePassword } from './store.js'

const TABLE = 'airlock_audit_events'

/** Schema versions, each applied once in order; `airlock_audit_schema.version` holds how many ran. Indexes as in the SQLite store. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE ${TABLE} (
     id bigserial PRIMARY KEY,
     chain text NOT NULL,
     seq bigint NOT NULL,
     time text NOT NULL,
     type text NOT NULL,
     session text,
     identity text,
     "user" text,
     connection text,
     verdict text,
     record text NOT NULL,
     hash text NOT NULL,
     UNIQUE (chain, seq)
   );
   CREATE INDEX ${TABLE}_session_start ON ${TABLE} (session) WHERE type = 'session.start';
   CREATE INDEX ${TABLE}_verdict ON ${TABLE} (verdict) WHERE verdict IN ('blocked', 'flagged');
   CREATE INDEX ${TABLE}_time ON ${TABLE} (time);`,
]

const COLUMNS = `id, chain, seq, time, type, session, identity, "user", connection, verdict, record, hash`

/**
 * Timeouts, so that a store that stops answering (a hung server, a partition without a reset) fails
 * the writer's insert rather than holding it forever: the gateway then reports the store
 * unavailable and, with `audit.required`, refuses new sessions. A read-only store (offline verify)
 * gets the same ones.
 */
export const STORE_TIMEOUTS = {
  /** Opening a connection. */
  connectMs: 10_000,
  /** Server side, per statement (a batch INSERT of a few thousand rows takes milliseconds). */
  statementMs: 10_000,
  /** Client side, per query: also covers a server that no longer answers at all. */
  queryMs: 15_000,
  /** TCP keepalive on every connection, from this much idleness. */
  keepAliveMs: 10_000,
} as const

export async function openPostgresStore(url: string, options: { readonly?: boolean; password?: StorePassword } = {}): Promise<AuditStore> {
  const where = describeStore({ kind: 'postgres', url })
  const readonly = options.readonly === true
  const { password } = options
  const secrets = createSecretSource({})
  const pool = new pg.Pool({
    // node-postgres lets a connectionString's empty password win over `password`: parse it here.
    ...(password === undefined
      ? { connectionString: url }
      : { ...parseIntoClientConfig(url), password: () => ('file' in password ? secrets.read(password) : Promise.resolve(password.value)) }),
    max: 3,
    application_name: 'airlock-audit',
    connectionTimeoutMillis: STORE_TIMEOUTS.connectMs,
    statement_timeout: STORE_TIMEOUTS.statementMs,
    query_timeout: STORE_TIMEOUTS.queryMs,
    idle_in_transaction_session_timeout: STORE_TIMEOUTS.statementMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: STORE_TIMEOUTS.keepAliveMs,
    // A commit is durable when it returns, whatever the server's default; a reader never writes.
    options: readonly ? '-c default_transaction_read_only=on' : '-c synchronous_commit=on',
  })
  // An idle client's connection can drop (server restart); the next query reconnects.
  pool.on('error', () => {})
  try {
    const client = await pool.connect()
    try {
      if (readonly) await checkSchema(client, where)
      else await migrate(client, where)
    } finally {
      client.release()
    }
  } catch (error) {
    await pool.end().catch(() => undefined)
    if (error instanceof AirlockError) throw error
    throw new AirlockError('upstream-unavailable', `cannot use the audit store ${where}: ${describePgError(error)}`, {
      cause: error,
      hint: readonly ? 'check that the database is reachable and the role may read the audit tables' : 'check that the database is reachable and the gateway may create tables in it',
    })
  }
  return new PostgresStore(pool)
}

/** Creates or migrates the schema, under an advisory lock so gateways starting together do not race. */
async function migrate(client: pg.PoolClient, where: string): Promise<void> {
  try {
    await client.query('BEGIN')
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('airlock_audit_schema'))`)
    await client.query('CREATE TABLE IF NOT EXISTS airlock_audit_schema (version integer NOT NULL)')
    const found = await client.query<{ version: number }>('SELECT version FROM airlock_audit_schema')
    const version = found.rows[0]?.version ?? 0
    tooNew(version, where)
    if (version < MIGRATIONS.length) {
      for (let v = version; v < MIGRATIONS.length; v++) await client.query(MIGRATIONS[v]!)
      if (found.rows.length === 0) await client.query('INSERT INTO airlock_audit_schema (version) VALUES ($1)', [MIGRATIONS.length])
      else await client.query('UPDATE airlock_audit_schema SET version = $1', [MIGRATIONS.length])
    }
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/** For a reader (offline verify): the schema must be there and known; no DDL, no lock, so SELECT is all the role needs. */
async function checkSchema(client: pg.PoolClient, where: string): Promise<void> {
  const { rows } = await client.query<{ present: boolean }>(`SELECT to_regclass('airlock_audit_schema') IS NOT NULL AS present`)
  const version = rows[0]?.present === true ? ((await client.query<{ version: number }>('SELECT version FROM airlock_audit_schema')).rows[0]?.version ?? 0) : 0
  tooNew(version, where)
  if (version === 0) throw new AirlockError('usage', `${where} holds no airlock audit log`)
}

function tooNew(version: number, where: string): void {
  if (version > MIGRATIONS.length) {
    throw new AirlockError('config', `the audit store ${where} has schema version ${version}; this airlock knows up to ${MIGRATIONS.length}`, {
      hint: 'upgrade airlock',
    })
  }
}

/** A PostgreSQL or network error in words, without anything the server echoed from the query. */
export function describePgError(error: unknown): string {
  // Ours (an audit.password file that cannot be read): names the reference, never a value.
  if (error instanceof AirlockError) return error.message
  const fields = error as { code?: string; message?: string }
  if (fields.code === '28P01' || fields.code === '28000') return `the server refused the login (SQLSTATE ${fields.code}): check the role and audit.password`
  if (typeof fields.code === 'string' && /^[0-9A-Z]{5}$/.test(fields.code)) return `SQLSTATE ${fields.code}`
  if (typeof fields.code === 'string') return fields.code
  return 'error'
}

interface PgRow {
  id: string
  chain: string
  seq: string
  time: string
  type: string
  session: string | null
  identity: string | null
  user: string | null
  connection: string | null
  verdict: string | null
  record: string
  hash: string
}

function toRow(row: PgRow): StoredRow {
  return { ...row, id: Number(row.id), seq: Number(row.seq) }
}

class PostgresStore implements AuditStore {
  readonly kind = 'postgres' as const

  constructor(private readonly pool: pg.Pool) {}

  async head(chain: string): Promise<ChainTip | undefined> {
    const { rows } = await this.pool.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM ${TABLE} WHERE chain = $1 ORDER BY seq DESC LIMIT 1`, [chain])
    const row = rows[0]
    return row === undefined ? undefined : { seq: Number(row.seq), hash: row.hash }
  }

  async insert(rows: readonly NewRow[]): Promise<{ conflicts: { seq: number; chain: string; hash: string }[] }> {
    if (rows.length === 0) return { conflicts: [] }
    const column = <K extends keyof NewRow>(key: K) => rows.map((row) => row[key])
    const { rows: inserted } = await this.pool.query<{ chain: string; seq: string }>(
      `INSERT INTO ${TABLE} (chain, seq, time, type, session, identity, "user", connection, verdict, record, hash)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])
       ON CONFLICT (chain, seq) DO NOTHING
       RETURNING chain, seq`,
      [
        column('chain'),
        column('seq'),
        column('time'),
        column('type'),
        column('session'),
        column('identity'),
        column('user'),
        column('connection'),
        column('verdict'),
        column('record'),
        column('hash'),
      ],
    )
    if (inserted.length === rows.length) return { conflicts: [] }
    const done = new Set(inserted.map((row) => `${row.chain}:${row.seq}`))
    const skipped = rows.filter((row) => !done.has(`${row.chain}:${row.seq}`))
    const { rows: stored } = await this.pool.query<{ chain: string; seq: string; hash: string }>(
      `SELECT e.chain, e.seq, e.hash FROM ${TABLE} e JOIN unnest($1::text[], $2::bigint[]) AS k(chain, seq) ON e.chain = k.chain AND e.seq = k.seq`,
      [skipped.map((row) => row.chain), skipped.map((row) => row.seq)],
    )
    return { conflicts: stored.map((row) => ({ chain: row.chain, seq: Number(row.seq), hash: row.hash })) }
  }

  async heads(): Promise<Head[]> {
    const { rows } = await this.pool.query<{ chain: string; seq: string; hash: string; time: string }>(
      `SELECT DISTINCT ON (chain) chain, seq, hash, time FROM ${TABLE} ORDER BY chain, seq DESC`,
    )
    return rows.map((row) => ({ chain: row.chain, seq: Number(row.seq), hash: row.hash, time: row.time }))
  }

  async chainPage(chain: string, afterSeq: number, limit: number): Promise<StoredRow[]> {
    const { rows } = await this.pool.query<PgRow>(`SELECT ${COLUMNS} FROM ${TABLE} WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [
      chain,
      afterSeq,
      Math.min(limit, MAX_PAGE),
    ])
    return rows.map(toRow)
  }

  async list(filter: EventFilter, limit: number, before?: number): Promise<StoredRow[]> {
    const { where, params } = whereOf(filter)
    if (before !== undefined) {
      params.push(before)
      where.push(`id < $${params.length}`)
    }
    params.push(Math.min(limit, MAX_PAGE))
    const { rows } = await this.pool.query<PgRow>(
      `SELECT ${COLUMNS} FROM ${TABLE} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${params.length}`,
      params,
    )
    return rows.map(toRow)
  }

  async get(chain: string, seq: number): Promise<StoredRow | undefined> {
    const { rows } = await this.pool.query<PgRow>(`SELECT ${COLUMNS} FROM ${TABLE} WHERE chain = $1 AND seq = $2`, [chain, seq])
    return rows[0] === undefined ? undefined : toRow(rows[0])
  }

  async after(cursor: ChainCursor, filter: EventFilter, limit: number): Promise<StoredRow[]> {
    const { where, params } = whereOf(filter)
    const chains = Object.entries(cursor)
    if (chains.length > 0) {
      params.push(chains.map(([chain]) => chain), chains.map(([, seq]) => seq))
      const c = params.length - 1
      where.push(`seq > coalesce((SELECT k.seq FROM unnest($${c}::text[], $${c + 1}::bigint[]) AS k(chain, seq) WHERE k.chain = ${TABLE}.chain), 0)`)
    }
    params.push(Math.min(limit, MAX_PAGE))
    const { rows } = await this.pool.query<PgRow>(
      `SELECT ${COLUMNS} FROM ${TABLE} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT $${params.length}`,
      params,
    )
    return rows.map(toRow)
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined)
  }
}

function whereOf(filter: EventFilter): { where: string[]; params: unknown[] } {
  const where: string[] = []
  const params: unknown[] = []
  const add = (sql: (n: string) => string, value: unknown): void => {
    params.push(value)
    where.push(sql(`$${params.length}`))
  }
  if (filter.user !== undefined) add((n) => `(identity = ${n} OR "user" = ${n})`, filter.user)
  if (filter.connection !== undefined) add((n) => `connection = ${n}`, filter.connection)
  if (filter.session !== undefined) {
    add((n) => `session = ${n} AND id >= coalesce((SELECT min(id) FROM ${TABLE} WHERE type = 'session.start' AND session = ${n}), 0)`, filter.session)
  }
  if (filter.verdict !== undefined) add((n) => `verdict = ${n}`, filter.verdict)
  if (filter.type !== undefined) add((n) => `type = ${n}`, filter.type)
  if (filter.since !== undefined) add((n) => `time >= ${n}`, filter.since)
  return { where, params }
}
