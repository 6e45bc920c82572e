/**
 * The embedded audit store: one SQLite file in WAL mode with `synchronous = FULL`, so a committed
 * batch is on disk when `insert` resolves (one fsync per batch: the group commit). Only the writer
 * thread writes; readers (`airlock audit verify --store`) may open it read-only at any time.
 */
import Database from 'better-sqlite3'
import { AirlockError } from '../errors.js'
import type { ChainTip } from './journal.js'
import { type AuditStore, type ChainCursor, type EventFilter, type Head, MAX_PAGE, type NewRow, type StoredRow } from './store.js'

/**
 * Schema versions, each applied once in order; `PRAGMA user_version` holds how many ran. Indexes
 * are few on purpose, and only those whose keys arrive in order (cheap to insert) or that cover
 * rare rows (partial): an index on a column like `session` or `identity` would take most of the
 * cost of an insert. Filters on those columns scan in id order and stop at the page size; a
 * session's scan starts at its `session.start`. The scan runs in id ranges of SCAN_CHUNK rows and
 * yields between them, so on the writer thread a rare user or connection delays a commit by one
 * range at most, not by a scan of the whole table.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE events (
     id INTEGER PRIMARY KEY,
     chain TEXT NOT NULL,
     seq INTEGER NOT NULL,
     time TEXT NOT NULL,
     type TEXT NOT NULL,
     session TEXT,
     identity TEXT,
     user TEXT,
     connection TEXT,
     verdict TEXT,
     record TEXT NOT NULL,
     hash TEXT NOT NULL,
     UNIQUE (chain, seq)
   ) STRICT;
   CREATE INDEX events_session_start ON events (session) WHERE type = 'session.start';
   CREATE INDEX events_verdict ON events (verdict) WHERE verdict IN ('blocked', 'flagged');
   CREATE INDEX events_time ON events (time);`,
]

const COLUMNS = 'id, chain, seq, time, type, session, identity, user, connection, verdict, record, hash'

/** Rows (by id) one step of an unindexed `list` scan covers. */
export const SCAN_CHUNK = 20_000

export async function openSqliteStore(path: string, options: { readonly?: boolean } = {}): Promise<AuditStore> {
  let db: Database.Database
  try {
    db = new Database(path, { readonly: options.readonly === true, fileMustExist: options.readonly === true })
  } catch (error) {
    throw new AirlockError('upstream-unavailable', `cannot open the audit store sqlite:${path} (${(error as { code?: string }).code ?? 'error'})`, {
      hint: options.readonly === true ? 'check the path' : 'check that the directory exists and the gateway may write to it',
    })
  }
  try {
    db.pragma('busy_timeout = 5000')
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > MIGRATIONS.length) {
      throw new AirlockError('config', `the audit store sqlite:${path} has schema version ${version}; this airlock knows up to ${MIGRATIONS.length}`, {
        hint: 'upgrade airlock',
      })
    }
    if (!options.readonly) {
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = FULL')
      db.transaction(() => {
        for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!)
        db.pragma(`user_version = ${MIGRATIONS.length}`)
      }).immediate()
    } else if (version === 0) {
      throw new AirlockError('usage', `sqlite:${path} is not an airlock audit store`)
    }
  } catch (error) {
    db.close()
    if (error instanceof AirlockError) throw error
    throw new AirlockError('upstream-unavailable', `cannot use the audit store sqlite:${path} (${(error as { code?: string }).code ?? 'error'})`, {
      cause: error,
    })
  }
  return new SqliteStore(db)
}

class SqliteStore implements AuditStore {
  readonly kind = 'sqlite' as const
  private readonly insertRow
  private readonly storedHash
  private readonly headOf
  private readonly headsAll
  private readonly page
  private readonly one
  private readonly insertAll

  constructor(private readonly db: Database.Database) {
    this.insertRow = db.prepare(
      `INSERT INTO events (chain, seq, time, type, session, identity, user, connection, verdict, record, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (chain, seq) DO NOTHING`,
    )
    this.storedHash = db.prepare('SELECT hash FROM events WHERE chain = ? AND seq = ?').pluck()
    this.headOf = db.prepare('SELECT seq, hash FROM events WHERE chain = ? ORDER BY seq DESC LIMIT 1')
    this.headsAll = db.prepare(
      `SELECT e.chain, e.seq, e.hash, e.time FROM events e
       JOIN (SELECT chain, max(seq) AS seq FROM events GROUP BY chain) h ON h.chain = e.chain AND h.seq = e.seq
       ORDER BY e.chain`,
    )
    this.page = db.prepare(`SELECT ${COLUMNS} FROM events WHERE chain = ? AND seq > ? ORDER BY seq LIMIT ?`)
    this.one = db.prepare(`SELECT ${COLUMNS} FROM events WHERE chain = ? AND seq = ?`)
    this.insertAll = db.transaction((rows: readonly NewRow[]) => {
      const conflicts: { chain: string; seq: number; hash: string }[] = []
      for (const row of rows) {
        // Positional: binding eleven named parameters from an object took about a fifth of an insert's CPU (measured).
        const { changes } = this.insertRow.run(row.chain, row.seq, row.time, row.type, row.session, row.identity, row.user, row.connection, row.verdict, row.record, row.hash)
        if (changes === 0) conflicts.push({ chain: row.chain, seq: row.seq, hash: this.storedHash.get(row.chain, row.seq) as string })
      }
      return conflicts
    })
  }

  async head(chain: string): Promise<ChainTip | undefined> {
    const row = this.headOf.get(chain) as { seq: number; hash: string } | undefined
    return row === undefined ? undefined : { seq: row.seq, hash: row.hash }
  }

  async insert(rows: readonly NewRow[]): Promise<{ conflicts: { seq: number; chain: string; hash: string }[] }> {
    return { conflicts: this.insertAll.immediate(rows) }
  }

  async heads(): Promise<Head[]> {
    return this.headsAll.all() as Head[]
  }

  async chainPage(chain: string, afterSeq: number, limit: number): Promise<StoredRow[]> {
    return this.page.all(chain, afterSeq, Math.min(limit, MAX_PAGE)) as StoredRow[]
  }

  async list(filter: EventFilter, limit: number, before?: number): Promise<StoredRow[]> {
    const { where, params } = whereOf(filter)
    const wanted = Math.min(limit, MAX_PAGE)
    if (filter.user === undefined && filter.connection === undefined) {
      if (before !== undefined) {
        where.push('id < @before')
        params.before = before
      }
      const sql = `SELECT ${COLUMNS} FROM events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`
      return this.db.prepare(sql).all({ ...params, limit: wanted }) as StoredRow[]
    }
    // No index serves these columns: walk down the ids a range at a time, yielding between ranges.
    where.push('id < @upper', 'id >= @lower')
    const step = this.db.prepare(`SELECT ${COLUMNS} FROM events WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT @limit`)
    const floor = (this.db.prepare('SELECT min(id) FROM events').pluck().get() as number | null) ?? 0
    let upper = before ?? ((this.db.prepare('SELECT max(id) FROM events').pluck().get() as number | null) ?? 0) + 1
    const rows: StoredRow[] = []
    while (rows.length < wanted && upper > floor) {
      const lower = Math.max(floor, upper - SCAN_CHUNK)
      rows.push(...(step.all({ ...params, upper, lower, limit: wanted - rows.length }) as StoredRow[]))
      upper = lower
      if (rows.length < wanted && upper > floor) await new Promise((resolve) => setImmediate(resolve))
    }
    return rows
  }

  async get(chain: string, seq: number): Promise<StoredRow | undefined> {
    return this.one.get(chain, seq) as StoredRow | undefined
  }

  async after(cursor: ChainCursor, filter: EventFilter, limit: number): Promise<StoredRow[]> {
    const { where, params } = whereOf(filter)
    const chains = Object.entries(cursor)
    if (chains.length > 0) {
      const cases = chains.map((_, index) => `WHEN @c${index} THEN seq > @s${index}`).join(' ')
      chains.forEach(([chain, seq], index) => {
        params[`c${index}`] = chain
        params[`s${index}`] = seq
      })
      where.push(`(CASE chain ${cases} ELSE 1 END)`)
    }
    const sql = `SELECT ${COLUMNS} FROM events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT @limit`
    return this.db.prepare(sql).all({ ...params, limit: Math.min(limit, MAX_PAGE) }) as StoredRow[]
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close()
  }
}

function whereOf(filter: EventFilter): { where: string[]; params: Record<string, string | number> } {
  const where: string[] = []
  const params: Record<string, string | number> = {}
  if (filter.user !== undefined) {
    where.push('(identity = @user OR user = @user)')
    params.user = filter.user
  }
  if (filter.session !== undefined) {
    where.push("id >= coalesce((SELECT min(id) FROM events WHERE type = 'session.start' AND session = @session), 0)")
  }
  for (const key of ['connection', 'session', 'verdict', 'type'] as const) {
    const value = filter[key]
    if (value === undefined) continue
    where.push(`${key} = @${key}`)
    params[key] = value
  }
  if (filter.since !== undefined) {
    where.push('time >= @since')
    params.since = filter.since
  }
  return { where, params }
}
