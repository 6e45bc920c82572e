import { Flags } from '@oclif/core'
import { GatewayClient } from '../../src/api/client.js'
import { describeReport, type ExpectedHead, openStore, parseExpectedHead, parseStoreLocation, verifyExportFile, verifyStore, type VerifyReport } from '../../src/audit/index.js'
import { resolveClientCredentials } from '../../src/auth/index.js'
import { BaseCommand } from '../../src/cli/base-command.js'
import { AirlockError } from '../../src/errors.js'

export default class AuditVerify extends BaseCommand {
  static override summary = 'Check that the audit log was not altered (admin, or offline)'
  static override description = `Recomputes every hash chain and reports the first broken link of each: a record edited, deleted,
reordered or inserted. --expect-head (a head printed earlier by \`airlock audit head\`) also detects records cut
off the end. Through the gateway by default; offline with --store (the store itself) or --file (an export).
Exit codes: 0 intact, 1 altered, 2 usage, 4/5/6 as for any gateway command.`
  static override flags = {
    store: Flags.string({ description: 'Verify this store directly: sqlite:PATH or postgres://... (password from PGPASSWORD).', exclusive: ['file'] }),
    file: Flags.string({ description: 'Verify an export file (from `airlock audit export`).', exclusive: ['store'] }),
    'expect-head': Flags.string({ description: 'A head kept earlier: CHAIN:SEQ:HASH (or HASH). Repeatable.', multiple: true }),
  }
  static override examples = [
    '<%= config.bin %> audit verify',
    '<%= config.bin %> audit verify --expect-head 3f9c0a1b2c3d4e5f:1042:9b1d...',
    '<%= config.bin %> audit verify --store sqlite:/var/lib/airlock/audit.db',
    '<%= config.bin %> audit verify --file audit-2026-01.jsonl --json',
  ]

  async run(): Promise<void> {
    const { flags } = await this.parse(AuditVerify)
    const texts = flags['expect-head'] ?? []
    const expected: ExpectedHead[] = texts.map((text) => {
      const head = parseExpectedHead(text)
      if (head === undefined) throw new AirlockError('usage', '--expect-head takes CHAIN:SEQ:HASH or HASH, as `airlock audit head` prints it')
      return head
    })
    let report: VerifyReport
    if (flags.file !== undefined) {
      report = await verifyExportFile(flags.file, expected).catch((error: unknown) => {
        throw new AirlockError('usage', `cannot read ${flags.file} (${(error as { code?: string }).code ?? 'error'})`)
      })
    } else if (flags.store !== undefined) {
      const store = await openStore(parseStoreLocation(flags.store), { readonly: true })
      try {
        report = await verifyStore(store, expected)
      } finally {
        await store.close()
      }
    } else {
      report = await new GatewayClient(await resolveClientCredentials()).auditVerify(texts)
    }
    if (this.jsonMode) this.printJson(report)
    else process.stdout.write(describeReport(report))
    if (!report.ok) process.exitCode = 1
  }
}
