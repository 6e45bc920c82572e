/**
 * An independent leak oracle for terminal output: it renders the bytes roughly as a terminal would
 * (escape sequences dropped, backspaces applied) and decodes every base64, hex and percent-encoded
 * run it finds, then looks for the secret. It shares no code with the masker it checks.
 */

export interface Leak {
  secret: string
  how: string
}

/** Every way `secrets` can still be read out of `output`. */
export function findLeaks(output: Buffer | string, secrets: readonly string[]): Leak[] {
  const raw = typeof output === 'string' ? output : output.toString('utf8')
  const latin1 = typeof output === 'string' ? output : output.toString('latin1')
  const screen = render(raw)
  const views: [string, string][] = [
    ['bytes', raw],
    ['bytes (latin1)', latin1],
    ['screen', screen],
    ['screen without line breaks', screen.replace(/[\r\n]/g, '')],
  ]
  const leaks: Leak[] = []
  for (const secret of secrets) {
    const core = secret.length > 8 ? secret.slice(2, -2) : secret
    const coreBytes = Buffer.from(core)
    const forms: [string, string][] = [
      ['raw', secret],
      ['reversed', [...secret].reverse().join('')],
      ['hex', Buffer.from(secret).toString('hex')],
      ['HEX', Buffer.from(secret).toString('hex').toUpperCase()],
    ]
    for (const [view, text] of views) {
      for (const [how, form] of forms) if (text.includes(form)) leaks.push({ secret, how: `${how} in ${view}` })
      const flat = text.replace(/[\r\n]/g, '')
      for (const run of flat.match(/[A-Za-z0-9+/_=-]{12,}/g) ?? []) {
        const normal = run.replace(/-/g, '+').replace(/_/g, '/').replace(/=/g, '')
        for (let skip = 0; skip < 4; skip++) {
          if (Buffer.from(normal.slice(skip), 'base64').includes(coreBytes)) leaks.push({ secret, how: `base64 in ${view}` })
        }
      }
      for (const run of flat.match(/[0-9a-fA-F]{12,}/g) ?? []) {
        for (let skip = 0; skip < 2; skip++) {
          const digits = run.slice(skip)
          if (Buffer.from(digits.slice(0, digits.length - (digits.length % 2)), 'hex').includes(coreBytes)) leaks.push({ secret, how: `hex in ${view}` })
        }
      }
      if (/%[0-9a-fA-F]{2}/.test(flat)) {
        const decoded = Buffer.from(flat.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\+/g, ' '), 'latin1')
        if (decoded.includes(Buffer.from(secret))) leaks.push({ secret, how: `percent-encoded in ${view}` })
      }
    }
  }
  return leaks
}

/** Roughly what a terminal shows: escape sequences and other controls dropped, backspaces applied. */
export function render(text: string): string {
  // eslint-disable-next-line no-control-regex
  const stripped = text.replace(/\x1b(?:\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]|[\]PX^_][\s\S]*?(?:\x07|\x1b\\)|[\x20-\x2f]*[\x30-\x7e])/g, '')
  const out: string[] = []
  for (const char of stripped) {
    if (char === '\b') out.pop()
    else if (char === '\n' || char === '\r' || char === '\t' || char >= ' ') {
      if (char !== '\x7f') out.push(char)
    }
  }
  return out.join('')
}
