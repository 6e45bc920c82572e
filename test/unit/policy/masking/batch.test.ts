/**
 * Masking the messages of a read in one call into C (each body given with its place in the read):
 * a relay-like loop pushes a server stream through the framer in chunks cut at every kind of
 * place and masks each DataRow and CopyData as the relay does, with the frame as the place. The output must equal masking
 * each message alone, with the JavaScript scan, whatever the chunking.
 */
import { describe, expect, it, vi } from 'vitest'
import { createMasker, type Masker } from '../../../../src/policy/masking/index.js'
import { nativePrefilter } from '../../../../src/policy/masking/native.js'
import { MessageFramer } from '../../../../src/protocols/postgres/framer.js'
import { serializeCommandComplete, serializeCopyData, serializeDataRow } from '../../../../src/protocols/postgres/messages.js'
import { BackendMessage } from '../../../../src/protocols/postgres/protocol.js'
import { type Random, seeded, words } from '../../../fixtures/masking/random.js'

const SECRET = 'pg-Prod-9f3Kx2-Qv7Lm4'
const FIELDS = [
  { name: 'id', typeOid: 20 },
  { name: 'body', typeOid: 25 },
  { name: 'note', typeOid: 25 },
]

/** A value: prose, now and then something to mask, or bytes COPY must escape. */
function value(random: Random): string | null {
  switch (random.int(0, 11)) {
    case 0:
      return null
    case 1:
      return `${words(random, 3)} ops${random.int(1, 99)}@example.com ${words(random, 2)}`
    case 2:
      return `token ${SECRET} here`
    case 3:
      return `card 4111 1111 1111 1111`
    case 4:
      return `tab\there, back\\slash, "quoted", new\nline`
    case 5:
      return `on 2024-03-05; ref ec9b086079795c442636 ${words(random, 20)}`
    default:
      return words(random, random.int(0, 60))
  }
}

function stream(random: Random): { bytes: Buffer; copy: boolean } {
  const copy = random.int(0, 1) === 1
  const messages: Buffer[] = []
  for (let i = 0; i < 40; i++) {
    const values = [String(i), value(random), value(random)]
    if (copy) {
      const escape = (text: string | null): string => (text === null ? '\\N' : text.replaceAll('\\', '\\\\').replaceAll('\t', '\\t').replaceAll('\n', '\\n'))
      messages.push(serializeCopyData(Buffer.from(`${values.map(escape).join('\t')}\n`)))
    } else {
      messages.push(serializeDataRow(values.map((text) => (text === null ? null : Buffer.from(text)))))
    }
    // Now and then another message between rows: a batch stops there.
    if (random.int(0, 9) === 0) messages.push(serializeCommandComplete('SELECT 1'))
  }
  return { bytes: Buffer.concat(messages), copy }
}

/** The non-NULL values of the CopyData lines in `bytes` that hold a backslash. */
function escapedValues(bytes: Buffer): number {
  let count = 0
  for (let at = 0; at < bytes.length; at += 1 + bytes.readInt32BE(at + 1)) {
    const line = bytes.subarray(at + 5, at + 1 + bytes.readInt32BE(at + 1)).toString('latin1')
    if (bytes[at] === BackendMessage.CopyData && line.includes('\\')) count += line.replace(/\n$/, '').split('\t').filter((field) => field !== '\\N').length
  }
  return count
}

/**
 * What the client gets: each DataRow/CopyData masked, everything else as it is. `how`: each body
 * alone; with its place in the read; or, as the relay does, clean runs passed first (cleanRows,
 * cleanCopyLines) and the rest framed with their place.
 */
function relay(masker: Masker, bytes: Buffer, cuts: readonly number[], how: 'alone' | 'place' | 'runs', fields: readonly { name: string; typeOid: number }[] = FIELDS): string[] {
  const framer = new MessageFramer({ maxMessageLength: 1 << 24 })
  const plan = masker.columns(fields)
  const out: string[] = []
  const format = { format: 'text' as const }
  const withPlace = how !== 'alone'
  const run = { count: 0, end: 0 }
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    // A fresh buffer per read, as a socket hands them over.
    const chunk = Buffer.from(bytes.subarray(from, cut))
    from = cut
    framer.push(chunk)
    for (;;) {
      const start = how === 'runs' ? framer.peek() : undefined
      if (start !== undefined) {
        const type = start.chunk[start.offset]
        if (type === BackendMessage.DataRow) masker.cleanRows(start.chunk, start.offset, plan, run)
        else if (type === BackendMessage.CopyData) masker.cleanCopyLines(start.chunk, start.offset, format, run)
        else run.count = 0
        if (run.count > 0) {
          for (let i = 0; i < run.count; i++) out.push(type === BackendMessage.DataRow ? JSON.stringify('unchanged') : 'unchanged')
          framer.pass(run.end - start.offset)
        }
      }
      const frame = framer.next()
      if (frame === undefined) break
      const place = withPlace ? frame : undefined
      if (frame.type === BackendMessage.DataRow) out.push(JSON.stringify(masker.dataRow(frame.body, plan, place)?.map((cell) => cell?.toString('latin1') ?? null) ?? 'unchanged'))
      else if (frame.type === BackendMessage.CopyData) out.push(masker.copy(frame.body, format, undefined, place)?.toString('latin1') ?? 'unchanged')
      else out.push(`other ${frame.type}`)
    }
  }
  return out
}

describe('masking a read in one call', () => {
  it('gives what masking each message alone gives, for every way of cutting the stream into reads', () => {
    const random = seeded(4242)
    const options = { secrets: [SECRET] }
    for (let round = 0; round < 60; round++) {
      const { bytes } = stream(random)
      const reference = relay(createMasker({}, { ...options, native: false }), bytes, [], 'alone')
      const cutCount = random.pick([0, 1, 3, 10, 50])
      const cuts = Array.from({ length: cutCount }, () => random.int(1, bytes.length - 1)).sort((a, b) => a - b)
      const alone = createMasker({}, options)
      relay(alone, bytes, cuts, 'alone')
      const counts = alone.takeCounts()
      for (const how of ['place', 'runs'] as const) {
        const batched = createMasker({}, options)
        expect(relay(batched, bytes, cuts, how)).toEqual(reference)
        // The counts for the audit are the same too.
        expect(batched.takeCounts()).toEqual(counts)
      }
    }
  })

  it('masks what it should in the batched path, in a few calls (the comparison above is not between two no-ops)', () => {
    for (const seed of [1, 2]) {
      const { bytes, copy } = stream(seeded(seed))
      const batches = vi.spyOn(nativePrefilter!, copy ? 'copyLines' : 'dataRows')
      const alone = vi.spyOn(nativePrefilter!, copy ? 'copyLine' : 'dataRow')
      const masked = relay(createMasker({}, { secrets: [SECRET] }), bytes, [], 'place').join('\n')
      expect(masked).toContain(copy ? '[EMAIL]' : '[EMAIL]')
      expect(masked).toContain('[CREDENTIAL]')
      expect(masked).not.toContain(SECRET)
      // 40 messages: a batch per run of them between other messages, and no message alone (each
      // has its place in the read, and the batch keeps the cells of those that raise).
      expect(batches.mock.calls.length).toBeLessThan(10)
      expect(alone.mock.calls.length).toBe(0)
      batches.mockRestore()
      alone.mockRestore()
    }
  })

  it('passes clean runs without a frame each, and masks the row after a run without scanning it again', () => {
    for (const seed of [1, 2, 3, 4]) {
      const { bytes, copy } = stream(seeded(seed))
      const batches = vi.spyOn(nativePrefilter!, copy ? 'copyLines' : 'dataRows')
      const alone = vi.spyOn(nativePrefilter!, copy ? 'copyLine' : 'dataRow')
      const values = vi.spyOn(nativePrefilter!, 'scan')
      const out = relay(createMasker({}, { secrets: [SECRET] }), bytes, [], 'runs')
      const masked = out.join('\n')
      expect(masked).toContain('[EMAIL]')
      expect(masked).toContain('[CREDENTIAL]')
      expect(masked).not.toContain(SECRET)
      // A batch goes on past messages that raise (it keeps their cells' flags for the masker):
      // nothing is scanned twice, whole or value by value, but the values of COPY lines with
      // something to unescape (the batch leaves those to the parser).
      expect(alone.mock.calls.length).toBe(0)
      expect(values.mock.calls.length).toBe(escapedValues(bytes))
      expect(batches.mock.calls.length).toBeLessThan(10)
      batches.mockRestore()
      alone.mockRestore()
      values.mockRestore()
    }
  })

  it('stays exact where the cells of the rows that raise fill what a batch keeps (wide rows, and a COPY line wider than all of it)', () => {
    const random = seeded(11)
    const cell = (): string => (random.int(0, 3) === 0 ? `ops${random.int(1, 99)}@example.com` : words(random, 2))
    // 1,500 columns: five rows that raise fill the 8,192 flags a batch keeps, so it stops before the sixth.
    const wide = Array.from({ length: 1500 }, (_, i) => ({ name: `c${i}`, typeOid: 25 }))
    const rows = Buffer.concat(Array.from({ length: 12 }, () => serializeDataRow(wide.map(() => Buffer.from(cell())))))
    // 9,000 fields: a line wider than the batch keeps flags for, first in its batch or after others.
    const line = (fields: number): Buffer => serializeCopyData(Buffer.from(`${Array.from({ length: fields }, cell).join('\t')}\n`))
    const lines = Buffer.concat([line(9000), line(3), line(9000), line(2000), line(9000)])
    for (const [bytes, fields, batch] of [[rows, wide, 'dataRows'], [lines, FIELDS, 'copyLines']] as const) {
      const reference = relay(createMasker({}, { secrets: [SECRET], native: false }), bytes, [], 'alone', fields)
      expect(reference.join('\n')).toContain('[EMAIL]')
      for (const how of ['place', 'runs'] as const) {
        const batches = vi.spyOn(nativePrefilter!, batch)
        expect(relay(createMasker({}, { secrets: [SECRET] }), bytes, [], how, fields)).toEqual(reference)
        // One read, yet more than one batch: each stopped where the flags kept were full.
        expect(batches.mock.calls.length).toBeGreaterThan(1)
        batches.mockRestore()
      }
    }
  })

  it('passes nothing under column rules (every row is rewritten), and stays exact', () => {
    const masker = createMasker({ columns: [{ match: ['note'], strategy: 'redact' }] }, { secrets: [SECRET] })
    const plan = masker.columns(FIELDS)
    const row = serializeDataRow([Buffer.from('1'), Buffer.from('clean'), Buffer.from('clean')])
    const run = { count: 7, end: 7 }
    masker.cleanRows(Buffer.concat([row, row]), 0, plan, run)
    expect(run).toEqual({ count: 0, end: 0 })
    // Without rules the same rows are one clean run.
    const plain = createMasker({}, { secrets: [SECRET] })
    plain.cleanRows(Buffer.concat([row, row]), 0, plain.columns(FIELDS), run)
    expect(run).toEqual({ count: 2, end: 2 * row.length })
  })

  it('still refuses a malformed row inside a read', () => {
    const masker = createMasker({}, { secrets: [SECRET] })
    const plan = masker.columns(FIELDS.slice(0, 1))
    const good = serializeDataRow([Buffer.from('1')])
    const bad = Buffer.from(good)
    bad.writeInt32BE(9, 7) // the value's length now runs past the body
    const chunk = Buffer.concat([good, bad, good])
    const framer = new MessageFramer({ maxMessageLength: 1 << 20 })
    framer.push(chunk)
    const frames = [framer.next()!, framer.next()!, framer.next()!]
    expect(masker.dataRow(frames[0]!.body, plan, frames[0])).toBeUndefined()
    expect(() => masker.dataRow(frames[1]!.body, plan, frames[1])).toThrow(/does not hold the values/)
    expect(masker.dataRow(frames[2]!.body, plan, frames[2])).toBeUndefined()
  })

  it('scans a body alone when its place does not describe it', () => {
    const masker = createMasker({}, { secrets: [SECRET] })
    const plan = masker.columns(FIELDS.slice(1, 2))
    const clean = serializeDataRow([Buffer.from('nothing here')])
    const secret = serializeDataRow([Buffer.from(`x ${SECRET}`)])
    // A place pointing at a clean message of another length, or past the end: the body's own bytes decide.
    const body = secret.subarray(5)
    expect(masker.dataRow(body, plan, { chunk: clean, offset: 0 })?.[0]?.toString()).toBe('x [CREDENTIAL]')
    expect(masker.dataRow(body, plan, { chunk: secret, offset: 3 })?.[0]?.toString()).toBe('x [CREDENTIAL]')
  })
})
