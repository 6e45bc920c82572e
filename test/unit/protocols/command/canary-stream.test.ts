import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CanaryAutomaton, canaryForms } from '../../../../src/protocols/command/canary.js'
import { CANARY_MARKER, createCanaryStream } from '../../../../src/protocols/command/canary-stream.js'
import { chainMaskers, type OutputMasker } from '../../../../src/protocols/command/masker.js'
import { findLeaks, render } from '../../../helpers/pty-leaks.js'

const SECRET = 'sk_live_Q7f/x+9Z=pLmN2rT8vWq'
const automaton = new CanaryAutomaton(canaryForms(SECRET))

function run(masker: OutputMasker, chunks: readonly Buffer[]): { out: Buffer; perChunk: Buffer[] } {
  const perChunk = chunks.map((chunk) => masker.write(chunk))
  const out = Buffer.concat([...perChunk, masker.flush()])
  return { out, perChunk }
}
const each = (text: string, sep: (char: string, index: number) => string): string => [...text].map((char, index) => char + sep(char, index)).join('')
const wrap = (text: string, width: number, eol = '\n'): string => text.replace(new RegExp(`(.{${width}})`, 'g'), `$1${eol}`)
const b64 = (prefix: string): string => Buffer.from(`${prefix}${SECRET}\n`).toString('base64')

/** Ways a program can print the value; every one must come out masked, however it is chunked. */
const ATTACKS: [name: string, output: string][] = [
  ['env', `HOME=/home/x\r\nAPI_TOKEN=${SECRET}\r\nLANG=C.UTF-8\r\n`],
  ['/proc/self/environ (NUL-separated)', `HOME=/home/x\0API_TOKEN=${SECRET}\0LANG=C\0`],
  ['SGR after every character', each(SECRET, () => '\x1b[1m')],
  ['cursor save/restore and private modes between characters', each(SECRET, (_, i) => (i % 2 ? '\x1b7\x1b8' : '\x1b[?25l'))],
  ['a window title between characters', each(SECRET, () => '\x1b]0;title\x07')],
  ['a string terminated by ESC \\ between characters', each(SECRET, () => '\x1bP+q\x1b\\')],
  ['NUL, BEL and DEL between characters', each(SECRET, (_, i) => ['\0', '\x07', '\x7f'][i % 3]!)],
  ['bold overstrike (c BS c)', [...SECRET].map((char) => `${char}\b${char}`).join('')],
  ['underline overstrike (_ BS c)', [...SECRET].map((char) => `_\b${char}`).join('')],
  ['junk overstrike (x BS c)', [...SECRET].map((char) => `x\b${char}`).join('')],
  ['base64, value at offset 0', b64('')],
  ['base64, value at offset 1', b64('A')],
  ['base64, value at offset 2', b64('AB')],
  ['base64 wrapped at 76 columns (env | base64)', wrap(Buffer.from(`PATH=/usr/bin\nX=${SECRET}\nY=1\n`).toString('base64'), 76)],
  ['base64url', Buffer.from(`xy${SECRET}`).toString('base64url')],
  ['hex wrapped at 60 columns (xxd -p)', wrap(Buffer.from(`${SECRET}\n`).toString('hex'), 60)],
  ['upper-case hex wrapped at 32 columns with CRLF', wrap(Buffer.from(`z${SECRET}`).toString('hex').toUpperCase(), 32, '\r\n')],
  ['base64 wrapped at 64 columns with CRLF (openssl base64 in a pty)', wrap(Buffer.from(`LONGER_PREFIX=${SECRET}\n`.repeat(2)).toString('base64'), 64, '\r\n')],
  ['percent-encoded', `url=https://x/?t=${encodeURIComponent(SECRET)}&a=1`],
  ['reversed', `${[...SECRET].reverse().join('')}\n`],
  ['an OSC 52 clipboard write', `\x1b]52;c;${Buffer.from(SECRET).toString('base64')}\x07`],
  ['the raw value in a window title', `\x1b]2;${SECRET}\x1b\\`],
  ['twice in a row, then more output', `${SECRET}${SECRET} done\n`],
  ['hard-wrapped by the program at 20 columns (fold -w 20)', wrap(`token ${SECRET} ok`, 20)],
  ['hard-wrapped at 16 columns in a pty (more)', wrap(`key=${SECRET} end`, 16, '\r\n')],
]

describe('canary stream: every attack masked at every chunking', () => {
  for (const [name, output] of ATTACKS) {
    it(name, () => {
      const bytes = Buffer.from(output, 'latin1')
      const chunkings: Buffer[][] = [[bytes], [...bytes].map((byte) => Buffer.from([byte]))]
      for (let cut = 1; cut < bytes.length; cut++) chunkings.push([bytes.subarray(0, cut), bytes.subarray(cut)])
      for (const chunks of chunkings) {
        const { out } = run(createCanaryStream(automaton), chunks)
        expect(findLeaks(out, [SECRET]), `${chunks.length} chunks: ${JSON.stringify(out.toString('latin1'))}`).toEqual([])
        expect(out.toString('latin1')).toContain(CANARY_MARKER)
      }
    })
  }
})

describe('canary stream: ordinary output', () => {
  const TRANSCRIPT = [
    '\x1b[?2004hshell$ ',
    'ls -la\r\n',
    '\x1b[?2004l\rtotal 8\r\ndrwxr-xr-x 2 root root 4096 Jan  1 00:00 \x1b[01;34m.\x1b[0m  \r\n',
    '-rw-r--r-- 1 root root   13 Jan  1 00:00 notes.txt  \r\n',
    '\x1b[?2004hshell$ ',
  ]

  it('passes through unchanged and at once when no tail can start a canary form', () => {
    const masker = createCanaryStream(automaton)
    for (const chunk of TRANSCRIPT) {
      const bytes = Buffer.from(chunk)
      // A prompt ends in "$ ", no form starts with a space: nothing is held.
      expect(masker.write(bytes).toString()).toBe(chunk)
    }
    expect(masker.flush().length).toBe(0)
  })

  it('comes out identical however it is chunked', () => {
    const text = Buffer.from(TRANSCRIPT.join('') + `API_TOKEN=${SECRET}\r\n` + TRANSCRIPT.join(''))
    const whole = run(createCanaryStream(automaton), [text]).out
    for (let cut = 1; cut < text.length; cut++) {
      expect(run(createCanaryStream(automaton), [text.subarray(0, cut), text.subarray(cut)]).out.equals(whole)).toBe(true)
    }
    expect(whole.toString()).toBe(TRANSCRIPT.join('') + `API_TOKEN=${CANARY_MARKER}\r\n` + TRANSCRIPT.join(''))
  })

  it('holds a tail only while it could still become a canary form, and releases it as soon as it cannot', () => {
    const masker = createCanaryStream(automaton)
    expect(masker.write(Buffer.from(`token: ${SECRET.slice(0, 12)}`)).toString()).toBe('token: ')
    expect(masker.stats.held).toBe(12)
    // Held however long the pause: no timer releases it.
    expect(masker.write(Buffer.from(SECRET.slice(12, 20))).toString()).toBe('')
    expect(masker.write(Buffer.from('!! no'))).toEqual(Buffer.from(`${SECRET.slice(0, 20)}!! no`))
    expect(masker.stats.held).toBe(0)
  })

  it('releases a line at its line break even when its last characters could start a canary form', () => {
    // Regression: `echo started; sleep 30` showed "starte" for 30 s when a form began with "d".
    const masker = createCanaryStream(automaton)
    const prefix = SECRET.slice(0, 3)
    expect(masker.write(Buffer.from(`echo ${prefix}`)).toString()).toBe('echo ')
    expect(masker.write(Buffer.from('\r\n')).toString()).toBe(`${prefix}\r\n`)
  })

  it('follows a wrapped encoding across its line breaks', () => {
    const masker = createCanaryStream(automaton)
    const lines = wrap(Buffer.from(`xy${SECRET}`).toString('hex'), 40)
    const out = run(masker, lines.split('\n').map((line, index, all) => Buffer.from(index < all.length - 1 ? `${line}\n` : line))).out.toString()
    expect(out).toContain(CANARY_MARKER)
    expect(findLeaks(out, [SECRET])).toEqual([])
  })

  it('masks a value printed one character at a time, and releases nothing of it', () => {
    const masker = createCanaryStream(automaton)
    const released = [...SECRET].map((char) => masker.write(Buffer.from(char)).toString())
    expect(released.slice(0, -1).join('')).toBe('')
    expect(released.at(-1)).toBe(CANARY_MARKER)
  })

  it('releases held output that only echoes what the user typed', () => {
    const masker = createCanaryStream(automaton)
    expect(masker.write(Buffer.from('$ s')).toString()).toBe('$ ')
    masker.noteInput!(Buffer.from('sk'))
    expect(masker.write(Buffer.from('k')).toString()).toBe('sk')
    // The automaton kept its state: a value completed by output is still masked from there on.
    expect(masker.write(Buffer.from(SECRET.slice(2))).toString()).toBe(CANARY_MARKER)
  })

  it('releases a held prefix at the end of the stream', () => {
    const masker = createCanaryStream(automaton)
    expect(masker.write(Buffer.from(SECRET.slice(0, 6))).length).toBe(0)
    expect(masker.flush().toString()).toBe(SECRET.slice(0, 6))
  })

  it('bounds what it holds: past maxHeld it releases, masking the partial value it held, and masks the rest when it completes', () => {
    const masker = createCanaryStream(automaton, { maxHeld: 1024 })
    const noise = '\x1b[0m'.repeat(1000)
    const out = run(masker, [Buffer.from(SECRET.slice(0, 4)), Buffer.from(noise), Buffer.from(SECRET.slice(4))]).out.toString()
    expect(masker.stats.forcedReleases).toBe(1)
    expect(out).toBe(`${CANARY_MARKER}${noise}${CANARY_MARKER}`)
    expect(findLeaks(out, [SECRET])).toEqual([])
  })

  it('masks a value printed one character at a time with more than 64 KiB of escape sequences after each character', () => {
    // Regression: each forced release let the held character out, so all but the last one leaked.
    const padding = '\x1b[0m'.repeat(17_000)
    for (const chunked of [false, true]) {
      const masker = createCanaryStream(automaton)
      const chunks = [...SECRET].flatMap((char) => (chunked ? [Buffer.from(char), Buffer.from(padding)] : [Buffer.from(char + padding)]))
      const out = run(masker, [...chunks, Buffer.from('\r\n')]).out.toString('latin1')
      expect(masker.stats.forcedReleases).toBeGreaterThan(0)
      expect(render(out).replaceAll(CANARY_MARKER, '')).toBe('\r\n')
      expect(findLeaks(out, [SECRET])).toEqual([])
      // Memory stays bounded: never much more than the limit is held.
      expect(masker.stats.held).toBe(0)
    }
  })

  it('masks the longer value when one secret is a prefix of another', () => {
    const both = new CanaryAutomaton([...canaryForms('abcdefgh'), ...canaryForms('abcdefgh-ijklmn')])
    const out = run(createCanaryStream(both), [...'x abcdefgh-ijklmn y'].map((char) => Buffer.from(char))).out.toString()
    expect(out).toMatch(/^x (\[CREDENTIAL\])+ y$/)
    expect(run(createCanaryStream(both), [Buffer.from('x abcdefgh-ijklmn y')]).out.toString()).toBe(`x ${CANARY_MARKER} y`)
    expect(run(createCanaryStream(both), [Buffer.from('x abcdefgh y')]).out.toString()).toBe(`x ${CANARY_MARKER} y`)
  })
})

describe('chainMaskers', () => {
  /** Holds everything until a line break, releases on a pause (a detector holding a prompt line). */
  function lineHolder(): OutputMasker {
    let held = ''
    const take = (): Buffer => {
      const out = Buffer.from(held)
      held = ''
      return out
    }
    return {
      write(chunk) {
        held += chunk.toString()
        const end = held.lastIndexOf('\n') + 1
        const out = Buffer.from(held.slice(0, end))
        held = held.slice(end)
        return out
      },
      flush: take,
      idle: take,
    }
  }

  it('releases on a pause only what later stages hold, never what the canary holds', () => {
    const chained = chainMaskers([createCanaryStream(automaton), lineHolder()])
    expect(chained.write(Buffer.from('Password: ')).toString()).toBe('')
    expect(chained.idle!().toString()).toBe('Password: ')
    expect(chained.write(Buffer.from(SECRET.slice(0, 8))).toString()).toBe('')
    expect(chained.idle!().toString()).toBe('')
    expect(chained.write(Buffer.from(`${SECRET.slice(8)}\n`)).toString()).toBe(`${CANARY_MARKER}\n`)
    expect(chainMaskers([createCanaryStream(automaton), createCanaryStream(automaton)]).idle).toBeUndefined()
  })

  it('feeds each stage into the next, on write and on flush', () => {
    const upper: OutputMasker = { write: (chunk) => Buffer.from(chunk.toString().toUpperCase()), flush: () => Buffer.alloc(0) }
    const chained = chainMaskers([createCanaryStream(automaton), upper])
    expect(chained.write(Buffer.from(`a ${SECRET.slice(0, 5)}`)).toString()).toBe('A ')
    expect(chained.flush().toString()).toBe(SECRET.slice(0, 5).toUpperCase())
  })
})

describe('canary stream: a shell quoting the value, a value of several lines', () => {
  // A key file's shape, made up on the spot: random base64 lines between the armour lines (split so
  // that secret scanners do not take this file for one holding a key).
  const armour = (edge: string): string => `-----${edge} ${'PRIVATE'} KEY-----`
  const pem = [armour('BEGIN'), randomBytes(48).toString('base64'), randomBytes(48).toString('base64'), armour('END')].join('\n')
  const cases: [name: string, secret: string, printed: string][] = [
    ['declare -p: $, `, " and \\ escaped', 'Sup3r$ecret"Pa`ss\\w0rd', 'declare -x TOKEN="Sup3r\\$ecret\\"Pa\\`ss\\\\w0rd"\r\n'],
    ['a key file printed in a pty (each LF as CRLF)', pem, `${pem.replaceAll('\n', '\r\n')}\r\n`],
  ]
  for (const [name, secret, printed] of cases) {
    it(name, () => {
      const automaton = new CanaryAutomaton(canaryForms(secret))
      const bytes = Buffer.from(printed)
      for (const chunks of [[bytes], [...bytes].map((byte) => Buffer.from([byte]))]) {
        const { out } = run(createCanaryStream(automaton), chunks)
        expect(out.toString(), `${chunks.length} chunks`).toContain(CANARY_MARKER)
        for (const line of secret.split('\n')) expect(out.toString()).not.toContain(line.slice(4, 40))
      }
    })
  }
})
