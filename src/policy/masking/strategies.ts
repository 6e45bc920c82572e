/**
 * What a masked value becomes. `redact` writes a label; `partial` keeps the end of the value;
 * `hash` writes a keyed digest, so equal values stay equal (joins, GROUP BY) without being
 * readable, and every gateway with the same key writes the same digest; `null` empties the cell.
 */
import { createHmac } from 'node:crypto'

export type MaskingStrategy = 'redact' | 'partial' | 'hash' | 'null'

/** `hash:` and this many hex digits (64 bits of HMAC-SHA-256): fixed length, whatever the value. */
export const HASH_HEX_DIGITS = 16
export const HASH_PREFIX = 'hash:'

/** How one kind of finding is rewritten. */
export interface Rewrite {
  strategy: MaskingStrategy
  /** The `redact` text, e.g. `[EMAIL]`; also used where a value cannot be null (an error message). */
  label: string
  /** `partial`: characters kept at the end. */
  keep: number
}

/**
 * `hash:` followed by the first {@link HASH_HEX_DIGITS} hex digits of HMAC-SHA-256(key, value):
 * the value's UTF-8 bytes as they came from the server.
 */
export function keyedHash(key: Buffer, value: Uint8Array): string {
  return HASH_PREFIX + createHmac('sha256', key).update(value).digest('hex').slice(0, HASH_HEX_DIGITS)
}

/**
 * `partial`: every character but the last `keep` becomes `*`. At most half of the characters are
 * kept, so a short value is never shown whole (`1234` with keep 4 becomes `**34`).
 */
export function partial(value: string, keep: number): string {
  const characters = [...value]
  const kept = Math.min(keep, Math.floor(characters.length / 2))
  return '*'.repeat(characters.length - kept) + characters.slice(characters.length - kept).join('')
}

/**
 * The replacement text of `value` under `rewrite`, or null for the `null` strategy; `canBeNull`
 * false (inside a longer text, or a channel without NULL) turns `null` into the label.
 */
export function replacement(rewrite: Rewrite, value: Buffer, hashKey: Buffer | undefined, canBeNull: boolean): string | null {
  switch (rewrite.strategy) {
    case 'redact':
      return rewrite.label
    case 'partial':
      return partial(value.toString('utf8'), rewrite.keep)
    case 'hash':
      // createMasker refuses a `hash` rule without a key.
      return keyedHash(hashKey!, value)
    case 'null':
      return canBeNull ? null : rewrite.label
  }
}
