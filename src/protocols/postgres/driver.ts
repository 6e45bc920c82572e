/**
 * A minimal Postgres client over a tunnel `Transport`, for `airlock exec`: simple-protocol queries,
 * rows streamed to a sink with backpressure, notices, COPY TO STDOUT. No psql, so no `\!` escapes
 * and nothing to install.
 *
 *   exec (driver)                                  gateway ⇄ server
 *     │◀── R(ok) S* K Z  (greeting: the gateway already authenticated upstream)
 *     │── Query ──────────────────────────────────▶│
 *     │◀── T D* C … (E) Z ─────────────────────────│   rows → sink, paused while the sink is full
 */
import type { Transport } from '../../tunnel/transport.js'
import { type Frame, MessageFramer } from './framer.js'
import {
  type ErrorFields,
  type FieldDescription,
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseDataRow,
  parseErrorFields,
  parseParameterStatus,
  parseReadyForQuery,
  parseRowDescription,
  serializeCopyFail,
  serializeQuery,
  serializeTerminate,
} from './messages.js'
import { AuthenticationType, BackendMessage } from './protocol.js'

/** Where results go. A `false` from a write pauses the tunnel until `PostgresDriver.resume()`. */
export interface ResultSink {
  columns(fields: FieldDescription[]): void
  row(values: (string | null)[]): boolean
  /** COPY TO STDOUT data, as the server sent it. */
  copyData(data: Buffer): boolean
  complete(tag: string | undefined): void
  notice(fields: ErrorFields): void
}

export interface QueryOutcome {
  error?: ErrorFields
  transactionStatus: 'I' | 'T' | 'E'
}

/** 1 GiB, the server's own message limit. */
const MAX_MESSAGE = 0x3fffffff

export class PostgresDriver {
  processId = 0
  secretKey = Buffer.alloc(0)
  readonly parameters = new Map<string, string>()
  private readonly framer = new MessageFramer({ maxMessageLength: MAX_MESSAGE })
  private onFrame: ((frame: Frame) => void) | undefined
  private failure: ((error: Error) => void) | undefined

  private constructor(private readonly transport: Transport) {
    transport.on('data', (chunk) => {
      this.framer.push(chunk)
      try {
        for (let frame = this.framer.next(); frame !== undefined; frame = this.framer.next()) this.onFrame?.(frame)
      } catch (error) {
        this.failure?.(error as Error)
      }
    })
    transport.on('close', (reason) => {
      const error = Object.assign(new Error(reason.message), { closeReason: reason })
      this.failure?.(error)
    })
  }

  /** Reads the gateway's greeting up to the first ReadyForQuery. */
  static async start(transport: Transport): Promise<PostgresDriver> {
    const driver = new PostgresDriver(transport)
    const greeted = driver.until((frame) => {
      switch (frame.type) {
        case BackendMessage.Authentication:
          if (parseAuthentication(frame.body).type !== AuthenticationType.Ok) throw new Error('unexpected authentication request')
          return false
        case BackendMessage.ParameterStatus: {
          const { name, value } = parseParameterStatus(frame.body)
          driver.parameters.set(name, value)
          return false
        }
        case BackendMessage.BackendKeyData: {
          const key = parseBackendKeyData(frame.body)
          driver.processId = key.processId
          driver.secretKey = Buffer.from(key.secretKey)
          return false
        }
        case BackendMessage.ErrorResponse:
          throw Object.assign(new Error('the server refused the session'), { fields: parseErrorFields(frame.body) })
        case BackendMessage.ReadyForQuery:
          return true
        default:
          return false
      }
    })
    // Held bytes (the greeting may already be here) flow only once a handler waits for them.
    transport.resume()
    await greeted
    return driver
  }

  /** Runs one simple Query (one statement or several) to its ReadyForQuery. */
  query(sql: string, sink: ResultSink): Promise<QueryOutcome> {
    let error: ErrorFields | undefined
    const result = this.until((frame) => {
      switch (frame.type) {
        case BackendMessage.RowDescription:
          sink.columns(parseRowDescription(frame.body))
          return false
        case BackendMessage.DataRow: {
          const values = parseDataRow(frame.body)
          const text = new Array<string | null>(values.length)
          for (let i = 0; i < values.length; i++) text[i] = values[i] === null ? null : values[i]!.toString('utf8')
          if (!sink.row(text)) this.transport.pause()
          return false
        }
        case BackendMessage.CopyData:
          if (!sink.copyData(frame.body)) this.transport.pause()
          return false
        case BackendMessage.CopyInResponse:
          this.transport.write(serializeCopyFail('airlock exec does not send COPY FROM STDIN data; use `airlock connect NAME -- psql`'))
          return false
        case BackendMessage.CommandComplete:
          sink.complete(parseCommandComplete(frame.body))
          return false
        case BackendMessage.EmptyQueryResponse:
          sink.complete(undefined)
          return false
        case BackendMessage.NoticeResponse:
          sink.notice(parseErrorFields(frame.body))
          return false
        case BackendMessage.ErrorResponse:
          error ??= parseErrorFields(frame.body)
          return false
        case BackendMessage.ReadyForQuery:
          return true
        default:
          return false
      }
    })
    this.transport.write(serializeQuery(sql))
    return result.then((frame) => ({ transactionStatus: parseReadyForQuery(frame.body), ...(error ? { error } : {}) }))
  }

  /** Continues reading after a sink said it was full. */
  resume(): void {
    this.transport.resume()
  }

  close(): void {
    this.transport.write(serializeTerminate())
    this.transport.end()
    this.transport.close({ message: 'exec finished' })
  }

  /** Feeds frames to `handle` until it returns true; resolves with that frame. */
  private until(handle: (frame: Frame) => boolean): Promise<Frame> {
    return new Promise((resolve, reject) => {
      this.failure = (error) => {
        this.onFrame = undefined
        this.failure = undefined
        reject(error)
      }
      this.onFrame = (frame) => {
        if (handle(frame)) {
          this.onFrame = undefined
          this.failure = undefined
          resolve(frame)
        }
      }
    })
  }
}
