import { Readable } from 'node:stream'
import { Args, Flags } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { AirlockError } from '../../src/errors.js'
import { replayRecording } from '../../src/protocols/command/index.js'

export default class AuditReplay extends BaseCommand {
  static override summary = "Play a command session's recording (admin)"
  static override description = `Writes the session's recorded (masked) output to the terminal with its original timing, divided by
--speed. The recording comes from the gateway, or from a local asciicast file with --file (no gateway
needed). Reading a recording from the gateway is itself recorded in the audit log.`
  static override args = { id: Args.string({ description: 'Session id (ses_...), from `airlock audit list`' }) }
  static override flags = {
    speed: Flags.string({ description: 'Playback speed: 2 plays twice as fast; 0 or inf plays without waiting.', default: '1' }),
    'max-idle': Flags.string({ description: 'Shorten every pause to at most this many seconds.' }),
    file: Flags.string({ description: 'Play this local .cast file instead of asking the gateway.' }),
  }
  static override examples = [
    '<%= config.bin %> audit replay ses_3xQ9cJ1aY0bW2eR4tU6v',
    '<%= config.bin %> audit replay ses_3xQ9cJ1aY0bW2eR4tU6v --speed 4 --max-idle 2',
    '<%= config.bin %> audit replay --file ./recordings/ses_3xQ9cJ1aY0bW2eR4tU6v.cast',
  ]

  async run(): Promise<void> {
    const { args, flags } = await this.parse(AuditReplay)
    const speed = parseSpeed(flags.speed)
    const maxIdle = flags['max-idle'] === undefined ? undefined : parseSeconds(flags['max-idle'])
    if ((args.id === undefined) === (flags.file === undefined)) {
      throw new AirlockError('usage', 'name a session id or a recording file (--file), not both', { hint: 'airlock audit replay SESSION_ID' })
    }
    const source =
      flags.file ?? Readable.fromWeb((await new GatewayClient(await resolveClientCredentials()).auditRecording(args.id!)) as Parameters<typeof Readable.fromWeb>[0])
    const controller = new AbortController()
    const stop = (): void => controller.abort()
    process.once('SIGINT', stop)
    try {
      await replayRecording(source, process.stdout, { speed, ...(maxIdle === undefined ? {} : { maxIdleMs: maxIdle * 1000 }), signal: controller.signal })
    } catch (error) {
      if (controller.signal.aborted) return
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new AirlockError('usage', `${flags.file} does not exist`)
      throw error
    } finally {
      process.off('SIGINT', stop)
    }
  }
}

function parseSpeed(value: string): number {
  if (value === '0' || value === 'inf') return Infinity
  const speed = Number(value)
  if (!Number.isFinite(speed) || speed <= 0) throw new AirlockError('usage', `--speed must be a number greater than 0 (or 0/inf for no waiting), not ${JSON.stringify(value)}`)
  return speed
}

function parseSeconds(value: string): number {
  const seconds = Number(value)
  if (!Number.isFinite(seconds) || seconds < 0) throw new AirlockError('usage', `--max-idle must be a number of seconds, not ${JSON.stringify(value)}`)
  return seconds
}
