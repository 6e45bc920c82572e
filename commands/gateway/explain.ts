import { readFile } from 'node:fs/promises'
import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../src/cli/base-command.js'
import { configFlag } from '../../src/cli/gateway-config.js'
import { loadConfig } from '../../src/config/index.js'
import { AirlockError, EXIT_CODES } from '../../src/errors.js'
import { type Explanation, explainStatements } from '../../src/gateway/policy-hooks.js'

export default class GatewayExplain extends BaseCommand {
  static override summary = "Show what a connection's guardrails decide about SQL, without a database"
  static override description = `Judges the SQL as the gateway would if it arrived as one query on a new session of the connection:
each statement's verdict and the rule that decided it. No database and no secret is touched, so it also serves
CI of the configuration itself. Exits 0 when everything is allowed, 3 when anything is blocked (also in
audit-only mode, where the gateway would record the verdict and let the statement run), 2 for usage or
configuration errors.`
  static override args = { name: Args.string({ description: 'Connection name in the configuration', required: true }) }
  static override flags = {
    config: configFlag,
    input: Flags.string({ char: 'i', description: 'SQL to judge.', exclusive: ['file'] }),
    file: Flags.string({ char: 'f', description: 'File of SQL to judge (- for stdin).', exclusive: ['input'] }),
  }
  static override examples = [
    `<%= config.bin %> gateway explain --config airlock.yaml pg-prod -i "select pg_read_file('/etc/passwd')"`,
    '<%= config.bin %> gateway explain pg-prod -f queries.sql --json',
  ]

  async run(): Promise<void> {
    const { args, flags } = await this.parse(GatewayExplain)
    const config = await loadConfig(flags.config)
    const connection = config.connections.find((each) => each.name === args.name)
    if (connection === undefined) {
      throw new AirlockError('usage', `${flags.config} has no connection ${JSON.stringify(args.name)}`, {
        hint: `connections: ${config.connections.map((each) => each.name).join(', ') || '(none)'}`,
      })
    }
    const sql = await readSql(flags.input, flags.file)
    const explanation = await explainStatements(connection, sql)
    if (this.jsonMode) this.printJson(toJson(explanation))
    else process.stdout.write(render(explanation))
    if (!explanation.decision.allow) process.exitCode = EXIT_CODES.blocked
  }
}

async function readSql(input: string | undefined, file: string | undefined): Promise<string> {
  let sql: string
  if (input !== undefined) {
    sql = input
  } else if (file !== undefined && file !== '-') {
    try {
      sql = await readFile(file, 'utf8')
    } catch (error) {
      throw new AirlockError('usage', `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  } else {
    if (file === undefined && process.stdin.isTTY) throw new AirlockError('usage', 'no SQL given', { hint: 'use -i "SQL", -f FILE, or pipe SQL to standard input' })
    const chunks: Buffer[] = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    sql = Buffer.concat(chunks).toString('utf8')
  }
  if (sql.trim() === '') throw new AirlockError('usage', 'no SQL given', { hint: 'use -i "SQL", -f FILE, or pipe SQL to standard input' })
  return sql
}

function toJson(explanation: Explanation) {
  const verdict = (decision: Explanation['decision']) =>
    decision.allow
      ? { allowed: true, rule: decision.rule ?? null }
      : { allowed: false, rule: decision.rule, message: decision.message, hint: decision.hint ?? null }
  return {
    connection: explanation.connection,
    mode: explanation.mode,
    presets: explanation.presets,
    ...verdict(explanation.decision),
    statements: explanation.statements.map((statement) => ({ text: statement.text, ...verdict(statement.decision) })),
  }
}

function render(explanation: Explanation): string {
  const lines: string[] = []
  for (const { text, decision } of explanation.statements) {
    lines.push(`${decision.allow ? 'allowed' : 'blocked'}  ${oneLine(text)}`)
    if (!decision.allow) {
      lines.push(`         rule ${decision.rule}: ${decision.message}`)
      if (decision.hint !== undefined) lines.push(`         hint: ${decision.hint}`)
    } else if (decision.rule !== undefined) {
      lines.push(`         allowed by rule ${decision.rule}`)
    }
  }
  const { decision, mode } = explanation
  const setup = mode === 'none' ? 'no guardrails configured' : `mode ${mode}${explanation.presets.length > 0 ? `, presets ${explanation.presets.join(', ')}` : ''}`
  const verdict = decision.allow ? (decision.rule === undefined ? 'allowed' : `allowed by rule ${decision.rule}`) : `blocked by ${decision.rule}`
  lines.push(`verdict: ${verdict} (${explanation.connection}: ${setup})`)
  if (!decision.allow && mode === 'audit-only') lines.push('audit-only: the gateway records this verdict and lets the statement run')
  return `${lines.join('\n')}\n`
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > 100 ? `${line.slice(0, 97)}...` : line
}
