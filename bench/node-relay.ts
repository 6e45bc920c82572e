/**
 * A bare TCP relay in Node: accept, connect to the target, copy bytes both ways, nothing else (no
 * WebSocket, no protocol, no policy). The benchmark chains two of them in front of PostgreSQL, the
 * same two Node process hops as `airlock connect` and the gateway, to show on each machine what
 * that shape alone costs against pgbouncer's one hop in C: the floor under the tunnel's numbers.
 *
 * Usage: node bench/node-relay.ts TARGET_PORT   (listens on 127.0.0.1, an ephemeral port,
 * printed as {"event":"relay.listen","port":N})
 */
import { connect, createServer, type Socket } from 'node:net'

const HOST = '127.0.0.1'
const target = Number(process.argv[2])
if (!Number.isInteger(target) || target <= 0) {
  process.stderr.write('usage: node-relay.ts TARGET_PORT\n')
  process.exit(2)
}

/** Copies `from` into `to` with backpressure, and ends `to` when `from` ends. */
function relay(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause()
      to.once('drain', () => from.resume())
    }
  })
  from.on('end', () => to.end())
  from.on('error', () => to.destroy())
  from.on('close', () => to.destroy())
}

const server = createServer((client) => {
  client.setNoDelay(true)
  const upstream = connect({ host: HOST, port: target, noDelay: true })
  relay(client, upstream)
  relay(upstream, client)
})
server.listen(0, HOST, () => {
  const address = server.address()
  process.stdout.write(`${JSON.stringify({ event: 'relay.listen', port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`)
})
const stop = (): void => {
  server.close()
  process.exit(0)
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
