import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { CanaryAutomaton, canaryForms, MIN_DERIVED_FORM, stableBase64 } from '../../../../src/protocols/command/canary.js'

const SECRET = 'tok_9f/Qx+Z=abc DEF~123'

/** Whether one of the forms occurs in `text`. */
const found = (forms: Buffer[], text: string): boolean => forms.some((form) => text.includes(form.toString('utf8')))

describe('canaryForms', () => {
  const forms = canaryForms(SECRET)

  it('holds the raw value first, and its reversal', () => {
    expect(forms[0]!.toString()).toBe(SECRET)
    expect(found(forms, [...SECRET].reverse().join(''))).toBe(true)
  })

  it('finds the base64 and base64url of the value wherever it sits in a longer encoded stream', () => {
    for (let before = 0; before < 6; before++) {
      for (const after of ['', '\n', 'XYZ']) {
        const stream = Buffer.concat([randomBytes(before), Buffer.from(SECRET), Buffer.from(after)])
        expect(found(forms, stream.toString('base64')), `base64, ${before} bytes before`).toBe(true)
        expect(found(forms, stream.toString('base64url')), `base64url, ${before} bytes before`).toBe(true)
      }
    }
  })

  it('finds hex in either case and the common percent-encodings', () => {
    const bytes = Buffer.from(SECRET)
    expect(found(forms, `x${bytes.toString('hex')}y`)).toBe(true)
    expect(found(forms, bytes.toString('hex').toUpperCase())).toBe(true)
    expect(found(forms, encodeURIComponent(SECRET))).toBe(true)
    expect(found(forms, encodeURIComponent(SECRET).replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()))).toBe(true)
    expect(found(forms, new URLSearchParams({ v: SECRET }).toString())).toBe(true)
    expect(found(forms, [...bytes].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join(''))).toBe(true)
  })

  it('keeps only characters that depend on the value alone', () => {
    // Two bytes before the value: the first character that is the value's alone is the third.
    const value = Buffer.from('abcdefgh')
    expect(stableBase64(value, 2)).toBe(Buffer.concat([Buffer.from('zz'), value]).toString('base64').slice(3, 13))
    expect(Buffer.concat([Buffer.from('qq'), value]).toString('base64')).toContain(stableBase64(value, 2))
  })

  it('leaves out derived forms too short to be told from ordinary output, never the raw value', () => {
    const short = canaryForms('ab1').map(String)
    expect(short[0]).toBe('ab1')
    expect(short).not.toContain('YWIx') // its base64: 4 characters, common in any base64 text
    for (const form of short.slice(1)) expect(form.length).toBeGreaterThanOrEqual(MIN_DERIVED_FORM)
    expect(canaryForms('x').map(String)).toEqual(['x'])
  })
})

describe('CanaryAutomaton', () => {
  const automaton = new CanaryAutomaton([Buffer.from('abc'), Buffer.from('zabcd'), Buffer.from('cde')])
  const marker = Buffer.from('#')

  it('replaces every occurrence, merging overlapping ones', () => {
    expect(automaton.replaceAll(Buffer.from('xx abc yy'), marker).toString()).toBe('xx # yy')
    expect(automaton.replaceAll(Buffer.from('zabcd!'), marker).toString()).toBe('#!')
    expect(automaton.replaceAll(Buffer.from('abcde abc'), marker).toString()).toBe('# #')
    expect(automaton.replaceAll(Buffer.from('nothing'), marker).toString()).toBe('nothing')
  })

  it('tests for any occurrence', () => {
    expect(automaton.test(Buffer.from('--cde--'))).toBe(true)
    expect(automaton.test(Buffer.from('--cd-e--'))).toBe(false)
  })

  it('keeps its table small: one column per distinct pattern byte', () => {
    const big = new CanaryAutomaton(canaryForms(randomBytes(32).toString('base64')))
    expect(big.classCount).toBeLessThanOrEqual(80)
    expect(big.delta.length).toBe(big.stateCount * big.classCount)
  })
})
