/**
 * Validators that turn a pattern match into a finding: check digits and format rules of the
 * numbers the detectors look for. Pure functions over ASCII strings.
 */

/** Whether `digits` (ASCII digits only) passes the Luhn (mod 10) check of payment card numbers. */
export function luhn(digits: string): boolean {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let digit = digits.charCodeAt(i) - 48
    if (double) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
    double = !double
  }
  return sum % 10 === 0
}

/**
 * Whether `digits` (13–19 ASCII digits) is a plausible payment card number: an issuer prefix
 * (IIN) with a length that issuer uses, not one digit repeated, and a valid Luhn check digit.
 */
export function isCardNumber(digits: string): boolean {
  const length = digits.length
  if (length < 13 || length > 19) return false
  if (/^(\d)\1+$/.test(digits)) return false
  if (!issuerAccepts(digits, length)) return false
  return luhn(digits)
}

function issuerAccepts(digits: string, length: number): boolean {
  const two = Number(digits.slice(0, 2))
  const four = Number(digits.slice(0, 4))
  switch (digits[0]) {
    case '4': // Visa
      return length === 13 || length === 16 || length === 19
    case '5': // Mastercard 51–55; Maestro 50, 56–58
      return two >= 51 && two <= 55 ? length === 16 : two !== 59
    case '2': // Mastercard 2221–2720, Mir 2200–2204
      return ((four >= 2221 && four <= 2720) || (four >= 2200 && four <= 2204)) && length === 16
    case '3':
      if (two === 34 || two === 37) return length === 15 // American Express
      if (two === 35) return four >= 3528 && four <= 3589 && length >= 16 // JCB
      return (two === 30 || two === 36 || two === 38 || two === 39) && length >= 14 // Diners Club
    case '6': // Discover, UnionPay, Maestro, RuPay
      return length >= 16 || two === 67 || two === 63
    default:
      return false
  }
}

/** IBAN length per country (ISO 13616 registry). */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28,
  CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18,
  FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22,
  IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28, NL: 18,
  NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24, SC: 31,
  SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29,
  VA: 22, VG: 24, XK: 20, YE: 30,
}

/** The IBAN length of the country `code` (two upper-case letters), or undefined. */
export function ibanLength(code: string): number | undefined {
  return IBAN_LENGTHS[code]
}

/**
 * Whether `compact` (upper case, no spaces) is an IBAN: a known country, that country's length,
 * and the ISO 7064 mod-97 check (the rearranged number mod 97 is 1).
 */
export function isIban(compact: string): boolean {
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(compact)) return false
  if (IBAN_LENGTHS[compact.slice(0, 2)] !== compact.length) return false
  const rearranged = compact.slice(4) + compact.slice(0, 4)
  let remainder = 0
  for (let i = 0; i < rearranged.length; i++) {
    const code = rearranged.charCodeAt(i)
    // Letters count as 10 (A) to 35 (Z): two digits.
    if (code >= 65) remainder = (remainder * 100 + code - 55) % 97
    else remainder = (remainder * 10 + code - 48) % 97
  }
  return remainder === 1
}

/**
 * Whether the three parts of an `AAA-GG-SSSS` number may be a US Social Security number under the
 * SSA's format rules: area not 000, 666 or 900–999; group not 00; serial not 0000. Any other
 * 3-2-4 number passes, so part numbers in that shape are masked too (the documented caveat).
 */
export function isSsnParts(area: string, group: string, serial: string): boolean {
  return area !== '000' && area !== '666' && area[0] !== '9' && group !== '00' && serial !== '0000'
}

/** Whether `segment` (base64url) decodes to a JSON object with a string `alg`: a JOSE header. */
export function isJoseHeader(segment: string): boolean {
  let header: unknown
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    return false
  }
  return typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string'
}
