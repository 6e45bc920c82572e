/**
 * Authentication failures, recorded without letting an attacker fill the audit disk: per client
 * address, the first PER_ADDRESS failures of each WINDOW_MS are recorded one by one (and at most
 * PER_WINDOW across all addresses); the rest are counted, and one `auth.failure.summary` record at
 * the end of the window says how many were not recorded, from which addresses.
 */
import type { AuditEventInput } from './record.js'

export interface AuthFailure {
  address: string
  /** The request path, without its query string. */
  path: string
  code: string
  reason: string
}

export interface AuthFailureLimits {
  /** Default 60 s. */
  windowMs?: number
  /** Failures recorded one by one per address per window; default 10. */
  perAddress?: number
  /** Failures recorded one by one per window, all addresses together; default 100. */
  perWindow?: number
  now?: () => number
}

/** Addresses the summary names, most failures first; the rest are counted in `otherClients`. */
export const SUMMARY_ADDRESSES = 50
/** Addresses counted per window; failures from further ones count in the total only. */
const TRACKED_ADDRESSES = 10_000

export class AuthFailureRecorder {
  private readonly windowMs: number
  private readonly perAddress: number
  private readonly perWindow: number
  private readonly now: () => number
  private windowStart = 0
  private recorded = 0
  /** Per address in this window: failures seen, and failures not recorded. */
  private readonly seen = new Map<string, { all: number; suppressed: number }>()
  private suppressed = 0
  /** Suppressed failures from addresses beyond TRACKED_ADDRESSES. */
  private untracked = 0
  private timer: NodeJS.Timeout | undefined

  /** `append` journals an event durably, as AuditLog.append does. */
  constructor(
    private readonly append: (event: AuditEventInput) => boolean,
    limits: AuthFailureLimits = {},
  ) {
    this.windowMs = limits.windowMs ?? 60_000
    this.perAddress = limits.perAddress ?? 10
    this.perWindow = limits.perWindow ?? 100
    this.now = limits.now ?? Date.now
  }

  /** Records the failure, or counts it for the window's summary. */
  record(failure: AuthFailure): void {
    const now = this.now()
    if (this.timer === undefined || now - this.windowStart >= this.windowMs) {
      this.flush()
      this.windowStart = now
      this.timer = setTimeout(() => this.flush(), this.windowMs)
      this.timer.unref()
    }
    let counts = this.seen.get(failure.address)
    if (counts === undefined && this.seen.size < TRACKED_ADDRESSES) this.seen.set(failure.address, (counts = { all: 0, suppressed: 0 }))
    if (counts !== undefined) counts.all++
    if (counts !== undefined && counts.all <= this.perAddress && this.recorded < this.perWindow) {
      this.recorded++
      this.append({ type: 'auth.failure', client: { address: failure.address }, path: failure.path, code: failure.code, reason: failure.reason })
      return
    }
    this.suppressed++
    if (counts === undefined) this.untracked++
    else counts.suppressed++
  }

  /** Ends the window: writes its summary if any failure went unrecorded. */
  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.suppressed > 0) {
      const clients = [...this.seen]
        .filter(([, counts]) => counts.suppressed > 0)
        .sort((a, b) => b[1].suppressed - a[1].suppressed)
        .map(([address, counts]) => ({ address, count: counts.suppressed }))
      this.append({
        type: 'auth.failure.summary',
        since: new Date(this.windowStart).toISOString(),
        count: this.suppressed,
        clients: clients.slice(0, SUMMARY_ADDRESSES),
        otherClients: clients.length - Math.min(clients.length, SUMMARY_ADDRESSES),
        ...(this.untracked > 0 ? { untracked: this.untracked } : {}),
      })
    }
    this.seen.clear()
    this.recorded = 0
    this.suppressed = 0
    this.untracked = 0
  }
}
