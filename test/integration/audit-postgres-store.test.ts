/**
 * The PostgreSQL audit store's faults and least privilege: a store that stops answering (a
 * throwaway cluster frozen with SIGSTOP) makes the gateway refuse new sessions with audit.required
 * and recover when it answers again, losing nothing; its password comes by reference and a rotated
 * file takes effect at the next connection; and offline verification needs nothing but SELECT on
 * the audit tables (no DDL, no lock).
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pg from 'pg'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { openAuditLog, openStore, parseStoreLocation, verifyStore } from '../../src/audit/index.js'
import { auditTempDir, freshAuditDatabase, removeAuditTempDirs, startAuditGateway, storeAccess } from '../helpers/audit.js'
import { type PgCluster, startPgCluster } from '../helpers/pg-cluster.js'
import { airlock } from '../helpers/processes.js'

afterAll(removeAuditTempDirs)

const silent = pino({ level: 'silent' }, new Writable({ write: (_chunk, _encoding, callback) => callback() }))

/** Freezes every process of a cluster (postmaster and backends): connections stay open, nothing answers. */
function freeze(cluster: PgCluster): { thaw(): void } {
  const postmaster = Number(readFileSync(join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  const children = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
    } catch {
      return []
    }
  }
  const pids = [postmaster, ...children(postmaster)]
  for (const pid of pids) process.kill(pid, 'SIGSTOP')
  let thawed = false
  return {
    thaw: () => {
      if (thawed) return
      thawed = true
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGCONT')
        } catch {
          // exited meanwhile
        }
      }
    },
  }
}

describe('a PostgreSQL store that stops answering', () => {
  it('makes the gateway refuse new sessions with audit.required, and recovers without losing a record when it answers again', async () => {
    const cluster = await startPgCluster({ ssl: false, auth: 'trust' })
    let frozen: { thaw(): void } | undefined
    try {
      await cluster.psql('create database audit')
      const store = `postgres://postgres@127.0.0.1:${cluster.port}/audit`
      const gateway = await startAuditGateway({
        audit: { store, required: true },
        connections: [
          {
            name: 'pg',
            type: 'postgres',
            upstream: { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'PG_APP_PASSWORD' }, tls: { mode: 'disable' } },
            access: { groups: ['eng'] },
          },
        ],
        secrets: { PG_APP_PASSWORD: cluster.app.password },
      })
      const health = async (): Promise<{ status: number; body: { audit: Record<string, unknown> } }> => {
        const response = await fetch(new URL('healthz', gateway.url))
        return { status: response.status, body: (await response.json()) as { audit: Record<string, unknown> } }
      }
      try {
        expect((await airlock(['exec', 'pg', '-i', 'select 1'], { env: gateway.env('user'), timeoutMs: 60_000 })).code).toBe(0)
        await expect.poll(async () => (await health()).status, { timeout: 10_000 }).toBe(200)

        frozen = freeze(cluster)
        // A record to store: the writer's INSERT now waits on a server that does not answer.
        expect((await fetch(new URL('v1/connections', gateway.url), { headers: { authorization: 'Bearer alk_while-frozen' } })).status).toBe(401)
        await expect.poll(async () => (await health()).status, { timeout: 40_000, interval: 500 }).toBe(503)
        expect((await health()).body.audit).toMatchObject({ store: 'unavailable', lag: expect.any(Number) })
        const refused = await airlock(['exec', 'pg', '-i', 'select 1', '--json'], { env: gateway.env('user'), timeoutMs: 60_000 })
        expect(refused.code).toBe(7)
        expect(JSON.parse(refused.stdout.trim().split('\n').at(-1)!).error).toMatchObject({ code: 'upstream-unavailable', message: expect.stringContaining('audit') })

        frozen.thaw()
        await expect.poll(async () => (await health()).status, { timeout: 40_000, interval: 500 }).toBe(200)
        expect((await health()).body.audit).toMatchObject({ store: 'ok', lag: 0, lagMs: 0 })
        expect((await airlock(['exec', 'pg', '-i', "select 'after the thaw'"], { env: gateway.env('user'), timeoutMs: 60_000 })).code).toBe(0)
      } finally {
        frozen?.thaw()
        await gateway.stop()
      }
      expect(gateway.logs.join('')).toMatch(/"event":"audit\.(store-failed|store-behind)"/)
      const access = await storeAccess(store)
      const rows = await access.rows()
      await access.close()
      const types = rows.map((row) => row.type)
      expect(types.filter((type) => type === 'auth.failure')).toHaveLength(1)
      expect(rows.some((row) => row.type === 'statement.begin' && row.record.includes('after the thaw'))).toBe(true)
      expect(types.at(-1)).toBe('gateway.stop')
      const opened = await openStore(parseStoreLocation(store), { readonly: true })
      try {
        expect((await verifyStore(opened)).ok).toBe(true)
      } finally {
        await opened.close()
      }
    } finally {
      frozen?.thaw()
      await cluster.stop()
    }
  }, 180_000)
})

describe('offline verification of a PostgreSQL store', () => {
  it('needs only SELECT on the audit tables: no DDL, no advisory lock', async () => {
    const database = await freshAuditDatabase()
    const reader = `airlock_reader_${randomBytes(4).toString('hex')}`
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    try {
      await admin.query(`CREATE ROLE ${reader} LOGIN`)
      await admin.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC')
      const readerUrl = database.url.replace('postgres://postgres@', `postgres://${reader}@`)

      // An empty database: refused, and nothing created in it.
      await expect(openStore(parseStoreLocation(readerUrl), { readonly: true })).rejects.toMatchObject({ code: 'usage' })
      expect((await admin.query(`SELECT to_regclass('airlock_audit_schema') AS t`)).rows[0].t).toBeNull()

      const log = await openAuditLog({ store: database.url, logger: silent, version: 'test', journalDir: join(auditTempDir(), 'journal') })
      for (let i = 1; i <= 3; i++) log.append({ type: 'gateway.stop', reason: `marker ${i}` }, { durable: true })
      await log.sync()
      await log.close('test over')
      await admin.query(`GRANT SELECT ON airlock_audit_events, airlock_audit_schema TO ${reader}`)

      const opened = await openStore(parseStoreLocation(readerUrl), { readonly: true })
      try {
        const report = await verifyStore(opened)
        expect(report.ok).toBe(true)
        expect(report.chains[0]?.records).toBe(5)
      } finally {
        await opened.close()
      }
    } finally {
      await admin.end()
      await database.drop()
      const system = new pg.Client({ connectionString: database.url.replace(/\/[^/]*$/, '/postgres') })
      await system.connect()
      await system.query(`DROP ROLE IF EXISTS ${reader}`)
      await system.end()
    }
  }, 60_000)
})

describe('a PostgreSQL store behind a password', () => {
  it('logs in with audit.password read from a file, again at each new connection (rotation), and says so without the password when refused', async () => {
    const cluster = await startPgCluster({ ssl: false })
    try {
      const first = `first-${randomBytes(12).toString('hex')}`
      await cluster.psql(`create role auditor login password '${first}'`)
      await cluster.psql('create database audit owner auditor')
      const dir = auditTempDir()
      const passwordFile = join(dir, 'audit-db-password')
      writeFileSync(passwordFile, `${first}\n`, { mode: 0o600 })
      const store = `postgres://auditor@127.0.0.1:${cluster.port}/audit`
      const connections = [
        {
          name: 'pg',
          type: 'postgres',
          upstream: { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'PG_APP_PASSWORD' }, tls: { mode: 'disable' } },
          access: { groups: ['eng'] },
        },
      ]
      const statements = async (): Promise<string[]> =>
        (await cluster.psql(`select string_agg(record::json->>'text', '|' order by id) from airlock_audit_events where type = 'statement.begin'`, 'audit')).split('|')
      const gateway = await startAuditGateway({ audit: { store, password: { file: passwordFile }, required: true }, connections, secrets: { PG_APP_PASSWORD: cluster.app.password } })
      const rotated = `rotated-${randomBytes(12).toString('hex')}`
      try {
        expect((await airlock(['exec', 'pg', '-i', 'select 1 as before_rotation'], { env: gateway.env('user'), timeoutMs: 60_000 })).code).toBe(0)
        await expect.poll(statements, { timeout: 10_000 }).toContain('select 1 as before_rotation')

        // Rotate: the role's password, then the file; the store's connections drop and come back.
        await cluster.psql(`alter role auditor password '${rotated}'`)
        writeFileSync(passwordFile, `${rotated}\n`)
        await cluster.psql(`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'airlock-audit'`)
        expect((await airlock(['exec', 'pg', '-i', 'select 2 as after_rotation'], { env: gateway.env('user'), timeoutMs: 60_000 })).code).toBe(0)
        await expect.poll(statements, { timeout: 20_000 }).toContain('select 2 as after_rotation')
      } finally {
        await gateway.stop()
      }

      // A wrong password: the store is unavailable, the reason says the login was refused, and
      // neither the wrong password nor the right one appears anywhere.
      const wrong = `wrong-${randomBytes(12).toString('hex')}`
      writeFileSync(passwordFile, `${wrong}\n`)
      const refused = await startAuditGateway({ audit: { store, password: { file: passwordFile }, required: true }, connections, secrets: { PG_APP_PASSWORD: cluster.app.password } })
      try {
        const health = async () => (await (await fetch(new URL('healthz', refused.url))).json()) as { audit: { store: string; error?: string } }
        await expect.poll(async () => (await health()).audit.store, { timeout: 20_000 }).toBe('unavailable')
        expect((await health()).audit.error).toMatch(/the server refused the login \(SQLSTATE 28P01\): check the role and audit.password/)
        const logs = refused.logs.join('')
        expect(logs).toContain('28P01')
        for (const secret of [first, rotated, wrong]) expect(logs).not.toContain(secret)
      } finally {
        await refused.stop()
      }
    } finally {
      await cluster.stop()
    }
  }, 120_000)
})
