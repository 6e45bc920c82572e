/** What `airlock status` reports from local state alone. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loginStatus } from '../../../src/auth/index.js'
import { LoginRegistry } from '../../../src/auth/logins.js'

async function homeWithLogin(): Promise<NodeJS.ProcessEnv> {
  const home = mkdtempSync(join(tmpdir(), 'airlock-home-'))
  const gateway = 'https://remembered.example/'
  await new LoginRegistry(join(home, '.config', 'airlock')).update((file) => {
    file.logins[gateway] = { gateway, issuer: 'https://idp.example', clientId: 'cli', store: 'file', subject: 'alice', name: 'alice', loggedInAt: new Date().toISOString() }
    file.defaultGateway = gateway
  })
  return { HOME: home }
}

describe('login status', () => {
  it('reports AIRLOCK_TOKEN without AIRLOCK_GATEWAY as unusable, not as the remembered login', async () => {
    const status = await loginStatus({ ...(await homeWithLogin()), AIRLOCK_TOKEN: 'alk_x' })
    expect(status).toMatchObject({ gateway: null, source: 'env', loggedIn: false, identity: null, problem: expect.stringMatching(/AIRLOCK_GATEWAY/) })
    expect(JSON.stringify(status)).not.toContain('alk_x')
  })

  it('reports AIRLOCK_TOKEN with AIRLOCK_GATEWAY as that gateway', async () => {
    const status = await loginStatus({ ...(await homeWithLogin()), AIRLOCK_TOKEN: 'alk_x', AIRLOCK_GATEWAY: 'https://ci.example' })
    expect(status).toMatchObject({ gateway: 'https://ci.example/', source: 'env', loggedIn: true, problem: null })
  })
})
