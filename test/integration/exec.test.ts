/**
 * `airlock exec` against the SCRAM/TLS throwaway cluster through an in-process gateway: every
 * output format against golden files, NULL vs empty, unicode, a 200k-row and a 1 GiB result,
 * ON_ERROR_STOP semantics with the failing line, stdin and -f, --timeout, and each exit code.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EXIT_CODES } from '../../src/errors.js'
import type { StatementHooks } from '../../src/protocols/hooks.js'
import { startInProcessGateway, type InProcessGateway } from '../helpers/inprocess-gateway.js'
import { appUpstream, startPgCluster, type PgCluster } from '../helpers/pg-cluster.js'
import { airlock, BIN, childEnv, residentBytes, transcript } from '../helpers/processes.js'

let cluster: PgCluster
let gateway: InProcessGateway

const policy = (): StatementHooks => ({
  begin: (context) =>
    /^\s*drop\b/i.test(context.text)
      ? { verdict: { allow: false, rule: 'no-drop', message: 'tests may not drop things', hint: 'ask for a ticket' } }
      : { verdict: { allow: true } },
  end: () => {},
})

beforeAll(async () => {
  cluster = await startPgCluster({ auth: 'scram-sha-256', ssl: true })
  await cluster.psql('create table notes (id int primary key, body text); alter table notes owner to app;', 'app')
  gateway = await startInProcessGateway({
    secrets: { PG_APP_PASSWORD: cluster.app.password, WRONG: 'not-the-password' },
    hooks: policy,
    connections: [
      {
        name: 'pg',
        type: 'postgres',
        upstream: appUpstream(cluster),
        access: { groups: ['eng'] },
      },
      {
        name: 'pg-wrong-password',
        type: 'postgres',
        upstream: { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app', password: { env: 'WRONG' }, tls: { mode: 'require' } },
        access: { groups: ['eng'] },
      },
      { name: 'redis', type: 'tcp', upstream: { host: '127.0.0.1', port: 6379 }, access: { groups: ['eng'] } },
    ],
  })
}, 60_000)

afterAll(async () => {
  await gateway?.stop()
  await cluster?.stop()
  expect(transcript.join('')).not.toContain(cluster.app.password)
  expect(gateway.logs.join('')).not.toContain(cluster.app.password)
})

const exec = (args: string[], options: { input?: string; who?: 'user' | 'outsider' | 'expired' } = {}) =>
  airlock(['exec', 'pg', ...args], { env: gateway.env(options.who ?? 'user'), ...(options.input === undefined ? {} : { input: options.input }), timeoutMs: 60_000 })

const SAMPLE = `select * from (values
  (1, 'plain', 'x'::text, true, 1.5::float8, '{"k": [1, null]}'::jsonb),
  (2, NULL, '', false, NULL, NULL),
  (3, 'ünïcödé ✓ 日本', E'tab\\there, "quoted", new\\nline', NULL, -0.25, '[]'::jsonb),
  (4, ' padded ', E'back\\\\slash', true, 1e20, '"s"'::jsonb)
) as t(id, label, note, flag, amount, doc) order by id`

describe('output formats (golden files)', () => {
  it.each(['table', 'csv', 'tsv', 'json'])('%s', async (format) => {
    const result = await exec(['-i', SAMPLE, '--output', format])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const golden = join('test', 'fixtures', 'exec', `sample.${format}`)
    if (process.env.UPDATE_GOLDEN) writeFileSync(golden, result.stdout)
    expect(result.stdout).toBe(readFileSync(golden, 'utf8'))
  })

  it('--json is --output json, one object per result set', async () => {
    const result = await exec(['-i', "select 1 as a; select NULL::text as b, '' as c; create temp table t(x int); insert into t values (1), (2)", '--json'])
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line))
    expect(lines).toEqual([
      { columns: [{ name: 'a', typeOid: 23 }], rows: [[1]], command: 'SELECT 1', rowCount: 1, notices: [] },
      { columns: [{ name: 'b', typeOid: 25 }, { name: 'c', typeOid: 25 }], rows: [[null, '']], command: 'SELECT 1', rowCount: 1, notices: [] },
      { columns: [], rows: [], command: 'CREATE TABLE', rowCount: 0, notices: [] },
      { columns: [], rows: [], command: 'INSERT 0 2', rowCount: 2, notices: [] },
    ])
  })

  it('sends notices to stderr (and into the JSON object)', async () => {
    const result = await exec(['-i', "do $$ begin raise notice 'hello from the server'; end $$", '--json'])
    expect(result.stderr).toMatch(/NOTICE:  hello from the server/)
    expect(JSON.parse(result.stdout)).toMatchObject({ command: 'DO', notices: ['NOTICE:  hello from the server'] })
  })
})

describe('scripts', () => {
  it('streams a 200k-row result', async () => {
    const result = await exec(['-i', 'select g, md5(g::text) from generate_series(1, 200000) g', '--output', 'tsv'])
    const lines = result.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(200_001)
    expect(lines.at(-1)).toBe('200000\t03e6c61603f6c550ab49ab6a2d83f793')
  })

  it('stops at the first error like ON_ERROR_STOP, names its line, and runs nothing after it', async () => {
    const script = ['insert into notes values (1, \'first\');', '', 'insert into notes values (2,', '  nosuch_column);', "insert into notes values (3, 'never');"].join('\n')
    const result = await exec(['-i', script])
    expect(result.code).toBe(EXIT_CODES.target)
    expect(result.stderr).toMatch(/column "nosuch_column" does not exist \(SQLSTATE 42703\) at line 4/)
    expect(await cluster.psql('select string_agg(id::text, \',\' order by id) from notes', 'app')).toBe('1')
  })

  it('reads the script from -f and from stdin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-exec-'))
    writeFileSync(join(dir, 'q.sql'), 'select 40 + 2 as answer;\n')
    expect((await exec(['-f', join(dir, 'q.sql'), '--output', 'csv'])).stdout).toBe('answer\n42\n')
    expect((await exec(['--output', 'csv'], { input: 'select 6 * 7 as answer' })).stdout).toBe('answer\n42\n')
    expect((await exec(['-f', '-', '--output', 'csv'], { input: 'select 7 * 6 as answer' })).stdout).toBe('answer\n42\n')
  })

  it('--timeout cancels the running statement and exits non-zero', async () => {
    const started = Date.now()
    const result = await exec(['-i', 'select pg_sleep(60)', '--timeout', '1s'])
    // Well before the sleep would end, even on a loaded machine.
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(result.code).toBe(EXIT_CODES.target)
    expect(result.stderr).toMatch(/timed out; the statement at line 1 was cancelled/)
    expect(await cluster.psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'")).toBe('0')
  })

  it('streams a 1 GiB result in constant memory', async () => {
    const child = spawn(process.execPath, [BIN, 'exec', 'pg', '--output', 'tsv', '-i', "select repeat('x', 1023) from generate_series(1, 1048576)"], {
      env: childEnv(gateway.env('user')),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let bytes = 0
    let peak = 0
    child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length))
    const sampler = setInterval(() => {
      residentBytes(child.pid!).then((rss) => (peak = Math.max(peak, rss)), () => {})
    }, 200)
    const [code] = await once(child, 'exit')
    clearInterval(sampler)
    expect(code).toBe(0)
    expect(bytes).toBe(1024 * 1048576 + 'repeat\n'.length)
    expect(peak).toBeGreaterThan(0)
    // Bounded, not proportional: 1 GiB passes through; what remains is the runtime and GC slack.
    expect(peak).toBeLessThan(256 * 1024 * 1024)
  }, 180_000)
})

describe('exit codes', () => {
  const cases: { name: string; run: () => ReturnType<typeof exec>; exit: keyof typeof EXIT_CODES }[] = [
    { name: 'ok', run: () => exec(['-i', 'select 1']), exit: 'target' },
    { name: 'SQL error', run: () => exec(['-i', 'select 1/0']), exit: 'target' },
    { name: 'blocked by a guardrail', run: () => exec(['-i', 'drop table notes']), exit: 'blocked' },
    { name: 'unknown connection', run: () => airlock(['exec', 'nope', '-i', 'select 1'], { env: gateway.env('user') }), exit: 'usage' },
    { name: 'not a postgres connection', run: () => airlock(['exec', 'redis', '-i', 'select 1'], { env: gateway.env('user') }), exit: 'usage' },
    { name: 'a psql meta-command', run: () => exec(['-i', '\\! id']), exit: 'usage' },
    { name: 'an empty script', run: () => exec(['-i', '-- nothing']), exit: 'usage' },
    { name: 'expired token', run: () => exec(['-i', 'select 1'], { who: 'expired' }), exit: 'unauthenticated' },
    { name: 'forbidden', run: () => exec(['-i', 'select 1'], { who: 'outsider' }), exit: 'forbidden' },
    { name: 'gateway down', run: () => airlock(['exec', 'pg', '-i', 'select 1'], { env: { AIRLOCK_GATEWAY: 'http://127.0.0.1:9', AIRLOCK_TOKEN: 'alk_x' } }), exit: 'gateway-unreachable' },
    { name: 'database refuses the gateway', run: () => airlock(['exec', 'pg-wrong-password', '-i', 'select 1'], { env: gateway.env('user') }), exit: 'upstream-unavailable' },
  ]
  it.each(cases)('$name', async ({ name, run, exit }) => {
    const result = await run()
    expect(result.code).toBe(name === 'ok' ? 0 : EXIT_CODES[exit])
    if (name === 'blocked by a guardrail') {
      expect(result.stderr).toMatch(/blocked by airlock guardrail no-drop: tests may not drop things/)
      expect(result.stderr).toMatch(/Hint: ask for a ticket/)
    }
  })

  it('reports a blocked statement as JSON with --json', async () => {
    const result = await exec(['-i', 'drop table notes', '--json'])
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'blocked', sqlstate: '42501', line: 1 } })
    expect(result.code).toBe(EXIT_CODES.blocked)
  })
})
