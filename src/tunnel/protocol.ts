/**
 * The tunnel wire contract between `airlock` and the gateway (proto=1).
 *
 * One WebSocket per local TCP connection, opened with
 *   GET /v1/connections/NAME/tunnel
 *   Authorization: Bearer <token>
 *   Airlock-Client: <cli version>; proto=1
 *   Airlock-Open: <base64url JSON of OpenParams>      (optional)
 * Binary frames carry the protocol's bytes; text frames carry one JSON {@link ControlMessage} each.
 * The gateway's first message is `ready` (upstream reached) or `error` (then it closes).
 *
 *   client                                  gateway                       upstream
 *     │── upgrade (token, Airlock-Open) ──────▶│── authn, authz, session ─────▶│ connect
 *     │◀─────────────── ready {session} ───────│◀──────────────────────────────│
 *     │══ binary frames ══════════════════════▶│══ bytes ═════════════════════▶│
 *     │◀═════════════════════ binary frames ═══│◀═════════════════════ bytes ══│
 *     │── end (no more bytes from me) ────────▶│── FIN ───────────────────────▶│
 *     │◀────────────── error {code, message} ──│  (any time; then close 4xxx)
 */
import { type ErrorCode, isErrorCode } from '../errors.js'

export const PROTOCOL_VERSION = 1
export const CLIENT_HEADER = 'airlock-client'
export const OPEN_HEADER = 'airlock-open'

/** Largest binary frame either side sends; bigger writes are split. The gateway accepts at least 64 KiB more. */
export const MAX_FRAME = 256 * 1024

/** Parameters of a tunnel, sent with the upgrade so the gateway can start the engine at once. */
export interface OpenParams {
  /** Terminal size for command connections. */
  cols?: number
  rows?: number
  /** Extra argv for command connections that allow it. */
  args?: string[]
  /** `pty` for an interactive terminal, `pipes` for a one-off run. */
  mode?: 'pty' | 'pipes'
  /** Database connections: the client's startup parameters (the gateway keeps only an allowlist). */
  startup?: Record<string, string>
  /** Postgres: this tunnel carries a CancelRequest for the session with this client-visible key. */
  cancel?: { processId: number; secretKey: string }
}

export type ControlMessage =
  | { type: 'ready'; session: string; connection: string }
  | { type: 'error'; code: ErrorCode; message: string; hint?: string }
  | { type: 'end' }
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'signal'; signal: string }
  | { type: 'stderr'; data: string }
  | { type: 'exit'; code: number | null; signal?: string }
  | { type: 'reauth' }

/** WebSocket close codes: 1000 for a normal end, 4000 + index for each error code. */
const CLOSE_CODE_BASE = 4000
const CLOSE_ERROR_CODES: readonly ErrorCode[] = [
  'internal',
  'usage',
  'config',
  'target',
  'blocked',
  'unauthenticated',
  'forbidden',
  'gateway-unreachable',
  'incompatible',
  'upstream-unavailable',
  'limit',
  'tunnel-dropped',
]

export function closeCodeFor(code: ErrorCode): number {
  const index = CLOSE_ERROR_CODES.indexOf(code)
  return CLOSE_CODE_BASE + (index < 0 ? 0 : index)
}

export function errorCodeForClose(closeCode: number): ErrorCode | undefined {
  if (closeCode === 1000) return undefined
  if (closeCode >= CLOSE_CODE_BASE) return CLOSE_ERROR_CODES[closeCode - CLOSE_CODE_BASE] ?? 'internal'
  return 'tunnel-dropped'
}

/** Parses one text frame; anything that is not a well-formed control message is `undefined`. */
export function parseControl(text: string): ControlMessage | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const message = value as Record<string, unknown>
  switch (message.type) {
    case 'end':
    case 'reauth':
      return { type: message.type }
    case 'ready':
      return typeof message.session === 'string' && typeof message.connection === 'string'
        ? { type: 'ready', session: message.session, connection: message.connection }
        : undefined
    case 'error':
      if (!isErrorCode(message.code) || typeof message.message !== 'string') return undefined
      return typeof message.hint === 'string'
        ? { type: 'error', code: message.code, message: message.message, hint: message.hint }
        : { type: 'error', code: message.code, message: message.message }
    case 'resize':
      return isDimension(message.cols) && isDimension(message.rows)
        ? { type: 'resize', cols: message.cols, rows: message.rows }
        : undefined
    case 'signal':
      return typeof message.signal === 'string' && /^SIG[A-Z0-9]+$/.test(message.signal)
        ? { type: 'signal', signal: message.signal }
        : undefined
    case 'stderr':
      return typeof message.data === 'string' ? { type: 'stderr', data: message.data } : undefined
    case 'exit': {
      const code = message.code === null || Number.isInteger(message.code) ? (message.code as number | null) : undefined
      if (code === undefined) return undefined
      return typeof message.signal === 'string' ? { type: 'exit', code, signal: message.signal } : { type: 'exit', code }
    }
    default:
      return undefined
  }
}

function isDimension(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0 && (value as number) <= 10_000
}

export function encodeOpenParams(params: OpenParams): string {
  return Buffer.from(JSON.stringify(params)).toString('base64url')
}

/** Decodes the `Airlock-Open` header; malformed input is rejected, never guessed at. */
export function decodeOpenParams(header: string | undefined): OpenParams | undefined {
  if (header === undefined || header === '') return {}
  if (header.length > 8192) return undefined
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const raw = value as Record<string, unknown>
  const params: OpenParams = {}
  for (const [key, field] of Object.entries(raw)) {
    switch (key) {
      case 'cols':
      case 'rows':
        if (!isDimension(field)) return undefined
        params[key] = field
        break
      case 'args':
        if (!Array.isArray(field) || field.length > 256 || !field.every((arg) => typeof arg === 'string')) return undefined
        params.args = field as string[]
        break
      case 'mode':
        if (field !== 'pty' && field !== 'pipes') return undefined
        params.mode = field
        break
      case 'startup': {
        if (typeof field !== 'object' || field === null || Array.isArray(field)) return undefined
        const entries = Object.entries(field)
        if (entries.length > 64 || !entries.every(([name, value]) => name.length <= 256 && typeof value === 'string' && value.length <= 1024)) return undefined
        params.startup = Object.fromEntries(entries) as Record<string, string>
        break
      }
      case 'cancel': {
        const cancel = field as { processId?: unknown; secretKey?: unknown } | null
        if (typeof cancel !== 'object' || cancel === null) return undefined
        if (!Number.isInteger(cancel.processId) || typeof cancel.secretKey !== 'string' || !/^[0-9a-f]{8,512}$/.test(cancel.secretKey)) return undefined
        params.cancel = { processId: cancel.processId as number, secretKey: cancel.secretKey }
        break
      }
      default:
        return undefined
    }
  }
  return params
}

/** `Airlock-Client: 0.1.0; proto=1` → protocol number, or undefined when absent or malformed. */
export function parseClientHeader(header: string | undefined): { version: string; proto: number } | undefined {
  if (header === undefined) return undefined
  const match = /^\s*([0-9A-Za-z.+-]{1,64})\s*;\s*proto=(\d{1,4})\s*$/.exec(header)
  if (match === null) return undefined
  return { version: match[1]!, proto: Number(match[2]) }
}
