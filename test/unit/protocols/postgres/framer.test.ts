import { afterEach, describe, expect, it, vi } from 'vitest'

import {
  type Frame,
  MessageFramer,
  ProtocolError,
  type ProtocolErrorCode,
  StartupFramer,
  parseStartupPacket,
} from '../../../../src/protocols/postgres/framer.js'
import {
  BufferList,
  LARGE_VALUE_LENGTH,
  backendCorpus,
  be,
  fe,
  fixedChunks,
  frontendCorpus,
  header,
  message,
  patternBytes,
  prng,
  randomChunks,
  sameValue,
  startupCorpus,
} from '../../../helpers/pg-messages.js'

const MAX = 1 << 20

/** Pushes each chunk and collects every frame the framer yields after it. */
function frameAll(chunks: readonly Buffer[], framer = new MessageFramer({ maxMessageLength: MAX })): Frame[] {
  const frames: Frame[] = []
  for (const chunk of chunks) {
    framer.push(chunk)
    for (let frame = framer.next(); frame !== undefined; frame = framer.next()) frames.push(frame)
  }
  return frames
}

function packetsAll(chunks: readonly Buffer[], framer = new StartupFramer()): Buffer[] {
  const packets: Buffer[] = []
  for (const chunk of chunks) {
    framer.push(chunk)
    for (let packet = framer.next(); packet !== undefined; packet = framer.next()) packets.push(packet)
  }
  return packets
}

/** Whether `frames` are exactly `messages`, header fields consistent with the bytes. */
function framesMatch(frames: readonly Frame[], messages: readonly Buffer[]): boolean {
  if (frames.length !== messages.length) return false
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i]!
    const expected = messages[i]!
    if (!frame.raw.equals(expected)) return false
    if (frame.type !== expected[0] || frame.length !== expected.length - 1) return false
    if (frame.body.length !== expected.length - 5 || frame.body.buffer !== frame.raw.buffer) return false
    if (frame.body.byteOffset !== frame.raw.byteOffset + 5) return false
  }
  return true
}

function thrown(action: () => unknown): unknown {
  try {
    action()
  } catch (error) {
    return error
  }
  return undefined
}

function expectProtocolError(action: () => unknown, code: ProtocolErrorCode): void {
  const error = thrown(action)
  expect(error).toBeInstanceOf(ProtocolError)
  expect((error as ProtocolError).code).toBe(code)
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe.each([
  ['frontend', () => frontendCorpus().map((entry) => entry.bytes)],
  ['backend', () => backendCorpus().map((entry) => entry.bytes)],
])('MessageFramer over a %s stream of every message type', (_direction, build) => {
  const messages = build()
  const stream = Buffer.concat(messages)

  it('frames the whole stream in one chunk', () => {
    expect(framesMatch(frameAll([stream]), messages)).toBe(true)
  })

  it('frames the same messages when cut in two at every offset', () => {
    const failures: number[] = []
    for (let offset = 1; offset < stream.length; offset++) {
      const frames = frameAll([stream.subarray(0, offset), stream.subarray(offset)])
      if (!framesMatch(frames, messages)) failures.push(offset)
    }
    expect(failures).toEqual([])
  })

  it('frames the same messages from 1-byte chunks', () => {
    expect(framesMatch(frameAll(fixedChunks(stream, 1)), messages)).toBe(true)
  })

  it('frames the same messages from random chunkings', () => {
    const failures: string[] = []
    for (let seed = 1; seed <= 100; seed++) {
      const maxChunk = [3, 17, 256, 4096, 65536][seed % 5]!
      const frames = frameAll(randomChunks(stream, prng(seed), maxChunk))
      if (!framesMatch(frames, messages)) failures.push(`seed ${seed}`)
    }
    expect(failures).toEqual([])
  })

  it('returns nothing and holds every byte while a message is incomplete', () => {
    const framer = new MessageFramer({ maxMessageLength: MAX })
    const first = messages[0]!
    framer.push(first.subarray(0, first.length - 1))
    expect(framer.next()).toBeUndefined()
    expect(framer.next()).toBeUndefined()
    expect(framer.buffered).toBe(first.length - 1)
    framer.push(first.subarray(first.length - 1))
    expect(framer.next()?.raw.equals(first)).toBe(true)
    expect(framer.buffered).toBe(0)
    expect(framer.next()).toBeUndefined()
  })
})

/**
 * Frames as the relay reads them: before each `next`, the whole messages of the peeked type in
 * the current chunk taken with wholeRun and passed (as raw slices of that chunk), then `next`.
 */
function frameWithRuns(chunks: readonly Buffer[], framer = new MessageFramer({ maxMessageLength: MAX })): { raws: Buffer[]; passed: number } {
  const raws: Buffer[] = []
  const run = { count: 0, end: 0 }
  let passed = 0
  for (const chunk of chunks) {
    framer.push(chunk)
    for (;;) {
      const start = framer.peek()
      if (start !== undefined) {
        expect(framer.peekType()).toBe(start.chunk[start.offset])
        framer.wholeRun(start, framer.peekType(), run)
        for (let at = start.offset; at < run.end; at += 1 + start.chunk.readInt32BE(at + 1)) raws.push(start.chunk.subarray(at, at + 1 + start.chunk.readInt32BE(at + 1)))
        passed += run.count
        framer.pass(run.end - start.offset)
      }
      const frame = framer.next()
      if (frame === undefined) break
      raws.push(frame.raw)
    }
  }
  return { raws, passed }
}

describe.each([
  ['frontend', () => frontendCorpus().map((entry) => entry.bytes)],
  ['backend', () => backendCorpus().map((entry) => entry.bytes)],
])('MessageFramer read in runs (peek, wholeRun, pass) over a %s stream', (_direction, build) => {
  // Each message three times in a row, so that runs of one type exist.
  const messages = build().flatMap((message) => [message, message, message])
  const stream = Buffer.concat(messages)
  const same = (raws: readonly Buffer[]): boolean => raws.length === messages.length && raws.every((raw, i) => raw.equals(messages[i]!))

  it('yields the same messages as next alone, for every cut in two and random chunkings, and passes runs', () => {
    const failures: string[] = []
    let passed = 0
    for (let offset = 1; offset < stream.length; offset += 7) {
      const result = frameWithRuns([stream.subarray(0, offset), stream.subarray(offset)])
      if (!same(result.raws)) failures.push(`cut at ${offset}`)
      passed += result.passed
    }
    for (let seed = 1; seed <= 50; seed++) {
      const result = frameWithRuns(randomChunks(stream, prng(seed), [3, 17, 256, 4096, 65536][seed % 5]!))
      if (!same(result.raws)) failures.push(`seed ${seed}`)
    }
    expect(failures).toEqual([])
    expect(passed).toBeGreaterThan(messages.length)
    expect(same(frameWithRuns(fixedChunks(stream, 1)).raws)).toBe(true)
  })
})

describe('MessageFramer peek, wholeRun and pass', () => {
  it('peeks only at the start of a message that has not been read into', () => {
    const framer = new MessageFramer({ maxMessageLength: MAX })
    expect(framer.peek()).toBeUndefined()
    expect(framer.peekType()).toBe(-1)
    const query = fe.query('SELECT 1')
    framer.push(query.subarray(0, 3))
    expect(framer.peek()).toEqual({ chunk: query.subarray(0, 3), offset: 0 })
    expect(framer.peekType()).toBe(0x51)
    expect(framer.next()).toBeUndefined()
    // The header is not all there: still at the start.
    expect(framer.peek()?.offset).toBe(0)
    framer.push(query.subarray(3, 8))
    expect(framer.next()).toBeUndefined()
    // The header has been read and the body is being assembled: no place to read from.
    expect(framer.peek()).toBeUndefined()
    expect(framer.peekType()).toBe(-1)
    expect(() => framer.pass(0)).toThrow(RangeError)
    framer.push(query.subarray(8))
    expect(framer.next()?.raw.equals(query)).toBe(true)
    expect(framer.peek()).toBeUndefined()
  })

  it('stops a run at another type, a message cut off by the chunk, a bad length and one over the limit', () => {
    const framer = new MessageFramer({ maxMessageLength: 64 })
    const row = be.dataRow(['a', 'b'])
    const run = { count: 0, end: 0 }
    const chunkOf = (...parts: Buffer[]): { chunk: Buffer; offset: number } => ({ chunk: Buffer.concat(parts), offset: 0 })
    const cases: [string, { chunk: Buffer; offset: number }, number][] = [
      ['another type', chunkOf(row, row, be.commandComplete('SELECT 2'), row), 2],
      ['cut off', chunkOf(row, row.subarray(0, row.length - 1)), 1],
      ['a header cut off', chunkOf(row, row.subarray(0, 3)), 1],
      ['length below 4', chunkOf(row, header('D', 3), row), 1],
      ['length over the limit', chunkOf(row, header('D', 65), Buffer.alloc(64)), 1],
      ['a type other than asked at the start', chunkOf(be.commandComplete('SELECT 1'), row), 0],
    ]
    for (const [name, start, count] of cases) {
      framer.wholeRun(start, 0x44, run)
      expect({ name, count: run.count, end: run.end }).toEqual({ name, count, end: count * row.length })
    }
  })

  it('refuses to pass more than the chunk holds, and fails as next would after a bad header', () => {
    const framer = new MessageFramer({ maxMessageLength: MAX })
    const row = be.dataRow(['x'])
    framer.push(Buffer.concat([row, header('D', 2)]))
    const start = framer.peek()!
    expect(() => framer.pass(row.length + 6)).toThrow(RangeError)
    expect(() => framer.pass(-1)).toThrow(RangeError)
    const run = { count: 0, end: 0 }
    framer.wholeRun(start, 0x44, run)
    expect(run).toEqual({ count: 1, end: row.length })
    framer.pass(run.end)
    expectProtocolError(() => framer.next(), 'malformed')
    expect(framer.peek()).toBeUndefined()
    expectProtocolError(() => framer.pass(0), 'malformed')
  })
})

describe('MessageFramer memory', () => {
  it('returns subarrays of the chunk when it holds several whole messages', () => {
    const messages = [fe.query('SELECT 1'), fe.sync(), be.dataRow(['a', null])]
    const chunk = Buffer.concat(messages)
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe')
    const frames = frameAll([chunk])
    expect(allocUnsafe).not.toHaveBeenCalled()
    let offset = 0
    for (const [i, frame] of frames.entries()) {
      expect(frame.raw.buffer).toBe(chunk.buffer)
      expect(frame.raw.byteOffset).toBe(chunk.byteOffset + offset)
      offset += messages[i]!.length
    }
  })

  it('copies a message split across chunks once, into a buffer of its exact size', () => {
    const big = be.dataRow([patternBytes(LARGE_VALUE_LENGTH)])
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe')
    const frames = frameAll(fixedChunks(big, 1))
    expect(allocUnsafe).toHaveBeenCalledTimes(1)
    expect(allocUnsafe).toHaveBeenCalledWith(big.length)
    expect(frames).toHaveLength(1)
    expect(frames[0]!.raw.equals(big)).toBe(true)
  })

  it('copies a message whose header is split across chunks once', () => {
    const query = fe.query('SELECT 42')
    const chunks = [Buffer.concat([fe.sync(), query.subarray(0, 3)]), query.subarray(3)]
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe')
    const frames = frameAll(chunks)
    expect(allocUnsafe).toHaveBeenCalledTimes(1)
    allocUnsafe.mockRestore()
    expect(frames.map((frame) => frame.raw.toString('hex'))).toEqual([fe.sync().toString('hex'), query.toString('hex')])
  })

  it('ignores empty chunks', () => {
    const query = fe.query('x')
    expect(framesMatch(frameAll([Buffer.alloc(0), query.subarray(0, 2), Buffer.alloc(0), query.subarray(2)]), [query])).toBe(
      true,
    )
  })

  it('accepts a length equal to maxMessageLength', () => {
    const framer = new MessageFramer({ maxMessageLength: 9 })
    const frames = frameAll([message('d', Buffer.from('12345'))], framer)
    expect(frames[0]?.length).toBe(9)
  })
})

/** Adversarial headers, as data: each must fail as soon as its 5 header bytes are in. */
const BAD_HEADERS: { name: string; bytes: Buffer; max?: number; code: ProtocolErrorCode }[] = [
  { name: 'length 0', bytes: header('Q', 0), code: 'malformed' },
  { name: 'length 1', bytes: header('Q', 1), code: 'malformed' },
  { name: 'length 2', bytes: header('D', 2), code: 'malformed' },
  { name: 'length 3', bytes: header('S', 3), code: 'malformed' },
  { name: 'length 0x80000000 (negative)', bytes: header('D', 0x80000000), code: 'malformed' },
  { name: 'length 0xffffffff (-1)', bytes: header('D', 0xffffffff), code: 'malformed' },
  { name: 'length max + 1', bytes: header('D', 1025), max: 1024, code: 'oversize' },
  { name: 'length 0x7fffffff', bytes: header('d', 0x7fffffff), code: 'oversize' },
  { name: 'length 2^30 with a body following', bytes: Buffer.concat([header('D', 0x40000000), Buffer.alloc(64)]), code: 'oversize' },
]

describe('MessageFramer rejects bad lengths', () => {
  it.each(BAD_HEADERS)('$name → $code, before allocating, at every cut', ({ bytes, max, code }) => {
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe')
    const alloc = vi.spyOn(Buffer, 'alloc')
    for (let offset = 0; offset <= bytes.length; offset++) {
      const framer = new MessageFramer({ maxMessageLength: max ?? MAX })
      framer.push(bytes.subarray(0, offset))
      if (offset < 5) {
        expect(framer.next()).toBeUndefined()
        framer.push(bytes.subarray(offset))
      }
      expectProtocolError(() => framer.next(), code)
    }
    expect(allocUnsafe).not.toHaveBeenCalled()
    expect(alloc).not.toHaveBeenCalled()
  })

  it('fails after the good messages that precede a bad header, and keeps failing', () => {
    const framer = new MessageFramer({ maxMessageLength: MAX })
    framer.push(Buffer.concat([fe.sync(), fe.query('SELECT 1'), header('Q', 2), fe.sync()]))
    expect(framer.next()?.type).toBe(0x53)
    expect(framer.next()?.type).toBe(0x51)
    expectProtocolError(() => framer.next(), 'malformed')
    framer.push(fe.sync())
    expectProtocolError(() => framer.next(), 'malformed')
  })

  it.each([3, 0, -1, 1.5, 2 ** 31, Number.NaN])('refuses maxMessageLength %d', (maxMessageLength) => {
    expect(() => new MessageFramer({ maxMessageLength })).toThrow(RangeError)
  })
})

describe('StartupFramer and parseStartupPacket', () => {
  const corpus = startupCorpus()
  const stream = Buffer.concat(corpus.map((entry) => entry.bytes))

  function packetsMatch(packets: readonly Buffer[]): boolean {
    if (packets.length !== corpus.length) return false
    return packets.every(
      (packet, i) => packet.equals(corpus[i]!.bytes) && sameValue(parseStartupPacket(packet), corpus[i]!.expected),
    )
  }

  it.each(corpus)('parses $name', ({ bytes, expected }) => {
    expect(parseStartupPacket(bytes)).toEqual(expected)
  })

  it('yields every packet of the stream in one chunk', () => {
    expect(packetsMatch(packetsAll([stream]))).toBe(true)
  })

  it('yields the same packets when cut in two at every offset', () => {
    const failures: number[] = []
    for (let offset = 1; offset < stream.length; offset++) {
      if (!packetsMatch(packetsAll([stream.subarray(0, offset), stream.subarray(offset)]))) failures.push(offset)
    }
    expect(failures).toEqual([])
  })

  it('yields the same packets from 1-byte chunks and random chunkings', () => {
    expect(packetsMatch(packetsAll(fixedChunks(stream, 1)))).toBe(true)
    for (let seed = 1; seed <= 100; seed++) {
      expect(packetsMatch(packetsAll(randomChunks(stream, prng(seed), 1 + (seed % 40))))).toBe(true)
    }
  })

  it('returns the startup packet as a subarray when it lies in one chunk', () => {
    const packet = fe.sslRequest()
    const chunk = Buffer.concat([packet, fe.startup({ user: 'a' })])
    const [first] = packetsAll([chunk])
    expect(first?.buffer).toBe(chunk.buffer)
  })

  it('hands the bytes after the StartupMessage to a MessageFramer, at every cut', () => {
    const startup = fe.startup({ user: 'alice', database: 'app' })
    const typed = [fe.password('secret'), fe.query('SELECT 1'), fe.terminate()]
    const stream = Buffer.concat([startup, ...typed])
    for (let offset = 0; offset <= stream.length; offset++) {
      const startupFramer = new StartupFramer()
      const messages = new MessageFramer({ maxMessageLength: MAX })
      const chunks = [stream.subarray(0, offset), stream.subarray(offset)]
      let packet: Buffer | undefined
      let rest: Buffer[] = []
      for (const [i, chunk] of chunks.entries()) {
        if (packet === undefined) {
          startupFramer.push(chunk)
          packet = startupFramer.next()
          if (packet !== undefined) {
            expect(startupFramer.buffered).toBe(i === 0 ? offset - startup.length : stream.length - startup.length)
            rest = startupFramer.drain()
            expect(startupFramer.buffered).toBe(0)
            for (const part of rest) messages.push(part)
          }
        } else {
          messages.push(chunk)
        }
      }
      expect(packet?.equals(startup)).toBe(true)
      const frames: Frame[] = []
      for (let frame = messages.next(); frame !== undefined; frame = messages.next()) frames.push(frame)
      expect(framesMatch(frames, typed)).toBe(true)
    }
  })

  it('drains a partly received packet as well', () => {
    const framer = new StartupFramer()
    const startup = fe.startup({ user: 'alice' })
    framer.push(startup.subarray(0, 6))
    expect(framer.next()).toBeUndefined()
    framer.push(startup.subarray(6, 12))
    expect(framer.next()).toBeUndefined()
    expect(Buffer.concat(framer.drain()).equals(startup.subarray(0, 12))).toBe(true)
    framer.push(startup)
    expect(framer.next()?.equals(startup)).toBe(true)
  })

  /** Adversarial startup lengths, as data. */
  const BAD_LENGTHS: { name: string; length: number; max?: number; code: ProtocolErrorCode }[] = [
    ...[0, 1, 2, 3, 4, 5, 6, 7].map((length) => ({ name: `length ${length}`, length, code: 'malformed' as const })),
    { name: 'length 0x80000000', length: 0x80000000, code: 'malformed' },
    { name: 'length 0xffffffff', length: 0xffffffff, code: 'malformed' },
    { name: 'length 10001 (default max 10000)', length: 10_001, code: 'oversize' },
    { name: 'length 0x7fffffff', length: 0x7fffffff, code: 'oversize' },
    { name: 'length 65 over a max of 64', length: 65, max: 64, code: 'oversize' },
  ]

  it.each(BAD_LENGTHS)('framer: $name → $code from the 4 length bytes alone', ({ length, max, code }) => {
    const framer = new StartupFramer(max === undefined ? {} : { maxStartupLength: max })
    const bytes = new BufferList().int32(length).body()
    const allocUnsafe = vi.spyOn(Buffer, 'allocUnsafe')
    framer.push(bytes.subarray(0, 2))
    expect(framer.next()).toBeUndefined()
    framer.push(bytes.subarray(2))
    expectProtocolError(() => framer.next(), code)
    expectProtocolError(() => framer.next(), code)
    expect(allocUnsafe).not.toHaveBeenCalled()
  })

  it('accepts a packet of exactly maxStartupLength', () => {
    const packet = fe.startup({ user: 'x'.repeat(100) })
    expect(packetsAll([packet], new StartupFramer({ maxStartupLength: packet.length }))).toHaveLength(1)
    expectProtocolError(() => packetsAll([packet], new StartupFramer({ maxStartupLength: packet.length - 1 })), 'oversize')
  })

  const params = (...parts: (string | Buffer)[]): Buffer => {
    const list = new BufferList().int32(196608)
    for (const part of parts) list.add(typeof part === 'string' ? Buffer.from(part, 'utf8') : part)
    return list.join()
  }

  /** Adversarial packets for parseStartupPacket, as data. */
  const BAD_PACKETS: { name: string; bytes: Buffer; code: ProtocolErrorCode }[] = [
    { name: 'shorter than 8 bytes', bytes: Buffer.from([0, 0, 0, 4, 0, 3, 0]), code: 'malformed' },
    { name: 'length field not the packet size', bytes: Buffer.concat([fe.startup({ user: 'a' }), Buffer.from([0])]), code: 'malformed' },
    { name: 'SSLRequest with a payload', bytes: new BufferList().int32(80877103).int8(0).join(), code: 'malformed' },
    { name: 'GSSENCRequest with a payload', bytes: new BufferList().int32(80877104).int32(0).join(), code: 'malformed' },
    { name: 'CancelRequest without a key', bytes: new BufferList().int32(80877102).int32(1).join(), code: 'malformed' },
    { name: 'CancelRequest with a 3-byte key', bytes: fe.cancelRequest(1, Buffer.from([1, 2, 3])), code: 'malformed' },
    { name: 'CancelRequest with a 257-byte key', bytes: fe.cancelRequest(1, patternBytes(257)), code: 'malformed' },
    { name: 'CancelRequest without a process id', bytes: new BufferList().int32(80877102).join(), code: 'malformed' },
    { name: 'no parameters and no terminator', bytes: params(), code: 'malformed' },
    { name: 'missing final terminator', bytes: params('user\0alice\0'), code: 'malformed' },
    { name: 'name without NUL', bytes: params('user'), code: 'malformed' },
    { name: 'name without value', bytes: params('user\0'), code: 'malformed' },
    { name: 'value without NUL', bytes: params('user\0alice'), code: 'malformed' },
    { name: 'duplicate name', bytes: params('user\0a\0user\0b\0\0'), code: 'malformed' },
    { name: 'bytes after the terminator', bytes: params('user\0a\0\0x'), code: 'malformed' },
    { name: 'two terminators', bytes: params('user\0a\0\0\0'), code: 'malformed' },
    { name: 'name not UTF-8', bytes: params(Buffer.from([0xff, 0]), 'a\0\0'), code: 'malformed' },
    { name: 'value not UTF-8 (overlong NUL)', bytes: params('user\0', Buffer.from([0xc0, 0x80, 0]), '\0'), code: 'malformed' },
    { name: 'value with a lone surrogate', bytes: params('user\0', Buffer.from([0xed, 0xa0, 0x80, 0]), '\0'), code: 'malformed' },
    { name: 'protocol 2.0', bytes: fe.startup({ user: 'a' }, 0x20000), code: 'unsupported' },
    { name: 'protocol 4.0', bytes: fe.startup({ user: 'a' }, 0x40000), code: 'unsupported' },
    { name: 'unknown 1234.9999 request', bytes: new BufferList().int32((1234 << 16) | 9999).join(), code: 'unsupported' },
    { name: 'negative code', bytes: new BufferList().int32(-1).int8(0).join(), code: 'unsupported' },
  ]

  it.each(BAD_PACKETS)('parseStartupPacket: $name → $code', ({ bytes, code }) => {
    expectProtocolError(() => parseStartupPacket(bytes), code)
  })

  it('reports 3.x minor versions for the caller to negotiate', () => {
    expect(parseStartupPacket(fe.startup({ user: 'a' }, 0x30009))).toMatchObject({ kind: 'startup', major: 3, minor: 9 })
  })
})
