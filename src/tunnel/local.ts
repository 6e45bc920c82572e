/**
 * The CLI's local side of `airlock connect`: a listener on 127.0.0.1 whose every accepted
 * connection gets its own tunnel, spliced once the gateway says `ready`.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { AirlockError, type ErrorCode, toAirlockError } from '../errors.js'
import type { OpenedTunnel } from './client.js'
import { pipeSocket } from './pipe.js'
import type { OpenParams } from './protocol.js'

export type ConnectEvent =
  | { type: 'ready'; host: string; port: number }
  | { type: 'client-connected'; client: number; session: string }
  | { type: 'client-closed'; client: number; session: string; bytesIn: number; bytesOut: number; code?: ErrorCode; reason: string }
  | { type: 'error'; client?: number; code: ErrorCode; message: string; hint?: string }

/**
 * What happens to one accepted local connection before it is spliced. The default opens a tunnel
 * and splices at once; a protocol front (e.g. Postgres) speaks its own handshake first and answers
 * failures in the protocol's own error format.
 */
export type LocalFront = (socket: Socket, open: (params?: OpenParams) => Promise<OpenedTunnel>) => Promise<FrontResult | undefined>

/** A tunnel ready to splice, and client bytes the front read past its handshake (sent first). */
export interface FrontResult {
  tunnel: OpenedTunnel
  head?: Buffer[]
}

export interface LocalListenerOptions {
  /** 0 picks a free port. */
  port: number
  open: (params?: OpenParams) => Promise<OpenedTunnel>
  onEvent: (event: ConnectEvent) => void
  front?: LocalFront
}

export interface ListenerStats {
  active: number
  total: number
  bytesIn: number
  bytesOut: number
}

export interface LocalListener {
  readonly host: string
  readonly port: number
  /** Live counters for a status display: open and finished clients, bytes each way. */
  stats(): ListenerStats
  /** Stops listening and ends every open client tunnel normally. */
  close(): Promise<void>
}

export const LOCAL_HOST = '127.0.0.1'

const passthroughFront: LocalFront = async (socket, open) => {
  socket.pause()
  try {
    return { tunnel: await open() }
  } catch (error) {
    // Raw TCP has no way to say why: close in order (FIN, not a reset, so whatever the client sent
    // is read and dropped first) and let the `error` event tell the user what to do next
    // ("run `airlock login`").
    socket.resume()
    socket.end()
    setTimeout(() => socket.destroy(), 5_000).unref()
    throw error
  }
}

export async function listenLocal(options: LocalListenerOptions): Promise<LocalListener> {
  const front = options.front ?? passthroughFront
  const clients = new Set<Socket>()
  const tunnels = new Set<OpenedTunnel>()
  let nextClient = 1
  const finished = { bytesIn: 0, bytesOut: 0 }

  const server: Server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const client = nextClient++
    clients.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => clients.delete(socket))
    front(socket, options.open).then(
      (result) => {
        if (result === undefined) return
        const { tunnel } = result
        if (socket.destroyed) {
          tunnel.transport.close({ message: 'local client left' })
          return
        }
        tunnels.add(tunnel)
        options.onEvent({ type: 'client-connected', client, session: tunnel.session })
        for (const chunk of result.head ?? []) tunnel.transport.write(chunk)
        socket.resume()
        // Raw bytes (no front) have no error message of their own: a failed tunnel resets the client.
        void pipeSocket(tunnel.transport, socket, { resetOnError: options.front === undefined }).then((reason) => {
          tunnels.delete(tunnel)
          finished.bytesIn += tunnel.transport.bytesIn
          finished.bytesOut += tunnel.transport.bytesOut
          options.onEvent({
            type: 'client-closed',
            client,
            session: tunnel.session,
            bytesIn: tunnel.transport.bytesIn,
            bytesOut: tunnel.transport.bytesOut,
            reason: reason.message,
            ...(reason.code ? { code: reason.code } : {}),
          })
        })
      },
      (error: unknown) => {
        const failure = toAirlockError(error)
        options.onEvent({ type: 'error', client, code: failure.code, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) })
      },
    )
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        reject(
          new AirlockError('usage', `port ${options.port} is already in use on ${LOCAL_HOST}`, {
            hint: 'choose another with --port, or leave --port out to pick a free one',
          }),
        )
      } else if (error.code === 'EACCES') {
        reject(new AirlockError('usage', `not allowed to listen on port ${options.port}`, { hint: 'use a port above 1023' }))
      } else {
        reject(toAirlockError(error))
      }
    })
    server.listen(options.port, LOCAL_HOST, () => resolve())
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  options.onEvent({ type: 'ready', host: LOCAL_HOST, port })

  return {
    host: LOCAL_HOST,
    port,
    stats: () => {
      const stats = { active: tunnels.size, total: nextClient - 1, ...finished }
      for (const tunnel of tunnels) {
        stats.bytesIn += tunnel.transport.bytesIn
        stats.bytesOut += tunnel.transport.bytesOut
      }
      return stats
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const tunnel of tunnels) tunnel.transport.close({ message: 'airlock connect stopped' })
      for (const socket of clients) socket.destroy()
      await closed
    },
  }
}
