/**
 * The query parameters of the audit API (`/v1/audit/...`), parsed and checked once: filters,
 * page sizes, cursors and expected heads. Shared by the gateway (parsing) and the CLI (building).
 */
import { parseDuration } from '../config/duration.js'
import { AirlockError } from '../errors.js'
import type { ChainCursor, EventFilter } from './store.js'
import { type ExpectedHead, parseExpectedHead } from './verify.js'

export const VERDICTS = ['allowed', 'blocked', 'flagged'] as const
export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 999
/** Longest a tail request waits for an event before answering empty. */
export const MAX_TAIL_WAIT_MS = 25_000

export interface ListQuery {
  filter: EventFilter
  limit: number
  before?: number
}

export interface TailQuery {
  filter: EventFilter
  limit: number
  cursor?: ChainCursor
  waitMs: number
}

/**
 * `since`: an ISO date or time, or a duration back from `now` (`15m`, `2h`, `7d`), as ISO UTC.
 *
 * @throws AirlockError `usage`.
 */
export function parseSince(text: string, now: number): string {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const time = new Date(text)
    if (!Number.isNaN(time.getTime())) return time.toISOString()
  } else {
    try {
      return new Date(now - parseDuration(text)).toISOString()
    } catch {
      // fall through to the usage error
    }
  }
  throw new AirlockError('usage', `--since expects a time like 2026-01-31T12:00:00Z or a duration like 15m, 2h or 7d`)
}

export function parseFilter(params: URLSearchParams, now: number): EventFilter {
  const filter: EventFilter = {}
  for (const key of ['user', 'connection', 'session', 'type'] as const) {
    const value = params.get(key)
    if (value !== null && value !== '') filter[key] = value
  }
  const verdict = params.get('verdict')
  if (verdict !== null && verdict !== '') {
    if (!(VERDICTS as readonly string[]).includes(verdict)) throw new AirlockError('usage', `verdict must be one of: ${VERDICTS.join(', ')}`)
    filter.verdict = verdict
  }
  const since = params.get('since')
  if (since !== null && since !== '') filter.since = parseSince(since, now)
  return filter
}

function parseLimit(params: URLSearchParams, fallback: number): number {
  const text = params.get('limit')
  if (text === null || text === '') return fallback
  const limit = Number(text)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new AirlockError('usage', `limit must be a whole number from 1 to ${MAX_LIMIT}`)
  return limit
}

export function parseListQuery(params: URLSearchParams, now: number): ListQuery {
  const query: ListQuery = { filter: parseFilter(params, now), limit: parseLimit(params, DEFAULT_LIMIT) }
  const cursor = params.get('cursor')
  if (cursor !== null && cursor !== '') {
    const before = Number(cursor)
    if (!Number.isSafeInteger(before) || before < 1) throw new AirlockError('usage', 'cursor must be the `next` value of a previous page')
    query.before = before
  }
  return query
}

export function parseTailQuery(params: URLSearchParams, now: number): TailQuery {
  const query: TailQuery = { filter: parseFilter(params, now), limit: parseLimit(params, DEFAULT_LIMIT), waitMs: MAX_TAIL_WAIT_MS }
  const cursor = params.get('cursor')
  if (cursor !== null && cursor !== '') query.cursor = decodeCursor(cursor)
  const wait = params.get('wait')
  if (wait !== null && wait !== '') {
    let waitMs: number
    try {
      waitMs = parseDuration(wait)
    } catch {
      throw new AirlockError('usage', 'wait must be a duration like 20s')
    }
    query.waitMs = Math.min(waitMs, MAX_TAIL_WAIT_MS)
  }
  return query
}

/** A tail cursor as an opaque URL-safe string. */
export function encodeCursor(cursor: ChainCursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

export function decodeCursor(text: string): ChainCursor {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    value = undefined
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    !Object.entries(value).every(([chain, seq]) => /^[0-9a-f]{16}$/.test(chain) && Number.isSafeInteger(seq) && (seq as number) >= 0)
  ) {
    throw new AirlockError('usage', 'cursor must be the `cursor` value of a previous tail response')
  }
  return value as ChainCursor
}

export function parseExpectParams(params: URLSearchParams): ExpectedHead[] {
  return params.getAll('expect').map((text) => {
    const head = parseExpectedHead(text)
    if (head === undefined) throw new AirlockError('usage', 'an expected head is HASH or CHAIN:SEQ:HASH, as `airlock audit head` prints it')
    return head
  })
}
