import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'

import { beforeAll, describe, expect, it } from 'vitest'

import {
  checkConfig,
  createSecretSource,
  parseConfig,
  type CheckFinding,
  type GatewayConfig,
  type SecretSource,
} from '../../../src/config/index.js'

const NOW = new Date('2026-06-01T00:00:00Z')
const OTHER_USER = { username: 'airlock', uid: 4242, gid: 4242 }
/** The host's user database, as the checks see it. */
const USERS: Record<string, { name: string; uid: number; gid: number; home: string; shell: string }> = Object.fromEntries(
  (
    [
      ['airlock-shell', 5001, 5001],
      ['airlock-shell-b', 5002, 5002],
      ['uid-zero', 0, 5003],
      ['gateway-uid', 4242, 5004],
      ['root-group', 5005, 0],
      ['gateway-group', 5006, 4242],
    ] as const
  ).map(([name, uid, gid]) => [name, { name, uid, gid, home: '/', shell: '/bin/sh' }]),
)
const NAMESPACES = { mode: 'pid-namespace', unshare: '/usr/bin/unshare', setpriv: '/usr/bin/setpriv', sh: '/bin/sh' } as const
const HEX = 'ab'.repeat(32)
const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0

const SECRETS = {
  PG_PASSWORD: 'pg-Secret-Value-0001',
  API_TOKEN: 'api-Secret-Value-0002',
  HASH_KEY: 'hash-Secret-Value-0003-long-enough-for-hmac',
  FILE_SECRET: 'file-Secret-Value-0004',
}

type Raw = Record<string, unknown>

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'airlock-check-'))
}

function pg(overrides: Raw = {}): Raw {
  return {
    name: 'pg-prod',
    type: 'postgres',
    upstream: { host: 'localhost', database: 'app', user: 'app', password: { env: 'PG_PASSWORD' } },
    access: { groups: ['eng'] },
    ...overrides,
  }
}

function shell(overrides: Raw = {}): Raw {
  return { name: 'ops-shell', type: 'command', command: ['bash'], runAs: 'airlock-shell', access: { groups: ['ops'] }, ...overrides }
}

function build(dir: string, overrides: Raw = {}): GatewayConfig {
  return parseConfig(
    {
      auth: { serviceTokens: [{ name: 'ci', sha256: HEX, groups: ['ci'] }] },
      audit: { store: 'sqlite:./audit.db' },
      connections: [pg()],
      ...overrides,
    },
    dir,
  )
}

function check(config: GatewayConfig, secrets: SecretSource = createSecretSource({ ...SECRETS }), now = NOW): Promise<CheckFinding[]> {
  return checkConfig(config, secrets, { now, user: OTHER_USER, resolveUser: async (name) => USERS[name], probeIsolation: async () => NAMESPACES })
}

function at(findings: CheckFinding[], path: string): CheckFinding[] {
  return findings.filter((finding) => finding.path === path)
}

describe('checkConfig', () => {
  it('finds nothing wrong with a sound configuration', async () => {
    const dir = tempDir()
    expect(await check(build(dir))).toEqual([])
  })

  it('reports each missing secret by its reference', async () => {
    const dir = tempDir()
    const config = build(dir, {
      audit: { store: 'postgres://audit@db.internal/airlock', password: { env: 'AUDIT_DB_MISSING' } },
      masking: { hashKey: { file: 'secrets/hash-key' } },
      connections: [
        pg({ upstream: { host: 'localhost', database: 'app', user: 'app', password: { env: 'PG_MISSING' } } }),
        {
          name: 'api',
          type: 'http',
          upstream: { url: 'https://api.internal', headers: { Authorization: { env: 'API_MISSING' } } },
          access: { groups: ['eng'] },
        },
        shell({ env: { DEPLOY_TOKEN: { file: 'secrets/deploy' } } }),
      ],
    })

    const findings = await check(config)

    expect(findings).toEqual([
      { level: 'error', path: 'audit.password', message: 'env AUDIT_DB_MISSING is not set' },
      { level: 'error', path: 'masking.hashKey', message: `file ${join(dir, 'secrets/hash-key')} cannot be read (ENOENT)` },
      { level: 'error', path: 'connections[pg-prod].upstream.password', message: 'env PG_MISSING is not set' },
      { level: 'error', path: 'connections[api].upstream.headers.Authorization', message: 'env API_MISSING is not set' },
      { level: 'warning', path: 'connections[api].type', message: 'this gateway does not serve http connections yet: clients that connect are refused' },
      { level: 'error', path: 'connections[ops-shell].env.DEPLOY_TOKEN', message: `file ${join(dir, 'secrets/deploy')} cannot be read (ENOENT)` },
      { level: 'info', path: 'connections[ops-shell].isolation', message: expect.stringContaining('its own PID and mount namespace') },
    ])
  })

  it('never puts a secret value in a finding', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'secrets'))
    writeFileSync(join(dir, 'secrets/api'), `${SECRETS.FILE_SECRET}\n`)
    chmodSync(join(dir, 'secrets/api'), 0o644)
    const config = build(dir, {
      masking: { hashKey: { env: 'SHORT_KEY' } },
      connections: [
        pg(),
        {
          name: 'api',
          type: 'http',
          upstream: { url: 'http://api.example.com', headers: { Authorization: { file: 'secrets/api' }, 'X-Other': { env: 'API_TOKEN' } } },
          access: { groups: ['eng'] },
        },
      ],
    })
    const secrets = createSecretSource({ ...SECRETS, SHORT_KEY: 'tiny-Secret-0005' })

    const findings = await check(config, secrets)

    expect(at(findings, 'masking.hashKey')).toEqual([
      { level: 'warning', path: 'masking.hashKey', message: expect.stringContaining('env SHORT_KEY is shorter than 32 bytes') },
    ])
    expect(at(findings, 'connections[api].upstream.headers.Authorization')).toEqual([
      { level: 'warning', path: 'connections[api].upstream.headers.Authorization', message: expect.stringContaining('readable by every user') },
    ])
    expect(at(findings, 'connections[api].upstream.url')).toHaveLength(1)
    const text = JSON.stringify(findings)
    for (const value of [...Object.values(SECRETS), 'tiny-Secret-0005']) expect(text).not.toContain(value)
  })

  it('does not pass on the message of a secret source that fails in its own way', async () => {
    const leaky: SecretSource = {
      describe: (ref) => ('env' in ref ? `env ${ref.env}` : `file ${ref.file}`),
      read: () => Promise.reject(new Error(`vault said: ${SECRETS.PG_PASSWORD} is revoked`)),
    }
    const findings = await check(build(tempDir()), leaky)
    expect(findings).toEqual([{ level: 'error', path: 'connections[pg-prod].upstream.password', message: 'env PG_PASSWORD cannot be read' }])
  })

  it.each<[string, string, CheckFinding['level'] | undefined]>([
    ['expired', '2026-05-01', 'warning'],
    ['expiring within two weeks', '2026-06-10', 'warning'],
    ['valid for longer', '2027-01-01', undefined],
  ])('flags a service token that is %s', async (_case, expires, level) => {
    const config = build(tempDir(), { auth: { serviceTokens: [{ name: 'nightly-ci', sha256: HEX, groups: ['ci'], expires }] } })
    const findings = at(await check(config), 'auth.serviceTokens[0].expires')
    expect(findings.map((finding) => finding.level)).toEqual(level === undefined ? [] : [level])
    if (level !== undefined) expect(findings[0]?.message).toContain(`'nightly-ci'`)
  })

  it('says an expired token is refused', async () => {
    const config = build(tempDir(), { auth: { serviceTokens: [{ name: 'old', sha256: HEX, groups: ['ci'], expires: '2026-01-01' }] } })
    expect(at(await check(config), 'auth.serviceTokens[0].expires')[0]?.message).toMatch(/expired on 2026-01-01 and is refused/)
  })

  it.each<[string, string, string | undefined]>([
    ["the gateway's own user", OTHER_USER.username, "must not run as the gateway's own user"],
    ["the gateway's own uid", String(OTHER_USER.uid), "must not run as the gateway's own user"],
    ['root', 'root', 'must not run as root'],
    ['uid 0', '0', 'must not run as root'],
    ['a user whose uid is 0', 'uid-zero', 'has uid 0'],
    ["a user with the gateway's uid", 'gateway-uid', "the gateway's own uid"],
    ["a user whose primary group is root's", 'root-group', 'gid 0'],
    ["a user in the gateway's primary group", 'gateway-group', "primary group is the gateway's"],
    ['a user the host does not have', 'no-such-user', 'there is no user no-such-user'],
    ['a dedicated user', 'airlock-shell', undefined],
  ])('checks a command that runs as %s', async (_case, runAs, message) => {
    const findings = at(await check(build(tempDir(), { connections: [shell({ runAs })] })), 'connections[ops-shell].runAs')
    expect(findings).toEqual(message === undefined ? [] : [{ level: 'error', path: 'connections[ops-shell].runAs', message: expect.stringContaining(message) }])
  })

  it('requires a PID namespace unless the connection opts out, and reports what the probe found', async () => {
    const config = build(tempDir(), { connections: [shell(), shell({ name: 'loose', runAs: 'airlock-shell-b', isolation: 'none' })] })
    const unavailable = async () => ({ mode: 'unavailable', reason: 'unshare: unshare failed: Operation not permitted' }) as const
    const findings = await checkConfig(config, createSecretSource({}), { now: NOW, user: OTHER_USER, resolveUser: async (name) => USERS[name], probeIsolation: unavailable })
    expect(at(findings, 'connections[ops-shell].isolation')).toEqual([
      { level: 'error', path: 'connections[ops-shell].isolation', message: expect.stringMatching(/Operation not permitted.*isolation: none/) },
    ])
    expect(at(findings, 'connections[loose].isolation')).toEqual([{ level: 'warning', path: 'connections[loose].isolation', message: expect.stringContaining('without a PID namespace') }])
    expect(at(await check(config), 'connections[ops-shell].isolation')).toEqual([{ level: 'info', path: 'connections[ops-shell].isolation', message: expect.any(String) }])
  })

  it('warns when connections with different secrets share a runAs user without PID namespaces', async () => {
    const a = shell({ name: 'a', env: { TOKEN: { env: 'API_TOKEN' } }, isolation: 'none' })
    const b = shell({ name: 'b', env: { TOKEN: { env: 'PG_PASSWORD' } } })
    const sameSecrets = shell({ name: 'c', env: { TOKEN: { env: 'API_TOKEN' } }, isolation: 'none' })
    const shared = await check(build(tempDir(), { connections: [a, b, sameSecrets] }))
    expect(at(shared, 'connections[a].runAs')).toEqual([{ level: 'warning', path: 'connections[a].runAs', message: expect.stringMatching(/shares user airlock-shell with b\b/) }])
    expect(at(shared, 'connections[c].runAs')[0]?.message).toMatch(/with b\b/)
    const namespaced = await check(build(tempDir(), { connections: [{ ...a, isolation: 'pid-namespace' }, b] }))
    expect(at(namespaced, 'connections[a].runAs')).toEqual([])
  })

  it('checks the recordings directory: private to the gateway user, or creatable', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'open'), { mode: 0o755 })
    chmodSync(join(dir, 'open'), 0o755)
    const open = await check(build(dir, { recordings: { dir: './open' }, connections: [shell()] }))
    expect(at(open, 'recordings.dir')[0]?.message).toMatch(/is owned by uid|has mode 0755/)
    const own = await checkConfig(build(dir, { recordings: { dir: './open' }, connections: [shell()] }), createSecretSource({}), {
      now: NOW,
      user: { ...userInfo(), gid: userInfo().gid },
      resolveUser: async (name) => USERS[name],
      probeIsolation: async () => NAMESPACES,
    })
    expect(at(own, 'recordings.dir')).toEqual([{ level: 'error', path: 'recordings.dir', message: expect.stringContaining('has mode 0755') }])
    chmodSync(join(dir, 'open'), 0o700)
    expect(at(await checkConfig(build(dir, { recordings: { dir: './open' }, connections: [shell()] }), createSecretSource({}), { now: NOW, user: userInfo(), resolveUser: async (name) => USERS[name], probeIsolation: async () => NAMESPACES }), 'recordings.dir')).toEqual([])
    expect(at(await check(build(dir, { recordings: { dir: './new/recordings' }, connections: [shell()] })), 'recordings.dir')).toEqual([])
  })

  it('compares runAs with the current OS user by default', async () => {
    const config = build(tempDir(), { connections: [shell({ runAs: userInfo().username })] })
    const findings = await checkConfig(config, createSecretSource({}), { now: NOW })
    expect(at(findings, 'connections[ops-shell].runAs')[0]?.message).toContain("must not run as the gateway's own user")
  })

  it('checks a command directory and program', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'not-a-dir'), '')
    writeFileSync(join(dir, 'program'), '#!/bin/sh\n')
    chmodSync(join(dir, 'program'), 0o644)
    const config = build(dir, { connections: [shell({ cwd: 'not-a-dir', command: [join(dir, 'program')] })] })

    const findings = await check(config)

    expect(at(findings, 'connections[ops-shell].cwd')).toEqual([
      { level: 'error', path: 'connections[ops-shell].cwd', message: `${join(dir, 'not-a-dir')} is not a directory` },
    ])
    expect(at(findings, 'connections[ops-shell].command')).toEqual([
      { level: 'error', path: 'connections[ops-shell].command', message: `${join(dir, 'program')} does not exist or is not executable` },
    ])
  })

  it('reports an audit store whose directory does not exist', async () => {
    const dir = tempDir()
    const findings = await check(build(dir, { audit: { store: 'sqlite:./missing/audit.db' } }))
    expect(at(findings, 'audit.store')).toEqual([{ level: 'error', path: 'audit.store', message: expect.stringContaining(join(dir, 'missing')) }])
  })

  it('warns about settings that are valid but weaken the gateway', async () => {
    const config = build(tempDir(), {
      listen: { host: '0.0.0.0', insecure: true },
      auth: { oidc: [{ issuer: 'https://ci.example.com', machine: true, audience: 'airlock', require: { repository_id: '1' } }] },
      audit: { store: 'sqlite:./audit.db', required: false },
      connections: [
        pg({
          upstream: { host: 'db.internal', database: 'app', user: 'app', password: { env: 'PG_PASSWORD' }, tls: { mode: 'require' }, allowMd5: true, allowCleartext: true },
          guardrails: { mode: 'audit-only' },
        }),
      ],
    })

    const findings = await check(config)

    expect(findings.every((finding) => finding.level === 'warning')).toBe(true)
    expect(findings.map((finding) => finding.path)).toEqual([
      'listen.insecure',
      'audit.required',
      'connections[pg-prod].upstream.tls.mode',
      'connections[pg-prod].upstream.allowCleartext',
      'connections[pg-prod].upstream.allowMd5',
      'connections[pg-prod].guardrails.mode',
    ])
  })

  it('warns when nobody can log in and nothing is served', async () => {
    const config = parseConfig({ audit: { store: 'sqlite::memory:' }, connections: [] }, tempDir())
    expect(await check(config)).toEqual([
      { level: 'warning', path: 'auth', message: expect.stringContaining('no identity can authenticate') },
      { level: 'warning', path: 'connections', message: expect.stringContaining('no connections') },
    ])
  })

  describe.skipIf(!HAS_OPENSSL)('TLS files', () => {
    let certs: string

    beforeAll(() => {
      certs = tempDir()
      const openssl = (...args: string[]): void => {
        const result = spawnSync('openssl', args, { cwd: certs, encoding: 'utf8' })
        if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr}`)
      }
      openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'tls.key', '-out', 'tls.crt', '-days', '30', '-subj', '/CN=localhost')
      openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'other.key')
      chmodSync(join(certs, 'tls.key'), 0o600)
      chmodSync(join(certs, 'other.key'), 0o600)
      copyFileSync(join(certs, 'tls.crt'), join(certs, 'db-ca.pem'))
      writeFileSync(join(certs, 'garbage.pem'), 'not a certificate\n')
    })

    function withTls(tls: Raw, ca = 'db-ca.pem'): GatewayConfig {
      return build(certs, {
        listen: { host: '0.0.0.0', tls },
        audit: { store: 'sqlite::memory:' },
        connections: [pg({ upstream: { host: 'localhost', database: 'app', user: 'app', password: { env: 'PG_PASSWORD' }, tls: { ca } } })],
      })
    }

    it('accepts a matching certificate and key and a readable CA', async () => {
      expect(await check(withTls({ cert: 'tls.crt', key: 'tls.key' }), undefined, new Date())).toEqual([])
    })

    it.each<[string, Raw, string, string, string]>([
      ['a missing certificate', { cert: 'absent.crt', key: 'tls.key' }, 'db-ca.pem', 'listen.tls.cert', 'cannot be read (ENOENT)'],
      ['a certificate that is not PEM', { cert: 'garbage.pem', key: 'tls.key' }, 'db-ca.pem', 'listen.tls.cert', 'is not a PEM certificate'],
      ['a missing key', { cert: 'tls.crt', key: 'absent.key' }, 'db-ca.pem', 'listen.tls.key', 'cannot be read'],
      ['a key that is not PEM', { cert: 'tls.crt', key: 'garbage.pem' }, 'db-ca.pem', 'listen.tls.key', 'is not an unencrypted PEM private key'],
      ['a key of another certificate', { cert: 'tls.crt', key: 'other.key' }, 'db-ca.pem', 'listen.tls.key', 'is not the private key of'],
      ['a missing upstream CA', { cert: 'tls.crt', key: 'tls.key' }, 'absent-ca.pem', 'connections[pg-prod].upstream.tls.ca', 'cannot be read (ENOENT)'],
    ])('reports %s', async (_case, tls, ca, path, message) => {
      const findings = await check(withTls(tls, ca), undefined, new Date())
      expect(findings).toEqual([{ level: 'error', path, message: expect.stringContaining(message) }])
    })

    it('reports an expired certificate and warns before it expires', async () => {
      const config = withTls({ cert: 'tls.crt', key: 'tls.key' })
      const later = (days: number): Date => new Date(Date.now() + days * 86_400_000)
      expect(await check(config, undefined, later(40))).toEqual([
        { level: 'error', path: 'listen.tls.cert', message: expect.stringMatching(/^the certificate expired on \d{4}-\d{2}-\d{2}$/) },
      ])
      expect(await check(config, undefined, later(25))).toEqual([
        { level: 'warning', path: 'listen.tls.cert', message: expect.stringMatching(/^the certificate expires on /) },
      ])
    })

    it('warns about a private key every user can read', async () => {
      copyFileSync(join(certs, 'tls.key'), join(certs, 'open.key'))
      chmodSync(join(certs, 'open.key'), 0o644)
      const findings = await check(withTls({ cert: 'tls.crt', key: 'open.key' }), undefined, new Date())
      expect(findings).toEqual([{ level: 'warning', path: 'listen.tls.key', message: expect.stringContaining('chmod 600') }])
    })
  })
})
