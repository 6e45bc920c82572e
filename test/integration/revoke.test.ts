/**
 * An admin revokes an identity (`airlock sessions kill --identity`): every live session of that
 * identity ends, other identities' sessions run on, the identity cannot open a new tunnel (exit 5),
 * and the action is in the audit log as `admin.revoke`.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT_CODES } from '../../src/errors.js'
import { type EchoServer, startEcho } from '../helpers/echo.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { airlock, type Spawned, spawnAirlock, transcript } from '../helpers/processes.js'

let gateway: TestGateway
let echo: EchoServer
const tunnels: Spawned[] = []

beforeAll(async () => {
  echo = await startEcho()
  const port = echo.port
  gateway = await startTestGateway({
    connections: [{ name: 'echo', type: 'tcp', upstream: { host: '127.0.0.1', port }, access: { groups: ['eng', 'sales'] } }],
  })
})

afterAll(async () => {
  await Promise.all(tunnels.map((tunnel) => tunnel.stop('SIGINT')))
  await gateway?.stop()
  echo?.close()
  const everything = transcript.join('')
  for (const token of Object.values(gateway.tokens)) expect(everything).not.toContain(token)
})

/** `airlock connect echo` as `who`, with one local client through it. */
async function openSession(who: 'user' | 'outsider'): Promise<{ tunnel: Spawned; socket: Socket; session: string }> {
  const tunnel = spawnAirlock(['connect', 'echo', '--json'], { env: gateway.env(who) })
  tunnels.push(tunnel)
  const { port } = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  const { session } = await tunnel.waitFor<{ type: string; session: string }>((event) => event.type === 'client-connected')
  return { tunnel, socket, session }
}

async function roundTrip(socket: Socket, text: string): Promise<string> {
  socket.write(text)
  const [data] = (await once(socket, 'data')) as [Buffer]
  return data.toString()
}

describe('revoking an identity', () => {
  it('ends all its sessions, spares others, refuses it new tunnels with exit 5, and is audited', async () => {
    const first = await openSession('user')
    const second = await openSession('user')
    const other = await openSession('outsider')

    const revoked = await airlock(['sessions', 'kill', '--identity', 'service:test-user', '--json'], { env: gateway.env('admin') })
    expect(revoked.code, revoked.stderr).toBe(0)
    const result = JSON.parse(revoked.stdout) as { identity: string; killed: string[]; until: string | null }
    expect(result).toMatchObject({ identity: 'service:test-user', until: null })
    expect(result.killed.sort()).toEqual([first.session, second.session].sort())

    for (const { tunnel } of [first, second]) {
      const closed = await tunnel.waitFor<{ type: string; code?: string; reason: string }>((event) => event.type === 'client-closed')
      expect(closed.code).toBe('forbidden')
      expect(closed.reason).toMatch(/revoked by gateway admin test-admin/)
    }
    expect(await roundTrip(other.socket, 'still here')).toBe('still here')

    const refused = await airlock(['connect', 'echo'], { env: gateway.env('user') })
    expect(refused.code).toBe(EXIT_CODES.forbidden)
    expect(refused.stderr).toMatch(/revoked test-user: new sessions are refused until the gateway restarts/)
    expect(refused.stderr).toMatch(/^Hint: /m)

    const audit = await airlock(['audit', 'list', '--type', 'admin.revoke', '--json'], { env: gateway.env('admin') })
    expect(audit.code, audit.stderr).toBe(0)
    const events = (JSON.parse(audit.stdout) as { events: Record<string, unknown>[] }).events
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ type: 'admin.revoke', identity: 'service:test-admin', user: 'test-admin', revoked: 'service:test-user' })
    expect((events[0]!.sessions as string[]).sort()).toEqual(result.killed.sort())
  })

  it('for a period (its end is unit-tested with a clock); only an admin may revoke', async () => {
    const denied = await airlock(['sessions', 'kill', '--identity', 'service:test-user'], { env: gateway.env('outsider') })
    expect(denied.code).toBe(EXIT_CODES.forbidden)

    const revoked = await airlock(['sessions', 'kill', '--identity', 'service:test-outsider', '--for', '10m', '--json'], { env: gateway.env('admin') })
    expect(revoked.code, revoked.stderr).toBe(0)
    const { until } = JSON.parse(revoked.stdout) as { until: string }
    expect(Date.parse(until) - Date.now()).toBeGreaterThan(8 * 60_000)
    // Listing connections is not a session: still allowed.
    expect((await airlock(['connections'], { env: gateway.env('outsider') })).code).toBe(0)
    const refused = await airlock(['connect', 'echo'], { env: gateway.env('outsider') })
    expect(refused.code).toBe(EXIT_CODES.forbidden)
    expect(refused.stderr).toContain(`new sessions are refused until ${until}`)

    const bad = await airlock(['sessions', 'kill', '--identity', 'service:test-outsider', '--for', 'soon'], { env: gateway.env('admin') })
    expect(bad.code).toBe(EXIT_CODES.usage)
  })

  it('takes every admin action from a revoked admin (its token may be the stolen one)', async () => {
    expect((await airlock(['sessions', 'list'], { env: gateway.env('admin') })).code).toBe(0)
    const revoked = await airlock(['sessions', 'kill', '--identity', 'service:test-admin', '--for', '10m'], { env: gateway.env('admin') })
    expect(revoked.code, revoked.stderr).toBe(0)
    for (const args of [['sessions', 'list'], ['audit', 'list'], ['sessions', 'kill', '--identity', 'service:test-user']]) {
      const refused = await airlock(args, { env: gateway.env('admin') })
      expect(refused.code, args.join(' ')).toBe(EXIT_CODES.forbidden)
      expect(refused.stderr).toContain('admin actions are refused until')
    }
  })

  it('answers a malformed percent-encoded name with a usage error, not an internal one', async () => {
    const response = await fetch(new URL('v1/connections/%E0%A4%A', gateway.url), { headers: { authorization: `Bearer ${gateway.tokens.user}` } })
    expect(response.status).toBe(400)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('usage')
  })
})
