/**
 * The tcp engine through the real CLI and gateway processes against real Redis and PostgreSQL:
 * several concurrent clients, large values both ways byte-identical, a real client via `connect -- CMD`.
 */
import { createHash, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { airlock, spawnAirlock, type Spawned, transcript } from '../helpers/processes.js'

let gateway: TestGateway
let tunnel: Spawned
let port: number

beforeAll(async () => {
  gateway = await startTestGateway({
    connections: [
      { name: 'redis', type: 'tcp', upstream: { host: '127.0.0.1', port: 6379 }, access: { groups: ['eng'] } },
      { name: 'pg-raw', type: 'tcp', upstream: { host: '127.0.0.1', port: 5432 }, access: { groups: ['eng'] } },
    ],
  })
  tunnel = spawnAirlock(['connect', 'redis', '--json'], { env: gateway.env('user') })
  const ready = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
  port = ready.port
})

afterAll(async () => {
  await tunnel?.stop('SIGINT')
  await gateway?.stop()
  const everything = transcript.join('')
  for (const token of Object.values(gateway.tokens)) expect(everything).not.toContain(token)
})

/** One RESP exchange: sends a command, reads exactly one reply. */
async function redis(socket: Socket, ...parts: (string | Buffer)[]): Promise<Buffer> {
  const frames: Buffer[] = [Buffer.from(`*${parts.length}\r\n`)]
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part) : part
    frames.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'))
  }
  socket.write(Buffer.concat(frames))
  return readReply(socket)
}

function readReply(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const lineEnd = buffered.indexOf('\r\n')
      if (lineEnd < 0) return
      const kind = String.fromCharCode(buffered[0]!)
      if (kind === '+' || kind === '-' || kind === ':') return done(buffered.subarray(0, lineEnd))
      if (kind !== '$') return fail(new Error(`unexpected reply ${buffered.subarray(0, 40).toString()}`))
      const length = Number(buffered.subarray(1, lineEnd).toString())
      if (buffered.length >= lineEnd + 2 + length + 2) done(buffered.subarray(lineEnd + 2, lineEnd + 2 + length))
    }
    const done = (reply: Buffer): void => {
      socket.off('data', onData)
      socket.off('error', fail)
      resolve(reply)
    }
    const fail = (error: Error): void => {
      socket.off('data', onData)
      reject(error)
    }
    socket.on('data', onData)
    socket.once('error', fail)
  })
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket))
    socket.once('error', reject)
  })
}

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

describe('tcp passthrough', () => {
  it('carries 16 MiB values both ways byte-identical for 4 concurrent clients', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => open()))
    await Promise.all(
      clients.map(async (socket, index) => {
        const key = `airlock-test-${process.pid}-${index}`
        const value = randomBytes(16 * 1024 * 1024)
        expect((await redis(socket, 'SET', key, value)).toString()).toBe('+OK')
        const back = await redis(socket, 'GET', key)
        expect(back.length).toBe(value.length)
        expect(sha(back)).toBe(sha(value))
        expect((await redis(socket, 'DEL', key)).toString()).toBe(':1')
        socket.end()
      }),
    )
    const closed = await tunnel.waitFor<{ type: string; client: number; bytesIn: number }>((event) => event.type === 'client-closed' && event.client === 4)
    expect(closed.bytesIn).toBeGreaterThan(16 * 1024 * 1024)
  })

  it('reports each client in --json events', async () => {
    const socket = await open()
    expect((await redis(socket, 'PING')).toString()).toBe('+PONG')
    socket.end()
    const connected = await tunnel.waitFor<{ type: string; client: number; session: string }>((event) => event.type === 'client-connected' && event.client === 5)
    expect(connected.session).toMatch(/^ses_/)
  })

  it('runs a real client with `connect -- CMD` and passes its exit code through', async () => {
    const result = await airlock(
      ['connect', 'pg-raw', '--', 'sh', '-c', 'psql -h "$AIRLOCK_HOST" -p "$AIRLOCK_PORT" -U postgres -d postgres -tAc "select 6 * 7"; exit 7'],
      { env: gateway.env('user') },
    )
    expect(result.stdout.trim()).toBe('42')
    expect(result.code).toBe(7)
  })

  it('does not hand the token to the command it runs', async () => {
    const result = await airlock(['connect', 'pg-raw', '--', 'sh', '-c', 'echo "token=${AIRLOCK_TOKEN:-unset}"'], { env: gateway.env('user') })
    expect(result.stdout.trim()).toBe('token=unset')
    expect(result.code).toBe(0)
  })
})
