/** Which token a login sends to the gateway, when it is renewed, and what a refresh may leave out. */
import { describe, expect, it } from 'vitest'
import { refreshDueAt, storedTokens } from '../../../src/auth/logins.js'

const now = Math.floor(Date.now() / 1000)

function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'RS256', kid: 'k' })}.${part(claims)}.c2lnbmF0dXJl`
}

const idToken = jwt({ iss: 'https://idp.example', sub: 'alice', aud: 'airlock-cli', iat: now, exp: now + 3600 })
const claims = { sub: 'alice', email: 'alice@example.com', groups: ['eng'] }
const scopes = ['openid', 'offline_access']

describe('stored tokens', () => {
  it('send the ID token when the gateway advertises no audience for access tokens', () => {
    const stored = storedTokens({ idToken, accessToken: 'opaque-access-token', refreshToken: 'r1', claims }, { scopes })
    expect(stored).toMatchObject({ bearer: 'id_token', idToken, expiresAt: (now + 3600) * 1000, issuedAt: now * 1000, refreshToken: 'r1', claims: { sub: 'alice', email: 'alice@example.com' } })
    // Only the bearer and the refresh token are kept.
    expect(stored.accessToken).toBeUndefined()
  })

  it('send a JWT access token whose aud is the advertised audience', () => {
    const accessToken = jwt({ iss: 'https://idp.example', sub: 'alice', aud: ['airlock', 'other'], iat: now, exp: now + 600 })
    expect(storedTokens({ idToken, accessToken, claims }, { audience: 'airlock', scopes })).toMatchObject({ bearer: 'access_token', expiresAt: (now + 600) * 1000 })
    const otherAudience = jwt({ sub: 'alice', aud: 'another-api', exp: now + 600 })
    expect(storedTokens({ idToken, accessToken: otherAudience, claims }, { audience: 'airlock', scopes })).toMatchObject({ bearer: 'id_token' })
    expect(storedTokens({ idToken, accessToken: 'opaque', claims }, { audience: 'airlock', scopes })).toMatchObject({ bearer: 'id_token' })
  })

  it('keep the identity and the refresh token when a refresh returns neither', () => {
    const previous = storedTokens({ idToken, refreshToken: 'r1', claims }, { audience: 'airlock', scopes })
    const accessToken = jwt({ sub: 'alice', aud: 'airlock', iat: now, exp: now + 900 })
    const renewed = storedTokens({ accessToken }, { audience: 'airlock', scopes }, previous)
    expect(renewed).toMatchObject({ bearer: 'access_token', refreshToken: 'r1', claims: { sub: 'alice', email: 'alice@example.com' } })
    expect(renewed.idToken).toBeUndefined()
  })

  it('ask for a new login when a refresh brings no ID token and no access token the gateway takes', () => {
    const previous = storedTokens({ idToken, refreshToken: 'r1', claims }, { scopes })
    expect(() => storedTokens({ accessToken: 'opaque' }, { scopes }, previous)).toThrow(expect.objectContaining({ code: 'unauthenticated' }))
  })

  it('refuse a refresh that names another user', () => {
    const previous = storedTokens({ idToken, refreshToken: 'r1', claims }, { scopes })
    const mallory = jwt({ sub: 'mallory', aud: 'airlock-cli', iat: now, exp: now + 3600 })
    expect(() => storedTokens({ idToken: mallory, claims: { sub: 'mallory' } }, { scopes }, previous)).toThrow(expect.objectContaining({ code: 'unauthenticated' }))
  })

  it('need an ID token on the first login', () => {
    expect(() => storedTokens({ accessToken: 'opaque' }, { scopes })).toThrow(expect.objectContaining({ code: 'unauthenticated' }))
  })
})

describe('renewal', () => {
  it('is due a minute before expiry, or halfway through a short lifetime', () => {
    expect(refreshDueAt({ issuedAt: 0, expiresAt: 3_600_000 })).toBe(3_540_000)
    expect(refreshDueAt({ issuedAt: 0, expiresAt: 12_000 })).toBe(6_000)
  })
})
