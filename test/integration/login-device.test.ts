/**
 * `airlock login --device` (RFC 8628) against a real OpenID provider, approved in real headless
 * Chromium, with the tokens in a real OS keychain (gnome-keyring's Secret Service on a private
 * D-Bus session). After the login every other command works with the stored token.
 */
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT_CODES } from '../../src/errors.js'
import { type EchoServer, startEcho } from '../helpers/echo.js'
import { launchBrowser, signIn, type TestBrowser } from '../helpers/browser.js'
import { freshHome, type OidcGateway, startOidcGateway, startTestIdp, type TestIdp } from '../helpers/oidc-provider.js'
import { airlock, type Spawned, spawnAirlock, transcript } from '../helpers/processes.js'
import { type KeyringSession, startKeyringSession } from '../unit/auth/keyring-session.js'

let idp: TestIdp
let gateway: OidcGateway
let browser: TestBrowser
let keyring: KeyringSession
let echo: EchoServer
const home = freshHome()
let env: NodeJS.ProcessEnv

/** Sends "ping" to the tunnel and prints the answer. */
const ECHO_CLIENT = `const s = require('net').connect(+process.env.AIRLOCK_PORT, process.env.AIRLOCK_HOST, () => s.end('ping')); s.pipe(process.stdout)`

interface DevicePrompt {
  type: 'device'
  userCode: string
  verificationUri: string
  verificationUriComplete?: string
  expiresIn: number
}

beforeAll(async () => {
  echo = await startEcho()
  keyring = await startKeyringSession()
  env = { ...home, ...keyring.env }
  idp = await startTestIdp()
  gateway = await startOidcGateway(idp, [
    { name: 'echo', type: 'tcp', upstream: { host: '127.0.0.1', port: echo.port }, access: { groups: ['eng'] } },
    // The local PostgreSQL the test suite needs (trust for postgres on 127.0.0.1).
    { name: 'pg', type: 'postgres', upstream: { host: '127.0.0.1', port: 5432, database: 'postgres', user: 'postgres', tls: { mode: 'disable' } }, access: { groups: ['eng'] } },
  ])
  browser = await launchBrowser()
})

afterAll(async () => {
  await browser?.close()
  await gateway?.stop()
  await idp?.stop()
  await keyring?.stop()
  echo?.close()
})

async function exited(process: Spawned): Promise<number | null> {
  if (process.child.exitCode !== null) return process.child.exitCode
  const [code] = (await once(process.child, 'exit')) as [number | null]
  return code
}

describe('device login', { timeout: 180_000 }, () => {
  it('shows a user code, is approved in a browser, and keeps the tokens in the OS keychain', async () => {
    const login = spawnAirlock(['login', gateway.url, '--device', '--json'], { env })
    const prompt = await login.waitFor<DevicePrompt>((line) => line.type === 'device')
    expect(prompt.userCode).toMatch(/^[A-Z]{4}-?[A-Z]{4}$/)
    expect(prompt.verificationUri).toBe(`${idp.issuer}/device`)
    expect(prompt.expiresIn).toBeGreaterThan(0)

    const page = await browser.context.newPage()
    await page.goto(prompt.verificationUriComplete!)
    await Promise.all([page.waitForLoadState('load'), page.locator('button[autofocus]').click()])
    await signIn(page, 'alice')
    expect(await page.locator('h1').textContent()).toBe('Sign-in Success')
    await page.close()

    const result = await login.waitFor<Record<string, unknown>>((line) => line.type === 'logged-in', 60_000)
    expect(result).toMatchObject({ gateway: gateway.url, subject: 'alice', groups: ['eng'], store: 'keychain', refreshable: true })
    expect(await exited(login)).toBe(0)
    expect(idp.count('grant.success:device_code')).toBe(1)
    // Nothing went to a file.
    expect(existsSync(join(home.XDG_CONFIG_HOME, 'airlock', 'tokens'))).toBe(false)
    expect(login.stderr()).not.toMatch(/No usable OS keychain/)
  })

  it('makes the stored token work for every other command', async () => {
    const list = await airlock(['connections', '--json'], { env })
    expect(JSON.parse(list.stdout)).toMatchObject({ connections: [{ name: 'echo' }, { name: 'pg' }] })
    const connect = await airlock(['connect', 'echo', '--', process.execPath, '-e', ECHO_CLIENT], { env })
    expect(connect.stdout).toBe('ping')
    expect(connect.code).toBe(0)
    const exec = await airlock(['exec', 'pg', '-i', "select 'works' as answer", '--json'], { env })
    expect(JSON.parse(exec.stdout)).toMatchObject({ rows: [['works']] })
    expect(exec.code).toBe(0)
    const status = await airlock(['status', '--json'], { env })
    expect(JSON.parse(status.stdout)).toMatchObject({ source: 'login', loggedIn: true, store: { kind: 'keychain', location: 'OS keychain' } })
  })

  it('says what to do when the keychain holding the login is out of reach (an SSH session without D-Bus)', async () => {
    const result = await airlock(['connections', '--json'], { env: { ...home, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' } })
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'unauthenticated', hint: expect.stringMatching(/airlock login|AIRLOCK_TOKEN_STORE/) } })
    expect(result.code).toBe(EXIT_CODES.unauthenticated)
  })

  it('gives up when the device code expires before anyone approves it', async () => {
    const shortLived = await startTestIdp({ ttl: { deviceCode: 2 } })
    const other = await startOidcGateway(shortLived, [])
    try {
      const started = Date.now()
      const result = await airlock(['login', other.url, '--device', '--json'], { env: { ...freshHome(), AIRLOCK_TOKEN_STORE: 'file' }, timeoutMs: 30_000 })
      const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(lines[0]).toMatchObject({ type: 'device', expiresIn: 2 })
      expect(lines.at(-1)).toMatchObject({ error: { code: 'unauthenticated' } })
      expect(result.code).toBe(EXIT_CODES.unauthenticated)
      expect(Date.now() - started).toBeLessThan(20_000)
    } finally {
      await other.stop()
      await shortLived.stop()
    }
  })

  it('never printed a token', () => {
    const everything = transcript.join('')
    expect(everything).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./)
  })
})
