/**
 * A one-off command run: the tunnel on one side, the process's stdin/stdout/stderr on the other.
 *
 *   CLI (airlock exec)                    gateway                          process (runAs user)
 *     │══ stdin bytes … end ════════════▶│── deny patterns? hold all input, check, then start
 *     │                                  │── else start at once and stream ═▶│ stdin
 *     │◀══ masked stdout ════════════════│◀── canary (+ maskers), record ════│ stdout
 *     │◀── stderr {data} (masked text) ──│◀── canary (+ maskers), record ────│ stderr
 *     │── signal {SIGINT} ──────────────▶│── kill(process group) ───────────▶│
 *     │◀── exit {code, signal} ──────────│◀── exited, output drained ────────│
 *
 * With deny patterns the whole input (and the extra arguments, checked at open) must be known
 * before anything runs, so it is held up to `maxCheckedInput` bytes; a larger input is refused.
 * Without them input streams with backpressure in both directions, and the process starts at the
 * client's first message (see front.ts: no control message may precede it).
 */
import type { ChildProcess } from 'node:child_process'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'
import type { CloseReason, Transport } from '../../tunnel/transport.js'
import { type DenyRule, findDenied } from './input-checks.js'
import { knownSignal, signalGroup } from './launch.js'
import { type SessionLimits, startLimits } from './limits.js'
import { IDLE_RELEASE_MS, type OutputMasker } from './masker.js'
import type { Recorder } from './recording.js'

export interface PipeSessionOptions {
  transport: Transport
  /** Starts the process (detached: its pid is its process group). */
  spawn: () => ChildProcess
  stdoutMasker: OutputMasker
  stderrMasker: OutputMasker
  recorder: Recorder
  rules: readonly DenyRule[]
  maxCheckedInput: number
  /** Masks the input as it is recorded (a stream: a value may span chunks). */
  inputMasker: OutputMasker
  limits: SessionLimits
  /** Ends the process group; resolves once the process is gone. */
  terminate: (child: ChildProcess) => Promise<void>
  /** The input was refused by a deny pattern (nothing ran). */
  onBlocked?: (rule: DenyRule) => void
  logger: Logger
}

const EMPTY = Buffer.alloc(0)

export function runPipeSession(options: PipeSessionOptions): Promise<CloseReason> {
  const { transport, recorder, rules, logger } = options
  const checking = rules.length > 0
  const held: Buffer[] = []
  let heldBytes = 0
  const inputDecoder = new StringDecoder('utf8')
  const stderrDecoder = new StringDecoder('utf8')

  return new Promise<CloseReason>((resolve) => {
    let child: ChildProcess | undefined
    let finished = false
    let exited = false
    let closedBy: CloseReason | undefined
    const limits = startLimits(options.limits, (reason) => transport.close(reason))

    const finish = (reason: CloseReason): void => {
      if (finished) return
      finished = true
      limits.stop()
      void recorder.close().then(
        () => resolve(reason),
        (error: unknown) => {
          logger.warn({ event: 'session.recording.error', err: error }, 'the recording could not be completed')
          resolve(reason)
        },
      )
    }

    const recordInput = (chunk: Buffer, end = false): void => {
      const masked = options.inputMasker.write(chunk)
      const text = inputDecoder.write(end ? Buffer.concat([masked, options.inputMasker.flush()]) : masked) + (end ? inputDecoder.end() : '')
      if (text !== '') recorder.input(text)
    }

    let started = false
    const start = (input: Buffer[] | undefined): void => {
      if (started || finished) return
      started = true
      try {
        child = options.spawn()
      } catch (error) {
        // Not the error itself: Node's spawn errors quote the environment's values (a secret with a NUL).
        logger.warn({ event: 'command.spawn.error', code: (error as NodeJS.ErrnoException).code, name: (error as Error).name }, 'the command could not be started')
        transport.close({ code: 'upstream-unavailable', message: 'the gateway could not start the command' })
        return
      }
      const proc = child
      proc.once('error', (error: NodeJS.ErrnoException) => {
        logger.warn({ event: 'command.spawn.error', code: error.code }, 'the command could not be started')
        if (!exited) transport.close({ code: 'upstream-unavailable', message: `the gateway could not start the command (${error.code ?? 'error'})` })
      })
      // A command that exits without reading all its input: the rest is dropped, not an error, and
      // the tunnel must read on (a paused tunnel would never see the client's close).
      proc.stdin!.on('error', () => {})
      proc.stdin!.once('close', () => transport.resume())

      const pauseSources = new Set<string>()
      const pause = (stream: NodeJS.ReadableStream, why: string): void => {
        pauseSources.add(why)
        stream.pause()
      }
      const resumeAll = (): void => {
        pauseSources.clear()
        proc.stdout!.resume()
        proc.stderr!.resume()
      }
      transport.on('drain', () => {
        if (recorder.writable) resumeAll()
      })
      const afterWrite = (stream: NodeJS.ReadableStream, accepted: boolean): void => {
        if (!accepted) pause(stream, 'transport')
        if (!recorder.writable) {
          pause(stream, 'recorder')
          void recorder.drained().then(() => {
            pauseSources.delete('recorder')
            if (pauseSources.size === 0) resumeAll()
          })
        }
      }
      const sendStdout = (data: Buffer): void => {
        if (data.length === 0) return
        recorder.output(data, 'stdout')
        afterWrite(proc.stdout!, transport.write(data))
      }
      const sendStderr = (data: Buffer, end = false): void => {
        if (data.length > 0) recorder.output(data, 'stderr')
        const text = stderrDecoder.write(data) + (end ? stderrDecoder.end() : '')
        if (text === '') return
        transport.control({ type: 'stderr', data: text })
        // Control messages have no backpressure of their own; an empty binary frame probes the
        // tunnel's buffer so that a flood of stderr stalls the process like stdout does.
        afterWrite(proc.stderr!, transport.write(EMPTY))
      }
      const idleTimers: { stdout?: NodeJS.Timeout; stderr?: NodeJS.Timeout } = {}
      const armIdle = (stream: 'stdout' | 'stderr'): void => {
        const masker = stream === 'stdout' ? options.stdoutMasker : options.stderrMasker
        if (masker.idle === undefined) return
        clearTimeout(idleTimers[stream])
        idleTimers[stream] = setTimeout(() => (stream === 'stdout' ? sendStdout : sendStderr)(masker.idle!()), IDLE_RELEASE_MS)
      }
      proc.stdout!.on('data', (chunk: Buffer) => {
        limits.activity()
        sendStdout(options.stdoutMasker.write(chunk))
        armIdle('stdout')
      })
      proc.stderr!.on('data', (chunk: Buffer) => {
        limits.activity()
        sendStderr(options.stderrMasker.write(chunk))
        armIdle('stderr')
      })
      proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        exited = true
        clearTimeout(idleTimers.stdout)
        clearTimeout(idleTimers.stderr)
        if (closedBy !== undefined) return finish(closedBy)
        sendStdout(options.stdoutMasker.flush())
        sendStderr(options.stderrMasker.flush(), true)
        recorder.marker(signal === null ? `exit ${code}` : `exit ${signal}`)
        transport.control(signal === null ? { type: 'exit', code: code ?? 0 } : { type: 'exit', code: null, signal })
        finish({ message: signal === null ? `command exited with code ${code}` : `command ended by ${signal}` })
      })

      if (input !== undefined) {
        for (const chunk of input) proc.stdin!.write(chunk)
        proc.stdin!.end()
      }
    }

    transport.on('data', (chunk) => {
      limits.activity()
      recordInput(chunk)
      if (!checking && !started) start(undefined)
      if (checking) {
        heldBytes += chunk.length
        if (heldBytes > options.maxCheckedInput) {
          transport.close({
            code: 'limit',
            message: `input over ${options.maxCheckedInput} bytes cannot be checked against the connection's deny patterns`,
            hint: 'send less input, or ask a gateway admin to raise the limit',
          })
          return
        }
        held.push(chunk)
        return
      }
      if (child === undefined || exited) return
      if (!child.stdin!.write(chunk)) {
        transport.pause()
        child.stdin!.once('drain', () => transport.resume())
      }
    })

    transport.on('end', () => {
      recordInput(EMPTY, true)
      if (!checking) {
        if (!started) start(undefined)
        child?.stdin!.end()
        return
      }
      const text = Buffer.concat(held).toString('utf8')
      const denied = findDenied(rules, text)
      if (denied !== undefined) {
        recorder.marker(`blocked by ${denied.id}`)
        logger.info({ event: 'command.blocked', rule: denied.id }, 'input blocked')
        options.onBlocked?.(denied)
        transport.close({ code: 'blocked', message: `blocked by guardrail ${denied.id}: ${denied.message}`, hint: 'the command did not run' })
        return
      }
      start(held.splice(0))
    })

    transport.on('control', (message) => {
      if (!checking && !started) start(undefined)
      if (message.type !== 'signal' || child?.pid === undefined) return
      const signal = knownSignal(message.signal)
      if (signal !== undefined) signalGroup(child.pid, signal)
    })

    transport.on('close', (reason) => {
      if (exited || finished) return
      closedBy = reason
      if (child === undefined) finish(reason)
      else void options.terminate(child).then(() => finish(reason))
    })

    transport.resume()
  })
}
