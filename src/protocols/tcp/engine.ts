/**
 * tcp: byte passthrough for services Airlock does not parse. No inspection; the session is still
 * authenticated, authorised, time-limited and accounted (bytes each way).
 *
 *   client ══ tunnel ══▶ gateway ══ TCP ══▶ upstream
 *   client ◀══ tunnel ══ gateway ◀══ TCP ══ upstream
 */
import { connect, type Socket } from 'node:net'
import { AirlockError } from '../../errors.js'
import { pipeSocket } from '../../tunnel/pipe.js'
import type { EngineSession, ProtocolEngine, UpstreamLink } from '../engine.js'

const CONNECT_TIMEOUT_MS = 10_000

export const tcpEngine: ProtocolEngine = {
  async open(session: EngineSession): Promise<UpstreamLink> {
    const { connection } = session
    if (connection.type !== 'tcp') throw new AirlockError('internal', `tcp engine given a ${connection.type} connection`)
    const socket = await connectTcp(connection.upstream.host, connection.upstream.port, connection.name)
    return { relay: () => pipeSocket(session.transport, socket, { resetOnError: true }), abort: () => socket.destroy() }
  },
}

/** Opens a TCP connection to an upstream, as an `upstream-unavailable` error the caller can read when it fails. */
export function connectTcp(host: string, port: number, connectionName: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true })
    const fail = (reason: string, cause?: unknown): void => {
      socket.destroy()
      reject(
        new AirlockError('upstream-unavailable', `connection ${connectionName}: the gateway cannot reach the upstream service (${reason})`, {
          hint: 'the service may be down; try again, or ask a gateway admin to check it',
          cause,
        }),
      )
    }
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => fail('timed out'))
    socket.once('error', (error: NodeJS.ErrnoException) => fail(error.code ?? 'error', error))
    socket.once('connect', () => {
      socket.setTimeout(0)
      socket.removeAllListeners('error')
      // Until the relay attaches its own handler, an error must not crash the gateway; `close` follows it.
      socket.on('error', () => {})
      resolve(socket)
    })
  })
}
