/**
 * Bad input, each refused with the right error code / exit code, through the real CLI and gateway
 * processes and raw WebSocket clients. Nothing a test sends as a secret may appear in any output.
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { EXIT_CODES } from '../../src/errors.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { airlock, spawnAirlock, transcript } from '../helpers/processes.js'

let gateway: TestGateway
let tight: TestGateway
let occupied: Server
let occupiedPort: number

beforeAll(async () => {
  const connections = [
    { name: 'redis', type: 'tcp', upstream: { host: '127.0.0.1', port: 6379 }, access: { groups: ['eng'] } },
    { name: 'nowhere', type: 'tcp', upstream: { host: '127.0.0.1', port: 1 }, access: { groups: ['eng'] } },
  ]
  ;[gateway, tight] = await Promise.all([
    startTestGateway({ connections, limits: { maxPayload: '320KiB' } }),
    startTestGateway({ connections, sessions: { maxDuration: '2s', maxPerIdentity: 2 }, limits: { upgradesPerMinutePerIp: 30 } }),
  ])
  occupied = createServer()
  occupied.listen(0, '127.0.0.1')
  await once(occupied, 'listening')
  occupiedPort = (occupied.address() as { port: number }).port
})

afterAll(async () => {
  occupied?.close()
  await Promise.all([gateway?.stop(), tight?.stop()])
  const everything = transcript.join('')
  for (const token of [...Object.values(gateway.tokens), ...Object.values(tight.tokens)]) expect(everything).not.toContain(token)
})

describe('the CLI exits with the documented code', () => {
  const cases: { name: string; args: string[] | (() => string[]); env: () => NodeJS.ProcessEnv; exit: keyof typeof EXIT_CODES; says: RegExp }[] = [
    { name: 'unknown connection', args: ['connect', 'no-such-db'], env: () => gateway.env('user'), exit: 'usage', says: /unknown connection/ },
    { name: 'wrong token', args: ['connections'], env: () => ({ ...gateway.env('user'), AIRLOCK_TOKEN: 'alk_not-a-real-token-at-all' }), exit: 'unauthenticated', says: /not valid/ },
    { name: 'token of another kind', args: ['connections'], env: () => ({ ...gateway.env('user'), AIRLOCK_TOKEN: 'eyJhbGciOi.garbage.x' }), exit: 'unauthenticated', says: /not valid/ },
    { name: 'expired token', args: ['connect', 'redis'], env: () => gateway.env('expired'), exit: 'unauthenticated', says: /expired/ },
    { name: 'no token', args: ['connections'], env: () => ({ AIRLOCK_GATEWAY: gateway.url }), exit: 'unauthenticated', says: /AIRLOCK_TOKEN/ },
    { name: 'no gateway', args: ['connections'], env: () => ({ AIRLOCK_TOKEN: gateway.tokens.user }), exit: 'usage', says: /AIRLOCK_GATEWAY/ },
    { name: 'plain http to a remote host', args: ['connections'], env: () => ({ AIRLOCK_GATEWAY: 'http://gateway.example.com', AIRLOCK_TOKEN: gateway.tokens.user }), exit: 'usage', says: /unencrypted/ },
    { name: 'forbidden group', args: ['connect', 'redis'], env: () => gateway.env('outsider'), exit: 'forbidden', says: /may not use connection redis/ },
    { name: 'non-admin lists sessions', args: ['sessions', 'list'], env: () => gateway.env('user'), exit: 'forbidden', says: /not a gateway admin/ },
    { name: 'port in use', args: () => ['connect', 'redis', '--port', String(occupiedPort)], env: () => gateway.env('user'), exit: 'usage', says: /already in use/ },
    { name: 'gateway down', args: ['connections'], env: () => ({ AIRLOCK_GATEWAY: 'http://127.0.0.1:9', AIRLOCK_TOKEN: 'alk_x' }), exit: 'gateway-unreachable', says: /cannot reach the gateway/ },
    { name: 'killing an unknown session', args: ['sessions', 'kill', 'ses_nope'], env: () => gateway.env('admin'), exit: 'usage', says: /no live session/ },
  ]
  for (const testCase of cases) {
    it(testCase.name, async () => {
      const args = typeof testCase.args === 'function' ? testCase.args() : testCase.args
      const result = await airlock(args, { env: testCase.env() })
      expect(result.stderr).toMatch(testCase.says)
      expect(result.stderr).toMatch(/^Hint: /m)
      expect(result.code).toBe(EXIT_CODES[testCase.exit])
    })
  }

  it('prints errors as JSON with --json', async () => {
    const result = await airlock(['connections', '--json'], { env: gateway.env('expired') })
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'unauthenticated' } })
    expect(result.code).toBe(EXIT_CODES.unauthenticated)
  })

  it('reports an unreachable upstream as an error event', async () => {
    const tunnel = spawnAirlock(['connect', 'nowhere', '--json'], { env: gateway.env('user') })
    const { port } = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
    const socket = (await import('node:net')).connect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    const error = await tunnel.waitFor<{ type: string; code: string }>((event) => event.type === 'error')
    expect(error.code).toBe('upstream-unavailable')
    expect(await tunnel.stop('SIGINT')).toBe(0)
  })
})

/** A raw upgrade, as a browser or an old/odd client would send it; resolves with the HTTP refusal or the close. */
function rawTunnel(url: string, headers: Record<string, string>): Promise<{ status?: number; body?: { error: { code: string } }; ws?: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL('v1/connections/redis/tunnel', url.replace(/^http/, 'ws')), { headers })
    ws.on('unexpected-response', (_request, response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => (text += chunk.toString()))
      response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(text) }))
    })
    ws.on('open', () => resolve({ ws }))
    ws.on('error', reject)
  })
}

describe('the gateway refuses tunnels before they start', () => {
  const good = () => ({ authorization: `Bearer ${gateway.tokens.user}`, 'airlock-client': '0.1.0; proto=1' })

  it('from a browser Origin', async () => {
    const result = await rawTunnel(gateway.url, { ...good(), origin: 'https://evil.example' })
    expect(result.status).toBe(403)
    expect(result.body?.error.code).toBe('forbidden')
  })

  it('from an incompatible client version', async () => {
    const result = await rawTunnel(gateway.url, { ...good(), 'airlock-client': '9.0.0; proto=99' })
    expect(result.status).toBe(400)
    expect(result.body?.error.code).toBe('incompatible')
  })

  it('from a client that does not say its version', async () => {
    const result = await rawTunnel(gateway.url, { authorization: good().authorization })
    expect(result.body?.error.code).toBe('incompatible')
  })

  it('with a malformed Airlock-Open header', async () => {
    const result = await rawTunnel(gateway.url, { ...good(), 'airlock-open': 'not-json!' })
    expect(result.body?.error.code).toBe('usage')
  })

  it('closes a tunnel that sends an oversize frame (1009)', async () => {
    const { ws } = await rawTunnel(gateway.url, good())
    const closed = once(ws!, 'close')
    ws!.send(Buffer.alloc(512 * 1024))
    const [code] = (await closed) as [number]
    expect(code).toBe(1009)
  })

  it('caps concurrent sessions per identity', async () => {
    const headers = { authorization: `Bearer ${tight.tokens.user}`, 'airlock-client': '0.1.0; proto=1' }
    const first = await rawTunnel(tight.url, headers)
    const second = await rawTunnel(tight.url, headers)
    const third = await rawTunnel(tight.url, headers)
    expect(first.ws).toBeDefined()
    expect(second.ws).toBeDefined()
    expect(third.status).toBe(429)
    expect(third.body?.error.code).toBe('limit')
    first.ws!.close()
    second.ws!.close()
    await Promise.all([once(first.ws!, 'close'), once(second.ws!, 'close')])
  })
})

describe('failed authentications', () => {
  it('are answered 429 past the per-address rate, and no longer logged one by one', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 40; i++) {
      const response = await fetch(new URL('v1/whoami', tight.url), { headers: { authorization: 'Bearer alk_not-a-token' } })
      statuses.push(response.status)
    }
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(30)
    expect(statuses.slice(-5)).toEqual([429, 429, 429, 429, 429])
    const logged = tight.process.stdout().split('\n').filter((line) => line.includes('"event":"auth.failure"'))
    expect(logged.length).toBeLessThanOrEqual(30)
    // A good token is still served.
    expect((await fetch(new URL('v1/whoami', tight.url), { headers: { authorization: `Bearer ${tight.tokens.user}` } })).status).toBe(200)
  })
})

describe('sessions end', () => {
  it('when they pass sessions.maxDuration', async () => {
    const tunnel = spawnAirlock(['connect', 'redis', '--json'], { env: tight.env('user') })
    const { port } = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
    const socket = (await import('node:net')).connect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    const closed = await tunnel.waitFor<{ type: string; code?: string; reason: string }>((event) => event.type === 'client-closed', 10_000)
    expect(closed.code).toBe('limit')
    expect(closed.reason).toMatch(/maximum duration/)
    await tunnel.stop('SIGINT')
  })

  it('when an admin kills them with `airlock sessions kill`', async () => {
    const tunnel = spawnAirlock(['connect', 'redis', '--json'], { env: gateway.env('user') })
    const { port } = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
    const socket = (await import('node:net')).connect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    const { session } = await tunnel.waitFor<{ type: string; session: string }>((event) => event.type === 'client-connected')

    const listed = await airlock(['sessions', 'list', '--json'], { env: gateway.env('admin') })
    expect(listed.code).toBe(0)
    const sessions = (JSON.parse(listed.stdout) as { sessions: { id: string; identity: string; connection: string }[] }).sessions
    expect(sessions).toContainEqual(expect.objectContaining({ id: session, identity: 'test-user', connection: 'redis' }))

    const killed = await airlock(['sessions', 'kill', session], { env: gateway.env('admin') })
    expect(killed.code).toBe(0)
    const closed = await tunnel.waitFor<{ type: string; code?: string; reason: string }>((event) => event.type === 'client-closed')
    expect(closed.code).toBe('forbidden')
    expect(closed.reason).toMatch(/ended by gateway admin test-admin/)
    await tunnel.stop('SIGINT')
  })
})
