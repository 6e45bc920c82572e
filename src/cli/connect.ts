/**
 * `airlock connect`: a local port whose every connection rides its own tunnel, optionally with a
 * command run against it. Kept out of the oclif class so tests can drive it directly.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { randomBytes } from 'node:crypto'
import { type ConnectionSummary, GatewayClient } from '../api/client.js'
import type { ClientCredentials } from '../auth/index.js'
import { AirlockError } from '../errors.js'
import { runCommandSession } from '../protocols/command/front.js'
import { createPostgresFront } from '../protocols/postgres/front.js'
import { type ConnectEvent, type LocalFront, type LocalListener, listenLocal, openTunnel } from '../tunnel/index.js'
import { VERSION } from '../version.js'

export interface ConnectOptions {
  credentials: ClientCredentials
  connection: string
  port: number
  onEvent: (event: ConnectEvent) => void
  /** Database connections: require a per-run local secret from local clients (default true). */
  localSecret?: boolean
  /** The connection as the gateway described it, when the caller already asked. */
  summary?: ConnectionSummary
}

export interface Connected {
  listener: LocalListener
  connection: ConnectionSummary
  /** The password local clients must present, when the connection's front checks one. */
  localSecret: string | undefined
}

/** Checks the connection is usable (fails fast with the gateway's reason), then listens. */
export async function startConnect(options: ConnectOptions): Promise<Connected> {
  const connection = options.summary ?? (await new GatewayClient(options.credentials).connection(options.connection))
  let localSecret: string | undefined
  let front: LocalFront | undefined
  if (connection.type === 'postgres') {
    localSecret = options.localSecret === false ? undefined : randomBytes(24).toString('base64url')
    front = createPostgresFront({ localSecret })
  }
  const listener = await listenLocal({
    port: options.port,
    onEvent: options.onEvent,
    ...(front === undefined ? {} : { front }),
    // A fresh token per local connection: a long-running connect outlives many.
    open: async (params) =>
      openTunnel({
        gateway: options.credentials.gateway,
        token: await options.credentials.bearer(),
        connection: options.connection,
        clientVersion: VERSION,
        ...(params === undefined ? {} : { params }),
      }),
  })
  return { listener, connection, localSecret }
}

/**
 * Environment for a command run against the tunnel: where to connect and, for Postgres, the libpq
 * variables (the local secret as PGPASSWORD); never the gateway token, and none of the libpq
 * settings that could send the client elsewhere or change the session behind the gateway's back.
 */
export function commandEnvironment(connected: Connected, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { listener, connection, localSecret } = connected
  const env: NodeJS.ProcessEnv = { ...base, AIRLOCK_HOST: listener.host, AIRLOCK_PORT: String(listener.port) }
  delete env.AIRLOCK_TOKEN
  if (connection.type === 'postgres') {
    for (const name of ['PGOPTIONS', 'PGSERVICE', 'PGSERVICEFILE', 'PGPASSFILE', 'PGHOSTADDR', 'PGSSLCERT', 'PGSSLKEY', 'PGREQUIRESSL']) delete env[name]
    Object.assign(env, {
      PGHOST: listener.host,
      PGPORT: String(listener.port),
      PGUSER: connection.user ?? 'airlock',
      PGDATABASE: connection.database ?? connection.name,
      PGSSLMODE: 'disable',
      PGGSSENCMODE: 'disable',
      DATABASE_URL: postgresUrl(connected),
    })
    if (localSecret === undefined) delete env.PGPASSWORD
    else env.PGPASSWORD = localSecret
  }
  return env
}

/** `postgresql://user:secret@127.0.0.1:port/db?sslmode=disable` — always the IP, never `localhost`. */
export function postgresUrl(connected: Connected): string {
  const { listener, connection, localSecret } = connected
  const user = encodeURIComponent(connection.user ?? 'airlock')
  const auth = localSecret === undefined ? user : `${user}:${encodeURIComponent(localSecret)}`
  return `postgresql://${auth}@${listener.host}:${listener.port}/${encodeURIComponent(connection.database ?? connection.name)}?sslmode=disable`
}

/** How to reach the tunnel, for the status display. */
export function connectInstructions(connected: Connected): string[] {
  const { listener, connection } = connected
  if (connection.type === 'postgres') {
    const url = postgresUrl(connected)
    return [`DSN   ${url}`, `psql  psql "${url}"`]
  }
  return [`point your client at host ${listener.host} port ${listener.port}`]
}

/**
 * Runs CMD with inherited stdio and resolves with its exit status, passed through unchanged
 * (a signal death becomes 128 + signal number, as shells report it).
 */
export function runLocalCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [file, ...args] = argv
  if (file === undefined) return Promise.reject(new AirlockError('usage', 'no command given after --'))
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit', env })
    // The terminal sends Ctrl-C to the whole process group; the child decides, we wait for it.
    const ignore = (): void => {}
    process.on('SIGINT', ignore)
    child.once('error', (error: NodeJS.ErrnoException) => {
      process.off('SIGINT', ignore)
      reject(
        new AirlockError('usage', `cannot run ${JSON.stringify(file)}: ${error.code === 'ENOENT' ? 'command not found' : error.code ?? error.message}`, {
          hint: 'check the command after --',
        }),
      )
    })
    child.once('exit', (code, signal) => {
      process.off('SIGINT', ignore)
      if (code !== null) resolve(code)
      else resolve(128 + (signal ? (constants.signals[signal] ?? 0) : 0))
    })
  })
}

/** The connection's description from the gateway: its type decides what `connect` does. */
export function describeConnection(credentials: ClientCredentials, name: string): Promise<ConnectionSummary> {
  return new GatewayClient(credentials).connection(name)
}

export interface TerminalSessionOptions {
  credentials: ClientCredentials
  connection: string
  /** Appended to the connection's command when it allows arguments. */
  args: readonly string[]
  stdin: NodeJS.ReadStream
  stdout: NodeJS.WriteStream
}

/**
 * Resets what a full-screen program may have left on, for when the session ended under it: SGR
 * attributes, the alternate screen, a hidden cursor, mouse reporting, bracketed paste.
 */
const TERMINAL_RESET = '\x1b[0m\x1b[?1049l\x1b[?47l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1006l\x1b[?2004l\r\n'

/**
 * `airlock connect NAME` for a command connection: the local terminal in raw mode wired to a pty on
 * the gateway. Window resizes (SIGWINCH) follow, signals sent to this process are forwarded, and the
 * terminal is restored on every way out (remote exit, gateway error, tunnel drop, exception, process
 * exit). Resolves with the remote exit status; a dropped tunnel rejects with `tunnel-dropped` (255).
 */
export async function runTerminalSession(options: TerminalSessionOptions): Promise<number> {
  const { stdin, stdout } = options
  if (!stdin.isTTY || !stdout.isTTY) {
    throw new AirlockError('usage', `${options.connection} is a command connection: \`airlock connect\` needs a terminal`, {
      hint: `for scripts and pipes use \`airlock exec ${options.connection} -i "..."\``,
    })
  }
  const size = (): { cols: number; rows: number } => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 })
  const { transport } = await openTunnel({
    gateway: options.credentials.gateway,
    token: await options.credentials.bearer(),
    connection: options.connection,
    clientVersion: VERSION,
    params: { mode: 'pty', ...size(), ...(options.args.length > 0 ? { args: [...options.args] } : {}) },
  })

  const wasRaw = stdin.isRaw
  let restored = false
  const restore = (): void => {
    if (restored) return
    restored = true
    process.off('exit', restore)
    stdin.setRawMode(wasRaw)
    stdin.pause()
  }
  process.once('exit', restore)
  stdin.setRawMode(true)
  // Node's tty.WriteStream turns SIGWINCH into 'resize'.
  const onResize = (): void => transport.control({ type: 'resize', ...size() })
  stdout.on('resize', onResize)
  try {
    return await runCommandSession(transport, { stdin, stdout, stderr: process.stderr }, { signals: ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'], size: size() })
  } catch (error) {
    stdout.write(TERMINAL_RESET)
    throw error
  } finally {
    stdout.off('resize', onResize)
    restore()
  }
}
