/**
 * The prefilter's scan in C (native/prefilter.c) against the JavaScript reference: the same flags
 * for the same bytes, on random values rich in what the scan looks for, on the corpus, and at the
 * lengths where the C code changes strategy (16/32-byte steps, the padded tail). Also the digit
 * runs the prefilter raises and the ones it leaves alone.
 */
import { describe, expect, it } from 'vitest'
import { Canary } from '../../../../src/policy/masking/canary.js'
import { BUILTIN_DETECTORS, DETECTORS } from '../../../../src/policy/masking/detectors.js'
import { nativePrefilter } from '../../../../src/policy/masking/native.js'
import { type Carry, type ColumnSpec, Prefilter, type PrefilterSpec } from '../../../../src/policy/masking/prefilter.js'
import { serializeDataRow } from '../../../../src/protocols/postgres/messages.js'
import { loadCorpus } from '../../../fixtures/masking/corpus.js'
import { type Random, randomSecret, seeded, words } from '../../../fixtures/masking/random.js'

const CANARY = 1 << 11
const DIGITS = 1 << 12
const SECRETS = ['pg-Prod-9f3Kx2-Qv7Lm4', 'Zq7-unrelated-Secret!']

function specFor(secrets: readonly string[], detectors = true): PrefilterSpec {
  const anchors: [string, number][] = []
  DETECTORS.forEach((name, index) => {
    if (detectors) for (const gram of BUILTIN_DETECTORS[name].anchors) anchors.push([gram, 1 << index])
  })
  for (const secret of secrets) for (const gram of Canary.create([secret])?.anchors ?? []) anchors.push([gram, CANARY])
  return { atSign: 1 << 13, percent: 1 << 14, across: CANARY, anchors }
}

// Every detector and two secrets (Teddy with 16 buckets), and the canary alone (8 buckets).
const SPECS = { 'every detector': specFor(SECRETS), 'the canary alone': specFor(SECRETS, false) }
const spec = SPECS['every detector']
const reference = Prefilter.for(spec, 'javascript')
const native = Prefilter.for(spec, 'native')

/** What the scan looks for, and its neighbours: anchors in any case, digits and separators, `@`, `%`. */
function piece(random: Random, anchors: readonly string[]): string {
  switch (random.int(0, 10)) {
    case 0: {
      const gram = random.pick(anchors)
      return [...gram].map((char) => (random.int(0, 1) === 0 ? char.toUpperCase() : char)).join('')
    }
    case 1:
      return random.string(random.int(1, 16), '0123456789')
    case 2:
      return random.string(random.int(1, 20), '0123456789 -.()/+')
    case 3:
      return random.string(random.int(1, 3), '@%_')
    case 4:
      return random.string(random.int(1, 12), 'abcdefABCDEF0123456789')
    case 5:
      return random.pick(SECRETS)
    case 6:
      return randomSecret(random)
    case 7:
      return `${random.pick(['DE89', 'GB82', 'ec9b', 'x_', 'ref '])}${random.string(random.int(8, 22), '0123456789 ')}`
    case 8:
      // Long runs of separators between digit groups: runs that cross the C scan's 32-byte steps.
      return `${random.string(random.int(0, 9), '0123456789')}${random.string(random.int(1, 70), ' -.()/+')}${random.string(random.int(0, 12), '0123456789')}`
    default:
      return words(random, random.int(1, 6))
  }
}

function randomValue(random: Random, anchors: readonly string[]): Buffer {
  const parts: string[] = []
  const target = random.pick([0, 1, 3, 15, 16, 17, 31, 32, 33, 34, 35, 47, 48, 49, 63, 64, 65, 100, 300, 900])
  while (parts.join('').length < target) parts.push(piece(random, anchors))
  return Buffer.from(parts.join('').slice(0, target + random.int(0, 3)))
}

/** A DataRow body of `cells`: the message without its type and length. */
function dataRowBody(cells: readonly (Buffer | null)[]): Buffer {
  return serializeDataRow(cells).subarray(5)
}

/** The JavaScript reference over a row, as the masker walks it. */
function referenceRow(cells: readonly (Buffer | null)[], columns: readonly ColumnSpec[], withCarry: boolean, prefilter = reference): number[] {
  const carry: Carry | undefined = withCarry ? { window: 0, length: 0 } : undefined
  return cells.map((cell, i) => {
    if (cell === null) return 0
    const column = columns[i]!
    return column.always | (prefilter.scan(cell, 0, cell.length, column.digitLimit, column.digitFlags, carry) & column.mask)
  })
}

const anchors = spec.anchors.map(([gram]) => gram)
const COLUMN_KINDS: readonly ColumnSpec[] = [
  { mask: ~0, digitLimit: 9, digitFlags: DIGITS, always: 0 },
  { mask: DIGITS | CANARY, digitLimit: 13, digitFlags: DIGITS, always: 0 },
  { mask: CANARY, digitLimit: Number.MAX_SAFE_INTEGER, digitFlags: 0, always: 0 },
  { mask: ~0, digitLimit: 9, digitFlags: DIGITS, always: 1 << 15 },
]

describe('the prefilter in C', () => {
  it('is built (npm ci builds it; without it masking falls back to the slower JavaScript scan)', () => {
    expect(nativePrefilter).toBeDefined()
    expect(native.native).toBe(true)
    expect(reference.native).toBe(false)
    expect(['avx512', 'avx2', 'none']).toContain(nativePrefilter!.simd())
  })

  // Each anchor set in C with the best SIMD this CPU has, with AVX2 at most (a CPU without
  // AVX-512), and with the scalar walk a CPU without AVX2 runs.
  const cases = Object.entries(SPECS).flatMap(([name, spec]) => (['native', 'native-avx2', 'native-scalar'] as const).map((mode) => [`${name}, ${mode}`, spec, mode] as const))
  it.each(cases)('raises the same flags as the JavaScript scan on random values, cell by cell and across cells (%s)', (_, spec, mode) => {
    const reference = Prefilter.for(spec, 'javascript')
    const native = Prefilter.for(spec, mode)
    const anchors = spec.anchors.map(([gram]) => gram)
    const random = seeded(20261206)
    let raised = 0
    for (let round = 0; round < 3000; round++) {
      const width = random.int(1, 5)
      const columns = Array.from({ length: width }, () => random.pick(COLUMN_KINDS))
      const cells = Array.from({ length: width }, () => (random.int(0, 9) === 0 ? null : randomValue(random, anchors)))
      const withCarry = random.int(0, 3) !== 0
      const expected = referenceRow(cells, columns, withCarry, reference)
      const all = native.dataRow(dataRowBody(cells), columns, withCarry)
      const got = new Int32Array(width)
      native.cellFlags(width, got)
      expect([...got], `${JSON.stringify(cells.map((cell) => cell?.toString('latin1') ?? null))} carry ${withCarry}`).toEqual(expected)
      expect(all).toBe(expected.reduce((a, b) => a | b, 0))
      if (all !== 0) raised++
      // One value alone, and inside a larger buffer (the scan must stay within [from, to)).
      const value = cells.find((cell) => cell !== null)
      if (value !== undefined) {
        const column = columns[0]!
        const padded = Buffer.concat([Buffer.from('4111111111111111@%'), value, Buffer.from('@%ghp_4111111111111111')])
        const from = 18
        const to = 18 + value.length
        expect(native.scanValue(padded, from, to, column.digitLimit, column.digitFlags)).toBe(reference.scan(padded, from, to, column.digitLimit, column.digitFlags))
      }
    }
    // The table is not degenerate: many rows raise something, many raise nothing.
    expect(raised).toBeGreaterThan(600)
    expect(raised).toBeLessThan(2900)
  })

  it('raises the same flags on the corpus, alone and inside long prose', () => {
    const corpus = loadCorpus()
    const random = seeded(7)
    for (const text of [...corpus.mustMask.map((entry) => entry.text), ...corpus.lookAlikes.map((entry) => entry.text)]) {
      for (const value of [Buffer.from(text), Buffer.from(`${words(random, 12)} ${text} ${words(random, 12)}`)]) {
        for (const column of COLUMN_KINDS) {
          const cells = [value]
          expect(native.dataRow(dataRowBody(cells), [column], true), text).toBe(referenceRow(cells, [column], true)[0])
        }
      }
    }
  })

  it('splits COPY lines as the JavaScript walk does, NULL fields skipped, and keeps each field\'s flags', () => {
    const random = seeded(99)
    const column = COLUMN_KINDS[0]!
    const nullBytes = Buffer.from('\\N')
    let raisedLines = 0
    for (let round = 0; round < 500; round++) {
      const fields = Array.from({ length: random.int(1, 4) }, () => (random.int(0, 5) === 0 ? nullBytes : Buffer.from(randomValue(random, anchors).filter((byte) => byte !== 0x09 && byte !== 0x5c))))
      const line = Buffer.concat(fields.flatMap((field, i) => (i === 0 ? [field] : [Buffer.of(0x09), field])))
      const carry: Carry = { window: 0, length: 0 }
      const expected = fields.map((field) => (field.equals(nullBytes) ? 0 : reference.scan(field, 0, field.length, column.digitLimit, column.digitFlags, carry) & column.mask))
      const together = expected.reduce((all, flags) => all | flags, 0)
      if (together !== 0) raisedLines++
      expect(native.copyLine(line, line.length, 0x09, nullBytes, column, true)).toBe(together)
      const kept = new Int32Array(fields.length)
      expect(native.fieldFlags(fields.length, kept)).toBe(true)
      expect([...kept]).toEqual(expected)
    }
    expect(raisedLines).toBeGreaterThan(100)
  })

  it('finds an anchor of NUL bytes (the C table keeps it apart from its empty slots)', () => {
    const spec: PrefilterSpec = { atSign: 0, percent: 0, across: CANARY, anchors: [['\0\0\0\0', CANARY], ['abcd', 1]] }
    const reference = Prefilter.for(spec, 'javascript')
    const native = Prefilter.for(spec, 'native')
    const column = COLUMN_KINDS[2]!
    for (const text of ['x\0\0\0\0y', 'x\0\0\0y abcd', 'nothing at all']) {
      const cells = [Buffer.from(`${text}${' pad'.repeat(20)}`, 'latin1'), Buffer.from(text, 'latin1')]
      const expected = referenceRow(cells, [column, column], true, reference)
      expect(native.dataRow(dataRowBody(cells), [column, column], true), JSON.stringify(text)).toBe(expected[0]! | expected[1]!)
    }
    expect(reference.scan(Buffer.from('\0\0\0\0'), 0, 4, 9, 0)).toBe(CANARY)
  })

  it('refuses DataRow bodies that do not hold what they announce, and rows that do not fit the columns', () => {
    const column = COLUMN_KINDS[0]!
    const good = dataRowBody([Buffer.from('abc'), null])
    const cases: [string, Buffer, number | undefined][] = [
      ['no count', Buffer.alloc(1), -1],
      ['a length cut short', good.subarray(0, 4), -1],
      ['a value longer than the body', Buffer.from([0, 2, 0, 0, 0, 9, 0x61]), -1],
      ['a negative length other than -1', Buffer.from([0, 2, 0xff, 0xff, 0xff, 0xfe]), -1],
      ['bytes after the last value', Buffer.concat([good, Buffer.of(0)]), -1],
      ['more values than columns', dataRowBody([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]), undefined],
      ['a well-formed row', good, 0],
    ]
    for (const [name, body, expected] of cases) expect(native.dataRow(body, [column, column], false), name).toBe(expected)
  })
})

describe('digit runs', () => {
  // Raised: a digit detector could find something. Not raised: every digit detector needs a
  // boundary the value does not have, or there are too few digits, or it is a date.
  const CASES: [string, boolean][] = [
    ['call +1 415 555 2671 now', true],
    ['(415) 555-2671', true],
    ['card 4111 1111 1111 1111', true],
    ['DE89370400440532013000', true],
    ['IBAN DE89 3704 0044 0532 0130 00', true],
    ['ssn 123-45-6789', true],
    ['x 123456789 y', true],
    ['ref ec9b086079795c44', false],
    ['id_123456789', false],
    ['abc123456789', false],
    ['123456789abc', false],
    ['abc 123456789', true],
    ['a1 415 555 2671', true],
    ['on 2024-03-05; ref', false],
    ['2024-03-05 10:30', false],
    ['+1234-56-78 90', true],
    ['12345678', false],
  ]
  // Chains of digits (at most two separators between two digits) placed at every offset across
  // the SIMD steps (32 and 64 bytes), with the gaps on either side of a step's edge.
  const CHAINS: [string, boolean, number?][] = [
    ['123456789', true],
    ['12 34--56 78 9', true],
    ['1--2--3--4--5--6--7--8--9', true],
    ['1 2 3 4 5 6 7 8 9', true],
    ['12345---6789', false],
    ['1234 5678', false],
    ['1-2-3-4--5---6-7-8-9', false],
    ['(415) 555-2671', true],
    // A limit above what 64 bytes can hold (22 digits with two separators between each): the
    // count goes on across whole steps.
    [`${'1--'.repeat(29)}1`, true, 30],
    [`${'1--'.repeat(28)}1`, false, 30],
  ]
  it.each(CHAINS)('%s: the same at every offset, in C with every SIMD and in JavaScript', (chain, raised, limit = 9) => {
    const failures: string[] = []
    const modes = (['native', 'native-avx2', 'native-scalar'] as const).map((mode) => [mode, Prefilter.for(spec, mode)] as const)
    for (const fill of ['#', ' ']) {
      // The chain in the middle, and ending the value (nothing after its last step).
      for (let offset = 0; offset < 140; offset++) {
        for (const after of [150 - offset, 0]) {
          const text = Buffer.from(`${fill.repeat(offset)}${chain}${fill.repeat(after)}`)
          const expected = (reference.scan(text, 0, text.length, limit, DIGITS) & DIGITS) !== 0
          const where = `fill ${JSON.stringify(fill)}, offset ${offset}, ${after} after`
          if (expected !== raised) failures.push(`javascript, ${where}`)
          for (const [mode, prefilter] of modes) {
            const got = (prefilter.scanValue(text, 0, text.length, limit, DIGITS) & DIGITS) !== 0
            if (got !== expected) failures.push(`${mode}, ${where}`)
          }
        }
      }
    }
    expect(failures).toEqual([])
  })

  for (const [text, raised] of CASES) {
    it(`${raised ? 'raises' : 'leaves'} ${JSON.stringify(text)}`, () => {
      for (const prefilter of [reference, native]) {
        const padded = Buffer.from(`${text}${' '.repeat(60)}`)
        expect((prefilter.scan(Buffer.from(text), 0, text.length, 9, DIGITS) & DIGITS) !== 0).toBe(raised)
        expect((prefilter.scanValue(padded, 0, padded.length, 9, DIGITS) & DIGITS) !== 0).toBe(raised)
      }
    })
  }
})
