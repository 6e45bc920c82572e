/**
 * The CLI's local Postgres front: the little of the protocol `airlock connect` speaks itself before
 * splicing bytes, so that every failure reaches the client as a proper ErrorResponse.
 *
 *   psql                                airlock connect (front)                     gateway
 *     │── SSLRequest / GSSENCRequest ──▶│── 'N' (loopback: no TLS needed)
 *     │── StartupMessage ──────────────▶│
 *     │◀── AuthenticationCleartext ─────│   (per-session local secret, never forwarded)
 *     │── PasswordMessage ─────────────▶│   checked here, before any gateway work
 *     │                                 │── upgrade with the startup parameters ───────▶│ (reaches the DB)
 *     │◀────────────────── ready: R(ok) S* K Z, then spliced ◀─────────────────────────│
 *     │◀── ErrorResponse 28000/08001 + hint, when the tunnel cannot be opened
 *
 * A CancelRequest opens a tunnel of its own carrying the key; the gateway routes it.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Socket } from 'node:net'
import { AirlockError, type ErrorCode, toAirlockError } from '../../errors.js'
import type { OpenedTunnel } from '../../tunnel/client.js'
import type { FrontResult, LocalFront } from '../../tunnel/local.js'
import { MessageFramer, ProtocolError, parseStartupPacket, StartupFramer } from './framer.js'
import { parsePassword, serializeAuthentication, serializeNegotiateProtocolVersion } from './messages.js'
import { AuthenticationType, FrontendMessage, PROTOCOL_3_0 } from './protocol.js'
import { fatal } from './relay.js'

export interface PostgresFrontOptions {
  /** The password local clients must present; `undefined` turns the check off (`--no-local-secret`). */
  localSecret: string | undefined
  /** A client that has not finished its startup within this time is dropped. */
  startupTimeoutMs?: number
}

const SQLSTATE_FOR: Record<ErrorCode, string> = {
  unauthenticated: '28000',
  forbidden: '28000',
  usage: '08004',
  config: '08004',
  limit: '53300',
  'gateway-unreachable': '08001',
  incompatible: '08001',
  'upstream-unavailable': '08001',
  'tunnel-dropped': '08006',
  target: '08006',
  blocked: '42501',
  internal: 'XX000',
}

export function createPostgresFront(options: PostgresFrontOptions): LocalFront {
  const expected = options.localSecret === undefined ? undefined : digest(options.localSecret)
  return (socket, open) =>
    new Promise<FrontResult | undefined>((resolve, reject) => {
      const startup = new StartupFramer()
      let password: MessageFramer | undefined
      let params: Record<string, string> | undefined
      let tunnel: Promise<OpenedTunnel> | undefined
      let settled = false

      const timer = setTimeout(
        () =>
          settle(() => {
            socket.destroy()
            resolve(undefined)
          }),
        options.startupTimeoutMs ?? 60_000,
      )
      /** Ends the handshake once; unless the tunnel is to be spliced, it is closed. */
      const settle = (action: () => void, keepTunnel = false): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        socket.off('data', onData)
        socket.off('end', onEnd)
        socket.off('close', onEnd)
        if (!keepTunnel) void tunnel?.then((opened) => opened.transport.close({ message: 'local client left' }), () => {})
        action()
      }
      /** Refuses the client in its own protocol, then reports the failure to `connect`. */
      const refuse = (error: AirlockError): void => {
        settle(() => {
          socket.end(fatal(SQLSTATE_FOR[error.code], `airlock: ${error.message}`, error.hint))
          reject(error)
        })
      }
      const splice = (head: Buffer[]): void => {
        tunnel = open({ startup: params! })
        settle(() => {
          socket.pause()
          tunnel!.then(
            (opened) => resolve({ tunnel: opened, head }),
            (error: unknown) => {
              const failure = toAirlockError(error)
              socket.end(fatal(SQLSTATE_FOR[failure.code], `airlock: ${failure.message}`, failure.hint))
              reject(failure)
            },
          )
        }, true)
      }

      const onStartupPacket = (packet: Buffer): boolean => {
        const parsed = parseStartupPacket(packet)
        switch (parsed.kind) {
          case 'ssl':
          case 'gssenc':
            socket.write('N')
            return false
          case 'cancel':
            settle(() => {
              socket.end()
              open({ cancel: { processId: parsed.processId, secretKey: parsed.secretKey.toString('hex') } }).then(
                (opened) => opened.transport.close({ message: 'cancel sent' }),
                () => {},
              )
              resolve(undefined)
            })
            return true
          case 'startup': {
            if (parsed.major !== 3) throw new ProtocolError('unsupported', `unsupported frontend protocol ${parsed.major}.${parsed.minor}`)
            const extensions = [...parsed.params.keys()].filter((name) => name.startsWith('_pq_.'))
            // We speak 3.0: say so (and which _pq_ options we ignore) before anything else.
            if (parsed.minor > 0 || extensions.length > 0) socket.write(serializeNegotiateProtocolVersion(PROTOCOL_3_0, extensions))
            params = Object.fromEntries([...parsed.params].filter(([name]) => !name.startsWith('_pq_.')))
            const rest = startup.drain()
            if (expected === undefined) {
              splice(rest)
            } else {
              socket.write(serializeAuthentication(AuthenticationType.CleartextPassword))
              password = new MessageFramer({ maxMessageLength: 10_000 })
              for (const chunk of rest) password.push(chunk)
              checkPassword()
            }
            return true
          }
        }
      }

      const checkPassword = (): void => {
        const frame = password!.next()
        if (frame === undefined) return
        if (frame.type !== FrontendMessage.Password) throw new ProtocolError('malformed', 'expected a password message')
        if (!timingSafeEqual(digest(parsePassword(frame.body)), expected!)) {
          refuse(localSecretError())
          return
        }
        const head: Buffer[] = []
        for (let next = password!.next(); next !== undefined; next = password!.next()) head.push(next.raw)
        head.push(...password!.drain())
        splice(head)
      }

      const onData = (chunk: Buffer): void => {
        try {
          if (password !== undefined) {
            password.push(chunk)
            checkPassword()
            return
          }
          startup.push(chunk)
          for (let packet = startup.next(); packet !== undefined && !settled && params === undefined; packet = startup.next()) {
            if (onStartupPacket(packet)) break
          }
        } catch (error) {
          const message = error instanceof ProtocolError ? error.message : 'internal error'
          settle(() => {
            socket.end(fatal(error instanceof ProtocolError ? '08P01' : 'XX000', `airlock: ${message}`))
            resolve(undefined)
          })
        }
      }
      const onEnd = (): void => settle(() => resolve(undefined))

      socket.on('data', onData)
      socket.on('end', onEnd)
      socket.on('close', onEnd)
    })
}

function localSecretError(): AirlockError {
  return new AirlockError('unauthenticated', 'password authentication failed for the local airlock tunnel', {
    hint: 'use the password `airlock connect` printed (with `-- CMD` it is set as PGPASSWORD)',
  })
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}
