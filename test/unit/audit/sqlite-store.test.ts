import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSqliteStore, SCAN_CHUNK } from '../../../src/audit/sqlite-store.js'
import type { AuditStore, NewRow } from '../../../src/audit/store.js'
import { auditTempDir, removeAuditTempDirs } from '../../helpers/audit.js'

const ROWS = 2 * SCAN_CHUNK + 5_000

describe('SQLite store list by user and connection (no index: scanned in ranges)', () => {
  let store: AuditStore

  beforeAll(async () => {
    store = await openSqliteStore(join(auditTempDir('airlock-sqlite-'), 'audit.db'))
    const rows: NewRow[] = []
    for (let seq = 1; seq <= ROWS; seq++) {
      rows.push({
        chain: '0123456789abcdef',
        seq,
        time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, seq)).toISOString(),
        type: 'statement.begin',
        session: 'ses_a',
        identity: seq % 2 === 0 ? 'service:alice' : 'service:bob',
        user: seq % 2 === 0 ? 'alice' : 'bob',
        connection: seq === 3 ? 'rare' : 'pg',
        verdict: 'allowed',
        record: '{}',
        hash: String(seq),
      })
    }
    await store.insert(rows)
  })

  afterAll(async () => {
    await store?.close()
    removeAuditTempDirs()
  })

  it('finds a row many ranges below the newest', async () => {
    expect((await store.list({ connection: 'rare' }, 10)).map((row) => row.seq)).toEqual([3])
  })

  it('returns the newest matches first, and pages across range boundaries', async () => {
    expect((await store.list({ user: 'alice' }, 3)).map((row) => row.seq)).toEqual([ROWS, ROWS - 2, ROWS - 4])
    const page = await store.list({ user: 'service:bob', connection: 'pg' }, 4, SCAN_CHUNK + 3)
    expect(page.map((row) => row.id)).toEqual([SCAN_CHUNK + 1, SCAN_CHUNK - 1, SCAN_CHUNK - 3, SCAN_CHUNK - 5])
  })

  it('yields between ranges instead of scanning the whole table in one go', async () => {
    let done = false
    const listing = store.list({ user: 'nobody' }, 10).then((rows) => {
      done = true
      return rows
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(done).toBe(false)
    expect(await listing).toEqual([])
  })
})
