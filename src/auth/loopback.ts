/**
 * The loopback redirect of a native app's browser login (RFC 8252 §7.3): a one-shot HTTP listener
 * on 127.0.0.1 and an ephemeral port that waits for the identity provider to send the browser
 * back with `?code=...&state=...`.
 *
 *   browser ── GET /callback?code&state ──▶ listener (127.0.0.1 only, Host checked)
 *                                            wrong path      → 404, keep waiting
 *                                            wrong state     → 400, keep waiting
 *                                            replay          → 400, keep waiting
 *                                            matching state  → hand to the caller, who exchanges
 *           ◀── "return to the terminal" ───  the code, then answers the page; listener closes
 *
 * Nothing here ever writes the code or the state to a log or a page.
 */
import { timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AirlockError } from '../errors.js'

export const CALLBACK_PATH = '/callback'

/** The matching callback: its full URL (for the token exchange) and a way to answer the browser. */
export interface Callback {
  url: URL
  /** Answers the waiting browser and closes the listener. */
  finish(outcome: { ok: true } | { ok: false; message: string }): void
}

export interface CallbackListener {
  /** `http://127.0.0.1:<port>/callback` */
  readonly redirectUri: string
  /** The first callback whose `state` matches; rejects with `unauthenticated` on timeout. */
  readonly callback: Promise<Callback>
  /** Closes the listener (idempotent). */
  close(): Promise<void>
}

export interface CallbackListenerOptions {
  /** The `state` sent in the authorization request. */
  state: string
  timeoutMs: number
  /** Told about every refused request (wrong path, wrong state, replay), without its query. */
  onRefused?: (reason: 'path' | 'state' | 'replay' | 'method' | 'host') => void
}

export async function listenForCallback(options: CallbackListenerOptions): Promise<CallbackListener> {
  const expectedState = Buffer.from(options.state, 'utf8')
  let used = false
  let port = 0
  let timer: NodeJS.Timeout | undefined
  let closed: Promise<void> | undefined
  let settle: { resolve: (callback: Callback) => void; reject: (error: AirlockError) => void } | undefined
  const callback = new Promise<Callback>((resolve, reject) => {
    settle = { resolve, reject }
  })

  const server = createServer((request, response) => {
    const refuse = (reason: Parameters<NonNullable<CallbackListenerOptions['onRefused']>>[0], status: number, text: string): void => {
      options.onRefused?.(reason)
      page(response, status, 'Airlock login', text)
    }
    if (request.method !== 'GET') return refuse('method', 405, 'This address only receives the sign-in redirect.')
    // DNS rebinding: a page on another origin that resolves to 127.0.0.1 sends its own Host.
    if (request.headers.host !== `127.0.0.1:${port}`) return refuse('host', 400, 'This address only receives the sign-in redirect.')
    const url = new URL(request.url ?? '/', `http://127.0.0.1:${port}`)
    if (url.pathname !== CALLBACK_PATH) return refuse('path', 404, 'Not found.')
    const state = Buffer.from(url.searchParams.get('state') ?? '', 'utf8')
    if (state.length !== expectedState.length || !timingSafeEqual(state, expectedState)) {
      return refuse('state', 400, 'This sign-in response does not belong to the login in progress. Return to the terminal.')
    }
    if (used) return refuse('replay', 400, 'This sign-in response was already used. Return to the terminal.')
    used = true
    clearTimeout(timer)
    settle?.resolve({
      url,
      finish: (outcome) => {
        if (outcome.ok) page(response, 200, 'Logged in', 'You are logged in to Airlock. You can close this tab and return to the terminal.')
        else page(response, 400, 'Login failed', `${outcome.message} Return to the terminal for details.`)
        void close()
      },
    })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 15_000

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  port = (server.address() as AddressInfo).port

  timer = setTimeout(() => {
    settle?.reject(
      new AirlockError('unauthenticated', `the browser did not complete the login within ${Math.round(options.timeoutMs / 1000)} s`, {
        hint: 'run `airlock login` again; on a machine without a browser use `airlock login --device`',
      }),
    )
    void close()
  }, options.timeoutMs)
  timer.unref()

  function close(): Promise<void> {
    clearTimeout(timer)
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeIdleConnections()
      // The finished page is flushed first; anything still open after a moment is cut.
      setTimeout(() => server.closeAllConnections(), 1_000).unref()
    })
    return closed
  }

  return { redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}`, callback, close }
}

function page(response: ServerResponse<IncomingMessage>, status: number, title: string, text: string): void {
  // The text may quote the IdP's error, which the redirect URL carries: whoever crafts the URL picks it.
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body style="font-family:system-ui,sans-serif;max-width:36em;margin:4em auto"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    connection: 'close',
  })
  response.end(body)
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!)
}
