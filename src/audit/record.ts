/**
 * Audit records: what an event holds, its canonical encoding, and the hash chain over it.
 *
 * A record's **body** is the canonical JSON of every field except `hash`: object keys sorted by
 * UTF-16 code units, no whitespace, strings escaped as `JSON.stringify` does, integers only (the
 * subset of RFC 8785 JCS that audit records use). `hash` is the lowercase hex SHA-256 of the body's
 * UTF-8 bytes; `prev` is the hash of the record before it in the same chain (64 zeros for seq 1).
 * One line of a journal or of an export is the body with `hash` added: `{"hash":"…",…}`.
 */
import * as crypto from 'node:crypto'

/** Version of the record layout; part of every body. */
export const RECORD_VERSION = 1
/** `prev` of the first record of a chain. */
export const GENESIS = '0'.repeat(64)

/** The statement's verdict as recorded: `flagged` is a rule that would have blocked in audit-only mode. */
export type AuditVerdict = 'allowed' | 'blocked' | 'flagged'

export interface IdentityRecord {
  kind: string
  /** `service:<name>` or `<issuer>#<sub>`. */
  id: string
  /** The token name or the person's email. */
  display: string
  groups: string[]
}

export interface CloseRecord {
  code?: string
  message: string
}

/** The fields of an event, before the log numbers and chains it. */
export type AuditEventInput =
  | { type: 'gateway.start'; version: string; pid: number; unclean: boolean }
  | { type: 'gateway.stop'; reason: string }
  | {
      type: 'session.start'
      session: string
      connection: string
      identity: IdentityRecord
      client: { address: string; version: string }
      /** Command connections: a terminal (`pty`) or a one-off run (`pipes`), and the extra arguments (secrets masked). */
      command?: { mode: string; args: string[] }
    }
  | {
      type: 'session.end'
      session: string
      connection: string
      identity: string
      user: string
      bytes: { in: number; out: number }
      durationMs: number
      reason: CloseRecord
      /** Command connections: the session's asciicast recording as closed (`airlock audit replay`). */
      recording?: { path: string; sha256: string; bytes: number }
      /** Command connections: values masked in the output, by detector (`canary`: the connection's secrets); absent when none. */
      masked?: Record<string, number>
    }
  | {
      type: 'statement.begin'
      session: string
      connection: string
      identity: string
      user: string
      /** 1-based per session, in the order statements went upstream. */
      sequence: number
      path: string
      /** The statement with secret literals and the connection's own secrets redacted. */
      text: string
      /** What was redacted from `text`, by detector name; empty when nothing was. */
      redacted: string[]
      /** The statement's length in characters when `text` was cut short. */
      textLength?: number
      statementName?: string
      verdict: AuditVerdict
      rule?: string
      message?: string
    }
  | {
      type: 'statement.end'
      session: string
      connection: string
      identity: string
      user: string
      sequence: number
      outcome: string
      rows: number
      command?: string
      sqlstate?: string
      durationUs: number
      /** Values masked in the results, by detector or column rule (filled once masking lands). */
      masked: Record<string, number>
    }
  | {
      /** Input a command connection's deny patterns refused: extra arguments, a one-off run's input, an interactive line. */
      type: 'command.blocked'
      session: string
      connection: string
      identity: string
      user: string
      rule: string
      message: string
      where: string
      /** The refused line, secrets masked (interactive sessions only). */
      text?: string
    }
  | { type: 'auth.failure'; client: { address: string }; path: string; code: string; reason: string }
  | {
      /** Authentication failures of one window that were counted, not recorded one by one (auth-failures.ts). */
      type: 'auth.failure.summary'
      /** When the window began; it ends with this record. */
      since: string
      count: number
      /** By address, most first (at most SUMMARY_ADDRESSES). */
      clients: { address: string; count: number }[]
      /** Further addresses with failures not named in `clients`. */
      otherClients: number
      /** Failures from addresses beyond those a window tracks, counted only in `count`. */
      untracked?: number
    }
  | { type: 'admin.kill'; identity: string; user: string; session: string; killed: boolean }
  /** An admin revoked `revoked` (`<issuer>#<sub>` or `service:<name>`): `sessions` were ended, new ones refused until `until` (absent: until the gateway restarts). */
  | { type: 'admin.revoke'; identity: string; user: string; revoked: string; sessions: string[]; until?: string }
  | { type: 'admin.export'; identity: string; user: string; filter: Record<string, string> }
  | { type: 'admin.replay'; identity: string; user: string; session: string }

export type AuditEventType = AuditEventInput['type']

/** What the log adds to every event. */
export interface ChainFields {
  v: number
  chain: string
  seq: number
  prev: string
  /** ISO 8601 UTC with milliseconds. */
  time: string
}

export type AuditRecord = AuditEventInput & ChainFields

/** A record as the API and exports show it: the record, its hash and its id (`CHAIN:SEQ`). */
export type AuditEvent = AuditRecord & { id: string; hash: string }

/** Canonical JSON (see the module comment). Throws on values JSON cannot carry exactly. */
export function canonicalJson(value: unknown): string {
  try {
    return JSON.stringify(sortedCopy(value))
  } catch (error) {
    if (error !== INDEX_KEYS) throw error
    return encodeByHand(value)
  }
}

const INDEX_KEY = /^(?:0|[1-9]\d*)$/
/** Thrown by `sortedCopy` for an object JavaScript cannot hold in sorted key order. */
const INDEX_KEYS = new Error('integer-like keys')
/** Sorted key orders by object shape: records come in a handful of shapes, so sorting is rare. */
const shapes = new Map<string, string[] | null>()

function sortedKeys(keys: string[]): string[] | null {
  const shape = keys.join('\u0000')
  let sorted = shapes.get(shape)
  if (sorted === undefined) {
    // JavaScript enumerates integer-like keys first whatever the insertion order.
    sorted = keys.some((key) => INDEX_KEY.test(key)) ? null : [...keys].sort()
    if (shapes.size < 10_000) shapes.set(shape, sorted)
  }
  return sorted
}

/** A copy whose objects have their keys inserted in sorted order, so JSON.stringify is canonical: the fast path. */
function sortedCopy(value: unknown): unknown {
  if (value === null) return null
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError('audit records hold integers only')
      return value
    case 'object':
      break
    default:
      throw new TypeError(`audit records cannot hold a ${typeof value}`)
  }
  if (Array.isArray(value)) return value.map(sortedCopy)
  const object = value as Record<string, unknown>
  const keys = sortedKeys(Object.keys(object))
  if (keys === null) throw INDEX_KEYS
  const copy: Record<string, unknown> = {}
  for (const key of keys) {
    const item = object[key]
    if (item !== undefined) copy[key] = sortedCopy(item)
  }
  return copy
}

const CHAIN_KEYS: readonly (keyof ChainFields)[] = ['v', 'chain', 'seq', 'prev', 'time']
/** Sorted keys of event shape + chain fields, by event shape. */
const recordShapes = new Map<string, string[] | null>()

/** The body of `event` numbered and chained by `fields`: canonicalJson of the two merged, without merging them first. */
export function recordBody(event: AuditEventInput, fields: ChainFields): string {
  const source = event as unknown as Record<string, unknown>
  const keys = Object.keys(source)
  const shape = keys.join('\u0000')
  let sorted = recordShapes.get(shape)
  if (sorted === undefined) {
    sorted = keys.some((key) => INDEX_KEY.test(key) || (CHAIN_KEYS as readonly string[]).includes(key)) ? null : [...keys, ...CHAIN_KEYS].sort()
    if (recordShapes.size < 10_000) recordShapes.set(shape, sorted)
  }
  if (sorted === null) return canonicalJson({ ...source, ...fields })
  const chain = fields as unknown as Record<string, unknown>
  const copy: Record<string, unknown> = {}
  try {
    for (const key of sorted) {
      const value = key in chain ? chain[key] : source[key]
      if (value !== undefined) copy[key] = sortedCopy(value)
    }
  } catch (error) {
    if (error !== INDEX_KEYS) throw error
    return canonicalJson({ ...source, ...fields })
  }
  return JSON.stringify(copy)
}

function encodeByHand(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(sortedCopy(value))
  if (Array.isArray(value)) return `[${value.map(encodeByHand).join(',')}]`
  const object = value as Record<string, unknown>
  const parts: string[] = []
  for (const key of Object.keys(object).sort()) {
    if (object[key] !== undefined) parts.push(`${JSON.stringify(key)}:${encodeByHand(object[key])}`)
  }
  return `{${parts.join(',')}}`
}

const sha256 =
  typeof crypto.hash === 'function'
    ? (text: string): string => crypto.hash('sha256', text, 'hex')
    : (text: string): string => crypto.createHash('sha256').update(text).digest('hex')

/** The hash of a record body. */
export function hashBody(body: string): string {
  return sha256(body)
}

const LINE_PREFIX = '{"hash":"'

/** A journal or export line (without its newline): the body with `hash` first. */
export function formatLine(body: string, hash: string): string {
  return `${LINE_PREFIX}${hash}",${body.slice(1)}`
}

/** The body and hash of a line in exactly the form `formatLine` writes; undefined for any other form. */
export function splitLine(line: string): { body: string; hash: string } | undefined {
  const start = LINE_PREFIX.length
  if (!line.startsWith(LINE_PREFIX) || line.charCodeAt(start + 64) !== 0x22 /* " */ || line.charCodeAt(start + 65) !== 0x2c /* , */) return undefined
  const hash = line.slice(start, start + 64)
  return /^[0-9a-f]{64}$/.test(hash) ? { body: `{${line.slice(start + 66)}`, hash } : undefined
}

export interface ParsedLine {
  record: AuditRecord
  /** The canonical body, recomputed from the line. */
  body: string
  /** The hash the line claims. */
  hash: string
}

/**
 * Parses one line of a journal or an export. Any key order is accepted; the body is recomputed
 * canonically, so a verifier needs nothing but the line. Returns undefined for a line that is not a
 * JSON object with a string `hash`.
 */
export function parseLine(line: string): ParsedLine | undefined {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const { hash, ...rest } = value as Record<string, unknown>
  if (typeof hash !== 'string') return undefined
  let body: string
  try {
    body = canonicalJson(rest)
  } catch {
    return undefined
  }
  return { record: rest as unknown as AuditRecord, body, hash }
}

/** The event id shown to people and used by `airlock audit show`: `CHAIN:SEQ`. */
export function eventId(chain: string, seq: number): string {
  return `${chain}:${seq}`
}

/** Splits an event id; undefined when it is not `CHAIN:SEQ`. */
export function parseEventId(id: string): { chain: string; seq: number } | undefined {
  const match = /^([0-9a-f]{16}):([1-9][0-9]{0,15})$/.exec(id)
  if (match === null) return undefined
  const seq = Number(match[2])
  return Number.isSafeInteger(seq) ? { chain: match[1]!, seq } : undefined
}

/** A chain id: 16 random hex digits, fixed for the life of a gateway's journal. */
export function newChainId(): string {
  return crypto.randomBytes(8).toString('hex')
}

export function isChainId(value: string): boolean {
  return /^[0-9a-f]{16}$/.test(value)
}

/**
 * The columns a store keeps next to each body so it can filter without parsing: always derived from
 * the record, and checked against it by `verify` (an edited column is an edited record).
 */
export interface RecordColumns {
  chain: string
  seq: number
  time: string
  type: string
  session: string | null
  identity: string | null
  user: string | null
  connection: string | null
  verdict: string | null
}

export function columnsOf(record: AuditRecord): RecordColumns {
  const fields = record as unknown as Record<string, unknown>
  const identity = fields.identity
  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null)
  return {
    chain: record.chain,
    seq: record.seq,
    time: record.time,
    type: record.type,
    session: text(fields.session),
    identity: typeof identity === 'object' && identity !== null ? text((identity as IdentityRecord).id) : text(identity),
    user: typeof identity === 'object' && identity !== null ? text((identity as IdentityRecord).display) : text(fields.user),
    connection: text(fields.connection),
    verdict: text(fields.verdict),
  }
}
