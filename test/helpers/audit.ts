/**
 * Audit test helpers: gateways (in-process or as a real process) with a chosen audit store, fresh
 * PostgreSQL databases for the PostgreSQL store, and direct access to a store's rows for checks
 * and tampering.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import pg from 'pg'
import { parse, stringify } from 'yaml'
import { hashServiceToken } from '../../src/auth/index.js'
import { createSecretSource, parseConfig } from '../../src/config/index.js'
import { createLogger, type Gateway, startGateway } from '../../src/gateway/index.js'
import { makeTokens, type TestTokens } from './gateway.js'
import { spawnAirlock, type Spawned } from './processes.js'

const made: string[] = []

/** A fresh temporary directory, removed by `removeAuditTempDirs`. */
export function auditTempDir(prefix = 'airlock-audit-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** Removes every directory `auditTempDir` made (call in afterAll). */
export function removeAuditTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/** The system PostgreSQL the tests may use (trust auth, user postgres). */
export const SYSTEM_PG = 'postgres://postgres@127.0.0.1:5432'

/** A fresh database on the system PostgreSQL for a PostgreSQL audit store; dropped by `drop()`. */
export async function freshAuditDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `airlock_audit_test_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: `${SYSTEM_PG}/postgres` })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  return {
    url: `${SYSTEM_PG}/${name}`,
    drop: async () => {
      const client = new pg.Client({ connectionString: `${SYSTEM_PG}/postgres` })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

export interface AuditGatewayConfig {
  connections: Record<string, unknown>[]
  audit: { store: string; required?: boolean; password?: Record<string, string> }
  /** Fixed port (for restarts on the same address); 0 picks one. */
  port?: number
  dir?: string
  tokens?: TestTokens
}

/** Writes an airlock.yaml with the test service tokens (see gateway.ts) and the given audit section. */
export function writeAuditGatewayConfig(options: AuditGatewayConfig): { dir: string; configFile: string; tokens: TestTokens } {
  const tokens = options.tokens ?? makeTokens()
  const dir = options.dir ?? auditTempDir('airlock-audit-gw-')
  const config = {
    listen: { host: '127.0.0.1', port: options.port ?? 0 },
    auth: {
      adminGroups: ['platform'],
      serviceTokens: [
        { name: 'test-user', sha256: hashServiceToken(tokens.user), groups: ['eng'] },
        { name: 'test-admin', sha256: hashServiceToken(tokens.admin), groups: ['platform'] },
        { name: 'test-outsider', sha256: hashServiceToken(tokens.outsider), groups: ['sales'] },
        { name: 'test-expired', sha256: hashServiceToken(tokens.expired), groups: ['eng'], expires: '2020-01-01' },
      ],
    },
    audit: options.audit,
    log: { level: 'info' },
    connections: options.connections,
  }
  const configFile = join(dir, 'airlock.yaml')
  writeFileSync(configFile, stringify(config))
  return { dir, configFile, tokens }
}

export interface AuditGatewayProcess {
  url: string
  process: Spawned
  /** SIGKILL, no drain. */
  kill(): Promise<void>
  stop(): Promise<number | null>
}

/** `airlock gateway serve` as a child process; resolves once it listens. */
export async function spawnAuditGateway(configFile: string, env: NodeJS.ProcessEnv): Promise<AuditGatewayProcess> {
  const child = spawnAirlock(['gateway', 'serve', '--config', configFile], { env })
  const listening = await child.waitFor<{ event?: string; url?: string }>((line) => line.event === 'gateway.listen', 30_000)
  return {
    url: listening.url!,
    process: child,
    kill: async () => {
      await child.stop('SIGKILL')
    },
    stop: () => child.stop('SIGTERM'),
  }
}

/** Raw access to a store's table, for assertions and tampering. */
export interface StoreAccess {
  rows(): Promise<{ id: number; chain: string; seq: number; type: string; record: string; hash: string }[]>
  /** Runs SQL on the store (SQLite or PostgreSQL dialect as appropriate). */
  exec(sql: string, params?: unknown[]): Promise<void>
  /** The events table's name. */
  table: string
  close(): Promise<void>
}

export async function storeAccess(store: string): Promise<StoreAccess> {
  if (store.startsWith('sqlite:')) {
    const db = new Database(store.slice('sqlite:'.length))
    db.pragma('busy_timeout = 5000')
    return {
      table: 'events',
      rows: async () => db.prepare('SELECT id, chain, seq, type, record, hash FROM events ORDER BY chain, seq').all() as never,
      exec: async (sql, params = []) => {
        db.prepare(sql).run(...(params as never[]))
      },
      close: async () => {
        db.close()
      },
    }
  }
  const client = new pg.Client({ connectionString: store })
  await client.connect()
  return {
    table: 'airlock_audit_events',
    rows: async () =>
      (await client.query('SELECT id, chain, seq, type, record, hash FROM airlock_audit_events ORDER BY chain, seq')).rows.map((row) => ({
        ...row,
        id: Number(row.id),
        seq: Number(row.seq),
      })),
    exec: async (sql, params = []) => {
      await client.query(sql, params)
    },
    close: () => client.end(),
  }
}

/** Every byte under `dir` (files only), for "no secret anywhere on disk" checks. */
export function bytesUnder(dir: string): string {
  let all = ''
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    const stat = statSync(path)
    if (stat.isDirectory()) all += bytesUnder(path)
    else if (stat.isFile()) all += readFileSync(path).toString('latin1')
  }
  return all
}

export interface InProcessAuditGateway {
  gateway: Gateway
  url: string
  tokens: TestTokens
  dir: string
  /** Every log line the gateway wrote. */
  logs: string[]
  env(who: keyof TestTokens): NodeJS.ProcessEnv
  stop(): Promise<void>
}

/** A gateway in the test process with the given audit section (its journal next to a SQLite store, or under `dir`). */
export async function startAuditGateway(options: AuditGatewayConfig & { secrets?: NodeJS.ProcessEnv }): Promise<InProcessAuditGateway> {
  const { dir, configFile, tokens } = writeAuditGatewayConfig(options)
  const config = parseConfig(parse(readFileSync(configFile, 'utf8')), dir)
  const logs: string[] = []
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logs.push(chunk.toString('utf8'))
      callback()
    },
  })
  const previous = process.env.AIRLOCK_AUDIT_JOURNAL
  process.env.AIRLOCK_AUDIT_JOURNAL = join(dir, 'journal')
  let gateway: Gateway
  try {
    gateway = await startGateway({ config, logger: createLogger('debug', destination), secrets: createSecretSource(options.secrets ?? {}) })
  } finally {
    if (previous === undefined) delete process.env.AIRLOCK_AUDIT_JOURNAL
    else process.env.AIRLOCK_AUDIT_JOURNAL = previous
  }
  return {
    gateway,
    url: gateway.url.href,
    tokens,
    dir,
    logs,
    env: (who) => ({ AIRLOCK_GATEWAY: gateway.url.href, AIRLOCK_TOKEN: tokens[who] }),
    stop: () => gateway.drain(0),
  }
}
