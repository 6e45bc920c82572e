/**
 * Human-readable durations and sizes, as written in the gateway configuration.
 */

import { AirlockError } from '../errors.js'

const DURATION_UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
] as const

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/y

const BYTE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
}

const BYTES = /^(\d+(?:\.\d+)?)(B|KiB|MiB|GiB)$/

/** What a valid duration looks like, for error messages. */
export const DURATION_EXAMPLE = 'a duration like 8h, 30m, 10s, 500ms or 1h30m'

/** What a valid size looks like, for error messages. */
export const BYTES_EXAMPLE = 'a size like 1MiB, 64KiB or 512B'

/**
 * Parses a duration into milliseconds.
 *
 * A string is `0` or one or more `<number><unit>` parts with units `d`, `h`, `m`, `s`, `ms`, largest
 * first and each at most once (`1h30m`, `1.5h`, `500ms`), rounded to whole milliseconds; a number is
 * already milliseconds.
 *
 * @throws AirlockError `config` when the input is not a non-negative duration; its `hint` says what
 *   a valid one looks like.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input
    throw invalid('duration', input, 'a number of milliseconds must be a whole number, 0 or more')
  }
  const text = input.trim()
  let total = 0
  let offset = 0
  let lastRank = -1
  if (text === '0') return 0
  while (offset < text.length) {
    DURATION_PART.lastIndex = offset
    const match = DURATION_PART.exec(text)
    if (match === null) break
    const [part, amount, unit] = match as unknown as [string, string, string]
    const rank = DURATION_UNITS.findIndex(([name]) => name === unit)
    if (rank <= lastRank) throw invalid('duration', input, 'units go largest first, each at most once')
    lastRank = rank
    total += Number(amount) * (DURATION_UNITS[rank]?.[1] ?? 0)
    offset += part.length
  }
  if (text.length === 0 || offset !== text.length) {
    const hint = /^\d+(?:\.\d+)?$/.test(text) ? 'add a unit, e.g. 500ms or 30s' : `expected ${DURATION_EXAMPLE}`
    throw invalid('duration', input, hint)
  }
  const ms = Math.round(total)
  if (!Number.isSafeInteger(ms)) throw invalid('duration', input, 'too large')
  return ms
}

/**
 * Parses a size into bytes: `512B`, `64KiB`, `1MiB`, `1.5GiB`, or a number of bytes.
 *
 * @throws AirlockError `config` when the input is not a non-negative size; its `hint` says what a
 *   valid one looks like.
 */
export function parseBytes(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input >= 0) return input
    throw invalid('size', input, 'a number of bytes must be a whole number, 0 or more')
  }
  const match = BYTES.exec(input.trim())
  if (match === null) {
    const hint = /^\d+(?:\.\d+)?\s*[kKmMgG][bB]$/.test(input.trim())
      ? 'use binary units: KiB, MiB, GiB'
      : `expected ${BYTES_EXAMPLE}`
    throw invalid('size', input, hint)
  }
  const [, amount, unit] = match as unknown as [string, string, string]
  const bytes = Math.round(Number(amount) * (BYTE_UNITS[unit] ?? Number.NaN))
  if (!Number.isSafeInteger(bytes)) throw invalid('size', input, 'too large')
  return bytes
}

function invalid(what: string, input: string | number, hint: string): AirlockError {
  const shown = typeof input === 'string' ? JSON.stringify(input) : String(input)
  return new AirlockError('config', `invalid ${what} ${shown}`, { hint })
}
