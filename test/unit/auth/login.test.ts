/** Small decisions of `airlock login`: which gateway, and whether a browser can be opened here. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { browserAvailability, targetGateway } from '../../../src/auth/index.js'

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
