/**
 * The OS keychain store against a real Secret Service (gnome-keyring, unlocked, on a private D-Bus
 * session): trusted only after a write/read/delete round trip, then used for logins by default.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KeychainTokenStore, selectTokenStore } from '../../../src/auth/token-store.js'
import { type KeyringSession, startKeyringSession } from './keyring-session.js'

const secret = 'refresh-token-value-that-must-stay-private'

describe('keychain token store (Secret Service on a private D-Bus session)', () => {
  let session: KeyringSession | undefined

  beforeAll(async () => {
    session = await startKeyringSession()
    process.env.DBUS_SESSION_BUS_ADDRESS = session.env.DBUS_SESSION_BUS_ADDRESS
  })

  afterAll(async () => {
    await session?.stop()
  })

  it('proves itself with a round trip, then stores, reads and deletes', async () => {
    const opened = await KeychainTokenStore.open()
    expect(opened, JSON.stringify(opened)).toHaveProperty('store')
    const store = (opened as { store: KeychainTokenStore }).store
    await store.set('https://gw.example/ https://idp.example', secret)
    expect(await (await KeychainTokenStore.reopen()).get('https://gw.example/ https://idp.example')).toBe(secret)
    expect(await store.get('https://gw.example/ https://other-idp.example')).toBeUndefined()
    expect(await store.delete('https://gw.example/ https://idp.example')).toBe(true)
    expect(await store.get('https://gw.example/ https://idp.example')).toBeUndefined()
  })

  it('is what a login gets by default when it works', async () => {
    const selected = await selectTokenStore(mkdtempSync(join(tmpdir(), 'airlock-store-')), {})
    expect(selected.store.kind).toBe('keychain')
    expect(selected.fallbackReason).toBeUndefined()
  })
})
