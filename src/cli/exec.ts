/**
 * `airlock exec`: runs a SQL script through the same tunnel and engine as `connect`, like
 * `psql -f` with ON_ERROR_STOP — statements in order, stop at the first error and say where. On a
 * command connection it runs the command once instead (pipes, no terminal): input from -i, -f or
 * stdin streams to it, stdout and stderr come back apart, and its exit code is passed through.
 */
import { createReadStream } from 'node:fs'
import { access } from 'node:fs/promises'
import { Readable, type Writable } from 'node:stream'
import { type ConnectionSummary, GatewayClient } from '../api/client.js'
import type { ClientCredentials } from '../auth/index.js'
import { AirlockError } from '../errors.js'
import { runCommandSession } from '../protocols/command/front.js'
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
  /** SQL connections: reads the script (-i, -f or stdin), once the connection's type is known. */
  readScript: () => Promise<string>
  /** Command connections: -i TEXT or -f FILE (`-` is stdin); neither: stdin when it is not a terminal. */
  input?: { text?: string; file?: string }
  /** Command connections: arguments after `--`, appended to the command when the connection allows it. */
  remoteArgs?: string[]
  /** --output or --json was given (they apply to SQL results only). */
  formatRequested?: boolean
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean }
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

/** Runs the script (SQL) or the command; resolves with the exit status. */
export async function runExec(options: ExecOptions): Promise<number> {
  const summary = await new GatewayClient(options.credentials).connection(options.connection)
  if (summary.type === 'command') return runCommandExec(options)
  if (options.remoteArgs !== undefined) {
    throw new AirlockError('usage', 'remote arguments after -- are for command connections', { hint: 'put the SQL in -i, -f or stdin' })
  }
  const script = await options.readScript()
  await runSql({ ...options, script }, summary)
  return 0
}

async function runSql(options: ExecOptions & { script: string }, summary: ConnectionSummary): Promise<void> {
  const ranges = splitStatementRanges(options.script)
  const metaCommand = ranges.find(({ start }) => options.script[start] === '\\')
  if (metaCommand !== undefined) {
    throw new AirlockError('usage', `psql meta-commands are not supported (line ${lineOf(options.script, metaCommand.start)})`, {
      hint: 'exec runs SQL only; for \\copy and friends use `airlock connect NAME -- psql`',
    })
  }
  if (ranges.length === 0) throw new AirlockError('usage', 'the script contains no SQL statement')

  if (summary.type !== 'postgres') {
    throw new AirlockError('usage', `exec runs SQL on postgres connections and commands on command connections; ${summary.name} is a ${summary.type} connection`, {
      hint: `use \`airlock connect ${summary.name}\``,
    })
  }
  const open = async (params: Parameters<typeof openTunnel>[0]['params']) =>
    openTunnel({
      gateway: options.credentials.gateway,
      token: await options.credentials.bearer(),
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

/** One run of a command connection's command; resolves with its exit code. */
async function runCommandExec(options: ExecOptions): Promise<number> {
  if (options.formatRequested === true) {
    throw new AirlockError('usage', `${options.connection} is a command connection: --output and --json apply to SQL results`, {
      hint: "the command's output passes through as it is",
    })
  }
  const stdin = await commandInput(options)
  const { transport } = await openTunnel({
    gateway: options.credentials.gateway,
    token: await options.credentials.bearer(),
    connection: options.connection,
    clientVersion: VERSION,
    params: { mode: 'pipes', ...(options.remoteArgs !== undefined && options.remoteArgs.length > 0 ? { args: options.remoteArgs } : {}) },
  })
  return runCommandSession(
    transport,
    { ...(stdin === undefined ? {} : { stdin }), stdout: options.stdout, stderr: options.stderr },
    { signals: ['SIGINT', 'SIGTERM', 'SIGHUP'], ...(options.timeoutMs === undefined ? {} : { deadlineMs: options.timeoutMs }) },
  )
}

/** -i TEXT, -f FILE, or stdin unless it is a terminal (then the command gets no input). */
async function commandInput(options: ExecOptions): Promise<Readable | undefined> {
  const { text, file } = options.input ?? {}
  if (text !== undefined) return Readable.from([Buffer.from(text)])
  if (file !== undefined && file !== '-') {
    try {
      await access(file)
    } catch (error) {
      throw new AirlockError('usage', `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
    return createReadStream(file)
  }
  const stdin = options.stdin
  if (stdin === undefined || (file === undefined && stdin.isTTY === true)) return undefined
  return stdin as Readable
}
