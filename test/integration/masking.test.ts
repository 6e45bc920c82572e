/**
 * Masking end to end: a throwaway SCRAM/TLS cluster whose `app` password is the credential the
 * gateway holds (the canary), the in-process gateway, `airlock connect`, and raw protocol sessions
 * that look at the very bytes the client receives.
 *
 * Every bypass case runs twice: directly against the server (the password, or one of its
 * encodings, must be in what comes back: the case really leaks) and through the tunnel (no form
 * of it may be, and the canary's label must be: the value was there and was masked).
 */
import { once } from 'node:events'
import { connect as tcpConnect, Socket } from 'node:net'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatementContext, StatementSummary } from '../../src/protocols/hooks.js'
import { type Frame, MessageFramer } from '../../src/protocols/postgres/framer.js'
import {
  getField,
  parseDataRow,
  parseErrorFields,
  parseRowDescription,
  serializeBind,
  serializeDescribe,
  serializeExecute,
  serializeParse,
  serializePassword,
  serializeQuery,
  serializeStartup,
  serializeSync,
} from '../../src/protocols/postgres/messages.js'
import { BackendMessage, ErrorField } from '../../src/protocols/postgres/protocol.js'
import { startInProcessGateway, type InProcessGateway } from '../helpers/inprocess-gateway.js'
import { appUpstream, startPgCluster, type PgCluster } from '../helpers/pg-cluster.js'
import { readUntil } from '../helpers/pg-wire.js'
import { spawnAirlock, type Spawned, transcript } from '../helpers/processes.js'

const CREDENTIAL = '[CREDENTIAL]'
const CONNECTIONS = {
  /** No `masking` section: the canary alone, which is always on. */
  canary: undefined,
  /** Every detector, no column rules (COPY works). */
  detect: {},
  /** Every detector and column rules. */
  rules: { columns: [{ match: ['ssn', '*_token', 'secret_number'], strategy: 'redact' }] },
} as const
type ConnectionName = keyof typeof CONNECTIONS

let cluster: PgCluster
let gateway: InProcessGateway
let password: string
const tunnels = new Map<ConnectionName, { spawned: Spawned; url: URL }>()
const received: Buffer[] = []
const ended: { context: StatementContext; summary: StatementSummary }[] = []

beforeAll(async () => {
  cluster = await startPgCluster({ auth: 'scram-sha-256', ssl: true })
  password = cluster.app.password
  await cluster.psql(
    `create table vault (id int, pw text);
     insert into vault values (1, '${password}');
     create function leak_notice(x text) returns int language plpgsql as $$ begin raise notice 'value: %', x; return 1; end $$;
     create function leak_exception(x text) returns int language plpgsql as $$ begin raise exception 'value: %', x using detail = 'detail ' || x, hint = 'hint ' || x; end $$;
     create table mixed (
       id int, small smallint, big bigint, amount numeric(12,2), ratio float8, half float4, active boolean, born date,
       seen timestamptz, at timestamp, uid uuid, blob bytea, tags text[], meta jsonb, doc json, span interval, addr inet,
       email text, ssn text, api_token text, secret_number bigint, note varchar(40), code char(3));
     insert into mixed values
       (1, 7, 9007199254740993, 1234.50, 2.5, 0.25, true, '1999-12-31', '2024-02-29 12:34:56.789+00', '2024-02-29 01:02:03.000004',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', '{a,"b c"}', '{"k": [1, "x"]}', '{"j": 1}', '1 day 02:00:00', '10.0.0.1',
        'alice@example.com', '123-45-6789', 'tok_abc', 42, 'plain note', 'abc'),
       (2, -1, -5, -0.01, -1e300, 3.4e38, false, '0044-03-15 BC', '1970-01-01 00:00:00+00', '2000-01-01 00:00:00',
        '00000000-0000-0000-0000-000000000000', '\\x', '{}', '[]', 'null', '-3 mons', '::1',
        'nobody', null, null, null, null, null);
     alter table vault owner to app; alter table mixed owner to app;
     alter function leak_notice(text) owner to app; alter function leak_exception(text) owner to app;`,
    'app',
  )
  gateway = await startInProcessGateway({
    secrets: { PG_APP_PASSWORD: password },
    hooks: () => ({
      begin: () => ({ verdict: { allow: true } }),
      end: (context, summary) => {
        ended.push({ context, summary })
      },
    }),
    connections: Object.entries(CONNECTIONS).map(([name, masking]) => ({
      name: `pg-${name}`,
      type: 'postgres',
      upstream: appUpstream(cluster),
      access: { groups: ['eng'] },
      ...(masking === undefined ? {} : { masking }),
    })),
  })
  await Promise.all(
    (Object.keys(CONNECTIONS) as ConnectionName[]).map(async (name) => {
      const spawned = spawnAirlock(['connect', `pg-${name}`, '--json'], { env: gateway.env('user') })
      const ready = await spawned.waitFor<{ type: string; dsn: string }>((event) => event.type === 'ready')
      tunnels.set(name, { spawned, url: new URL(ready.dsn) })
    }),
  )
}, 120_000)

afterAll(async () => {
  await Promise.all([...tunnels.values()].map(({ spawned }) => spawned.stop('SIGINT')))
  await gateway?.stop()
  await cluster?.stop()
  expect(leaks(Buffer.concat(received))).toEqual([])
  expect(leaks(Buffer.from(gateway.logs.join('')))).toEqual([])
  expect(leaks(Buffer.from(transcript.join('')))).toEqual([])
})

// ---- the forms of the credential ---------------------------------------------------------------

/** Every encoding of the password a case may produce, by name. */
function forms(secret: string): [string, Buffer][] {
  const raw = Buffer.from(secret)
  const list: [string, Buffer][] = [
    ['raw', raw],
    ['upper', Buffer.from(secret.toUpperCase())],
    ['reversed', Buffer.from([...secret].reverse().join(''))],
    ['hex', Buffer.from(raw.toString('hex'))],
    ['HEX', Buffer.from(raw.toString('hex').toUpperCase())],
  ]
  for (let offset = 0; offset < 3; offset++) {
    // The part of the base64 text that only the secret's bytes decide, whatever comes before or after.
    const encoded = Buffer.concat([Buffer.alloc(offset), raw]).toString('base64')
    const inner = encoded.slice(4, -4)
    list.push([`base64+${offset}`, Buffer.from(inner)], [`base64url+${offset}`, Buffer.from(inner.replaceAll('+', '-').replaceAll('/', '_'))])
  }
  // A run of 16 characters: a piece long enough to matter.
  list.push(['piece', raw.subarray(8, 24)])
  return list
}

function leaks(bytes: Buffer): string[] {
  return forms(password)
    .filter(([, form]) => bytes.includes(form))
    .map(([name]) => name)
}

// ---- raw sessions --------------------------------------------------------------------------------

interface RawSession {
  socket: Socket
  framer: MessageFramer
  /** Every byte received since the session started. */
  bytes: Buffer[]
}

async function rawSession(name: ConnectionName): Promise<RawSession> {
  const url = tunnels.get(name)!.url
  const socket = tcpConnect({ host: '127.0.0.1', port: Number(url.port) })
  await once(socket, 'connect')
  const session: RawSession = { socket, framer: new MessageFramer({ maxMessageLength: 1 << 26 }), bytes: [] }
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk)
    session.bytes.push(chunk)
  })
  socket.write(serializeStartup({ user: 'app', database: 'app' }))
  await readUntil(session.socket, (frame) => frame.type === BackendMessage.Authentication, session.framer)
  socket.write(serializePassword(decodeURIComponent(url.password)))
  await readUntil(session.socket, (frame) => frame.type === BackendMessage.ReadyForQuery, session.framer)
  return session
}

/** Sends `messages` and returns the frames and the raw bytes up to the next ReadyForQuery. */
async function exchange(session: RawSession, ...messages: Buffer[]): Promise<{ frames: Frame[]; bytes: Buffer }> {
  const frames = readUntil(session.socket, (frame) => frame.type === BackendMessage.ReadyForQuery, session.framer)
  session.socket.write(Buffer.concat(messages))
  const done = await frames
  return { frames: done, bytes: Buffer.concat(done.map((frame) => frame.raw)) }
}

const sessions = new Map<string, Promise<RawSession>>()
function session(name: ConnectionName | 'direct'): Promise<RawSession> {
  let made = sessions.get(name)
  if (made === undefined) {
    made = name === 'direct' ? directSession() : rawSession(name)
    sessions.set(name, made)
  }
  return made
}

/**
 * The same raw protocol straight to the server, for the control runs: node-postgres does the
 * SCRAM/TLS startup on a socket whose received bytes are recorded, then the test writes to it.
 */
async function directSession(): Promise<RawSession> {
  const socket = new Socket()
  const bytes: Buffer[] = []
  const client = new pg.Client({
    host: '127.0.0.1',
    port: cluster.port,
    user: 'app',
    database: 'app',
    password,
    ssl: { ca: cluster.caPem!, servername: 'localhost' },
    stream: () => socket,
  })
  await client.connect()
  // The test ends the session by stopping the server.
  client.on('error', () => {})
  // Past TLS: take over the decrypted stream node-postgres reads.
  const stream = (client as unknown as { connection: { stream: Socket } }).connection.stream
  stream.removeAllListeners('data')
  const session: RawSession = { socket: stream, framer: new MessageFramer({ maxMessageLength: 1 << 26 }), bytes }
  stream.on('data', (chunk: Buffer) => bytes.push(chunk))
  return session
}

// ---- bypass attempts -----------------------------------------------------------------------------

interface BypassCase {
  name: string
  sql: string
  /** Where the value travels. */
  channel: 'row' | 'column name' | 'error' | 'notice' | 'notification' | 'parameter' | 'copy'
  /** The value cannot carry the label (bytea): masking nulls it. */
  nulled?: true
}

const FROM = ' from vault'
const bypasses: BypassCase[] = [
  { name: 'the value itself', sql: `select pw${FROM}`, channel: 'row' },
  { name: "encode(x, 'base64')", sql: `select encode(pw::bytea, 'base64')${FROM}`, channel: 'row' },
  { name: "encode(x, 'base64') at offset 1", sql: `select encode(('a' || pw)::bytea, 'base64')${FROM}`, channel: 'row' },
  { name: "encode(x, 'base64') at offset 2", sql: `select encode(('ab' || pw)::bytea, 'base64')${FROM}`, channel: 'row' },
  { name: "encode(x, 'hex')", sql: `select encode(pw::bytea, 'hex')${FROM}`, channel: 'row' },
  { name: 'upper(encode(x, hex))', sql: `select upper(encode(pw::bytea, 'hex'))${FROM}`, channel: 'row' },
  { name: 'reverse(x)', sql: `select reverse(pw)${FROM}`, channel: 'row' },
  { name: 'upper(x)', sql: `select upper(pw)${FROM}`, channel: 'row' },
  { name: 'x::bytea', sql: `select pw::bytea${FROM}`, channel: 'row', nulled: true },
  { name: 'to_json(row)', sql: `select to_json(v) from vault v`, channel: 'row' },
  { name: 'a record', sql: `select row(id, pw)${FROM}`, channel: 'row' },
  { name: 'array_agg(x)', sql: `select array_agg(pw)${FROM}`, channel: 'row' },
  { name: 'json_build_object', sql: `select json_build_object('password', pw)${FROM}`, channel: 'row' },
  { name: 'split over two columns', sql: `select substr(pw, 1, 10), substr(pw, 11)${FROM}`, channel: 'row' },
  { name: 'x::int (the error echoes the value)', sql: `select pw::int${FROM}`, channel: 'error' },
  { name: 'RAISE NOTICE in a function', sql: `select leak_notice(pw)${FROM}`, channel: 'notice' },
  { name: 'RAISE EXCEPTION in a function (message, detail, hint)', sql: `select leak_exception(pw)${FROM}`, channel: 'error' },
  { name: 'pg_notify', sql: `listen leak; select pg_notify('leak', pw)${FROM}`, channel: 'notification' },
  { name: "set_config('application_name', x, false)", sql: `select set_config('application_name', pw || '%NONCE%', false)${FROM}`, channel: 'parameter' },
  { name: 'a column alias holding the secret', sql: 'select 1 as "%PASSWORD%"', channel: 'column name' },
  { name: 'COPY (select ...) TO STDOUT, text', sql: `copy (select id, pw, E'tab\\there'${FROM}) to stdout`, channel: 'copy' },
  { name: 'COPY (select ...) TO STDOUT, CSV', sql: `copy (select id, pw, 'a,"quoted" value'${FROM}) to stdout with (format csv, header)`, channel: 'copy' },
  { name: 'COPY (select ...) TO STDOUT, base64 in CSV', sql: `copy (select encode(pw::bytea, 'base64')${FROM}) to stdout csv`, channel: 'copy' },
]

const CHANNEL_TYPES: Record<BypassCase['channel'], number> = {
  row: BackendMessage.DataRow,
  'column name': BackendMessage.RowDescription,
  error: BackendMessage.ErrorResponse,
  notice: BackendMessage.NoticeResponse,
  notification: BackendMessage.NotificationResponse,
  parameter: BackendMessage.ParameterStatus,
  copy: BackendMessage.CopyData,
}

/** The case's SQL; a nonce makes each run's value new (ParameterStatus reports changes only). */
const sqlOf = (entry: BypassCase): string => entry.sql.replace('%PASSWORD%', password).replace('%NONCE%', `-${Math.random().toString(36).slice(2)}`)

describe.each(['canary', 'detect'] as const)('bypass attempts through pg-%s', (name) => {
  it.each(bypasses)('$name ($channel)', async (entry) => {
    // Control: the server really sends the credential in this channel.
    const direct = await exchange(await session('direct'), serializeQuery(sqlOf(entry)))
    const leaking = direct.frames.filter((frame) => frame.type === CHANNEL_TYPES[entry.channel] && (leaksIn(frame.raw) || leaksIn(joinedCells(frame))))
    expect(leaking.length, 'the case must leak without the gateway').toBeGreaterThan(0)

    const tunnel = await exchange(await session(name), serializeQuery(sqlOf(entry)))
    expect(leaks(tunnel.bytes)).toEqual([])
    if (entry.nulled) {
      const rows = tunnel.frames.filter((frame) => frame.type === BackendMessage.DataRow).map((frame) => parseDataRow(frame.body))
      expect(rows).toEqual([[null]])
    } else {
      const labelled = tunnel.frames.filter((frame) => frame.type === CHANNEL_TYPES[entry.channel] && frame.raw.includes(CREDENTIAL))
      expect(labelled.length, 'the masked value reaches the client as the label').toBeGreaterThan(0)
    }
    // The same messages in the same order: masking rewrites, it does not drop or add. (Not
    // notifications: both sessions listen on the channel, and the other's arrive at any time.)
    const own = (frames: readonly Frame[]): string => types(frames).replaceAll('A', '')
    expect(own(tunnel.frames)).toBe(own(direct.frames))
  })
})

const leaksIn = (bytes: Buffer): boolean => leaks(bytes).length > 0
/** A DataRow's values joined: a secret split over columns. */
const joinedCells = (frame: Frame): Buffer =>
  frame.type === BackendMessage.DataRow ? Buffer.concat(parseDataRow(frame.body).filter((value): value is Buffer => value !== null)) : Buffer.alloc(0)
const types = (frames: readonly Frame[]): string => frames.map((frame) => String.fromCharCode(frame.type)).join('')

describe('values split across rows or interleaved with separators: out of reach (README), documented', () => {
  it.each([
    ['one character per row', `select substr(pw, i, 1) from vault, generate_series(1, length(pw)) as i order by i`, (rows: string[]) => rows.join('')],
    // '~' is not in the password's alphabet (base64url).
    ["string_agg(substr(x, i, 1), '~')", `select string_agg(substr(pw, i, 1), '~' order by i) from vault, generate_series(1, length(pw)) as i`, (rows: string[]) => rows[0]!.replaceAll('~', '')],
  ])('%s passes unmasked today, and reassembles into the credential', async (_name, sql, reassemble) => {
    const { frames } = await exchange(await session('detect'), serializeQuery(sql))
    const rows = frames.filter((frame) => frame.type === BackendMessage.DataRow).map((frame) => parseDataRow(frame.body)[0]!.toString())
    expect(rows.join('')).not.toContain(CREDENTIAL)
    // Compared as a boolean: a failure must not print the credential.
    expect(reassemble(rows) === password).toBe(true)
  })
})

// ---- binary results --------------------------------------------------------------------------------

describe('binary result formats (extended protocol)', () => {
  it('asks the server for text, masks, and re-encodes what the client asked for in binary', async () => {
    const sql = 'select id, pw, pw::bytea as raw, length(pw) as n from vault'
    const messages = [serializeParse({ query: sql }), serializeBind({ resultFormats: [1] }), serializeDescribe({ kind: 'P', name: '' }), serializeExecute(), serializeSync()]
    const direct = await exchange(await session('direct'), ...messages)
    expect(leaksIn(direct.bytes)).toBe(true)
    const { frames, bytes } = await exchange(await session('canary'), ...messages)
    expect(leaks(bytes)).toEqual([])
    expect(types(frames)).toBe('12TDCZ')
    const fields = parseRowDescription(frames[2]!.body)
    expect(fields.map((field) => [field.name, field.typeOid, field.format])).toEqual([
      ['id', 23, 1],
      ['pw', 25, 1],
      ['raw', 17, 1],
      ['n', 23, 1],
    ])
    const [id, pw, raw, n] = parseDataRow(frames[3]!.body)
    expect(id!.readInt32BE(0)).toBe(1)
    expect(pw!.toString()).toBe(CREDENTIAL)
    // bytea cannot carry a label: the value is nulled.
    expect(raw).toBeNull()
    expect(n!.readInt32BE(0)).toBe(password.length)
  })

  it('refuses a type it cannot re-encode (an array) before it runs, with a clear error, and the session goes on', async () => {
    const raw = await session('canary')
    const messages = [
      serializeParse({ query: 'select array_agg(pw) from vault' }),
      serializeBind({ resultFormats: [1] }),
      serializeDescribe({ kind: 'P', name: '' }),
      serializeExecute(),
      serializeSync(),
    ]
    const { frames, bytes } = await exchange(raw, ...messages)
    expect(leaks(bytes)).toEqual([])
    expect(types(frames)).toBe('12TEZ')
    const error = parseErrorFields(frames[3]!.body)
    expect(getField(error, ErrorField.Code)).toBe('42501')
    expect(getField(error, ErrorField.Message)).toMatch(/refused by airlock masking: binary results of type array/)
    expect(getField(error, ErrorField.Routine)).toBe('airlock_masking')
    const again = await exchange(raw, serializeQuery('select 1'))
    expect(types(again.frames)).toBe('TDCZ')
  })

  it('masks a portal the client executes without describing it (the relay describes it itself)', async () => {
    const { frames, bytes } = await exchange(
      await session('canary'),
      serializeParse({ query: 'select pw from vault' }),
      serializeBind({ resultFormats: [0] }),
      serializeExecute(),
      serializeSync(),
    )
    expect(leaks(bytes)).toEqual([])
    expect(types(frames)).toBe('12DCZ')
    expect(parseDataRow(frames[2]!.body)[0]!.toString()).toBe(CREDENTIAL)
  })
})

// ---- drivers keep working ------------------------------------------------------------------------

/** node-postgres through a tunnel, with every byte it reads recorded. */
async function driver(name: ConnectionName): Promise<{ client: pg.Client; bytes: Buffer[] }> {
  const url = tunnels.get(name)!.url
  const bytes: Buffer[] = []
  const socket = new Socket()
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk)
    bytes.push(chunk)
  })
  const client = new pg.Client({ host: '127.0.0.1', port: Number(url.port), user: 'app', database: 'app', password: decodeURIComponent(url.password), stream: () => socket })
  await client.connect()
  return { client, bytes }
}

/** node-postgres in the extended protocol, with binary results when asked (its types omit `binary`). */
function query(client: pg.Client, text: string, binary: boolean): Promise<pg.QueryResult> {
  return client.query({ text, queryMode: 'extended', binary } as pg.QueryConfig)
}

async function directClient(): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: 'app', database: 'app', password, ssl: { ca: cluster.caPem!, servername: 'localhost' } })
  await client.connect()
  return client
}

describe('node-postgres on a mixed table with column rules and every detector', () => {
  const SELECT = 'select * from mixed order by id'

  it.each([false, true])('parses every column (binary: %s); ruled columns become text', async (binary) => {
    const direct = await directClient()
    // The direct run reads binary where the types allow it too, so values compare like for like.
    const expected = (await query(direct, SELECT.replace('*', 'id, small, big, ratio, half, active, born, seen, at, uid, blob, meta, doc, note, code'), binary)).rows
    await direct.end()
    const { client, bytes } = await driver('rules')
    try {
      if (binary) {
        // numeric, arrays, json-in-binary types the relay cannot re-encode are refused: read the rest.
        const result = await query(client, SELECT.replace('*', 'id, small, big, ratio, half, active, born, seen, at, uid, blob, meta, doc, note, code, email, ssn, api_token, secret_number'), binary)
        expect(result.fields.every((field) => field.format === 'binary')).toBe(true)
        expect(result.rows.map(({ email: _e, ssn: _s, api_token: _a, secret_number: _n, ...rest }) => rest)).toEqual(expected)
        expect(result.rows.map((row) => [row.email, row.ssn, row.api_token, row.secret_number])).toEqual([
          ['[EMAIL]', '[REDACTED]', '[REDACTED]', '[REDACTED]'],
          ['nobody', null, null, null],
        ])
      } else {
        const result = await client.query(SELECT)
        const rest = result.rows.map((row) => Object.fromEntries(Object.keys(expected[0]!).map((key) => [key, row[key]])))
        expect(rest).toEqual(expected)
        expect(result.rows[0]).toMatchObject({ amount: '1234.50', tags: ['a', 'b c'], addr: '10.0.0.1', email: '[EMAIL]', ssn: '[REDACTED]', api_token: '[REDACTED]', secret_number: '[REDACTED]' })
        expect(result.rows[0].span.days).toBe(1)
        // A ruled column is announced as text (25), so the driver does not parse '[REDACTED]' as a bigint.
        expect(result.fields.find((field) => field.name === 'secret_number')!.dataTypeID).toBe(25)
        expect(result.fields.find((field) => field.name === 'big')!.dataTypeID).toBe(20)
      }
      expect(leaks(Buffer.concat(bytes))).toEqual([])
    } finally {
      await client.end()
    }
  })

  it('refuses binary numeric with a clear error and keeps the connection usable', async () => {
    const { client } = await driver('rules')
    try {
      await expect(query(client, 'select amount from mixed', true)).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/binary results of type numeric cannot be masked/) })
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    } finally {
      await client.end()
    }
  })

  it('refuses COPY TO STDOUT under column rules (it sends no column names) and binary COPY anywhere', async () => {
    const rules = await exchange(await session('rules'), serializeQuery('copy mixed to stdout'))
    expect(types(rules.frames)).toBe('EZ')
    expect(getField(parseErrorFields(rules.frames[0]!.body), ErrorField.Message)).toMatch(/column masking rules/)
    const binary = await exchange(await session('detect'), serializeQuery('copy (select 1) to stdout with (format binary)'))
    expect(types(binary.frames)).toBe('EZ')
    expect(getField(parseErrorFields(binary.frames[0]!.body), ErrorField.Message)).toMatch(/binary COPY output cannot be masked/)
  })
})

describe('detectors through the tunnel', () => {
  it('masks PII in rows, COPY lines and errors, and leaves look-alikes alone', async () => {
    const raw = await session('detect')
    const rows = await exchange(raw, serializeQuery("select 'mail alice@example.com now', '4111 1111 1111 1111', '4111 1111 1111 1112', 'DE89 3704 0044 0532 0130 00'"))
    expect(parseDataRow(rows.frames[1]!.body).map((value) => value!.toString())).toEqual(['mail [EMAIL] now', '[CREDIT-CARD]', '4111 1111 1111 1112', '[IBAN]'])
    const copy = await exchange(raw, serializeQuery("copy (select 'alice@example.com', 'x\ty') to stdout"))
    expect(copy.frames.filter((frame) => frame.type === BackendMessage.CopyData).map((frame) => frame.body.subarray(0).toString())).toEqual(['[EMAIL]\tx\\ty\n'])
    const error = await exchange(raw, serializeQuery("select 'alice@example.com'::int"))
    expect(getField(parseErrorFields(error.frames[0]!.body), ErrorField.Message)).toBe('invalid input syntax for type integer: "[EMAIL]"')
  })

  it('masks and counts every row of a result that spans many reads (clean rows pass in runs), and every COPY line', async () => {
    ended.length = 0
    const raw = await session('detect')
    const value = "case when g % 997 = 0 then 'ops' || g || '@example.com' else repeat('plain text ', 5) end"
    const plain = 'plain text '.repeat(5)
    const result = await exchange(raw, serializeQuery(`select g, ${value} from generate_series(1, 30000) g`))
    const rows = result.frames.filter((frame) => frame.type === BackendMessage.DataRow).map((frame) => parseDataRow(frame.body).map((cell) => cell!.toString()))
    expect(rows.length).toBe(30_000)
    expect(rows.filter(([, text]) => text === '[EMAIL]').map(([g]) => Number(g))).toEqual(Array.from({ length: 30 }, (_, i) => (i + 1) * 997))
    expect(rows.filter(([, text]) => text === plain).length).toBe(30_000 - 30)
    const copy = await exchange(raw, serializeQuery(`copy (select g, ${value} from generate_series(1, 30000) g) to stdout`))
    const lines = copy.frames.filter((frame) => frame.type === BackendMessage.CopyData).map((frame) => frame.body.toString())
    expect(lines.length).toBe(30_000)
    expect(lines.filter((line) => line.endsWith('\t[EMAIL]\n')).length).toBe(30)
    expect(lines.filter((line) => line.endsWith(`\t${plain}\n`)).length).toBe(30_000 - 30)
    expect(ended.map((entry) => [entry.summary.rows, entry.summary.masked])).toEqual([
      [30_000, { email: 30 }],
      [expect.any(Number), { email: 30 }],
    ])
  })

  it('reports masked counts per detector and column rule at the end of each statement', async () => {
    ended.length = 0
    await exchange(await session('rules'), serializeQuery("select ssn, email, email as e2 from mixed where id = 1; select 'none'"))
    const summaries = ended.map((entry) => entry.summary)
    expect(summaries.map((summary) => summary.masked)).toEqual([{ email: 2, 'column:ssn': 1 }, undefined])
  })
})
