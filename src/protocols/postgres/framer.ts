/**
 * Incremental framing of the PostgreSQL wire protocol. Pure: bytes in, whole messages out, no I/O.
 *
 *   client ──▶ StartupFramer: SSLRequest | GSSENCRequest | CancelRequest | StartupMessage
 *              (untyped: Int32 length counting itself, Int32 code, payload)
 *   client ◀─▶ MessageFramer: every later message, either direction
 *              (typed: Byte1 type, Int32 length counting itself but not the type byte, body)
 *
 * Frames are subarrays of the pushed chunks whenever a message lies inside one chunk; a message
 * that spans chunks is copied exactly once, into a buffer allocated at its final size after its
 * length has been checked. Pushed chunks must not be modified afterwards.
 */
import { isUtf8 } from 'node:buffer'

import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  MIN_CANCEL_KEY_LENGTH,
  SSL_REQUEST_CODE,
} from './protocol.js'

/** Why a byte stream cannot be read as the PostgreSQL protocol. */
export type ProtocolErrorCode = 'oversize' | 'malformed' | 'unsupported'

/** A violation of the wire protocol by the peer, or a value a serializer cannot encode. */
export class ProtocolError extends Error {
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message)
    this.name = new.target.name
  }
}

/** One typed message. `body` and `raw` share memory with the pushed chunk whenever possible. */
export interface Frame {
  /** The type byte; see `FrontendMessage` and `BackendMessage`. */
  type: number
  /** The length field: body length + 4. */
  length: number
  /** The message without its 5-byte header. */
  body: Buffer
  /** The whole message, header included, ready to forward. */
  raw: Buffer
  /** The pushed chunk `raw` is a subarray of, and where in it; undefined when the message spanned chunks (and was copied). */
  chunk: Buffer | undefined
  offset: number
}

/** Where a message starts inside a pushed chunk. */
export interface MessageStart {
  readonly chunk: Buffer
  readonly offset: number
}

/** Whole messages one after another inside a chunk: how many, and where they end. */
export interface MessageRun {
  count: number
  end: number
}

/** Type byte + Int32 length. */
const MESSAGE_HEADER_LENGTH = 5
/** The length field counts itself. */
const MIN_MESSAGE_LENGTH = 4
/** Int32 length + Int32 code. */
const STARTUP_HEADER_LENGTH = 8
/** The server's own MAX_STARTUP_PACKET_LENGTH. */
const DEFAULT_MAX_STARTUP_LENGTH = 10_000

/**
 * A FIFO of pushed chunks read without copying. `take` hands out a subarray when the bytes lie in
 * one chunk; otherwise it assembles them into one buffer allocated at their final size, copying
 * each byte once and releasing consumed chunks as it goes.
 */
class ChunkQueue {
  private chunks: Buffer[] = []
  /** Index of the first unread chunk; consumed chunks are dropped in bulk to keep `push` O(1). */
  private head = 0
  /** Read position inside `chunks[head]`. */
  private offset = 0
  /** Unread bytes in `chunks`. */
  private available = 0
  /** A message being assembled across chunks, and how much of it is filled. */
  private assembly: Buffer | undefined
  private filled = 0
  /** Where the last `take` found its bytes: the chunk and the offset (undefined: assembled). */
  takenFrom: Buffer | undefined
  takenAt = 0

  /** Bytes held: unread chunk bytes plus the part of a message already assembled. */
  get buffered(): number {
    return this.available + this.filled
  }

  /** Unread bytes not yet copied into an assembly. */
  get length(): number {
    return this.available
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.available += chunk.length
  }

  /** The byte at `index` past the read position; the caller guarantees `index < length`. */
  byteAt(index: number): number {
    let position = this.offset + index
    for (let i = this.head; ; i++) {
      const chunk = this.chunks[i]!
      if (position < chunk.length) return chunk[position]!
      position -= chunk.length
    }
  }

  /** The big-endian Int32 at `index`; the caller guarantees `index + 4 <= length`. */
  int32At(index: number): number {
    const first = this.chunks[this.head]!
    const position = this.offset + index
    if (position + 4 <= first.length) return first.readInt32BE(position)
    return (
      (this.byteAt(index) << 24) | (this.byteAt(index + 1) << 16) | (this.byteAt(index + 2) << 8) | this.byteAt(index + 3)
    )
  }

  /**
   * The next `size` bytes as one buffer, or `undefined` while they have not all arrived. Once it
   * has returned `undefined` for a size, the caller must ask for the same size until it succeeds.
   */
  take(size: number): Buffer | undefined {
    if (this.assembly === undefined) {
      const first = this.chunks[this.head]
      if (first !== undefined && this.offset + size <= first.length) {
        const start = this.offset
        this.takenFrom = first
        this.takenAt = start
        this.skip(size)
        return first.subarray(start, start + size)
      }
      this.assembly = Buffer.allocUnsafe(size)
      this.filled = 0
    }
    this.takenFrom = undefined
    const assembly = this.assembly
    this.filled += this.copyInto(assembly, this.filled, Math.min(assembly.length - this.filled, this.available))
    if (this.filled < assembly.length) return undefined
    this.assembly = undefined
    this.filled = 0
    return assembly
  }

  /** The chunk the next unread byte is in and its offset there; undefined when empty or assembling. */
  peek(): MessageStart | undefined {
    const first = this.chunks[this.head]
    return first === undefined || this.assembly !== undefined ? undefined : { chunk: first, offset: this.offset }
  }

  /** The next unread byte, or -1 when empty or assembling (as {@link peek}). */
  firstByte(): number {
    const first = this.chunks[this.head]
    return first === undefined || this.assembly !== undefined ? -1 : first[this.offset]!
  }

  /** Passes over `count` unread bytes of the first chunk; a RangeError if it holds fewer. */
  pass(count: number): void {
    const first = this.chunks[this.head]
    if (this.assembly !== undefined || first === undefined || !Number.isInteger(count) || count < 0 || this.offset + count > first.length) {
      throw new RangeError(`cannot pass ${count} bytes: not that many unread in the first chunk`)
    }
    if (count > 0) this.skip(count)
  }

  /** Every unread byte, as the chunks (or subarrays of them) that hold it; empties the queue. */
  drain(): Buffer[] {
    const rest: Buffer[] = []
    if (this.assembly !== undefined) rest.push(this.assembly.subarray(0, this.filled))
    for (let i = this.head; i < this.chunks.length; i++) {
      const chunk = this.chunks[i]!
      rest.push(i === this.head ? chunk.subarray(this.offset) : chunk)
    }
    this.chunks = []
    this.head = 0
    this.offset = 0
    this.available = 0
    this.assembly = undefined
    this.filled = 0
    return rest
  }

  private copyInto(target: Buffer, targetStart: number, count: number): number {
    let copied = 0
    while (copied < count) {
      const chunk = this.chunks[this.head]!
      const n = Math.min(count - copied, chunk.length - this.offset)
      chunk.copy(target, targetStart + copied, this.offset, this.offset + n)
      copied += n
      this.skip(n)
    }
    return copied
  }

  private skip(count: number): void {
    this.available -= count
    this.offset += count
    if (this.offset < this.chunks[this.head]!.length) return
    this.offset = 0
    this.head++
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}

/**
 * Splits a stream of typed messages (either direction, after startup) into {@link Frame}s.
 * Call `push` with each chunk, then `next` until it returns `undefined`. After a
 * {@link ProtocolError} the stream cannot be resynchronised: every later `next` throws it again.
 */
export class MessageFramer {
  private readonly maxMessageLength: number
  private readonly queue = new ChunkQueue()
  /** Size (header included) of the message whose header has been read, 0 between messages. */
  private size = 0
  private failure: ProtocolError | undefined

  /** @param options.maxMessageLength largest accepted length field (body + 4). */
  constructor(options: { maxMessageLength: number }) {
    const { maxMessageLength } = options
    if (!Number.isInteger(maxMessageLength) || maxMessageLength < MIN_MESSAGE_LENGTH || maxMessageLength > 0x7fffffff) {
      throw new RangeError(`maxMessageLength must be an integer in [4, 2^31-1], got ${maxMessageLength}`)
    }
    this.maxMessageLength = maxMessageLength
  }

  /** Bytes pushed but not yet returned in a frame. */
  get buffered(): number {
    return this.queue.buffered
  }

  push(chunk: Buffer): void {
    this.queue.push(chunk)
  }

  /** The next whole message, or `undefined` until more bytes are pushed. */
  next(): Frame | undefined {
    if (this.failure !== undefined) throw this.failure
    if (this.size === 0) {
      if (this.queue.length < MESSAGE_HEADER_LENGTH) return undefined
      const length = this.queue.int32At(1)
      if (length < MIN_MESSAGE_LENGTH) {
        throw this.fail('malformed', `message length ${length} is below ${MIN_MESSAGE_LENGTH}`)
      }
      if (length > this.maxMessageLength) {
        throw this.fail('oversize', `message length ${length} exceeds the limit of ${this.maxMessageLength}`)
      }
      this.size = length + 1
    }
    const queue = this.queue
    const raw = queue.take(this.size)
    if (raw === undefined) return undefined
    this.size = 0
    return { type: raw[0]!, length: raw.length - 1, body: raw.subarray(MESSAGE_HEADER_LENGTH), raw, chunk: queue.takenFrom, offset: queue.takenAt }
  }

  /** The type byte of the next message when {@link peek} would give its start, else -1 (nothing allocated). */
  peekType(): number {
    if (this.failure !== undefined || this.size !== 0) return -1
    return this.queue.firstByte()
  }

  /**
   * Where the next message starts, when it starts in a pushed chunk and none of it has been read:
   * the chunk and the offset there (for a caller that reads whole messages in place and then
   * {@link pass}es them); undefined otherwise.
   */
  peek(): MessageStart | undefined {
    if (this.failure !== undefined || this.size !== 0) return undefined
    return this.queue.peek()
  }

  /**
   * Passes over `count` bytes from {@link peek}'s offset, which the caller has read as whole
   * messages inside that chunk (as {@link next} would have returned them). A RangeError when no
   * message start is peekable or the chunk holds fewer bytes.
   */
  pass(count: number): void {
    if (this.failure !== undefined) throw this.failure
    if (this.size !== 0) throw new RangeError('cannot pass bytes in the middle of a message')
    this.queue.pass(count)
  }

  /**
   * The messages of `type` that follow each other whole inside `start`'s chunk from its offset
   * (as {@link next} would return them, length checks included): how many, and where they end,
   * into `run`. Reads only; {@link pass} moves on.
   */
  wholeRun(start: MessageStart, type: number, run: MessageRun): void {
    const { chunk } = start
    let at = start.offset
    let count = 0
    while (at + MESSAGE_HEADER_LENGTH <= chunk.length && chunk[at] === type) {
      const length = chunk.readInt32BE(at + 1)
      if (length < MIN_MESSAGE_LENGTH || length > this.maxMessageLength || at + 1 + length > chunk.length) break
      at += 1 + length
      count++
    }
    run.count = count
    run.end = at
  }

  /** Every byte pushed but not yet returned in a frame (a partly received message included); empties this framer. */
  drain(): Buffer[] {
    this.size = 0
    return this.queue.drain()
  }

  private fail(code: ProtocolErrorCode, message: string): ProtocolError {
    this.failure = new ProtocolError(code, message)
    return this.failure
  }
}

/**
 * Splits the untyped packets a client sends before its first typed message: SSLRequest and
 * GSSENCRequest (possibly followed by another packet once refused), CancelRequest, StartupMessage.
 * `next` returns a whole packet, length field included, for {@link parseStartupPacket}; `drain`
 * hands what follows the StartupMessage to a {@link MessageFramer}.
 */
export class StartupFramer {
  private readonly maxStartupLength: number
  private readonly queue = new ChunkQueue()
  private size = 0
  private failure: ProtocolError | undefined

  /** @param options.maxStartupLength largest accepted packet, length field included (default 10 000). */
  constructor(options: { maxStartupLength?: number } = {}) {
    const maxStartupLength = options.maxStartupLength ?? DEFAULT_MAX_STARTUP_LENGTH
    if (!Number.isInteger(maxStartupLength) || maxStartupLength < STARTUP_HEADER_LENGTH || maxStartupLength > 0x7fffffff) {
      throw new RangeError(`maxStartupLength must be an integer in [8, 2^31-1], got ${maxStartupLength}`)
    }
    this.maxStartupLength = maxStartupLength
  }

  /** Bytes pushed but not yet returned. */
  get buffered(): number {
    return this.queue.buffered
  }

  push(chunk: Buffer): void {
    this.queue.push(chunk)
  }

  /** The next whole packet (length field included), or `undefined` until more bytes are pushed. */
  next(): Buffer | undefined {
    if (this.failure !== undefined) throw this.failure
    if (this.size === 0) {
      if (this.queue.length < 4) return undefined
      // The length counts itself and the Int32 code.
      const length = this.queue.int32At(0)
      if (length < STARTUP_HEADER_LENGTH) {
        throw this.fail('malformed', `startup packet length ${length} is below ${STARTUP_HEADER_LENGTH}`)
      }
      if (length > this.maxStartupLength) {
        throw this.fail('oversize', `startup packet length ${length} exceeds the limit of ${this.maxStartupLength}`)
      }
      this.size = length
    }
    const packet = this.queue.take(this.size)
    if (packet === undefined) return undefined
    this.size = 0
    return packet
  }

  /**
   * Every byte pushed after the last returned packet (a partly received packet included), as
   * chunks to push into the next framer; empties this framer.
   */
  drain(): Buffer[] {
    this.size = 0
    return this.queue.drain()
  }

  private fail(code: ProtocolErrorCode, message: string): ProtocolError {
    this.failure = new ProtocolError(code, message)
    return this.failure
  }
}

/** A decoded startup packet. */
export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; processId: number; secretKey: Buffer }
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> }

/**
 * Decodes one packet returned by {@link StartupFramer.next} (length field included).
 * Throws {@link ProtocolError}: `malformed` for a bad layout, `unsupported` for a protocol major
 * version other than 3 or an unknown 1234.x request code. The caller decides which 3.x minor
 * versions to accept (a server answers higher ones with NegotiateProtocolVersion).
 */
export function parseStartupPacket(packet: Buffer): StartupPacket {
  if (packet.length < STARTUP_HEADER_LENGTH) {
    throw new ProtocolError('malformed', `startup packet of ${packet.length} bytes is below ${STARTUP_HEADER_LENGTH}`)
  }
  if (packet.readInt32BE(0) !== packet.length) {
    throw new ProtocolError('malformed', 'startup packet length field does not match its size')
  }
  const code = packet.readInt32BE(4)
  switch (code) {
    case SSL_REQUEST_CODE:
    case GSSENC_REQUEST_CODE:
      if (packet.length !== STARTUP_HEADER_LENGTH) {
        throw new ProtocolError('malformed', 'encryption request carries a payload')
      }
      return { kind: code === SSL_REQUEST_CODE ? 'ssl' : 'gssenc' }
    case CANCEL_REQUEST_CODE: {
      // Int32 process id, then the secret key: 4 bytes in 3.0, 4..256 bytes in 3.2.
      const keyLength = packet.length - 12
      if (keyLength < MIN_CANCEL_KEY_LENGTH || keyLength > MAX_CANCEL_KEY_LENGTH) {
        throw new ProtocolError('malformed', `cancel key of ${keyLength} bytes is outside [4, 256]`)
      }
      return { kind: 'cancel', processId: packet.readInt32BE(8), secretKey: packet.subarray(12) }
    }
  }
  const major = code >>> 16
  const minor = code & 0xffff
  if (major !== 3) throw new ProtocolError('unsupported', `unsupported protocol ${major}.${minor}`)
  return { kind: 'startup', major, minor, params: parseStartupParams(packet) }
}

/** Name/value pairs, each NUL-terminated, ending with an empty name (a lone NUL as last byte). */
function parseStartupParams(packet: Buffer): Map<string, string> {
  const params = new Map<string, string>()
  let offset = STARTUP_HEADER_LENGTH
  for (;;) {
    if (offset >= packet.length) throw new ProtocolError('malformed', 'startup parameters lack their terminator')
    if (packet[offset] === 0) break
    const nameEnd = packet.indexOf(0, offset)
    if (nameEnd < 0) throw new ProtocolError('malformed', 'startup parameter name lacks its NUL')
    const valueEnd = packet.indexOf(0, nameEnd + 1)
    if (valueEnd < 0) throw new ProtocolError('malformed', 'startup parameter value lacks its NUL')
    const name = decodeStartupString(packet, offset, nameEnd)
    if (params.has(name)) throw new ProtocolError('malformed', 'a startup parameter appears twice')
    params.set(name, decodeStartupString(packet, nameEnd + 1, valueEnd))
    offset = valueEnd + 1
  }
  if (offset !== packet.length - 1) throw new ProtocolError('malformed', 'bytes follow the startup parameters')
  return params
}

function decodeStartupString(packet: Buffer, start: number, end: number): string {
  if (!isUtf8(packet.subarray(start, end))) throw new ProtocolError('malformed', 'startup parameter is not valid UTF-8')
  return packet.toString('utf8', start, end)
}
