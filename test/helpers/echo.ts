/** A TCP echo server on a free loopback port: the upstream of the tests' `tcp` connections. */
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'

export interface EchoServer {
  server: Server
  port: number
  close(): void
}

export async function startEcho(): Promise<EchoServer> {
  const server = createServer((socket) => {
    // A session that ends in error (killed, revoked, drained) resets its upstream connection.
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as { port: number }).port, close: () => server.close() }
}
