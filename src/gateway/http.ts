/** Small HTTP helpers shared by the routes and the upgrade path: JSON bodies and error statuses. */
import type { ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { AirlockError, type ErrorCode } from '../errors.js'

const HTTP_STATUS: Record<ErrorCode, number> = {
  target: 502,
  usage: 400,
  config: 500,
  blocked: 403,
  unauthenticated: 401,
  forbidden: 403,
  'gateway-unreachable': 502,
  incompatible: 400,
  'upstream-unavailable': 502,
  limit: 429,
  internal: 500,
  'tunnel-dropped': 502,
}

/** A refusal with an HTTP status other than the code's default (404 for an unknown name, 503 while draining). */
export class HttpError extends AirlockError {
  constructor(
    readonly status: number,
    code: ErrorCode,
    message: string,
    options: { hint?: string } = {},
  ) {
    super(code, message, options)
  }
}

export function statusFor(error: AirlockError): number {
  return error instanceof HttpError ? error.status : HTTP_STATUS[error.code]
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  response.end(text)
}

export function sendError(response: ServerResponse, error: AirlockError): void {
  sendJson(response, statusFor(error), { error: error.toJSON() })
}

/** Refuses a WebSocket upgrade with a JSON error body the CLI turns back into an AirlockError. */
export function refuseUpgrade(socket: Duplex, error: AirlockError): void {
  const status = statusFor(error)
  const body = JSON.stringify({ error: error.toJSON() })
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
        body,
      () => socket.destroy(),
    )
  } else {
    socket.destroy()
  }
}

/** A percent-encoded path segment, decoded; malformed encoding is the caller's mistake (400), not ours. */
export function decodePathName(segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new HttpError(400, 'usage', 'a name in the path is not valid percent-encoding')
  }
}
