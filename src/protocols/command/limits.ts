/** A command connection's own `idleTimeout` and `maxDuration`, on top of the gateway's session limits. */
import type { CloseReason } from '../../tunnel/transport.js'

export interface SessionLimits {
  idleTimeoutMs?: number
  maxDurationMs?: number
  now?: () => number
}

export interface LimitClock {
  /** Bytes moved either way. */
  activity(): void
  stop(): void
}

const CHECK_INTERVAL_MS = 1_000

/** Calls `onLimit` once when the command has been idle or running too long. */
export function startLimits(limits: SessionLimits, onLimit: (reason: CloseReason) => void): LimitClock {
  const now = limits.now ?? Date.now
  const { idleTimeoutMs, maxDurationMs } = limits
  if (idleTimeoutMs === undefined && maxDurationMs === undefined) return { activity: () => {}, stop: () => {} }
  const startedAt = now()
  let lastActivity = startedAt
  const timer = setInterval(
    () => {
      const at = now()
      if (maxDurationMs !== undefined && at - startedAt >= maxDurationMs) {
        clearInterval(timer)
        onLimit({ code: 'limit', message: `the command reached the connection's maximum duration (${seconds(maxDurationMs)})`, hint: 'start a new session' })
      } else if (idleTimeoutMs !== undefined && at - lastActivity >= idleTimeoutMs) {
        clearInterval(timer)
        onLimit({ code: 'limit', message: `the command was idle for ${seconds(idleTimeoutMs)}`, hint: 'start a new session' })
      }
    },
    Math.min(CHECK_INTERVAL_MS, idleTimeoutMs ?? CHECK_INTERVAL_MS, maxDurationMs ?? CHECK_INTERVAL_MS),
  )
  timer.unref()
  return {
    activity: () => {
      lastActivity = now()
    },
    stop: () => clearInterval(timer),
  }
}

function seconds(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`
}
