/** The validators behind the checksum detectors, as tables. */
import { describe, expect, it } from 'vitest'
import { isCardNumber, isIban, isJoseHeader, isSsnParts, luhn } from '../../../../src/policy/masking/checksums.js'

describe('checksums', () => {
  it('luhn', () => {
    for (const valid of ['79927398713', '4111111111111111', '378282246310005', '0']) expect(luhn(valid), valid).toBe(true)
    for (const invalid of ['79927398710', '4111111111111112', '1234567812345678']) expect(luhn(invalid), invalid).toBe(false)
  })

  it('card numbers need an issuer prefix with its length, and not one digit repeated', () => {
    const cases: [string, boolean][] = [
      ['4111111111111111', true],
      ['4222222222222', true], // Visa, 13
      ['378282246310005', true], // Amex, 15
      ['3782822463100050', false], // Amex prefix, 16 digits
      ['5555555555554444', true],
      ['2223003122003222', true], // Mastercard 2-series
      ['1111222233334444', false], // Luhn-valid, no issuer starts with 1
      ['0000000000000000', false],
      ['411111111111', false], // 12 digits
      ['41111111111111111111', false], // 20 digits
    ]
    for (const [digits, expected] of cases) expect(isCardNumber(digits), digits).toBe(expected)
  })

  it('IBANs need a known country, its length and mod 97 = 1', () => {
    const cases: [string, boolean][] = [
      ['DE89370400440532013000', true],
      ['DE89370400440532013001', false],
      ['DE8937040044053201300', false], // one short
      ['XX89370400440532013000', false],
      ['GB82WEST12345698765432', true],
      ['NO9386011117947', true],
      ['de89370400440532013000', false], // upper case only
    ]
    for (const [iban, expected] of cases) expect(isIban(iban), iban).toBe(expected)
  })

  it('SSN format rules', () => {
    expect(isSsnParts('078', '05', '1120')).toBe(true)
    expect(isSsnParts('000', '12', '3456')).toBe(false)
    expect(isSsnParts('666', '12', '3456')).toBe(false)
    expect(isSsnParts('912', '12', '3456')).toBe(false)
    expect(isSsnParts('123', '00', '3456')).toBe(false)
    expect(isSsnParts('123', '45', '0000')).toBe(false)
  })

  it('a JOSE header is base64url JSON with a string alg', () => {
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
    expect(isJoseHeader(b64({ alg: 'RS256', typ: 'JWT' }))).toBe(true)
    expect(isJoseHeader(b64({ typ: 'JWT' }))).toBe(false)
    expect(isJoseHeader(b64({ alg: 1 }))).toBe(false)
    expect(isJoseHeader(b64('alg'))).toBe(false)
    expect(isJoseHeader('eyJub3Qgam')).toBe(false)
  })
})
