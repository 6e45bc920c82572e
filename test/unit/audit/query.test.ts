import { describe, expect, it } from 'vitest'
import { decodeCursor, encodeCursor, parseExpectParams, parseListQuery, parseSince, parseTailQuery } from '../../../src/audit/query.js'

const NOW = Date.parse('2026-01-31T12:00:00.000Z')

describe('audit API parameters', () => {
  it('reads --since as a time or as a duration back from now', () => {
    expect(parseSince('2h', NOW)).toBe('2026-01-31T10:00:00.000Z')
    expect(parseSince('2026-01-30', NOW)).toBe('2026-01-30T00:00:00.000Z')
    expect(parseSince('2026-01-30T08:00:00+02:00', NOW)).toBe('2026-01-30T06:00:00.000Z')
    expect(() => parseSince('yesterday', NOW)).toThrow(expect.objectContaining({ code: 'usage' }))
  })

  it('reads list filters, page size and cursor', () => {
    expect(parseListQuery(new URLSearchParams('user=alice%40example.com&connection=pg&verdict=blocked&limit=10&cursor=42'), NOW)).toEqual({
      filter: { user: 'alice@example.com', connection: 'pg', verdict: 'blocked' },
      limit: 10,
      before: 42,
    })
    expect(parseListQuery(new URLSearchParams(''), NOW)).toEqual({ filter: {}, limit: 100 })
  })

  it.each(['verdict=maybe', 'limit=0', 'limit=1000', 'limit=x', 'cursor=-1', 'cursor=abc'])('refuses %s', (query) => {
    expect(() => parseListQuery(new URLSearchParams(query), NOW)).toThrow(expect.objectContaining({ code: 'usage' }))
  })

  it('round-trips tail cursors and caps the wait', () => {
    const cursor = { '0123456789abcdef': 42, fedcba9876543210: 0 }
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor)
    expect(parseTailQuery(new URLSearchParams(`cursor=${encodeCursor(cursor)}&wait=1h`), NOW)).toMatchObject({ cursor, waitMs: 25_000 })
    expect(() => decodeCursor(Buffer.from('{"x":1}').toString('base64url'))).toThrow(expect.objectContaining({ code: 'usage' }))
  })

  it('reads expected heads', () => {
    const hash = 'b'.repeat(64)
    expect(parseExpectParams(new URLSearchParams(`expect=${hash}&expect=0123456789abcdef:3:${hash}`))).toEqual([{ hash }, { chain: '0123456789abcdef', seq: 3, hash }])
    expect(() => parseExpectParams(new URLSearchParams('expect=nope'))).toThrow(expect.objectContaining({ code: 'usage' }))
  })
})
