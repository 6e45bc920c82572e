import { createWriteStream } from 'node:fs'
import { Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Flags } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { AirlockError } from '../../src/errors.js'

export default class AuditExport extends BaseCommand {
  static override summary = 'Export the audit log as JSON lines (admin)'
  static override description = `One record per line, each chain in order, each with its hash: \`airlock audit verify --file\` checks an
export without the gateway. The export itself is recorded in the log.`
  static override flags = {
    format: Flags.string({ description: 'Output format.', options: ['jsonl'], default: 'jsonl' }),
    output: Flags.string({ char: 'o', description: 'Write to this file instead of standard output.' }),
    chain: Flags.string({ description: 'Only this chain (one gateway).' }),
  }
  static override examples = ['<%= config.bin %> audit export --format jsonl > audit.jsonl', '<%= config.bin %> audit export -o audit.jsonl && airlock audit verify --file audit.jsonl']

  async run(): Promise<void> {
    const { flags } = await this.parse(AuditExport)
    const body = await new GatewayClient(await resolveClientCredentials()).auditExport(flags.chain === undefined ? {} : { chain: flags.chain })
    const out: Writable = flags.output === undefined ? process.stdout : createWriteStream(flags.output, { mode: 0o600 })
    try {
      await pipeline(Readable.fromWeb(body as Parameters<typeof Readable.fromWeb>[0]), out)
    } catch (error) {
      if (error instanceof AirlockError) throw error
      throw new AirlockError('gateway-unreachable', 'the export was cut short: the output is incomplete', { hint: 'run the export again' })
    }
  }
}
