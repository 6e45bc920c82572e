/**
 * `airlock exec`: runs a SQL script through the same tunnel and engine as `connect`, like
 * `psql -f` with ON_ERROR_STOP — statements in order, stop at the first error and say where.
 */
import type { Writable } from 'node:stream'
import { GatewayClient } from '../api/client.js'
import type { ClientCredentials } from '../auth/index.js'
import { AirlockError } from '../errors.js'
import { type PostgresDriver, PostgresDriver as Driver } from '../protocols/postgres/driver.js'
import { type ErrorFields, getField } from '../protocols/postgres/messages.js'
import { ErrorField } from '../protocols/postgres/protocol.js'
import { splitStatementRanges } from '../protocols/postgres/split.js'
import { openTunnel } from '../tunnel/index.js'
import { createResultWriter, type OutputFormat } from '../ui/results.js'
import { VERSION } from '../version.js'

export interface ExecOptions {
  credentials: ClientCredentials
  connection: string
  script: string
  format: OutputFormat
  /** Whole-run deadline; the running statement is cancelled when it passes. */
  timeoutMs?: number
  stdout: Writable
  stderr: Writable
}

/** A statement the server refused: exit 1, or 3 when a guardrail blocked it. */
export class StatementError extends AirlockError {
  constructor(
    readonly fields: ErrorFields,
    readonly line: number,
    readonly statement: string,
    timedOut: boolean,
  ) {
    const blocked = getField(fields, ErrorField.Routine) === 'airlock_guardrail'
    const message = getField(fields, ErrorField.Message) ?? 'unknown error'
    super(
      blocked ? 'blocked' : 'target',
      timedOut ? `timed out; the statement at line ${line} was cancelled (${message})` : `${message} (SQLSTATE ${getField(fields, ErrorField.Code) ?? '?'}) at line ${line}`,
      getField(fields, ErrorField.Hint) === undefined ? {} : { hint: getField(fields, ErrorField.Hint)! },
    )
  }

  override toJSON() {
    return {
      ...super.toJSON(),
      sqlstate: getField(this.fields, ErrorField.Code) ?? null,
      line: this.line,
      statement: this.statement,
      ...(getField(this.fields, ErrorField.Detail) ? { detail: getField(this.fields, ErrorField.Detail) } : {}),
    }
  }
}

export async function runExec(options: ExecOptions): Promise<void> {
  const ranges = splitStatementRanges(options.script)
  const metaCommand = ranges.find(({ start }) => options.script[start] === '\\')
  if (metaCommand !== undefined) {
    throw new AirlockError('usage', `psql meta-commands are not supported (line ${lineOf(options.script, metaCommand.start)})`, {
      hint: 'exec runs SQL only; for \\copy and friends use `airlock connect NAME -- psql`',
    })
  }
  if (ranges.length === 0) throw new AirlockError('usage', 'the script contains no SQL statement')

  const summary = await new GatewayClient(options.credentials).connection(options.connection)
  if (summary.type !== 'postgres') {
    throw new AirlockError('usage', `exec runs SQL on postgres connections; ${summary.name} is a ${summary.type} connection`, {
      hint: `use \`airlock connect ${summary.name}\``,
    })
  }
  const open = (params: Parameters<typeof openTunnel>[0]['params']) =>
    openTunnel({
      gateway: options.credentials.gateway,
      token: options.credentials.token,
      connection: options.connection,
      clientVersion: VERSION,
      ...(params ? { params } : {}),
    })
  const { transport } = await open({ startup: { client_encoding: 'UTF8' } })
  const driver = await Driver.start(transport).catch((error: Error & { fields?: ErrorFields }) => {
    throw new AirlockError('upstream-unavailable', error.fields ? (getField(error.fields, ErrorField.Message) ?? error.message) : error.message)
  })
  options.stdout.on('drain', () => driver.resume())

  let timedOut = false
  const deadline =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          void cancel(driver, open)
        }, options.timeoutMs)
  try {
    for (const { start, end } of ranges) {
      const statement = options.script.slice(start, end)
      const notices: string[] = []
      const writer = createResultWriter(options.format, options.stdout)
      const outcome = await driver.query(statement, {
        columns: (fields) => writer.columns(fields.map((field) => ({ name: field.name, typeOid: field.typeOid }))),
        row: (values) => writer.row(values),
        copyData: (data) => writer.raw(data),
        complete: (tag) => writer.complete(tag, notices.splice(0)),
        notice: (fields) => {
          const text = `${getField(fields, ErrorField.Severity) ?? 'NOTICE'}:  ${getField(fields, ErrorField.Message) ?? ''}`
          notices.push(text)
          options.stderr.write(`${text}\n`)
        },
      })
      if (outcome.error !== undefined) {
        const position = Number(getField(outcome.error, ErrorField.Position) ?? 0)
        const line = lineOf(options.script, start + Math.max(0, position - 1))
        throw new StatementError(outcome.error, line, statement.length > 200 ? `${statement.slice(0, 200)}...` : statement, timedOut)
      }
    }
  } catch (error) {
    if (error instanceof AirlockError) throw error
    const reason = (error as { closeReason?: { code?: string; message: string } }).closeReason
    throw new AirlockError('tunnel-dropped', `the tunnel closed while the script ran: ${reason?.message ?? (error as Error).message}`, {
      hint: 'statements before the failure may have run; check the target',
    })
  } finally {
    if (deadline !== undefined) clearTimeout(deadline)
    driver.close()
  }
}

/** CancelRequest on a tunnel of its own, like every Postgres client does. */
async function cancel(driver: PostgresDriver, open: (params: { cancel: { processId: number; secretKey: string } }) => Promise<{ transport: { close(reason?: { message: string }): void } }>): Promise<void> {
  try {
    const { transport } = await open({ cancel: { processId: driver.processId, secretKey: driver.secretKey.toString('hex') } })
    transport.close({ message: 'cancel sent' })
  } catch {
    // The statement's own outcome reports what happened.
  }
}

function lineOf(text: string, offset: number): number {
  let line = 1
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 0x0a) line++
  return line
}
