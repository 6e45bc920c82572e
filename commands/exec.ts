import { readFile } from 'node:fs/promises'
import { Args, Flags } from '@oclif/core'
import { resolveClientCredentials } from '../src/auth/index.js'
import { BaseCommand } from '../src/cli/base-command.js'
import { runExec } from '../src/cli/exec.js'
import { parseDuration } from '../src/config/index.js'
import { AirlockError } from '../src/errors.js'
import type { OutputFormat } from '../src/ui/results.js'

export default class Exec extends BaseCommand {
  static override summary = 'Run SQL on a connection and print the results, or run a command connection once (scripts, CI, agents)'
  static override description = `Runs the statements in order through the gateway, like psql -f with ON_ERROR_STOP: the first error stops
the script and names its line. SQL comes from -i, -f or standard input. Output: a table on a terminal, TSV when
piped; --output csv|tsv|json|table; --json is --output json (one object per result set: columns, rows, command,
rowCount, notices). NULL and '' stay distinct in every format. Notices go to stderr.
Exit codes: 0 ok, 1 SQL error (or --timeout), 3 blocked by a guardrail, 4 not logged in, 5 forbidden,
6 gateway unreachable, 7 database unavailable.
On a command connection, runs its command once without a terminal: -i, -f or piped stdin becomes its input, -- ARGS
are appended when the connection allows it, stdout and stderr stay apart, and its own exit code is passed through
(255 when the tunnel drops while it runs; 3 when a deny pattern refused the input).`
  static override strict = false
  static override args = { name: Args.string({ description: 'Connection name (see `airlock connections`)', required: true }) }
  static override flags = {
    input: Flags.string({ char: 'i', description: 'SQL to run.', exclusive: ['file'] }),
    file: Flags.string({ char: 'f', description: 'File of SQL to run (- for stdin).', exclusive: ['input'] }),
    output: Flags.string({ char: 'o', description: 'Output format.', options: ['table', 'csv', 'tsv', 'json'] }),
    timeout: Flags.string({ description: 'Cancel the running statement and fail after this long (e.g. 30s, 5m).' }),
  }
  static override examples = [
    `<%= config.bin %> exec pg-prod -i "select count(*) from orders"`,
    '<%= config.bin %> exec pg-prod -f migrate.sql --timeout 10m',
    `echo "select * from customers limit 5" | <%= config.bin %> exec pg-prod --output csv`,
    `<%= config.bin %> exec pg-prod -i "select * from orders" --json | jq .rowCount`,
    `<%= config.bin %> exec ops-shell -i "df -h /var"`,
    '<%= config.bin %> exec kubectl-prod -- get pods -n web',
  ]

  async run(): Promise<void> {
    const separator = this.argv.indexOf('--')
    const remoteArgs = separator < 0 ? undefined : this.argv.slice(separator + 1)
    const { args, flags } = await this.parse({ ...Exec, baseFlags: Exec.baseFlags, strict: true }, separator < 0 ? this.argv : this.argv.slice(0, separator))
    const format: OutputFormat = this.jsonMode ? 'json' : ((flags.output as OutputFormat | undefined) ?? (process.stdout.isTTY ? 'table' : 'tsv'))
    let timeoutMs: number | undefined
    if (flags.timeout !== undefined) {
      try {
        timeoutMs = parseDuration(flags.timeout)
      } catch {
        throw new AirlockError('usage', `--timeout must be a duration like 30s or 5m`)
      }
    }
    process.exitCode = await runExec({
      credentials: await resolveClientCredentials(),
      connection: args.name,
      readScript: () => readScript(flags.input, flags.file),
      input: { ...(flags.input === undefined ? {} : { text: flags.input }), ...(flags.file === undefined ? {} : { file: flags.file }) },
      ...(remoteArgs === undefined ? {} : { remoteArgs }),
      formatRequested: flags.json || flags.output !== undefined,
      stdin: process.stdin,
      format,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      stdout: process.stdout,
      stderr: process.stderr,
    })
  }
}

async function readScript(input: string | undefined, file: string | undefined): Promise<string> {
  if (input !== undefined) return input
  if (file !== undefined && file !== '-') {
    try {
      return await readFile(file, 'utf8')
    } catch (error) {
      throw new AirlockError('usage', `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  if (file === undefined && process.stdin.isTTY) {
    throw new AirlockError('usage', 'no SQL given', { hint: 'use -i "SQL", -f FILE, or pipe SQL to standard input' })
  }
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
