/** The masking each Postgres session gets from the configuration: the canary always, the section when present, the hash key. */
import { describe, expect, it } from 'vitest'
import { createSecretSource, parseConfig } from '../../../src/config/index.js'
import { postgresMasking } from '../../../src/gateway/masking.js'
import type { EngineSession } from '../../../src/protocols/engine.js'

const PASSWORD = 'an-upstream-password-7f3a9c'
const HASH_KEY = 'a-hash-key-of-at-least-32-bytes-0123456789'

function setup(connection: Record<string, unknown>) {
  const config = parseConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      auth: { serviceTokens: [] },
      masking: { hashKey: { env: 'HASH_KEY' } },
      connections: [{ name: 'pg', type: 'postgres', upstream: { host: 'db', port: 5432, database: 'app', user: 'app', tls: { mode: 'disable' } }, access: { groups: ['eng'] }, ...connection }],
    },
    '/',
  )
  const factory = postgresMasking(config, createSecretSource({ PG_PASSWORD: PASSWORD, HASH_KEY }))
  return factory({ connection: config.connections[0]! } as EngineSession)
}

const row = (values: string[]) => values.map((value) => Buffer.from(value))

describe('postgresMasking', () => {
  it('masks the held password even without a masking section (the canary is always on)', async () => {
    const masking = await setup({ upstream: { host: 'db', port: 5432, database: 'app', user: 'app', password: { env: 'PG_PASSWORD' }, tls: { mode: 'disable' } } })
    expect(masking).toBeDefined()
    const plan = masking!.masker.columns([{ name: 'x', typeOid: 25 }])
    expect(masking!.masker.row(row([`pw=${PASSWORD}`]), plan)?.[0]?.toString()).toBe('pw=[CREDENTIAL]')
    // No detectors without the section.
    expect(masking!.masker.row(row(['alice@example.com']), plan)).toBeUndefined()
    expect(masking!.columnRules).toBe(false)
  })

  it('has nothing to mask with no secret and no section', async () => {
    expect(await setup({})).toBeUndefined()
  })

  it('applies the section: detectors, column rules, and the hash strategy with masking.hashKey', async () => {
    const masking = await setup({ masking: { columns: [{ match: ['email'], strategy: 'hash' }] } })
    expect(masking!.columnRules).toBe(true)
    const plan = masking!.masker.columns([
      { name: 'email', typeOid: 25 },
      { name: 'note', typeOid: 25 },
    ])
    const [hashed, note] = masking!.masker.row(row(['alice@example.com', 'mail bob@example.com']), plan)!
    expect(hashed!.toString()).toMatch(/^hash:[0-9a-f]{16}$/)
    expect(note!.toString()).toBe('mail [EMAIL]')
  })

  it('reads COPY options with the PostgreSQL parser', async () => {
    const masking = (await setup({ masking: {} }))!
    expect(masking.copyOut("copy (select 1) to stdout with (format csv, delimiter ';')")).toEqual({ format: 'csv', delimiter: ';' })
    expect(masking.copyOut('copy t to stdout binary')).toEqual({ format: 'binary' })
    expect(masking.copyOut('copy t from stdin')).toBeUndefined()
    expect(masking.copyOut("copy t to '/tmp/x'")).toBeUndefined()
    expect(masking.copyOut('copy (select')).toEqual({ format: 'unreadable' })
  })
})
