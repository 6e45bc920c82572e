/**
 * Throwaway PostgreSQL clusters for integration tests: `initdb` into a fresh temp directory (as the `postgres` OS
 * user when the tests run as root), a free TCP port on 127.0.0.1, optional TLS with a fresh test CA, a superuser
 * reachable without a password over the private unix socket, and a password-protected `app` role owning database `app`.
 *
 * A cluster left running when the test process ends is stopped by a process 'exit' handler; a detached watchdog
 * also stops it (and removes its directory) within a second or two if the process dies without running handlers.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, dirname, join } from 'node:path'
import { createTestCa } from './tls.js'

export type PgAuthMethod = 'scram-sha-256' | 'md5' | 'password' | 'trust'

export interface PgClusterOptions {
  /** password_encryption + pg_hba method for TCP: 'scram-sha-256' (default) | 'md5' | 'password' | 'trust' */
  auth?: PgAuthMethod
  /** ssl = on with a server cert signed by a fresh test CA (default true) */
  ssl?: boolean
  /** extra postgresql.conf lines, e.g. { log_statement: 'all' } */
  settings?: Record<string, string>
}

export interface PgCluster {
  host: '127.0.0.1'
  /** a free port chosen by the helper */
  port: number
  dataDir: string
  /** superuser (OS/DB user postgres) can connect over the unix socket in socketDir without a password */
  socketDir: string
  superuser: { user: 'postgres'; password: string }
  /** role app (LOGIN, password hashed per `auth`) owns database app */
  app: { user: 'app'; password: string; database: 'app' }
  /** PEM of the test CA that signed the server certificate (undefined when ssl false) */
  caFile?: string
  caPem?: string
  /** the server certificate's CN; SANs are DNS:localhost and IP:127.0.0.1 */
  serverName: 'localhost'
  /** the server log (logging_collector off; pg_ctl -l logFile) */
  logFile: string
  /** Runs SQL as superuser via psql over the socket (statements one by one, ON_ERROR_STOP); returns stdout (-tA) without the final newline; throws with stderr on failure. */
  psql(sql: string, database?: string): Promise<string>
  /** pg_ctl stop -m fast, then removes the directory. Idempotent. */
  stop(): Promise<void>
  /** stop + start again (same port/data), for tests of upstream restarts */
  restart(): Promise<void>
}

const HOST = '127.0.0.1'
const SERVER_NAME = 'localhost'
const START_ATTEMPTS = 5
const PORT_IN_USE = /could not bind|Address already in use|could not create any TCP\/IP sockets/i

// ---------------------------------------------------------------------------------------------------------------
// Environment: binaries, the postgres OS user, child process helpers

let binDirCache: string | undefined

/** Directory of the PostgreSQL server binaries: $PG_BINDIR, else where `initdb` on PATH really lives, else the newest /usr/lib/postgresql/N/bin. */
function pgBinDir(): string {
  if (binDirCache) return binDirCache
  const fromEnv = process.env.PG_BINDIR
  if (fromEnv && existsSync(join(fromEnv, 'initdb'))) return (binDirCache = fromEnv)
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'initdb'))) return (binDirCache = dirname(realpathSync(join(dir, 'initdb'))))
  }
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
  for (const version of versions) {
    const dir = join(root, version, 'bin')
    if (existsSync(join(dir, 'initdb'))) return (binDirCache = dir)
  }
  throw new Error('PostgreSQL server binaries not found (set PG_BINDIR, or put initdb on PATH)')
}

/** Absolute path of a PostgreSQL client/server program of the same version (psql, pgbench, pg_isready, ...). */
export const pgBinary = (name: string): string => join(pgBinDir(), name)
const bin = pgBinary

const isRoot = (): boolean => process.getuid?.() === 0

let postgresIdsCache: { uid: number; gid: number } | undefined

function postgresIds(): { uid: number; gid: number } {
  if (!postgresIdsCache) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
    postgresIdsCache = { uid: id('-u'), gid: id('-g') }
  }
  return postgresIdsCache
}

/** Makes `path` belong to the postgres OS user (a no-op unless running as root). */
function giveToPostgres(path: string): void {
  if (!isRoot()) return
  const { uid, gid } = postgresIds()
  chownSync(path, uid, gid)
}

/** argv that runs `command` as the postgres OS user when we are root, as ourselves otherwise. */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args]
}

/** The environment for children: ours without PG* variables a test may have set. */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value
  return { ...env, ...extra }
}

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

function run(command: string, args: string[], options: { cwd?: string; input?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: childEnv(), stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs ?? 60_000} ms]`
      child.kill('SIGKILL')
    }, options.timeoutMs ?? 60_000)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(options.input ?? '')
  })
}

function runAsPostgres(command: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  const [cmd, argv] = asPostgres(command, args)
  return run(cmd, argv, options)
}

function logTail(logFile: string, lines = 30): string {
  try {
    return readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n').trim()
  } catch {
    return '(no server log)'
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, HOST, () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))))
    })
  })
}

const sqlLiteral = (value: string): string => `'${value.replace(/'/g, "''")}'`

/** 32 random base64url characters. */
const randomPassword = (): string => randomBytes(24).toString('base64url')

// ---------------------------------------------------------------------------------------------------------------
// Cleanup when the test process ends without stop()

interface Live {
  root: string
  dataDir: string
  watchdog: ChildProcess | undefined
}

const live = new Set<Live>()
let exitHandlerInstalled = false

function killWatchdog(entry: Live): void {
  const pid = entry.watchdog?.pid
  entry.watchdog = undefined
  if (!pid) return
  try {
    process.kill(-pid, 'SIGKILL') // its own process group: the shell and its `sleep`
  } catch {
    // already gone
  }
}

function stopImmediatelySync(entry: Live): void {
  killWatchdog(entry)
  const [cmd, argv] = asPostgres(bin('pg_ctl'), ['stop', '-m', 'immediate', '-w', '-t', '10', '-D', entry.dataDir])
  spawnSync(cmd, argv, { stdio: 'ignore', env: childEnv(), timeout: 15_000 })
  rmSync(entry.root, { recursive: true, force: true })
}

function register(entry: Live): void {
  live.add(entry)
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true
    process.on('exit', () => {
      for (const each of live) {
        try {
          stopImmediatelySync(each)
        } catch {
          // best effort while exiting
        }
      }
      live.clear()
    })
  }
  // A detached shell that outlives us if we are killed (SIGKILL, a terminated worker): once our pid is gone,
  // it stops the server and removes the directory. Killed by stop() and by the exit handler.
  const [cmd, argv] = asPostgres(bin('pg_ctl'), [])
  const script = 'p=$1 r=$2 d=$3; shift 3; while kill -0 "$p" 2>/dev/null; do sleep 1; done; "$@" stop -m immediate -w -t 10 -D "$d" >/dev/null 2>&1; rm -rf "$r"'
  try {
    const watchdog = spawn('sh', ['-c', script, 'airlock-pg-watchdog', String(process.pid), entry.root, entry.dataDir, cmd, ...argv], {
      detached: true,
      stdio: 'ignore',
      env: childEnv(),
    })
    watchdog.on('error', () => {})
    watchdog.unref()
    entry.watchdog = watchdog
  } catch {
    // the exit handler still covers normal exits
  }
}

function unregister(entry: Live): void {
  killWatchdog(entry)
  live.delete(entry)
}

// ---------------------------------------------------------------------------------------------------------------

function configLines(options: { port: number; socketDir: string; auth: PgAuthMethod; ssl?: { certFile: string; keyFile: string }; settings: Record<string, string> }): string {
  const settings: Record<string, string> = {
    listen_addresses: HOST,
    port: String(options.port),
    unix_socket_directories: options.socketDir,
    password_encryption: options.auth === 'md5' ? 'md5' : 'scram-sha-256',
    fsync: 'off',
    max_connections: '200',
    shared_buffers: '32MB',
    logging_collector: 'off',
    ssl: options.ssl ? 'on' : 'off',
    ...(options.ssl ? { ssl_cert_file: options.ssl.certFile, ssl_key_file: options.ssl.keyFile } : {}),
    ...options.settings,
  }
  const lines = ['# written by test/helpers/pg-cluster.ts']
  for (const [key, value] of Object.entries(settings)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key)) throw new Error(`invalid PostgreSQL setting name ${JSON.stringify(key)}`)
    if (/[\r\n]/.test(value)) throw new Error(`invalid value for PostgreSQL setting ${key}`)
    lines.push(`${key} = ${sqlLiteral(value)}`)
  }
  return `${lines.join('\n')}\n`
}

function hbaLines(auth: PgAuthMethod): string {
  return [
    '# written by test/helpers/pg-cluster.ts',
    '# TYPE  DATABASE     USER  ADDRESS        METHOD',
    'local   all          all                  trust',
    'local   replication  all                  trust',
    `host    all          all   127.0.0.1/32   ${auth}`,
    `host    replication  all   127.0.0.1/32   ${auth}`,
    '',
  ].join('\n')
}

export async function startPgCluster(options: PgClusterOptions = {}): Promise<PgCluster> {
  const auth: PgAuthMethod = options.auth ?? 'scram-sha-256'
  const ssl = options.ssl ?? true
  const settings = options.settings ?? {}

  // Short fixed base: the socket path (root/.s.PGSQL.NNNNN) must stay under ~107 bytes.
  const root = mkdtempSync('/tmp/airlock-pg-')
  const entry: Live = { root, dataDir: join(root, 'data'), watchdog: undefined }
  const dataDir = entry.dataDir
  const logFile = join(root, 'server.log')
  const confFile = join(dataDir, 'airlock.conf')
  const superuser = { user: 'postgres' as const, password: randomPassword() }
  const app = { user: 'app' as const, password: randomPassword(), database: 'app' as const }
  let port = 0
  let tls: { caFile: string; caPem: string; certFile: string; keyFile: string } | undefined

  const pgCtl = (args: string[], timeoutMs = 60_000) => runAsPostgres(bin('pg_ctl'), args, { cwd: root, timeoutMs })
  const startServer = () => pgCtl(['start', '-w', '-t', '30', '-D', dataDir, '-l', logFile])
  const stopServer = (mode: 'fast' | 'immediate') => pgCtl(['stop', '-m', mode, '-w', '-t', '30', '-D', dataDir])

  const psql = async (sql: string, database = 'postgres'): Promise<string> => {
    const args = ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-h', root, '-p', String(port), '-U', 'postgres', '-d', database, '-f', '-']
    const result = await run(bin('psql'), args, { input: sql, timeoutMs: 60_000 })
    if (result.code !== 0) throw new Error(`psql failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`)
    return result.stdout.replace(/\n$/, '')
  }

  try {
    chmodSync(root, 0o700)
    giveToPostgres(root)
    mkdirSync(dataDir, { mode: 0o700 })
    chmodSync(dataDir, 0o700)
    giveToPostgres(dataDir)
    const pwFile = join(root, 'superuser.pw')
    writeFileSync(pwFile, `${superuser.password}\n`, { mode: 0o600 })
    giveToPostgres(pwFile)

    // initdb runs in the background while openssl makes the certificates.
    const initdb = runAsPostgres(
      bin('initdb'),
      ['-D', dataDir, '-U', 'postgres', `--pwfile=${pwFile}`, '--auth-local=trust', `--auth-host=${auth}`, '--no-locale', '-E', 'UTF8', '--no-sync', '--no-instructions'],
      { cwd: root, timeoutMs: 120_000 },
    )
    let tlsError: unknown
    try {
      if (ssl) {
        const tlsDir = join(root, 'tls')
        const ca = createTestCa(tlsDir)
        const server = ca.issue(SERVER_NAME, [`DNS:${SERVER_NAME}`, `IP:${HOST}`])
        for (const file of readdirSync(tlsDir)) giveToPostgres(join(tlsDir, file))
        chmodSync(tlsDir, 0o755)
        giveToPostgres(tlsDir)
        chmodSync(server.keyFile, 0o600)
        tls = { caFile: ca.caFile, caPem: ca.caPem, certFile: server.certFile, keyFile: server.keyFile }
      }
    } catch (error) {
      tlsError = error
    }
    const initialized = await initdb
    rmSync(pwFile, { force: true })
    if (initialized.code !== 0) throw new Error(`initdb failed (exit ${initialized.code}): ${initialized.stderr.trim() || initialized.stdout.trim()}`)
    if (tlsError) throw tlsError

    writeFileSync(join(dataDir, 'pg_hba.conf'), hbaLines(auth))
    const mainConf = join(dataDir, 'postgresql.conf')
    writeFileSync(mainConf, `${readFileSync(mainConf, 'utf8')}\ninclude 'airlock.conf'\n`)

    for (let attempt = 1; ; attempt++) {
      port = await freePort()
      writeFileSync(confFile, configLines({ port, socketDir: root, auth, ssl: tls, settings }))
      giveToPostgres(confFile)
      const started = await startServer()
      if (started.code === 0) break
      const log = logTail(logFile)
      // A server that half-started must not linger before a retry.
      await stopServer('immediate').catch(() => undefined)
      if (attempt < START_ATTEMPTS && PORT_IN_USE.test(log)) continue
      throw new Error(`pg_ctl start failed (exit ${started.code}): ${started.stderr.trim() || started.stdout.trim()}\n--- server log ---\n${log}`)
    }
    register(entry)

    await psql(
      [
        `ALTER ROLE postgres PASSWORD ${sqlLiteral(superuser.password)};`, // re-hashed per password_encryption
        `CREATE ROLE app LOGIN PASSWORD ${sqlLiteral(app.password)};`,
        'CREATE DATABASE app OWNER app;',
      ].join('\n'),
    )
  } catch (error) {
    unregister(entry)
    await stopServer('immediate').catch(() => undefined)
    const log = logTail(logFile)
    rmSync(root, { recursive: true, force: true })
    if (error instanceof Error && !error.message.includes('--- server log ---') && log !== '(no server log)') {
      error.message += `\n--- server log ---\n${log}`
    }
    throw error
  }

  let stopped = false
  const cluster: PgCluster = {
    host: HOST,
    port,
    dataDir,
    socketDir: root,
    superuser,
    app,
    ...(tls ? { caFile: tls.caFile, caPem: tls.caPem } : {}),
    serverName: SERVER_NAME,
    logFile,
    psql,
    async stop() {
      if (stopped) return
      stopped = true
      const result = await stopServer('fast')
      if (result.code !== 0 && existsSync(join(dataDir, 'postmaster.pid'))) await stopServer('immediate')
      unregister(entry)
      rmSync(root, { recursive: true, force: true })
    },
    async restart() {
      if (stopped) throw new Error('cluster already stopped')
      const down = await stopServer('fast')
      if (down.code !== 0) throw new Error(`pg_ctl stop failed (exit ${down.code}): ${down.stderr.trim() || down.stdout.trim()}`)
      for (let attempt = 1; ; attempt++) {
        const up = await startServer()
        if (up.code === 0) return
        const log = logTail(logFile)
        await stopServer('immediate').catch(() => undefined)
        if (attempt < START_ATTEMPTS && PORT_IN_USE.test(log)) {
          await new Promise((resolve) => setTimeout(resolve, 250 * attempt))
          continue
        }
        throw new Error(`pg_ctl start failed on restart (exit ${up.code}): ${up.stderr.trim() || up.stdout.trim()}\n--- server log ---\n${log}`)
      }
    },
  }
  return cluster
}

/**
 * A gateway connection's `upstream` for database app as role app over verified TLS, its password
 * from env PG_APP_PASSWORD (give the gateway `PG_APP_PASSWORD: cluster.app.password`).
 */
export function appUpstream(cluster: PgCluster): Record<string, unknown> {
  return { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'PG_APP_PASSWORD' }, tls: { mode: 'verify-full', ca: cluster.caFile, serverName: 'localhost' } }
}
