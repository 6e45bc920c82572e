import { Flags } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { describeHeads, openStore, parseStoreLocation } from '../../src/audit/index.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'

export default class AuditHead extends BaseCommand {
  static override summary = 'Print the head of each audit chain, to keep outside the gateway (admin)'
  static override description = `One line per gateway chain: CHAIN:SEQ:HASH and its time. Keep these somewhere the gateway cannot write
(a ticket, another system's log); \`airlock audit verify --expect-head CHAIN:SEQ:HASH\` later proves nothing up to
that point was removed or rewritten. With --store, reads the store directly instead of asking the gateway.`
  static override flags = {
    store: Flags.string({ description: 'Read this store directly: sqlite:PATH or postgres://... (password from PGPASSWORD).' }),
  }
  static override examples = ['<%= config.bin %> audit head', '<%= config.bin %> audit head --json', '<%= config.bin %> audit head --store sqlite:/var/lib/airlock/audit.db']

  async run(): Promise<void> {
    const { flags } = await this.parse(AuditHead)
    let heads
    if (flags.store !== undefined) {
      const store = await openStore(parseStoreLocation(flags.store), { readonly: true })
      try {
        heads = await store.heads()
      } finally {
        await store.close()
      }
    } else {
      heads = await new GatewayClient(await resolveClientCredentials()).auditHeads()
    }
    if (this.jsonMode) return this.printJson({ heads: heads.map((head) => ({ ...head, anchor: `${head.chain}:${head.seq}:${head.hash}` })) })
    process.stdout.write(describeHeads(heads))
  }
}
