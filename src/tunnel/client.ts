import type { IncomingMessage } from 'node:http'
import { WebSocket } from 'ws'
import { AirlockError, type ErrorCode, isErrorCode } from '../errors.js'
import { CLIENT_HEADER, encodeOpenParams, OPEN_HEADER, type OpenParams, PROTOCOL_VERSION } from './protocol.js'
import { type Transport, WsTransport, type WsTransportOptions } from './transport.js'

export interface OpenTunnelOptions extends WsTransportOptions {
  gateway: URL
  token: string
  connection: string
  clientVersion: string
  params?: OpenParams
  /** Upgrade plus `ready` must complete within this time. */
  timeoutMs?: number
}

export interface OpenedTunnel {
  transport: Transport
  session: string
}

/**
 * Opens one tunnel and waits for the gateway's `ready`. Failures arrive as AirlockErrors with the
 * code the gateway chose (401 → unauthenticated, 403 → forbidden, ...) or `gateway-unreachable`.
 */
export function openTunnel(options: OpenTunnelOptions): Promise<OpenedTunnel> {
  const url = new URL(`v1/connections/${encodeURIComponent(options.connection)}/tunnel`, withTrailingSlash(options.gateway))
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.token}`,
    [CLIENT_HEADER]: `${options.clientVersion}; proto=${PROTOCOL_VERSION}`,
  }
  if (options.params !== undefined) headers[OPEN_HEADER] = encodeOpenParams(options.params)

  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers,
      perMessageDeflate: false,
      handshakeTimeout: options.timeoutMs ?? 15_000,
      followRedirects: false,
      // Masking protects proxies from frames a hostile web page composed; this client is no
      // browser, so an all-zero key (still a masked frame on the wire) lets ws skip the copy.
      generateMask: zeroMask,
    })
    let settled = false
    const fail = (error: AirlockError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.terminate()
      reject(error)
    }
    const timer = setTimeout(
      () => fail(new AirlockError('gateway-unreachable', `the gateway did not open the tunnel within ${Math.round((options.timeoutMs ?? 15_000) / 1000)} s`)),
      options.timeoutMs ?? 15_000,
    )

    ws.on('unexpected-response', (_request, response) => {
      void readErrorBody(response).then(fail)
    })
    ws.on('error', (error: NodeJS.ErrnoException) => fail(unreachable(options.gateway, error)))
    ws.on('open', () => {
      const transport = new WsTransport(ws, options)
      ws.removeAllListeners('error')
      ws.on('error', () => {})
      const onControl = (message: { type: string; session?: string }): void => {
        if (message.type !== 'ready' || settled) return
        settled = true
        clearTimeout(timer)
        transport.off('control', onControl)
        transport.off('close', onClose)
        resolve({ transport, session: message.session ?? '' })
      }
      const onClose = (reason: { code?: ErrorCode; message: string; hint?: string }): void => {
        fail(new AirlockError(reason.code ?? 'upstream-unavailable', reason.message, reason.hint ? { hint: reason.hint } : {}))
      }
      transport.on('control', onControl)
      transport.on('close', onClose)
    })
  })
}

function zeroMask(mask: Buffer): void {
  mask.fill(0)
}

function withTrailingSlash(url: URL): URL {
  return url.pathname.endsWith('/') ? url : new URL(`${url.href}/`)
}

/** The gateway answers a refused upgrade with `{ error: { code, message, hint } }`. */
export async function readErrorBody(response: IncomingMessage): Promise<AirlockError> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of response) {
    size += (chunk as Buffer).length
    if (size > 64 * 1024) break
    chunks.push(chunk as Buffer)
  }
  const status = response.statusCode ?? 0
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: unknown; message?: unknown; hint?: unknown } }
    const { code, message, hint } = body.error ?? {}
    if (isErrorCode(code) && typeof message === 'string') {
      return new AirlockError(code, message, typeof hint === 'string' ? { hint } : {})
    }
  } catch {
    // Not one of ours: fall through to the status line.
  }
  return new AirlockError(status === 401 ? 'unauthenticated' : status === 403 ? 'forbidden' : 'gateway-unreachable', `the gateway answered HTTP ${status}`, {
    hint: 'check that AIRLOCK_GATEWAY points at an Airlock gateway',
  })
}

/** The gateway could not be reached; a certificate problem gets its own advice. */
export function unreachable(gateway: URL, error: { code?: string; message: string }): AirlockError {
  const reason = error.code ?? error.message
  const certificate = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(reason)
  return new AirlockError('gateway-unreachable', `cannot reach the gateway at ${gateway.origin} (${reason})`, {
    hint: certificate
      ? "the gateway's TLS certificate is not trusted here: if it comes from a private CA, set NODE_EXTRA_CA_CERTS=/path/to/ca.pem"
      : 'check AIRLOCK_GATEWAY and that the gateway is running',
    cause: error,
  })
}
