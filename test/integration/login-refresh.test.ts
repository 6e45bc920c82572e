/**
 * Renewal of a browser login with a real OpenID provider that rotates refresh tokens and revokes
 * the whole grant when a rotated one is reused: concurrent CLI processes refresh exactly once and
 * share one login flow, a long-running `connect` renews in the background, and a login that
 * cannot be renewed ends in "run `airlock login`" (exit 4), never a crash.
 */
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLOCK_TOLERANCE_S } from '../../src/auth/index.js'
import { EXIT_CODES } from '../../src/errors.js'
import { type EchoServer, startEcho } from '../helpers/echo.js'
import { completeBrowserLogin, launchBrowser, type TestBrowser } from '../helpers/browser.js'
import { freshHome, type OidcGateway, startOidcGateway, startTestIdp, type TestIdp } from '../helpers/oidc-provider.js'
import { airlock, type Spawned, spawnAirlock } from '../helpers/processes.js'

/** ID token lifetime: renewal is due halfway, after 6 s. */
const TTL_S = 12

let idp: TestIdp
let gateway: OidcGateway
let browser: TestBrowser
let echo: EchoServer
const home = freshHome()
const env = { ...home, AIRLOCK_TOKEN_STORE: 'file' }

beforeAll(async () => {
  echo = await startEcho()
  idp = await startTestIdp({ ttl: { idToken: TTL_S } })
  gateway = await startOidcGateway(idp, [
    { name: 'echo', type: 'tcp', upstream: { host: '127.0.0.1', port: echo.port }, access: { groups: ['eng'] } },
  ])
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await gateway?.stop()
  await idp?.stop()
  echo?.close()
})

async function exited(process: Spawned): Promise<number | null> {
  if (process.child.exitCode !== null) return process.child.exitCode
  const [code] = (await once(process.child, 'exit')) as [number | null]
  return code
}

function storedTokens(): { expiresAt: number; refreshToken: string } {
  const dir = join(home.XDG_CONFIG_HOME, 'airlock', 'tokens')
  const [file] = readdirSync(dir)
  return JSON.parse(JSON.parse(readFileSync(join(dir, file!), 'utf8')).value) as { expiresAt: number; refreshToken: string }
}

async function untilDue(): Promise<void> {
  const { expiresAt } = storedTokens()
  const due = expiresAt - (TTL_S * 1000) / 2
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now()) + 500))
}

describe('login renewal', { timeout: 180_000 }, () => {
  it('shares one login flow between two concurrent `airlock login` processes', async () => {
    const first = spawnAirlock(['login', gateway.url, '--no-browser', '--json'], { env })
    const prompt = await first.waitFor<{ type: string; url: string }>((line) => line.type === 'browser')
    const second = spawnAirlock(['login', gateway.url, '--no-browser', '--json'], { env })
    for (const deadline = Date.now() + 60_000; !/Another airlock process is logging in/.test(second.stderr()); ) {
      if (Date.now() > deadline || second.child.exitCode !== null) throw new Error(`the second login did not wait: ${second.stdout()} ${second.stderr()}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await completeBrowserLogin(browser, prompt.url, 'alice')
    expect(await first.waitFor((line) => line.type === 'logged-in', 60_000)).toMatchObject({ shared: false, subject: 'alice' })
    expect(await second.waitFor((line) => line.type === 'logged-in', 60_000)).toMatchObject({ shared: true, subject: 'alice' })
    expect(second.stdout()).not.toMatch(/"type":"browser"/)
    expect(second.stderr()).toMatch(/Another airlock process is logging in/)
    expect([await exited(first), await exited(second)]).toEqual([0, 0])
    expect(idp.count('grant.success:authorization_code')).toBe(1)
  })

  it('refreshes exactly once when several processes find the token due at the same time', async () => {
    await untilDue()
    const before = idp.count('grant.success:refresh_token')
    const results = await Promise.all(Array.from({ length: 4 }, () => airlock(['connections', '--json'], { env })))
    for (const result of results) {
      // On a slow machine the token may have expired meanwhile: waiting for the renewal is said, nothing else.
      expect(result.stderr.replace(/^airlock: Your login to .* waiting for another airlock process.*\n/m, '')).toBe('')
      expect(JSON.parse(result.stdout)).toMatchObject({ connections: [{ name: 'echo' }] })
    }
    expect(idp.count('grant.success:refresh_token') - before).toBe(1)
    expect(idp.events.filter((event) => event.startsWith('grant.error'))).toEqual([])
    // The rotated refresh token keeps working: nothing was reused, the grant was not revoked.
    await untilDue()
    expect((await airlock(['connections', '--json'], { env })).code).toBe(0)
    expect(idp.count('grant.revoked')).toBe(0)
  })

  it('keeps a long-running connect renewing in the background, so new connections keep working', async () => {
    const tunnel = spawnAirlock(['connect', 'echo', '--json'], { env })
    const { port } = await tunnel.waitFor<{ type: string; port: number }>((line) => line.type === 'ready')
    const before = idp.count('grant.success:refresh_token')
    const deadline = Date.now() + 4 * TTL_S * 1000
    while (idp.count('grant.success:refresh_token') - before < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    expect(idp.count('grant.success:refresh_token') - before).toBeGreaterThanOrEqual(2)
    const socket = connect({ host: '127.0.0.1', port })
    socket.end('ping')
    let answer = ''
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk))
    await once(socket, 'end')
    expect(answer).toBe('ping')
    expect(await tunnel.stop('SIGINT')).toBe(0)
  })

  it('gives a connection accepted right after a long sleep a renewed token, not the expired one', async () => {
    const tunnel = spawnAirlock(['connect', 'echo', '--json'], { env })
    const { port } = await tunnel.waitFor<{ type: string; port: number }>((line) => line.type === 'ready')
    // A laptop lid closed: the process sleeps past the token's expiry and the gateway's tolerance.
    tunnel.child.kill('SIGSTOP')
    const { expiresAt } = storedTokens()
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now()) + (CLOCK_TOLERANCE_S + 2) * 1000))
    const socket = connect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    await once(socket, 'connect')
    // On waking, the overdue renewal and this connection race: the connection must wait for the renewal.
    tunnel.child.kill('SIGCONT')
    socket.end('ping')
    let answer = ''
    socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk))
    await once(socket, 'close')
    expect(answer, tunnel.stdout()).toBe('ping')
    expect(await tunnel.stop('SIGINT')).toBe(0)
  })

  it('ends in "run `airlock login`" with exit 4 when the IdP no longer renews the login', async () => {
    const { refreshToken, expiresAt } = storedTokens()
    // The IdP admin revokes the grant (RFC 7009), behind the CLI's back.
    const revocation = await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token', client_id: idp.clientId }),
    })
    expect(revocation.status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now()) + 500))
    const result = await airlock(['connections', '--json'], { env })
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'unauthenticated', hint: expect.stringMatching(/airlock login/) } })
    expect(result.code).toBe(EXIT_CODES.unauthenticated)
    const status = await airlock(['status', '--json'], { env })
    expect(JSON.parse(status.stdout)).toMatchObject({ source: 'login', refreshable: true })
  })
})
