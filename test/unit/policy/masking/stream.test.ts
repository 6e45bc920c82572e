/**
 * The streaming masker: the same output for every chunking of the same bytes, findings masked
 * across chunk boundaries, and output held only while it could still become a finding.
 */
import { describe, expect, it } from 'vitest'
import { CANARY_LABEL, createMasker, type Masker } from '../../../../src/policy/masking/index.js'
import type { Canary } from '../../../../src/policy/masking/canary.js'
import { createMaskingStream } from '../../../../src/policy/masking/stream.js'
import { loadCorpus } from '../../../fixtures/masking/corpus.js'
import { seeded } from '../../../fixtures/masking/random.js'

const SECRET = 'Stream-Secret-Value-2024!'
const corpus = loadCorpus()

function run(masker: Masker, chunks: readonly Buffer[]): string {
  const stream = masker.stream()
  const out = chunks.map((chunk) => stream.write(chunk))
  out.push(stream.flush())
  return Buffer.concat(out).toString('utf8')
}

/** Command output samples: corpus values one per line, canary forms, multi-line blocks, prompts. */
function samples(): string[] {
  const secret = Buffer.from(SECRET)
  const base64 = Buffer.concat([Buffer.from('header:'), secret, Buffer.alloc(60, 7)]).toString('base64').replace(/(.{20})/g, '$1\n')
  const byDetector = (entries: readonly { text: string }[], kind: (entry: never) => string): string[] => {
    const groups = new Map<string, string[]>()
    for (const entry of entries) groups.set(kind(entry as never), [...(groups.get(kind(entry as never)) ?? []), entry.text])
    return [...groups.values()].map((texts) => texts.join('\n'))
  }
  return [
    ...byDetector(corpus.mustMask, (entry: { detector: string }) => entry.detector).map((text) => `${text}\n`),
    ...byDetector(corpus.lookAlikes, (entry: { like: string }) => entry.like),
    `$ echo $PGPASSWORD\n${SECRET}\n$ `,
    `export PW='${SECRET}' # done\n`,
    `${base64}\n`,
    `hex: ${secret.toString('hex')}\nreversed: ${[...SECRET].reverse().join('')}\n`,
    'Password: ',
    'user@host:~$ ls\nREADME.md  src\nuser@host:~$ ',
    'café 東京 😀 alice@example.com ok\n',
    'call +1 415 555 2671 or (415) 555-2672 now',
    'password: hunter2\nAuthorization: Bearer abcDEF123456ghiJKL789\n',
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  ]
}

describe('the masking stream', () => {
  const masker = createMasker({}, { secrets: [SECRET] })

  it('masks what the whole-value masker masks', () => {
    const out = run(masker, [Buffer.from(corpus.mustMask.map((entry) => entry.text).join('\n'))])
    for (const entry of corpus.mustMask) expect(out, entry.text).not.toContain(entry.secret)
    for (const sample of samples().slice(2)) expect(run(masker, [Buffer.from(sample)])).not.toContain(SECRET)
  })

  it('gives the same output for every split into two chunks', () => {
    for (const sample of samples()) {
      const bytes = Buffer.from(sample)
      const whole = run(masker, [bytes])
      for (let cut = 1; cut < bytes.length; cut++) {
        expect(run(masker, [bytes.subarray(0, cut), bytes.subarray(cut)]), `${JSON.stringify(sample.slice(0, 40))} cut at ${cut}`).toBe(whole)
      }
    }
  })

  it('gives the same output byte by byte and for random chunkings', () => {
    const random = seeded(12)
    for (const sample of samples()) {
      const bytes = Buffer.from(sample)
      const whole = run(masker, [bytes])
      expect(run(masker, [...bytes].map((byte) => Buffer.of(byte)))).toBe(whole)
      for (let n = 0; n < 20; n++) {
        const chunks: Buffer[] = []
        for (let at = 0; at < bytes.length; ) {
          const size = random.int(1, 64)
          chunks.push(bytes.subarray(at, at + size))
          at += size
        }
        expect(run(masker, chunks)).toBe(whole)
      }
    }
  })

  it('keeps the same output across chunkings with custom detectors (whole lines held)', () => {
    const custom = createMasker({ custom: [{ name: 'emp', pattern: 'EMP \\d{4} \\d{4}', strategy: 'redact' }] })
    const sample = Buffer.from('id EMP 1234 5678 done\nnext EMP 9999 0000')
    const whole = run(custom, [sample])
    expect(whole).toBe('id [EMP] done\nnext [EMP]')
    for (let cut = 1; cut < sample.length; cut++) expect(run(custom, [sample.subarray(0, cut), sample.subarray(cut)])).toBe(whole)
  })

  it('releases output that cannot become a finding at once, and holds what still could', () => {
    const stream = masker.stream()
    expect(stream.write(Buffer.from('user@host:~$ ')).toString()).toBe('user@host:~$ ')
    expect(stream.write(Buffer.from('total 12\n')).toString()).toBe('total 12\n')
    expect(stream.write(Buffer.from('mail bob@exam')).toString()).toBe('mail ')
    expect(stream.write(Buffer.from('ple.com sent\n')).toString()).toBe('[EMAIL] sent\n')
    expect(stream.write(Buffer.from('Password: ')).toString()).toBe('')
    expect(stream.flush().toString()).toBe('Password: ')
    expect(stream.write(Buffer.from(`${SECRET.slice(0, 10)}`)).toString()).toBe('')
    expect(stream.write(Buffer.from(`${SECRET.slice(10)} end\n`)).toString()).toBe(`${CANARY_LABEL} end\n`)
  })

  it('holds a private key block until its END line', () => {
    const stream = masker.stream()
    expect(stream.write(Buffer.from('before\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n')).toString()).toBe('before\n')
    expect(stream.write(Buffer.from('-----END PRIVATE KEY-----\nafter\n')).toString()).toBe('[PRIVATE-KEY]\nafter\n')
  })

  it('looks at a long word written a byte at a time a logarithmic number of times, not once per byte', () => {
    let looks = 0
    const stream = createMaskingStream({
      mask: () => undefined,
      findings: () => [],
      canary: { pendingFrom: (text: string) => (looks++, text.length) } as unknown as Canary,
      holdLines: false,
    })
    for (let i = 0; i < 60_000; i++) expect(stream.write(Buffer.from('a')).length).toBe(0)
    expect(looks).toBeLessThan(40)
    expect(stream.write(Buffer.from(' ')).toString()).toBe(`${'a'.repeat(60_000)} `)
  })

  it('releases held output past maxHeld, masked', () => {
    const stream = masker.stream({ maxHeld: 16 })
    expect(stream.write(Buffer.from('x'.repeat(20))).toString()).toBe('x'.repeat(20))
  })
})
