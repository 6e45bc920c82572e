/**
 * The credential canary, property style: random secrets, every encoding a query can produce,
 * random embeddings and random splits over the columns of a row. Recall must be 100%; text that
 * does not hold a secret must pass untouched.
 */
import { describe, expect, it } from 'vitest'
import { CANARY_LABEL, createMasker, FRAGMENT_MIN, type Masker } from '../../../../src/policy/masking/index.js'
import { stableBase64 } from '../../../../src/policy/masking/canary.js'
import { loadCorpus } from '../../../fixtures/masking/corpus.js'
import { type Random, randomSecret, seeded, words } from '../../../fixtures/masking/random.js'

const SECRETS_PER_PROPERTY = 300
const WINDOW = 8

/** A form of a secret as a client would receive it: `text` holds `part`, which must not survive. */
interface Form {
  name: string
  text: string
  part: string
  caseless: boolean
}

function asciiUpper(text: string): string {
  return text.replace(/[a-z]/g, (char) => char.toUpperCase())
}

function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (char) => char.toLowerCase())
}

/** PostgreSQL's `encode(x, 'base64')`: lines of 76 characters. */
function pgBase64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/(.{76})(?=.)/g, '$1\n')
}

function percentAll(bytes: Buffer, upper: boolean): string {
  const hex = [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')
  return upper ? hex.toUpperCase() : hex
}

/** PostgreSQL's bytea escape output (`encode(x, 'escape')`, `bytea_output = escape`). */
function byteaEscape(bytes: Buffer): string {
  return [...bytes].map((byte) => (byte === 0x5c ? '\\\\' : byte < 0x20 || byte > 0x7e ? `\\${byte.toString(8).padStart(3, '0')}` : String.fromCharCode(byte))).join('')
}

/** Every encoding of `secret` the canary covers, embedded in filler. */
function formsOf(secret: string, random: Random): Form[] {
  const bytes = Buffer.from(secret, 'utf8')
  const filler = (form: string): string => `${words(random, random.int(0, 4))} ${form} ${words(random, random.int(0, 4))}`
  const forms: Form[] = []
  const add = (name: string, form: string, caseless = false, text = filler(form)): void => {
    forms.push({ name, text, part: form, caseless })
  }
  add('raw', secret)
  add('upper', asciiUpper(secret), true)
  add('lower', asciiLower(secret), true)
  add('reversed', [...secret].reverse().join(''))
  if (/[^\x00-\x7f]/.test(secret)) {
    add('unicode-upper', secret.toUpperCase(), true)
    add('unicode-lower', secret.toLowerCase(), true)
  }
  add('bytea-escape', byteaEscape(bytes))
  add('hex', bytes.toString('hex'))
  add('HEX', bytes.toString('hex').toUpperCase())
  add('bytea', `\\x${bytes.toString('hex')}`)
  for (let offset = 0; offset < 3; offset++) {
    // Inside a longer value: `offset` bytes (plus whole groups) before it, random bytes after.
    const before = random.bytes(offset + 3 * random.int(0, 30))
    const blob = Buffer.concat([before, bytes, random.bytes(random.int(0, 40))])
    const stable = stableBase64(bytes, before.length % 3)
    add(`base64@${offset}`, stable, false, filler(pgBase64(blob)))
    add(`base64url@${offset}`, stable.replaceAll('+', '-').replaceAll('/', '_'), false, filler(blob.toString('base64url')))
  }
  add('encodeURIComponent', encodeURIComponent(secret))
  add('percent-all', percentAll(bytes, true), true)
  add('percent-all-lower', percentAll(bytes, false), true)
  add('form-urlencoded', new URLSearchParams({ v: secret }).toString().slice(2))
  add('json', JSON.stringify(secret).slice(1, -1), false, `{"id": 7, "pw": ${JSON.stringify(secret)}}`)
  const arrayElement = secret.replace(/[\\"]/g, '\\$&')
  add('array', arrayElement, false, `{"${arrayElement}",other}`)
  const recordField = secret.replace(/["\\]/g, '$&$&')
  add('record', recordField, false, `(42,"${recordField}",t)`)
  const literal = secret.replaceAll("'", "''")
  add('sql-literal', literal, false, `ERROR: syntax error at or near '${literal}'`)
  add('error-message', secret, false, `invalid input syntax for type integer: "${secret}"`)
  const characters = [...secret]
  if (bytes.length > FRAGMENT_MIN + 1) {
    const kept = characters.slice(0, random.int(Math.ceil(characters.length / 2), characters.length - 1)).join('')
    if (Buffer.byteLength(kept) > FRAGMENT_MIN) add('truncated', kept)
    const tail = characters.slice(random.int(1, characters.length - FRAGMENT_MIN)).join('')
    if (Buffer.byteLength(tail) >= FRAGMENT_MIN) add('substr', tail)
  }
  return forms
}

/** A DataRow body: Int16 count, then per value an Int32 length (-1 for NULL) and the bytes. */
function dataRowBody(values: readonly (Buffer | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([values.length >> 8, values.length & 0xff])]
  for (const value of values) {
    const length = Buffer.alloc(4)
    length.writeInt32BE(value === null ? -1 : value.length)
    parts.push(length)
    if (value !== null) parts.push(value)
  }
  return Buffer.concat(parts)
}

/** Windows of `part` still readable in `output` (line breaks ignored). */
function survivors(output: string, part: string, caseless: boolean): string[] {
  const normalize = (text: string): string => (caseless ? asciiLower(text) : text).replace(/\r?\n/g, '')
  const haystack = normalize(output)
  const needle = normalize(part)
  const size = Math.min(WINDOW, needle.length)
  const found: string[] = []
  for (let i = 0; i + size <= needle.length; i++) {
    const window = needle.slice(i, i + size)
    if (haystack.includes(window)) found.push(window)
  }
  return found
}

describe('the credential canary', () => {
  it('masks every encoded form of random secrets in random text (100% recall)', () => {
    const random = seeded(8)
    const failures: string[] = []
    let checked = 0
    for (let n = 0; n < SECRETS_PER_PROPERTY; n++) {
      const secret = randomSecret(random)
      const masker = createMasker({ detectors: [] }, { secrets: [secret, randomSecret(random)] })
      for (const form of formsOf(secret, random)) {
        checked++
        const output = masker.text(form.text) ?? form.text
        const left = survivors(output, form.part, form.caseless)
        if (left.length > 0) failures.push(`${form.name} of ${JSON.stringify(secret)}: ${JSON.stringify(output)}`)
      }
    }
    expect(checked).toBeGreaterThan(SECRETS_PER_PROPERTY * 20)
    expect(failures).toEqual([])
  })

  it('masks hex and base64 forms with a line break at any position (wrapped encodings)', () => {
    const random = seeded(13)
    const failures: string[] = []
    for (let n = 0; n < 40; n++) {
      const secret = randomSecret(random)
      const masker = createMasker({ detectors: [] }, { secrets: [secret] })
      const bytes = Buffer.from(secret, 'utf8')
      for (const offset of [0, 1, 2]) {
        const blob = Buffer.concat([random.bytes(offset), bytes, random.bytes(3)])
        for (const [encoded, part] of [
          [blob.toString('base64'), stableBase64(bytes, offset)],
          [bytes.toString('hex'), bytes.toString('hex')],
        ] as const) {
          for (let at = 1; at < encoded.length; at++) {
            const wrapped = `${encoded.slice(0, at)}\n${encoded.slice(at)}`
            const output = masker.text(wrapped) ?? wrapped
            if (survivors(output, part, false).length > 0) failures.push(`${JSON.stringify(wrapped)} → ${JSON.stringify(output)}`)
          }
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('masks a secret split over the columns of a row, NULLs and other columns between', () => {
    const random = seeded(9)
    const failures: string[] = []
    for (let n = 0; n < SECRETS_PER_PROPERTY; n++) {
      const secret = randomSecret(random)
      const masker = createMasker({ detectors: [] }, { secrets: [secret] })
      const bytes = Buffer.from(secret, 'utf8')
      for (const form of [secret, bytes.toString('hex'), bytes.toString('base64'), asciiUpper(secret)]) {
        const characters = [...form]
        const cuts = [random.int(1, characters.length - 1)]
        if (characters.length > 4 && random.next() < 0.5) cuts.push(random.int(1, characters.length - 1))
        cuts.sort((a, b) => a - b)
        const pieces = [0, ...cuts].map((start, i) => characters.slice(start, cuts[i] ?? characters.length).join('')).filter((piece) => piece !== '')
        const cells: (Buffer | null)[] = [Buffer.from(words(random, 2))]
        for (const piece of pieces) {
          cells.push(Buffer.from(piece, 'utf8'))
          if (random.next() < 0.3) cells.push(null)
        }
        cells.push(Buffer.from(String(random.int(1, 999))))
        const plan = masker.columns(cells.map((_, i) => ({ name: `c${i}`, typeOid: i === cells.length - 1 ? 23 : 25 })))
        const output = masker.row(cells, plan) ?? cells
        // The DataRow-body path sees the same row the same way.
        expect(masker.dataRow(dataRowBody(cells), plan) ?? cells).toEqual(output)
        const joined = output.filter((cell): cell is Buffer => cell !== null).map((cell) => cell.toString('utf8')).join('')
        const left = survivors(joined, form, form !== secret)
        if (left.length > 0) failures.push(`${JSON.stringify(pieces)}: ${JSON.stringify(joined)}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('masks a secret split at a separator it contains, as a client joining cells with it would show it', () => {
    const random = seeded(10)
    const failures: string[] = []
    for (let n = 0; n < SECRETS_PER_PROPERTY; n++) {
      const base = randomSecret(random).replace(/[,\t|; ]/g, 'x')
      const separator = random.pick([',', '\t', '|', ';', ' '])
      const at = random.int(1, [...base].length - 1)
      const characters = [...base]
      const secret = characters.slice(0, at).join('') + separator + characters.slice(at).join('')
      const masker = createMasker({ detectors: [] }, { secrets: [secret] })
      const cells = [Buffer.from(characters.slice(0, at).join('')), Buffer.from(characters.slice(at).join(''))]
      const plan = masker.columns([{ name: 'a', typeOid: 25 }, { name: 'b', typeOid: 25 }])
      const output = masker.row(cells, plan) ?? cells
      const shown = output.map((cell) => cell?.toString('utf8') ?? '').join(separator)
      if (survivors(shown, secret, false).length > 0 || shown.includes(secret)) failures.push(`${JSON.stringify(secret)}: ${JSON.stringify(shown)}`)
    }
    expect(failures).toEqual([])
  })

  it('masks a secret split between a text column and a number column (the number is nulled: a label is no int)', () => {
    const masker = createMasker({}, { secrets: ['Abcd73519'] })
    const plan = masker.columns([
      { name: 'left', typeOid: 25 },
      { name: 'right', typeOid: 23 },
    ])
    const output = masker.row([Buffer.from('Abcd'), Buffer.from('73519')], plan)
    expect(output?.map((cell) => cell?.toString() ?? null)).toEqual([CANARY_LABEL, null])
    expect(masker.takeCounts()).toMatchObject({ detectors: { canary: 2 }, nulled: 1 })
  })

  it('nulls a secret cast to bytea (hex), and masks it in a column alias', () => {
    const secret = 'Pg-Prod-Password-1'
    const masker = createMasker({}, { secrets: [secret] })
    const plan = masker.columns([{ name: 'b', typeOid: 17 }])
    expect(masker.row([Buffer.from(`\\x${Buffer.from(secret).toString('hex')}`)], plan)).toEqual([null])
    const aliased = masker.columns([{ name: secret, typeOid: 23 }])
    expect(aliased.fields?.[0]?.name).toBe(CANARY_LABEL)
  })

  it('masks the secret in a COPY text line, escaped as COPY writes it', () => {
    const secret = 'tab\there\\and"quote'
    const masker = createMasker({ detectors: [] }, { secrets: [secret] })
    const escaped = secret.replaceAll('\\', '\\\\').replaceAll('\t', '\\t')
    const line = masker.copy(Buffer.from(`1\t${escaped}\tx\n`), { format: 'text' })
    expect(line?.toString()).toBe(`1\t${CANARY_LABEL}\tx\n`)
  })

  it('leaves text without the secret untouched', () => {
    const random = seeded(11)
    const corpus = loadCorpus()
    const texts = [...corpus.lookAlikes.map((entry) => entry.text), ...corpus.mustMask.map((entry) => entry.text)]
    const changed: string[] = []
    for (let n = 0; n < 50; n++) {
      const masker = createMasker({ detectors: [] }, { secrets: [randomSecret(random), randomSecret(random)] })
      for (const text of [...texts, words(random, 30)]) if (masker.text(text) !== undefined) changed.push(text)
    }
    expect(changed).toEqual([])
  })

  it('masks a secret shorter than an anchor wherever it appears, exactly', () => {
    const masker: Masker = createMasker({ detectors: [] }, { secrets: ['x7'] })
    expect(masker.text('a x7 b X7 c')).toBe(`a ${CANARY_LABEL} b ${CANARY_LABEL} c`)
    expect(masker.text('nothing here')).toBeUndefined()
  })
})
