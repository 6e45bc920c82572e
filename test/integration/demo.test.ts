import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { airlock } from '../helpers/processes.js'

it('`airlock demo --once` runs the tour from a clean HOME and exits 0', async () => {
  const home = mkdtempSync(join(tmpdir(), 'airlock-home-'))
  const result = await airlock(['demo', '--once'], { env: { HOME: home, XDG_CONFIG_HOME: '' }, timeoutMs: 90_000 })
  expect(result.stderr).toBe('')
  expect(result.stdout).toMatch(/through the tunnel: 5 customers, 40 orders/)
  expect(result.code).toBe(0)
  const tokenFile = join(home, '.config', 'airlock', 'demo', 'service-token')
  expect(statSync(tokenFile).mode & 0o777).toBe(0o600)
}, 120_000)
