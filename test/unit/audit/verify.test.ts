import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openStore } from '../../../src/audit/store.js'
import { columnsOf, formatLine, GENESIS, hashBody, parseLine, recordBody, type AuditRecord } from '../../../src/audit/record.js'
import { formatHead, parseExpectedHead, verifyLines, verifyStore } from '../../../src/audit/verify.js'
import { auditTempDir, removeAuditTempDirs } from '../../helpers/audit.js'

afterAll(removeAuditTempDirs)

const CHAIN = '0123456789abcdef'
const OTHER = 'fedcba9876543210'

/** A well-formed chain of `count` export lines. */
function chainLines(chain: string, count: number): string[] {
  const lines: string[] = []
  let prev = GENESIS
  for (let seq = 1; seq <= count; seq++) {
    const body = recordBody({ type: 'gateway.stop', reason: `record ${seq}` }, { v: 1, chain, seq, prev, time: `2026-01-31T12:00:${String(seq).padStart(2, '0')}.000Z` })
    prev = hashBody(body)
    lines.push(formatLine(body, prev))
  }
  return lines
}

const rehash = (line: string, change: (record: Record<string, unknown>) => void): string => {
  const { record } = parseLine(line)!
  change(record as unknown as Record<string, unknown>)
  const body = recordBody(record as never, {} as never)
  return formatLine(body, hashBody(body))
}

describe('verifyLines (export files)', () => {
  const lines = chainLines(CHAIN, 6)
  const head = parseLine(lines[5]!)!

  it('accepts an intact export, chains interleaved, and finds its expected head', async () => {
    const other = chainLines(OTHER, 3)
    const mixed = [lines[0]!, other[0]!, lines[1]!, other[1]!, other[2]!, ...lines.slice(2)]
    const report = await verifyLines(mixed, [parseExpectedHead(formatHead({ chain: CHAIN, seq: 6, hash: head.hash }))!])
    expect(report).toMatchObject({ ok: true, missingHeads: [] })
    expect(report.chains.map((chain) => [chain.chain, chain.records])).toEqual([
      [CHAIN, 6],
      [OTHER, 3],
    ])
  })

  it.each([
    ['an edited record', (all: string[]) => all.map((line, i) => (i === 2 ? line.replace('record 3', 'record X') : line)), 3, 'edited'],
    ['an edited record with its hash recomputed', (all: string[]) => all.map((line, i) => (i === 2 ? rehash(line, (r) => (r.reason = 'forged')) : line)), 4, 'relinked'],
    ['a deleted record', (all: string[]) => all.filter((_, i) => i !== 2), 3, 'missing'],
    ['two records swapped', (all: string[]) => [all[0]!, all[1]!, all[3]!, all[2]!, all[4]!, all[5]!], 3, 'missing'],
    ['an inserted record', (all: string[]) => [...all.slice(0, 3), rehash(all[2]!, (r) => (r.reason = 'inserted')), ...all.slice(3)], 4, 'out-of-order'],
    ['a record copied in from another chain', (all: string[]) => [...all.slice(0, 3), rehash(all[3]!, (r) => (r.prev = GENESIS)), ...all.slice(4)], 4, 'relinked'],
  ])('reports the first broken link for %s', async (_, tamper, seq, kind) => {
    const report = await verifyLines(tamper(lines))
    expect(report.ok).toBe(false)
    expect(report.chains[0]!.broken).toMatchObject({ seq, kind, id: `${CHAIN}:${seq}` })
    expect(report.chains[0]!.records).toBe(seq - 1)
  })

  it('detects a tail cut off only against an expected head', async () => {
    const cut = lines.slice(0, 4)
    expect((await verifyLines(cut)).ok).toBe(true)
    const report = await verifyLines(cut, [{ chain: CHAIN, seq: 6, hash: head.hash }])
    expect(report.ok).toBe(false)
    expect(report.missingHeads[0]!.reason).toContain('ends at 4')
    expect((await verifyLines(cut, [{ hash: head.hash }])).ok).toBe(false)
  })

  it('reports a line that is not a record', async () => {
    const report = await verifyLines([...lines.slice(0, 2), 'garbage', ...lines.slice(2)])
    expect(report.ok).toBe(false)
    expect(report.chains.find((chain) => chain.chain === '(unknown)')?.broken?.reason).toContain('line 3')
  })
})

describe('verifyStore', () => {
  it('checks the filter columns against the record', async () => {
    const store = await openStore({ kind: 'sqlite', path: join(auditTempDir('airlock-verify-'), 'audit.db') })
    const rows = chainLines(CHAIN, 4).map((line) => {
      const { record, body, hash } = parseLine(line)!
      return { ...columnsOf(record as AuditRecord), record: body, hash }
    })
    await store.insert(rows)
    expect(await verifyStore(store)).toMatchObject({ ok: true, chains: [{ chain: CHAIN, records: 4, head: { seq: 4 } }] })
    await store.insert([{ ...rows[0]!, seq: 5 }])
    expect((await verifyStore(store)).chains[0]!.broken).toMatchObject({ seq: 5, kind: 'moved' })
    await store.close()
  })
})

describe('parseExpectedHead', () => {
  const hash = 'a'.repeat(64)
  it.each([
    [hash, { hash }],
    [`${CHAIN}:42:${hash}`, { chain: CHAIN, seq: 42, hash }],
    [` ${hash.toUpperCase()} `, { hash }],
  ])('reads %j', (text, expected) => {
    expect(parseExpectedHead(text)).toEqual(expected)
  })

  it.each(['', 'abc', `${CHAIN}:${hash}`, `${CHAIN}:0:${hash}`, `nothex:1:${hash}`])('refuses %j', (text) => {
    expect(parseExpectedHead(text)).toBeUndefined()
  })
})
