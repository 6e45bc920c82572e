import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { bearerToken, generateServiceToken, hashServiceToken, ServiceTokenVerifier } from '../../../src/auth/index.js'
import { parseGatewayUrl, resolveClientCredentials } from '../../../src/auth/client-credentials.js'

describe('service tokens', () => {
  const token = generateServiceToken()
  const expiredToken = generateServiceToken()
  const verifier = new ServiceTokenVerifier(
    [
      { name: 'ci', sha256: hashServiceToken(token), groups: ['ci'] },
      { name: 'old', sha256: hashServiceToken(expiredToken), groups: ['ci'], expires: new Date('2020-01-01') },
    ],
    () => Date.parse('2026-01-01'),
  )

  it('look like alk_ + 43 base64url characters', () => {
    expect(token).toMatch(/^alk_[A-Za-z0-9_-]{43}$/)
  })

  it('verify to a service identity with the configured groups', () => {
    expect(verifier.verify(token)).toEqual({ kind: 'service', id: 'service:ci', display: 'ci', groups: ['ci'] })
  })

  it.each([
    ['an unknown token', generateServiceToken()],
    ['a token one character off', token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')],
    ['an expired token', expiredToken],
  ])('refuse %s without echoing it', (_name, candidate) => {
    let caught: unknown
    try {
      verifier.verify(candidate)
    } catch (error) {
      caught = error
    }
    expect(caught).toMatchObject({ code: 'unauthenticated' })
    expect(JSON.stringify(caught) + String((caught as Error).message)).not.toContain(candidate)
  })
})

describe('bearer header', () => {
  it.each([undefined, '', 'Basic abc', 'Bearer', 'Bearer two words', `Bearer ${'x'.repeat(9000)}`])('refuses %s', (header) => {
    expect(() => bearerToken(header)).toThrow(expect.objectContaining({ code: 'unauthenticated' }))
  })
  it('extracts the token', () => {
    expect(bearerToken('Bearer alk_abc')).toBe('alk_abc')
    expect(bearerToken('bearer alk_abc')).toBe('alk_abc')
  })
})

describe('client credentials', () => {
  it.each([
    ['https://airlock.example.com', 'https://airlock.example.com/'],
    ['http://127.0.0.1:8009', 'http://127.0.0.1:8009/'],
    ['http://localhost:8009/', 'http://localhost:8009/'],
    ['http://[::1]:8009', 'http://[::1]:8009/'],
  ])('accept %s', (value, href) => {
    expect(parseGatewayUrl(value).href).toBe(href)
  })

  it.each([
    [undefined, /not set/],
    ['not a url', /not a URL/],
    ['ftp://airlock.example.com', /https/],
    ['http://airlock.example.com', /unencrypted/],
    ['http://10.0.0.5:8009', /unencrypted/],
    ['https://user:pw@airlock.example.com', /credentials/],
  ])('refuse %s', (value, message) => {
    expect(() => parseGatewayUrl(value)).toThrow(expect.objectContaining({ code: 'usage', message: expect.stringMatching(message) }))
  })

  it('need a token or a login', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-home-'))
    await expect(resolveClientCredentials({ HOME: home, AIRLOCK_GATEWAY: 'https://a.example' })).rejects.toMatchObject({ code: 'unauthenticated' })
    await expect(resolveClientCredentials({ HOME: home })).rejects.toMatchObject({ code: 'unauthenticated' })
    expect(await (await resolveClientCredentials({ HOME: home, AIRLOCK_GATEWAY: 'https://a.example', AIRLOCK_TOKEN: ' alk_x\n' })).bearer()).toBe('alk_x')
  })

  it('never send AIRLOCK_TOKEN to a gateway it was not given with', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-home-'))
    await expect(resolveClientCredentials({ HOME: home, AIRLOCK_TOKEN: 'alk_x' })).rejects.toMatchObject({ code: 'usage' })
  })
})
