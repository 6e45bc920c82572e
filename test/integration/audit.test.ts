/**
 * The audit log end to end, the same suite on both stores (SQLite, and PostgreSQL on the system
 * server in a fresh database): statements recorded with their verdicts and rules around real
 * guardrails, sessions with identity and bytes, secrets never recorded, the admin-only API and CLI
 * (list, show, tail, head, verify, export), admin actions and authentication failures recorded,
 * and tampering of each kind detected online (through the gateway) and offline (the store, an
 * export file). Sessions are refused when the store cannot be reached and audit is required.
 */
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GatewayClient } from '../../src/api/client.js'
import { staticCredentials } from '../../src/auth/index.js'
import {
  type AuditEvent,
  canonicalJson,
  columnsOf,
  formatHead,
  hashBody,
  openStore,
  parseExpectedHead,
  parseLine,
  parseStoreLocation,
  verifyExportFile,
  verifyLines,
  verifyStore,
  type VerifyReport,
} from '../../src/audit/index.js'
import { auditTempDir, bytesUnder, freshAuditDatabase, type InProcessAuditGateway, removeAuditTempDirs, startAuditGateway, storeAccess } from '../helpers/audit.js'
import { startPgCluster, type PgCluster } from '../helpers/pg-cluster.js'
import { airlock, spawnAirlock, type Spawned, transcript } from '../helpers/processes.js'

let cluster: PgCluster
const LITERAL_PASSWORD = 'Lit3ral-Secret-Value-9q'
const URL_PASSWORD = 'UrlPass-77zz'
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ'
const AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'

beforeAll(async () => {
  cluster = await startPgCluster({ ssl: false })
  await cluster.psql(
    `create table secret_stuff (id int); insert into secret_stuff values (1);
     alter table secret_stuff owner to app;
     create role helper login; grant helper to app with admin option; alter role app createrole;`,
    'app',
  )
}, 120_000)

afterAll(async () => {
  await cluster?.stop()
  removeAuditTempDirs()
  const all = transcript.join('')
  for (const secret of [cluster.app.password, LITERAL_PASSWORD, URL_PASSWORD, JWT, AWS_KEY]) expect(all).not.toContain(secret)
})

function connections(): Record<string, unknown>[] {
  const upstream = { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'PG_APP_PASSWORD' }, tls: { mode: 'disable' } }
  const rules = [{ id: 'no-secret-stuff', table: 'secret_stuff', message: 'secret_stuff needs a ticket' }]
  return [
    { name: 'pg', type: 'postgres', upstream, access: { groups: ['eng'] }, guardrails: { rules } },
    { name: 'pg-audit-only', type: 'postgres', upstream, access: { groups: ['eng'] }, guardrails: { mode: 'audit-only', rules } },
  ]
}

/** Waits until the gateway stored everything, then returns the matching events oldest first. */
async function events(client: GatewayClient, query: Parameters<GatewayClient['auditEvents']>[0] = {}): Promise<AuditEvent[]> {
  await client.auditHeads()
  const page = await client.auditEvents({ limit: 999, ...query })
  return [...page.events].reverse()
}

const field = (event: AuditEvent, name: string): unknown => (event as unknown as Record<string, unknown>)[name]

/** Runs statements one after another on one session through `airlock connect`; returns each one's rows or SQLSTATE. */
async function run(dsn: string, statements: (string | pg.QueryConfig)[]): Promise<({ rows: unknown[] } | { sqlstate: string })[]> {
  const client = new pg.Client({ connectionString: dsn })
  client.on('error', () => {})
  await client.connect()
  const results: ({ rows: unknown[] } | { sqlstate: string })[] = []
  try {
    for (const statement of statements) {
      try {
        results.push({ rows: (await client.query(statement)).rows })
      } catch (error) {
        results.push({ sqlstate: String((error as { code?: string }).code) })
      }
    }
  } finally {
    await client.end()
  }
  return results
}

/**
 * What an admin does with the audit log, the same assertions either way: through the real CLI
 * (the SQLite run) or the gateway API client and the offline verifiers the CLI uses (the
 * PostgreSQL run), so the suite stays fast while covering both.
 */
interface AdminSurface {
  list(query: Record<string, string>): Promise<{ events: AuditEvent[]; next: string | null }>
  /** The event, or the error code. */
  show(id: string): Promise<AuditEvent | { error: string }>
  anchors(): Promise<string[]>
  verify(options: { expect?: string[]; store?: string; file?: string }): Promise<VerifyReport>
  export(file: string): Promise<void>
  kill(session: string): Promise<void>
  tail(query: Record<string, string>, until: (event: AuditEvent) => boolean): { ready: Promise<void>; found: Promise<AuditEvent>; stop(): Promise<void> }
}

function cliSurface(gateway: InProcessAuditGateway): AdminSurface {
  const cli = async (args: string[]) => {
    const result = await airlock(args, { env: gateway.env('admin'), timeoutMs: 60_000 })
    const last = result.stdout.trim().split('\n').at(-1) ?? ''
    return { ...result, json: last.startsWith('{') ? JSON.parse(last) : undefined }
  }
  const flags = (query: Record<string, string>) => Object.entries(query).flatMap(([key, value]) => [`--${key}`, value])
  return {
    list: async (query) => (await cli(['audit', 'list', ...flags(query), '--json'])).json,
    show: async (id) => {
      const result = await cli(['audit', 'show', id, '--json'])
      return result.code === 0 ? result.json : { error: result.json.error.code }
    },
    anchors: async () => (await cli(['audit', 'head', '--json'])).json.heads.map((head: { anchor: string }) => head.anchor),
    verify: async ({ expect: heads = [], store, file }) => {
      const result = await cli(['audit', 'verify', ...(store ? ['--store', store] : []), ...(file ? ['--file', file] : []), ...heads.flatMap((head) => ['--expect-head', head]), '--json'])
      expect(result.code).toBe(result.json.ok ? 0 : 1)
      return result.json
    },
    export: async (file) => {
      expect((await cli(['audit', 'export', '--format', 'jsonl', '-o', file])).code).toBe(0)
    },
    kill: async (session) => {
      expect((await cli(['sessions', 'kill', session])).code).toBe(0)
    },
    tail: (query, until) => {
      const tail = spawnAirlock(['audit', 'tail', ...flags(query), '--json'], { env: gateway.env('admin') })
      return {
        // With --since the tail misses nothing however long the CLI takes to start.
        ready: Promise.resolve(),
        found: tail.waitFor<AuditEvent>((line) => typeof line === 'object' && until(line)),
        stop: async () => void (await tail.stop('SIGINT')),
      }
    },
  }
}

function clientSurface(client: GatewayClient): AdminSurface {
  return {
    list: (query) => client.auditEvents(query),
    show: (id) => client.auditEvent(id).catch((error: { code: string }) => ({ error: error.code })),
    anchors: async () => (await client.auditHeads()).map(formatHead),
    verify: async ({ expect: heads = [], store, file }) => {
      const expected = heads.map((head) => parseExpectedHead(head)!)
      if (file !== undefined) return verifyExportFile(file, expected)
      if (store === undefined) return client.auditVerify(heads)
      const opened = await openStore(parseStoreLocation(store), { readonly: true })
      try {
        return await verifyStore(opened, expected)
      } finally {
        await opened.close()
      }
    },
    export: async (file) => {
      await pipeline(Readable.fromWeb((await client.auditExport()) as never), createWriteStream(file))
    },
    kill: (session) => client.killSession(session),
    tail: (query, until) => {
      let stopped = false
      const { since: _since, ...filter } = query
      // A first call without a cursor says where "now" is; the tail follows from there.
      const start = client.auditTail({ ...filter, wait: '0s' })
      const ready = start.then(() => undefined)
      const found = (async () => {
        let { cursor } = await start
        while (!stopped) {
          const page = await client.auditTail({ ...filter, cursor, wait: '5s' })
          const hit = page.events.find(until)
          if (hit !== undefined) return hit
          cursor = page.cursor
        }
        throw new Error('tail stopped')
      })()
      return { ready, found, stop: async () => void (stopped = true) }
    },
  }
}

describe.each(['sqlite', 'postgres'] as const)('audit with the %s store', (kind) => {
  let gateway: InProcessAuditGateway
  let store: string
  let dropDatabase: (() => Promise<void>) | undefined
  let admin: GatewayClient
  let surface: AdminSurface
  const tunnels: Spawned[] = []
  const dsn: Record<string, string> = {}

  beforeAll(async () => {
    if (kind === 'sqlite') store = `sqlite:${join(auditTempDir('airlock-audit-'), 'audit.db')}`
    else {
      const database = await freshAuditDatabase()
      store = database.url
      dropDatabase = database.drop
    }
    gateway = await startAuditGateway({ audit: { store, required: true }, connections: connections(), secrets: { PG_APP_PASSWORD: cluster.app.password } })
    admin = new GatewayClient(staticCredentials(new URL(gateway.url), gateway.tokens.admin))
    surface = kind === 'sqlite' ? cliSurface(gateway) : clientSurface(admin)
    await Promise.all(
      ['pg', 'pg-audit-only'].map(async (name) => {
        const tunnel = spawnAirlock(['connect', name, '--json', '--no-local-secret'], { env: gateway.env('user') })
        tunnels.push(tunnel)
        dsn[name] = (await tunnel.waitFor<{ type: string; dsn: string }>((event) => event.type === 'ready')).dsn
      }),
    )
  }, 60_000)

  afterAll(async () => {
    await Promise.all(tunnels.map((tunnel) => tunnel.stop('SIGINT')))
    await gateway?.stop()
    const logs = gateway.logs.join('')
    for (const secret of [cluster.app.password, LITERAL_PASSWORD, URL_PASSWORD, JWT, AWS_KEY]) expect(logs).not.toContain(secret)
    await dropDatabase?.()
  })

  it('records every statement before it runs, with the verdict and rule, inside its session', async () => {
    expect(await run(dsn.pg!, ['select 42 as answer', 'select * from secret_stuff'])).toEqual([{ rows: [{ answer: 42 }] }, { sqlstate: '42501' }])
    expect(await run(dsn['pg-audit-only']!, ['select count(*)::int as n from secret_stuff'])).toEqual([{ rows: [{ n: 1 }] }])

    const all = await events(admin)
    const begins = all.filter((event) => event.type === 'statement.begin')
    const answer = begins.find((event) => field(event, 'text') === 'select 42 as answer')!
    expect(answer).toMatchObject({ verdict: 'allowed', connection: 'pg', identity: 'service:test-user', user: 'test-user', path: 'simple', sequence: 1 })
    const denied = begins.find((event) => field(event, 'connection') === 'pg' && field(event, 'text') === 'select * from secret_stuff')!
    expect(denied).toMatchObject({ verdict: 'blocked', rule: 'no-secret-stuff', message: 'secret_stuff needs a ticket', sequence: 2 })
    const audited = begins.find((event) => field(event, 'connection') === 'pg-audit-only')!
    expect(audited).toMatchObject({ verdict: 'flagged', rule: 'no-secret-stuff', text: 'select count(*)::int as n from secret_stuff' })

    // Each begin is followed (later in the chain) by its end, in the same session.
    const endOf = (begin: AuditEvent) =>
      all.find((event) => event.type === 'statement.end' && field(event, 'session') === field(begin, 'session') && field(event, 'sequence') === field(begin, 'sequence'))!
    expect(endOf(answer)).toMatchObject({ outcome: 'ok', rows: 1, command: 'SELECT 1', masked: {} })
    expect(endOf(answer).seq).toBeGreaterThan(answer.seq)
    expect(endOf(denied)).toMatchObject({ outcome: 'blocked', sqlstate: '42501' })
    expect(endOf(audited)).toMatchObject({ outcome: 'ok', rows: 1 })

    const session = field(answer, 'session')
    const start = all.find((event) => event.type === 'session.start' && field(event, 'session') === session)!
    expect(start).toMatchObject({
      connection: 'pg',
      identity: { kind: 'service', id: 'service:test-user', display: 'test-user', groups: ['eng'] },
      client: { address: '127.0.0.1', version: expect.any(String) },
    })
    expect(start.seq).toBeLessThan(answer.seq)
    await expect.poll(async () => (await events(admin, { session: String(session), type: 'session.end' })).length).toBe(1)
    const [end] = await events(admin, { session: String(session), type: 'session.end' })
    expect(end).toMatchObject({ identity: 'service:test-user', user: 'test-user', reason: { message: expect.any(String) } })
    expect((end as unknown as { bytes: { in: number; out: number } }).bytes.in).toBeGreaterThan(0)
    expect((end as unknown as { bytes: { in: number; out: number } }).bytes.out).toBeGreaterThan(0)
    expect(all.filter((event) => event.type === 'gateway.start')).toHaveLength(1)
  })

  it('never records a secret: the held credential in any encoding, password literals, tokens', async () => {
    const password = cluster.app.password
    const results = await run(dsn.pg!, [
      `alter role helper password '${LITERAL_PASSWORD}'`,
      `select length('${password}') + length('${Buffer.from(password).toString('base64')}') as n`,
      `select length('postgres://app:${URL_PASSWORD}@db.internal/app') + length('${JWT}') + length('${AWS_KEY}') as n`,
      // Extended protocol (Parse/Bind/Execute): a named statement, and a bind parameter that is the secret.
      { name: 'ext-secret', text: `alter role helper password '${LITERAL_PASSWORD}'` },
      { text: `select length($1::text) + length('${JWT}') as n`, values: [password] },
    ])
    // A DO block is blocked by the default guardrails; in audit-only mode it runs.
    results.push(...(await run(dsn['pg-audit-only']!, [`do $$ begin execute 'alter role helper password ''${LITERAL_PASSWORD}'''; end $$`])))
    expect(results, JSON.stringify(results)).toEqual(results.map(() => ({ rows: expect.any(Array) })))
    const begins = (await events(admin, { type: 'statement.begin' })).slice(-6)
    expect(begins.map((event) => field(event, 'text'))).toEqual([
      `alter role helper password '[REDACTED:secret-assignment]'`,
      `select length('[REDACTED:credential]') + length('[REDACTED:credential]') as n`,
      `select length('postgres://app:[REDACTED:dsn-password]@db.internal/app') + length('[REDACTED:jwt]') + length('[REDACTED:cloud-keys]') as n`,
      `alter role helper password '[REDACTED:secret-assignment]'`,
      `select length($1::text) + length('[REDACTED:jwt]') as n`,
      `do $$ begin execute 'alter role helper password ''[REDACTED:secret-assignment]'''; end $$`,
    ])
    expect(begins.map((event) => field(event, 'path'))).toEqual(['simple', 'simple', 'simple', 'extended', 'extended', 'simple'])
    expect(begins.map((event) => field(event, 'redacted'))).toEqual([
      ['secret-assignment'],
      ['credential'],
      ['dsn-password', 'jwt', 'cloud-keys'],
      ['secret-assignment'],
      ['jwt'],
      ['secret-assignment'],
    ])
    // Nowhere: not in the store, the journal, or an export.
    const secrets = [password, Buffer.from(password).toString('base64'), LITERAL_PASSWORD, URL_PASSWORD, JWT, AWS_KEY]
    const access = await storeAccess(store)
    const stored = (await access.rows()).map((row) => row.record).join('\n')
    await access.close()
    const onDisk = bytesUnder(gateway.dir) + (kind === 'sqlite' ? bytesUnder(join(store.slice('sqlite:'.length), '..')) : '')
    const exported = join(gateway.dir, 'secrets-check.jsonl')
    await surface.export(exported)
    for (const secret of secrets) {
      expect(stored).not.toContain(secret)
      expect(onDisk).not.toContain(secret)
      expect(readFileSync(exported, 'utf8')).not.toContain(secret)
    }
  })

  it('lists, shows, anchors, verifies and exports for admins', async () => {
    const page = await surface.list({ verdict: 'blocked', connection: 'pg' })
    expect(page.events.length).toBeGreaterThan(0)
    expect(page.events.every((event) => event.type === 'statement.begin' && field(event, 'verdict') === 'blocked')).toBe(true)
    // Filters and paging are the gateway's; the API client shows them for both stores.
    const byUser = await admin.auditEvents({ user: 'test-user', since: '1h', limit: 3 })
    expect(byUser.events).toHaveLength(3)
    expect(byUser.next).not.toBeNull()
    const older = await admin.auditEvents({ user: 'service:test-user', limit: 3, cursor: byUser.next! })
    expect(older.events[0]!.seq).toBeLessThan(byUser.events.at(-1)!.seq)
    await expect(admin.auditEvent(`${page.events[0]!.id.split(':')[0]}:999999`)).rejects.toMatchObject({ code: 'usage' })
    await expect(admin.auditEvents({ verdict: 'maybe' })).rejects.toMatchObject({ code: 'usage' })

    expect(await surface.show(page.events[0]!.id)).toMatchObject({ id: page.events[0]!.id, rule: 'no-secret-stuff' })

    const anchors = await surface.anchors()
    expect(anchors).toHaveLength(1)
    expect(await surface.verify({ expect: anchors })).toMatchObject({ ok: true, missingHeads: [] })

    const file = join(gateway.dir, 'export.jsonl')
    await surface.export(file)
    const lines = readFileSync(file, 'utf8').trim().split('\n')
    expect(lines.some((line) => parseLine(line)?.record.type === 'admin.export')).toBe(true)
    expect(await surface.verify({ file, expect: anchors })).toMatchObject({ ok: true })
  })

  it('refuses the audit API to anyone but admins, and records authentication failures', async () => {
    if (kind === 'sqlite') {
      const result = await airlock(['audit', 'list', '--json'], { env: gateway.env('user') })
      expect(result.code).toBe(5)
      expect(JSON.parse(result.stdout).error.code).toBe('forbidden')
    }
    const routes = ['events', 'events/0123456789abcdef:1', 'tail?wait=0s', 'verify', 'head', 'export?format=jsonl']
    for (const route of routes) {
      for (const who of ['user', 'outsider'] as const) {
        const refused = await fetch(new URL(`v1/audit/${route}`, gateway.url), { headers: { authorization: `Bearer ${gateway.tokens[who]}` } })
        expect(refused.status).toBe(403)
        expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('forbidden')
      }
      const anonymous = await fetch(new URL(`v1/audit/${route}`, gateway.url))
      expect(anonymous.status).toBe(401)
    }
    const bad = await fetch(new URL('v1/audit/events?user=x', gateway.url), { headers: { authorization: 'Bearer alk_not-a-real-token' } })
    expect(bad.status).toBe(401)
    const failures = await events(admin, { type: 'auth.failure' })
    expect(failures.length).toBeGreaterThanOrEqual(routes.length + 1)
    expect(failures.at(-1)).toMatchObject({ client: { address: '127.0.0.1' }, path: '/v1/audit/events', code: 'unauthenticated' })
    expect(JSON.stringify(failures)).not.toContain('alk_not-a-real-token')
  })

  it('follows new events with tail, and records an admin kill with the session it ended', async () => {
    const tail = surface.tail({ connection: 'pg', since: '10m' }, (event) => event.type === 'statement.begin' && field(event, 'text') === "select 'tail-marker'")
    try {
      await tail.ready
      const client = new pg.Client({ connectionString: dsn.pg! })
      client.on('error', () => {})
      await client.connect()
      await client.query("select 'tail-marker'")
      const seen = await tail.found
      const [session] = (await admin.sessions()).filter((each) => each.connection === 'pg')
      expect(session?.id).toBe(field(seen, 'session'))
      await surface.kill(session!.id)
      await client.query('select 1').catch(() => undefined)
      await client.end().catch(() => undefined)
      const kill = (await events(admin, { type: 'admin.kill' })).at(-1)!
      expect(kill).toMatchObject({ session: session!.id, identity: 'service:test-admin', user: 'test-admin', killed: true })
      await expect.poll(async () => (await events(admin, { session: session!.id, type: 'session.end' })).length).toBe(1)
      const [end] = await events(admin, { session: session!.id, type: 'session.end' })
      expect(end).toMatchObject({ reason: { code: 'forbidden', message: expect.stringContaining('test-admin') } })
      expect(end!.seq).toBeGreaterThan(kill.seq)
    } finally {
      await tail.stop()
    }
  })

  it('reports the first broken link for each kind of tampering, online and offline', async () => {
    await run(dsn.pg!, ['select 1; select 2; select 3'])
    const [head] = await admin.auditHeads()
    const anchor = formatHead(head!)
    const access = await storeAccess(store)
    const { table } = access
    const exportFile = join(gateway.dir, 'tamper.jsonl')
    await surface.export(exportFile)
    const lines = readFileSync(exportFile, 'utf8').trim().split('\n')
    // The export was recorded after the anchor: a record past it to work on.
    const rows = (await access.rows()).filter((row) => row.chain === head!.chain)
    const k = Math.floor(rows.length / 2)
    const target = rows[k - 1]!
    const next = rows[k]!
    const chain = head!.chain
    const sql = (text: string): string => (kind === 'sqlite' ? text.replace(/\$\d+/g, '?') : text)
    const swap = async (a: number, b: number): Promise<void> => {
      await access.exec(sql(`UPDATE ${table} SET seq = -1 WHERE chain = $1 AND seq = $2`), [chain, a])
      await access.exec(sql(`UPDATE ${table} SET seq = $1 WHERE chain = $2 AND seq = $3`), [a, chain, b])
      await access.exec(sql(`UPDATE ${table} SET seq = $1 WHERE chain = $2 AND seq = -1`), [b, chain])
    }
    /** Moves rows aside (deleting them from the log) and back. */
    const stash = async (from: number, to: number): Promise<void> => {
      // Inlined: utility statements take no parameters (chain is hex, from/to are integers).
      const where = `chain = '${chain}' AND seq BETWEEN ${from} AND ${to}`
      await access.exec(`CREATE TABLE stash AS SELECT * FROM ${table} WHERE ${where}`)
      await access.exec(`DELETE FROM ${table} WHERE ${where}`)
    }
    const unstash = async (): Promise<void> => {
      await access.exec(`INSERT INTO ${table} SELECT * FROM stash`)
      await access.exec('DROP TABLE stash')
    }
    const forged = (() => {
      const parsed = parseLine(lines.find((line) => parseLine(line)?.record.seq === target.seq && parseLine(line)?.record.chain === chain)!)!
      const record = { ...parsed.record, text: 'select harmless' }
      const body = canonicalJson(record)
      return { body, hash: hashBody(body), columns: columnsOf(record) }
    })()
    /**
     * Inserts the forged record, chained to the record before the target, at the target's position:
     * the rows from there on move up one (their seq column only; negated first, since the unique
     * (chain, seq) index is checked row by row).
     */
    const shiftFrom = async (seq: number, by: 1 | -1): Promise<void> => {
      await access.exec(sql(`UPDATE ${table} SET seq = -(seq + $1) WHERE chain = $2 AND seq >= $3`), [by, chain, seq])
      await access.exec(sql(`UPDATE ${table} SET seq = -seq WHERE chain = $1 AND seq < 0`), [chain])
    }
    const insertForged = async (): Promise<void> => {
      await shiftFrom(target.seq, 1)
      const c = forged.columns
      await access.exec(
        sql(`INSERT INTO ${table} (chain, seq, time, type, session, identity, "user", connection, verdict, record, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`),
        [c.chain, c.seq, c.time, c.type, c.session, c.identity, c.user, c.connection, c.verdict, forged.body, forged.hash],
      )
    }
    const removeForged = async (): Promise<void> => {
      await access.exec(sql(`DELETE FROM ${table} WHERE chain = $1 AND seq = $2`), [chain, target.seq])
      await shiftFrom(target.seq + 1, -1)
    }

    interface Case {
      name: string
      tamper(): Promise<void>
      undo(): Promise<void>
      file(lines: string[]): string[]
      seq: number
      expectHead?: boolean
    }
    const cases: Case[] = [
      {
        name: 'edited body',
        tamper: () => access.exec(sql(`UPDATE ${table} SET record = replace(record, '"seq":${target.seq}', '"seq":${target.seq} ') WHERE chain = $1 AND seq = $2`), [chain, target.seq]),
        undo: () => access.exec(sql(`UPDATE ${table} SET record = $1 WHERE chain = $2 AND seq = $3`), [target.record, chain, target.seq]),
        file: (all) => all.map((line) => (parseLine(line)?.record.seq === target.seq && parseLine(line)?.record.chain === chain ? line.replace('"v":1', '"v":2') : line)),
        seq: target.seq,
      },
      {
        name: 'edited and re-hashed body',
        tamper: () => access.exec(sql(`UPDATE ${table} SET record = $1, hash = $2 WHERE chain = $3 AND seq = $4`), [forged.body, forged.hash, chain, target.seq]),
        undo: () => access.exec(sql(`UPDATE ${table} SET record = $1, hash = $2 WHERE chain = $3 AND seq = $4`), [target.record, target.hash, chain, target.seq]),
        file: (all) => all.map((line) => (parseLine(line)?.record.seq === target.seq && parseLine(line)?.record.chain === chain ? `{"hash":"${forged.hash}",${forged.body.slice(1)}` : line)),
        seq: next.seq,
      },
      {
        name: 'edited filter column',
        tamper: () => access.exec(sql(`UPDATE ${table} SET type = 'gateway.stop' WHERE chain = $1 AND seq = $2`), [chain, target.seq]),
        undo: () => access.exec(sql(`UPDATE ${table} SET type = $1 WHERE chain = $2 AND seq = $3`), [target.type, chain, target.seq]),
        file: (all) => all,
        seq: target.seq,
      },
      {
        name: 'deleted',
        tamper: () => stash(target.seq, target.seq),
        undo: unstash,
        file: (all) => all.filter((line) => !(parseLine(line)?.record.seq === target.seq && parseLine(line)?.record.chain === chain)),
        seq: target.seq,
      },
      {
        name: 'reordered',
        tamper: () => swap(target.seq, next.seq),
        undo: () => swap(target.seq, next.seq),
        file: (all) => {
          const copy = [...all]
          const a = copy.findIndex((line) => parseLine(line)?.record.seq === target.seq && parseLine(line)?.record.chain === chain)
          ;[copy[a], copy[a + 1]] = [copy[a + 1]!, copy[a]!]
          return copy
        },
        seq: target.seq,
      },
      {
        // A well-formed record, correctly chained to the one before, slipped in: it verifies, the
        // record it displaced does not.
        name: 'inserted',
        tamper: insertForged,
        undo: removeForged,
        file: (all) =>
          all.flatMap((line) => (parseLine(line)?.record.seq === target.seq && parseLine(line)?.record.chain === chain ? [`{"hash":"${forged.hash}",${forged.body.slice(1)}`, line] : [line])),
        seq: target.seq + 1,
      },
      {
        name: 'truncated at the tail',
        tamper: () => stash(head!.seq, Number.MAX_SAFE_INTEGER),
        undo: unstash,
        file: (all) => all.filter((line) => !(parseLine(line)!.record.seq >= head!.seq && parseLine(line)?.record.chain === chain)),
        seq: head!.seq,
        expectHead: true,
      },
    ]
    const offlineStore = await openStore(parseStoreLocation(store), { readonly: true })
    try {
      for (const each of cases) {
        await each.tamper()
        try {
          const expect_ = each.expectHead ? [anchor] : []
          const online = await admin.auditVerify(expect_)
          const offline = await verifyStore(offlineStore, each.expectHead ? [head!] : [])
          for (const report of [online, offline]) {
            expect(report.ok, `${each.name}: ${JSON.stringify(report)}`).toBe(false)
            const mine = report.chains.find((c) => c.chain === chain)!
            if (each.expectHead) expect(report.missingHeads).toHaveLength(1)
            else expect(mine.broken?.seq, `${each.name}: ${JSON.stringify(mine)}`).toBe(each.seq)
          }
          if (each.name !== 'edited filter column') {
            const fromFile = await verifyLines(each.file(lines), each.expectHead ? [head!] : [])
            expect(fromFile.ok, `${each.name} (file)`).toBe(false)
            if (!each.expectHead) expect(fromFile.chains.find((c) => c.chain === chain)?.broken?.seq, `${each.name} (file)`).toBe(each.seq)
          }
          if (each.name === 'reordered') {
            // The admin's way (the CLI in the SQLite run), online and offline.
            const tamperedFile = join(gateway.dir, 'tampered.jsonl')
            writeFileSync(tamperedFile, `${each.file(lines).join('\n')}\n`)
            for (const where of [{}, { store }, { file: tamperedFile }]) {
              const report = await surface.verify(where)
              expect(report.ok).toBe(false)
              expect(report.chains.find((c) => c.chain === chain)?.broken?.seq).toBe(target.seq)
            }
          }
        } finally {
          await each.undo()
        }
      }
      expect((await verifyStore(offlineStore, [head!])).ok).toBe(true)
      expect((await admin.auditVerify([anchor])).ok).toBe(true)
    } finally {
      await offlineStore.close()
      await access.close()
    }
  })
})

describe('audit.required', () => {
  const upstream = () => ({ host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'PG_APP_PASSWORD' }, tls: { mode: 'disable' } })
  const unreachable = 'postgres://postgres@127.0.0.1:1/airlock'

  it('refuses new sessions with exit 7 while the store cannot be reached, rather than run them unaudited', async () => {
    const gateway = await startAuditGateway({
      audit: { store: unreachable, required: true },
      connections: [{ name: 'pg', type: 'postgres', upstream: upstream(), access: { groups: ['eng'] } }],
      secrets: { PG_APP_PASSWORD: cluster.app.password },
    })
    try {
      const result = await airlock(['exec', 'pg', '-i', 'select 1', '--json'], { env: gateway.env('user') })
      expect(result.code).toBe(7)
      expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!).error).toMatchObject({ code: 'upstream-unavailable', message: expect.stringContaining('audit') })
      const health = await fetch(new URL('healthz', gateway.url))
      expect(health.status).toBe(503)
      expect(await health.json()).toMatchObject({ ok: false, audit: { store: 'unavailable' } })
    } finally {
      await gateway.stop()
    }
  })

  it('lets sessions run when audit is not required, journaling what it cannot store', async () => {
    const gateway = await startAuditGateway({
      audit: { store: unreachable, required: false },
      connections: [{ name: 'pg', type: 'postgres', upstream: upstream(), access: { groups: ['eng'] } }],
      secrets: { PG_APP_PASSWORD: cluster.app.password },
    })
    try {
      const result = await airlock(['exec', 'pg', '-i', "select 'unstored'"], { env: gateway.env('user') })
      expect(result.code).toBe(0)
      expect(bytesUnder(join(gateway.dir, 'journal'))).toContain("select 'unstored'")
    } finally {
      await gateway.stop()
    }
  })

  it('refuses to start when the journal cannot be written', async () => {
    const file = join(auditTempDir('airlock-audit-'), 'not-a-directory')
    writeFileSync(file, '')
    await expect(
      startAuditGateway({ audit: { store: `sqlite:${file}/audit.db`, required: true }, connections: [] }),
    ).rejects.toMatchObject({ code: 'config' })
  })
})

describe('authentication failures', () => {
  it('records the first ten per address one by one and counts the rest into a summary, so they cannot fill the disk', async () => {
    const store = `sqlite:${join(auditTempDir('airlock-audit-'), 'audit.db')}`
    const gateway = await startAuditGateway({ audit: { store, required: true }, connections: [] })
    try {
      for (let i = 0; i < 40; i++) {
        const refused = await fetch(new URL('v1/connections', gateway.url), { headers: { authorization: `Bearer alk_flood-${i}` } })
        expect(refused.status).toBe(401)
      }
    } finally {
      // Closing the log ends the window: its summary is written before gateway.stop.
      await gateway.stop()
    }
    const access = await storeAccess(store)
    const rows = await access.rows()
    await access.close()
    const records = rows.map((row) => JSON.parse(row.record) as Record<string, unknown>)
    const failures = records.filter((record) => record.type === 'auth.failure')
    const summaries = records.filter((record) => record.type === 'auth.failure.summary')
    // Forty requests in well under a minute: one window, unless the run straddled its end.
    expect(failures.length + summaries.reduce((sum, summary) => sum + Number(summary.count), 0)).toBe(40)
    expect(failures.length).toBeLessThanOrEqual(20)
    expect(summaries.length).toBeGreaterThanOrEqual(1)
    expect(summaries.at(-1)).toMatchObject({ clients: [{ address: '127.0.0.1', count: expect.any(Number) }], otherClients: 0 })
    expect(rows.at(-1)?.type).toBe('gateway.stop')
    expect(JSON.stringify(records)).not.toContain('alk_flood')
  })
})
