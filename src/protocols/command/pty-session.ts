/**
 * An interactive command session: the tunnel on one side, a pty on the other.
 *
 *   CLI (raw terminal)                    gateway                          pty (runAs user)
 *     │══ keystrokes ═══════════════════▶│── line check (deny), record ────▶│ write
 *     │── resize {cols, rows} ──────────▶│── TIOCSWINSZ ───────────────────▶│ SIGWINCH
 *     │── signal {SIGTERM} ─────────────▶│── kill(foreground group) ───────▶│
 *     │◀══ masked output ════════════════│◀── canary (+ maskers), record ═══│ read
 *     │◀── exit {code, signal} ──────────│◀── the process exited ───────────│
 *
 * Ctrl-C is a keystroke like any other: the pty's line discipline turns it into SIGINT for the
 * foreground process group. A line refused by a deny pattern gets one in place of its Enter, sent
 * only once the program has settled (its output quiet), and the input after it is held until the
 * program has settled again: bash's readline keeps the line when SIGINT arrives while it is busy
 * with input (a paste, fast typing), and drops the first key typed while it handles the signal.
 *
 * When the tunnel closes first (client gone, admin kill, limits), the process gets SIGHUP, then
 * SIGKILL after a grace period.
 *
 * Output backpressure pauses the pty. node-pty destroys its socket 200 ms after the process exits,
 * so output still in the kernel's pty buffer at that moment is lost if the client has not caught up
 * by then; a one-off run (pipes) has no such limit.
 */
import type { Logger } from 'pino'
import type { CloseReason, Transport } from '../../tunnel/transport.js'
import { type DenyRule, findDenied, LineAssembler, type SubmittedLine } from './input-checks.js'
import { knownSignal, signalForeground, signalName } from './launch.js'
import { IDLE_RELEASE_MS, type OutputMasker } from './masker.js'
import type { Recorder } from './recording.js'
import { type SessionLimits, startLimits } from './limits.js'

/** What the session needs of a pty (node-pty's IPty with `encoding: null`). */
export interface PtyProcess {
  readonly pid: number
  onData(listener: (data: Buffer) => void): unknown
  onExit(listener: (event: { exitCode: number; signal?: number }) => void): unknown
  write(data: Buffer | string): void
  resize(cols: number, rows: number): void
  pause(): void
  resume(): void
}

export interface PtySessionOptions {
  transport: Transport
  pty: PtyProcess
  masker: OutputMasker
  recorder: Recorder
  rules: readonly DenyRule[]
  /** Masks secrets in text that is recorded but did not pass the output stream (input lines). */
  maskText: (text: string) => string
  limits: SessionLimits
  /** Ends the process (and everything it started); resolves once it is gone. */
  terminate: () => Promise<void>
  logger: Logger
  /** A submitted line was refused by a deny pattern (`text` already masked). */
  onBlocked?: (rule: DenyRule, text: string) => void
  /** Bytes written to the pty that it has not taken yet (node-pty keeps them in a socket). */
  inputBacklog?: () => number
  onInputDrain?: (listener: () => void) => void
}

const ETX = Buffer.from([0x03])
const EOT = Buffer.from([0x04])
const INPUT_HIGH_WATER = 1024 * 1024
/** Output kept to tell an echoed input line from one typed at a no-echo prompt (a password). */
const ECHO_WINDOW = 8 * 1024
/** How long after its Enter a line's echo may still arrive (pasted input echoes after the fact). */
const ECHO_WAIT_MS = 300
/**
 * Around the Ctrl-C for a refused line, the program has settled when nothing has been written to
 * or read from its terminal for SETTLE_MS (it has echoed what it was given and waits for more);
 * a program that never goes quiet is given SETTLE_MAX_MS.
 */
const SETTLE_MS = 25
const SETTLE_MAX_MS = 500
/** How long an exit status waits for a client that has not said anything yet. */
const ATTACH_WAIT_MS = 10_000

/** Input in order: bytes for the pty (with the allowed lines they submit), a refused line, the end. */
type InputStep = { write: Buffer; allowed: SubmittedLine[] } | { denied: DenyRule; line: SubmittedLine } | { end: true }

export function runPtySession(options: PtySessionOptions): Promise<CloseReason> {
  const { transport, pty, masker, recorder, rules, logger } = options
  const lines = new LineAssembler()
  let recentOutput = ''
  const unconfirmed: { line: SubmittedLine; at: number }[] = []
  let echoTimer: NodeJS.Timeout | undefined

  return new Promise<CloseReason>((resolve) => {
    let finished = false
    let exited = false
    // No control message before the client's first message: see front.ts.
    let attach: () => void = () => {}
    const attached = new Promise<void>((resolve) => {
      attach = resolve
    })
    const blockers = new Set<'transport' | 'recorder'>()
    const limits = startLimits(options.limits, (reason) => transport.close(reason))

    const emit = (data: Buffer): void => {
      if (data.length === 0) return
      recorder.output(data)
      recentOutput = (recentOutput + visibleText(data)).slice(-ECHO_WINDOW)
      confirmEchoes()
      if (!transport.write(data)) block('transport')
      if (!recorder.writable) {
        block('recorder')
        void recorder.drained().then(() => unblock('recorder'))
      }
    }
    const block = (what: 'transport' | 'recorder'): void => {
      if (blockers.size === 0) pty.pause()
      blockers.add(what)
    }
    const unblock = (what: 'transport' | 'recorder'): void => {
      if (!blockers.delete(what) || blockers.size > 0 || exited) return
      pty.resume()
    }
    transport.on('drain', () => unblock('transport'))

    let idleTimer: NodeJS.Timeout | undefined
    const armIdle = (): void => {
      if (masker.idle === undefined) return
      clearTimeout(idleTimer)
      idleTimer = setTimeout(() => emit(masker.idle!()), IDLE_RELEASE_MS)
    }
    // The last byte read from or written to the terminal, for settling (see SETTLE_MS).
    let lastTerminalActivity = 0
    pty.onData((data) => {
      lastTerminalActivity = Date.now()
      limits.activity()
      emit(masker.write(data))
      armIdle()
    })

    // Input lines: recorded once their echo shows they were visible (a password typed at a no-echo
    // prompt is recorded as its length only), checked against the deny patterns at Enter.
    const recordLine = (line: SubmittedLine, echoed: boolean): void => {
      if (line.text === '' && !line.uncertain) return
      const text = echoed ? options.maskText(line.text) : `[not echoed: ${[...line.text].length} characters]`
      recorder.input(`${text}${line.uncertain ? ' [edited]' : ''}\n`)
    }
    const confirmEchoes = (): void => {
      while (unconfirmed.length > 0) {
        const { line } = unconfirmed[0]!
        const probe = [...line.text].slice(-24).join('')
        if (probe !== '' && !recentOutput.includes(probe)) return
        unconfirmed.shift()
        recordLine(line, true)
      }
      if (echoTimer !== undefined && unconfirmed.length === 0) {
        clearTimeout(echoTimer)
        echoTimer = undefined
      }
    }
    const expireEchoes = (): void => {
      echoTimer = undefined
      const now = Date.now()
      while (unconfirmed.length > 0 && now - unconfirmed[0]!.at >= ECHO_WAIT_MS) recordLine(unconfirmed.shift()!.line, false)
      if (unconfirmed.length > 0) echoTimer = setTimeout(expireEchoes, ECHO_WAIT_MS).unref()
    }

    // Input runs through `pending` in order; a refused line holds what follows it (see the top).
    const pending: InputStep[] = []
    let heldBytes = 0
    let settling = false
    // The tunnel is paused because more than INPUT_HIGH_WATER waits in `pending`.
    let holdFull = false
    const writeInput = (data: Buffer): void => {
      if (data.length === 0) return
      masker.noteInput?.(data)
      pty.write(data)
      lastTerminalActivity = Date.now()
      if (options.inputBacklog !== undefined && options.inputBacklog() > INPUT_HIGH_WATER) transport.pause()
    }
    options.onInputDrain?.(() => {
      if (!holdFull) transport.resume()
    })

    /** Resolves once the program has settled, or at SETTLE_MAX_MS, or when the session ends. */
    const settled = (): Promise<void> =>
      new Promise((resolve) => {
        const started = Date.now()
        const check = (): void => {
          const now = Date.now()
          const quietFor = now - lastTerminalActivity
          if (quietFor >= SETTLE_MS || now - started >= SETTLE_MAX_MS || exited || finished) return resolve()
          setTimeout(check, SETTLE_MS - quietFor).unref()
        }
        check()
      })

    const pump = (): void => {
      while (!settling && pending.length > 0) {
        const step = pending.shift()!
        if ('write' in step) {
          heldBytes -= step.write.length
          writeInput(step.write)
          for (const line of step.allowed) {
            unconfirmed.push({ line, at: Date.now() })
            echoTimer ??= setTimeout(expireEchoes, ECHO_WAIT_MS).unref()
          }
        } else if ('denied' in step) {
          refuse(step.denied, step.line)
        } else {
          writeInput(EOT)
        }
      }
      if (holdFull && !settling) {
        holdFull = false
        if ((options.inputBacklog?.() ?? 0) <= INPUT_HIGH_WATER) transport.resume()
      }
    }
    // The line is not submitted: Ctrl-C takes the place of its Enter, so the program drops it.
    const refuse = (denied: DenyRule, line: SubmittedLine): void => {
      recordLine(line, true)
      recorder.marker(`blocked by ${denied.id}`)
      const notice = Buffer.from(`\r\n[airlock] blocked by guardrail ${denied.id}: ${denied.message}\r\n`)
      recorder.output(notice)
      transport.write(notice)
      logger.info({ event: 'command.blocked', rule: denied.id, uncertain: line.uncertain }, 'input line blocked')
      options.onBlocked?.(denied, options.maskText(line.text))
      settling = true
      void settled()
        .then(() => {
          if (!exited) writeInput(ETX)
          return settled()
        })
        .then(() => {
          settling = false
          pump()
        })
    }

    transport.on('data', (chunk) => {
      attach()
      limits.activity()
      let from = 0
      let allowed: SubmittedLine[] = []
      const hold = (write: Buffer): void => {
        pending.push({ write, allowed })
        heldBytes += write.length
        allowed = []
      }
      for (const { line, at } of lines.feed(chunk)) {
        const denied = rules.length === 0 ? undefined : findDenied(rules, line.text)
        if (denied === undefined) {
          allowed.push(line)
          continue
        }
        hold(chunk.subarray(from, at))
        pending.push({ denied, line })
        from = at + 1
      }
      hold(chunk.subarray(from))
      if (settling && heldBytes > INPUT_HIGH_WATER && !holdFull) {
        holdFull = true
        transport.pause()
      }
      pump()
    })
    transport.on('end', () => {
      attach()
      pending.push({ end: true })
      pump()
    })

    transport.on('control', (message) => {
      attach()
      if (message.type === 'resize') {
        if (exited) return
        try {
          pty.resize(message.cols, message.rows)
        } catch {
          // The program exited and its terminal closed before the exit was reported: nothing to resize.
          return
        }
        recorder.resize(message.cols, message.rows)
      } else if (message.type === 'signal') {
        const signal = knownSignal(message.signal)
        if (signal !== undefined) void signalForeground(pty.pid, signal)
      }
    })

    const finish = (reason: CloseReason): void => {
      if (finished) return
      finished = true
      limits.stop()
      clearTimeout(idleTimer)
      if (echoTimer !== undefined) clearTimeout(echoTimer)
      for (const { line } of unconfirmed.splice(0)) recordLine(line, false)
      void recorder.close().then(
        () => resolve(reason),
        (error: unknown) => {
          logger.warn({ event: 'session.recording.error', err: error }, 'the recording could not be completed')
          resolve(reason)
        },
      )
    }

    let closedBy: CloseReason | undefined
    pty.onExit(({ exitCode, signal }) => {
      exited = true
      // Input held back for the pty is moot now; the tunnel must read on to see the client's close.
      transport.resume()
      if (closedBy !== undefined) return finish(closedBy)
      emit(masker.flush())
      const name = signal ? signalName(signal) : undefined
      recorder.marker(name === undefined ? `exit ${exitCode}` : `exit ${name}`)
      void within(attached, ATTACH_WAIT_MS).then(() => {
        transport.control(name === undefined ? { type: 'exit', code: exitCode } : { type: 'exit', code: null, signal: name })
        finish({ message: name === undefined ? `command exited with code ${exitCode}` : `command ended by ${name}` })
      })
    })

    transport.on('close', (reason) => {
      if (exited) return
      closedBy = reason
      void options.terminate().then(() => finish(reason))
    })
    transport.resume()
  })
}

function within(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    void promise.then(() => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/** What a terminal would show of `data`, roughly: escape sequences dropped, backspaces applied. */
function visibleText(data: Buffer): string {
  // eslint-disable-next-line no-control-regex
  const text = data.toString('utf8').replace(/\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[P^_X][^\x1b]*(?:\x1b\\)?|[ -/]*[0-~])/g, '')
  let out = ''
  for (const char of text) {
    if (char === '\b') out = out.slice(0, -1)
    // eslint-disable-next-line no-control-regex
    else if (!/[\x00-\x1f\x7f]/.test(char) || char === '\n') out += char
  }
  return out
}
