/**
 * The loopback redirect listener of the browser login: bound to 127.0.0.1 only, one valid
 * callback, and every forged, misdirected or replayed request refused without ending the flow.
 */
import { request } from 'node:http'
import { connect } from 'node:net'
import { networkInterfaces } from 'node:os'
import { describe, expect, it } from 'vitest'
import { listenForCallback } from '../../../src/auth/loopback.js'

const state = 'the-state-of-this-login-1234567890'

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }))
    })
    outgoing.on('error', reject)
    outgoing.end()
  })
}

function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

describe('loopback callback listener', () => {
  it('listens on 127.0.0.1 only, at /callback on an ephemeral port', async () => {
    const listener = await listenForCallback({ state, timeoutMs: 10_000 })
    try {
      const { port, hostname, pathname } = new URL(listener.redirectUri)
      expect(hostname).toBe('127.0.0.1')
      expect(pathname).toBe('/callback')
      expect(Number(port)).toBeGreaterThan(0)
      expect(await refused('127.0.0.2', Number(port))).toBe(true)
      expect(await refused('::1', Number(port))).toBe(true)
      const external = Object.values(networkInterfaces())
        .flat()
        .find((address) => address !== undefined && !address.internal && address.family === 'IPv4')
      if (external !== undefined) expect(await refused(external.address, Number(port))).toBe(true)
    } finally {
      await listener.close()
    }
  })

  it('refuses a wrong state, another path, another Host and other methods, and keeps waiting', async () => {
    const refusals: string[] = []
    const listener = await listenForCallback({ state, timeoutMs: 10_000, onRefused: (reason) => refusals.push(reason) })
    const base = listener.redirectUri
    let settled = false
    void listener.callback.then(() => (settled = true))

    expect((await get(`${base}?code=forged&state=wrong-state`)).status).toBe(400)
    expect((await get(`${base}?code=forged`)).status).toBe(400)
    expect((await get(`${base.replace('/callback', '/other')}?code=forged&state=${state}`)).status).toBe(404)
    expect((await get(`${base}?code=forged&state=${state}`, { host: `evil.example:${new URL(base).port}` })).status).toBe(400)
    expect((await get(`${base}?code=forged&state=${state}`, {}, 'POST')).status).toBe(405)
    expect(refusals).toEqual(['state', 'state', 'path', 'host', 'method'])
    expect(settled).toBe(false)

    const answered = get(`${base}?code=the-code&state=${state}`)
    const callback = await listener.callback
    expect(callback.url.searchParams.get('code')).toBe('the-code')
    // Replayed while the first is being exchanged: refused, and the first one is unaffected.
    const replay = await get(`${base}?code=the-code&state=${state}`)
    expect(replay.status).toBe(400)
    expect(replay.body).not.toContain('the-code')
    callback.finish({ ok: true })
    const page = await answered
    expect(page.status).toBe(200)
    expect(page.body).toMatch(/return to the terminal/)
    expect(page.body).not.toContain('the-code')
    await listener.close()
    expect(await refused('127.0.0.1', Number(new URL(base).port))).toBe(true)
    expect(refusals).toEqual(['state', 'state', 'path', 'host', 'method', 'replay'])
  })

  it('answers the browser with the failure when the exchange fails', async () => {
    const listener = await listenForCallback({ state, timeoutMs: 10_000 })
    const answered = get(`${listener.redirectUri}?error=access_denied&state=${state}`)
    const callback = await listener.callback
    callback.finish({ ok: false, message: 'The identity provider refused the login.' })
    const page = await answered
    expect(page.status).toBe(400)
    expect(page.body).toMatch(/Login failed/)
  })

  it('escapes the failure it shows, which may quote what the redirect URL carried', async () => {
    const listener = await listenForCallback({ state, timeoutMs: 10_000 })
    const answered = get(`${listener.redirectUri}?error=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=${state}`)
    const callback = await listener.callback
    callback.finish({ ok: false, message: `The identity provider refused the login (${callback.url.searchParams.get('error')}).` })
    const page = await answered
    expect(page.body).not.toContain('<script>')
    expect(page.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
  })

  it('gives up after the timeout with `unauthenticated` and closes', async () => {
    const listener = await listenForCallback({ state, timeoutMs: 200 })
    await expect(listener.callback).rejects.toMatchObject({ code: 'unauthenticated' })
    await listener.close()
    expect(await refused('127.0.0.1', Number(new URL(listener.redirectUri).port))).toBe(true)
  })
})
