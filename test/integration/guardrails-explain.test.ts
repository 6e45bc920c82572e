/** `airlock gateway explain`: the real CLI judging SQL against a configuration file, no database. */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import { airlock } from '../helpers/processes.js'

let dir: string
let config: string

function writeConfig(name: string, connections: Record<string, unknown>[]): string {
  const file = join(dir, name)
  writeFileSync(file, stringify({ listen: { host: '127.0.0.1', port: 0 }, audit: { required: false }, connections }))
  return file
}

const postgres = (name: string, guardrails?: Record<string, unknown>) => ({
  name,
  type: 'postgres',
  upstream: { host: 'db.internal', database: 'app', user: 'app', password: { env: 'NEVER_READ' } },
  access: { groups: ['eng'] },
  ...(guardrails === undefined ? {} : { guardrails }),
})

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-explain-'))
  config = writeConfig('airlock.yaml', [
    postgres('pg-prod', { presets: ['read-only', 'no-server-files'], rules: [{ id: 'no-hr', table: 'hr.*', message: 'HR tables need a ticket' }] }),
    postgres('pg-audit', { mode: 'audit-only', presets: ['no-ddl'] }),
    postgres('pg-open'),
    { name: 'redis', type: 'tcp', upstream: { host: 'redis.internal', port: 6379 }, access: { groups: ['eng'] } },
  ])
})

describe('airlock gateway explain', () => {
  it('prints the verdict and the deciding rule, and exits 3 when blocked', async () => {
    const result = await airlock(['gateway', 'explain', '--config', config, 'pg-prod', '-i', "SELECT pg_read_file('/etc/passwd')"])
    expect(result.code).toBe(3)
    expect(result.stdout).toContain('rule no-server-files: pg_read_file reads files on the database server')
    expect(result.stdout).toContain('verdict: blocked by no-server-files')
  })

  it('exits 0 when everything is allowed', async () => {
    const result = await airlock(['gateway', 'explain', '--config', config, 'pg-prod', '-i', "SELECT 'DROP TABLE users'; SELECT count(*) FROM orders"])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('verdict: allowed')
  })

  it('answers --json with one verdict per statement', async () => {
    const result = await airlock(['gateway', 'explain', '--config', config, 'pg-prod', '--json', '-i', 'SELECT 1; SELECT * FROM hr.salaries'])
    expect(result.code).toBe(3)
    expect(JSON.parse(result.stdout)).toEqual({
      connection: 'pg-prod',
      mode: 'enforce',
      presets: ['read-only', 'no-server-files'],
      allowed: false,
      rule: 'no-hr',
      message: 'HR tables need a ticket',
      hint: null,
      statements: [
        { text: 'SELECT 1', allowed: true, rule: null },
        { text: 'SELECT * FROM hr.salaries', allowed: false, rule: 'no-hr', message: 'HR tables need a ticket', hint: null },
      ],
    })
  })

  it('reads SQL from a file and from standard input', async () => {
    const file = join(dir, 'q.sql')
    writeFileSync(file, 'DELETE FROM orders WHERE id = 1;\n')
    const fromFile = await airlock(['gateway', 'explain', '--config', config, 'pg-prod', '-f', file])
    expect(fromFile.code).toBe(3)
    expect(fromFile.stdout).toContain('rule read-only:')
    const fromStdin = await airlock(['gateway', 'explain', '--config', config, 'pg-prod'], { input: 'SELECT 1' })
    expect(fromStdin.code).toBe(0)
  })

  it('reports what audit-only would record, with exit 3', async () => {
    const result = await airlock(['gateway', 'explain', '--config', config, 'pg-audit', '-i', 'DROP TABLE t'])
    expect(result.code).toBe(3)
    expect(result.stdout).toContain('audit-only')
  })

  it('allows everything on a connection without guardrails', async () => {
    const result = await airlock(['gateway', 'explain', '--config', config, 'pg-open', '-i', 'DROP TABLE t'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('no guardrails configured')
  })

  it.each([
    ['an unknown connection', ['pg-nope', '-i', 'SELECT 1']],
    ['a tcp connection', ['redis', '-i', 'SELECT 1']],
    ['no SQL', ['pg-prod', '-i', '   ']],
    ['an unreadable file', ['pg-prod', '-f', '/nonexistent/q.sql']],
  ])('exits 2 for %s', async (_name, args) => {
    const result = await airlock(['gateway', 'explain', '--config', config, ...args])
    expect(result.code).toBe(2)
  })

  it('exits 2 for guardrails that do not compile', async () => {
    const bad = writeConfig('bad.yaml', [postgres('pg', { rules: [{ id: 'no-ddl', pattern: 'x' }] })])
    const result = await airlock(['gateway', 'explain', '--config', bad, 'pg', '-i', 'SELECT 1', '--json'])
    expect(result.code).toBe(2)
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'config' } })
  })
})
