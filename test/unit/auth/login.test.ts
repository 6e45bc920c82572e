/** Small decisions of `airlock login`: which gateway, whether a browser can be opened here; what `logout` does when the store fails. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { browserAvailability, logout, targetGateway } from '../../../src/auth/index.js'
import { LoginRegistry, storeKey } from '../../../src/auth/logins.js'
import { FileTokenStore } from '../../../src/auth/token-store.js'

describe('browser availability', () => {
  it.runIf(process.platform === 'linux')('says why no browser can open on Linux without a display, or over SSH', () => {
    expect(browserAvailability({})).toEqual({ available: false, reason: 'there is no display' })
    expect(browserAvailability({ SSH_CONNECTION: '10.0.0.1 5000 10.0.0.2 22' })).toEqual({ available: false, reason: 'this is an SSH session without a display' })
    expect(browserAvailability({ DISPLAY: ':0' })).toEqual({ available: true })
    expect(browserAvailability({ WAYLAND_DISPLAY: 'wayland-0' })).toEqual({ available: true })
  })
})

describe('target gateway', () => {
  const env = (): NodeJS.ProcessEnv => ({ HOME: mkdtempSync(join(tmpdir(), 'airlock-home-')) })

  it('is the argument, else AIRLOCK_GATEWAY, else none before any login', async () => {
    expect((await targetGateway('https://a.example', { ...env(), AIRLOCK_GATEWAY: 'https://b.example' }))?.href).toBe('https://a.example/')
    expect((await targetGateway(undefined, { ...env(), AIRLOCK_GATEWAY: 'https://b.example' }))?.href).toBe('https://b.example/')
    expect(await targetGateway(undefined, env())).toBeUndefined()
  })

  it('refuses plain http to another machine', async () => {
    await expect(targetGateway('http://gateway.example.com', env())).rejects.toMatchObject({ code: 'usage' })
  })
})

describe('logout', () => {
  const gateway = 'https://gw.example/'
  // Nothing listens there: revocation fails fast, as with an IdP that is down.
  const issuer = 'http://127.0.0.1:9/idp'
  const home = (): { env: NodeJS.ProcessEnv; configDir: string } => {
    const root = mkdtempSync(join(tmpdir(), 'airlock-home-'))
    return { env: { HOME: root }, configDir: join(root, '.config', 'airlock') }
  }
  const tokens = JSON.stringify({ version: 1, refreshToken: 'refresh-secret', bearer: 'id_token', idToken: 'x.y.z', issuedAt: 0, expiresAt: Date.now() + 60_000, claims: { sub: 'alice' }, scopes: ['openid'] })

  async function remember(configDir: string, store: 'keychain' | 'file'): Promise<LoginRegistry> {
    const registry = new LoginRegistry(configDir)
    await registry.update((file) => {
      file.logins[gateway] = { gateway, issuer, clientId: 'airlock-cli', store, subject: 'alice', name: 'alice', loggedInAt: new Date().toISOString() }
      file.defaultGateway = gateway
    })
    return registry
  }

  it('deletes the tokens and forgets the login', async () => {
    const { env, configDir } = home()
    const registry = await remember(configDir, 'file')
    const store = new FileTokenStore(join(configDir, 'tokens'))
    await store.set(storeKey(gateway, issuer), tokens)

    const result = await logout({ gateway: new URL(gateway), env })

    expect(result).toMatchObject({ outcome: 'logged-out', wasLoggedIn: true, revocation: 'failed' })
    expect(await store.get(storeKey(gateway, issuer))).toBeUndefined()
    expect(await registry.read()).toEqual({ version: 1, logins: {} })
  })

  it('keeps the login and says so when the keychain cannot delete the tokens', async () => {
    const { env, configDir } = home()
    const registry = await remember(configDir, 'keychain')
    const saved = process.env.DBUS_SESSION_BUS_ADDRESS
    process.env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${join(configDir, 'no-bus')}`
    try {
      const result = await logout({ gateway: new URL(gateway), env })
      expect(result).toMatchObject({ outcome: 'store-unreachable', wasLoggedIn: true })
      expect(result.problem).toMatch(/keychain/)
      expect((await registry.read()).logins[gateway]).toMatchObject({ store: 'keychain' })
    } finally {
      if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS
      else process.env.DBUS_SESSION_BUS_ADDRESS = saved
    }
  })
})
