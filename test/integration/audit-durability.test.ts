/**
 * Durability against ground truth. A throwaway PostgreSQL logs every statement it runs
 * (`log_statement = all`, each line prefixed with the session's application_name,
 * `airlock/<identity>/<session>`). pgbench (simple and -M prepared) and psql run through
 * `airlock connect` while the gateway — a real process — is SIGKILLed at random points, over and
 * over, with each store. After a last restart, every statement the server logged for an Airlock
 * session must have its `statement.begin` in the store, matched by (session, sequence) and text:
 * the record was in the kernel before the statement was forwarded, and the restart replayed what
 * the store lacked. The chain stays intact across every kill.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRedactor, openStore, parseStoreLocation, verifyStore } from '../../src/audit/index.js'
import { splitStatements } from '../../src/protocols/postgres/split.js'
import { auditTempDir, freshAuditDatabase, removeAuditTempDirs, spawnAuditGateway, storeAccess, writeAuditGatewayConfig } from '../helpers/audit.js'
import { pgBinary, startPgCluster, type PgCluster } from '../helpers/pg-cluster.js'
import { spawnAirlock } from '../helpers/processes.js'

/**
 * SIGKILLs under load per store: each lands while statements are flowing through the gateway (the
 * server logged one in the 50 ms before it); with both stores, 20, what the issue asks for at
 * least. A round whose kill did not land under load is repeated, up to MAX_ROUNDS.
 */
const KILLS_UNDER_LOAD = 10
/** Besides those, every sixth round kills an idle gateway and then its successor while it starts (replaying the journal). */
const MAX_ROUNDS = 18

/** Statements the server logged for Airlock sessions from byte `from` of its log. */
function airlockStatementsSince(logFile: string, from: number): number {
  const text = readFileSync(logFile).subarray(from).toString('utf8')
  let count = 0
  for (let at = text.indexOf('<airlock/'); at >= 0; at = text.indexOf('<airlock/', at + 1)) count++
  return count
}

let cluster: PgCluster

beforeAll(async () => {
  cluster = await startPgCluster({ ssl: false, settings: { log_statement: 'all', log_line_prefix: '<%a|%c> ' } })
  const init = await runClient('pgbench', ['-i', '-s', '1', '-q', '-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'app', 'app'], {})
  expect(init.code, init.stderr).toBe(0)
  await cluster.psql('create role helper login; grant helper to app with admin option; alter role app createrole;')
}, 120_000)

afterAll(async () => {
  await cluster?.stop()
  removeAuditTempDirs()
})

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function startClient(binary: string, args: string[], env: NodeJS.ProcessEnv, input?: string): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(pgBinary(binary), args, { env: { ...process.env, ...env }, stdio: ['pipe', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdin!.on('error', () => {})
  child.stdin!.end(input ?? '')
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stderr }))
  return { child, done }
}

function runClient(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return startClient(binary, args, env).done
}

/** A psql script that sends single statements, `\;`-joined multi-statement Queries, and password literals. */
function psqlScript(round: number): string {
  const lines: string[] = []
  for (let i = 0; i < 400; i++) {
    if (i % 3 === 0) lines.push(`select ${round * 1000 + i} as n \\; select 'two' as w \\; select count(*) from pgbench_branches;`)
    else if (i % 7 === 0) lines.push(`alter role helper password 'pw-${round}-${i}-secret';`)
    else lines.push(`select abalance from pgbench_accounts where aid = ${i + 1};`)
  }
  return `${lines.join('\n')}\n`
}

interface Logged {
  session: string
  text: string
  /** Statements the server counts in this line: a simple Query may hold several. */
  texts: string[]
}

/** The statements PostgreSQL logged for Airlock sessions, in order per session. */
function loggedStatements(logFile: string, from: number): Map<string, Logged[]> {
  const bySession = new Map<string, Logged[]>()
  const entries: string[] = []
  for (const line of readFileSync(logFile).subarray(from).toString('utf8').split('\n')) {
    if (line.startsWith('<')) entries.push(line)
    else if (entries.length > 0 && line !== '') entries[entries.length - 1] += `\n${line}`
  }
  for (const entry of entries) {
    const match = /^<airlock\/[^|]*\/(ses_[A-Za-z0-9_-]+)\|[^>]*> LOG: {2}(statement|execute [^:]+): ([\s\S]*)$/.exec(entry)
    if (match === null) continue
    const [, session, kind, text] = match as unknown as [string, string, string, string]
    const texts = kind === 'statement' ? splitStatements(text) : [text]
    let list = bySession.get(session)
    if (list === undefined) bySession.set(session, (list = []))
    list.push({ session, text, texts })
  }
  return bySession
}

describe.each(['sqlite', 'postgres'] as const)('statement.begin survives SIGKILL with the %s store', (kind) => {
  let store: string
  let drop: (() => Promise<void>) | undefined

  beforeAll(async () => {
    if (kind === 'sqlite') store = `sqlite:${join(auditTempDir('airlock-durable-'), 'audit.db')}`
    else ({ url: store, drop } = await freshAuditDatabase())
  })

  afterAll(async () => {
    await drop?.()
  })

  it(`has every statement the server logged, after ${KILLS_UNDER_LOAD} kills under load at random points`, async () => {
    const logFrom = statSync(cluster.logFile).size
    const started = performance.now()
    const port = await freePort()
    const { dir, configFile, tokens } = writeAuditGatewayConfig({
      port,
      audit: { store, required: true },
      connections: [
        {
          name: 'pg',
          type: 'postgres',
          upstream: { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'PG_APP_PASSWORD' }, tls: { mode: 'disable' } },
          access: { groups: ['eng'] },
        },
      ],
    })
    const gatewayEnv = { PG_APP_PASSWORD: cluster.app.password, AIRLOCK_AUDIT_JOURNAL: join(dir, 'journal') }
    let gateway = await spawnAuditGateway(configFile, gatewayEnv)
    const tunnel = spawnAirlock(['connect', 'pg', '--json', '--no-local-secret'], { env: { AIRLOCK_GATEWAY: gateway.url, AIRLOCK_TOKEN: tokens.user } })
    const ready = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
    const clientEnv = { PGHOST: '127.0.0.1', PGPORT: String(ready.port), PGUSER: 'app', PGDATABASE: 'app', PGSSLMODE: 'disable', PGPASSWORD: 'unused', PGCONNECT_TIMEOUT: '5' }
    const kills: string[] = []
    let underLoad = 0
    const gateways = [gateway]
    try {
      for (let round = 0; underLoad < KILLS_UNDER_LOAD && round < MAX_ROUNDS; round++) {
        if (round % 6 === 5) {
          // Killed while starting: replaying the journal, or before it listens. The running gateway
          // goes first (it holds the journal's lock and the port), idle, so not counted as under load.
          await gateway.kill()
          const starting = spawnAirlock(['gateway', 'serve', '--config', configFile], { env: gatewayEnv })
          const delay = 100 + Math.floor(Math.random() * 900)
          await new Promise((resolve) => setTimeout(resolve, delay))
          await starting.stop('SIGKILL')
          kills.push(`idle, then starting +${delay}ms`)
          gateway = await spawnAuditGateway(configFile, gatewayEnv)
          gateways.push(gateway)
          continue
        }
        const mode = round % 2 === 0 ? 'simple' : 'prepared'
        const bench = startClient('pgbench', ['-n', '-c', '3', '-T', '30', '-M', mode], clientEnv)
        const psql = startClient('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], clientEnv, psqlScript(round))
        // Load first (clients connected, statements flowing), then a random point within it.
        const roundFrom = statSync(cluster.logFile).size
        const loadBy = performance.now() + 10_000
        while (airlockStatementsSince(cluster.logFile, roundFrom) < 20 && performance.now() < loadBy) await new Promise((resolve) => setTimeout(resolve, 50))
        const delay = Math.floor(Math.random() * 800)
        await new Promise((resolve) => setTimeout(resolve, delay))
        const before = statSync(cluster.logFile).size
        await new Promise((resolve) => setTimeout(resolve, 50))
        const flowing = airlockStatementsSince(cluster.logFile, before) > 0
        await gateway.kill()
        if (flowing) underLoad++
        kills.push(`${mode} +${delay}ms${flowing ? '' : ' (idle)'}`)
        // The next gateway starts (and replays) while the clients notice the old one is gone.
        const next = spawnAuditGateway(configFile, gatewayEnv)
        for (const client of [bench, psql]) {
          const timer = setTimeout(() => client.child.kill('SIGKILL'), 15_000)
          await client.done
          clearTimeout(timer)
        }
        gateway = await next
        gateways.push(gateway)
      }
      // Everything the journal held is stored once the gateway stops cleanly.
      expect(await gateway.stop()).toBe(0)
    } finally {
      await gateway.kill().catch(() => undefined)
      await tunnel.stop('SIGINT')
    }
    expect(underLoad, `kills: ${kills.join(', ')}`).toBe(KILLS_UNDER_LOAD)
    // The kills landed between journal and store: restarts stored what the killed gateway had only journaled.
    const replayed = gateways
      .flatMap((each) => each.process.stdout().split('\n'))
      .filter((line) => line.includes('"audit.replayed"'))
      .reduce((sum, line) => sum + (JSON.parse(line) as { records: number }).records, 0)
    expect(replayed).toBeGreaterThan(0)

    const access = await storeAccess(store)
    const rows = await access.rows()
    await access.close()
    const begins = new Map<string, string>()
    const recordedSessions = new Set<string>()
    for (const row of rows) {
      if (row.type === 'session.start') recordedSessions.add((JSON.parse(row.record) as { session: string }).session)
      if (row.type !== 'statement.begin') continue
      const record = JSON.parse(row.record) as { session: string; sequence: number; text: string }
      begins.set(`${record.session}#${record.sequence}`, record.text)
    }
    const logged = loggedStatements(cluster.logFile, logFrom)
    const redactor = createRedactor([cluster.app.password])
    const missing: string[] = []
    let statements = 0
    // Every session the server saw from the gateway was recorded before its first statement.
    expect([...logged.keys()].filter((session) => !recordedSessions.has(session))).toEqual([])
    const sessions = [...logged]
    for (const [session, lines] of sessions) {
      let sequence = 0
      for (const line of lines) {
        for (const text of line.texts) {
          sequence++
          statements++
          const recorded = begins.get(`${session}#${sequence}`)
          if (recorded !== redactor.redact(text).text) missing.push(`${session}#${sequence}: logged ${JSON.stringify(text)}, recorded ${JSON.stringify(recorded)}`)
        }
      }
    }
    console.log(`${kind}: ${kills.length} kills (${underLoad} under load) in ${Math.round(performance.now() - started)} ms (${kills.join(', ')}); ${statements} logged statements in ${sessions.length} sessions, all recorded: ${missing.length === 0}; ${replayed} records replayed from journals`)
    expect(missing.slice(0, 10), `${missing.length} of ${statements} logged statements lack their record; kills: ${kills.join(', ')}`).toEqual([])
    expect(sessions.length).toBeGreaterThan(KILLS_UNDER_LOAD)
    expect(statements).toBeGreaterThan(10 * KILLS_UNDER_LOAD)

    const opened = await openStore(parseStoreLocation(store), { readonly: true })
    try {
      const report = await verifyStore(opened)
      expect(report.ok, JSON.stringify(report)).toBe(true)
    } finally {
      await opened.close()
    }
    const starts = rows.filter((row) => row.type === 'gateway.start').map((row) => JSON.parse(row.record) as { unclean: boolean })
    expect(starts.filter((start) => start.unclean).length).toBeGreaterThanOrEqual(underLoad)
  }, 240_000)
})
