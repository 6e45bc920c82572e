/**
 * Self-test of test/helpers/pg-cluster.ts: throwaway PostgreSQL clusters with SCRAM/MD5 auth, TLS from a test CA,
 * settings, restart, stop, and cleanup when the test process exits (or is killed) without stop().
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PgCluster, pgBinary, startPgCluster } from '../helpers/pg-cluster.js'

const HELPER = fileURLToPath(new URL('../helpers/pg-cluster.ts', import.meta.url))
const isRoot = process.getuid?.() === 0

interface PsqlResult {
  code: number | null
  stdout: string
  stderr: string
}

/** The real psql binary as a client over TCP, configured only through libpq environment variables. */
function clientPsql(args: string[], env: Record<string, string>): Promise<PsqlResult> {
  return new Promise((resolve, reject) => {
    const clean: NodeJS.ProcessEnv = {}
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) clean[key] = value
    const child = spawn(pgBinary('psql'), ['-X', '-tA', '-v', 'ON_ERROR_STOP=1', ...args], {
      env: { ...clean, PGCONNECT_TIMEOUT: '10', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: stdout.trim(), stderr }))
  })
}

function portRefuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return check()
}

describe('scram-sha-256 + TLS cluster', () => {
  let cluster: PgCluster
  let startupMs = 0

  beforeAll(async () => {
    const started = Date.now()
    cluster = await startPgCluster({ settings: { log_statement: 'all', 'airlock.test_note': "it's quoted" } })
    startupMs = Date.now() - started
  })

  afterAll(async () => {
    await cluster?.stop()
  })

  it('starts within a few seconds on a free port with the documented shape', () => {
    console.log(`[pg-cluster] scram+ssl cluster started in ${startupMs} ms on port ${cluster.port}`)
    expect(startupMs).toBeLessThan(15_000)
    expect(cluster.host).toBe('127.0.0.1')
    expect(cluster.port).toBeGreaterThan(0)
    expect(cluster.serverName).toBe('localhost')
    expect(cluster.superuser.user).toBe('postgres')
    expect(cluster.app).toMatchObject({ user: 'app', database: 'app' })
    expect(cluster.app.password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(cluster.superuser.password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(cluster.app.password).not.toBe(cluster.superuser.password)
    expect(cluster.caPem).toMatch(/^-----BEGIN CERTIFICATE-----/)
    expect(readFileSync(cluster.caFile!, 'utf8')).toBe(cluster.caPem)
    expect(existsSync(cluster.logFile)).toBe(true)
  })

  it('keeps the data directory private to postgres', () => {
    const mode = statSync(cluster.dataDir).mode & 0o777
    expect(mode).toBe(0o700)
    if (isRoot) expect(statSync(cluster.dataDir).uid).not.toBe(0)
  })

  it('runs SQL as superuser over the unix socket', async () => {
    expect(await cluster.psql('select current_user')).toBe('postgres')
    expect(await cluster.psql("select current_database(), pg_catalog.pg_get_userbyid(datdba) from pg_database where datname = 'app'", 'app')).toBe('app|app')
    expect(await cluster.psql('create table t(x int);\ninsert into t values (1), (2);\nselect count(*) from t;')).toBe('2')
    await expect(cluster.psql('select * from no_such_table')).rejects.toThrow(/relation "no_such_table" does not exist/)
  })

  it('lets app connect over TCP with TLS verified against the test CA (verify-full, host=localhost)', async () => {
    const result = await clientPsql(
      ['-h', 'localhost', '-p', String(cluster.port), '-U', 'app', '-d', 'app', '-c', 'select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()'],
      { PGPASSWORD: cluster.app.password, PGSSLMODE: 'verify-full', PGSSLROOTCERT: cluster.caFile! },
    )
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('app|t')
  })

  it('also verifies for the IP SAN (host=127.0.0.1)', async () => {
    const result = await clientPsql(['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'app', '-d', 'app', '-c', 'select 1'], {
      PGPASSWORD: cluster.app.password,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: cluster.caFile!,
    })
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe('1')
  })

  it('rejects a wrong password', async () => {
    const result = await clientPsql(['-h', 'localhost', '-p', String(cluster.port), '-U', 'app', '-d', 'app', '-c', 'select 1'], {
      PGPASSWORD: 'not-the-password',
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: cluster.caFile!,
    })
    expect(result.code).not.toBe(0)
    expect(result.stderr).toMatch(/password authentication failed for user "app"/)
  })

  it('requires a password from the superuser over TCP too', async () => {
    const ok = await clientPsql(['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-d', 'postgres', '-c', 'select current_user'], {
      PGPASSWORD: cluster.superuser.password,
      PGSSLMODE: 'require',
    })
    expect(ok.stdout).toBe('postgres')
    const bad = await clientPsql(['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-d', 'postgres', '-c', 'select 1'], {
      PGPASSWORD: 'wrong',
      PGSSLMODE: 'require',
    })
    expect(bad.stderr).toMatch(/password authentication failed for user "postgres"/)
  })

  it('stores SCRAM verifiers', async () => {
    expect(await cluster.psql('show password_encryption')).toBe('scram-sha-256')
    expect(await cluster.psql("select rolpassword like 'SCRAM-SHA-256%' from pg_authid where rolname = 'app'")).toBe('t')
    expect(await cluster.psql("select rolpassword like 'SCRAM-SHA-256%' from pg_authid where rolname = 'postgres'")).toBe('t')
  })

  it('applies the required and the extra settings', async () => {
    expect(await cluster.psql('show ssl')).toBe('on')
    expect(await cluster.psql('show log_statement')).toBe('all')
    expect(await cluster.psql('show airlock.test_note')).toBe("it's quoted")
    expect(await cluster.psql('show fsync')).toBe('off')
    expect(await cluster.psql('show max_connections')).toBe('200')
    expect(await cluster.psql('show shared_buffers')).toBe('32MB')
    expect(await cluster.psql('show listen_addresses')).toBe('127.0.0.1')
    expect(await cluster.psql('show unix_socket_directories')).toBe(cluster.socketDir)
    expect(await cluster.psql('show logging_collector')).toBe('off')
    // log_statement=all sends statements to the pg_ctl -l log file
    await cluster.psql("select 'marker-in-log'")
    expect(await waitFor(() => readFileSync(cluster.logFile, 'utf8').includes('marker-in-log'), 5_000)).toBe(true)
  })

  it('keeps the server key private to postgres', async () => {
    const keyFile = await cluster.psql('show ssl_key_file')
    expect(statSync(keyFile).mode & 0o777).toBe(0o600)
    if (isRoot) expect(statSync(keyFile).uid).toBe(statSync(cluster.dataDir).uid)
  })

  it('restarts on the same port with the same data', async () => {
    await cluster.psql('create table survives(x int); insert into survives values (42); grant select on survives to app;', 'app')
    const before = await cluster.psql('select pg_postmaster_start_time()')
    const port = cluster.port
    await cluster.restart()
    expect(cluster.port).toBe(port)
    expect(await cluster.psql('select pg_postmaster_start_time()')).not.toBe(before)
    expect(await cluster.psql('select x from survives', 'app')).toBe('42')
    const result = await clientPsql(['-h', 'localhost', '-p', String(cluster.port), '-U', 'app', '-d', 'app', '-c', 'select count(*) from survives'], {
      PGPASSWORD: cluster.app.password,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: cluster.caFile!,
    })
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe('1')
  })
})

describe('md5 cluster without TLS', () => {
  it('starts (in parallel with a second cluster) and uses md5 without ssl', async () => {
    const started = Date.now()
    const [md5, other] = await Promise.all([startPgCluster({ auth: 'md5', ssl: false }), startPgCluster({ auth: 'password', ssl: false })])
    const elapsed = Date.now() - started
    console.log(`[pg-cluster] two clusters (md5, password; no ssl) started in parallel in ${elapsed} ms`)
    try {
      expect(md5.port).not.toBe(other.port)
      expect(md5.dataDir).not.toBe(other.dataDir)
      expect(md5.caFile).toBeUndefined()
      expect(md5.caPem).toBeUndefined()
      expect(await md5.psql('show ssl')).toBe('off')
      expect(await md5.psql('show password_encryption')).toBe('md5')
      expect(await md5.psql("select rolpassword like 'md5%' from pg_authid where rolname = 'app'")).toBe('t')

      const ok = await clientPsql(['-h', '127.0.0.1', '-p', String(md5.port), '-U', 'app', '-d', 'app', '-c', 'select current_user'], {
        PGPASSWORD: md5.app.password,
        PGSSLMODE: 'disable',
      })
      expect(ok.stderr).toBe('')
      expect(ok.stdout).toBe('app')
      const tls = await clientPsql(['-h', '127.0.0.1', '-p', String(md5.port), '-U', 'app', '-d', 'app', '-c', 'select 1'], {
        PGPASSWORD: md5.app.password,
        PGSSLMODE: 'require',
      })
      expect(tls.stderr).toMatch(/server does not support SSL/)
      const wrong = await clientPsql(['-h', '127.0.0.1', '-p', String(md5.port), '-U', 'app', '-d', 'app', '-c', 'select 1'], {
        PGPASSWORD: 'wrong',
        PGSSLMODE: 'disable',
      })
      expect(wrong.stderr).toMatch(/password authentication failed for user "app"/)

      const plain = await clientPsql(['-h', '127.0.0.1', '-p', String(other.port), '-U', 'app', '-d', 'app', '-c', 'select current_user'], {
        PGPASSWORD: other.app.password,
        PGSSLMODE: 'disable',
      })
      expect(plain.stdout).toBe('app')
    } finally {
      await Promise.all([md5.stop(), other.stop()])
    }
    expect(existsSync(md5.socketDir)).toBe(false)
    expect(await portRefuses(md5.port)).toBe(true)
    await md5.stop() // idempotent
  })
})

describe('cleanup without stop()', () => {
  /** A child node process (tsx loader) that starts a cluster, prints its coordinates, then exits or hangs. */
  function childWithCluster(then: 'exit' | 'hang') {
    const script = [
      `const { startPgCluster } = await import(${JSON.stringify(HELPER)})`,
      'const c = await startPgCluster({ ssl: false })',
      'console.log(JSON.stringify({ dir: c.socketDir, port: c.port }))',
      then === 'hang' ? 'setInterval(() => {}, 1000)' : '',
    ].join('\n')
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const coordinates = new Promise<{ dir: string; port: number }>((resolve, reject) => {
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk
        const line = out.split('\n').find((l) => l.startsWith('{'))
        if (line) resolve(JSON.parse(line) as { dir: string; port: number })
      })
      child.on('exit', (code) => reject(new Error(`child exited (${code}) before starting a cluster: ${stderr}`)))
    })
    return { child, coordinates, exited }
  }

  it('stops the server and removes the directory when the process exits', async () => {
    const { coordinates, exited } = childWithCluster('exit')
    const { dir, port } = await coordinates
    expect(await exited).toBe(0)
    expect(existsSync(dir)).toBe(false)
    expect(await portRefuses(port)).toBe(true)
  })

  it('stops the server via the watchdog when the process is killed', async () => {
    const { child, coordinates, exited } = childWithCluster('hang')
    const { dir, port } = await coordinates
    expect(existsSync(join(dir, 'data', 'postmaster.pid'))).toBe(true)
    expect(await portRefuses(port)).toBe(false)
    child.kill('SIGKILL')
    await exited
    expect(await waitFor(() => !existsSync(dir), 15_000)).toBe(true)
    expect(await portRefuses(port)).toBe(true)
  })
})
