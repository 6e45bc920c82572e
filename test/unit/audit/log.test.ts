/**
 * The audit log with its real writer thread and a SQLite store: records reach the store, queries,
 * and the start-up cases — a journal left by a killed gateway is replayed, a journal behind the
 * store (power loss) continues from the store, a torn last record is skipped.
 */
import * as fs from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import pino from 'pino'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { claimJournalDir, journalTip, JournalWriter, listSegments, segmentName, SIGNAL_BYTES } from '../../../src/audit/journal.js'
import { type AuditLog, openAuditLog } from '../../../src/audit/log.js'
import type { AuditEventInput } from '../../../src/audit/record.js'
import { auditTempDir, removeAuditTempDirs } from '../../helpers/audit.js'

const opened: AuditLog[] = []
afterEach(async () => {
  for (const log of opened.splice(0)) await log.close('test over')
})
afterAll(removeAuditTempDirs)

function setup() {
  const dir = auditTempDir('airlock-log-')
  const lines: Record<string, unknown>[] = []
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
        callback()
      },
    }),
  )
  const open = async (options: { maxLagMs?: number } = {}) => {
    const log = await openAuditLog({ store: `sqlite:${join(dir, 'audit.db')}`, logger, version: 'test', ...options })
    opened.push(log)
    return log
  }
  return { dir, journal: join(dir, 'audit.db.journal'), lines, open }
}

const statement = (sequence: number, text: string): AuditEventInput => ({
  type: 'statement.begin',
  session: 'ses_a',
  connection: 'pg',
  identity: 'service:t',
  user: 't',
  sequence,
  path: 'simple',
  text,
  redacted: [],
  verdict: 'allowed',
})

describe('openAuditLog', () => {
  it('stores what is appended, chained, and answers queries', async () => {
    const { open } = setup()
    const log = await open()
    expect(log.available).toBe(true)
    for (let i = 1; i <= 5; i++) log.append(statement(i, `select ${i}`), { durable: i % 2 === 1 })
    const heads = await log.heads()
    expect(heads).toEqual([{ chain: log.chain, seq: 6, hash: expect.stringMatching(/^[0-9a-f]{64}$/), time: expect.any(String) }])
    expect(log.status()).toMatchObject({ journal: 'ok', store: 'ok', lag: 0 })
    const page = await log.list({ type: 'statement.begin' }, 2)
    expect(page.events.map((event) => event.seq)).toEqual([6, 5])
    const older = await log.list({ type: 'statement.begin' }, 10, page.next!)
    expect(older.events.map((event) => event.seq)).toEqual([4, 3, 2])
    expect(await log.get(`${log.chain}:3`)).toMatchObject({ id: `${log.chain}:3`, text: 'select 2' })
    expect(await log.verify([{ chain: log.chain, seq: 6, hash: heads[0]!.hash }])).toMatchObject({ ok: true })
    const lines: string[] = []
    expect(await log.export(async (chunk) => void lines.push(...chunk))).toBe(6)
  })

  it('wakes a tail when a record is stored', async () => {
    const { open } = setup()
    const log = await open()
    const first = await log.tail({}, undefined, 10, 0)
    const waiting = log.tail({ type: 'statement.begin' }, first.cursor, 10, 10_000)
    setTimeout(() => log.append(statement(1, 'select now()'), { durable: true }), 100)
    const started = Date.now()
    const { events } = await waiting
    expect(events.map((event) => (event as { text?: string }).text)).toEqual(['select now()'])
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('replays what a killed gateway journaled and never stored', async () => {
    const { open, journal } = setup()
    // A previous run: journaled three records, killed before its writer stored them.
    const claim = claimJournalDir(journal)
    const previous = new JournalWriter({ dir: journal, chain: claim.chain, tip: undefined, segment: 1, signal: new Int32Array(new SharedArrayBuffer(SIGNAL_BYTES)), now: Date.now })
    for (let i = 1; i <= 3; i++) previous.append(statement(i, `select ${i}`), { durable: true })
    fs.writeFileSync(join(journal, 'lock'), '999999999\n')
    const log = await open()
    expect(log.chain).toBe(claim.chain)
    await log.sync()
    const events = (await log.list({}, 10)).events.reverse()
    expect(events.map((event) => [event.seq, event.type])).toEqual([
      [1, 'statement.begin'],
      [2, 'statement.begin'],
      [3, 'statement.begin'],
      [4, 'gateway.start'],
    ])
    expect(events[3]).toMatchObject({ unclean: true })
    expect((await log.verify([])).ok).toBe(true)
    // The replayed segment is gone once stored; the new one stays.
    await expect.poll(() => listSegments(journal)).toEqual([2])
  })

  it('continues from the store when the journal lost its tail (power loss)', async () => {
    const { open, journal, lines } = setup()
    const first = await open()
    first.append(statement(1, 'select 1'), { durable: true })
    await first.close('stop')
    opened.length = 0
    // The journal loses everything (unsynced), the store kept it.
    for (const segment of listSegments(journal)) fs.rmSync(join(journal, segmentName(segment)))
    const log = await open()
    await log.sync()
    // gateway.start, the statement and gateway.stop before; this start continues at 4.
    expect((await log.heads())[0]!.seq).toBe(4)
    expect((await log.verify([])).ok).toBe(true)
    expect(lines.some((line) => line.event === 'audit.journal-behind')).toBe(true)
  })

  it('skips a torn last record and stores everything before it', async () => {
    const { open, journal, lines } = setup()
    const claim = claimJournalDir(journal)
    const previous = new JournalWriter({ dir: journal, chain: claim.chain, tip: undefined, segment: 1, signal: new Int32Array(new SharedArrayBuffer(SIGNAL_BYTES)), now: Date.now })
    previous.append(statement(1, 'select 1'), { durable: true })
    previous.append(statement(2, 'select 2'), { durable: true })
    previous.close()
    claim.release()
    const path = join(journal, segmentName(1))
    fs.truncateSync(path, fs.statSync(path).size - 20)
    expect(journalTip(journal)?.seq).toBe(1)
    const log = await open()
    await log.sync()
    const events = (await log.list({}, 10)).events.reverse()
    expect(events.map((event) => [event.seq, event.type])).toEqual([
      [1, 'statement.begin'],
      [2, 'gateway.start'],
    ])
    expect((await log.verify([])).ok).toBe(true)
    await expect.poll(() => lines.some((line) => line.event === 'audit.journal-torn')).toBe(true)
  })

  it('is unavailable while the oldest unstored record is older than the limit, and recovers when the store catches up', async () => {
    const { open, dir, lines } = setup()
    const log = await open({ maxLagMs: 300 })
    await log.sync()
    expect(log.available).toBe(true)
    // Another connection holds the write lock: the writer's commit waits (busy_timeout) without failing yet.
    const blocker = new Database(join(dir, 'audit.db'))
    blocker.exec('BEGIN IMMEDIATE')
    try {
      log.append(statement(1, 'select 1'), { durable: true })
      await expect.poll(() => log.available, { timeout: 3_000, interval: 50 }).toBe(false)
      expect(log.status()).toMatchObject({ store: 'unavailable', lag: 1, lagMs: expect.any(Number), error: expect.stringContaining('has not stored a record') })
      expect(log.status().lagMs).toBeGreaterThan(300)
      expect(lines.some((line) => line.event === 'audit.store-behind')).toBe(true)
    } finally {
      blocker.exec('ROLLBACK')
      blocker.close()
    }
    await log.sync()
    expect(log.available).toBe(true)
    expect(log.status()).toMatchObject({ store: 'ok', lag: 0, lagMs: 0 })
    expect(lines.some((line) => line.event === 'audit.store-caught-up')).toBe(true)
  })
})
