/**
 * Guardrails end to end, with the adversarial corpus (test/fixtures/guardrails/corpus.yaml) against
 * a throwaway SCRAM/TLS cluster in which the gateway's database role is a superuser: only the
 * guardrail stands between a statement and the damage.
 *
 * 1. Directly (psql, no gateway): every must-block case takes effect — real danger, not a typo —
 *    and every must-allow case runs, for its output.
 * 2. Through `airlock connect` with psql (simple protocol, each case one Query) and with
 *    node-postgres (extended protocol, pipelined): the verdict and its rule, the transaction state
 *    PostgreSQL itself is in after an error (a block inside BEGIN aborts it), the session usable
 *    after every block, allowed statements really ran (the same output as directly).
 * 3. The database — catalog, roles, rows, settings, large objects, files the server could write —
 *    is unchanged by the gateway runs.
 * Then what the corpus cannot express: the transaction state step by step against PostgreSQL's own
 * error handling, protocol-level prepared statements run by SQL EXECUTE, FunctionCall, pinned
 * settings failing closed, audit-only, and what the logs hold.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { parse } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sessionRequirements } from '../../src/gateway/policy-hooks.js'
import { createGuardrails } from '../../src/policy/index.js'
import type { Frame } from '../../src/protocols/postgres/framer.js'
import {
  getField,
  parseErrorFields,
  parseReadyForQuery,
  serializeBind,
  serializeClose,
  serializeExecute,
  serializeFunctionCall,
  serializeParse,
  serializePassword,
  serializeQuery,
  serializeStartup,
  serializeSync,
} from '../../src/protocols/postgres/messages.js'
import { BackendMessage, ErrorField } from '../../src/protocols/postgres/protocol.js'
import { splitStatements } from '../../src/protocols/postgres/split.js'
import { type CorpusCase, fill, loadCorpus } from '../fixtures/guardrails/corpus.js'
import { startInProcessGateway, type InProcessGateway } from '../helpers/inprocess-gateway.js'
import { appUpstream, pgBinary, startPgCluster, type PgCluster } from '../helpers/pg-cluster.js'
import { readUntil } from '../helpers/pg-wire.js'
import { spawnAirlock, type Spawned, transcript } from '../helpers/processes.js'

const corpus = loadCorpus()
const rawProfiles = (parse(readFileSync(new URL('../fixtures/guardrails/corpus.yaml', import.meta.url), 'utf8')) as { profiles: Record<string, unknown> }).profiles
const profiles = Object.keys(corpus.profiles)
const blockCases = corpus.cases.filter((entry) => entry.expect === 'block')
const allowCases = corpus.cases.filter((entry) => entry.expect === 'allow')
/** What the extended protocol can run: one statement (the server refuses several), no COPY (node-postgres has no COPY API). */
const extendedCases = corpus.cases.filter((entry) => splitStatements(entry.sql).length === 1 && !/^\s*copy\b/i.test(entry.sql))

let cluster: PgCluster
let gateway: InProcessGateway
let places: { out: string; socket: string; port: number }
const tunnels = new Map<string, { spawned: Spawned; url: URL }>()
const received: Buffer[] = []

beforeAll(async () => {
  cluster = await startPgCluster({ auth: 'scram-sha-256', ssl: true })
  await cluster.psql(corpus.setup, 'app')
  places = { out: join(cluster.socketDir, 'out'), socket: cluster.socketDir, port: cluster.port }
  // Made by the server's own OS user, so the server can write there.
  await cluster.psql(`COPY (SELECT 1) TO PROGRAM 'mkdir -p ${places.out}'`)
  gateway = await startInProcessGateway({
    secrets: { PG_APP_PASSWORD: cluster.app.password },
    connections: profiles.map((name) => ({
      name: `pg-${name}`,
      type: 'postgres',
      upstream: appUpstream(cluster),
      access: { groups: ['eng'] },
      guardrails: rawProfiles[name],
    })),
  })
  await Promise.all(
    profiles.map(async (name) => {
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
  const logs = gateway.logs.join('')
  expect(logs).not.toContain(cluster.app.password)
  expect(transcript.join('')).not.toContain(cluster.app.password)
  expect(Buffer.concat(received).includes(cluster.app.password)).toBe(false)
  // Verdicts are logged by rule, never with the statement: a password in a blocked statement stays out.
  expect(logs).not.toContain('hunter2')
})

// ---- psql scripts ------------------------------------------------------------------------------

interface CaseRun {
  sqlstate: string
  message: string
  output: string[]
  effect?: { sqlstate: string; value: string | undefined }
  /** The SQLSTATE of DISCARD ALL after the case: 00000 means the session is usable and idle. */
  after: string
}

/** One psql invocation running `cases`, each as its own Query (-c), with markers to read the results back. */
function psqlArgs(cases: readonly CorpusCase[], mode: 'direct' | 'gateway'): string[] {
  const args = ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=0']
  const c = (command: string): void => {
    args.push('-c', command)
  }
  for (const entry of cases) {
    c(`\\echo ==CASE ${entry.id}`)
    if (entry.setup !== undefined) c(fill(entry.setup, places))
    c('\\echo ==SQL')
    if (entry.tx) c('BEGIN')
    c(fill(entry.sql, places))
    c('\\echo ==STATE :SQLSTATE :LAST_ERROR_MESSAGE')
    if (entry.effect !== undefined) {
      c(`SELECT (${entry.effect})::text`)
      c('\\echo ==EFFECT :SQLSTATE')
    }
    if (entry.tx) c('ROLLBACK')
    if (entry.undo !== undefined && (mode === 'direct' || entry.expect === 'allow')) c(fill(entry.undo, places))
    c('DISCARD ALL')
    c('\\echo ==DONE :SQLSTATE')
  }
  return args
}

function parseRuns(stdout: string): Map<string, CaseRun> {
  const runs = new Map<string, CaseRun>()
  let run: CaseRun | undefined
  let phase: 'setup' | 'sql' | 'effect' | 'done' = 'done'
  let effectLines: string[] = []
  for (const line of stdout.split('\n')) {
    if (line.startsWith('==CASE ')) {
      run = { sqlstate: '', message: '', output: [], after: '' }
      runs.set(line.slice('==CASE '.length), run)
      phase = 'setup'
    } else if (run === undefined) {
      continue
    } else if (line === '==SQL') {
      phase = 'sql'
    } else if (line.startsWith('==STATE ')) {
      const rest = line.slice('==STATE '.length)
      run.sqlstate = rest.slice(0, 5)
      run.message = rest.slice(6)
      phase = 'effect'
      effectLines = []
    } else if (line.startsWith('==EFFECT ')) {
      const sqlstate = line.slice('==EFFECT '.length)
      run.effect = { sqlstate, value: sqlstate === '00000' ? effectLines[0] : undefined }
      phase = 'done'
    } else if (line.startsWith('==DONE ')) {
      run.after = line.slice('==DONE '.length)
      phase = 'done'
    } else if (phase === 'sql') {
      run.output.push(line)
    } else if (phase === 'effect') {
      effectLines.push(line)
    }
  }
  return runs
}

async function psql(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(pgBinary('psql'), args, { env: { ...cleanEnv(), PGCLIENTENCODING: 'UTF8', ...env } })
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
  child.stdin.end()
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value
  return env
}

/** libpq settings for a direct connection that starts as the gateway would start it (or plainly). */
function directEnv(options: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PGHOST: '127.0.0.1',
    PGPORT: String(cluster.port),
    PGUSER: 'app',
    PGDATABASE: 'app',
    PGPASSWORD: cluster.app.password,
    PGSSLMODE: 'require',
    PGOPTIONS: Object.entries(options)
      .filter(([name]) => name !== 'client_encoding')
      .map(([name, value]) => `-c ${name}=${value}`)
      .join(' '),
  }
}

function tunnelEnv(profile: string): NodeJS.ProcessEnv {
  const { url } = tunnels.get(profile)!
  return { PGHOST: url.hostname, PGPORT: url.port, PGUSER: 'app', PGDATABASE: 'app', PGPASSWORD: decodeURIComponent(url.password), PGSSLMODE: 'disable' }
}

/** The gateway's startup parameters for a profile's sessions. */
function gatewayStartup(profile: string): Record<string, string> {
  return { ...sessionRequirements(createGuardrails(corpus.profiles[profile]!)).startupParameters }
}

// ---- what must not change ------------------------------------------------------------------------

const SNAPSHOT_SQL = `
select md5(string_agg(x, E'\\n' order by x)) from (
  select 'class ' || c.oid::regclass::text || ' ' || c.relkind::text || ' ' || c.relowner::regrole::text || ' ' || coalesce(c.relacl::text, '') || ' ' || c.relnatts
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
  union all select 'proc ' || p.oid::regprocedure::text || ' ' || p.proowner::regrole::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname not in ('pg_catalog', 'information_schema')
  union all select 'role ' || rolname || ' ' || rolsuper || ' ' || rolcanlogin || ' ' || coalesce(rolpassword, '') from pg_authid
  union all select 'member ' || roleid::regrole::text || ' ' || member::regrole::text from pg_auth_members
  union all select 'ns ' || nspname || ' ' || coalesce(nspacl::text, '') from pg_namespace
  union all select 'ext ' || extname from pg_extension
  union all select 'db ' || datname from pg_database
  union all select 'server ' || srvname from pg_foreign_server
  union all select 'rule ' || rulename from pg_rewrite where ev_class >= 16384
  union all select 'setting ' || setdatabase || ' ' || setrole || ' ' || setconfig::text from pg_db_role_setting
  union all select 'comment ' || objoid || ' ' || description from pg_description where objoid >= 16384
  union all select 'lo ' || oid from pg_largeobject_metadata
  union all select 'xact ' || gid from pg_prepared_xacts
  union all select 'file ' || name || '=' || setting from pg_file_settings where sourcefile like '%auto.conf'
  union all select 'victims ' || v::text from victims v
  union all select 'accounts ' || a::text from accounts a
  union all select 'salaries ' || s::text from hr.salaries s
  union all select 'scratch ' || s::text from scratch s
  union all select 'seq ' || last_value || ' ' || is_called from seq
) t(x)`

async function snapshot(): Promise<{ database: string; files: string[] }> {
  return { database: await cluster.psql(SNAPSHOT_SQL, 'app'), files: readdirSync(places.out) }
}

// ---- 1. directly ----------------------------------------------------------------------------------

describe('the corpus on a direct connection', () => {
  const runs = new Map<string, CaseRun>()

  beforeAll(async () => {
    for (const profile of profiles) {
      const groups: [CorpusCase[], Record<string, string>][] = [
        // Block cases on a plain session: what the statement does without Airlock.
        [blockCases.filter((entry) => entry.profile === profile && entry.direct !== 'read-only'), {}],
        // Escapes from read-only, on a session started read-only as the gateway starts it.
        [blockCases.filter((entry) => entry.profile === profile && entry.direct === 'read-only'), { default_transaction_read_only: 'on' }],
        // Allow cases on a session started exactly as the gateway starts it, for their output.
        [allowCases.filter((entry) => entry.profile === profile), gatewayStartup(profile)],
      ]
      for (const [cases, options] of groups) {
        if (cases.length === 0) continue
        const result = await psql(psqlArgs(cases, 'direct'), directEnv(options))
        expect(result.code, result.stderr).toBe(0)
        for (const [id, run] of parseRuns(result.stdout)) runs.set(id, run)
      }
    }
  }, 180_000)

  it.each(blockCases.map((entry) => [entry.id, entry] as const))('must-block %s takes effect', (_id, entry) => {
    const run = runs.get(entry.id)
    expect(run, 'the case ran').toBeDefined()
    if (entry.direct === 'error') {
      expect(run!.sqlstate).not.toBe('00000')
      return
    }
    expect(run!.sqlstate, run!.message).toBe('00000')
    if (entry.effect !== undefined) expect(run!.effect).toEqual({ sqlstate: '00000', value: 'true' })
    if (entry.file !== undefined) {
      const path = join(places.out, entry.file)
      expect(existsSync(path), path).toBe(true)
      rmSync(path)
    }
    expect(run!.after).toBe('00000')
  })

  it.each(allowCases.map((entry) => [entry.id, entry] as const))('must-allow %s runs', (_id, entry) => {
    const run = runs.get(entry.id)
    expect(run, 'the case ran').toBeDefined()
    expect(run!.sqlstate, run!.message).toBe(entry.sqlstate)
    if (entry.effect !== undefined) expect(run!.effect).toEqual({ sqlstate: '00000', value: 'true' })
    expect(run!.after).toBe('00000')
  })

  describe('psql through the gateway (simple protocol, one Query per case)', () => {
    const gatewayRuns = new Map<string, CaseRun>()
    let before: Awaited<ReturnType<typeof snapshot>>

    beforeAll(async () => {
      before = await snapshot()
      for (const profile of profiles) {
        const result = await psql(psqlArgs(corpus.cases.filter((entry) => entry.profile === profile), 'gateway'), tunnelEnv(profile))
        expect(result.code, result.stderr).toBe(0)
        for (const [id, run] of parseRuns(result.stdout)) gatewayRuns.set(id, run)
      }
    }, 180_000)

    it.each(blockCases.map((entry) => [entry.id, entry] as const))('blocks %s', (_id, entry) => {
      const run = gatewayRuns.get(entry.id)
      expect(run, 'the case ran').toBeDefined()
      expect(run!.sqlstate).toBe('42501')
      expect(run!.message).toContain(`airlock guardrail ${entry.rule}:`)
      if (entry.effect !== undefined) {
        // Inside BEGIN the block aborted the transaction, as an error would; otherwise nothing happened.
        expect(run!.effect).toEqual(entry.tx ? { sqlstate: '25P02', value: undefined } : { sqlstate: '00000', value: 'false' })
      }
      if (entry.file !== undefined) expect(existsSync(join(places.out, entry.file))).toBe(false)
      expect(run!.after, 'the session is usable and idle afterwards').toBe('00000')
    })

    it.each(allowCases.map((entry) => [entry.id, entry] as const))('allows %s', (_id, entry) => {
      const run = gatewayRuns.get(entry.id)
      expect(run, 'the case ran').toBeDefined()
      expect(run!.sqlstate, run!.message).toBe(entry.sqlstate)
      if (entry.effect !== undefined) expect(run!.effect).toEqual({ sqlstate: '00000', value: 'true' })
      if (entry.compare) expect(run!.output).toEqual(runs.get(entry.id)!.output)
      expect(run!.after).toBe('00000')
    })

    it('left the database and the server files unchanged', async () => {
      expect(await snapshot()).toEqual(before)
    })

    it('logged every audit-only verdict as not enforced, by rule', () => {
      const verdicts = gateway.logs.flatMap((line) => line.split('\n')).filter((line) => line.includes('"guardrail.verdict"')).map((line) => JSON.parse(line) as Record<string, unknown>)
      for (const entry of corpus.cases.filter((each) => each.audit !== undefined)) {
        expect(verdicts).toContainEqual(expect.objectContaining({ connection: 'pg-audit', rule: entry.audit, allow: false, enforced: false }))
      }
      expect(verdicts).toContainEqual(expect.objectContaining({ connection: 'pg-strict', rule: 'no-hr', allow: false, enforced: true }))
      expect(verdicts).toContainEqual(expect.objectContaining({ connection: 'pg-strict', rule: 'hr-directory-is-public', allow: true }))
    })
  })

  describe('node-postgres through the gateway (extended protocol, pipelined)', () => {
    type Outcome = { ok: true; rows: Record<string, unknown>[] } | { ok: false; code: string; routine: string | undefined; message: string }
    const outcomes = new Map<string, { sql: Outcome; effect?: Outcome; after: Outcome }>()
    let before: Awaited<ReturnType<typeof snapshot>>

    beforeAll(async () => {
      before = await snapshot()
      for (const profile of profiles) {
        const { url } = tunnels.get(profile)!
        const db = new pg.Client({ host: url.hostname, port: Number(url.port), user: 'app', database: 'app', password: decodeURIComponent(url.password), pipeline: true })
        await db.connect()
        const query = (text: string): Promise<Outcome> =>
          db.query({ text, queryMode: 'extended' } as pg.QueryConfig).then(
            (result) => ({ ok: true, rows: result.rows }),
            (error: pg.DatabaseError) => ({ ok: false, code: String(error.code), routine: error.routine, message: error.message }),
          )
        const pending: Promise<void>[] = []
        for (const entry of extendedCases.filter((each) => each.profile === profile)) {
          if (entry.setup !== undefined) void query(fill(entry.setup, places))
          if (entry.tx) void query('BEGIN')
          const sql = query(fill(entry.sql, places))
          const effect = entry.effect === undefined ? undefined : query(`SELECT (${entry.effect})::text AS effect`)
          if (entry.tx) void query('ROLLBACK')
          if (entry.undo !== undefined && entry.expect === 'allow') void query(fill(entry.undo, places))
          const after = query('DISCARD ALL')
          pending.push(
            Promise.all([sql, effect, after]).then(([sqlOutcome, effectOutcome, afterOutcome]) => {
              outcomes.set(entry.id, { sql: sqlOutcome, ...(effectOutcome === undefined ? {} : { effect: effectOutcome }), after: afterOutcome })
            }),
          )
        }
        await Promise.all(pending)
        expect(db.getTransactionStatus()).toBe('I')
        await db.end()
      }
    }, 180_000)

    it.each(extendedCases.filter((entry) => entry.expect === 'block').map((entry) => [entry.id, entry] as const))('blocks %s', (_id, entry) => {
      const outcome = outcomes.get(entry.id)!
      expect(outcome.sql.ok).toBe(false)
      const refusal = outcome.sql as Extract<Outcome, { ok: false }>
      // The relay judges at Execute; Parse and Bind go ahead of it. The server's parser refuses
      // unparseable text at Parse, and a read-only session refuses row locks when Bind starts the
      // portal: then the server's error comes first and the Execute never runs.
      const refusedEarlier =
        (entry.rule === 'airlock-unparseable' && refusal.code === '42601') || (entry.id === 'select-for-update' && refusal.code === '25006')
      if (!refusedEarlier) {
        expect(refusal).toMatchObject({ code: '42501', routine: 'airlock_guardrail' })
        expect(refusal.message).toContain(`airlock guardrail ${entry.rule}:`)
      }
      if (outcome.effect !== undefined) {
        expect(outcome.effect).toMatchObject(entry.tx ? { ok: false, code: '25P02' } : { ok: true, rows: [{ effect: 'false' }] })
      }
      if (entry.file !== undefined) expect(existsSync(join(places.out, entry.file))).toBe(false)
      expect(outcome.after).toMatchObject({ ok: true })
    })

    it.each(extendedCases.filter((entry) => entry.expect === 'allow').map((entry) => [entry.id, entry] as const))('allows %s', (_id, entry) => {
      const outcome = outcomes.get(entry.id)!
      expect(outcome.sql).toMatchObject(entry.sqlstate === '00000' ? { ok: true } : { ok: false, code: entry.sqlstate })
      if (outcome.effect !== undefined) expect(outcome.effect).toMatchObject({ ok: true, rows: [{ effect: 'true' }] })
      expect(outcome.after).toMatchObject({ ok: true })
    })

    it('left the database and the server files unchanged', async () => {
      expect(await snapshot()).toEqual(before)
    })
  })
})

// ---- 2. what the corpus cannot express ---------------------------------------------------------------

type Step = string | { blocked: string }

/**
 * Runs `steps` through the gateway and, directly, with each blocked statement replaced by one that
 * fails (`SELECT 1/0`): the outcome and transaction status after every step must match.
 */
async function compareWithPostgres(profile: string, steps: Step[], options: { pipeline: boolean }) {
  const { url } = tunnels.get(profile)!
  const viaGateway = new pg.Client({ host: url.hostname, port: Number(url.port), user: 'app', database: 'app', password: decodeURIComponent(url.password), pipeline: options.pipeline })
  const direct = new pg.Client({
    host: '127.0.0.1',
    port: cluster.port,
    user: 'app',
    database: 'app',
    password: cluster.app.password,
    ssl: { ca: cluster.caPem!, servername: 'localhost' },
    options: Object.entries(gatewayStartup(profile)).map(([name, value]) => `-c ${name}=${value}`).join(' '),
    pipeline: options.pipeline,
  })
  const run = async (db: pg.Client, substitute: boolean) => {
    await db.connect()
    const send = (step: Step): Promise<string> => {
      const text = typeof step === 'string' ? step : substitute ? 'SELECT 1/0' : step.blocked
      return db.query({ text, ...(options.pipeline ? { queryMode: 'extended' } : {}) } as pg.QueryConfig).then(
        () => 'ok',
        (error: pg.DatabaseError) => (typeof step === 'string' ? String(error.code) : error.code === (substitute ? '22012' : '42501') ? 'failed' : String(error.code)),
      )
    }
    const trace: string[] = []
    if (options.pipeline) {
      // Later ReadyForQuery messages may be read before a result settles: only the end state compares.
      trace.push(...(await Promise.all(steps.map(send))))
    } else {
      for (const step of steps) {
        const outcome = await send(step)
        // An error settles at ErrorResponse; the status arrives with the ReadyForQuery after it.
        while (!(db as unknown as { readyForQuery: boolean }).readyForQuery) await new Promise((resolve) => setTimeout(resolve, 1))
        trace.push(`${outcome}/${db.getTransactionStatus()}`)
      }
    }
    trace.push(`end/${db.getTransactionStatus()}`)
    await db.end()
    return trace
  }
  const gatewayTrace = await run(viaGateway, false)
  const postgresTrace = await run(direct, true)
  return { gatewayTrace, postgresTrace }
}

describe('the transaction state is PostgreSQL’s own', () => {
  const scenarios: [string, string, Step[]][] = [
    ['a block inside a transaction aborts it', 'writes', ['BEGIN', "INSERT INTO scratch VALUES ('tx')", { blocked: 'DROP TABLE victims' }, 'SELECT 1', 'COMMIT', "SELECT count(*) FROM scratch WHERE x = 'tx'"]],
    ['a savepoint recovers from a block', 'writes', ['BEGIN', 'SAVEPOINT a', { blocked: 'DELETE FROM victims' }, 'ROLLBACK TO SAVEPOINT a', 'SELECT 1', 'ROLLBACK']],
    ['a block outside a transaction leaves the session idle', 'strict', [{ blocked: 'SET ROLE bystander' }, 'SELECT current_user', 'BEGIN', 'SELECT 1', 'COMMIT']],
    ['a read-only session blocks before and after an explicit transaction', 'read-only', ['BEGIN READ ONLY', { blocked: 'BEGIN READ WRITE' }, 'ROLLBACK', { blocked: "INSERT INTO scratch VALUES ('ro')" }, 'SELECT 1']],
  ]

  it.each(scenarios)('%s (simple protocol)', async (_name, profile, steps) => {
    const { gatewayTrace, postgresTrace } = await compareWithPostgres(profile, steps, { pipeline: false })
    expect(gatewayTrace).toEqual(postgresTrace)
    expect(gatewayTrace.some((step) => step.startsWith('failed'))).toBe(true)
  })

  it.each(scenarios)('%s (extended protocol, pipelined)', async (_name, profile, steps) => {
    const { gatewayTrace, postgresTrace } = await compareWithPostgres(profile, steps, { pipeline: true })
    expect(gatewayTrace).toEqual(postgresTrace)
  })
})

describe('prepared statements across SQL and the protocol', () => {
  it('judges SQL EXECUTE of a statement prepared with Parse (and never executed) by its text', async () => {
    const socket = await rawSession('writes')
    socket.write(Buffer.concat([serializeParse({ name: 'evil', query: 'DELETE FROM victims' }), serializeSync()]))
    await readUntilReady(socket)
    socket.write(serializeQuery('EXECUTE evil'))
    expect(errorOf(await readUntilReady(socket))).toMatchObject({ code: '42501', message: expect.stringContaining('guardrail safe-writes:') })
    socket.write(Buffer.concat([serializeParse({ name: 'fine', query: 'SELECT count(*) FROM victims' }), serializeSync()]))
    await readUntilReady(socket)
    socket.write(serializeQuery('EXECUTE fine'))
    expect(dataRows(await readUntilReady(socket))).toEqual(['10'])
    socket.destroy()
  })

  it('follows a name closed and re-prepared through the protocol after SQL PREPARE', async () => {
    const socket = await rawSession('writes')
    socket.write(serializeQuery('PREPARE swap AS SELECT 1'))
    await readUntilReady(socket)
    socket.write(Buffer.concat([serializeClose({ kind: 'S', name: 'swap' }), serializeParse({ name: 'swap', query: 'DELETE FROM victims' }), serializeSync()]))
    await readUntilReady(socket)
    socket.write(serializeQuery('EXECUTE swap'))
    expect(errorOf(await readUntilReady(socket))).toMatchObject({ code: '42501' })
    expect(await cluster.psql('select count(*) from victims', 'app')).toBe('10')
    socket.destroy()
  })

  /** The frames up to the `count`th ReadyForQuery, and the SQLSTATEs of the errors among them. */
  const readies = async (socket: Socket, count: number): Promise<{ frames: Frame[]; codes: (string | undefined)[] }> => {
    let seen = 0
    const frames = await readUntil(socket, (frame) => frame.type === BackendMessage.ReadyForQuery && ++seen === count)
    const codes = frames.filter((frame) => frame.type === BackendMessage.ErrorResponse).map((frame) => getField(parseErrorFields(frame.body), ErrorField.Code))
    return { frames, codes }
  }

  // A Parse of a name that exists fails (42P05), a Close after an error is skipped: after the next
  // Sync the server runs the old definition. Sent in one write, the Execute must be judged by it.
  it.each<[string, Buffer[], number, string[]]>([
    [
      'a Parse redefining a name, then Bind/Execute after a Sync',
      [serializeParse({ name: 'redefined', query: 'SELECT 1' }), serializeSync(), serializeBind({ portal: '', statement: 'redefined' }), serializeExecute({ portal: '' }), serializeSync()],
      2,
      ['42P05', '42501'],
    ],
    ['a Parse redefining a name, then SQL EXECUTE after a Sync', [serializeParse({ name: 'redefined', query: 'SELECT 1' }), serializeSync(), serializeQuery('EXECUTE redefined')], 2, ['42P05', '42501']],
    [
      'a Close skipped after an error, a new Parse of the name, then Bind/Execute',
      [
        serializeParse({ name: '', query: 'SELEC nothing' }),
        serializeClose({ kind: 'S', name: 'redefined' }),
        serializeSync(),
        serializeParse({ name: 'redefined', query: 'SELECT 1' }),
        serializeSync(),
        serializeBind({ portal: '', statement: 'redefined' }),
        serializeExecute({ portal: '' }),
        serializeSync(),
      ],
      3,
      ['42601', '42P05', '42501'],
    ],
  ])('judges the definition the server has: %s', async (_name, messages, syncs, codes) => {
    const socket = await rawSession('writes')
    socket.write(Buffer.concat([serializeParse({ name: 'redefined', query: 'DELETE FROM victims' }), serializeSync()]))
    await readUntilReady(socket)
    socket.write(Buffer.concat(messages))
    expect((await readies(socket, syncs)).codes).toEqual(codes)
    expect(await cluster.psql('select count(*) from victims', 'app')).toBe('10')
    socket.destroy()
  })

  it('runs a statement prepared with SQL PREPARE through Bind/Execute, and refuses an unknown one', async () => {
    const socket = await rawSession('strict')
    socket.write(serializeQuery('PREPARE seven AS SELECT 7'))
    await readUntilReady(socket)
    socket.write(Buffer.concat([serializeBind({ portal: '', statement: 'seven' }), serializeExecute({ portal: '' }), serializeSync()]))
    expect(dataRows(await readUntilReady(socket))).toEqual(['7'])
    socket.write(Buffer.concat([serializeBind({ portal: '', statement: 'never_seen' }), serializeExecute({ portal: '' }), serializeSync()]))
    const frames = await readUntilReady(socket)
    // Bind itself fails in the server (no such statement), before any Execute could run.
    expect(errorOf(frames)?.code).toBe('26000')
    socket.destroy()
  })
})

describe('FunctionCall', () => {
  it('allows the large-object calls libpq makes, and read-only blocks the writing ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-lo-'))
    const file = join(dir, 'blob.txt')
    writeFileSync(file, 'large object content\n')
    const imported = await psql(['-X', '-tA', '-c', `\\lo_import ${file}`], tunnelEnv('writes'))
    expect(imported.stderr).toBe('')
    const oid = /lo_import (\d+)/.exec(imported.stdout)?.[1]
    expect(oid).toBeDefined()
    const exported = join(dir, 'back.txt')
    const back = await psql(['-X', '-tA', '-c', `\\lo_export ${oid} ${exported}`, '-c', `\\lo_unlink ${oid}`], tunnelEnv('writes'))
    expect(back.stderr).toBe('')
    expect(readFileSync(exported, 'utf8')).toBe('large object content\n')
    const refused = await psql(['-X', '-tA', '-c', `\\lo_import ${file}`], tunnelEnv('strict'))
    expect(refused.stderr).toMatch(/airlock guardrail read-only: lo_cr(e)?at changes data/)
    expect(await cluster.psql('select count(*) from pg_largeobject_metadata', 'app')).toBe('0')
    rmSync(dir, { recursive: true, force: true })
  })

  it('blocks a function outside the driver allowlist, and the session goes on', async () => {
    const socket = await rawSession('files')
    const oid = Number(await cluster.psql("select 'pg_read_file(text)'::regprocedure::oid", 'app'))
    socket.write(serializeFunctionCall({ oid, argFormats: [0], args: [Buffer.from('PG_VERSION')], resultFormat: 0 }))
    const frames = await readUntilReady(socket)
    expect(errorOf(frames)).toMatchObject({ code: '42501', routine: 'airlock_guardrail', message: expect.stringContaining('guardrail airlock-function-call:') })
    expect(frames.some((frame) => frame.type === BackendMessage.FunctionCallResponse)).toBe(false)
    socket.write(serializeQuery('SELECT 1'))
    expect(dataRows(await readUntilReady(socket))).toEqual(['1'])
    socket.destroy()
  })
})

describe('the settings the parser depends on', () => {
  it('starts every guarded session with them, whatever the client asked for', async () => {
    const { url } = tunnels.get('strict')!
    const db = new pg.Client({ host: url.hostname, port: Number(url.port), user: 'app', database: 'app', password: decodeURIComponent(url.password), client_encoding: 'LATIN1' })
    await db.connect()
    const { rows } = await db.query(
      "SELECT current_setting('client_encoding') AS encoding, current_setting('standard_conforming_strings') AS scs, current_setting('backslash_quote') AS bq, current_setting('default_transaction_read_only') AS ro",
    )
    expect(rows).toEqual([{ encoding: 'UTF8', scs: 'on', bq: 'safe_encoding', ro: 'on' }])
    await db.end()
  })

  it('keeps harmless a statement that standard_conforming_strings=off would read as two', async () => {
    const smuggled = "SELECT 'x\\', ' ; DROP TABLE victims; -- '"
    // Directly, once the SET has run, the server reads a DROP TABLE in it.
    const direct = await psql(['-X', '-q', '-tA', '-c', 'BEGIN', '-c', 'SET standard_conforming_strings = off', '-c', smuggled, '-c', "SELECT to_regclass('public.victims') IS NULL", '-c', 'ROLLBACK'], directEnv({}))
    expect(direct.stdout.trim().split('\n').at(-1)).toBe('t')
    const viaGateway = await psql(['-X', '-q', '-tA', '-c', 'SET standard_conforming_strings = off', '-c', '\\echo :SQLSTATE', '-c', smuggled, '-c', '\\echo :SQLSTATE'], tunnelEnv('files'))
    expect(viaGateway.stdout.trim().split('\n')).toEqual(['42501', 'x\\| ; DROP TABLE victims; -- ', '00000'])
    expect(await cluster.psql("select to_regclass('public.victims') is not null", 'app')).toBe('t')
  })

  it('refuses them as startup parameters', async () => {
    const { url } = tunnels.get('strict')!
    const socket = tcpConnect({ host: '127.0.0.1', port: Number(url.port) })
    await once(socket, 'connect')
    socket.on('data', (chunk: Buffer) => received.push(chunk))
    socket.write(serializeStartup({ user: 'app', database: 'app', standard_conforming_strings: 'off' }))
    await readUntil(socket, (frame) => frame.type === BackendMessage.Authentication)
    socket.write(serializePassword(decodeURIComponent(url.password)))
    const frames = await readUntil(socket, (frame) => frame.type === BackendMessage.ErrorResponse)
    expect(errorOf(frames)?.message).toMatch(/standard_conforming_strings.*not allowed/)
    socket.destroy()
  })

  it.each([
    ['strict', 'loosen_strings', "set_config('standard_conforming_strings', 'off', false)", 'standard_conforming_strings'],
    ['read-only', 'loosen_read_only', "set_config('default_transaction_read_only', 'off', false)", 'default_transaction_read_only'],
  ])('closes a %s session when a function changes one behind the parser’s back (%s)', async (profile, name, call, setting) => {
    await cluster.psql(`create function ${name}() returns text language sql as $$ select ${call} $$`, 'app')
    try {
      const { url } = tunnels.get(profile)!
      const db = new pg.Client({ host: url.hostname, port: Number(url.port), user: 'app', database: 'app', password: decodeURIComponent(url.password) })
      db.on('error', () => {})
      await db.connect()
      const ended = new Promise((resolve) => db.once('end', resolve))
      await expect(db.query(`SELECT ${name}()`)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining(setting) })
      await ended
    } finally {
      await cluster.psql(`drop function ${name}()`, 'app')
    }
  })
})

describe('read-only is enforced twice', () => {
  it('lets the server refuse what a function called from SELECT writes', async () => {
    const result = await psql(['-X', '-tA', '-c', 'SELECT app_write()', '-c', '\\echo :SQLSTATE'], tunnelEnv('strict'))
    expect(result.stdout.trim()).toBe('25006')
    expect(await cluster.psql('select count(*) from victims where id = 1000', 'app')).toBe('0')
  })
})

// ---- raw protocol helpers ----------------------------------------------------------------------------

async function rawSession(profile: string): Promise<Socket> {
  const { url } = tunnels.get(profile)!
  const socket = tcpConnect({ host: '127.0.0.1', port: Number(url.port) })
  await once(socket, 'connect')
  socket.on('data', (chunk: Buffer) => received.push(chunk))
  socket.write(serializeStartup({ user: 'app', database: 'app' }))
  await readUntil(socket, (frame) => frame.type === BackendMessage.Authentication)
  socket.write(serializePassword(decodeURIComponent(url.password)))
  await readUntilReady(socket)
  return socket
}

function readUntilReady(socket: Socket): Promise<Frame[]> {
  return readUntil(socket, (frame) => frame.type === BackendMessage.ReadyForQuery && parseReadyForQuery(frame.body) !== undefined)
}

function errorOf(frames: Frame[]): { code?: string; routine?: string; message?: string } | undefined {
  const frame = frames.find((each) => each.type === BackendMessage.ErrorResponse)
  if (frame === undefined) return undefined
  const fields = parseErrorFields(frame.body)
  return { code: getField(fields, ErrorField.Code), routine: getField(fields, ErrorField.Routine), message: getField(fields, ErrorField.Message) }
}

/** The first column of every DataRow, as text. */
function dataRows(frames: Frame[]): string[] {
  return frames.filter((frame) => frame.type === BackendMessage.DataRow).map((frame) => frame.body.subarray(6, 6 + frame.body.readInt32BE(2)).toString())
}
