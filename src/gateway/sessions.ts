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
  /** `<issuer>#<sub>` or `service:<name>`: what `airlock sessions kill --identity` takes. */
  identityId: string
  identityKind: Identity['kind']
  connection: string
  clientAddress: string
  clientVersion: string
  startedAt: string
  lastActivityAt: string
  bytesIn: number
  bytesOut: number
}

/** An identity an admin revoked: its sessions were ended and new ones are refused until `until`. */
export interface Revocation {
  identity: string
  /** The admin who revoked it (display name). */
  by: string
  /** ms since epoch; `Infinity` until the gateway restarts. */
  until: number
}

/**
 * The live sessions of this gateway: admission (per-identity cap, revoked identities), kill, and
 * the clock-driven ends (`maxDuration`, `idleTimeout`). Activity is read off the transports' byte
 * counters once per sweep, so the relay path pays nothing for idle tracking.
 *
 * Revocations live in this process's memory only: they end with their period or when the gateway
 * restarts, and each gateway of a fleet keeps its own. Revoking at the IdP is what lasts.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>()
  private readonly lastBytes = new Map<string, number>()
  private readonly revoked = new Map<string, Revocation>()
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

  /** The ids of the identity's live sessions. */
  idsFor(identityId: string): string[] {
    return [...this.sessions.values()].filter((session) => session.identity.id === identityId).map((session) => session.id)
  }

  countFor(identityId: string): number {
    let count = 0
    for (const session of this.sessions.values()) if (session.identity.id === identityId) count++
    return count
  }

  /**
   * Throws `forbidden` when an admin revoked the identity, `limit` when it is at its cap, so the
   * check can run before the upgrade.
   */
  assertCanAdmit(identity: Identity): void {
    this.assertNotRevoked(identity)
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

  /**
   * Ends every live session of `identityId` and refuses new ones until `until` (ms since epoch;
   * `Infinity`: until the gateway restarts). Returns the ids of the sessions it ended.
   */
  revoke(identityId: string, by: string, until: number): string[] {
    this.revoked.set(identityId, { identity: identityId, by, until })
    const ended: string[] = []
    for (const session of [...this.sessions.values()]) {
      if (session.identity.id !== identityId) continue
      session.transport.close({ code: 'forbidden', message: `access revoked by gateway admin ${by}`, hint: 'ask a gateway admin' })
      ended.push(session.id)
    }
    return ended
  }

  /** Throws `forbidden` while an admin's revocation of the identity is in force (`refused`: what it refuses). */
  assertNotRevoked(identity: Identity, refused = 'new sessions'): void {
    const revocation = this.revocation(identity.id)
    if (revocation === undefined) return
    const until = revocation.until === Number.POSITIVE_INFINITY ? 'until the gateway restarts' : `until ${new Date(revocation.until).toISOString()}`
    throw new AirlockError('forbidden', `gateway admin ${revocation.by} revoked ${identity.display}: ${refused} are refused ${until}`, {
      hint: 'ask a gateway admin',
    })
  }

  /** The identity's revocation while it is in force. */
  revocation(identityId: string): Revocation | undefined {
    const revocation = this.revoked.get(identityId)
    if (revocation === undefined || this.now() < revocation.until) return revocation
    this.revoked.delete(identityId)
    return undefined
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
    identityId: session.identity.id,
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
