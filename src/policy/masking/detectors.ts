/**
 * The built-in detectors: a pattern that finds candidates and a validator that keeps only real
 * findings. Each detector also declares what the prefilter must see before it is worth running:
 * case-folded 4-character anchors and the cheap triggers (`@`, a long run of digits).
 *
 * No pattern but the private-key block and the AWS secret key's context crosses a line break, so a
 * stream can release whole lines.
 *
 * Detectors read a cell as a latin1 string (one character per byte), so every offset is a byte
 * offset and UTF-8 text passes through unchanged; all patterns are ASCII, so a finding never
 * starts or ends inside a multi-byte character.
 */
import { ibanLength, isCardNumber, isIban, isJoseHeader, isSsnParts } from './checksums.js'

/** Detector names, as the configuration spells them. */
export const DETECTORS = [
  'email',
  'phone',
  'credit-card',
  'iban',
  'us-ssn',
  'jwt',
  'private-key',
  'cloud-keys',
  'api-keys',
  'dsn-password',
  'secret-assignment',
] as const

export type DetectorName = (typeof DETECTORS)[number]

/** What the byte prefilter can see cheaply, besides anchors. */
export type Trigger = 'at-sign' | 'digits'

/** Receives one finding: bytes [start, end) of the scanned text. */
export type Report = (start: number, end: number) => void

export interface Detector {
  readonly name: DetectorName
  /** What `redact` writes, e.g. `[EMAIL]`. */
  readonly label: string
  /** Case-folded 4-character strings; text containing none of them (nor a trigger) holds no finding. */
  readonly anchors: readonly string[]
  readonly triggers: readonly Trigger[]
  /** Reports every finding in `text`, a latin1 decoding of the bytes. */
  find(text: string, report: Report): void
}

/** Runs a global regex over `text`, calling `each` per match; empty matches are skipped. */
function forEachMatch(pattern: RegExp, text: string, each: (match: RegExpExecArray) => void): void {
  pattern.lastIndex = 0
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    if (match[0].length === 0) pattern.lastIndex++
    else each(match)
  }
}

/** Reports the first defined capture group among `groups` (needs the `d` flag). */
function reportGroup(match: RegExpExecArray, groups: readonly number[], report: Report): void {
  for (const group of groups) {
    const span = match.indices?.[group]
    if (span !== undefined) {
      if (span[1] > span[0]) report(span[0], span[1])
      return
    }
  }
}

// email ------------------------------------------------------------------------------------------

/** The domain after an `@`: labels, a dot, a top-level domain of letters. */
const EMAIL_DOMAIN = /(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})(?![A-Za-z0-9-])/y
/** Characters of a local part (RFC 5321 dot-atom, the common subset). */
const LOCAL_PART = /[A-Za-z0-9._%+-]/
/** {@link LOCAL_PART} by character code (the detector walks back from each `@` one character at a time). */
const IN_LOCAL_PART = Uint8Array.from({ length: 128 }, (_, code) => (LOCAL_PART.test(String.fromCharCode(code)) ? 1 : 0))
const inLocalPart = (text: string, index: number): boolean => IN_LOCAL_PART[text.charCodeAt(index)] === 1
const MAX_LOCAL_PART = 64
/** Top-level "domains" that are file extensions: `icon@2x.png` is a file name. */
const FILE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'gif', 'svg', 'webp', 'ico', 'css', 'js', 'ts', 'json', 'xml', 'html', 'htm', 'txt', 'md', 'pdf', 'csv', 'yaml', 'yml'])
/** A URL's `scheme://` or `scheme://user:` right before the local part: the `@` ends URL user info, not an address. */
const URL_USERINFO = /[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^\s/@]*:)?$/

const email: Detector = {
  name: 'email',
  label: '[EMAIL]',
  anchors: [],
  triggers: ['at-sign'],
  find(text, report) {
    // Around each `@` (a regex led by the local part would try every word of the text).
    for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
      let start = at
      while (start > 0 && at - start < MAX_LOCAL_PART + 1 && inLocalPart(text, start - 1)) start--
      if (start > 0 && inLocalPart(text, start - 1)) continue // longer than any local part
      // The local part starts and ends with a letter, digit or _ (and %+- at the end), no `..`.
      while (start < at && /[.%+-]/.test(text[start]!)) start++
      const local = text.slice(start, at)
      if (local.length === 0 || local.endsWith('.') || local.includes('..')) continue
      EMAIL_DOMAIN.lastIndex = at + 1
      const domain = EMAIL_DOMAIN.exec(text)
      if (domain === null || FILE_EXTENSIONS.has(domain[1]!.toLowerCase())) continue
      const end = at + 1 + domain[0].length
      const before = text[start - 1]
      if ((before === ':' || before === '/') && URL_USERINFO.test(text.slice(Math.max(0, start - 300), start))) continue
      // `git@github.com:org/repo`: an scp-style remote, not an address.
      if (text[end] === ':' && /[\w~./]/.test(text[end + 1] ?? '')) continue
      report(start, end)
    }
  },
}

// phone ------------------------------------------------------------------------------------------

/** International: `+` country code, then groups (one may be in parentheses). */
const PHONE_INTERNATIONAL = /(?<![\w+])\+[1-9]\d{0,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}(?![\w+]|[.-]\d)/g
/** North American: (NPA) NXX-XXXX or NPA-NXX-XXXX, optionally after a 1. */
const PHONE_NANP = /(?<![\w+.\-/])(?:1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w\-/]|\.\d)/g
/** What precedes a group of an IBAN written in groups of four. */
const IBAN_HEAD = /[A-Z]{2}\d{2} (?:[A-Z0-9]{4} )*$/
/** National with a trunk 0 (then an area code, never 0): `020 7946 0958`, `06 12 34 56 78`, `0171 1234567`. */
const PHONE_TRUNK = /(?<![\w+.\-/:])0[1-9]\d{0,3}(?:[ -]\d{2,8}){1,4}(?![\w\-/:]|\.\d)/g

function digitCount(text: string): number {
  let count = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 48 && code <= 57) count++
  }
  return count
}

const phone: Detector = {
  name: 'phone',
  label: '[PHONE]',
  anchors: [],
  triggers: ['digits'],
  find(text, report) {
    const check = (match: RegExpExecArray): void => {
      const digits = digitCount(match[0])
      if (digits >= 9 && digits <= 15) report(match.index, match.index + match[0].length)
    }
    forEachMatch(PHONE_INTERNATIONAL, text, check)
    forEachMatch(PHONE_NANP, text, check)
    forEachMatch(PHONE_TRUNK, text, (match) => {
      // One separator style throughout, so `0 2024-01-15`-like runs of numbers are not a phone.
      const separators = new Set(match[0].replace(/\d/g, ''))
      if (separators.size !== 1) return
      // The groups of an IBAN (`DE89 3704 0044 ...`) are not a phone either.
      if (IBAN_HEAD.test(text.slice(Math.max(0, match.index - 48), match.index))) return
      check(match)
    })
  },
}

// credit card ------------------------------------------------------------------------------------

/** A run of digits with single spaces or dashes between them: the candidates' raw material. */
const DIGIT_RUN = /\d(?<=(?:^|[^\w.,-])\d)(?:[ -]?\d){11,}(?![\w-]|[.,]\d)/g

const creditCard: Detector = {
  name: 'credit-card',
  label: '[CREDIT-CARD]',
  anchors: [],
  triggers: ['digits'],
  find(text, report) {
    forEachMatch(DIGIT_RUN, text, (match) => {
      const run = match[0]
      const start = match.index
      if (!/[ -]/.test(run)) {
        // Unseparated: the whole run must be the number; a window of a longer id is not a card.
        if (isCardNumber(run)) report(start, start + run.length)
        return
      }
      // Separated: groups of one separator style; try windows of whole groups, longest first.
      const separator = /[ -]/.exec(run)![0]
      const groups = run.split(separator)
      if (groups.some((group) => group.length === 0 || !/^\d+$/.test(group))) return
      const offsets: number[] = []
      let offset = start
      for (const group of groups) {
        offsets.push(offset)
        offset += group.length + 1
      }
      let first = 0
      while (first < groups.length) {
        let found = -1
        for (let last = groups.length - 1; last >= first; last--) {
          const window = groups.slice(first, last + 1)
          if (window[0]!.length !== 4 || window.some((group) => group.length > 6)) continue
          if (isCardNumber(window.join(''))) {
            found = last
            break
          }
        }
        if (found < 0) {
          first++
          continue
        }
        report(offsets[first]!, offsets[found]! + groups[found]!.length)
        first = found + 1
      }
    })
  },
}

// IBAN -------------------------------------------------------------------------------------------

const IBAN_CANDIDATE = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,34}/g

const iban: Detector = {
  name: 'iban',
  label: '[IBAN]',
  anchors: [],
  triggers: ['digits'],
  find(text, report) {
    forEachMatch(IBAN_CANDIDATE, text, (match) => {
      const length = ibanLength(match[0].slice(0, 2))
      if (length === undefined) return
      // Take exactly the country's length of characters, spaces skipped, then require a boundary.
      let taken = 0
      let end = match.index
      let compact = ''
      while (taken < length && end < text.length) {
        const char = text[end]!
        end++
        if (char === ' ') continue
        if (!/[A-Z0-9]/.test(char)) return
        compact += char
        taken++
      }
      if (taken !== length || /[A-Za-z0-9]/.test(text[end] ?? '')) return
      if (isIban(compact)) report(match.index, end)
    })
  },
}

// US SSN -----------------------------------------------------------------------------------------

const SSN = /(?<![\w-])(\d{3})([ -])(\d{2})\2(\d{4})(?![\w-]|\.\d)/g

const usSsn: Detector = {
  name: 'us-ssn',
  label: '[US-SSN]',
  anchors: [],
  triggers: ['digits'],
  find(text, report) {
    forEachMatch(SSN, text, (match) => {
      if (isSsnParts(match[1]!, match[3]!, match[4]!)) report(match.index, match.index + match[0].length)
    })
  },
}

// JWT --------------------------------------------------------------------------------------------

/** Three (JWS) to five (JWE) base64url segments; the header is `{"...` or `{ "...`. */
const JWT = /(?<![A-Za-z0-9_-])(ey[JA][A-Za-z0-9_-]{4,})\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}/g
const BASE64URL = 'abcdefghijklmnopqrstuvwxyz0123456789-_'

const jwt: Detector = {
  name: 'jwt',
  label: '[JWT]',
  // `{"` is `eyJ` and any character. `{ ` is `eyA` and then, for the byte after the space: `"`
  // (eyAi), another space (eyAg), a tab (eyAJ), a line feed (eyAK) or a carriage return (eyAN).
  anchors: [...[...BASE64URL].map((char) => `eyj${char}`), 'eyai', 'eyag', 'eyaj', 'eyak', 'eyan'],
  triggers: [],
  find(text, report) {
    forEachMatch(JWT, text, (match) => {
      if (isJoseHeader(match[1]!)) report(match.index, match.index + match[0].length)
    })
  },
}

// private keys -----------------------------------------------------------------------------------

/** A PEM private key block (PKCS#1/#8, EC, OpenSSH, encrypted, PGP); without its END line, to the end. */
const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)/g

const privateKey: Detector = {
  name: 'private-key',
  label: '[PRIVATE-KEY]',
  anchors: ['-beg'],
  triggers: [],
  find(text, report) {
    forEachMatch(PRIVATE_KEY, text, (match) => report(match.index, match.index + match[0].length))
  },
}

// cloud keys -------------------------------------------------------------------------------------

/** AWS access key ids: long-term (AKIA), temporary (ASIA), bearer (ABIA), context-specific (ACCA). */
const AWS_KEY_ID = /(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g
/** Where an AWS secret access key is named. */
const AWS_SECRET_CONTEXT = /aws_?secret(?:_?access)?_?key|secret_?access_?key/gi
/** A 40-character base64 token: the shape of an AWS secret access key. */
const AWS_SECRET = /(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g
/** How far after its context an AWS secret key is looked for. */
const AWS_SECRET_REACH = 200
/** A GCP service-account key file's `private_key` value (a JSON string). */
const GCP_PRIVATE_KEY = /"private_key"[ \t]*:[ \t]*"((?:[^"\\\n]|\\.)+)"/dg
/** Azure storage / Service Bus connection string keys and SAS signatures. */
const AZURE_KEY = /(?:AccountKey|SharedAccessKey|SharedAccessSignature)=([^;\s"']+)/dgi

function isMixedBase64(token: string): boolean {
  return /[a-z]/.test(token) && /[A-Z]/.test(token) && /[0-9/+]/.test(token)
}

const cloudKeys: Detector = {
  name: 'cloud-keys',
  label: '[CLOUD-KEY]',
  anchors: ['akia', 'asia', 'abia', 'acca', 'secr', 'te_k', 'ntke', 'sske', 'edac'],
  triggers: [],
  find(text, report) {
    const contexts: number[] = []
    forEachMatch(AWS_KEY_ID, text, (match) => {
      report(match.index, match.index + match[0].length)
      contexts.push(match.index + match[0].length)
    })
    forEachMatch(AWS_SECRET_CONTEXT, text, (match) => contexts.push(match.index + match[0].length))
    if (contexts.length > 0) {
      forEachMatch(AWS_SECRET, text, (match) => {
        if (!isMixedBase64(match[0])) return
        if (contexts.some((end) => match.index >= end && match.index - end <= AWS_SECRET_REACH)) {
          report(match.index, match.index + match[0].length)
        }
      })
    }
    forEachMatch(GCP_PRIVATE_KEY, text, (match) => reportGroup(match, [1], report))
    forEachMatch(AZURE_KEY, text, (match) => reportGroup(match, [1], report))
  },
}

// API keys ---------------------------------------------------------------------------------------

const API_KEY =
  /(?<![A-Za-z0-9_-])(?:gh[pousr]_[A-Za-z0-9]{30,251}|github_pat_[A-Za-z0-9_]{22,242}|glpat-[A-Za-z0-9_-]{20,}|xox[abprse]-[A-Za-z0-9-]{10,}|[sr]k_live_[A-Za-z0-9]{20,}|sk-(?:proj-|svcacct-|admin-)?([A-Za-z0-9_-]{20,}))(?![A-Za-z0-9_-])/g

const apiKeys: Detector = {
  name: 'api-keys',
  label: '[API-KEY]',
  anchors: [
    'ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'b_pa', 'glpa',
    'xoxa', 'xoxb', 'xoxp', 'xoxr', 'xoxs', 'xoxe', 'sk_l', 'rk_l',
    ...[...'abcdefghijklmnopqrstuvwxyz0123456789-_'].map((char) => `sk-${char}`),
  ],
  triggers: [],
  find(text, report) {
    forEachMatch(API_KEY, text, (match) => {
      // OpenAI-style `sk-` keys are random: mixed case and digits, unlike a kebab-case name.
      const body = match[1]
      if (body !== undefined && !(/[a-z]/.test(body) && /[A-Z]/.test(body) && /\d/.test(body))) return
      report(match.index, match.index + match[0].length)
    })
  },
}

/** Values that are not secrets: placeholders, redactions (including the masker's own labels), references. */
const PLACEHOLDER = /^(?:\**|x+|null|none|nil|undefined|true|false|empty|redacted|hidden|secret|password|\[[A-Z-]+\]|<[^>]*>|\$\{[^}]*\}?|\{\{[^}]*\}\}|\$[A-Za-z_][A-Za-z0-9_]*|%\([^)]*\)s|hash:[0-9a-f]+)$/i

// passwords in URLs and DSNs ---------------------------------------------------------------------

/** `scheme://user:PASSWORD@host`: the last `@` of the authority ends the password. */
const URL_PASSWORD = /:\/\/(?<=(?:^|[^A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/)[^\s:/?#@]*:([^\s/]*)@/dg
/**
 * `password=...` in libpq, ODBC (`Pwd=`, `{...}` quoting) and JDBC/URL query strings; an unquoted
 * value runs to whitespace, or to `;`/`&` that starts the next `key=`.
 */
const KEY_VALUE_PASSWORD =
  /(?<![A-Za-z0-9_])(?:password|pwd)[ \t]*=[ \t]*(?:'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)"|\{([^}\n]*)\}|((?:[^\s'"&;]|[&;](?![A-Za-z_][\w.-]*=))+))/dgi

const dsnPassword: Detector = {
  name: 'dsn-password',
  label: '[PASSWORD]',
  // `x://` for every last byte a scheme can have: a URL's password needs `://` before it (an `@`
  // alone, as in every email address, says nothing).
  anchors: ['sswo', 'pwd=', 'pwd ', 'pwd\t', ...[...'abcdefghijklmnopqrstuvwxyz0123456789+.-'].map((char) => `${char}://`)],
  triggers: [],
  find(text, report) {
    forEachMatch(URL_PASSWORD, text, (match) => reportGroup(match, [1], report))
    forEachMatch(KEY_VALUE_PASSWORD, text, (match) => {
      const value = match[1] ?? match[2] ?? match[3] ?? match[4] ?? ''
      if (!PLACEHOLDER.test(value)) reportGroup(match, [1, 2, 3, 4], report)
    })
  },
}

// secret assignments -----------------------------------------------------------------------------

/** Words that name a credential: what a secret assignment's name ends with. */
export const CREDENTIAL_WORDS =
  'password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|secret[_-]?key|(?:signing|encryption|master)[_-]?key|credentials?'

/**
 * `NAME = value`, `NAME: value`, `"name": "value"`, `name => value` where NAME ends in a
 * credential word (`DB_PASSWORD`, `client_secret`, `x-api-key`, `github_token`, ...).
 */
const ASSIGNMENT = new RegExp(
  `(?:${CREDENTIAL_WORDS})["']?[ \\t]*(?::=|=>|=|:)[ \\t]*(?:"((?:[^"\\\\\\n]|\\\\.)*)"|'((?:[^'\\\\\\n]|\\\\.)*)'|([^\\s"',;}&]+))`,
  'dgi',
)
/** `Authorization: Bearer ...` and the like. */
const AUTHORIZATION = /(?<![A-Za-z0-9])(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?(?:(?:bearer|basic|token|digest|apikey)[ \t]+)?([A-Za-z0-9._~+/=-]{8,})/dgi
const MIN_ASSIGNED = 4

const secretAssignment: Detector = {
  name: 'secret-assignment',
  label: '[SECRET]',
  anchors: [
    'sswo', 'sswd', 'ssph', 'pwd=', 'pwd:', 'pwd"', "pwd'", 'pwd ', 'secr', 'toke',
    'api_', 'api-', 'apik', 'ss_k', 'ss-k', 'sske', 'te_k', 'te-k', 'atek', 'cred',
    'pwd\t', 'oriz',
    // signing_key, encryption_key, master_key (and -key, key)
    'ng_k', 'ng-k', 'ngke', 'on_k', 'on-k', 'onke', 'er_k', 'er-k', 'erke',
  ],
  triggers: [],
  find(text, report) {
    forEachMatch(ASSIGNMENT, text, (match) => {
      const group = [1, 2, 3].find((index) => match[index] !== undefined)
      if (group === undefined) return
      const value = match[group]!
      if (value.length < MIN_ASSIGNED || PLACEHOLDER.test(value)) return
      reportGroup(match, [group], report)
    })
    forEachMatch(AUTHORIZATION, text, (match) => {
      if (!PLACEHOLDER.test(match[1]!)) reportGroup(match, [1], report)
    })
  },
}

/** Every built-in detector, in configuration order. */
export const BUILTIN_DETECTORS: Readonly<Record<DetectorName, Detector>> = {
  email,
  phone,
  'credit-card': creditCard,
  iban,
  'us-ssn': usSsn,
  jwt,
  'private-key': privateKey,
  'cloud-keys': cloudKeys,
  'api-keys': apiKeys,
  'dsn-password': dsnPassword,
  'secret-assignment': secretAssignment,
}
