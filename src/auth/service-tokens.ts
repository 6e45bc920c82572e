import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { AirlockError } from '../errors.js'
import type { Identity } from './identity.js'

/** Service tokens look like `alk_<43 base64url chars>`: recognisable in a leak scan, 256 bits of entropy. */
export const SERVICE_TOKEN_PREFIX = 'alk_'

export interface ServiceTokenEntry {
  name: string
  /** Lowercase hex SHA-256 of the whole token; the token itself is never stored by the gateway. */
  sha256: string
  groups: readonly string[]
  expires?: Date
}

export function generateServiceToken(): string {
  return SERVICE_TOKEN_PREFIX + randomBytes(32).toString('base64url')
}

export function hashServiceToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

export function looksLikeServiceToken(token: string): boolean {
  return token.startsWith(SERVICE_TOKEN_PREFIX)
}

/**
 * Verifies bearer service tokens against their configured hashes. The lookup is by hash, compared
 * in constant time, so neither a timing nor a log line reveals how much of a token matched.
 */
export class ServiceTokenVerifier {
  private readonly byHash: Map<string, ServiceTokenEntry>

  constructor(entries: readonly ServiceTokenEntry[], private readonly now: () => number = Date.now) {
    this.byHash = new Map(entries.map((entry) => [entry.sha256, entry]))
  }

  verify(token: string): Identity {
    const digest = hashServiceToken(token)
    let found: ServiceTokenEntry | undefined
    for (const [hash, entry] of this.byHash) {
      if (timingSafeEqual(Buffer.from(hash, 'hex'), Buffer.from(digest, 'hex'))) found = entry
    }
    if (found === undefined) {
      throw new AirlockError('unauthenticated', 'the token is not valid for this gateway', {
        hint: 'check AIRLOCK_TOKEN, or run `airlock login`',
      })
    }
    if (found.expires !== undefined && found.expires.getTime() <= this.now()) {
      throw new AirlockError('unauthenticated', `service token ${found.name} expired on ${found.expires.toISOString().slice(0, 10)}`, {
        hint: 'ask a gateway admin for a new token (`airlock gateway token`)',
      })
    }
    return {
      kind: 'service',
      id: `service:${found.name}`,
      display: found.name,
      groups: found.groups,
      ...(found.expires ? { expiresAt: found.expires.getTime() } : {}),
    }
  }
}
