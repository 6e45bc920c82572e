/**
 * Backpressure end to end: a far end streams 1 GiB while the local client stops reading. The
 * gateway's and the CLI's resident memory must stay bounded, the far end must be held back, and
 * once the client reads again every byte arrives intact.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type Server } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { residentBytes, spawnAirlock, type Spawned } from '../helpers/processes.js'

const TOTAL = 1024 * 1024 * 1024
const BLOCK = Buffer.alloc(64 * 1024)
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = (i * 31 + 7) & 0xff
/** Resident memory either process may gain while 1 GiB waits behind a client that does not read. */
const MEMORY_GROWTH = 64 * 1024 * 1024
/** And in all: the runtime, the gateway's modules (the SQL parser's WebAssembly) and that growth. */
const MEMORY_CEILING = 200 * 1024 * 1024

let upstream: Server
let written = 0
let expectedHash = ''
let gateway: TestGateway
let tunnel: Spawned
let localPort: number

beforeAll(async () => {
  const hash = createHash('sha256')
  for (let sent = 0; sent < TOTAL; sent += BLOCK.length) hash.update(BLOCK)
  expectedHash = hash.digest('hex')

  upstream = createServer((socket) => {
    const pump = (): void => {
      while (written < TOTAL) {
        written += BLOCK.length
        if (!socket.write(BLOCK)) {
          socket.once('drain', pump)
          return
        }
      }
      socket.end()
    }
    socket.on('error', () => {})
    pump()
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  const upstreamPort = (upstream.address() as { port: number }).port

  gateway = await startTestGateway({
    connections: [{ name: 'firehose', type: 'tcp', upstream: { host: '127.0.0.1', port: upstreamPort }, access: { groups: ['eng'] } }],
  })
  tunnel = spawnAirlock(['connect', 'firehose', '--json'], { env: gateway.env('user') })
  localPort = (await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')).port
}, 120_000)

afterAll(async () => {
  await tunnel?.stop('SIGINT')
  await gateway?.stop()
  upstream?.close()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

it('holds a 1 GiB stream back while the client does not read, with bounded memory, then delivers it intact', async () => {
  const gatewayBefore = await residentBytes(gateway.process.child.pid!)
  const cliBefore = await residentBytes(tunnel.child.pid!)
  const socket = connect({ host: '127.0.0.1', port: localPort })
  const hash = createHash('sha256')
  let received = 0
  let stalled = false
  socket.on('data', (chunk: Buffer) => {
    hash.update(chunk)
    received += chunk.length
    if (!stalled && received >= 8 * 1024 * 1024) {
      stalled = true
      socket.pause()
    }
  })
  while (!stalled) await sleep(20)

  await sleep(3_000)
  const writtenWhileStalled = written
  const gatewayMemory = await residentBytes(gateway.process.child.pid!)
  const cliMemory = await residentBytes(tunnel.child.pid!)
  await sleep(1_000)
  // Held back: the far end has been able to write only what the buffers on the way hold, and no more.
  expect(written).toBe(writtenWhileStalled)
  expect(writtenWhileStalled).toBeLessThan(64 * 1024 * 1024)
  expect(gatewayMemory - gatewayBefore).toBeLessThan(MEMORY_GROWTH)
  expect(cliMemory - cliBefore).toBeLessThan(MEMORY_GROWTH)
  expect(gatewayMemory).toBeLessThan(MEMORY_CEILING)
  expect(cliMemory).toBeLessThan(MEMORY_CEILING)

  const ended = once(socket, 'end')
  socket.resume()
  await ended
  expect(received).toBe(TOTAL)
  expect(hash.digest('hex')).toBe(expectedHash)
  socket.destroy()
}, 180_000)
