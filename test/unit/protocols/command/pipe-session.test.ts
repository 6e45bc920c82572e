import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { runPipeSession } from '../../../../src/protocols/command/pipe-session.js'
import { createRecorder } from '../../../../src/protocols/command/recording.js'
import type { ControlMessage } from '../../../../src/tunnel/protocol.js'
import type { CloseReason, Transport, TransportEvents } from '../../../../src/tunnel/transport.js'

/** A tunnel end that records what the session does to it. */
class FakeTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly written: Buffer[] = []
  readonly controls: ControlMessage[] = []
  paused = false
  resumedAfterPause = false
  closed = false
  bytesIn = 0
  bytesOut = 0
  write(chunk: Buffer): boolean {
    this.written.push(chunk)
    return true
  }
  writev(chunks: readonly Buffer[]): boolean {
    this.written.push(...chunks)
    return true
  }
  end(): void {}
  pause(): void {
    this.paused = true
  }
  resume(): void {
    if (this.paused) this.resumedAfterPause = true
    this.paused = false
  }
  control(message: ControlMessage): void {
    this.controls.push(message)
  }
  close(reason: CloseReason = { message: 'closed' }): void {
    if (this.closed) return
    this.closed = true
    this.emit('close', reason)
  }
}

const passThrough = { write: (chunk: Buffer) => chunk, flush: () => Buffer.alloc(0) }

async function session(script: string) {
  const transport = new FakeTransport()
  const recorder = await createRecorder({ dir: join(mkdtempSync(join(tmpdir(), 'airlock-pipe-')), 'r'), session: 's', width: 80, height: 24 })
  const relay = runPipeSession({
    transport,
    spawn: () => spawn('/bin/sh', ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'], detached: true }),
    stdoutMasker: passThrough,
    stderrMasker: passThrough,
    recorder,
    rules: [],
    maxCheckedInput: 1024,
    inputMasker: passThrough,
    limits: {},
    terminate: async () => {},
    logger: pino({ level: 'silent' }),
  })
  return { transport, relay }
}

describe('runPipeSession', () => {
  it('starts the command at the first client message, sends stderr as messages and the exit status last', async () => {
    const { transport, relay } = await session('echo out; echo err >&2; exit 5')
    transport.emit('control', { type: 'resize', cols: 80, rows: 24 })
    transport.emit('end')
    expect(await relay).toEqual({ message: 'command exited with code 5' })
    expect(Buffer.concat(transport.written).toString()).toBe('out\n')
    expect(transport.controls).toEqual([
      { type: 'stderr', data: 'err\n' },
      { type: 'exit', code: 5 },
    ])
  })

  it('reads the tunnel on when the command exits without taking its input', async () => {
    // Regression: input backpressure kept the tunnel paused after exit, so the client's close was
    // never read and both sides waited for the 5 s close timeout.
    const { transport, relay } = await session('sleep 0.2; echo ran')
    const block = Buffer.alloc(64 * 1024, 0x79)
    for (let i = 0; i < 64 && !transport.paused; i++) transport.emit('data', block)
    expect(transport.paused).toBe(true)
    await relay
    expect(transport.resumedAfterPause).toBe(true)
    expect(transport.controls.at(-1)).toEqual({ type: 'exit', code: 0 })
  })
})
