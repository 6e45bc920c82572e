/**
 * The CLI's side of a command session (`airlock connect` on a terminal, `airlock exec`): local
 * input to the tunnel, the tunnel's output to stdout and its `stderr` messages to stderr, local
 * signals to the remote process, and the remote exit status back.
 *
 *   local stdin ══ bytes (backpressure), EOF → end ═══════▶ gateway
 *   local stdout ◀══ bytes ═════ / stderr ◀── {stderr} ─────
 *   SIGINT, SIGTERM, ... ── {signal} ─────────────────────▶
 *   exit status ◀── {exit: code | signal} ─────────────────
 */
import type { Readable, Writable } from 'node:stream'
import { constants } from 'node:os'
import { AirlockError } from '../../errors.js'
import type { Transport } from '../../tunnel/transport.js'

export interface CommandSessionIo {
  /** Absent: the command gets no input (EOF at once). */
  stdin?: Readable
  stdout: Writable
  stderr: Writable
}

export interface CommandSessionOptions {
  /** Signals of this process forwarded to the remote process. */
  signals?: readonly NodeJS.Signals[]
  /**
   * After forwarding one of these (SIGTERM, SIGHUP: the caller is going away), wait this long for
   * the remote exit, then close the session and exit with 128 + the signal's number. Default 3 s.
   */
  leaveAfterMs?: number
  /** Send SIGTERM after this long; if the command is still running `leaveAfterMs` later, fail with `target`. */
  deadlineMs?: number
  /** The terminal size, sent as the session's first message (see below). Default 80×24. */
  size?: { cols: number; rows: number }
}

const LEAVING_SIGNALS = new Set<NodeJS.Signals>(['SIGTERM', 'SIGHUP'])

/**
 * Runs one command session over an open tunnel and resolves with the remote exit status (a signal
 * death is 128 + its number, as shells report it). Rejects with the gateway's error when the gateway
 * ended the session before the command exited (blocked, a limit, an admin kill), and with
 * `tunnel-dropped` (exit 255) when the tunnel broke.
 */
export function runCommandSession(transport: Transport, io: CommandSessionIo, options: CommandSessionOptions = {}): Promise<number> {
  const leaveAfterMs = options.leaveAfterMs ?? 3_000
  return new Promise<number>((resolve, reject) => {
    let settled = false
    const timers: NodeJS.Timeout[] = []
    const handlers = new Map<NodeJS.Signals, () => void>()

    const cleanup = (): void => {
      for (const timer of timers) clearTimeout(timer)
      for (const [signal, handler] of handlers) process.off(signal, handler)
      if (io.stdin !== undefined) {
        io.stdin.off('data', onInput)
        io.stdin.off('end', onInputEnd)
        io.stdin.pause()
      }
    }
    const succeed = (status: number): void => {
      if (settled) return
      settled = true
      cleanup()
      transport.close({ message: 'done' })
      resolve(status)
    }
    const fail = (error: AirlockError): void => {
      if (settled) return
      settled = true
      cleanup()
      transport.close({ message: 'done' })
      reject(error)
    }

    transport.on('data', (chunk) => {
      // Empty frames are the gateway probing the tunnel's buffer; nothing to write.
      if (chunk.length === 0) return
      if (!io.stdout.write(chunk)) {
        transport.pause()
        io.stdout.once('drain', () => transport.resume())
      }
    })
    transport.on('control', (message) => {
      if (message.type === 'stderr') io.stderr.write(message.data)
      else if (message.type === 'exit') {
        succeed(message.code ?? 128 + (message.signal === undefined ? 0 : ((constants.signals as Record<string, number>)[message.signal] ?? 0)))
      }
    })
    transport.on('close', (reason) => {
      if (reason.code === undefined || reason.code === 'tunnel-dropped') {
        fail(new AirlockError('tunnel-dropped', `the tunnel closed while the command ran: ${reason.message}`, {
          hint: 'the command may have run partly or completely; check before running it again',
        }))
      } else {
        fail(new AirlockError(reason.code, reason.message, reason.hint === undefined ? {} : { hint: reason.hint }))
      }
    })

    const onInput = (chunk: Buffer | string): void => {
      if (!transport.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) {
        io.stdin!.pause()
        transport.once('drain', () => {
          if (!settled) io.stdin!.resume()
        })
      }
    }
    const onInputEnd = (): void => transport.end()
    if (io.stdin === undefined) {
      transport.end()
    } else {
      io.stdin.on('data', onInput)
      io.stdin.once('end', onInputEnd)
      io.stdin.resume()
    }

    for (const signal of options.signals ?? []) {
      const handler = (): void => {
        transport.control({ type: 'signal', signal })
        if (!LEAVING_SIGNALS.has(signal)) return
        const timer = setTimeout(() => succeed(128 + (constants.signals[signal] ?? 0)), leaveAfterMs)
        timers.push(timer)
      }
      handlers.set(signal, handler)
      process.on(signal, handler)
    }

    if (options.deadlineMs !== undefined) {
      const deadlineMs = options.deadlineMs
      timers.push(
        setTimeout(() => {
          io.stderr.write(`airlock: --timeout reached after ${Math.round(deadlineMs / 1000)} s; sending SIGTERM\n`)
          transport.control({ type: 'signal', signal: 'SIGTERM' })
          timers.push(
            setTimeout(
              () => fail(new AirlockError('target', `timed out: the command did not stop within ${Math.round(leaveAfterMs / 1000)} s of SIGTERM`, { hint: 'the gateway ends it' })),
              leaveAfterMs,
            ),
          )
        }, deadlineMs),
      )
    }
    // The first message tells the gateway this side listens: it sends no control message before
    // it (the transport delivers control messages as they arrive, without holding them like data,
    // so one that arrived together with `ready` would be lost).
    transport.control({ type: 'resize', cols: options.size?.cols ?? 80, rows: options.size?.rows ?? 24 })
    transport.resume()
  })
}
