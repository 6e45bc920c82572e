/** The CLI's OIDC client against discovery documents of IdPs with and without PKCE S256. */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OidcClient } from '../../../src/auth/oidc-client.js'

let server: Server
let base: string

beforeAll(async () => {
  server = createServer((request, response) => {
    const match = /^\/(\w+)\/\.well-known\/openid-configuration$/.exec(request.url ?? '')
    if (match === null) return void response.writeHead(404).end()
    const issuer = `${base}/${match[1]}`
    const pkce = { plain: { code_challenge_methods_supported: ['plain'] }, s256: { code_challenge_methods_supported: ['S256'] }, silent: {} }[match[1] as 'plain' | 's256' | 'silent']
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, ...pkce }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
})

afterAll(() => {
  server?.close()
})

describe('browser login PKCE', () => {
  it('refuses an IdP that lists its PKCE methods without S256, before any URL is shown', async () => {
    const client = await OidcClient.discover({ issuer: `${base}/plain`, clientId: 'airlock-cli', scopes: ['openid'] })
    let shown = false
    await expect(client.browserLogin(async () => void (shown = true), { timeoutMs: 5_000 })).rejects.toMatchObject({ code: 'unauthenticated' })
    expect(shown).toBe(false)
  })

  it.each(['s256', 'silent'])('sends S256, state and nonce to an IdP that %s', async (name) => {
    const client = await OidcClient.discover({ issuer: `${base}/${name}`, clientId: 'airlock-cli', scopes: ['openid', 'offline_access'] })
    let url: URL | undefined
    await expect(client.browserLogin(async (shown) => void (url = shown), { timeoutMs: 300 })).rejects.toMatchObject({ code: 'unauthenticated' })
    expect(url?.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url?.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(url?.searchParams.get('state')).toBeTruthy()
    expect(url?.searchParams.get('nonce')).toBeTruthy()
    expect(url?.searchParams.get('prompt')).toBe('consent')
    expect(url?.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/)
    expect(url?.searchParams.has('code_verifier')).toBe(false)
  })

  it('refuses an IdP reached over plain http on another host', async () => {
    await expect(OidcClient.discover({ issuer: 'http://idp.example.com', clientId: 'airlock-cli', scopes: ['openid'] })).rejects.toMatchObject({ code: 'gateway-unreachable' })
  })
})
