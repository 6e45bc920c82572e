import type { Socket } from 'node:net'
import type { CloseReason, Transport } from './transport.js'

export interface PipeOptions {
  /**
   * A tunnel that ends in error resets the socket (the peer reads ECONNRESET) instead of ending it
   * in order: a raw byte stream has no other way to tell a cut-off stream from a complete one.
   * Not for protocols whose peer sends its own error before closing (PostgreSQL's FATAL).
   */
  resetOnError?: boolean
}

/**
 * Splices a TCP socket and a tunnel: bytes both ways with backpressure (a side that returns false
 * pauses the other until it drains), EOF carried across as a half-close, and one end tearing down
 * both. The socket must be created with `allowHalfOpen: true`. Resolves with the reason the pair ended.
 */
export function pipeSocket(transport: Transport, socket: Socket, options: PipeOptions = {}): Promise<CloseReason> {
  return new Promise((resolve) => {
    let done = false
    const finish = (reason: CloseReason): void => {
      if (done) return
      done = true
      transport.close(reason)
      if (reason.code !== undefined && options.resetOnError === true && !socket.destroyed) {
        socket.resetAndDestroy()
      } else if (!socket.destroyed) {
        // Flush what the socket holds (a FATAL the peer sent just before an error close must reach
        // the client), but never wait long on a client that does not read after an error.
        socket.end(() => socket.destroy())
        if (reason.code !== undefined) setTimeout(() => socket.destroy(), 1_000).unref()
      }
      resolve(reason)
    }

    socket.on('data', (chunk: Buffer) => {
      if (!transport.write(chunk)) socket.pause()
    })
    transport.on('drain', () => socket.resume())
    // The frames of one network read arrive in one tick: corked until the next, they leave in one
    // system call where each would otherwise be a write (and a wake-up of the reader) of its own.
    let corked = false
    const uncork = (): void => {
      corked = false
      socket.uncork()
    }
    transport.on('data', (chunk) => {
      if (!corked) {
        corked = true
        socket.cork()
        process.nextTick(uncork)
      }
      if (!socket.write(chunk)) transport.pause()
    })
    socket.on('drain', () => transport.resume())

    socket.on('end', () => transport.end())
    transport.on('end', () => socket.end())

    socket.on('error', (error: NodeJS.ErrnoException) => {
      finish({ code: 'tunnel-dropped', message: `connection failed: ${error.code ?? error.message}` })
    })
    socket.on('close', () => finish({ message: 'connection closed' }))
    transport.on('close', finish)
    transport.resume()
  })
}
