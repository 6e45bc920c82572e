/**
 * `airlock login` in a real browser: a real OpenID provider (oidc-provider), real headless
 * Chromium completing its login and consent pages, the real CLI and gateway processes. After the
 * login every other command works with the stored token, and nothing secret reaches any output.
 */
import { once } from 'node:events'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT_CODES } from '../../src/errors.js'
import { type EchoServer, startEcho } from '../helpers/echo.js'
import { completeBrowserLogin, launchBrowser, type TestBrowser } from '../helpers/browser.js'
import { freshHome, type OidcGateway, startOidcGateway, startTestIdp, type TestIdp } from '../helpers/oidc-provider.js'
import { airlock, type Spawned, spawnAirlock, transcript } from '../helpers/processes.js'

let idp: TestIdp
let gateway: OidcGateway
/** A second gateway trusting the same IdP: logins to both are kept side by side. */
let other: OidcGateway
let browser: TestBrowser
let echo: EchoServer
const alice = freshHome()
const secrets: string[] = []

beforeAll(async () => {
  echo = await startEcho()
  idp = await startTestIdp()
  gateway = await startOidcGateway(idp, [
    { name: 'echo', type: 'tcp', upstream: { host: '127.0.0.1', port: echo.port }, access: { groups: ['eng'] } },
    // The local PostgreSQL the test suite needs (trust for postgres on 127.0.0.1).
    { name: 'pg', type: 'postgres', upstream: { host: '127.0.0.1', port: 5432, database: 'postgres', user: 'postgres', tls: { mode: 'disable' } }, access: { groups: ['eng'] } },
  ])
  other = await startOidcGateway(idp, [
    { name: 'echo-too', type: 'tcp', upstream: { host: '127.0.0.1', port: echo.port }, access: { groups: ['eng'] } },
  ])
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await gateway?.stop()
  await other?.stop()
  await idp?.stop()
  echo?.close()
  const everything = transcript.join('')
  for (const secret of secrets) expect(everything).not.toContain(secret)
})

/** Sends "ping" to the tunnel and prints the answer. */
const ECHO_CLIENT = `const s = require('net').connect(+process.env.AIRLOCK_PORT, process.env.AIRLOCK_HOST, () => s.end('ping')); s.pipe(process.stdout)`

interface BrowserPrompt {
  type: 'browser'
  url: string
  opened: boolean
}

async function exited(process: Spawned): Promise<number | null> {
  if (process.child.exitCode !== null) return process.child.exitCode
  const [code] = (await once(process.child, 'exit')) as [number | null]
  return code
}

/** Starts `airlock login --no-browser --json`, completes the IdP's pages as `user`, returns the CLI's result. */
async function browserLogin(
  user: string,
  env: NodeJS.ProcessEnv,
  meanwhile?: (redirectUri: string) => Promise<void>,
  target: string = gateway.url,
): Promise<{ result: Record<string, unknown>; callback: string; code: number | null }> {
  const login = spawnAirlock(['login', target, '--no-browser', '--json'], { env })
  const prompt = await login.waitFor<BrowserPrompt>((line) => line.type === 'browser')
  expect(prompt.opened).toBe(false)
  await meanwhile?.(new URL(prompt.url).searchParams.get('redirect_uri')!)
  const { callback } = await completeBrowserLogin(browser, prompt.url, user)
  const result = await login.waitFor<Record<string, unknown>>((line) => line.type === 'logged-in', 60_000)
  secrets.push(new URL(callback).searchParams.get('code') ?? 'no code seen')
  return { result, callback, code: await exited(login) }
}

describe('browser login', { timeout: 180_000 }, () => {
  it('logs in through the IdP pages and stores the login in a 0600 file; forged callbacks do not end the flow', async () => {
    const forged = async (redirectUri: string): Promise<void> => {
      expect(new URL(redirectUri).hostname).toBe('127.0.0.1')
      expect((await fetch(`${redirectUri}?code=forged&state=not-the-state`)).status).toBe(400)
      expect((await fetch(`${redirectUri.replace('/callback', '/favicon.ico')}?code=forged`)).status).toBe(404)
    }
    const { result, callback, code } = await browserLogin('alice', { ...alice, AIRLOCK_TOKEN_STORE: 'file' }, forged)
    expect(code).toBe(0)
    expect(result).toMatchObject({
      gateway: gateway.url,
      issuer: idp.issuer,
      subject: 'alice',
      name: 'alice@example.com',
      email: 'alice@example.com',
      groups: ['eng'],
      refreshable: true,
      store: 'file',
      shared: false,
    })
    const tokens = join(alice.XDG_CONFIG_HOME, 'airlock', 'tokens')
    expect(statSync(tokens).mode & 0o777).toBe(0o700)
    for (const file of readdirSync(tokens)) {
      expect(statSync(join(tokens, file)).mode & 0o777).toBe(0o600)
      const stored = JSON.parse(JSON.parse(readFileSync(join(tokens, file), 'utf8')).value) as Record<string, string>
      secrets.push(...[stored.idToken, stored.accessToken, stored.refreshToken].filter((value): value is string => value !== undefined))
    }
    // The loopback listener is gone: the callback cannot be replayed.
    await expect(fetch(callback)).rejects.toThrow()
  })

  it('makes the stored token work for every other command, without AIRLOCK_TOKEN or AIRLOCK_GATEWAY', async () => {
    const list = await airlock(['connections', '--json'], { env: alice })
    expect(list.stderr).toBe('')
    expect(JSON.parse(list.stdout)).toMatchObject({ connections: [{ name: 'echo', type: 'tcp' }, { name: 'pg', type: 'postgres' }] })

    const connect = await airlock(['connect', 'echo', '--', process.execPath, '-e', ECHO_CLIENT], { env: alice })
    expect(connect.stdout).toBe('ping')
    expect(connect.code).toBe(0)

    const exec = await airlock(['exec', 'pg', '-i', "select 'works' as answer", '--json'], { env: alice })
    expect(JSON.parse(exec.stdout)).toMatchObject({ columns: [{ name: 'answer' }], rows: [['works']] })
    expect(exec.code).toBe(0)

    const whoami = await airlock(['whoami', '--json'], { env: alice })
    expect(JSON.parse(whoami.stdout)).toMatchObject({
      kind: 'oidc',
      id: `${idp.issuer}#alice`,
      subject: 'alice',
      issuer: idp.issuer,
      email: 'alice@example.com',
      groups: ['eng'],
      credential: 'login',
    })

    const status = await airlock(['status', '--json'], { env: alice })
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({
      gateway: gateway.url,
      source: 'login',
      loggedIn: true,
      identity: { subject: 'alice', issuer: idp.issuer },
      refreshable: true,
      store: { kind: 'file' },
    })
  })

  it('refuses an identity outside access.groups: it can neither list nor open the connection', async () => {
    const mallory = freshHome()
    const { result, code } = await browserLogin('mallory', { ...mallory, AIRLOCK_TOKEN_STORE: 'file' })
    expect(code).toBe(0)
    expect(result).toMatchObject({ subject: 'mallory', groups: ['sales'] })
    const list = await airlock(['connections', '--json'], { env: mallory })
    expect(JSON.parse(list.stdout)).toEqual({ connections: [] })
    const connect = await airlock(['connect', 'echo', '--json'], { env: mallory })
    expect(JSON.parse(connect.stdout)).toMatchObject({ error: { code: 'forbidden' } })
    expect(connect.code).toBe(EXIT_CODES.forbidden)
    const exec = await airlock(['exec', 'pg', '-i', 'select 1', '--json'], { env: mallory })
    expect(JSON.parse(exec.stdout)).toMatchObject({ error: { code: 'forbidden' } })
    expect(exec.code).toBe(EXIT_CODES.forbidden)
  })

  it('keeps logins to two gateways side by side; logging out of one leaves the other', async () => {
    const { result, code } = await browserLogin('alice', { ...alice, AIRLOCK_TOKEN_STORE: 'file' }, undefined, other.url)
    expect(code).toBe(0)
    expect(result).toMatchObject({ gateway: other.url, subject: 'alice' })
    const tokens = join(alice.XDG_CONFIG_HOME, 'airlock', 'tokens')
    expect(readdirSync(tokens)).toHaveLength(2)
    for (const file of readdirSync(tokens)) {
      const stored = JSON.parse(JSON.parse(readFileSync(join(tokens, file), 'utf8')).value) as Record<string, string>
      secrets.push(...[stored.idToken, stored.accessToken, stored.refreshToken].filter((value): value is string => value !== undefined))
    }

    // The newest login is the default; AIRLOCK_GATEWAY picks the other one.
    expect(JSON.parse((await airlock(['connections', '--json'], { env: alice })).stdout)).toMatchObject({ connections: [{ name: 'echo-too' }] })
    const first = await airlock(['connections', '--json'], { env: { ...alice, AIRLOCK_GATEWAY: gateway.url } })
    expect(JSON.parse(first.stdout)).toMatchObject({ connections: [{ name: 'echo' }, { name: 'pg' }] })
    const status = JSON.parse((await airlock(['status', '--json'], { env: alice })).stdout) as { gateway: string; logins: { gateway: string; default: boolean }[] }
    expect(status.gateway).toBe(other.url)
    expect(status.logins).toEqual(
      expect.arrayContaining([expect.objectContaining({ gateway: gateway.url, default: false }), expect.objectContaining({ gateway: other.url, default: true })]),
    )

    const logout = await airlock(['logout', other.url, '--json'], { env: alice })
    expect(JSON.parse(logout.stdout)).toMatchObject({ gateway: other.url, outcome: 'logged-out' })
    expect(readdirSync(tokens)).toHaveLength(1)
    const back = await airlock(['connections', '--json'], { env: alice })
    expect(JSON.parse(back.stdout)).toMatchObject({ connections: [{ name: 'echo' }, { name: 'pg' }] })
  })

  it('logs out: revokes at the IdP, deletes the tokens, and later commands need a login', async () => {
    const revokedBefore = idp.count('grant.revoked')
    const result = await airlock(['logout', '--json'], { env: alice })
    expect(JSON.parse(result.stdout)).toMatchObject({ gateway: gateway.url, outcome: 'logged-out', wasLoggedIn: true, revocation: 'revoked' })
    expect(idp.count('grant.revoked')).toBeGreaterThan(revokedBefore)
    expect(readdirSync(join(alice.XDG_CONFIG_HOME, 'airlock', 'tokens'))).toEqual([])
    const list = await airlock(['connections'], { env: alice })
    expect(list.code).toBe(EXIT_CODES.unauthenticated)
    expect(list.stderr).toMatch(/^Hint: .*airlock login/m)
    const status = await airlock(['status', '--json'], { env: alice })
    expect(JSON.parse(status.stdout)).toMatchObject({ source: 'none', loggedIn: false })
    expect(status.code).toBe(EXIT_CODES.unauthenticated)
  })
})
