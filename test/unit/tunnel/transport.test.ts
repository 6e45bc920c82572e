import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { type AddressInfo, connect as netConnect, createServer as createNetServer, type Socket } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import { pipeSocket } from '../../../src/tunnel/pipe.js'
import { WsTransport } from '../../../src/tunnel/transport.js'

/** A WebSocket pair over loopback: the accepting side's transport (given its socket or not) and the connecting side's. */
async function pair(withSocket: boolean, keepaliveMs = 0, serverKeepaliveMs = keepaliveMs, peerReasons = true): Promise<{ server: WsTransport; socket: Socket; client: WsTransport; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ noServer: true })
  const http: Server = createServer()
  const accepted = new Promise<{ server: WsTransport; socket: Socket }>((resolve) => {
    http.on('upgrade', (request, socket: Socket, head) => {
      wss.handleUpgrade(request, socket, head, (ws) => resolve({ server: new WsTransport(ws, withSocket ? { socket, keepaliveMs: serverKeepaliveMs, peerReasons } : { keepaliveMs: serverKeepaliveMs, peerReasons }), socket }))
    })
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  const ws = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}`)
  await once(ws, 'open')
  const client = new WsTransport(ws, { keepaliveMs })
  const { server, socket } = await accepted
  server.resume()
  client.resume()
  return {
    server,
    socket,
    client,
    close: async () => {
      server.close()
      client.close()
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    },
  }
}

/** The first `count` chunks the transport emits. */
function received(transport: WsTransport, count: number): Promise<Buffer[]> {
  const chunks: Buffer[] = []
  return new Promise((resolve) => {
    transport.on('data', (chunk) => {
      chunks.push(chunk)
      if (chunks.length === count) resolve(chunks)
    })
  })
}

describe('WsTransport.writev', () => {
  let close: (() => Promise<void>) | undefined
  afterEach(async () => {
    await close?.()
    close = undefined
  })

  // A straddled message, a slice of a read, a rewritten row: sizes around the frame-header boundaries (125, 65535).
  const chunks = [Buffer.alloc(7, 1), Buffer.alloc(125, 2), Buffer.alloc(126, 3), Buffer.alloc(65_536, 4), Buffer.alloc(300_000, 5)]

  it.each([true, false])('delivers each chunk whole and in order (socket given: %s)', async (withSocket) => {
    const sides = await pair(withSocket)
    close = sides.close
    // The 300 000 bytes exceed one frame: split in two.
    const arriving = received(sides.client, chunks.length + 1)
    expect(sides.server.writev(chunks)).toBe(true)
    const got = await arriving
    expect(Buffer.concat(got).equals(Buffer.concat(chunks))).toBe(true)
    expect(got.slice(0, 4).map((chunk) => chunk.length)).toEqual([7, 125, 126, 65_536])
    expect(sides.server.bytesOut).toBe(Buffer.concat(chunks).length)
  })

  it('corks the socket it was given, so every frame leaves in one write', async () => {
    const sides = await pair(true)
    close = sides.close
    const writes = vi.spyOn(sides.socket, '_writev')
    const single = vi.spyOn(sides.socket, '_write')
    const arriving = received(sides.client, 3)
    sides.server.writev([Buffer.from('a'), Buffer.from('bb'), Buffer.from('ccc')])
    expect(sides.socket.writableCorked).toBe(0)
    expect(writes).toHaveBeenCalledTimes(1)
    expect(single).not.toHaveBeenCalled()
    // A header and a payload per frame.
    expect(writes.mock.calls[0]![0]).toHaveLength(6)
    expect((await arriving).map(String)).toEqual(['a', 'bb', 'ccc'])
  })

  it('says false once the peer is behind, having sent every chunk', async () => {
    const sides = await pair(true)
    close = sides.close
    const big = Buffer.alloc(600_000, 9)
    const arriving = received(sides.client, 6)
    expect(sides.server.writev([big, big])).toBe(false)
    expect(Buffer.concat(await arriving).length).toBe(1_200_000)
  })
})

describe('WsTransport close reasons', () => {
  it.each([
    [true, { code: 'forbidden', message: 'session ended by gateway admin alice' }],
    [false, { message: 'the client closed the tunnel' }],
  ])('takes the peer\'s error as the reason only when told to (peerReasons %s)', async (peerReasons, expected) => {
    const sides = await pair(true, 0, 0, peerReasons)
    try {
      const closed = new Promise((resolve) => sides.server.on('close', resolve))
      // What a client could send to write its own reason into the gateway's audit.
      sides.client.close({ code: 'forbidden', message: 'session ended by gateway admin alice' })
      expect(await closed).toEqual(expected)
    } finally {
      await sides.close()
    }
  })
})

describe('WsTransport keepalive', () => {
  it('drops an idle tunnel whose peer no longer answers', async () => {
    // Only the connecting side pings: the other would otherwise drop the tunnel first.
    const sides = await pair(true, 40, 0)
    try {
      const closed = new Promise((resolve) => sides.client.on('close', resolve))
      // The accepting side stops reading its socket: pings go unanswered, nothing is pending.
      sides.socket.pause()
      expect(await closed).toMatchObject({ code: 'tunnel-dropped', message: 'the tunnel stopped answering keepalive pings' })
    } finally {
      sides.socket.resume()
      await sides.close()
    }
  })

  it('holds a tunnel whose peer stops reading for many keepalive intervals (backpressure), and delivers everything after', async () => {
    // 250 ms: short enough to stall for ten intervals, long enough that a receiver busy on a
    // loaded machine answers a ping in time once it reads again.
    const sides = await pair(true, 250)
    try {
      const closed: unknown[] = []
      sides.client.on('close', (reason) => closed.push(reason))
      sides.server.on('close', (reason) => closed.push(reason))
      let got = 0
      sides.server.on('data', (chunk: Buffer) => (got += chunk.length))
      sides.server.pause()
      const chunk = Buffer.alloc(1 << 20, 7)
      let sent = 0
      // Write until the tunnel pushes back, and well past what the kernel's buffers hold.
      while (sides.client.write(chunk) || sent < 32 << 20) sent += chunk.length
      sent += chunk.length
      await new Promise((resolve) => setTimeout(resolve, 2_500))
      expect(closed).toEqual([])
      sides.server.resume()
      await vi.waitFor(() => expect(got).toBe(sent), { timeout: 10_000 })
      expect(closed).toEqual([])
    } finally {
      await sides.close()
    }
  })
})

describe('pipeSocket', () => {
  /** A loopback TCP pair: the accepted side (piped to the tunnel) and the client that reads it. */
  async function tcpPair(): Promise<{ piped: Socket; client: Socket; close: () => void }> {
    const server = createNetServer({ allowHalfOpen: true })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const accepted = once(server, 'connection') as Promise<[Socket]>
    const client = netConnect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port })
    const [piped] = await accepted
    return { piped, client, close: () => server.close() }
  }

  it.each([
    [true, 'resets the socket (the reader sees ECONNRESET)', 'ECONNRESET'],
    [false, 'ends the socket in order', 'end'],
  ])('when the tunnel ends in error and resetOnError is %s, it %s', async (resetOnError, _what, expected) => {
    const sides = await pair(true)
    const tcp = await tcpPair()
    try {
      const outcome = new Promise<string>((resolve) => {
        tcp.client.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
        tcp.client.on('end', () => resolve('end'))
        tcp.client.resume()
      })
      const piped = pipeSocket(sides.server, tcp.piped, { resetOnError })
      sides.client.write(Buffer.from('partial'))
      sides.client.close({ code: 'tunnel-dropped', message: 'the far side failed' })
      expect((await piped).code).toBe('tunnel-dropped')
      expect(await outcome).toBe(expected)
    } finally {
      tcp.client.destroy()
      tcp.close()
      await sides.close()
    }
  })
})
