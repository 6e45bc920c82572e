/** The gateway's HTTP API as the CLI sees it. Every failure is an AirlockError with its exit code. */
import type { AuditEvent, Head, VerifyReport } from '../audit/index.js'
import type { ClientCredentials } from '../auth/index.js'
import { AirlockError, isErrorCode } from '../errors.js'
import type { SessionInfo } from '../gateway/sessions.js'
import { unreachable } from '../tunnel/client.js'
import { VERSION } from '../version.js'

export interface ConnectionSummary {
  name: string
  type: string
  description: string | null
  /** Database connections: the upstream database and user, for DSNs and prompts (never the password). */
  database?: string
  user?: string
}

export interface WhoAmI {
  kind: string
  id: string
  name: string
  groups: string[]
  admin: boolean
  expiresAt: string | null
}

/** Filters of `airlock audit list` and `tail`, as query parameters of the audit API. */
export interface AuditQuery {
  user?: string
  connection?: string
  session?: string
  /** ISO time, or a duration back from now (`2h`); the gateway resolves it. */
  since?: string
  verdict?: string
  type?: string
  limit?: number
}

export class GatewayClient {
  constructor(private readonly credentials: ClientCredentials) {}

  get gateway(): URL {
    return this.credentials.gateway
  }

  async connections(): Promise<ConnectionSummary[]> {
    return (await this.request<{ connections: ConnectionSummary[] }>('GET', 'v1/connections')).connections
  }

  /** The connection by name: `usage` when the gateway has no such connection, `forbidden` when it is not yours. */
  connection(name: string): Promise<ConnectionSummary> {
    return this.request('GET', `v1/connections/${encodeURIComponent(name)}`)
  }

  whoami(): Promise<WhoAmI> {
    return this.request('GET', 'v1/whoami')
  }

  async sessions(): Promise<SessionInfo[]> {
    return (await this.request<{ sessions: SessionInfo[] }>('GET', 'v1/sessions')).sessions
  }

  async killSession(id: string): Promise<void> {
    await this.request('DELETE', `v1/sessions/${encodeURIComponent(id)}`)
  }

  /**
   * Revokes an identity (`<issuer>#<sub>` or `service:<name>`): ends its live sessions and refuses
   * new ones for `period` (`30m`, `8h`) or, without one, until the gateway restarts.
   */
  revokeIdentity(identity: string, period?: string): Promise<{ identity: string; killed: string[]; until: string | null }> {
    const query = period === undefined ? '' : `?for=${encodeURIComponent(period)}`
    return this.request('DELETE', `v1/identities/${encodeURIComponent(identity)}/sessions${query}`)
  }

  /** Audit events, newest first; pass `next` back as `cursor` for the following page. */
  auditEvents(query: AuditQuery & { cursor?: string }): Promise<{ events: AuditEvent[]; next: string | null }> {
    return this.request('GET', `v1/audit/events${queryString(query)}`)
  }

  /** One audit event by id (`CHAIN:SEQ`): `usage` when there is none. */
  auditEvent(id: string): Promise<AuditEvent> {
    return this.request('GET', `v1/audit/events/${encodeURIComponent(id)}`)
  }

  /** Events after `cursor` (from now when absent); the gateway holds the request up to ~25 s waiting for one. */
  auditTail(query: AuditQuery & { cursor?: string; wait?: string }): Promise<{ events: AuditEvent[]; cursor: string }> {
    return this.request('GET', `v1/audit/tail${queryString(query)}`, 60_000)
  }

  auditVerify(expect: readonly string[]): Promise<VerifyReport> {
    const params = new URLSearchParams()
    for (const head of expect) params.append('expect', head)
    const text = params.toString()
    return this.request('GET', `v1/audit/verify${text === '' ? '' : `?${text}`}`, 30 * 60_000)
  }

  async auditHeads(): Promise<Head[]> {
    return (await this.request<{ heads: Head[] }>('GET', 'v1/audit/head')).heads
  }

  /** The whole log as JSON lines, streamed. */
  auditExport(options: { chain?: string } = {}): Promise<ReadableStream<Uint8Array>> {
    return this.stream(`v1/audit/export${queryString({ format: 'jsonl', ...options })}`, 'application/x-ndjson')
  }

  /** A command session's recording (asciicast v2), streamed. */
  auditRecording(session: string): Promise<ReadableStream<Uint8Array>> {
    return this.stream(`v1/audit/sessions/${encodeURIComponent(session)}/recording`, 'application/x-asciicast')
  }

  private async stream(path: string, accept: string): Promise<ReadableStream<Uint8Array>> {
    const url = this.url(path)
    let response: Response
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${await this.credentials.bearer()}`, 'user-agent': `airlock/${VERSION}`, accept },
        redirect: 'error',
      })
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause
      throw unreachable(this.credentials.gateway, { code: cause?.code ?? (error as Error).name, message: (error as Error).message })
    }
    if (!response.ok || response.body === null) {
      let body: { error?: { code?: unknown; message?: unknown; hint?: unknown } } = {}
      try {
        body = JSON.parse(await response.text()) as typeof body
      } catch {
        // not JSON: reported below
      }
      const { code, message, hint } = body.error ?? {}
      if (isErrorCode(code) && typeof message === 'string') throw new AirlockError(code, message, typeof hint === 'string' ? { hint } : {})
      throw new AirlockError('gateway-unreachable', `the gateway answered HTTP ${response.status}`)
    }
    return response.body
  }

  private url(path: string): URL {
    return new URL(path, this.credentials.gateway.href.endsWith('/') ? this.credentials.gateway : `${this.credentials.gateway.href}/`)
  }

  private async request<T>(method: string, path: string, timeoutMs = 15_000): Promise<T> {
    const url = new URL(path, this.credentials.gateway.href.endsWith('/') ? this.credentials.gateway : `${this.credentials.gateway.href}/`)
    let response: Response
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${await this.credentials.bearer()}`, 'user-agent': `airlock/${VERSION}`, accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      })
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause
      throw unreachable(this.credentials.gateway, { code: cause?.code ?? (error as Error).name, message: (error as Error).message })
    }
    const text = await response.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      throw new AirlockError('gateway-unreachable', `${this.credentials.gateway.origin} did not answer like an Airlock gateway (HTTP ${response.status})`, {
        hint: 'check that AIRLOCK_GATEWAY points at an Airlock gateway',
      })
    }
    if (!response.ok) {
      const { code, message, hint } = (body as { error?: { code?: unknown; message?: unknown; hint?: unknown } }).error ?? {}
      if (isErrorCode(code) && typeof message === 'string') throw new AirlockError(code, message, typeof hint === 'string' ? { hint } : {})
      throw new AirlockError('gateway-unreachable', `the gateway answered HTTP ${response.status}`)
    }
    return body as T
  }
}

function queryString(values: object): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(values) as [string, unknown][]) if (value !== undefined && value !== '') params.set(key, String(value))
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}
