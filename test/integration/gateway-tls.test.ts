/** A gateway serving HTTPS/WSS with a private CA: the CLI trusts it through NODE_EXTRA_CA_CERTS. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { EXIT_CODES } from '../../src/errors.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { airlock } from '../helpers/processes.js'
import { createTestCa } from '../helpers/tls.js'

let gateway: TestGateway
let caFile: string

beforeAll(async () => {
  const ca = createTestCa(mkdtempSync(join(tmpdir(), 'airlock-ca-')))
  caFile = ca.caFile
  const { certFile, keyFile } = ca.issue('gateway', ['DNS:localhost', 'IP:127.0.0.1'])
  gateway = await startTestGateway({
    tls: { cert: certFile, key: keyFile },
    connections: [{ name: 'pg-raw', type: 'tcp', upstream: { host: '127.0.0.1', port: 5432 }, access: { groups: ['eng'] } }],
  })
})

afterAll(() => gateway?.stop())

it('serves https and wss', async () => {
  expect(gateway.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/)
  const result = await airlock(['connect', 'pg-raw', '--', 'sh', '-c', 'psql -X -h "$AIRLOCK_HOST" -p "$AIRLOCK_PORT" -U postgres -d postgres -tAc "select 1"'], {
    env: { ...gateway.env('user'), NODE_EXTRA_CA_CERTS: caFile },
  })
  expect(result.stdout.trim()).toBe('1')
  expect(result.code).toBe(0)
})

it('is refused as unreachable when the CLI does not trust its certificate', async () => {
  const result = await airlock(['connections'], { env: gateway.env('user') })
  expect(result.code).toBe(EXIT_CODES['gateway-unreachable'])
  expect(result.stderr).toMatch(/cannot reach the gateway/)
  expect(result.stderr).toMatch(/NODE_EXTRA_CA_CERTS/)
})
