import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { claimJournalDir, type JournalIo, journalTip, JournalWriter, listSegments, readSegment, segmentName, SIGNAL_BYTES, SIGNAL_WRITES } from '../../../src/audit/journal.js'
import { GENESIS, hashBody, parseLine } from '../../../src/audit/record.js'
import { auditTempDir, removeAuditTempDirs } from '../../helpers/audit.js'

const tempDir = () => auditTempDir('airlock-journal-')
afterAll(removeAuditTempDirs)
const stop = (reason: string) => ({ type: 'gateway.stop' as const, reason })

function writer(dir: string, options: { io?: JournalIo; segmentBytes?: number; segment?: number } = {}): { journal: JournalWriter; signal: Int32Array } {
  const { chain } = claimJournalDir(dir)
  const signal = new Int32Array(new SharedArrayBuffer(SIGNAL_BYTES))
  const journal = new JournalWriter({ dir, chain, tip: journalTip(dir), segment: options.segment ?? (listSegments(dir).at(-1) ?? 0) + 1, signal, now: () => 1_800_000_000_000, ...options })
  return { journal, signal }
}

const lines = (dir: string, segment = 1) => fs.readFileSync(join(dir, segmentName(segment)), 'utf8').split('\n').filter((line) => line !== '')

describe('JournalWriter', () => {
  it('writes a durable record at once, chained to the one before', () => {
    const dir = tempDir()
    const { journal, signal } = writer(dir)
    expect(journal.append(stop('one'), { durable: true })).toBe(true)
    expect(journal.append(stop('two'), { durable: true })).toBe(true)
    const [first, second] = lines(dir).map((line) => parseLine(line)!)
    expect(first!.record).toMatchObject({ seq: 1, prev: GENESIS, reason: 'one', time: '2027-01-15T08:00:00.000Z' })
    expect(second!.record).toMatchObject({ seq: 2, prev: first!.hash })
    expect(hashBody(second!.body)).toBe(second!.hash)
    expect(Atomics.load(signal, SIGNAL_WRITES)).toBe(2)
  })

  it('writes queued records before the next durable one, in order', () => {
    const dir = tempDir()
    const { journal } = writer(dir)
    journal.append(stop('queued'))
    expect(fs.statSync(join(dir, segmentName(1))).size).toBe(0)
    journal.append(stop('durable'), { durable: true })
    expect(lines(dir).map((line) => parseLine(line)!.record.seq)).toEqual([1, 2])
  })

  it('starts a new segment once the current one is full, and continues the chain from the journal after a restart', () => {
    const dir = tempDir()
    const { journal } = writer(dir, { segmentBytes: 600 })
    for (let i = 0; i < 6; i++) journal.append(stop(`r${i}`), { durable: true })
    journal.close()
    expect(listSegments(dir).length).toBeGreaterThan(1)
    const tip = journalTip(dir)!
    expect(tip.seq).toBe(6)
    const again = writer(dir)
    again.journal.append(stop('after restart'), { durable: true })
    const newest = listSegments(dir).at(-1)!
    expect(parseLine(lines(dir, newest)[0]!)!.record).toMatchObject({ seq: 7, prev: tip.hash })
  })

  it('drops a durable record it cannot write, keeps the chain where it was, and writes again once the disk recovers', () => {
    const dir = tempDir()
    let full = false
    const io: JournalIo = {
      openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
      // A disk that fills up halfway through a write.
      writeSync: (fd, data, position, encoding) => (full ? fs.writeSync(fd, data.slice(0, 10), position, encoding) : fs.writeSync(fd, data, position, encoding)),
      ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
      closeSync: (fd) => fs.closeSync(fd),
    }
    const { journal } = writer(dir, { io })
    journal.append(stop('before'), { durable: true })
    const size = fs.statSync(join(dir, segmentName(1))).size
    full = true
    journal.append(stop('queued meanwhile'))
    expect(journal.append(stop('lost'), { durable: true })).toBe(false)
    expect(journal.healthy).toBe(false)
    // Cut back to the last whole record: no half line for the next one to follow.
    expect(fs.statSync(join(dir, segmentName(1))).size).toBe(size)
    full = false
    expect(journal.append(stop('after'), { durable: true })).toBe(true)
    expect(journal.healthy).toBe(true)
    const records = lines(dir).map((line) => parseLine(line)!.record as unknown as { seq: number; reason: string })
    expect(records.map((record) => [record.seq, record.reason])).toEqual([
      [1, 'before'],
      [2, 'queued meanwhile'],
      [3, 'after'],
    ])
  })
})

describe('reading a journal back', () => {
  it('stops at the last whole record wherever a crash cut the last line', () => {
    const dir = tempDir()
    const { journal } = writer(dir)
    for (let i = 0; i < 3; i++) journal.append(stop(`r${i}`), { durable: true })
    journal.close()
    const path = join(dir, segmentName(1))
    const whole = fs.readFileSync(path)
    const lastStart = whole.subarray(0, -1).lastIndexOf(0x0a) + 1
    for (let cut = lastStart; cut < whole.length; cut++) {
      fs.writeFileSync(path, whole.subarray(0, cut))
      const { entries, torn } = readSegment(path)
      expect(entries.map((entry) => entry.record.seq), `cut at ${cut}`).toEqual([1, 2])
      expect(torn).toBe(cut > lastStart)
      expect(journalTip(dir)?.seq).toBe(2)
    }
  })

  it('stops at a line whose hash does not match', () => {
    const dir = tempDir()
    const { journal } = writer(dir)
    for (let i = 0; i < 3; i++) journal.append(stop(`r${i}`), { durable: true })
    const path = join(dir, segmentName(1))
    fs.writeFileSync(path, fs.readFileSync(path, 'utf8').replace('"reason":"r1"', '"reason":"r9"'))
    expect(readSegment(path)).toMatchObject({ torn: true, entries: [{ record: { seq: 1 } }] })
  })
})

describe('claimJournalDir', () => {
  it('keeps one chain id for the directory', () => {
    const dir = tempDir()
    const first = claimJournalDir(dir)
    first.release()
    expect(claimJournalDir(dir).chain).toBe(first.chain)
  })

  it('refuses a directory a live process holds, and takes over from a dead one', () => {
    const dir = tempDir()
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(join(dir, 'lock'), `${process.ppid}\n`)
    expect(() => claimJournalDir(dir)).toThrow(expect.objectContaining({ code: 'config' }))
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout
    fs.writeFileSync(join(dir, 'lock'), `${dead}\n`)
    expect(claimJournalDir(dir).chain).toMatch(/^[0-9a-f]{16}$/)
    expect(fs.readFileSync(join(dir, 'lock'), 'utf8').trim()).toBe(String(process.pid))
  })
})
