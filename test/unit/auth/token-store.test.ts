/**
 * The private-file token store (modes, symlinks, other users' access refused) and the fallback to
 * it when no keychain answers. The keychain itself is in keychain-store.test.ts: the keyring
 * library keeps its D-Bus connection per process, so each needs a process of its own.
 */
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { FileTokenStore, selectTokenStore } from '../../../src/auth/token-store.js'

const secret = 'refresh-token-value-that-must-stay-private'

describe('file token store', () => {
  const configDir = (): string => join(mkdtempSync(join(tmpdir(), 'airlock-store-')), 'airlock')

  it('keeps each value in a 0600 file inside a 0700 directory, and leaves no temporary files', async () => {
    const store = new FileTokenStore(join(configDir(), 'tokens'))
    await store.set('https://gw.example/ https://idp.example', secret)
    await store.set('https://other.example/ https://idp.example', 'other')
    expect(statSync(store.location).mode & 0o777).toBe(0o700)
    const files = readdirSync(store.location)
    expect(files).toHaveLength(2)
    for (const file of files) expect(statSync(join(store.location, file)).mode & 0o777).toBe(0o600)
    expect(await store.get('https://gw.example/ https://idp.example')).toBe(secret)
    expect(await store.get('https://other.example/ https://idp.example')).toBe('other')
    expect(await store.delete('https://gw.example/ https://idp.example')).toBe(true)
    expect(await store.get('https://gw.example/ https://idp.example')).toBeUndefined()
    expect(await store.delete('https://gw.example/ https://idp.example')).toBe(false)
  })

  it('tightens a too open directory it owns', async () => {
    const store = new FileTokenStore(join(configDir(), 'tokens'))
    await store.set('k', 'v')
    chmodSync(store.location, 0o755)
    await store.set('k', 'v2')
    expect(statSync(store.location).mode & 0o777).toBe(0o700)
  })

  it('refuses a file other users can read, instead of using it', async () => {
    const store = new FileTokenStore(join(configDir(), 'tokens'))
    await store.set('k', secret)
    chmodSync(store.fileFor('k'), 0o644)
    const error = await store.get('k').catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'unauthenticated' })
    expect(JSON.stringify(error) + String(error)).not.toContain(secret)
  })

  it('refuses a symbolic link in place of the file, even to a private file', async () => {
    const store = new FileTokenStore(join(configDir(), 'tokens'))
    await store.set('k', 'mine')
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'airlock-elsewhere-')), 'planted.json')
    writeFileSync(elsewhere, JSON.stringify({ key: 'k', value: 'planted' }), { mode: 0o600 })
    unlinkSync(store.fileFor('k'))
    symlinkSync(elsewhere, store.fileFor('k'))
    await expect(store.get('k')).rejects.toMatchObject({ code: 'unauthenticated' })
    // A new login replaces the link itself and never writes through it.
    await store.set('k', 'new')
    expect(lstatSync(store.fileFor('k')).isSymbolicLink()).toBe(false)
    expect(JSON.parse(readFileSync(elsewhere, 'utf8')).value).toBe('planted')
  })

  it('refuses a symbolic link in place of the directory', async () => {
    const dir = configDir()
    const target = mkdtempSync(join(tmpdir(), 'airlock-target-'))
    const { mkdirSync } = await import('node:fs')
    mkdirSync(dir, { recursive: true })
    symlinkSync(target, join(dir, 'tokens'))
    await expect(new FileTokenStore(join(dir, 'tokens')).set('k', 'v')).rejects.toMatchObject({ code: 'unauthenticated' })
  })

  it('checks the directory on read too: a symbolic link, or one others can write to, is refused', async () => {
    const store = new FileTokenStore(join(configDir(), 'tokens'))
    expect(await store.get('k')).toBeUndefined()
    await store.set('k', secret)
    chmodSync(store.location, 0o777)
    await expect(store.get('k')).rejects.toMatchObject({ code: 'unauthenticated' })
    chmodSync(store.location, 0o750)
    expect(await store.get('k')).toBe(secret)
    expect(statSync(store.location).mode & 0o777).toBe(0o700)

    // The whole directory swapped for a link to another one holding a planted, private-looking file.
    const planted = new FileTokenStore(mkdtempSync(join(tmpdir(), 'airlock-planted-')))
    await planted.set('k', 'planted')
    const { renameSync } = await import('node:fs')
    renameSync(store.location, `${store.location}.old`)
    symlinkSync(planted.location, store.location)
    await expect(store.get('k')).rejects.toMatchObject({ code: 'unauthenticated' })
    await expect(store.delete('k')).rejects.toMatchObject({ code: 'unauthenticated' })
    expect(await planted.get('k')).toBe('planted')
  })

  it('is chosen when forced, and chosen with a reason when no keychain answers', async () => {
    const dir = configDir()
    expect((await selectTokenStore(dir, { AIRLOCK_TOKEN_STORE: 'file' })).store.kind).toBe('file')
    await expect(selectTokenStore(dir, { AIRLOCK_TOKEN_STORE: 'vault' })).rejects.toMatchObject({ code: 'usage' })
    const saved = process.env.DBUS_SESSION_BUS_ADDRESS
    process.env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${join(dir, 'no-bus')}`
    try {
      const selected = await selectTokenStore(dir, {})
      expect(selected.store.kind).toBe('file')
      expect(selected.fallbackReason).toMatch(/D-Bus|keychain/)
      await expect(selectTokenStore(dir, { AIRLOCK_TOKEN_STORE: 'keychain' })).rejects.toMatchObject({ code: 'usage' })
    } finally {
      if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS
      else process.env.DBUS_SESSION_BUS_ADDRESS = saved
    }
  })
})
