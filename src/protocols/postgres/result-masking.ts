/**
 * Masking in the Postgres relay: what the server sends is rewritten before the client sees it —
 * result rows and their descriptions, COPY TO STDOUT lines, error and notice fields,
 * notifications, parameter values, function-call results. The masker itself comes from the
 * gateway (the policy's `Masker` fits {@link ResultMasker}); this file holds the protocol side.
 *
 *   client                         relay                                   server
 *     │── B (results: binary) ───────▶ B' (results: text) ─────────────────▶│
 *     │── E ─────────────────────────▶ D(portal)*, [H] … E ────────────────▶│   * injected: the relay
 *     │                                                                     │     must know the columns
 *     │◀── 2 ─────────────────────────────────────────────────────────────── 2
 *     │         (swallowed) ◀──────── T (text formats) ◀────────────────────│
 *     │◀── D (masked, re-encoded) ◀── D (text) ◀────────────────────────────│
 *
 * A client asking for binary results gets them only for types {@link binaryEncoder} knows; any
 * other type is refused before the Execute reaches the server (the relay holds it until the
 * injected Describe answers), so nothing of it runs and nothing unmasked is sent.
 */
import { AirlockError } from '../../errors.js'
import { binaryEncoder, type BinaryEncoder } from './binary-results.js'
import type { Frame, MessageRun } from './framer.js'
import {
  type FieldDescription,
  parseDataRow,
  parseErrorFields,
  parseFunctionCallResponse,
  parseNotification,
  parseParameterStatus,
  serializeDataRow,
  serializeErrorFields,
  serializeFunctionCallResponse,
  serializeNotification,
  serializeParameterStatus,
  serializeRowDescription,
} from './messages.js'
import { BackendMessage, FormatCode } from './protocol.js'

/** A message's type byte and length. */
const MESSAGE_HEADER = 5

/** A run of messages that need nothing masked: how many, and where in the read they end (set by the masker). */
export type CleanRun = MessageRun

/** A result column as the masker reads it. */
export interface MaskedColumn {
  readonly name: string
  readonly typeOid: number
  readonly format?: number
}

/** A masker's plan for one result set: the description to send (undefined: unchanged). */
export interface MaskingPlan<F extends MaskedColumn = MaskedColumn> {
  readonly width: number
  readonly fields: readonly F[] | undefined
}

/** How the lines of a COPY TO STDOUT are written (the statement's options). */
export interface CopyOutFormat {
  format: 'text' | 'csv'
  delimiter?: string
  null?: string
  quote?: string
  escape?: string
}

/** What the relay needs of a masker; the policy's `Masker` is one. */
export interface ResultMasker {
  columns<F extends MaskedColumn>(fields: readonly F[]): MaskingPlan<F>
  /** A DataRow body masked, or undefined when nothing changes (nothing allocated); the frame tells where it lies in the read. */
  dataRow(body: Buffer, plan: MaskingPlan, place?: Frame): (Buffer | null)[] | undefined
  row(values: readonly (Buffer | null)[], plan: MaskingPlan): (Buffer | null)[] | undefined
  text(value: string): string | undefined
  errorFields(fields: readonly (readonly [number, string])[]): [number, string][] | undefined
  /** With `headroom`, the masked line starts that many bytes into the buffer (room for a header). */
  copy(line: Buffer, format: CopyOutFormat, plan?: MaskingPlan, place?: Frame, headroom?: number): Buffer | undefined
  /** The DataRows from `offset` of `chunk` that {@link dataRow} would pass unchanged: how many, and where they end. */
  cleanRows(chunk: Buffer, offset: number, plan: MaskingPlan, run: CleanRun): void
  /** The same for the CopyData lines of a COPY TO STDOUT. */
  cleanCopyLines(chunk: Buffer, offset: number, format: CopyOutFormat, run: CleanRun): void
  takeCounts(): { total: number; detectors: Readonly<Record<string, number>>; columns: Readonly<Record<string, number>> }
}

/** What a statement's COPY is, as masking needs to know it. */
export type CopyOutKind =
  /** Not a COPY TO STDOUT (another statement, or COPY FROM / to a file). */
  | undefined
  | CopyOutFormat
  | { format: 'binary' }
  /** Looks like a COPY but could not be parsed: refused (fail closed). */
  | { format: 'unreadable' }

/** A session's masking, as the gateway hands it to the Postgres engine. */
export interface PostgresMasking {
  readonly masker: ResultMasker
  /** Column rules are configured (they need column names, which COPY does not send). */
  readonly columnRules: boolean
  /** What the statement `sql` is as a COPY TO STDOUT; called only for texts that mention COPY. */
  copyOut(sql: string): CopyOutKind
}

/** One result set as the relay masks it. */
export interface ResultState {
  readonly plan: MaskingPlan<FieldDescription>
  /** What the client is told in RowDescription (masked names, ruled columns as text, its formats). */
  readonly described: readonly FieldDescription[]
  /** Whether {@link described} differs from what the server sent. */
  readonly rewritten: boolean
  /** Per column, when the client asked for binary: the encoder; undefined means text as is. */
  readonly encoders: readonly (BinaryEncoder | undefined)[] | undefined
  /** Columns the client asked for in binary whose type has no encoder. */
  readonly unsupported: readonly FieldDescription[]
}

const EMPTY = Buffer.alloc(0)

/** The per-session masking state of a relay. */
export class ResultMasking {
  /** DateStyle reported by the server: ISO makes date and timestamp texts readable. */
  private isoDates = true

  constructor(private readonly masking: PostgresMasking) {}

  get columnRules(): boolean {
    return this.masking.columnRules
  }

  copyOut(sql: string): CopyOutKind {
    return this.masking.copyOut(sql)
  }

  /**
   * A result set's state from the server's description (text formats when the relay rewrote the
   * Bind) and the formats the client asked for in Bind (undefined: as the server says).
   */
  result(fields: readonly FieldDescription[], clientFormats: readonly number[] | undefined): ResultState {
    const plan = this.masking.masker.columns(fields)
    const visible = plan.fields ?? fields
    const binary = clientFormats !== undefined && clientFormats.some((format) => format !== FormatCode.Text)
    if (!binary) return { plan, described: visible, rewritten: plan.fields !== undefined, encoders: undefined, unsupported: [] }
    const unsupported: FieldDescription[] = []
    const encoders: (BinaryEncoder | undefined)[] = []
    const described = visible.map((field, index) => {
      const format = formatOf(clientFormats, index)
      if (format === FormatCode.Text) {
        encoders.push(undefined)
        return field.format === format ? field : { ...field, format }
      }
      const encoder = binaryEncoder(field.typeOid, this.isoDates)
      if (encoder === undefined) unsupported.push(field)
      encoders.push(encoder)
      return { ...field, format }
    })
    return { plan, described, rewritten: true, encoders, unsupported }
  }

  /** The RowDescription the client gets for `state`. */
  rowDescription(frame: Frame, state: ResultState): Buffer {
    return state.rewritten ? serializeRowDescription(state.described) : frame.raw
  }

  /** A DataRow masked (and re-encoded where the client asked for binary). */
  dataRow(frame: Frame, state: ResultState): Buffer {
    const masked = this.masking.masker.dataRow(frame.body, state.plan, frame)
    if (state.encoders === undefined) return masked === undefined ? frame.raw : serializeDataRow(masked)
    const values = masked ?? parseDataRow(frame.body)
    const encoders = state.encoders
    for (let i = 0; i < values.length; i++) {
      const value = values[i]
      const encoder = encoders[i]
      if (value !== null && value !== undefined && encoder !== undefined) values[i] = encoder(value)
    }
    return serializeDataRow(values)
  }

  /**
   * The DataRows of `state`'s result set from `offset` of `chunk` that go out as the server sent
   * them (see {@link ResultMasker.cleanRows}); none where the client asked for binary (every row
   * is re-encoded).
   */
  cleanRows(chunk: Buffer, offset: number, state: ResultState, run: CleanRun): void {
    if (state.encoders === undefined) return this.masking.masker.cleanRows(chunk, offset, state.plan, run)
    run.count = 0
    run.end = offset
  }

  /** The CopyData lines from `offset` of `chunk` that go out as the server sent them. */
  cleanCopyLines(chunk: Buffer, offset: number, format: CopyOutFormat, run: CleanRun): void {
    this.masking.masker.cleanCopyLines(chunk, offset, format, run)
  }

  /** One CopyData of a COPY TO STDOUT (one row per message, as the server sends them). */
  copyData(frame: Frame, format: CopyOutFormat): Buffer {
    // The masked line comes with room for the header: the message is written once.
    const message = this.masking.masker.copy(frame.body, format, undefined, frame, MESSAGE_HEADER)
    if (message === undefined) return frame.raw
    message[0] = BackendMessage.CopyData
    message.writeInt32BE(message.length - 1, 1)
    return message
  }

  /** ErrorResponse / NoticeResponse with their texts masked. */
  errorFields(frame: Frame): Buffer {
    const masked = this.masking.masker.errorFields(parseErrorFields(frame.body))
    return masked === undefined ? frame.raw : serializeErrorFields(frame.type, masked)
  }

  notification(frame: Frame): Buffer {
    const notification = parseNotification(frame.body)
    const channel = this.masking.masker.text(notification.channel)
    const payload = this.masking.masker.text(notification.payload)
    if (channel === undefined && payload === undefined) return frame.raw
    return serializeNotification({ processId: notification.processId, channel: channel ?? notification.channel, payload: payload ?? notification.payload })
  }

  parameterStatus(frame: Frame): Buffer {
    const { name, value } = parseParameterStatus(frame.body)
    if (name === 'DateStyle') this.isoDates = value.startsWith('ISO')
    const maskedName = this.masking.masker.text(name)
    const maskedValue = this.masking.masker.text(value)
    if (maskedName === undefined && maskedValue === undefined) return frame.raw
    return serializeParameterStatus(maskedName ?? name, maskedValue ?? value)
  }

  /**
   * A FunctionCallResponse: its type is unknown to the relay, so any finding nulls the value
   * rather than writing a label into what may be a number or binary data.
   */
  functionResult(frame: Frame): Buffer {
    const value = parseFunctionCallResponse(frame.body)
    if (value === null) return frame.raw
    const plan = this.masking.masker.columns([{ name: '?column?', typeOid: 0, format: FormatCode.Binary }])
    const masked = this.masking.masker.row([value], plan)
    return masked === undefined ? frame.raw : serializeFunctionCallResponse(masked[0] ?? null)
  }

  /** Counts since the last call, for `StatementSummary.masked`; undefined when nothing was masked. */
  takeCounts(): Record<string, number> | undefined {
    const counts = this.masking.masker.takeCounts()
    if (counts.total === 0) return undefined
    const masked: Record<string, number> = { ...counts.detectors }
    for (const [name, count] of Object.entries(counts.columns)) {
      // A column name can be a secret too (an alias): it goes to the audit masked.
      masked[`column:${this.masking.masker.text(name) ?? name}`] = count
    }
    return masked
  }

  /** Messages relayed whole before the relay starts (the startup's notices and ParameterStatus). */
  greeting(frames: readonly Frame[], kind: 'notice' | 'parameter'): Buffer[] {
    return frames.map((frame) => (kind === 'notice' ? this.errorFields(frame) : this.parameterStatus(frame)))
  }
}

/** Format of column `index` under a Bind's result-format list (none: text; one: all). */
export function formatOf(formats: readonly number[], index: number): number {
  if (formats.length === 0) return FormatCode.Text
  if (formats.length === 1) return formats[0]!
  return formats[index] ?? FormatCode.Text
}

/** The refusal of a result the client wants in binary where the gateway cannot re-encode it. */
export function unsupportedBinary(fields: readonly FieldDescription[]): AirlockError {
  const types = [...new Set(fields.map((field) => typeName(field.typeOid)))].join(', ')
  return new AirlockError('blocked', `binary results of type ${types} cannot be masked`, {
    hint: 'ask for text results (node-postgres: leave `binary` off), or cast the column to text',
  })
}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  1700: 'numeric',
  1083: 'time',
  1266: 'timetz',
  1186: 'interval',
  1082: 'date (DateStyle not ISO)',
  1114: 'timestamp (DateStyle not ISO)',
  1184: 'timestamptz (DateStyle not ISO)',
  2249: 'record',
  869: 'inet',
  650: 'cidr',
  142: 'xml',
  790: 'money',
}

function typeName(oid: number): string {
  // Array types: _name, with OIDs scattered; PostgreSQL's own arrays of built-ins lie in 1000..1270.
  return TYPE_NAMES[oid] ?? (oid >= 1000 && oid < 1300 ? `array (oid ${oid})` : `oid ${oid}`)
}

export { EMPTY as SWALLOWED }
