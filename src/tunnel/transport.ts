/**
 * `Transport`: a tunnel as the engines and the CLI see it — a byte stream with flow control,
 * half-close and control messages. The WebSocket underneath stays in this file.
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { ErrorCode } from '../errors.js'
import { type ControlMessage, closeCodeFor, errorCodeForClose, MAX_FRAME, parseControl } from './protocol.js'

/** Why a tunnel ended: `code` is absent for a normal end. */
export interface CloseReason {
  code?: ErrorCode
  message: string
  hint?: string
}

export interface TransportEvents {
  data: [chunk: Buffer]
  /** The peer will send no more bytes (half-close). */
  end: []
  /** `write` may be called again after it returned false. */
  drain: []
  control: [message: ControlMessage]
  /** Emitted once, whatever ended the tunnel. */
  close: [reason: CloseReason]
}

export interface Transport extends EventEmitter<TransportEvents> {
  /** Sends bytes; false means the peer is behind: stop until `drain`. */
  write(chunk: Buffer): boolean
  /** Sends several chunks in order, each as `write` would, in one write to the network where it can; false as for `write`. */
  writev(chunks: readonly Buffer[]): boolean
  /** Half-close: no more bytes from this side. */
  end(): void
  /**
   * Stops `data` events until `resume` (the peer then stalls too). A new transport starts held:
   * bytes that arrive before the consumer is attached wait for its first `resume`.
   */
  pause(): void
  resume(): void
  control(message: ControlMessage): void
  /** Ends the tunnel; an error reason reaches the peer as an `error` message and close code. */
  close(reason?: CloseReason): void
  readonly closed: boolean
  readonly bytesIn: number
  readonly bytesOut: number
}

export interface WsTransportOptions {
  /** Ping interval; the peer is declared gone after two unanswered pings. */
  keepaliveMs?: number
  /** `write` returns false above this many buffered bytes. */
  highWaterMark?: number
  /** ... and `drain` fires once it falls below this. */
  lowWaterMark?: number
  /**
   * The stream under the WebSocket (the upgraded socket). `writev` corks it, so its chunks leave
   * in one system call and reach the peer in one read; without it each chunk is a write of its own.
   */
  socket?: Pick<Duplex, 'cork' | 'uncork'>
  /**
   * Whether the peer's `error` message and close reason say why the tunnel ended (default true).
   * The CLI takes the gateway's; the gateway takes nothing a client says, which would otherwise
   * write any reason it liked into the audit ("session ended by gateway admin ...").
   */
  peerReasons?: boolean
}

const DEFAULT_KEEPALIVE_MS = 20_000
const DEFAULT_HIGH_WATER = 1024 * 1024
const DEFAULT_LOW_WATER = 256 * 1024
const OPEN = 1
const END = Symbol('end')
const BINARY = { binary: true } as const

export class WsTransport extends EventEmitter<TransportEvents> implements Transport {
  bytesIn = 0
  bytesOut = 0
  closed = false
  private needDrain = false
  private paused = false
  private readonly peerReasons: boolean
  private alive = true
  private ended = false
  /** Bytes (and a peer `end`) received while held, before the consumer's first `resume`. */
  private backlog: (Buffer | typeof END)[] | undefined = []
  private backlogBytes = 0
  private heldClose: CloseReason | undefined
  /** An `error` message precedes the close frame; the close then reports it. */
  private pendingError: Extract<ControlMessage, { type: 'error' }> | undefined
  private readonly keepalive: NodeJS.Timeout | undefined
  private readonly highWater: number
  private readonly lowWater: number
  private readonly socket: Pick<Duplex, 'cork' | 'uncork'> | undefined
  private readonly afterSend = (): void => {
    if (this.needDrain && this.ws.bufferedAmount <= this.lowWater) {
      this.needDrain = false
      this.emit('drain')
    }
  }

  constructor(
    private readonly ws: WebSocket,
    options: WsTransportOptions = {},
  ) {
    super()
    this.highWater = options.highWaterMark ?? DEFAULT_HIGH_WATER
    this.lowWater = options.lowWaterMark ?? DEFAULT_LOW_WATER
    this.socket = options.socket
    this.peerReasons = options.peerReasons ?? true
    ws.binaryType = 'nodebuffer'
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary))
    ws.on('pong', () => {
      this.alive = true
    })
    ws.on('close', (code, reason) => this.onWsClose(code, reason.toString()))
    ws.on('error', (error) => {
      this.finish({ code: 'tunnel-dropped', message: `tunnel failed: ${error.message}` })
    })
    const keepaliveMs = options.keepaliveMs ?? DEFAULT_KEEPALIVE_MS
    if (keepaliveMs > 0) {
      this.keepalive = setInterval(() => this.ping(), keepaliveMs)
      this.keepalive.unref()
    }
  }

  write(chunk: Buffer): boolean {
    if (this.closed || this.ws.readyState !== OPEN) return true
    this.bytesOut += chunk.length
    // Only a chunk that takes the buffer over the mark carries a callback: when it has been
    // flushed, so has everything before it. Below the mark, sending costs no closure call.
    const crossing = this.ws.bufferedAmount + chunk.length > this.highWater
    if (chunk.length <= MAX_FRAME) {
      this.ws.send(chunk, BINARY, crossing ? this.afterSend : undefined)
    } else {
      for (let offset = 0; offset < chunk.length; offset += MAX_FRAME) {
        const last = offset + MAX_FRAME >= chunk.length
        this.ws.send(chunk.subarray(offset, offset + MAX_FRAME), BINARY, crossing && last ? this.afterSend : undefined)
      }
    }
    if (crossing && this.ws.bufferedAmount > this.highWater) {
      this.needDrain = true
      return false
    }
    return true
  }

  writev(chunks: readonly Buffer[]): boolean {
    if (chunks.length === 1) return this.write(chunks[0]!)
    this.socket?.cork()
    let ok = true
    for (const chunk of chunks) ok = this.write(chunk) && ok
    this.socket?.uncork()
    return ok
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    this.control({ type: 'end' })
  }

  pause(): void {
    if (this.paused) return
    this.paused = true
    this.ws.pause()
  }

  resume(): void {
    if (this.backlog !== undefined) {
      const backlog = this.backlog
      this.backlog = undefined
      for (const item of backlog) {
        if (item === END) this.emit('end')
        else this.emit('data', item)
      }
      if (this.heldClose !== undefined) this.finish(this.heldClose)
    }
    if (!this.paused) return
    this.paused = false
    this.ws.resume()
  }

  control(message: ControlMessage): void {
    if (this.closed || this.ws.readyState !== OPEN) return
    this.ws.send(JSON.stringify(message))
  }

  close(reason: CloseReason = { message: 'closed' }): void {
    if (this.closed) return
    if (this.ws.readyState === OPEN) {
      if (reason.code === undefined) {
        this.ws.close(1000, truncateReason(reason.message))
      } else {
        this.control({ type: 'error', code: reason.code, message: reason.message, ...(reason.hint ? { hint: reason.hint } : {}) })
        this.ws.close(closeCodeFor(reason.code), truncateReason(reason.message))
      }
      // A peer that never answers the close handshake must not hold the socket.
      setTimeout(() => this.ws.terminate(), 5_000).unref()
    } else {
      this.ws.terminate()
    }
    this.finish(reason)
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.bytesIn += data.length
      if (this.backlog === undefined) {
        this.emit('data', data)
      } else if (data.length > 0) {
        // Empty frames carry nothing: held, they would only grow the backlog uncounted.
        this.backlog.push(data)
        this.backlogBytes += data.length
        // Control messages (`ready`) must still arrive while held; stop reading only past the mark.
        if (this.backlogBytes > this.highWater && !this.paused) {
          this.paused = true
          this.ws.pause()
        }
      }
      return
    }
    const message = parseControl(data.toString('utf8'))
    if (message === undefined) {
      this.close({ code: 'incompatible', message: 'malformed control message on the tunnel' })
      return
    }
    if (message.type === 'end') {
      if (this.backlog === undefined) this.emit('end')
      // One end is enough: a peer repeating it must not grow the backlog.
      else if (this.backlog.at(-1) !== END) this.backlog.push(END)
    }
    else if (message.type === 'error') {
      if (this.peerReasons) this.pendingError = message
    } else this.emit('control', message)
  }

  private onWsClose(closeCode: number, reasonText: string): void {
    if (!this.peerReasons) {
      // 1006 is never sent: the connection dropped without a close frame.
      this.finish(closeCode === 1006 ? { code: 'tunnel-dropped', message: 'the tunnel closed unexpectedly' } : { message: 'the client closed the tunnel' })
      return
    }
    if (this.pendingError !== undefined) {
      const { code, message, hint } = this.pendingError
      this.finish(hint === undefined ? { code, message } : { code, message, hint })
      return
    }
    const code = errorCodeForClose(closeCode)
    this.finish(code === undefined ? { message: reasonText || 'closed' } : { code, message: reasonText || 'the tunnel closed unexpectedly' })
  }

  private ping(): void {
    // While paused we do not read, so the peer's pongs wait in the socket; while what we send is
    // backed up, the peer is not reading (it is paused for backpressure: a slow client), so our
    // pings wait behind it. Liveness is not judged then, and starts afresh after: a stall is
    // held as long as it lasts, and a peer that died meanwhile is TCP's to find.
    if (this.paused || this.needDrain || this.ws.bufferedAmount > 0) {
      this.alive = true
      return
    }
    if (!this.alive) {
      this.ws.terminate()
      this.finish({ code: 'tunnel-dropped', message: 'the tunnel stopped answering keepalive pings' })
      return
    }
    this.alive = false
    this.ws.ping()
  }

  private finish(reason: CloseReason): void {
    if (this.closed) return
    // A normal end waits for held bytes to be delivered; a failure does not.
    if (this.backlog !== undefined && this.backlog.length > 0 && reason.code === undefined) {
      this.heldClose = reason
      return
    }
    this.closed = true
    if (this.keepalive !== undefined) clearInterval(this.keepalive)
    this.emit('close', reason)
  }
}

/** A close frame's reason is limited to 123 bytes. */
function truncateReason(text: string): string {
  const buffer = Buffer.from(text)
  if (buffer.length <= 123) return text
  return buffer.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '') + '...'
}
