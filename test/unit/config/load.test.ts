import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { describe, expect, it } from 'vitest'

import {
  loadConfig,
  parseConfig,
  secretRefsOf,
  type ConnectionConfig,
  type GatewayConfig,
} from '../../../src/config/index.js'
import { AirlockError } from '../../../src/errors.js'

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/config')
const BASE = '/etc/airlock'
const HEX = 'ab'.repeat(32)

type Raw = Record<string, unknown>

function pg(overrides: Raw = {}): Raw {
  return {
    name: 'pg-prod',
    type: 'postgres',
    upstream: { host: 'db.internal', database: 'app', user: 'app_ro', password: { env: 'PG_PROD_PASSWORD' } },
    access: { groups: ['eng'] },
    ...overrides,
  }
}

function config(overrides: Raw = {}): Raw {
  return { connections: [pg()], ...overrides }
}

function connection<T extends ConnectionConfig['type']>(parsed: GatewayConfig, name: string, type: T): Extract<ConnectionConfig, { type: T }> {
  const found = parsed.connections.find((entry) => entry.name === name)
  expect(found?.type).toBe(type)
  return found as Extract<ConnectionConfig, { type: T }>
}

function configError(run: () => unknown): AirlockError {
  let caught: unknown
  try {
    run()
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(AirlockError)
  const error = caught as AirlockError
  expect(error.code).toBe('config')
  return error
}

async function loadError(file: string): Promise<AirlockError> {
  const caught: unknown = await loadConfig(file).then(
    () => undefined,
    (error: unknown) => error,
  )
  expect(caught).toBeInstanceOf(AirlockError)
  const error = caught as AirlockError
  expect(error.code).toBe('config')
  return error
}

function writeTemp(name: string, content: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'airlock-config-')), name)
  writeFileSync(file, content)
  return file
}

describe('loadConfig', () => {
  it('parses the example configuration of DESIGN.md', async () => {
    const parsed = await loadConfig(join(FIXTURES, 'full.yaml'))

    expect(parsed.listen).toEqual({
      host: '0.0.0.0',
      port: 8009,
      tls: { cert: join(FIXTURES, 'tls.crt'), key: join(FIXTURES, 'tls.key') },
      insecure: false,
    })
    expect(parsed.auth.adminGroups).toEqual(['platform'])
    expect(parsed.auth.oidc).toEqual([
      {
        issuer: 'https://idp.example.com',
        audience: 'airlock',
        cliClientId: 'airlock-cli',
        groupsClaim: 'groups',
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        machine: false,
        groups: [],
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      },
      {
        issuer: 'https://ci.example.com',
        machine: true,
        audience: 'airlock',
        require: { repository_id: '123456', ref: 'refs/heads/main' },
        groups: ['ci'],
        groupsClaim: 'groups',
        scopes: ['openid', 'profile', 'email', 'offline_access'],
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      },
    ])
    expect(parsed.auth.serviceTokens).toEqual([
      { name: 'nightly-ci', sha256: expect.stringMatching(/^[0-9a-f]{64}$/), groups: ['ci'], expires: new Date('2027-01-01T00:00:00Z') },
    ])
    expect(parsed.sessions).toEqual({ maxDuration: 8 * 3_600_000, idleTimeout: 30 * 60_000, maxPerIdentity: 32, drainGrace: 30_000 })
    expect(parsed.audit).toEqual({ store: `sqlite:${join(FIXTURES, 'airlock-audit.db')}`, required: true })
    expect(parsed.masking).toEqual({ hashKey: { env: 'AIRLOCK_HASH_KEY' } })

    const pgProd = connection(parsed, 'pg-prod', 'postgres')
    expect(pgProd.upstream).toEqual({
      host: 'db.internal',
      port: 5432,
      database: 'app',
      user: 'app_ro',
      password: { env: 'PG_PROD_PASSWORD' },
      tls: { mode: 'verify-full', ca: join(FIXTURES, 'db-ca.pem') },
      allowMd5: false,
      allowCleartext: false,
    })
    expect(pgProd.access).toEqual({ groups: ['eng', 'agents'] })
    expect(pgProd.guardrails).toEqual({
      mode: 'enforce',
      presets: ['read-only', 'no-server-files', 'no-role-changes'],
      rules: [{ id: 'no-pii-tables', action: 'deny', table: ['hr.*'], message: 'HR tables need a ticket' }],
    })
    expect(pgProd.masking?.columns).toEqual([{ match: ['ssn', 'password*', '*_token'], strategy: 'redact', keep: 4 }])
    expect(pgProd.masking?.detectors).toHaveLength(11)

    const shell = connection(parsed, 'ops-shell', 'command')
    expect(shell).toMatchObject({
      command: ['bash', '--norc'],
      runAs: 'airlock-shell',
      allowArgs: false,
      env: { AWS_SECRET_ACCESS_KEY: { file: '/run/secrets/aws' } },
    })
  })

  it('fills every default around a minimal configuration', async () => {
    const parsed = await loadConfig(join(FIXTURES, 'minimal.yaml'))

    expect(parsed.listen).toEqual({ host: '127.0.0.1', port: 8009, insecure: false })
    expect(parsed.auth.adminGroups).toEqual([])
    expect(parsed.auth.oidc).toEqual([])
    expect(parsed.sessions).toEqual({ maxDuration: 28_800_000, idleTimeout: 1_800_000, maxPerIdentity: 32, drainGrace: 30_000 })
    expect(parsed.limits).toEqual({ maxPayload: 1_048_576, headerTimeout: 10_000, upgradesPerMinutePerIp: 600 })
    expect(parsed.audit).toEqual({ store: `sqlite:${join(FIXTURES, 'airlock-audit.db')}`, required: true })
    expect(parsed.masking).toEqual({})
    expect(parsed.log).toEqual({ level: 'info' })
    expect(connection(parsed, 'local-pg', 'postgres').upstream).toEqual({
      host: '127.0.0.1',
      port: 5432,
      database: 'app',
      user: 'app',
      tls: { mode: 'verify-full' },
      allowMd5: false,
      allowCleartext: false,
    })
  })

  it('resolves every relative path against the configuration file directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-config-'))
    mkdirSync(join(dir, 'conf'))
    const file = join(dir, 'conf', 'airlock.yaml')
    writeFileSync(file, readFileSync(join(FIXTURES, 'every-type.yaml')))
    const at = (path: string): string => join(dir, 'conf', path)

    const parsed = await loadConfig(file)

    expect(parsed.listen.tls).toEqual({ cert: at('certs/gateway.crt'), key: at('certs/gateway.key') })
    expect(parsed.audit.store).toBe(`sqlite:${at('data/audit.db')}`)
    expect(parsed.masking.hashKey).toEqual({ file: at('secrets/hash-key') })
    const pgConnection = connection(parsed, 'pg', 'postgres')
    expect(pgConnection.upstream.password).toEqual({ file: at('secrets/pg') })
    expect(pgConnection.upstream.tls.ca).toBe(at('certs/db-ca.pem'))
    expect(connection(parsed, 'api', 'http').upstream.headers).toEqual({
      Authorization: { file: at('secrets/api') },
      Accept: 'application/json',
    })
    const shell = connection(parsed, 'shell', 'command')
    expect(shell.cwd).toBe(at('work'))
    expect(shell.command).toEqual(['/bin/sh', '-l'])
  })

  it('keeps absolute paths and resolves a relative baseDir from the working directory', () => {
    const parsed = parseConfig(
      config({
        listen: { tls: { cert: '/srv/tls.crt', key: 'tls.key' } },
        audit: { store: 'sqlite::memory:' },
      }),
      'relative/dir',
    )
    expect(parsed.listen.tls).toEqual({ cert: '/srv/tls.crt', key: join(process.cwd(), 'relative/dir/tls.key') })
    expect(parsed.audit.store).toBe('sqlite::memory:')
  })

  it('parses one connection of every type', async () => {
    const parsed = await loadConfig(join(FIXTURES, 'every-type.yaml'))

    expect(parsed.connections.map((entry) => [entry.name, entry.type])).toEqual([
      ['pg', 'postgres'],
      ['maria', 'mysql'],
      ['redis', 'tcp'],
      ['api', 'http'],
      ['shell', 'command'],
    ])
    const maria = connection(parsed, 'maria', 'mysql')
    expect(maria.upstream.port).toBe(3306)
    expect(maria.upstream.tls).toEqual({ mode: 'require' })
    expect(maria.guardrails?.rules).toEqual([{ id: 'no-sleep', action: 'deny', function: ['sleep', 'benchmark'] }])
    expect(connection(parsed, 'api', 'http').guardrails?.rules).toEqual([
      { id: 'no-deletes', action: 'deny', method: ['DELETE'] },
    ])
    const shell = connection(parsed, 'shell', 'command')
    expect(shell).toMatchObject({ idleTimeout: 300_000, maxDuration: 3_600_000, allowArgs: false })
    expect(shell.guardrails?.deny).toEqual([{ pattern: 'rm\\s+-rf', message: 'no recursive deletes' }])
    expect(connection(parsed, 'pg', 'postgres').masking).toEqual({
      detectors: expect.arrayContaining(['email', 'jwt', 'dsn-password']),
      columns: [{ match: ['email'], strategy: 'hash', keep: 4 }],
      custom: [],
    })
  })

  it.each<[string, string, RegExp]>([
    ['bad indentation', 'listen:\n  host: 127.0.0.1\n port: 8009\n', /line 3, column 1: bad indentation/],
    ['an unclosed flow mapping', 'connections: []\nlisten: { host: 127.0.0.1\n', /line \d+, column \d+: /],
    ['a duplicate key', 'connections: []\nconnections: []\n', /line 2, column 1: duplicate key/],
    ['a tab as indentation', 'listen:\n\thost: x\n', /line 2, column \d+: /],
  ])('reports a YAML syntax error (%s) with its line and column', async (_case, yaml, expected) => {
    const file = writeTemp('airlock.yaml', yaml)
    const error = await loadError(file)
    expect(error.message).toContain(file)
    expect(error.message).toMatch(expected)
  })

  it('does not repeat the YAML source around a syntax error', async () => {
    const error = await loadError(writeTemp('airlock.yaml', 'masking:\n  hashKey: "hunter2\\q"\n'))
    expect(error.message).toMatch(/line 2, column \d+: invalid escape sequence/)
    expect(error.message).not.toContain('hunter2')
  })

  it('reports an empty file', async () => {
    const error = await loadError(writeTemp('airlock.yaml', '# nothing yet\n'))
    expect(error.message).toMatch(/is empty/)
  })

  it('reports a missing file by its path', async () => {
    const file = join(tmpdir(), 'airlock-does-not-exist', 'airlock.yaml')
    const error = await loadError(file)
    expect(error.message).toContain(file)
  })

  it('names the file and the YAML location of a schema error', async () => {
    const file = writeTemp('airlock.yaml', 'connections:\n  - name: pg-prod\n    type: postgres\n    upstream: { host: db, port: "x", database: a, user: b }\n    access: { groups: [eng] }\n')
    const error = await loadError(file)
    expect(error.message).toContain(file)
    expect(error.message).toContain('connections[pg-prod].upstream.port: expected a port number like 5432')
  })
})

describe('parseConfig', () => {
  it.each<[string, Raw, string]>([
    [
      'a port that is not a number',
      config({ connections: [pg({ upstream: { host: 'db', port: 'fivefourthreetwo', database: 'a', user: 'b' } })] }),
      'connections[pg-prod].upstream.port: expected a port number like 5432',
    ],
    [
      'a port out of range',
      config({ connections: [pg({ upstream: { host: 'db', port: 70000, database: 'a', user: 'b' } })] }),
      'connections[pg-prod].upstream.port: expected a port number like 5432',
    ],
    ['a missing upstream field', config({ connections: [pg({ upstream: { host: 'db', user: 'b' } })] }), 'connections[pg-prod].upstream.database: required'],
    ['missing access', config({ connections: [pg({ access: undefined })] }), 'connections[pg-prod].access: required: add access.groups'],
    ['empty access groups', config({ connections: [pg({ access: { groups: [] } })] }), 'connections[pg-prod].access.groups: add access.groups'],
    ['an unknown connection type', config({ connections: [pg({ type: 'oracle' })] }), 'connections[pg-prod].type: type must be one of: postgres, mysql, tcp, http, command'],
    ['a missing connection type', config({ connections: [pg({ type: undefined })] }), 'connections[pg-prod].type: required: type must be one of'],
    ['an invalid connection name', config({ connections: [pg({ name: 'PG Prod' })] }), 'connections[0].name: a connection name is'],
    ['an unknown TLS mode', config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', tls: { mode: 'prefer' } } })] }), 'connections[pg-prod].upstream.tls.mode: expected one of: disable, require, verify-full'],
    ['an invalid duration', config({ sessions: { maxDuration: '8 hours' } }), 'sessions.maxDuration: expected a duration like 8h'],
    ['a zero duration', config({ sessions: { idleTimeout: '0s' } }), 'sessions.idleTimeout: must be longer than 0'],
    ['a payload limit below 320KiB', config({ limits: { maxPayload: '64KiB' } }), 'limits.maxPayload: must be at least 320KiB'],
    ['an unknown audit store', config({ audit: { store: 'mysql://audit' } }), 'audit.store: expected sqlite:PATH or a postgres:// URL'],
    ['an unknown log level', config({ log: { level: 'verbose' } }), 'log.level: expected one of: fatal, error, warn, info, debug, trace'],
    ['a service token hash that is not hex', config({ auth: { serviceTokens: [{ name: 'ci', sha256: 'ABC', groups: ['ci'] }] } }), 'auth.serviceTokens[0].sha256: expected the SHA-256 of the token as 64 lowercase hex digits'],
    ['a service token without groups', config({ auth: { serviceTokens: [{ name: 'ci', sha256: HEX, groups: [] }] } }), 'auth.serviceTokens[0].groups: add at least one group'],
    ['a service token expiry that is not a date', config({ auth: { serviceTokens: [{ name: 'ci', sha256: HEX, groups: ['ci'], expires: 'next year' }] } }), 'auth.serviceTokens[0].expires: expected a date like 2027-01-01'],
    ['duplicate service token names', config({ auth: { serviceTokens: [{ name: 'ci', sha256: HEX, groups: ['ci'] }, { name: 'ci', sha256: 'cd'.repeat(32), groups: ['ci'] }] } }), "auth.serviceTokens[1].name: duplicate service token name 'ci'"],
    ['an http issuer on a public host', config({ auth: { oidc: [{ issuer: 'http://idp.example.com', cliClientId: 'cli' }] } }), 'auth.oidc[0].issuer: expected an https:// URL (http:// only for a loopback host)'],
    ['an interactive issuer without a client id or audience', config({ auth: { oidc: [{ issuer: 'https://idp.example.com' }] } }), 'auth.oidc[0]: an interactive issuer needs cliClientId'],
    ['a symmetric JWT algorithm', config({ auth: { oidc: [{ issuer: 'https://idp.example.com', audience: 'a', algorithms: ['HS256'] }] } }), 'auth.oidc[0].algorithms[0]: expected one of: RS256'],
    ['an invalid guardrail regex', config({ connections: [pg({ guardrails: { rules: [{ id: 'x', pattern: '(unclosed' }] } })] }), 'connections[pg-prod].guardrails.rules[0].pattern: not a valid regular expression'],
    ['a guardrail rule without a matcher', config({ connections: [pg({ guardrails: { rules: [{ id: 'x', message: 'no' }] } })] }), 'connections[pg-prod].guardrails.rules[0]: a rule needs at least one matcher'],
    ['an unknown guardrail preset', config({ connections: [pg({ guardrails: { presets: ['read-mostly'] } })] }), 'connections[pg-prod].guardrails.presets[0]: expected one of: read-only'],
    ['an unknown masking detector', config({ connections: [pg({ masking: { detectors: ['ssn'] } })] }), 'connections[pg-prod].masking.detectors[0]: expected one of: email'],
    ['an invalid custom masking regex', config({ connections: [pg({ masking: { custom: [{ name: 'x', pattern: '[' }] } })] }), 'connections[pg-prod].masking.custom[0].pattern: not a valid regular expression'],
    ['a command without argv', config({ connections: [{ name: 'sh', type: 'command', command: [], runAs: 'airlock-shell', access: { groups: ['ops'] } }] }), 'connections[sh].command: expected the program and its arguments'],
    ['a command without runAs', config({ connections: [{ name: 'sh', type: 'command', command: ['bash'], access: { groups: ['ops'] } }] }), 'connections[sh].runAs: required'],
    ['an invalid command deny regex', config({ connections: [{ name: 'sh', type: 'command', command: ['bash'], runAs: 'x', access: { groups: ['ops'] }, guardrails: { deny: [{ pattern: '*' }] } }] }), 'connections[sh].guardrails.deny[0].pattern: not a valid regular expression'],
    ['an http upstream that is not a URL', config({ connections: [{ name: 'api', type: 'http', upstream: { url: 'api.internal' }, access: { groups: ['eng'] } }] }), 'connections[api].upstream.url: expected a URL'],
    ['masking on a tcp connection', config({ connections: [{ name: 'raw', type: 'tcp', upstream: { host: 'h', port: 1 }, access: { groups: ['eng'] }, masking: {} }] }), "connections[raw]: unknown key 'masking'"],
    ['a tcp connection without a port', config({ connections: [{ name: 'raw', type: 'tcp', upstream: { host: 'h' }, access: { groups: ['eng'] } }] }), 'connections[raw].upstream.port: expected a port number'],
    ['a connections entry that is not a mapping', config({ connections: ['pg-prod'] }), 'connections[0]: expected a mapping'],
    ['no connections key', { listen: {} }, 'connections: required'],
  ])('rejects %s, naming the path', (_case, raw, expected) => {
    const error = configError(() => parseConfig(raw, BASE))
    expect(error.message).toContain(expected)
  })

  it('lists every problem on its own line', () => {
    const error = configError(() =>
      parseConfig(
        config({
          sessions: { maxDuration: 'forever' },
          log: { level: 'loud' },
          connections: [pg({ upstream: { host: 'db', port: 'x', database: 'a', user: 'b' } })],
        }),
        BASE,
      ),
    )
    const lines = error.message.split('\n')
    expect(lines[0]).toBe('invalid gateway configuration:')
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^sessions\.maxDuration: /),
      expect.stringMatching(/^log\.level: /),
      expect.stringMatching(/^connections\[pg-prod\]\.upstream\.port: /),
    ])
  })

  describe('secrets', () => {
    it.each<[string, Raw, string, string]>([
      ['an inline postgres password', config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', password: 'hunter2' } })] }), 'connections[pg-prod].upstream.password', 'hunter2'],
      ['an inline numeric password', config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', password: 31337 } })] }), 'connections[pg-prod].upstream.password', '31337'],
      ['an inline hash key', config({ masking: { hashKey: 'k3y-material-9f8e7d' } }), 'masking.hashKey', 'k3y-material-9f8e7d'],
      ['an inline authorization header', config({ connections: [{ name: 'api', type: 'http', upstream: { url: 'https://api.internal', headers: { Authorization: 'Bearer tok-abc123' } }, access: { groups: ['eng'] } }] }), 'connections[api].upstream.headers.Authorization', 'tok-abc123'],
      ['an inline secret in a command env', config({ connections: [{ name: 'sh', type: 'command', command: ['bash'], runAs: 'airlock-shell', env: { AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI' }, access: { groups: ['ops'] } }] }), 'connections[sh].env.AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI'],
      ['a password in an http upstream URL', config({ connections: [{ name: 'api', type: 'http', upstream: { url: 'https://user:pa55word@api.internal' }, access: { groups: ['eng'] } }] }), 'connections[api].upstream.url', 'pa55word'],
      ['a password in a postgres audit store URL', config({ audit: { store: 'postgres://audit:pa55word@db/audit' } }), 'audit.store', 'pa55word'],
      ['a password in a postgres audit store URL query', config({ audit: { store: 'postgres://audit@db/audit?sslmode=require&password=pa55word' } }), 'audit.store', 'pa55word'],
      ['an sslpassword in a postgres audit store URL query', config({ audit: { store: 'postgresql://audit@db/audit?sslpassword=k3y-pa55' } }), 'audit.store', 'k3y-pa55'],
      ['a percent-encoded password parameter', config({ audit: { store: 'postgres://audit@db/audit?pass%77ord=pa55word' } }), 'audit.store', 'pa55word'],
      ['an inline audit store password', config({ audit: { store: 'postgres://audit@db/audit', password: 'pa55word' } }), 'audit.password', 'pa55word'],
      ['a secret as the key of a flow mapping (password: { hunter2 })', config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', password: { hunter2: null } } })] }), 'connections[pg-prod].upstream.password', 'hunter2'],
    ])('rejects %s without repeating it', (_case, raw, path, value) => {
      const error = configError(() => parseConfig(raw, BASE))
      expect(error.message).toContain(`${path}: `)
      expect(error.message).toMatch(/secrets only by reference/)
      expect(error.message).not.toContain(value)
      expect(JSON.stringify(error)).not.toContain(value)
    })

    it('takes an audit store password by reference, for a postgres store only', () => {
      const store = 'postgres://audit@db/audit'
      expect(parseConfig(config({ audit: { store, password: { file: 'audit-db' } } }), BASE).audit.password).toEqual({ file: `${BASE}/audit-db` })
      expect(parseConfig(config({ audit: { store, password: { env: 'AUDIT_DB_PASSWORD' } } }), BASE).audit.password).toEqual({ env: 'AUDIT_DB_PASSWORD' })
      expect(configError(() => parseConfig(config({ audit: { store: 'sqlite:./audit.db', password: { env: 'AUDIT_DB_PASSWORD' } } }), BASE)).message).toContain(
        'audit.password: audit.password is for a postgres:// store',
      )
      expect(configError(() => parseConfig(config({ audit: { store: 'postgres://audit:x@db/audit' } }), BASE)).message).toContain('set audit.password: { env: NAME } or { file: PATH }')
    })

    it('says exactly how to reference a secret', () => {
      const error = configError(() =>
        parseConfig(config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', password: 'hunter2' } })] }), BASE),
      )
      expect(error.message).toContain(
        'connections[pg-prod].upstream.password: secrets only by reference: use { env: NAME } or { file: PATH }',
      )
    })

    it.each<[string, unknown, string, string]>([
      ['both env and file', { env: 'A', file: 'b' }, '', 'expected exactly one of { env: NAME } or { file: PATH }'],
      ['neither', {}, '', 'expected exactly one of { env: NAME } or { file: PATH }'],
      ['a misspelt key', { evn: 'PG_PASSWORD' }, '', "unknown key 'evn' (did you mean 'env'?)"],
      ['an invalid variable name', { env: 'PG-PASSWORD' }, '.env', 'expected an environment variable name'],
    ])('rejects a reference with %s', (_case, password, field, expected) => {
      const error = configError(() =>
        parseConfig(config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', password } })] }), BASE),
      )
      expect(error.message).toContain(`connections[pg-prod].upstream.password${field}: ${expected}`)
    })

    it('allows plain values for headers and env vars that do not look secret', () => {
      const parsed = parseConfig(
        config({
          connections: [
            { name: 'api', type: 'http', upstream: { url: 'https://api.internal', headers: { Accept: 'application/json' } }, access: { groups: ['eng'] } },
            { name: 'sh', type: 'command', command: ['bash'], runAs: 'airlock-shell', env: { LANG: 'C.UTF-8' }, access: { groups: ['ops'] } },
          ],
        }),
        BASE,
      )
      expect(connection(parsed, 'api', 'http').upstream.headers).toEqual({ Accept: 'application/json' })
      expect(connection(parsed, 'sh', 'command').env).toEqual({ LANG: 'C.UTF-8' })
    })

    it('lists every secret reference a connection holds', () => {
      const parsed = parseConfig(
        config({
          connections: [
            pg(),
            { name: 'raw', type: 'tcp', upstream: { host: 'h', port: 1 }, access: { groups: ['eng'] } },
            {
              name: 'api',
              type: 'http',
              upstream: { url: 'https://api.internal', headers: { Authorization: { env: 'API_TOKEN' }, 'X-Key': { file: 'key' }, Accept: 'text/plain' } },
              access: { groups: ['eng'] },
            },
            { name: 'sh', type: 'command', command: ['bash'], runAs: 'u', env: { A: { env: 'A_SECRET' }, LANG: 'C' }, access: { groups: ['ops'] } },
          ],
        }),
        BASE,
      )
      expect(parsed.connections.map((entry) => secretRefsOf(entry))).toEqual([
        [{ env: 'PG_PROD_PASSWORD' }],
        [],
        [{ env: 'API_TOKEN' }, { file: join(BASE, 'key') }],
        [{ env: 'A_SECRET' }],
      ])
    })
  })

  describe('unknown keys', () => {
    it.each<[string, Raw, string]>([
      ['in an upstream', config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', pasword: { env: 'X' } } })] }), "connections[pg-prod].upstream: unknown key 'pasword' (did you mean 'password'?)"],
      ['at the top level', { conections: [] }, "top level: unknown key 'conections' (did you mean 'connections'?)"],
      ['with swapped letters', config({ listen: { prot: 8009 } }), "listen: unknown key 'prot' (did you mean 'port'?)"],
      ['with the wrong case', config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', allowMD5: true } })] }), "connections[pg-prod].upstream: unknown key 'allowMD5' (did you mean 'allowMd5'?)"],
      ['in a connection', config({ connections: [pg({ guardrail: {} })] }), "connections[pg-prod]: unknown key 'guardrail' (did you mean 'guardrails'?)"],
      ['with nothing close', config({ log: { format: 'json' } }), "log: unknown key 'format' (expected one of: level)"],
    ])('rejects an unknown key %s with a suggestion', (_case, raw, expected) => {
      expect(configError(() => parseConfig(raw, BASE)).message).toContain(expected)
    })

    it('does not repeat the value of an unknown key', () => {
      const error = configError(() =>
        parseConfig(config({ connections: [pg({ upstream: { host: 'db', database: 'a', user: 'b', pasword: 'hunter2' } })] }), BASE),
      )
      expect(error.message).not.toContain('hunter2')
    })
  })

  describe('cross-field rules', () => {
    it('rejects duplicate connection names, showing both positions', () => {
      const error = configError(() => parseConfig(config({ connections: [pg(), pg({ type: 'mysql' })] }), BASE))
      expect(error.message).toContain("connections[1].name: duplicate connection name 'pg-prod' (same as entry 0)")
    })

    it('reports a duplicate name even when another connection is invalid', () => {
      const error = configError(() =>
        parseConfig(config({ connections: [pg(), pg(), pg({ name: 'other', access: {} })] }), BASE),
      )
      expect(error.message).toContain('connections[1].name: duplicate connection name')
      expect(error.message).toContain('connections[other].access.groups')
    })

    it.each<[string]>([['0.0.0.0'], ['::'], ['10.0.0.5'], ['gateway.internal']])(
      'rejects listening on %s without TLS',
      (host) => {
        const error = configError(() => parseConfig(config({ listen: { host } }), BASE))
        expect(error.message).toContain(
          'listen.tls: a non-loopback listen needs TLS (listen.tls.cert/key) or listen.insecure: true',
        )
      },
    )

    it.each<[Raw]>([
      [{ host: '127.0.0.1' }],
      [{ host: '127.1.2.3' }],
      [{ host: 'localhost' }],
      [{ host: '::1' }],
      [{ host: '0.0.0.0', insecure: true }],
      [{ host: '0.0.0.0', tls: { cert: 'c.pem', key: 'k.pem' } }],
    ])('accepts listen %j', (listen) => {
      expect(parseConfig(config({ listen }), BASE).listen.host).toBe(listen['host'])
    })

    it('requires a workload issuer to constrain its claims', () => {
      const error = configError(() =>
        parseConfig(config({ auth: { oidc: [{ issuer: 'https://token.actions.example.com', machine: true, groups: ['ci'] }] } }), BASE),
      )
      expect(error.message).toContain(
        'auth.oidc[0].require: a workload issuer is shared by every repository/project of the provider: constrain it with require: {...}',
      )
    })

    it('requires a workload issuer to name its audience, so tokens minted for other services are refused', () => {
      const error = configError(() =>
        parseConfig(config({ auth: { oidc: [{ issuer: 'https://ci.example.com', machine: true, require: { repository_id: '1' } }] } }), BASE),
      )
      expect(error.message).toContain('auth.oidc[0].audience: a workload issuer needs audience')
      expect(parseConfig(config({ auth: { oidc: [{ issuer: 'https://ci.example.com', machine: true, audience: 'airlock', require: { repository_id: '1' } }] } }), BASE).auth.oidc[0]?.audience).toBe('airlock')
    })

    it('rejects an empty require on a workload issuer', () => {
      const error = configError(() =>
        parseConfig(config({ auth: { oidc: [{ issuer: 'https://ci.example.com', machine: true, require: {} }] } }), BASE),
      )
      expect(error.message).toContain('auth.oidc[0].require: a workload issuer')
    })

    it('allows an http issuer on loopback', () => {
      const parsed = parseConfig(config({ auth: { oidc: [{ issuer: 'http://127.0.0.1:9000', cliClientId: 'cli' }] } }), BASE)
      expect(parsed.auth.oidc[0]?.issuer).toBe('http://127.0.0.1:9000')
    })

    it('requires masking.hashKey when a connection masks with the hash strategy', () => {
      const raw = config({ connections: [pg({ masking: { columns: [{ match: 'email', strategy: 'hash' }] } })] })
      expect(configError(() => parseConfig(raw, BASE)).message).toContain('masking.hashKey: the hash masking strategy (pg-prod) needs')
      expect(parseConfig({ ...raw, masking: { hashKey: { env: 'HASH_KEY' } } }, BASE).masking.hashKey).toEqual({ env: 'HASH_KEY' })
    })

    it('reads YAML-style dates and ISO strings as service token expiry', () => {
      const parsed = parseConfig(
        config({
          auth: {
            serviceTokens: [
              { name: 'a', sha256: HEX, groups: ['ci'], expires: new Date('2027-01-01T00:00:00Z') },
              { name: 'b', sha256: 'cd'.repeat(32), groups: ['ci'], expires: '2027-06-30T12:00:00Z' },
            ],
          },
        }),
        BASE,
      )
      expect(parsed.auth.serviceTokens.map((token) => token.expires?.toISOString())).toEqual([
        '2027-01-01T00:00:00.000Z',
        '2027-06-30T12:00:00.000Z',
      ])
    })
  })
})
