/** The masker's row, text and COPY surfaces: plans, strategies, fail-closed cases, counts, configuration. */
import { describe, expect, it } from 'vitest'
import { MASKING_DETECTORS } from '../../../../src/config/schema.js'
import type { MaskingConfig as SchemaMaskingConfig } from '../../../../src/config/schema.js'
import { AirlockError } from '../../../../src/errors.js'
import {
  CANARY_LABEL,
  type CopyFormat,
  createMasker,
  DETECTORS,
  HASH_HEX_DIGITS,
  HASH_PREFIX,
  keyedHash,
  type MaskingConfig,
  TEXT_OID,
} from '../../../../src/policy/masking/index.js'

const TEXT = 25
const INT4 = 23
const INT8 = 20
const TIMESTAMPTZ = 1184
const JSONB = 3802
const BYTEA = 17

const cells = (...values: (string | null)[]): (Buffer | null)[] => values.map((value) => (value === null ? null : Buffer.from(value)))
const strings = (values: readonly (Buffer | null)[] | undefined): (string | null)[] | undefined => values?.map((value) => value?.toString('utf8') ?? null)

function configError(make: () => unknown): string {
  try {
    make()
  } catch (error) {
    if (error instanceof AirlockError) return error.code
    throw error
  }
  throw new Error('expected an AirlockError')
}

describe('createMasker', () => {
  it('accepts the configuration schema as parsed, and knows the same detectors', () => {
    const parsed: SchemaMaskingConfig = { detectors: [...MASKING_DETECTORS], columns: [{ match: ['ssn'], strategy: 'redact', keep: 4 }], custom: [] }
    const config: MaskingConfig = parsed
    expect(createMasker(config)).toBeDefined()
    expect([...DETECTORS]).toEqual([...MASKING_DETECTORS])
  })

  it('refuses what it cannot honour, with code config', () => {
    expect(configError(() => createMasker({ columns: [{ match: ['x'], strategy: 'hash' }] }))).toBe('config')
    expect(configError(() => createMasker({ custom: [{ name: 'emp', pattern: 'EMP-\\d+', strategy: 'hash' }] }))).toBe('config')
    expect(configError(() => createMasker({ detectors: ['nope' as never] }))).toBe('config')
    expect(configError(() => createMasker({ custom: [{ name: 'bad', pattern: '(', strategy: 'redact' }] }))).toBe('config')
    expect(configError(() => createMasker({ custom: [{ name: 'email', pattern: 'x', strategy: 'redact' }] }))).toBe('config')
    expect(configError(() => createMasker({ custom: [{ name: 'canary', pattern: 'x', strategy: 'redact' }] }))).toBe('config')
  })
})

describe('rows', () => {
  const masker = createMasker({}, { secrets: ['S3cret-Upstream-Pw'] })
  const plan = masker.columns([
    { name: 'id', typeOid: INT4 },
    { name: 'note', typeOid: TEXT },
    { name: 'at', typeOid: TIMESTAMPTZ },
  ])

  it('returns undefined for a clean row (the fast path) and leaves the plan unchanged', () => {
    expect(plan.fields).toBeUndefined()
    expect(plan.ruled).toEqual([false, false, false])
    expect(masker.row(cells('42', 'nothing to see here', '2024-01-15 10:23:45+00'), plan)).toBeUndefined()
    expect(masker.row(cells(null, null, null), plan)).toBeUndefined()
    expect(masker.takeCounts()).toEqual({ total: 0, detectors: {}, columns: {}, nulled: 0 })
  })

  it('rewrites only the cells with findings and keeps the others as the same buffers', () => {
    const input = cells('42', 'mail alice@example.com now', '2024-01-15 10:23:45+00')
    const output = masker.row(input, plan)!
    expect(strings(output)).toEqual(['42', 'mail [EMAIL] now', '2024-01-15 10:23:45+00'])
    expect(output[0]).toBe(input[0])
    expect(output[2]).toBe(input[2])
    expect(input[1]!.toString()).toBe('mail alice@example.com now')
    expect(masker.takeCounts()).toEqual({ total: 1, detectors: { email: 1 }, columns: {}, nulled: 0 })
  })

  it('does not run the phone detectors on a timestamp, but finds a card in an int8 (and nulls it)', () => {
    const numbers = masker.columns([
      { name: 'card', typeOid: INT8 },
      { name: 'at', typeOid: TIMESTAMPTZ },
    ])
    expect(masker.row(cells('4111111111111111', '2024-01-15 10:23:45.123456+00'), numbers)).toEqual([null, Buffer.from('2024-01-15 10:23:45.123456+00')])
    expect(masker.takeCounts()).toMatchObject({ detectors: { 'credit-card': 1 }, nulled: 1 })
  })

  it('nulls a finding inside a binary-format value (fail closed)', () => {
    const binary = masker.columns([{ name: 'b', typeOid: TEXT, format: 1 }])
    expect(masker.row(cells('alice@example.com'), binary)).toEqual([null])
    expect(masker.takeCounts()).toMatchObject({ nulled: 1 })
  })

  it('keeps json valid: a label outside a string becomes a string', () => {
    const json = masker.columns([{ name: 'doc', typeOid: JSONB }])
    const output = strings(masker.row(cells('{"card": 4111111111111111, "mail": "x alice@example.com"}'), json))!
    expect(JSON.parse(output[0]!)).toEqual({ card: '[CREDIT-CARD]', mail: 'x [EMAIL]' })
  })

  it('masks a DataRow body in place: undefined when clean, the masked values otherwise', () => {
    const body = (values: (string | null)[]): Buffer => {
      const parts: Buffer[] = [Buffer.from([0, values.length])]
      for (const value of values) {
        const length = Buffer.alloc(4)
        length.writeInt32BE(value === null ? -1 : Buffer.byteLength(value))
        parts.push(length, value === null ? Buffer.alloc(0) : Buffer.from(value))
      }
      return Buffer.concat(parts)
    }
    expect(masker.dataRow(body(['42', 'nothing to see', null]), plan)).toBeUndefined()
    expect(strings(masker.dataRow(body(['42', 'mail alice@example.com', null]), plan))).toEqual(['42', 'mail [EMAIL]', null])
    // A secret split over two cells of the body.
    const two = masker.columns([
      { name: 'a', typeOid: TEXT },
      { name: 'b', typeOid: TEXT },
    ])
    expect(strings(masker.dataRow(body(['S3cret-Up', 'stream-Pw']), two))).toEqual([CANARY_LABEL, CANARY_LABEL])
    expect(() => masker.dataRow(body(['1', '2']), plan)).toThrow(AirlockError)
    expect(() => masker.dataRow(Buffer.from([0, 1, 0, 0, 0, 9, 0x61]), masker.columns([{ name: 'a', typeOid: TEXT }]))).toThrow(AirlockError)
    masker.takeCounts()
  })

  it('refuses a row that does not fit its plan, and a plan from another masker', () => {
    expect(() => masker.row(cells('1'), plan)).toThrow(AirlockError)
    const other = createMasker({})
    expect(() => other.row(cells('1', '2', '3'), plan)).toThrow(AirlockError)
  })
})

describe('column rules', () => {
  const masker = createMasker(
    {
      columns: [
        { match: ['ssn', 'password*'], strategy: 'redact' },
        { match: ['card_?'], strategy: 'partial', keep: 4 },
        { match: ['*_email'], strategy: 'hash' },
        { match: ['secret'], strategy: 'null' },
      ],
    },
    { hashKey: 'gateway-hash-key' },
  )

  it('match names case-insensitively by glob, and turn ruled columns into text', () => {
    const plan = masker.columns([
      { name: 'id', typeOid: INT4, tableOid: 1, columnAttr: 1, typeSize: 4, typeModifier: -1, format: 0 },
      { name: 'SSN', typeOid: INT8, tableOid: 1, columnAttr: 2, typeSize: 8, typeModifier: -1, format: 0 },
      { name: 'Password_Hash', typeOid: TEXT, tableOid: 1, columnAttr: 3, typeSize: -1, typeModifier: -1, format: 0 },
      { name: 'card_1', typeOid: TEXT, tableOid: 1, columnAttr: 4, typeSize: -1, typeModifier: -1, format: 0 },
      { name: 'card_10', typeOid: TEXT, tableOid: 1, columnAttr: 5, typeSize: -1, typeModifier: -1, format: 0 },
    ])
    expect(plan.ruled).toEqual([false, true, true, true, false])
    expect(plan.fields?.[1]).toEqual({ name: 'SSN', typeOid: TEXT_OID, tableOid: 1, columnAttr: 2, typeSize: -1, typeModifier: -1, format: 0 })
    expect(plan.fields?.[0]).toEqual({ name: 'id', typeOid: INT4, tableOid: 1, columnAttr: 1, typeSize: 4, typeModifier: -1, format: 0 })
  })

  it('apply each strategy to the whole value', () => {
    const plan = masker.columns([
      { name: 'ssn', typeOid: TEXT },
      { name: 'card_x', typeOid: TEXT },
      { name: 'work_email', typeOid: TEXT },
      { name: 'secret', typeOid: TEXT },
      { name: 'plain', typeOid: TEXT },
    ])
    const output = strings(masker.row(cells('078-05-1120', '4111111111111111', 'Bob@Example.com', 'x', 'ok'), plan))
    expect(output).toEqual(['[REDACTED]', '************1111', keyedHash(Buffer.from('gateway-hash-key'), Buffer.from('Bob@Example.com')), null, 'ok'])
    expect(masker.row(cells(null, null, null, null, null), plan)).toBeUndefined()
    expect(masker.takeCounts()).toEqual({ total: 4, detectors: {}, columns: { ssn: 1, card_x: 1, work_email: 1, secret: 1 }, nulled: 0 })
  })

  it('partial never shows more than half of a short value', () => {
    const plan = masker.columns([{ name: 'card_1', typeOid: TEXT }])
    expect(strings(masker.row(cells('1234'), plan))).toEqual(['**34'])
    expect(strings(masker.row(cells('ab'), plan))).toEqual(['*b'])
    expect(strings(masker.row(cells('é東京😀x'), plan))).toEqual(['***😀x'])
  })

  it('hash is keyed, fixed-length and the same on every gateway with the key', () => {
    const other = createMasker({ columns: [{ match: ['*_email'], strategy: 'hash' }] }, { hashKey: Buffer.from('gateway-hash-key') })
    const differentKey = createMasker({ columns: [{ match: ['*_email'], strategy: 'hash' }] }, { hashKey: 'another-key' })
    const plan = (m: typeof masker) => m.columns([{ name: 'a_email', typeOid: TEXT }])
    const one = strings(masker.row(cells('bob@example.com'), plan(masker)))![0]!
    expect(strings(other.row(cells('bob@example.com'), plan(other)))![0]).toBe(one)
    expect(strings(differentKey.row(cells('bob@example.com'), plan(differentKey)))![0]).not.toBe(one)
    expect(one).toMatch(new RegExp(`^${HASH_PREFIX}[0-9a-f]{${HASH_HEX_DIGITS}}$`))
    expect(strings(masker.row(cells('a much longer value than the other one, still the same length'), plan(masker)))![0]).toHaveLength(one.length)
  })

  it('never show the end of the connection credential through partial', () => {
    const withSecret = createMasker({ columns: [{ match: ['note'], strategy: 'partial', keep: 4 }] }, { secrets: ['Upstream-Pw-2024'] })
    const plan = withSecret.columns([{ name: 'note', typeOid: TEXT }])
    expect(strings(withSecret.row(cells('Upstream-Pw-2024'), plan))).toEqual([CANARY_LABEL])
    expect(strings(withSecret.row(cells('ordinary text'), plan))).toEqual(['*********text'])
  })

  it('null a ruled value that arrives in binary format', () => {
    const plan = masker.columns([{ name: 'ssn', typeOid: INT8, format: 1 }])
    expect(masker.row([Buffer.alloc(8, 1)], plan)).toEqual([null])
    expect(masker.takeCounts()).toMatchObject({ columns: { ssn: 1 }, nulled: 1 })
  })
})

describe('secret assignments', () => {
  const masker = createMasker({ detectors: ['secret-assignment'] })
  const names = [
    'password', 'passwd', 'passphrase', 'pwd', 'secret', 'token', 'api_key', 'api-key', 'apikey', 'access_key', 'access-key',
    'accesskey', 'private_key', 'private-key', 'privatekey', 'secret_key', 'signing_key', 'encryption-key', 'masterkey',
    'credential', 'credentials', 'DB_PASSWORD', 'client_secret', 'X-Api-Key', 'github_token', 'AWS_SESSION_TOKEN',
  ]

  it('find the value after every credential word, in every assignment style (the prefilter knows each)', () => {
    const missed: string[] = []
    for (const name of names) {
      for (const text of [`${name}=Value1234`, `${name}: Value1234`, `"${name}": "Value1234"`, `${name} => 'Value1234'`, `${name.toUpperCase()} = Value1234`]) {
        const masked = masker.text(`x ${text} y`)
        if (masked === undefined || masked.includes('Value1234')) missed.push(text)
      }
    }
    expect(missed).toEqual([])
  })
})

describe('custom detectors', () => {
  const masker = createMasker(
    {
      detectors: [],
      custom: [
        { name: 'employee', pattern: 'EMP-\\d{6}', strategy: 'redact' },
        { name: 'ticket', pattern: '[A-Z]{3,5}-\\d+', strategy: 'hash' },
        { name: 'vault', pattern: 'vault:v1:[A-Za-z0-9+/=]+', strategy: 'null' },
      ],
    },
    { hashKey: 'k' },
  )

  it('rewrite matches with their strategy, with byte offsets right around non-ASCII text', () => {
    expect(masker.text('Zoë EMP-123456 東京')).toBe('Zoë [EMPLOYEE] 東京')
    expect(masker.text('see OPS-42')).toBe(`see ${keyedHash(Buffer.from('k'), Buffer.from('OPS-42'))}`)
    const plan = masker.columns([{ name: 'c', typeOid: TEXT }])
    expect(masker.row(cells('token vault:v1:abcd=='), plan)).toEqual([null])
    // Where a value cannot be null (an error message), `null` writes the label.
    expect(masker.text('token vault:v1:abcd==')).toBe('token [VAULT]')
  })
})

describe('text channels', () => {
  const masker = createMasker({}, { secrets: ['Upstream-Pw-77'] })

  it('masks error and notice fields but severity, SQLSTATE, positions and source location', () => {
    const S = 'S'.charCodeAt(0)
    const C = 'C'.charCodeAt(0)
    const M = 'M'.charCodeAt(0)
    const D = 'D'.charCodeAt(0)
    const P = 'P'.charCodeAt(0)
    const fields: [number, string][] = [
      [S, 'ERROR'],
      [C, '22P02'],
      [M, 'invalid input syntax for type integer: "Upstream-Pw-77"'],
      [D, 'Key (email)=(alice@example.com) already exists.'],
      [P, '8'],
    ]
    expect(masker.errorFields(fields)).toEqual([
      [S, 'ERROR'],
      [C, '22P02'],
      [M, `invalid input syntax for type integer: "${CANARY_LABEL}"`],
      [D, 'Key (email)=([EMAIL]) already exists.'],
      [P, '8'],
    ])
    expect(fields[2]![1]).toContain('Upstream-Pw-77')
    expect(masker.errorFields([[M, 'relation "orders" does not exist']])).toBeUndefined()
  })

  it('masks notification payloads, parameter values and column names', () => {
    expect(masker.text('Upstream-Pw-77')).toBe(CANARY_LABEL)
    expect(masker.text('airlock/alice/42')).toBeUndefined()
    expect(masker.columns([{ name: 'alice@example.com', typeOid: INT4 }]).fields?.[0]?.name).toBe('[EMAIL]')
  })
})

describe('COPY lines', () => {
  const masker = createMasker({ columns: [{ match: ['ssn'], strategy: 'redact' }] })

  it('text: unescapes before detecting and escapes after; NULL and unchanged fields stay as sent', () => {
    expect(masker.copy(Buffer.from('1\tclean\t\\N\n'), { format: 'text' })).toBeUndefined()
    const line = masker.copy(Buffer.from('1\tx\\tal\\\\ice@example.com\\n\t\\N\tkeep\\\\this\n'), { format: 'text' })
    expect(line?.toString()).toBe('1\tx\\tal\\\\[EMAIL]\\n\t\\N\tkeep\\\\this\n')
  })

  it('text: an escape cannot hide a value (octal, hex, escaped delimiter)', () => {
    expect(masker.copy(Buffer.from('bob\\100example.com\n'), { format: 'text' })?.toString()).toBe('[EMAIL]\n')
    expect(masker.copy(Buffer.from('bob\\x40example.com\n'), { format: 'text' })?.toString()).toBe('[EMAIL]\n')
    expect(masker.copy(Buffer.from('a;bob@example.com\\;x\n'), { format: 'text', delimiter: ';' })?.toString()).toBe('a;[EMAIL]\\;x\n')
  })

  it('csv: quotes, doubled quotes, NULL versus empty string, another delimiter', () => {
    expect(masker.copy(Buffer.from('1,"a ""q"" bob@example.com",,""\n'), { format: 'csv' })?.toString()).toBe('1,"a ""q"" [EMAIL]",,""\n')
    expect(masker.copy(Buffer.from('1;bob@example.com;x\n'), { format: 'csv', delimiter: ';' })?.toString()).toBe('1;"[EMAIL]";x\n')
    expect(masker.copy(Buffer.from('"multi\nline bob@example.com"\n'), { format: 'csv' })?.toString()).toBe('"multi\nline [EMAIL]"\n')
    expect(masker.copy(Buffer.from('1,2,3\n'), { format: 'csv' })).toBeUndefined()
  })

  it('csv: a malformed line is masked as one text, in place', () => {
    expect(masker.copy(Buffer.from('1,"unterminated bob@example.com\n'), { format: 'csv' })?.toString()).toBe('1,"unterminated [EMAIL]\n')
  })

  it.each<[string, string, CopyFormat]>([
    ['text, one field changed among kept ones', '1\tx\tbob@example.com\tkeep\n', { format: 'text' }],
    ['text, the first and the last changed', 'bob@example.com\t2\tcarol@example.com\n', { format: 'text' }],
    ['text, escaped', '1\tx\\tal\\\\ice@example.com\\n\t\\N\n', { format: 'text' }],
    ['text, no newline at the end', 'a\tbob@example.com', { format: 'text' }],
    ['csv, quoted with CRLF', '1,"a ""q"" bob@example.com",,""\r\n', { format: 'csv' }],
    ['csv, malformed', '1,"unterminated bob@example.com\n', { format: 'csv' }],
  ])('with headroom, writes the same line after that many bytes (%s)', (_case, text, format) => {
    const plain = masker.copy(Buffer.from(text), format)
    const roomy = masker.copy(Buffer.from(text), format, undefined, undefined, 5)
    expect(plain).toBeDefined()
    expect(roomy?.length).toBe(plain!.length + 5)
    expect(roomy?.subarray(5).toString()).toBe(plain!.toString())
  })

  it('applies column rules when the columns are named, and redacts every field when they do not line up', () => {
    const plan = masker.columns([
      { name: 'id', typeOid: 0 },
      { name: 'ssn', typeOid: 0 },
    ])
    expect(masker.copy(Buffer.from('1\t078-05-1120\n'), { format: 'text' }, plan)?.toString()).toBe('1\t[REDACTED]\n')
    expect(masker.copy(Buffer.from('1\t2\t3\n'), { format: 'text' }, plan)?.toString()).toBe('[REDACTED]\t[REDACTED]\t[REDACTED]\n')
  })

  it('nulls a ruled field with the null strategy as COPY spells NULL', () => {
    const nulling = createMasker({ columns: [{ match: ['x'], strategy: 'null' }] })
    const plan = nulling.columns([{ name: 'x', typeOid: 0 }, { name: 'y', typeOid: 0 }])
    expect(nulling.copy(Buffer.from('a\tb\n'), { format: 'text' }, plan)?.toString()).toBe('\\N\tb\n')
    expect(nulling.copy(Buffer.from('a,b\n'), { format: 'csv' }, plan)?.toString()).toBe(',b\n')
  })
})

describe('bytea and opaque types', () => {
  it('leave bytea to the canary: an address inside its hex is not decoded', () => {
    const masker = createMasker({})
    const plan = masker.columns([{ name: 'b', typeOid: BYTEA }])
    expect(masker.row(cells('\\x616c696365406578616d706c652e636f6d'), plan)).toBeUndefined()
  })
})

describe('COPY lines with nothing to unescape (read in place)', () => {
  const SECRET = 'Zq7-w1n9-Kp3x-Lr8v-Tt2m-Hy6c'
  const lines: [string, string, { format: 'text' | 'csv'; delimiter?: string; null?: string }][] = [
    ['text, clean', '1\tclean value\t42\n', { format: 'text' }],
    ['csv, clean', '1,clean value,,42\r\n', { format: 'csv' }],
    ['text, a secret whole', `1\t${SECRET}\n`, { format: 'text' }],
    ['text, a secret split over three fields without a separator', `${SECRET.slice(0, 9)}\t${SECRET.slice(9, 18)}\t${SECRET.slice(18)}\n`, { format: 'text' }],
    ['csv, a secret split over two fields around a NULL', `${SECRET.slice(0, 10)},,${SECRET.slice(10)}\n`, { format: 'csv' }],
    ['csv with a custom NULL spelling', `${SECRET.slice(0, 10)};x;${SECRET.slice(10)}\n`, { format: 'csv', delimiter: ';', null: 'x' }],
    ['text, an address', '7\tmail bob@example.com\n', { format: 'text' }],
    ['csv, a card number', '7,4111 1111 1111 1111\n', { format: 'csv' }],
  ]

  it.each(lines)('%s: the same result as parsing the line', (_name, text, format) => {
    const fast = createMasker({}, { secrets: [SECRET] })
    const parsed = createMasker({}, { secrets: [SECRET] })
    const line = Buffer.from(text)
    // A plan forces the parsing path; an anonymous plan of the same width masks the same way.
    const width = copyWidth(line, format)
    const plan = parsed.columns(Array.from({ length: width }, (_, index) => ({ name: `c${index}`, typeOid: 0 })))
    expect(fast.copy(line, format)?.toString()).toBe(parsed.copy(line, format, plan)?.toString())
    expect(fast.takeCounts()).toEqual(parsed.takeCounts())
  })

  it('a clean line is returned as undefined, a secret split over fields is masked in every piece', () => {
    const masking = createMasker({}, { secrets: [SECRET] })
    expect(masking.copy(Buffer.from('1\tclean value\t42\n'), { format: 'text' })).toBeUndefined()
    const split = masking.copy(Buffer.from(`${SECRET.slice(0, 9)}\t${SECRET.slice(9, 18)}\t${SECRET.slice(18)}\n`), { format: 'text' })
    expect(split?.toString()).toBe(`${CANARY_LABEL}\t${CANARY_LABEL}\t${CANARY_LABEL}\n`)
  })
})

/** The number of fields of a line without quotes or escapes, for a plan of the right width. */
function copyWidth(line: Buffer, format: { format: 'text' | 'csv'; delimiter?: string }): number {
  return line.toString().replace(/\r?\n$/, '').split(format.delimiter ?? (format.format === 'csv' ? ',' : '\t')).length
}

describe('column plans', () => {
  const secret = 'S3cret-Upstream-Pw'
  const masker = createMasker({ columns: [{ match: ['ssn'], strategy: 'redact' }] }, { secrets: [secret] })

  it('reuses the plan of a description seen before, and tells apart names, types and formats', () => {
    const first = masker.columns([{ name: 'id', typeOid: INT4 }, { name: 'note', typeOid: TEXT }])
    expect(masker.columns([{ name: 'id', typeOid: INT4 }, { name: 'note', typeOid: TEXT, format: 0 }])).toBe(first)
    for (const other of [
      [{ name: 'id', typeOid: INT8 }, { name: 'note', typeOid: TEXT }],
      [{ name: 'id', typeOid: INT4 }, { name: 'note', typeOid: TEXT, format: 1 }],
      [{ name: 'id', typeOid: INT4 }, { name: 'notes', typeOid: TEXT }],
      [{ name: 'id', typeOid: INT4 }],
      // Separators inside a name do not make two descriptions one.
      [{ name: `id/23/0/4:note`, typeOid: TEXT }],
      [{ name: `id\u000023\u00000\u0000note`, typeOid: TEXT }],
    ]) {
      expect(masker.columns(other)).not.toBe(first)
    }
    // A number column keeps its number profile after reuse: a digit run in it is no phone number.
    expect(masker.row(cells('415555267112', 'x'), first)).toBeUndefined()
  })

  it('builds a rewritten description every time: a masked name is counted, a ruled column retyped, for each result', () => {
    for (let i = 0; i < 2; i++) {
      const named = masker.columns([{ name: secret, typeOid: TEXT }])
      expect(named.fields?.[0]?.name).toBe(CANARY_LABEL)
      const ruled = masker.columns([{ name: 'ssn', typeOid: INT8 }])
      expect(ruled.fields?.[0]?.typeOid).toBe(TEXT_OID)
      expect(masker.takeCounts().detectors).toEqual({ canary: 1 })
    }
  })
})
