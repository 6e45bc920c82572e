/**
 * The Postgres engine end to end: a throwaway cluster with SCRAM and TLS, an in-process gateway
 * holding the app password, the real CLI (`airlock connect`) and real clients (psql, pgbench,
 * node-postgres, raw pipelined protocol). A test-only policy blocks statements that start with
 * `SELECT airlock_test_blocked`. The upstream password is random and must appear in nothing any client
 * or log sees.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatementContext, StatementHooks, StatementSummary } from '../../src/protocols/hooks.js'
import {
  getField,
  parseErrorFields,
  parseNegotiateProtocolVersion,
  parseReadyForQuery,
  serializeBind,
  serializeExecute,
  serializeParse,
  serializePassword,
  serializeQuery,
  serializeStartup,
  serializeSync,
} from '../../src/protocols/postgres/messages.js'
import { ErrorField, PROTOCOL_3_0, PROTOCOL_3_2 } from '../../src/protocols/postgres/protocol.js'
import { startInProcessGateway, type InProcessGateway } from '../helpers/inprocess-gateway.js'
import { appUpstream, pgBinary, startPgCluster, type PgCluster } from '../helpers/pg-cluster.js'
import { readUntil } from '../helpers/pg-wire.js'
import { airlock, spawnAirlock, type Spawned, transcript } from '../helpers/processes.js'

let cluster: PgCluster
let gateway: InProcessGateway
let tunnel: Spawned
let port: number
let dsn: string
const received: Buffer[] = []
const ended: { context: StatementContext; summary: StatementSummary }[] = []

const testPolicy = (): StatementHooks => ({
  begin: (context) =>
    // Anchored, so the test also proves where statement boundaries fall.
    /^\s*select\s+airlock_test_blocked\b/i.test(context.text)
      ? { verdict: { allow: false, rule: 'test-rule', message: 'the test policy blocks this', hint: 'it is only a test' } }
      : /airlock_test_async/i.test(context.text)
        ? new Promise((resolve) => setTimeout(() => resolve({ verdict: { allow: true } }), 20))
        : { verdict: { allow: true } },
  end: (context, summary) => {
    ended.push({ context, summary })
  },
})

beforeAll(async () => {
  cluster = await startPgCluster({ auth: 'scram-sha-256', ssl: true })
  // The blocked function exists and writes, so a block that failed to hold would leave a trace.
  await cluster.psql(
    `create table ledger (id int primary key, amount int not null); insert into ledger values (1, 100), (2, 100);
     create table side_effects (at timestamptz default now());
     create function airlock_test_blocked(n int default 0) returns int language sql as 'insert into side_effects default values returning 1';
     alter table ledger owner to app; alter table side_effects owner to app; alter function airlock_test_blocked(int) owner to app;`,
    'app',
  )
  gateway = await startInProcessGateway({
    secrets: { PG_APP_PASSWORD: cluster.app.password, WRONG: 'not-the-password' },
    hooks: testPolicy,
    connections: [
      {
        name: 'pg',
        type: 'postgres',
        upstream: appUpstream(cluster),
        access: { groups: ['eng'] },
      },
      {
        name: 'pg-wrong-password',
        type: 'postgres',
        upstream: { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'WRONG' }, tls: { mode: 'require' } },
        access: { groups: ['eng'] },
      },
      {
        name: 'pg-down',
        type: 'postgres',
        upstream: { host: '127.0.0.1', port: 1, database: 'app', user: 'app', password: { env: 'WRONG' }, tls: { mode: 'disable' } },
        access: { groups: ['eng'] },
      },
    ],
  })
  tunnel = spawnAirlock(['connect', 'pg', '--json'], { env: gateway.env('user') })
  const ready = await tunnel.waitFor<{ type: string; port: number; dsn: string }>((event) => event.type === 'ready')
  port = ready.port
  dsn = ready.dsn
}, 60_000)

afterAll(async () => {
  // No blocked statement ever ran.
  expect(await cluster.psql('select count(*) from side_effects', 'app')).toBe('0')
  await tunnel?.stop('SIGINT')
  await gateway?.stop()
  await cluster?.stop()
  const password = cluster.app.password
  expect(transcript.join('')).not.toContain(password)
  expect(gateway.logs.join('')).not.toContain(password)
  expect(Buffer.concat(received).includes(password)).toBe(false)
  for (const token of Object.values(gateway.tokens)) expect(transcript.join('')).not.toContain(token)
})

/** Runs a PostgreSQL client binary against the tunnel (libpq env from the DSN). */
async function client(binary: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const url = new URL(dsn)
  const child = spawn(pgBinary(binary), args, {
    env: { ...process.env, PGHOST: url.hostname, PGPORT: url.port, PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: decodeURIComponent(url.password), PGSSLMODE: 'disable' },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => {
    received.push(chunk)
    stdout += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    received.push(chunk)
    stderr += chunk.toString()
  })
  child.stdin.end(input ?? '')
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

const psql = (sql: string) => client('psql', ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=0'], sql)

describe('psql through airlock connect', () => {
  it('reaches the server over TLS as the held user, with the session named after the identity', async () => {
    const result = await psql("select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid()), current_setting('application_name');")
    expect(result.stderr).toBe('')
    const [user, ssl, applicationName] = result.stdout.trim().split('|')
    expect(user).toBe('app')
    expect(ssl).toBe('t')
    expect(applicationName).toMatch(/^airlock\/test-user\/ses_/)
  })

  it('runs `connect -- psql` with PG* set and the local secret as PGPASSWORD', async () => {
    const result = await airlock(['connect', 'pg', '--', pgBinary('psql'), '-X', '-tAc', 'select 6 * 7'], { env: gateway.env('user') })
    expect(result.stdout.trim()).toBe('42')
    expect(result.code).toBe(0)
  })

  it('refuses startup options that would change the session behind the gateway (PGOPTIONS)', async () => {
    const url = new URL(dsn)
    const child = spawn(pgBinary('psql'), ['-X', '-tAc', 'select 1'], {
      env: { ...process.env, PGHOST: url.hostname, PGPORT: url.port, PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: decodeURIComponent(url.password), PGSSLMODE: 'disable', PGOPTIONS: '-c role=postgres' },
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const [code] = await once(child, 'exit')
    expect(code).toBe(2)
    expect(stderr).toMatch(/startup parameter "options" is not allowed through Airlock/)
    expect(stderr).toMatch(/HINT:.*PGOPTIONS/)
  })

  it('refuses a wrong local secret with 28000 and a hint', async () => {
    const url = new URL(dsn)
    const child = spawn(pgBinary('psql'), ['-X', '-tAc', 'select 1'], {
      env: { ...process.env, PGHOST: url.hostname, PGPORT: url.port, PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: 'wrong', PGSSLMODE: 'disable' },
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const [code] = await once(child, 'exit')
    expect(code).toBe(2)
    expect(stderr).toMatch(/password authentication failed for the local airlock tunnel/)
  })

  it('blocks a statement inside a transaction exactly as a server error would: nothing is committed', async () => {
    const script = [
      'BEGIN;',
      'UPDATE ledger SET amount = amount - 10 WHERE id = 1;',
      'SELECT airlock_test_blocked();',
      'UPDATE ledger SET amount = amount + 10 WHERE id = 2;',
      'COMMIT;',
      'SELECT id, amount FROM ledger ORDER BY id;',
    ].join('\n')
    const result = await psql(script)
    expect(result.stderr).toMatch(/blocked by airlock guardrail test-rule: the test policy blocks this/)
    expect(result.stderr).toMatch(/current transaction is aborted/)
    expect(result.stdout.trim().split('\n').slice(-2)).toEqual(['1|100', '2|100'])
    const blocked = ended.find((entry) => /airlock_test_blocked/.test(entry.context.text))
    expect(blocked?.summary).toMatchObject({ outcome: 'blocked', sqlstate: '42501' })
  })

  it('blocks a whole multi-statement Query when one statement is denied, and the session goes on', async () => {
    // psql -c sends the string as one Query (psql itself splits scripts at semicolons).
    const result = await client('psql', ['-X', '-tA', '-c', 'UPDATE ledger SET amount = 0 WHERE id = 1; SELECT airlock_test_blocked()'])
    expect(result.stderr).toMatch(/airlock guardrail test-rule/)
    expect((await psql('SELECT amount FROM ledger WHERE id = 1;')).stdout.trim()).toBe('100')
  })

  it('gives every statement of a multi-statement Query its own begin and end', async () => {
    const before = ended.length
    const result = await psql('SELECT 1 AS airlock_multi_a; SELECT 2 AS airlock_multi_b UNION ALL SELECT 3;')
    expect(result.stdout.trim().split('\n')).toEqual(['1', '2', '3'])
    const mine = ended.slice(before).filter((entry) => /airlock_multi/.test(entry.context.text))
    expect(mine.map((entry) => [entry.summary.outcome, entry.summary.rows, entry.summary.command])).toEqual([
      ['ok', 1, 'SELECT 1'],
      ['ok', 2, 'SELECT 2'],
    ])
    expect(mine[1]!.context.sequence).toBe(mine[0]!.context.sequence + 1)
  })

  it('counts every row of a result that spans many reads (whole rows pass in runs)', async () => {
    const before = ended.length
    const result = await psql('SELECT g AS airlock_many FROM generate_series(1, 50000) g;')
    const values = result.stdout.trim().split('\n').map(Number)
    expect(values.length).toBe(50_000)
    expect(values.reduce((sum, value) => sum + value, 0)).toBe((50_000 * 50_001) / 2)
    const mine = ended.slice(before).filter((entry) => /airlock_many/.test(entry.context.text))
    expect(mine.map((entry) => [entry.summary.outcome, entry.summary.rows, entry.summary.command])).toEqual([['ok', 50_000, 'SELECT 50000']])
  })

  it('holds later messages while a hook answers asynchronously, keeping order', async () => {
    const result = await psql("SELECT 'airlock_test_async'; SELECT 'after';")
    expect(result.stdout.trim().split('\n')).toEqual(['airlock_test_async', 'after'])
  })

  it('copies in and out', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => `${i}\tvalue-${i}`).join('\n') + '\n'
    const result = await psql(`CREATE TEMP TABLE copied (id int, v text);\n\\copy copied from stdin\n${rows}\\.\nSELECT count(*), sum(id) FROM copied;\n\\copy copied to stdout\n`)
    expect(result.stderr).toBe('')
    const lines = result.stdout.split('\n')
    expect(lines[0]).toBe(`20000|${(19_999 * 20_000) / 2}`)
    expect(lines.slice(1, -1).join('\n') + '\n').toBe(rows)
  })

  it('cancels a running pg_sleep when psql is interrupted', async () => {
    const url = new URL(dsn)
    const child = spawn(pgBinary('psql'), ['-X', '-tAc', 'select pg_sleep(30)'], {
      env: { ...process.env, PGHOST: url.hostname, PGPORT: url.port, PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: decodeURIComponent(url.password), PGSSLMODE: 'disable' },
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    await waitUntil(async () => (await cluster.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'")) === '1')
    const started = Date.now()
    child.kill('SIGINT')
    await once(child, 'exit')
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(stderr).toMatch(/canceling statement due to user request/)
  })
})

describe('pgbench through airlock connect', () => {
  beforeAll(async () => {
    const init = await client('pgbench', ['-i', '-s', '1', '-q'])
    expect(init.code).toBe(0)
  }, 120_000)

  it.each([
    ['select-only, simple', ['-S', '-c', '4', '-j', '2', '-T', '3']],
    ['TPC-B-like, simple', ['-c', '4', '-j', '2', '-T', '3']],
    ['TPC-B-like, prepared', ['-M', 'prepared', '-c', '4', '-j', '2', '-T', '3']],
    ['TPC-B-like, extended', ['-M', 'extended', '-c', '4', '-j', '2', '-T', '3']],
  ])('%s keeps the balance invariants', async (_name, args) => {
    const result = await client('pgbench', ['-n', ...args])
    expect(result.stderr).not.toMatch(/error|abort/i)
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/number of failed transactions: 0/)
    const sums = await cluster.psql(
      'select (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), (select sum(tbalance) from pgbench_tellers), (select coalesce(sum(delta), 0) from pgbench_history)',
      'app',
    )
    const [accounts, branches, tellers, history] = sums.split('|')
    expect(accounts).toBe(branches)
    expect(tellers).toBe(branches)
    expect(history).toBe(branches)
  }, 60_000)
})

describe('node-postgres through airlock connect', () => {
  const connectClient = async (): Promise<pg.Client> => {
    const url = new URL(dsn)
    const db = new pg.Client({ host: url.hostname, port: Number(url.port), user: 'app', database: 'app', password: decodeURIComponent(url.password) })
    await db.connect()
    return db
  }

  it('runs simple and parameterised queries', async () => {
    const db = await connectClient()
    try {
      expect((await db.query('select 1 as one')).rows).toEqual([{ one: 1 }])
      expect((await db.query('select $1::int + $2::int as sum, $3::text as t', [2, 3, 'é'])).rows).toEqual([{ sum: 5, t: 'é' }])
      const named = { name: 'airlock-named', text: 'select $1::int * 2 as doubled', values: [21] }
      expect((await db.query(named)).rows).toEqual([{ doubled: 42 }])
      expect((await db.query({ ...named, values: [4] })).rows).toEqual([{ doubled: 8 }])
    } finally {
      await db.end()
    }
  })

  it('reports a blocked parameterised query as 42501 from airlock_guardrail and stays usable', async () => {
    const db = await connectClient()
    try {
      await expect(db.query('select airlock_test_blocked($1)', [1])).rejects.toMatchObject({ code: '42501', routine: 'airlock_guardrail' })
      expect((await db.query('select 2 as two')).rows).toEqual([{ two: 2 }])
    } finally {
      await db.end()
    }
  })

  it('delivers LISTEN/NOTIFY', async () => {
    const listener = await connectClient()
    const notifier = await connectClient()
    try {
      await listener.query('listen airlock_channel')
      const notified = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve))
      await notifier.query("select pg_notify('airlock_channel', 'hello')")
      expect(await notified).toMatchObject({ channel: 'airlock_channel', payload: 'hello' })
    } finally {
      await Promise.all([listener.end(), notifier.end()])
    }
  })
})

describe('a pipelined extended-protocol batch', () => {
  it('blocks the middle statement, skips the rest until Sync, rolls back the implicit transaction, and the session goes on', async () => {
    const socket = await rawSession()
    const batch = (sql: string) => [serializeParse({ name: '', query: sql }), serializeBind({ portal: '', statement: '' }), serializeExecute({ portal: '' })]
    socket.write(
      Buffer.concat([
        ...batch('UPDATE ledger SET amount = amount - 10 WHERE id = 1'),
        ...batch('SELECT airlock_test_blocked()'),
        ...batch('UPDATE ledger SET amount = amount + 10 WHERE id = 2'),
        serializeSync(),
        ...batch('SELECT amount FROM ledger WHERE id = 1'),
        serializeSync(),
      ]),
    )
    const messages = await readUntilReady(socket, 2)
    const types = messages.map((frame) => String.fromCharCode(frame.type)).join('')
    // Parse, Bind, CommandComplete; Parse, Bind, Error (for the Execute); skipped; Ready; the check query.
    expect(types).toBe('12C12EZ12DCZ')
    const error = parseErrorFields(messages[5]!.body)
    expect(getField(error, ErrorField.Code)).toBe('42501')
    expect(getField(error, ErrorField.Routine)).toBe('airlock_guardrail')
    expect(parseReadyForQuery(messages[6]!.body)).toBe('I')
    expect(messages[9]!.body.subarray(6).toString()).toBe('100')
    socket.destroy()
  })
})

describe('what a hostile client tries', () => {
  it('cannot run a denied prepared statement by re-preparing its name with harmless text', async () => {
    const socket = await rawSession()
    socket.write(Buffer.concat([serializeParse({ name: 's1', query: 'SELECT airlock_test_blocked()' }), serializeSync()]))
    await readUntilReady(socket, 1)
    // The server refuses this (42P05: s1 exists) and keeps the first text.
    socket.write(Buffer.concat([serializeParse({ name: 's1', query: 'SELECT 1' }), serializeSync()]))
    const refused = await readUntilReady(socket, 1)
    expect(getField(parseErrorFields(refused[0]!.body), ErrorField.Code)).toBe('42P05')
    socket.write(Buffer.concat([serializeBind({ portal: '', statement: 's1' }), serializeExecute({ portal: '' }), serializeSync()]))
    const executed = await readUntilReady(socket, 1)
    const error = executed.find((frame) => frame.type === 0x45 /* E */)
    expect(getField(parseErrorFields(error!.body), ErrorField.Routine)).toBe('airlock_guardrail')
    socket.destroy()
  })

  it('cannot hide a statement from the splitter with standard_conforming_strings = off', async () => {
    const socket = await rawSession()
    socket.write(serializeQuery('SET standard_conforming_strings = off'))
    await readUntilReady(socket, 1)
    // With backslash escapes, the server sees two statements here; a splitter that assumed "on" would see one.
    socket.write(serializeQuery("SELECT 'a\\''; SELECT airlock_test_blocked(); -- '"))
    const frames = await readUntilReady(socket, 1)
    const error = frames.find((frame) => frame.type === 0x45 /* E */)
    expect(getField(parseErrorFields(error!.body), ErrorField.Routine)).toBe('airlock_guardrail')
    socket.destroy()
  })

  it('gets a FATAL for a malformed message queued behind an asynchronous check, and the gateway lives on', async () => {
    const socket = await rawSession()
    const garbage = Buffer.from([0x7a /* z: no such frontend message */, 0, 0, 0, 4])
    socket.write(Buffer.concat([serializeQuery("SELECT 'airlock_test_async'"), garbage]))
    const frames = await readUntil(socket, (frame) => frame.type === 0x45 && /FATAL/.test(frame.body.toString('latin1'))).catch(() => [])
    expect(frames.length).toBeGreaterThan(0)
    expect((await psql('select 1')).stdout.trim()).toBe('1')
    socket.destroy()
  })
})

describe('protocol negotiation', () => {
  it('answers protocol 3.2 and _pq_ options with NegotiateProtocolVersion 3.0, then carries on', async () => {
    const socket = tcpConnect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    socket.write(serializeStartup({ user: 'app', database: 'app', '_pq_.airlock_test': '1' }, PROTOCOL_3_2))
    const frames = await readUntil(socket, (frame) => frame.type === 0x52 /* R */)
    expect(frames.map((frame) => String.fromCharCode(frame.type)).join('')).toBe('vR')
    expect(parseNegotiateProtocolVersion(frames[0]!.body)).toMatchObject({ newestVersion: PROTOCOL_3_0, unrecognized: ['_pq_.airlock_test'] })
    socket.write(serializePassword(decodeURIComponent(new URL(dsn).password)))
    await readUntilReady(socket, 1)
    socket.destroy()
  })
})

describe('bad clients and broken upstreams', () => {
  it.each([
    ['a garbage startup packet', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['an oversize startup length', Buffer.from([0x00, 0x10, 0x00, 0x00, 0, 3, 0, 0])],
    ['a too-short startup length', Buffer.from([0, 0, 0, 4, 0, 0, 0, 0])],
    ['an unsupported protocol version', serializeStartup({ user: 'app' }, 2 << 16)],
  ])('answers %s with a clean FATAL while other sessions go on', async (_name, bytes) => {
    const socket = tcpConnect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.write(bytes)
    await once(socket, 'close')
    const reply = Buffer.concat(chunks)
    received.push(reply)
    expect(String.fromCharCode(reply[0]!)).toBe('E')
    expect(reply.toString('latin1')).toMatch(/FATAL/)
    expect((await psql('select 1')).stdout.trim()).toBe('1')
  })

  it.each([
    ['pg-wrong-password', /refused the gateway \(28P01/],
    ['pg-down', /cannot reach the upstream service \(ECONNREFUSED\)/],
  ])('%s: the client gets a FATAL with the reason, `connect` an upstream-unavailable event', async (name, reason) => {
    const other = spawnAirlock(['connect', name, '--json'], { env: gateway.env('user') })
    const ready = await other.waitFor<{ type: string; dsn: string }>((event) => event.type === 'ready')
    const url = new URL(ready.dsn)
    const child = spawn(pgBinary('psql'), ['-X', '-tAc', 'select 1'], {
      env: { ...process.env, PGHOST: url.hostname, PGPORT: url.port, PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: decodeURIComponent(url.password), PGSSLMODE: 'disable' },
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const [code] = await once(child, 'exit')
    expect(code).toBe(2)
    expect(stderr).toMatch(reason)
    const event = await other.waitFor<{ type: string; code: string }>((line) => line.type === 'error')
    expect(event.code).toBe('upstream-unavailable')
    await other.stop('SIGINT')
  })
})

/** A raw protocol session through the tunnel: startup + local secret, up to the first ReadyForQuery. */
async function rawSession(): Promise<Socket> {
  const socket = tcpConnect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  socket.write(serializeStartup({ user: 'app', database: 'app' }))
  await readUntil(socket, (frame) => frame.type === 0x52 /* R */)
  socket.write(serializePassword(decodeURIComponent(new URL(dsn).password)))
  await readUntilReady(socket, 1)
  return socket
}

async function readUntilReady(socket: Socket, count: number) {
  let seen = 0
  return readUntil(socket, (frame) => frame.type === 0x5a && ++seen === count)
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('condition not reached')
}
