/**
 * The gateway process as an operator sees it: `gateway check`, secrets that never reach any output,
 * the well-known document, metrics, and a drain on SIGTERM that ends sessions with a reason.
 */
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT_CODES } from '../../src/errors.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { airlock, spawnAirlock, transcript } from '../helpers/processes.js'

const ENV_SECRET = `env-secret-${Math.random().toString(36).slice(2)}-canary`
const FILE_SECRET = `file-secret-${Math.random().toString(36).slice(2)}-canary`
let gateway: TestGateway

beforeAll(async () => {
  gateway = await startTestGateway({
    env: { AIRLOCK_TEST_PG_PASSWORD: ENV_SECRET },
    connections: [
      { name: 'redis', type: 'tcp', upstream: { host: '127.0.0.1', port: 6379 }, access: { groups: ['eng'] } },
      {
        name: 'pg-held',
        type: 'postgres',
        upstream: { host: '127.0.0.1', port: 5432, database: 'postgres', user: 'postgres', password: { env: 'AIRLOCK_TEST_PG_PASSWORD' }, tls: { mode: 'disable' } },
        access: { groups: ['eng'] },
      },
      {
        name: 'api',
        type: 'http',
        upstream: { url: 'http://127.0.0.1:9', headers: { authorization: { file: './api-token' } } },
        access: { groups: ['eng'] },
      },
    ],
    sessions: { drainGrace: '1s' },
    files: { 'api-token': `${FILE_SECRET}\n` },
  })
})

afterAll(async () => {
  await gateway?.stop()
  const everything = transcript.join('')
  expect(everything).not.toContain(ENV_SECRET)
  expect(everything).not.toContain(FILE_SECRET)
  for (const token of Object.values(gateway.tokens)) expect(everything).not.toContain(token)
})

describe('airlock gateway check', () => {
  it('passes a valid config and names its connections without printing secret values', async () => {
    const result = await airlock(['gateway', 'check', '--config', gateway.configFile, '--json'], { env: { AIRLOCK_TEST_PG_PASSWORD: ENV_SECRET } })
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, connections: ['redis', 'pg-held', 'api'] })
  })

  it('reports a missing secret reference by name and exits 2', async () => {
    const result = await airlock(['gateway', 'check', '--config', gateway.configFile])
    expect(result.code).toBe(EXIT_CODES.config)
    expect(result.stdout + result.stderr).toMatch(/AIRLOCK_TEST_PG_PASSWORD/)
  })

  it.each([
    ['invalid YAML', 'listen: [unclosed'],
    ['an inline secret', 'connections:\n  - name: db\n    type: postgres\n    upstream: { host: h, database: d, user: u, password: hunter2-inline }\n    access: { groups: [a] }\n'],
    ['a non-loopback listen without TLS', 'listen: { host: 0.0.0.0, port: 8009 }\n'],
    ['an unknown key', 'listen: { host: 127.0.0.1, prot: 8009 }\n'],
    ['a connection without access', 'connections:\n  - { name: r, type: tcp, upstream: { host: h, port: 1 } }\n'],
  ])('refuses %s with exit 2 and the path of the problem', async (_name, yaml) => {
    const file = join(gateway.dir, 'bad.yaml')
    writeFileSync(file, yaml)
    for (const command of ['check', 'serve']) {
      const result = await airlock(['gateway', command, '--config', file])
      expect(result.code).toBe(EXIT_CODES.config)
      expect(result.stderr).toMatch(/Error: /)
      expect(result.stderr).not.toContain('hunter2-inline')
    }
  })
})

describe('the gateway HTTP surface', () => {
  it('publishes /.well-known/airlock, /healthz and /metrics', async () => {
    const wellKnown = (await (await fetch(new URL('.well-known/airlock', gateway.url))).json()) as { version: string; proto: number }
    expect(wellKnown).toMatchObject({ proto: 1, version: expect.stringMatching(/^\d+\.\d+\.\d+/) })
    expect(await (await fetch(new URL('healthz', gateway.url))).json()).toMatchObject({ ok: true })
    const metrics = await (await fetch(new URL('metrics', gateway.url))).text()
    expect(metrics).toMatch(/^airlock_sessions_active \d+$/m)
  })

  it('says which connections an identity may use', async () => {
    const result = await airlock(['connections', '--json'], { env: gateway.env('user') })
    expect(JSON.parse(result.stdout).connections.map((c: { name: string }) => c.name)).toEqual(['redis', 'pg-held', 'api'])
    const outsider = await airlock(['connections', '--json'], { env: gateway.env('outsider') })
    expect(JSON.parse(outsider.stdout)).toEqual({ connections: [] })
  })
})

describe('SIGTERM', () => {
  it('drains: no new sessions, open ones end after the grace period with a reason', async () => {
    const tunnel = spawnAirlock(['connect', 'redis', '--json'], { env: gateway.env('user') })
    const { port } = await tunnel.waitFor<{ type: string; port: number }>((event) => event.type === 'ready')
    const socket = connect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    await tunnel.waitFor((event: { type: string }) => event.type === 'client-connected')

    gateway.process.child.kill('SIGTERM')
    await gateway.process.waitFor((line: { event?: string }) => line.event === 'gateway.drain')
    const closed = await tunnel.waitFor<{ type: string; code?: string; reason: string }>((event) => event.type === 'client-closed')
    expect(closed).toMatchObject({ code: 'limit', reason: 'the gateway is shutting down' })
    const [exitCode] = await once(gateway.process.child, 'exit')
    expect(exitCode).toBe(0)
    await tunnel.stop('SIGINT')
  })
})
