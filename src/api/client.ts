/** The gateway's HTTP API as the CLI sees it. Every failure is an AirlockError with its exit code. */
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

  private async request<T>(method: string, path: string): Promise<T> {
    const url = new URL(path, this.credentials.gateway.href.endsWith('/') ? this.credentials.gateway : `${this.credentials.gateway.href}/`)
    let response: Response
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.credentials.token}`, 'user-agent': `airlock/${VERSION}`, accept: 'application/json' },
        redirect: 'error',
        signal: AbortSignal.timeout(15_000),
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
