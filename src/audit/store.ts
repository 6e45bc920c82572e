/**
 * Where audit records end up: the `AuditStore` interface that the SQLite and PostgreSQL stores
 * implement, and the query shapes the API uses. A store holds each record's canonical body and hash
 * next to columns derived from it (record.ts `columnsOf`) for filtering.
 */
import { AirlockError } from '../errors.js'
import type { ChainTip } from './journal.js'
import type { RecordColumns } from './record.js'

/** One stored record. `id` is the store's own row number (ingest order), used as a list cursor. */
export interface StoredRow extends RecordColumns {
  id: number
  /** The canonical body, exactly as hashed. */
  record: string
  hash: string
}

export type NewRow = Omit<StoredRow, 'id'>

export interface EventFilter {
  /** Identity id (`service:ci`, `issuer#sub`) or display name (token name, email). */
  user?: string
  connection?: string
  session?: string
  /** ISO time; records at or after it. */
  since?: string
  verdict?: string
  type?: string
}

/** Per-chain positions for `after` (tail): exact even when several gateways write at once. */
export type ChainCursor = Record<string, number>

export interface Head extends ChainTip {
  chain: string
  time: string
}

export interface AuditStore {
  readonly kind: 'sqlite' | 'postgres'
  /** The last record of `chain`, or undefined when the store has none of it. */
  head(chain: string): Promise<ChainTip | undefined>
  /**
   * Adds rows in one transaction; durable when the promise resolves. Rows whose (chain, seq) is
   * already stored are skipped; their stored hashes are returned so the caller can tell a replay
   * from a fork.
   */
  insert(rows: readonly NewRow[]): Promise<{ conflicts: { seq: number; chain: string; hash: string }[] }>
  heads(): Promise<Head[]>
  /** Rows of `chain` with seq > `afterSeq`, in seq order. */
  chainPage(chain: string, afterSeq: number, limit: number): Promise<StoredRow[]>
  /** Matching rows, newest first, with id < `before` when given. */
  list(filter: EventFilter, limit: number, before?: number): Promise<StoredRow[]>
  get(chain: string, seq: number): Promise<StoredRow | undefined>
  /** Matching rows after the per-chain cursor, oldest first within each chain. */
  after(cursor: ChainCursor, filter: EventFilter, limit: number): Promise<StoredRow[]>
  close(): Promise<void>
}

/** The largest page any store query returns. */
export const MAX_PAGE = 1000

export type StoreLocation = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; password?: StorePassword }

/**
 * The PostgreSQL store's password (`audit.password`): a file, read again for each new connection so
 * a rotated file takes effect, or a value the gateway read from its environment. Without one,
 * node-postgres reads PGPASSWORD or PGPASSFILE.
 */
export type StorePassword = { file: string } | { value: string }

/**
 * Parses `audit.store`: `sqlite:PATH` (`sqlite::memory:` for a throwaway in-memory store) or a
 * `postgres://` URL.
 *
 * @throws AirlockError `usage` for anything else.
 */
export function parseStoreLocation(store: string): StoreLocation {
  if (store.startsWith('sqlite:') && store.length > 'sqlite:'.length) return { kind: 'sqlite', path: store.slice('sqlite:'.length) }
  if (/^postgres(?:ql)?:\/\//.test(store)) return { kind: 'postgres', url: store }
  throw new AirlockError('usage', 'an audit store is sqlite:PATH or a postgres:// URL')
}

/**
 * The store location for messages and logs: a postgres URL without its password and without its
 * query string (which can carry `password=` or `sslpassword=`; the configuration refuses both, a
 * command-line `--store` does not).
 */
export function describeStore(location: StoreLocation): string {
  if (location.kind === 'sqlite') return `sqlite:${location.path}`
  try {
    const url = new URL(location.url)
    url.password = ''
    url.search = ''
    url.hash = ''
    return url.href
  } catch {
    return 'postgres://(unparseable)'
  }
}

/** Opens a store. The PostgreSQL store creates or migrates its schema; the SQLite one too unless read-only. */
export async function openStore(location: StoreLocation, options: { readonly?: boolean } = {}): Promise<AuditStore> {
  if (location.kind === 'sqlite') {
    const { openSqliteStore } = await import('./sqlite-store.js')
    return openSqliteStore(location.path, options)
  }
  const { openPostgresStore } = await import('./postgres-store.js')
  return openPostgresStore(location.url, location.password === undefined ? options : { ...options, password: location.password })
}
