/**
 * `airlock connect`: a local port whose every connection rides its own tunnel, optionally with a
 * command run against it. Kept out of the oclif class so tests can drive it directly.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { GatewayClient } from '../api/client.js'
import type { ClientCredentials } from '../auth/index.js'
import { AirlockError } from '../errors.js'
import { type ConnectEvent, type LocalListener, listenLocal, openTunnel } from '../tunnel/index.js'
import { VERSION } from '../version.js'

export interface ConnectOptions {
  credentials: ClientCredentials
  connection: string
  port: number
  onEvent: (event: ConnectEvent) => void
}

export interface Connected {
  listener: LocalListener
  /** The connection's type as the gateway reports it. */
  type: string
}

/** Checks the connection is usable (fails fast with the gateway's reason), then listens. */
export async function startConnect(options: ConnectOptions): Promise<Connected> {
  const summary = await new GatewayClient(options.credentials).connection(options.connection)
  const listener = await listenLocal({
    port: options.port,
    onEvent: options.onEvent,
    open: (params) =>
      openTunnel({
        gateway: options.credentials.gateway,
        token: options.credentials.token,
        connection: options.connection,
        clientVersion: VERSION,
        ...(params === undefined ? {} : { params }),
      }),
  })
  return { listener, type: summary.type }
}

/** Environment for a command run against the tunnel: where to connect, nothing that leaks. */
export function commandEnvironment(listener: LocalListener, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, AIRLOCK_HOST: listener.host, AIRLOCK_PORT: String(listener.port) }
  delete env.AIRLOCK_TOKEN
  return env
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
