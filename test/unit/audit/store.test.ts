import { describe, expect, it } from 'vitest'
import { describeStore, parseStoreLocation } from '../../../src/audit/store.js'

describe('describeStore', () => {
  it.each([
    ['a password in the authority', 'postgres://audit:pw-authority@db.internal:5432/airlock', 'postgres://audit@db.internal:5432/airlock', 'pw-authority'],
    ['a password in the query', 'postgres://audit@db.internal/airlock?sslmode=require&password=pw-query', 'postgres://audit@db.internal/airlock', 'pw-query'],
    ['an sslpassword in the query', 'postgresql://audit@db.internal/airlock?sslpassword=pw-ssl', 'postgresql://audit@db.internal/airlock', 'pw-ssl'],
    ['a percent-encoded parameter name', 'postgres://db/airlock?pass%77ord=pw-encoded', 'postgres://db/airlock', 'pw-encoded'],
    ['a fragment', 'postgres://db/airlock#pw-fragment', 'postgres://db/airlock', 'pw-fragment'],
  ])('keeps %s out of messages', (_, url, described, secret) => {
    const text = describeStore(parseStoreLocation(url))
    expect(text).toBe(described)
    expect(text).not.toContain(secret)
  })

  it('names a SQLite store by its path', () => {
    expect(describeStore(parseStoreLocation('sqlite:/var/lib/airlock/audit.db'))).toBe('sqlite:/var/lib/airlock/audit.db')
  })
})
