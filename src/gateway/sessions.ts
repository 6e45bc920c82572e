import { randomBytes } from 'node:crypto'
import type { Identity } from '../auth/identity.js'
import { AirlockError } from '../errors.js'
import type { CloseReason, Transport } from '../tunnel/transport.js'

export interface SessionLimits {
  maxDurationMs: number
  idleTimeoutMs: number
  maxPerIdentity: number
}

export interface Session {
  readonly id: string
  readonly identity: Identity
  readonly connection: string
  readonly clientAddress: string
  readonly clientVersion: string
  readonly startedAt: number
  lastActivityAt: number
  readonly transport: Transport
}

/** What `GET /v1/sessions` and `airlock sessions list` show. */
export interface SessionInfo {
  id: string
  identity: string
  identityKind: Identity['kind']
  connection: string
  clientAddress: string
  clientVersion: string
  startedAt: string
  lastActivityAt: string
  bytesIn: number
  bytesOut: number
}

/**
 * The live sessions of this gateway: admission (per-identity cap), kill, and the clock-driven ends
 * (`maxDuration`, `idleTimeout`). Activity is read off the transports' byte counters once per sweep,
 * so the relay path pays nothing for idle tracking.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>()
  private readonly lastBytes = new Map<string, number>()
  private readonly sweeper: NodeJS.Timeout

  constructor(
    private readonly limits: SessionLimits,
    private readonly now: () => number = Date.now,
    sweepIntervalMs = Math.min(1_000, limits.maxDurationMs, limits.idleTimeoutMs),
  ) {
    this.sweeper = setInterval(() => this.sweep(), sweepIntervalMs)
    this.sweeper.unref()
  }

  get size(): number {
    return this.sessions.size
  }

  countFor(identityId: string): number {
    let count = 0
    for (const session of this.sessions.values()) if (session.identity.id === identityId) count++
    return count
  }

  /** Throws `limit` when the identity is at its cap, so the check can run before the upgrade. */
  assertCanAdmit(identity: Identity): void {
    if (this.countFor(identity.id) >= this.limits.maxPerIdentity) {
      throw new AirlockError('limit', `${identity.display} already has ${this.limits.maxPerIdentity} open sessions`, {
        hint: 'close some connections, or ask a gateway admin to raise sessions.maxPerIdentity',
      })
    }
  }

  add(init: Omit<Session, 'id' | 'startedAt' | 'lastActivityAt'>): Session {
    this.assertCanAdmit(init.identity)
    const now = this.now()
    const session: Session = { ...init, id: newSessionId(), startedAt: now, lastActivityAt: now }
    this.sessions.set(session.id, session)
    this.lastBytes.set(session.id, 0)
    init.transport.once('close', () => {
      this.sessions.delete(session.id)
      this.lastBytes.delete(session.id)
    })
    return session
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id)
  }

  list(): SessionInfo[] {
    return [...this.sessions.values()].map(describe)
  }

  kill(id: string, reason: CloseReason): boolean {
    const session = this.sessions.get(id)
    if (session === undefined) return false
    session.transport.close(reason)
    return true
  }

  closeAll(reason: CloseReason): void {
    for (const session of [...this.sessions.values()]) session.transport.close(reason)
  }

  stop(): void {
    clearInterval(this.sweeper)
  }

  /** Ends sessions past their duration or idle limit; public so tests can drive the clock. */
  sweep(): void {
    const now = this.now()
    for (const session of [...this.sessions.values()]) {
      const bytes = session.transport.bytesIn + session.transport.bytesOut
      if (bytes !== this.lastBytes.get(session.id)) {
        this.lastBytes.set(session.id, bytes)
        session.lastActivityAt = now
      }
      if (now - session.startedAt >= this.limits.maxDurationMs) {
        session.transport.close({
          code: 'limit',
          message: `session reached the gateway's maximum duration (${formatMs(this.limits.maxDurationMs)})`,
          hint: 'reconnect to start a new session',
        })
      } else if (now - session.lastActivityAt >= this.limits.idleTimeoutMs) {
        session.transport.close({
          code: 'limit',
          message: `session idle for ${formatMs(this.limits.idleTimeoutMs)}`,
          hint: 'reconnect to start a new session',
        })
      }
    }
  }
}

/** 12 random bytes, URL-safe: unguessable, so an id alone never grants anything. */
function newSessionId(): string {
  return `ses_${randomBytes(12).toString('base64url')}`
}

function describe(session: Session): SessionInfo {
  return {
    id: session.id,
    identity: session.identity.display,
    identityKind: session.identity.kind,
    connection: session.connection,
    clientAddress: session.clientAddress,
    clientVersion: session.clientVersion,
    startedAt: new Date(session.startedAt).toISOString(),
    lastActivityAt: new Date(session.lastActivityAt).toISOString(),
    bytesIn: session.transport.bytesIn,
    bytesOut: session.transport.bytesOut,
  }
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
