/**
 * What the benchmark runs against: a throwaway PostgreSQL cluster (SCRAM, no TLS) initialised with
 * pgbench tables, a pgbouncer in session mode in front of it (when installed), and an Airlock
 * gateway with one `airlock connect` per policy variant. Each way in is a `BenchPath`.
 *
 * ```
 * pgbench ──▶ PostgreSQL                                                         direct
 * pgbench ──▶ pgbouncer ──▶ PostgreSQL                                           pgbouncer
 * pgbench ──▶ Node relay ──▶ Node relay ──▶ PostgreSQL                          two Node relays
 * pgbench ──▶ airlock connect ══ WebSocket ══▶ airlock gateway ──▶ PostgreSQL     airlock <variant>
 * ```
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import { generateServiceToken, hashServiceToken } from '../src/auth/index.js'
import { type PgCluster, pgBinary, startPgCluster } from '../test/helpers/pg-cluster.js'
import type { PathInfo, Role } from './paths.js'
import { cleanEnv, type CommandSpec, findProgram, runCommand, Service } from './processes.js'
import type { PolicyVariant } from './variants.js'

export const REPO = fileURLToPath(new URL('../', import.meta.url))
const BIN = join(REPO, 'bin', 'run.js')
const UNAUDITED_GATEWAY = join(REPO, 'bench', 'unaudited-gateway.ts')
const NODE_RELAY = join(REPO, 'bench', 'node-relay.ts')
const HOST = '127.0.0.1'

/** postgresql.conf for benchmarking on a small shared machine: no disk waits, no checkpoints mid-run. */
const PG_SETTINGS: Record<string, string> = {
  max_connections: '200',
  shared_buffers: '256MB',
  synchronous_commit: 'off',
  max_wal_size: '2GB',
  checkpoint_timeout: '30min',
}

export interface Endpoint {
  host: string
  port: number
  user: string
  database: string
  password: string
}

export interface BenchPath extends PathInfo {
  variant?: PolicyVariant
  endpoint: Endpoint
  /** The proxy processes in this path, whose CPU time is charged to it. */
  processes: Partial<Record<Role, Service>>
}

export interface StackOptions {
  scale: number
  variants: readonly PolicyVariant[]
  pgbouncer: boolean
  /** Also two bare Node TCP relays in a row (bench/node-relay.ts): the floor of the tunnel's shape. */
  relays?: boolean
  /** Extra node flags for the gateway and CLI processes (e.g. --cpu-prof). */
  nodeFlags?: (role: 'gateway' | 'cli', variant?: PolicyVariant) => string[]
  progress: (line: string) => void
  /** Aborts a long start (pgbench -i) on Ctrl-C. */
  signal?: AbortSignal
}

/** libpq environment and connection arguments for `endpoint`. */
export function clientCommand(program: string, endpoint: Endpoint, args: readonly string[], database: 'last' | 'flag'): CommandSpec {
  const connection = ['-h', endpoint.host, '-p', String(endpoint.port), '-U', endpoint.user]
  return {
    command: pgBinary(program),
    args: database === 'last' ? [...connection, ...args, endpoint.database] : [...connection, '-d', endpoint.database, ...args],
    env: cleanEnv({ PGPASSWORD: endpoint.password, PGSSLMODE: 'disable', PGGSSENCMODE: 'disable', PGCONNECT_TIMEOUT: '10' }),
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, HOST, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))))
    })
  })
}

function postgresUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())
  return { name: 'postgres', uid: id('-u'), gid: id('-g') }
}

export class Stack {
  cluster: PgCluster | undefined
  readonly paths: BenchPath[] = []
  /** Why a path is missing, for the report. */
  readonly notes: string[] = []
  readonly versions: Record<string, string> = {}
  /** The gateway processes: the product's, and the benchmark-only one without audit when a variant needs it. */
  readonly gateways: Service[] = []
  pgbouncer: Service | undefined
  readonly connects = new Map<string, Service>()
  private readonly services: Service[] = []
  private workDir: string | undefined
  private stopped = false

  constructor(private readonly options: StackOptions) {}

  async start(): Promise<void> {
    const { progress } = this.options
    this.workDir = mkdtempSync('/tmp/airlock-bench-')
    chmodSync(this.workDir, 0o755)

    progress('starting PostgreSQL (scram-sha-256, no TLS)')
    const cluster = await startPgCluster({ auth: 'scram-sha-256', ssl: false, settings: PG_SETTINGS })
    this.cluster = cluster
    this.versions.postgres = await cluster.psql('show server_version')
    const direct: Endpoint = { host: HOST, port: cluster.port, user: cluster.app.user, database: cluster.app.database, password: cluster.app.password }

    progress(`pgbench -i -s ${this.options.scale}`)
    const init = await runCommand(clientCommand('pgbench', direct, ['-i', '-q', '-s', String(this.options.scale)], 'last'), { timeoutMs: 600_000, ...(this.options.signal ? { signal: this.options.signal } : {}) })
    if (init.code !== 0) throw new Error(`pgbench -i failed (exit ${init.code}${init.timedOut ? ', timed out' : ''}):\n${init.stderr.trim()}`)
    this.paths.push({ id: 'direct', label: 'direct', kind: 'direct', endpoint: direct, processes: {} })

    if (this.options.pgbouncer) await this.startPgbouncer(cluster, direct)
    if (this.options.relays === true) await this.startRelays(direct)
    await this.startAirlock(cluster)

    for (const path of this.paths) await this.smokeTest(path)
  }

  private async startPgbouncer(cluster: PgCluster, direct: Endpoint): Promise<void> {
    const program = findProgram('pgbouncer')
    if (program === undefined) {
      this.notes.push('pgbouncer is not installed (Debian package `pgbouncer`): its column is skipped')
      return
    }
    this.versions.pgbouncer = execFileSync(program, ['--version'], { encoding: 'utf8' }).split('\n')[0]?.replace(/^PgBouncer\s+/i, '') ?? '?'
    const dir = join(this.workDir!, 'pgbouncer')
    mkdirSync(dir, { mode: 0o700 })
    // The SCRAM secret as stored by the server: pgbouncer verifies the client against it and, with
    // the keys the client's proof yields, authenticates to the server without knowing the password.
    const secret = await cluster.psql(`select rolpassword from pg_authid where rolname = '${direct.user}'`)
    if (!secret.startsWith('SCRAM-SHA-256$')) throw new Error('expected a SCRAM-SHA-256 secret for the app role')
    const authFile = join(dir, 'userlist.txt')
    writeFileSync(authFile, `"${direct.user}" "${secret}"\n`, { mode: 0o600 })
    const user = postgresUser()

    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const ini = join(dir, 'pgbouncer.ini')
      writeFileSync(
        ini,
        [
          '[databases]',
          `${direct.database} = host=${HOST} port=${direct.port} dbname=${direct.database}`,
          '',
          '[pgbouncer]',
          `listen_addr = ${HOST}`,
          `listen_port = ${port}`,
          'unix_socket_dir =',
          'auth_type = scram-sha-256',
          `auth_file = ${authFile}`,
          'pool_mode = session',
          'max_client_conn = 200',
          'default_pool_size = 40',
          'server_tls_sslmode = disable',
          'ignore_startup_parameters = extra_float_digits',
          '',
        ].join('\n'),
        { mode: 0o600 },
      )
      if (user !== undefined) for (const file of [dir, authFile, ini]) chownSync(file, user.uid, user.gid)
      const service = this.track(new Service('pgbouncer', { command: program, args: [ini], env: cleanEnv(), ...(user ? { user } : {}) }, join(this.workDir!, `pgbouncer-${attempt}.log`)))
      try {
        await service.waitForLine((line) => (typeof line === 'string' && line.includes(`listening on ${HOST}:${port}`) ? true : undefined), 15_000)
      } catch (error) {
        await service.stop('SIGKILL')
        if (attempt < 3 && /Address already in use/i.test(service.log())) continue
        throw error
      }
      this.pgbouncer = service
      this.paths.push({ id: 'pgbouncer', label: 'pgbouncer', kind: 'pgbouncer', endpoint: { ...direct, port }, processes: { pgbouncer: service } })
      return
    }
  }

  /** pgbench → relay → relay → PostgreSQL: the second relay starts first, so the first has its port to connect to. */
  private async startRelays(direct: Endpoint): Promise<void> {
    this.options.progress('starting two bare Node TCP relays (the floor of the tunnel\'s shape)')
    let target = direct.port
    const hops: Service[] = []
    for (const hop of ['second', 'first']) {
      const service = this.track(
        new Service(`Node relay (${hop} hop)`, { command: process.execPath, args: ['--import', 'tsx', NODE_RELAY, String(target)], env: cleanEnv(), cwd: REPO }, join(this.workDir!, `relay-${hop}.log`)),
      )
      target = await service.waitForLine((line) => {
        const record = line as { event?: unknown; port?: unknown } | null
        return typeof record === 'object' && record !== null && record.event === 'relay.listen' && typeof record.port === 'number' ? record.port : undefined
      }, 30_000)
      hops.unshift(service)
    }
    this.paths.push({ id: 'node-relays', label: 'two Node relays', kind: 'relays', endpoint: { ...direct, port: target }, processes: { cli: hops[0]!, gateway: hops[1]! } })
  }

  private async startAirlock(cluster: PgCluster): Promise<void> {
    const { variants, nodeFlags, progress } = this.options
    const token = generateServiceToken()
    const passwordEnv = 'AIRLOCK_BENCH_PG_PASSWORD'
    const connection = (variant: PolicyVariant): Record<string, unknown> => ({
      name: `bench-${variant.id}`,
      type: 'postgres',
      upstream: {
        host: HOST,
        port: cluster.port,
        database: cluster.app.database,
        user: cluster.app.user,
        password: { env: passwordEnv },
        tls: { mode: 'disable' },
      },
      access: { groups: ['bench'] },
      ...((parseYaml(variant.yaml) as Record<string, unknown> | null) ?? {}),
    })
    const gatewayFor = new Map<PolicyVariant, { service: Service; url: string }>()
    // One gateway for the audited variants (`airlock gateway serve`, the product), one without audit.
    for (const audited of [true, false]) {
      const served = variants.filter((variant) => (variant.audit !== false) === audited)
      if (served.length === 0) continue
      const name = audited ? 'gateway' : 'gateway-unaudited'
      const config = {
        listen: { host: HOST, port: 0 },
        auth: { serviceTokens: [{ name: 'bench', sha256: hashServiceToken(token), groups: ['bench'] }] },
        // Gateway limits, not policy: pgbench -C opens hundreds of tunnels a second from one address.
        sessions: { maxPerIdentity: 256, drainGrace: '1s' },
        limits: { upgradesPerMinutePerIp: 1_000_000 },
        audit: { store: `sqlite:${join(this.workDir!, `${name}-audit.db`)}` },
        connections: served.map(connection),
      }
      const configFile = join(this.workDir!, `${name}.yaml`)
      writeFileSync(configFile, stringifyYaml(config), { mode: 0o600 })
      progress(`starting the Airlock ${audited ? 'gateway' : 'gateway without audit (benchmark only)'}`)
      const args = audited
        ? [...(nodeFlags?.('gateway') ?? []), BIN, 'gateway', 'serve', '--config', configFile]
        : [...(nodeFlags?.('gateway') ?? []), '--import', 'tsx', UNAUDITED_GATEWAY, configFile]
      const service = this.track(
        new Service(
          audited ? 'airlock gateway' : 'airlock gateway (no audit)',
          { command: process.execPath, args, env: cleanEnv({ [passwordEnv]: cluster.app.password }), cwd: REPO },
          join(this.workDir!, `${name}.log`),
        ),
      )
      const url = await service.waitForLine((line) => {
        const record = line as { event?: unknown; url?: unknown } | null
        return typeof record === 'object' && record !== null && record.event === 'gateway.listen' && typeof record.url === 'string' ? record.url : undefined
      }, 30_000)
      this.gateways.push(service)
      for (const variant of served) gatewayFor.set(variant, { service, url })
    }

    for (const variant of variants) {
      const gateway = gatewayFor.get(variant)!
      progress(`starting airlock connect bench-${variant.id}`)
      const connect = this.track(
        new Service(
          `airlock connect ${variant.id}`,
          {
            command: process.execPath,
            args: [...(nodeFlags?.('cli', variant) ?? []), BIN, 'connect', `bench-${variant.id}`, '--json'],
            env: cleanEnv({ AIRLOCK_GATEWAY: gateway.url, AIRLOCK_TOKEN: token }),
            cwd: REPO,
          },
          join(this.workDir!, `connect-${variant.id}.log`),
        ),
      )
      const dsn = await connect.waitForLine((line) => {
        const event = line as { type?: unknown; dsn?: unknown } | null
        return typeof event === 'object' && event !== null && event.type === 'ready' && typeof event.dsn === 'string' ? event.dsn : undefined
      }, 30_000)
      this.connects.set(variant.id, connect)
      const parsed = new URL(dsn)
      this.paths.push({
        id: `airlock:${variant.id}`,
        label: `airlock ${variant.id}`,
        kind: 'tunnel',
        variant,
        endpoint: {
          host: parsed.hostname,
          port: Number(parsed.port),
          user: decodeURIComponent(parsed.username),
          database: decodeURIComponent(parsed.pathname.slice(1)),
          // The per-run local secret the CLI checks; the database password never leaves the gateway.
          password: decodeURIComponent(parsed.password),
        },
        processes: { cli: connect, gateway: gateway.service },
      })
    }
  }

  private async smokeTest(path: BenchPath): Promise<void> {
    const result = await runCommand(clientCommand('psql', path.endpoint, ['-X', '-tA', '-c', 'select 1'], 'flag'), { timeoutMs: 30_000 })
    if (result.code !== 0 || result.stdout.trim() !== '1') {
      throw new Error(`${path.label}: select 1 failed (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`)
    }
  }

  private track(service: Service): Service {
    this.services.push(service)
    return service
  }

  /** Logs of every service, for a failure report. */
  logTails(): string {
    return this.services.map((service) => `--- ${service.name} (${service.logFile}) ---\n${service.logTail()}`).join('\n')
  }

  /**
   * Stops everything, CLIs first (they exit on SIGINT like at a terminal), then the gateway
   * (SIGTERM: drain, then exit, which also writes a --cpu-prof profile), pgbouncer, the cluster.
   */
  async stop(options: { keepWorkDir?: boolean } = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await Promise.all([...this.connects.values()].map((service) => service.stop('SIGINT', 15_000)))
    await Promise.all(this.services.map((service) => service.stop(this.gateways.includes(service) || service === this.pgbouncer ? 'SIGTERM' : 'SIGINT', 15_000)))
    await this.cluster?.stop().catch(() => undefined)
    if (this.workDir !== undefined && !options.keepWorkDir) rmSync(this.workDir, { recursive: true, force: true })
  }
}
