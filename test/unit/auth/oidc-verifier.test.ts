/**
 * The gateway's JWT verification against a real issuer (discovery + JWKS over HTTP on port 0):
 * a table of bad tokens, each refused with its reason, also as HTTP 401 from a real gateway
 * whose log never holds a token; JWKS caching, rotation and the refetch cooldown.
 */
import { createPublicKey, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAuthenticator, type OidcIssuerOptions, OidcVerifier, type TokenRejection } from '../../../src/auth/index.js'
import { createSecretSource, parseConfig } from '../../../src/config/index.js'
import { createLogger, type Gateway, startGateway } from '../../../src/gateway/index.js'

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

let server: Server
let base: string
let people: string
let ci: string
/** Served at /jwks: changed by the rotation test. */
let published: JWK[] = []
let jwksFetches = 0
let signing: { key: Key; kid: string; publicPem: string }
let impostor: Key
let ecKey: { key: Key; kid: string }

beforeAll(async () => {
  const rsa = await generateKeyPair('RS256', { extractable: true })
  const ec = await generateKeyPair('ES256', { extractable: true })
  impostor = (await generateKeyPair('RS256')).privateKey
  const publicJwk = await exportJWK(rsa.publicKey)
  signing = {
    key: rsa.privateKey,
    kid: 'k1',
    publicPem: createPublicKey({ key: publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString(),
  }
  ecKey = { key: ec.privateKey, kid: 'ec1' }
  published = [
    { ...publicJwk, kid: 'k1', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(ec.publicKey)), kid: 'ec1', alg: 'ES256', use: 'sig' },
  ]
  server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname
    const discovery = /^\/(people|ci)\/\.well-known\/openid-configuration$/.exec(path)
    if (discovery !== null) {
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ issuer: `${base}/${discovery[1]}`, jwks_uri: `${base}/jwks` }))
    } else if (path === '/jwks') {
      jwksFetches++
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(JSON.stringify({ keys: published }))
    } else {
      response.writeHead(404).end()
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  people = `${base}/people`
  ci = `${base}/ci`
})

afterAll(() => {
  server?.close()
  server?.closeAllConnections()
})

function issuers(): OidcIssuerOptions[] {
  return [
    { issuer: people, cliClientId: 'airlock-cli', audience: 'airlock', groupsClaim: 'groups', machine: false, groups: [], algorithms: ['RS256', 'ES256'] },
    {
      issuer: ci,
      audience: 'airlock-ci',
      groupsClaim: 'groups',
      machine: true,
      require: { repository_id: '123456', ref: 'refs/heads/main' },
      groups: ['ci'],
      algorithms: ['RS256'],
    },
  ]
}

const now = (): number => Math.floor(Date.now() / 1000)

async function sign(payload: JWTPayload, header: { alg?: string; kid?: unknown; key?: Key } = {}): Promise<string> {
  const { key = signing.key, alg = 'RS256', kid = signing.kid } = header
  return new SignJWT(payload).setProtectedHeader({ alg, ...(kid === undefined ? {} : { kid: kid as string }) }).sign(key)
}

function person(overrides: JWTPayload = {}): JWTPayload {
  return { iss: people, sub: 'alice', aud: 'airlock-cli', iat: now(), exp: now() + 600, email: 'alice@example.com', groups: ['eng'], ...overrides }
}

function workload(overrides: JWTPayload = {}): JWTPayload {
  return { iss: ci, sub: 'repo:acme/app:ref:refs/heads/main', aud: 'airlock-ci', iat: now(), exp: now() + 600, repository_id: '123456', ref: 'refs/heads/main', groups: ['admins'], ...overrides }
}

function unsigned(payload: JWTPayload): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(payload)}.`
}

/** Every bad token, with the reason it must be refused for. */
async function badTokens(): Promise<[string, string, TokenRejection][]> {
  return [
    ['alg none', unsigned(person()), 'algorithm'],
    ['HS256 signed with the RSA public key', await new SignJWT(person()).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(new TextEncoder().encode(signing.publicPem)), 'algorithm'],
    ['another key with the same kid', await sign(person(), { key: impostor }), 'signature'],
    ['an unknown kid', await sign(person(), { kid: 'rotated-away' }), 'unknown-key'],
    ['a numeric kid', await sign(person(), { kid: 7 }), 'malformed'],
    ['a 300-character kid', await sign(person(), { kid: 'k'.repeat(300) }), 'malformed'],
    ['a kid with a space', await sign(person(), { kid: 'k 1' }), 'malformed'],
    ['an untrusted issuer', await sign(person({ iss: 'https://idp.example.com' })), 'issuer'],
    ['an issuer that is a prefix', await sign(person({ iss: `${base}/peop` })), 'issuer'],
    ['an issuer extending a trusted one', await sign(person({ iss: `${people}.evil.example` })), 'issuer'],
    ['an issuer with a trailing slash', await sign(person({ iss: `${people}/` })), 'issuer'],
    ['a sub-path of a trusted issuer', await sign(person({ iss: `${people}/x` })), 'issuer'],
    ['no issuer', await sign(person({ iss: undefined })), 'issuer'],
    ['a wrong audience', await sign(person({ aud: 'something-else' })), 'audience'],
    ['no audience', await sign(person({ aud: undefined })), 'audience'],
    ['an ID token of another client', await sign(person({ aud: 'other-client' })), 'audience'],
    ['an ID token naming another authorized party', await sign(person({ aud: ['airlock-cli', 'other-client'], azp: 'other-client' })), 'authorized-party'],
    ['an expired token', await sign(person({ exp: now() - 120 })), 'expired'],
    ['nbf in the future', await sign(person({ nbf: now() + 300 })), 'not-yet-valid'],
    ['no exp', await sign(person({ exp: undefined })), 'claims'],
    ['no sub', await sign(person({ sub: undefined })), 'claims'],
    ['an empty sub', await sign(person({ sub: '' })), 'claims'],
    ['an algorithm the issuer does not allow', await sign(workload(), { alg: 'ES256', key: ecKey.key, kid: ecKey.kid }), 'algorithm'],
    ['a workload token with a wrong repository_id', await sign(workload({ repository_id: '654321' })), 'constraint'],
    ['a workload token without repository_id', await sign(workload({ repository_id: undefined })), 'constraint'],
    ['a workload token with a numeric-looking but different ref', await sign(workload({ ref: 'refs/heads/main2' })), 'constraint'],
    ['a workload token for another audience', await sign(workload({ aud: 'airlock-cli' })), 'audience'],
    ['a workload token minted for another service', await sign(workload({ aud: 'https://vault.example.com' })), 'audience'],
    ['a workload token without aud', await sign(workload({ aud: undefined })), 'audience'],
    ['a person token presented for the workload issuer', await sign(workload({ aud: 'airlock' })), 'audience'],
    ['garbage with JWT shape', 'eyJhbGciOi.garbage.x', 'malformed'],
  ]
}

describe('OIDC verifier', () => {
  it('accepts an ID token (aud = CLI client id) as a person with the claim groups', async () => {
    const verifier = new OidcVerifier({ issuers: issuers() })
    const identity = await verifier.verify(await sign(person()))
    expect(identity).toMatchObject({ kind: 'oidc', id: `${people}#alice`, display: 'alice@example.com', groups: ['eng'] })
    expect(identity.expiresAt).toBeGreaterThan(Date.now())
  })

  it('accepts a JWT access token for the configured audience, and ES256 where allowed', async () => {
    const verifier = new OidcVerifier({ issuers: issuers() })
    await expect(verifier.verify(await sign(person({ aud: ['airlock', 'https://other.example'] })))).resolves.toMatchObject({ id: `${people}#alice` })
    await expect(verifier.verify(await sign(person(), { alg: 'ES256', key: ecKey.key, kid: ecKey.kid }))).resolves.toMatchObject({ kind: 'oidc' })
  })

  it('takes a workload identity`s groups from the configuration, never from the token', async () => {
    const verifier = new OidcVerifier({ issuers: issuers() })
    await expect(verifier.verify(await sign(workload()))).resolves.toEqual({
      kind: 'workload',
      id: `${ci}#repo:acme/app:ref:refs/heads/main`,
      display: 'repo:acme/app:ref:refs/heads/main',
      groups: ['ci'],
      expiresAt: expect.any(Number),
    })
  })

  it('refuses to start with a workload issuer that names no audience', () => {
    const unbound = { ...issuers()[1]!, audience: undefined }
    expect(() => new OidcVerifier({ issuers: [unbound] })).toThrow(expect.objectContaining({ code: 'config' }))
  })

  it('tolerates a small clock skew on exp and nbf, no more', async () => {
    const verifier = new OidcVerifier({ issuers: issuers() })
    await expect(verifier.verify(await sign(person({ exp: now() - 10, nbf: now() + 10 })))).resolves.toMatchObject({ kind: 'oidc' })
  })

  it('refuses every bad token with its reason, never quoting the token', async () => {
    const verifier = new OidcVerifier({ issuers: issuers() })
    for (const [name, token, reason] of await badTokens()) {
      const error = await verifier.verify(token).then(
        () => undefined,
        (caught: unknown) => caught,
      )
      expect(error, name).toMatchObject({ code: 'unauthenticated', reason })
      expect(String((error as Error).message) + JSON.stringify(error), name).not.toContain(token.split('.')[2] || token)
    }
  })

  it('fetches the JWKS at most once more per cooldown, however many unknown kids arrive', async () => {
    const verifier = new OidcVerifier({ issuers: issuers(), jwksCooldownMs: 60_000 })
    await verifier.verify(await sign(person()))
    const before = jwksFetches
    const flood = await Promise.all(Array.from({ length: 50 }, () => sign(person(), { kid: randomBytes(8).toString('hex') })))
    const results = await Promise.allSettled(flood.map((token) => verifier.verify(token)))
    expect(results.every((result) => result.status === 'rejected' && (result.reason as { reason?: string }).reason === 'unknown-key')).toBe(true)
    expect(jwksFetches - before).toBeLessThanOrEqual(1)
  })

  it('honours key rotation: a new kid is fetched once the cooldown has passed', async () => {
    const verifier = new OidcVerifier({ issuers: issuers(), jwksCooldownMs: 200 })
    await verifier.verify(await sign(person()))
    const rotated = await generateKeyPair('RS256', { extractable: true })
    const original = published
    published = [...published, { ...(await exportJWK(rotated.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' }]
    try {
      await new Promise((resolve) => setTimeout(resolve, 250))
      await expect(verifier.verify(await sign(person(), { key: rotated.privateKey, kid: 'k2' }))).resolves.toMatchObject({ kind: 'oidc' })
    } finally {
      published = original
    }
  })

  it('reports an unreachable issuer as the upstream being unavailable, not the caller being wrong', async () => {
    const verifier = new OidcVerifier({ issuers: [{ ...issuers()[0]!, issuer: 'http://127.0.0.1:9/people' }], fetchTimeoutMs: 2_000 })
    await expect(verifier.verify(await sign(person({ iss: 'http://127.0.0.1:9/people' })))).rejects.toMatchObject({ code: 'upstream-unavailable' })
  })
})

describe('gateway with auth.oidc', () => {
  let gateway: Gateway
  const logs: string[] = []

  beforeAll(async () => {
    const config = parseConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        auth: {
          oidc: [
            { issuer: people, cliClientId: 'airlock-cli', audience: 'airlock', algorithms: ['RS256', 'ES256'] },
            { issuer: ci, audience: 'airlock-ci', machine: true, require: { repository_id: '123456', ref: 'refs/heads/main' }, groups: ['ci'], algorithms: ['RS256'] },
          ],
        },
        audit: { store: 'sqlite::memory:', required: false },
        connections: [{ name: 'redis', type: 'tcp', upstream: { host: '127.0.0.1', port: 6379 }, access: { groups: ['eng'] } }],
      },
      mkdtempSync(join(tmpdir(), 'airlock-oidc-')),
    )
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logs.push(chunk.toString('utf8'))
        callback()
      },
    })
    gateway = await startGateway({ config, logger: createLogger('debug', destination), secrets: createSecretSource({}) })
  })

  afterAll(async () => {
    await gateway?.drain(0)
  })

  const get = async (path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const response = await fetch(new URL(path, gateway.url), { headers: { authorization: `Bearer ${token}` } })
    return { status: response.status, body: (await response.json()) as Record<string, unknown> }
  }

  it('answers every bad token with 401 and a reason, and logs the failure without the token', async () => {
    for (const [name, token] of await badTokens()) {
      const { status, body } = await get('/v1/whoami', token)
      expect(status, name).toBe(401)
      expect(body, name).toMatchObject({ error: { code: 'unauthenticated', message: expect.stringMatching(/not valid for this gateway/) } })
    }
    // A token (or anything else) in the query string stays out of the log: only the path is logged.
    expect((await get('/v1/whoami?access_token=query-secret-value', 'junk')).status).toBe(401)
    const failures = logs.filter((line) => line.includes('"auth.failure"'))
    expect(failures.length).toBeGreaterThanOrEqual((await badTokens()).length)
    expect(logs.join('')).not.toContain('query-secret-value')
    const signatures = (await badTokens()).map(([, token]) => token.split('.')[2]).filter((part): part is string => part !== undefined && part.length > 20)
    for (const part of signatures) expect(logs.join('')).not.toContain(part)
  })

  it('lets an OIDC identity see and list only connections of its groups', async () => {
    const alice = await get('/v1/connections', await sign(person()))
    expect(alice.body).toEqual({ connections: [{ name: 'redis', type: 'tcp', description: null }] })
    const outsider = await sign(person({ sub: 'mallory', email: 'mallory@example.com', groups: ['sales'] }))
    expect((await get('/v1/connections', outsider)).body).toEqual({ connections: [] })
    const direct = await get('/v1/connections/redis', outsider)
    expect(direct.status).toBe(403)
    expect(direct.body).toMatchObject({ error: { code: 'forbidden' } })
  })

  it('advertises the interactive issuers to `airlock login`, not the workload ones', async () => {
    const response = await fetch(new URL('/.well-known/airlock', gateway.url))
    expect(await response.json()).toMatchObject({
      oidc: [{ issuer: people, cliClientId: 'airlock-cli', audience: 'airlock', scopes: ['openid', 'profile', 'email', 'offline_access'] }],
    })
    // Whether an IdP offers the device flow is in its discovery document, not something the gateway knows.
    expect(await (await fetch(new URL('/.well-known/airlock', gateway.url))).json()).not.toHaveProperty('deviceFlow')
  })

  it('still takes service tokens and refuses junk through the same authenticator', async () => {
    const authenticator = createAuthenticator({ serviceTokens: [], oidc: issuers() })
    await expect(authenticator.authenticate('Bearer not-a-jwt')).rejects.toMatchObject({ code: 'unauthenticated' })
    await expect(authenticator.authenticate(`Bearer ${await sign(person())}`)).resolves.toMatchObject({ kind: 'oidc' })
  })
})
