/**
 * The gateway's own connection to the upstream PostgreSQL: TCP, TLS per config, startup, and
 * authentication with the held credential — all before the client is told anything.
 *
 *   gateway                                   upstream
 *     │── SSLRequest ───────────────────────────▶│   (tls.mode require | verify-full)
 *     │◀───────────────────────────────── 'S' ───│
 *     │══ TLS handshake (CA, server name) ═══════│
 *     │── StartupMessage(user, database, application_name=airlock/<identity>/<session>, ...)
 *     │◀── AuthenticationSASL [SCRAM-SHA-256] ───│
 *     │── SASLInitialResponse / SASLResponse ───▶│   SaltedPassword cached per salt + iterations
 *     │◀── AuthenticationOk, ParameterStatus*, BackendKeyData, ReadyForQuery
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import type { PostgresConnection, SecretSource } from '../../config/index.js'
import { AirlockError } from '../../errors.js'
import { connectTcp } from '../tcp/engine.js'
import { type Frame, MessageFramer } from './framer.js'
import {
  type ErrorFields,
  getField,
  parseAuthentication,
  parseBackendKeyData,
  parseErrorFields,
  parseParameterStatus,
  parseReadyForQuery,
  parseSaslMechanisms,
  serializePassword,
  serializeSaslInitialResponse,
  serializeSaslResponse,
  serializeSSLRequest,
  serializeStartup,
} from './messages.js'
import { AuthenticationType, BackendMessage, ErrorField } from './protocol.js'
import { SaltedPasswordCache, ScramClient } from './scram.js'

export interface UpstreamSession {
  socket: Socket
  /** ParameterStatus messages as the server sent them, in order (raw, to relay). */
  parameters: Frame[]
  /** Parsed view of the same, by name. */
  parameterValues: Map<string, string>
  processId: number
  secretKey: Buffer
  /** NoticeResponses the server sent during startup (raw, to relay). */
  notices: Frame[]
  transactionStatus: 'I' | 'T' | 'E'
  /** The server's message stream, positioned after ReadyForQuery: the relay reads on from it. */
  framer: MessageFramer
}

const STARTUP_TIMEOUT_MS = 15_000
/** The server's own limit for one message (MaxAllocSize). */
export const MAX_BACKEND_MESSAGE = 0x3fffffff
const saltedPasswords = new SaltedPasswordCache()

export interface UpstreamOptions {
  connection: PostgresConnection
  secrets: SecretSource
  /** Startup parameters besides user and database (already allowlisted). */
  parameters: Record<string, string>
}

export async function connectUpstream(options: UpstreamOptions): Promise<UpstreamSession> {
  const { connection } = options
  const { upstream } = connection
  const password = upstream.password === undefined ? undefined : await options.secrets.read(upstream.password)
  const tcp = await connectTcp(upstream.host, upstream.port, connection.name)
  let socket: Socket = tcp
  // One deadline for TLS and startup: a server that accepts and then says nothing must not hold us.
  const deadline = setTimeout(() => tcp.destroy(new Error('timed out')), STARTUP_TIMEOUT_MS)
  try {
    if (upstream.tls.mode !== 'disable') socket = await startTls(tcp, connection)
    return await startup(socket, options, password)
  } catch (error) {
    socket.destroy()
    throw error
  } finally {
    clearTimeout(deadline)
  }
}

/** Feeds whole backend messages to `onFrame` until it returns true; the socket is left paused. */
function readMessages(
  socket: Socket,
  framer: MessageFramer,
  onFrame: (frame: Frame) => boolean | void,
  timeoutMs: number,
  name: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('close', onClose)
    }
    const onData = (chunk: Buffer): void => {
      try {
        framer.push(chunk)
        for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
          if (onFrame(frame) === true) {
            cleanup()
            socket.pause()
            resolve()
            return
          }
        }
      } catch (error) {
        cleanup()
        // SCRAM and protocol errors name what went wrong, never the password.
        reject(error instanceof AirlockError ? error : unavailable(name, `startup failed (${(error as Error).message})`))
      }
    }
    const onError = (error: NodeJS.ErrnoException): void => {
      cleanup()
      reject(unavailable(name, `connection failed (${error.code ?? error.message})`))
    }
    const onClose = (): void => {
      cleanup()
      reject(unavailable(name, 'the server closed the connection during startup'))
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(unavailable(name, 'the server did not finish startup in time'))
    }, timeoutMs)
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.resume()
  })
}

async function startTls(socket: Socket, connection: PostgresConnection): Promise<TLSSocket> {
  const answer = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      socket.off('data', onData)
      socket.pause()
      // A server must answer SSLRequest with exactly one byte; more would be injected plaintext.
      if (chunk.length !== 1) reject(unavailable(connection.name, 'the server sent unexpected bytes after SSLRequest'))
      else resolve(chunk[0]!)
    }
    socket.on('data', onData)
    socket.once('error', (error: NodeJS.ErrnoException) => reject(unavailable(connection.name, `connection failed (${error.code ?? error.message})`)))
    socket.once('close', () => reject(unavailable(connection.name, 'the server closed the connection before answering SSLRequest')))
    socket.write(serializeSSLRequest())
  })
  if (answer !== 0x53 /* S */) {
    throw unavailable(connection.name, `the server does not accept TLS (upstream.tls.mode is ${connection.upstream.tls.mode})`)
  }
  const { tls, host } = connection.upstream
  const verify = tls.mode === 'verify-full'
  return new Promise((resolve, reject) => {
    // Identity is checked against servername when set, else host (an IP is matched to IP SANs).
    const servername = tls.serverName ?? (isIp(host) ? undefined : host)
    const secure = tlsConnect({
      socket,
      host,
      ...(servername === undefined ? {} : { servername }),
      rejectUnauthorized: verify,
      ...(verify && tls.ca !== undefined ? { ca: readFileSync(tls.ca) } : {}),
    })
    secure.once('secureConnect', () => {
      secure.off('error', onError)
      resolve(secure)
    })
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(unavailable(connection.name, `TLS to the server failed (${error.code ?? error.message})`))
    }
    secure.once('error', onError)
    secure.once('close', () => reject(unavailable(connection.name, 'the server closed the connection during the TLS handshake')))
  })
}

async function startup(socket: Socket, options: UpstreamOptions, password: string | undefined): Promise<UpstreamSession> {
  const { connection } = options
  const { upstream } = connection
  const name = connection.name
  const session: UpstreamSession = {
    socket,
    parameters: [],
    parameterValues: new Map(),
    processId: 0,
    secretKey: Buffer.alloc(0),
    notices: [],
    transactionStatus: 'I',
    framer: new MessageFramer({ maxMessageLength: MAX_BACKEND_MESSAGE }),
  }
  let scram: ScramClient | undefined
  let scramVerified = false
  let authenticated = false

  const needPassword = (): string => {
    if (password === undefined) throw unavailable(name, 'the server asks for a password and the connection has none (upstream.password)')
    return password
  }

  socket.write(serializeStartup({ ...options.parameters, user: upstream.user, database: upstream.database }))
  await readMessages(
    socket,
    session.framer,
    (frame) => {
      switch (frame.type) {
        case BackendMessage.Authentication: {
          const { type, data } = parseAuthentication(frame.body)
          if (type === AuthenticationType.Ok) {
            // After SCRAM, Ok counts only once the server proved it knows the password too.
            if (scram !== undefined && !scramVerified) throw unavailable(name, 'the server skipped the SCRAM server signature')
            authenticated = true
          } else if (type === AuthenticationType.SASL) {
            const mechanisms = parseSaslMechanisms(data)
            if (!mechanisms.includes('SCRAM-SHA-256')) throw unavailable(name, `the server offers no supported SASL mechanism (${mechanisms.join(', ')})`)
            scram = new ScramClient(needPassword(), { saltedPasswordCache: saltedPasswords })
            socket.write(serializeSaslInitialResponse('SCRAM-SHA-256', Buffer.from(scram.clientFirstMessage())))
          } else if (type === AuthenticationType.SASLContinue) {
            if (scram === undefined) throw unavailable(name, 'the server sent SASLContinue out of order')
            socket.write(serializeSaslResponse(Buffer.from(scram.handleServerFirst(data.toString('utf8')))))
          } else if (type === AuthenticationType.SASLFinal) {
            if (scram === undefined) throw unavailable(name, 'the server sent SASLFinal out of order')
            scram.verifyServerFinal(data.toString('utf8'))
            scramVerified = true
          } else if (type === AuthenticationType.MD5Password) {
            if (!upstream.allowMd5) throw unavailable(name, 'the server asks for MD5 password authentication, which this connection does not allow (upstream.allowMd5)')
            const secret = needPassword()
            const inner = createHash('md5').update(secret + upstream.user).digest('hex')
            socket.write(serializePassword('md5' + createHash('md5').update(inner).update(data.subarray(0, 4)).digest('hex')))
          } else if (type === AuthenticationType.CleartextPassword) {
            if (!upstream.allowCleartext) throw unavailable(name, 'the server asks for a cleartext password, which this connection does not allow (upstream.allowCleartext)')
            socket.write(serializePassword(needPassword()))
          } else {
            throw unavailable(name, `the server asks for an unsupported authentication method (${type})`)
          }
          return
        }
        case BackendMessage.ErrorResponse:
          throw serverRefused(name, parseErrorFields(frame.body))
        case BackendMessage.ParameterStatus: {
          const { name: parameter, value } = parseParameterStatus(frame.body)
          session.parameters.push(copyFrame(frame))
          session.parameterValues.set(parameter, value)
          return
        }
        case BackendMessage.BackendKeyData: {
          const key = parseBackendKeyData(frame.body)
          session.processId = key.processId
          session.secretKey = Buffer.from(key.secretKey)
          return
        }
        case BackendMessage.NoticeResponse:
          session.notices.push(copyFrame(frame))
          return
        case BackendMessage.NegotiateProtocolVersion:
          return
        case BackendMessage.ReadyForQuery:
          if (!authenticated) throw unavailable(name, 'the server was ready before authentication completed')
          session.transactionStatus = parseReadyForQuery(frame.body)
          return true
        default:
          throw unavailable(name, `unexpected message ${String.fromCharCode(frame.type)} during startup`)
      }
    },
    STARTUP_TIMEOUT_MS,
    name,
  )
  return session
}

/** Frames from the startup reader may point into a reused buffer; keep our own copy. */
function copyFrame(frame: Frame): Frame {
  const raw = Buffer.from(frame.raw)
  return { type: frame.type, length: frame.length, raw, body: raw.subarray(5), chunk: undefined, offset: 0 }
}

function serverRefused(name: string, fields: ErrorFields): AirlockError {
  const code = getField(fields, ErrorField.Code) ?? ''
  const message = getField(fields, ErrorField.Message) ?? 'unknown error'
  const authFailure = code === '28P01' || code === '28000'
  return new AirlockError(
    'upstream-unavailable',
    `connection ${name}: the server refused the gateway (${code} ${message})`,
    {
      hint: authFailure
        ? "the gateway's held credential was rejected: a gateway admin must fix it"
        : 'a gateway admin should check the connection settings',
    },
  )
}

function unavailable(name: string, reason: string): AirlockError {
  return new AirlockError('upstream-unavailable', `connection ${name}: ${reason}`, {
    hint: 'try again; if it persists a gateway admin must check the upstream',
  })
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':')
}
