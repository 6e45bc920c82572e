import { Args, Flags } from '@oclif/core'
import { resolveClientCredentials } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'
import { commandEnvironment, connectInstructions, describeConnection, postgresUrl, runLocalCommand, runTerminalSession, startConnect } from '../src/cli/connect.js'
import { AirlockError } from '../src/errors.js'
import type { ConnectEvent } from '../src/tunnel/index.js'
import { formatConnectEvent } from '../src/ui/connect-events.js'

export default class Connect extends BaseCommand {
  static override summary = 'Open a local port to a connection, or run a command against it'
  static override description = `Listens on 127.0.0.1; each local client gets its own tunnel to the gateway, which holds the credential.
Database connections check a per-run local secret (printed in the DSN) so other local users cannot use the port.
With -- CMD ARGS..., runs CMD with AIRLOCK_HOST/AIRLOCK_PORT set (for Postgres also PGHOST, PGPORT, PGUSER, PGDATABASE,
PGPASSWORD=<local secret>, PGSSLMODE=disable and DATABASE_URL), passes its exit code through, and closes the tunnel after it.
--json prints one JSON object per event: ready, client-connected, client-closed, error.
For a command connection (a shell or CLI on the gateway), opens an interactive terminal session instead: -- ARGS are
appended to the remote command when the connection allows it, and the remote exit code is passed through (255 when
the tunnel drops).`
  static override strict = false
  static override args = { name: Args.string({ description: 'Connection name (see `airlock connections`)', required: true }) }
  static override flags = {
    port: Flags.integer({ char: 'p', description: 'Local port (default: a free one).', min: 0, max: 65535, default: 0 }),
    'local-secret': Flags.boolean({
      description: 'Database connections: require the per-run password printed here from local clients. Turn off only on a single-user machine.',
      default: true,
      allowNo: true,
    }),
  }
  static override examples = [
    '<%= config.bin %> connect redis-cache',
    '<%= config.bin %> connect redis-cache --port 6380',
    '<%= config.bin %> connect redis-cache -- redis-cli -h 127.0.0.1 -p 6380 ping',
    '<%= config.bin %> connect redis-cache --json',
    '<%= config.bin %> connect pg-prod -- psql',
    '<%= config.bin %> connect pg-prod -- pgbench -S -c 8 -T 10',
    '<%= config.bin %> connect ops-shell',
  ]

  async run(): Promise<void> {
    const separator = this.argv.indexOf('--')
    const command = separator < 0 ? [] : this.argv.slice(separator + 1)
    const { args, flags } = await this.parse({ ...Connect, baseFlags: Connect.baseFlags, strict: true }, separator < 0 ? this.argv : this.argv.slice(0, separator))
    const credentials = await resolveClientCredentials()

    const listeners: ((event: ConnectEvent) => void)[] = []
    const mode = this.jsonMode ? 'json' : command.length > 0 ? 'command' : process.stdout.isTTY ? 'live' : 'plain'
    const onEvent = (event: ConnectEvent): void => {
      // `ready` is printed below, once the connection's details (DSN) are known.
      if (event.type === 'ready') return
      if (mode === 'json') this.printJson(event)
      else if (mode === 'plain') process.stdout.write(formatConnectEvent(event) + '\n')
      else if (mode === 'command' && event.type === 'error') process.stderr.write(`airlock: ${formatConnectEvent(event)}\n`)
      for (const listener of listeners) listener(event)
    }
    const summary = await describeConnection(credentials, args.name)
    if (summary.type === 'command') {
      if (flags.json) throw new AirlockError('usage', `${args.name} is a command connection: an interactive terminal has no --json mode`, { hint: `use \`airlock exec ${args.name}\`` })
      process.exitCode = await runTerminalSession({ credentials, connection: args.name, args: command, stdin: process.stdin, stdout: process.stdout })
      return
    }
    const connected = await startConnect({ credentials, connection: args.name, port: flags.port, onEvent, localSecret: flags['local-secret'], summary })
    const { listener } = connected

    if (command.length > 0) {
      let status: number
      try {
        status = await runLocalCommand(command, commandEnvironment(connected))
      } finally {
        await listener.close()
      }
      process.exitCode = status
      return
    }

    const address = `${listener.host}:${listener.port}`
    const instructions = connectInstructions(connected)
    if (mode === 'json') {
      this.printJson({
        type: 'ready',
        host: listener.host,
        port: listener.port,
        connection: connected.connection.name,
        connectionType: connected.connection.type,
        ...(connected.connection.type === 'postgres' ? { dsn: postgresUrl(connected) } : {}),
      })
    } else if (mode === 'plain') {
      process.stdout.write(`listening on ${address}\n`)
    }
    let unmount = (): void => {}
    if (mode === 'live') {
      const { renderConnectStatus } = await import('../src/ui/connect-status.js')
      ;({ unmount } = renderConnectStatus({
        connection: args.name,
        address,
        instructions,
        stats: () => listener.stats(),
        subscribe: (fn) => listeners.push(fn),
      }))
    } else if (mode === 'plain') {
      for (const line of instructions) process.stdout.write(`${line}\n`)
    }
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve())
      process.once('SIGTERM', () => resolve())
    })
    unmount()
    await listener.close()
  }
}
