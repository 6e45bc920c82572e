import { describe, expect, it } from 'vitest'

import { MessageFramer, ProtocolError, type ProtocolErrorCode } from '../../../../src/protocols/postgres/framer.js'
import {
  type CopyResponse,
  type DescribeTarget,
  type ErrorFields,
  type FieldDescription,
  type FunctionCallMessage,
  type Notification,
  type TransactionState,
  getField,
  parseAuthentication,
  parseBackendKeyData,
  parseBind,
  parseClose,
  parseCommandComplete,
  parseCopyFail,
  parseCopyResponse,
  parseDataRow,
  parseDescribe,
  parseErrorFields,
  parseExecute,
  parseFunctionCall,
  parseFunctionCallResponse,
  parseNegotiateProtocolVersion,
  parseNotification,
  parseParameterDescription,
  parseParameterStatus,
  parseParse,
  parsePassword,
  parseQuery,
  parseReadyForQuery,
  parseRowDescription,
  parseSaslInitialResponse,
  parseSaslMechanisms,
  serializeAuthentication,
  serializeBackendKeyData,
  serializeBind,
  serializeCancelRequest,
  serializeClose,
  serializeCommandComplete,
  serializeCopyData,
  serializeCopyDone,
  serializeCopyFail,
  serializeCopyResponse,
  serializeDataRow,
  serializeDescribe,
  serializeEmptyMessage,
  serializeEmptyQueryResponse,
  serializeErrorFields,
  serializeErrorResponse,
  serializeExecute,
  serializeFlush,
  serializeFunctionCall,
  serializeFunctionCallResponse,
  serializeGSSENCRequest,
  serializeNegotiateProtocolVersion,
  serializeNoticeResponse,
  serializeNotification,
  serializeParameterDescription,
  serializeParameterStatus,
  serializeParse,
  serializePassword,
  serializeQuery,
  serializeReadyForQuery,
  serializeRowDescription,
  serializeSSLRequest,
  serializeSaslInitialResponse,
  serializeSaslResponse,
  serializeStartup,
  serializeSync,
  serializeTerminate,
} from '../../../../src/protocols/postgres/messages.js'
import { AuthenticationType, BackendMessage, ErrorField, PROTOCOL_3_2 } from '../../../../src/protocols/postgres/protocol.js'
import {
  type BackendKind,
  BufferList,
  type CorpusEntry,
  type FrontendKind,
  backendCorpus,
  be,
  fe,
  fixedChunks,
  frontendCorpus,
  patternBytes,
  prng,
  randomChunks,
  sameValue,
} from '../../../helpers/pg-messages.js'

type Parser = (body: Buffer) => unknown

/** Body-less messages have no parser; their body must be empty. */
function empty(body: Buffer): null {
  if (body.length !== 0) throw new Error(`expected an empty body, got ${body.length} bytes`)
  return null
}

/** CopyData and SASLResponse carry raw bytes. */
const raw = (body: Buffer): Buffer => body

const FRONTEND_PARSERS: Record<FrontendKind, Parser> = {
  Query: parseQuery,
  Parse: parseParse,
  Bind: parseBind,
  Describe: parseDescribe,
  Close: parseClose,
  Execute: parseExecute,
  FunctionCall: parseFunctionCall,
  Sync: empty,
  Flush: empty,
  Terminate: empty,
  Password: parsePassword,
  SASLInitialResponse: parseSaslInitialResponse,
  SASLResponse: raw,
  CopyData: raw,
  CopyDone: empty,
  CopyFail: parseCopyFail,
}

function parseAuthenticationAndMechanisms(body: Buffer): unknown {
  const authentication = parseAuthentication(body)
  if (authentication.type !== AuthenticationType.SASL) return authentication
  return { ...authentication, mechanisms: parseSaslMechanisms(authentication.data) }
}

const BACKEND_PARSERS: Record<BackendKind, Parser> = {
  Authentication: parseAuthenticationAndMechanisms,
  ParameterStatus: parseParameterStatus,
  BackendKeyData: parseBackendKeyData,
  ReadyForQuery: parseReadyForQuery,
  CommandComplete: parseCommandComplete,
  ErrorResponse: parseErrorFields,
  NoticeResponse: parseErrorFields,
  RowDescription: parseRowDescription,
  DataRow: parseDataRow,
  ParseComplete: empty,
  BindComplete: empty,
  CloseComplete: empty,
  NoData: empty,
  EmptyQueryResponse: empty,
  PortalSuspended: empty,
  CopyInResponse: parseCopyResponse,
  CopyOutResponse: parseCopyResponse,
  CopyBothResponse: parseCopyResponse,
  CopyData: raw,
  CopyDone: empty,
  NotificationResponse: parseNotification,
  ParameterDescription: parseParameterDescription,
  FunctionCallResponse: parseFunctionCallResponse,
  NegotiateProtocolVersion: parseNegotiateProtocolVersion,
}

// Serializers take what the parser returned; `as` narrows the corpus's `unknown`.
const FRONTEND_SERIALIZERS: Record<FrontendKind, (value: unknown) => Buffer> = {
  Query: (value) => serializeQuery(value as string),
  Parse: (value) => serializeParse(value as { name: string; query: string; paramTypes: number[] }),
  Bind: (value) => serializeBind(value as Parameters<typeof serializeBind>[0]),
  Describe: (value) => serializeDescribe(value as DescribeTarget),
  Close: (value) => serializeClose(value as DescribeTarget),
  Execute: (value) => serializeExecute(value as { portal: string; maxRows: number }),
  FunctionCall: (value) => serializeFunctionCall(value as FunctionCallMessage),
  Sync: () => serializeSync(),
  Flush: () => serializeFlush(),
  Terminate: () => serializeTerminate(),
  Password: (value) => serializePassword(value as string),
  SASLInitialResponse: (value) => {
    const { mechanism, data } = value as { mechanism: string; data: Buffer | null }
    return serializeSaslInitialResponse(mechanism, data)
  },
  SASLResponse: (value) => serializeSaslResponse(value as Buffer),
  CopyData: (value) => serializeCopyData(value as Buffer),
  CopyDone: () => serializeCopyDone(),
  CopyFail: (value) => serializeCopyFail(value as string),
}

const BACKEND_SERIALIZERS: Record<BackendKind, (value: unknown) => Buffer> = {
  Authentication: (value) => {
    const { type, data } = value as { type: number; data: Buffer }
    return serializeAuthentication(type, data.length === 0 ? undefined : data)
  },
  ParameterStatus: (value) => {
    const { name, value: setting } = value as { name: string; value: string }
    return serializeParameterStatus(name, setting)
  },
  BackendKeyData: (value) => {
    const { processId, secretKey } = value as { processId: number; secretKey: Buffer }
    return serializeBackendKeyData(processId, secretKey)
  },
  ReadyForQuery: (value) => serializeReadyForQuery(value as TransactionState),
  CommandComplete: (value) => serializeCommandComplete(value as string),
  ErrorResponse: (value) => serializeErrorResponse(value as ErrorFields),
  NoticeResponse: (value) => serializeNoticeResponse(value as ErrorFields),
  RowDescription: (value) => serializeRowDescription(value as FieldDescription[]),
  DataRow: (value) => serializeDataRow(value as (Buffer | null)[]),
  ParseComplete: () => serializeEmptyMessage(BackendMessage.ParseComplete),
  BindComplete: () => serializeEmptyMessage(BackendMessage.BindComplete),
  CloseComplete: () => serializeEmptyMessage(BackendMessage.CloseComplete),
  NoData: () => serializeEmptyMessage(BackendMessage.NoData),
  EmptyQueryResponse: () => serializeEmptyQueryResponse(),
  PortalSuspended: () => serializeEmptyMessage(BackendMessage.PortalSuspended),
  CopyInResponse: (value) => serializeCopyResponse(BackendMessage.CopyInResponse, value as CopyResponse),
  CopyOutResponse: (value) => serializeCopyResponse(BackendMessage.CopyOutResponse, value as CopyResponse),
  CopyBothResponse: (value) => serializeCopyResponse(BackendMessage.CopyBothResponse, value as CopyResponse),
  CopyData: (value) => serializeCopyData(value as Buffer),
  CopyDone: () => serializeCopyDone(),
  NotificationResponse: (value) => serializeNotification(value as Notification),
  ParameterDescription: (value) => serializeParameterDescription(value as number[]),
  FunctionCallResponse: (value) => serializeFunctionCallResponse(value as Buffer | null),
  NegotiateProtocolVersion: (value) => {
    const { newestVersion, unrecognized } = value as { newestVersion: number; unrecognized: string[] }
    return serializeNegotiateProtocolVersion(newestVersion, unrecognized)
  },
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

const bodyOf = (bytes: Buffer): Buffer => bytes.subarray(5)

const directions = [
  { direction: 'frontend', corpus: frontendCorpus() as CorpusEntry<string>[], parsers: FRONTEND_PARSERS as Record<string, Parser> },
  { direction: 'backend', corpus: backendCorpus() as CorpusEntry<string>[], parsers: BACKEND_PARSERS as Record<string, Parser> },
]

describe.each(directions)('$direction parsers', ({ corpus, parsers }) => {
  it.each(corpus.map((entry, index) => ({ ...entry, index })))('#$index $kind parses to its value', (entry) => {
    expect(entry.bytes[0]).toBe(entry.type.charCodeAt(0))
    expect(parsers[entry.kind]!(bodyOf(entry.bytes))).toEqual(entry.expected)
  })

  /** Frames `chunks` and parses every frame; the first mismatch with the corpus, if any. */
  function mismatch(chunks: readonly Buffer[]): string | undefined {
    const framer = new MessageFramer({ maxMessageLength: 1 << 20 })
    let index = 0
    for (const chunk of chunks) {
      framer.push(chunk)
      for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
        const entry = corpus[index]
        if (entry === undefined) return `extra frame ${frame.type}`
        if (frame.type !== entry.type.charCodeAt(0)) return `#${index}: type ${frame.type}`
        if (!sameValue(parsers[entry.kind]!(frame.body), entry.expected)) return `#${index} ${entry.kind}: value differs`
        index++
      }
    }
    return index === corpus.length ? undefined : `only ${index} of ${corpus.length} frames`
  }

  const stream = Buffer.concat(corpus.map((entry) => entry.bytes))

  /** Offsets deep inside a long message (more than 512 bytes from either end) all take the same path. */
  const interior = (() => {
    const ranges: [number, number][] = []
    let start = 0
    for (const entry of corpus) {
      if (entry.bytes.length > 4096) ranges.push([start + 512, start + entry.bytes.length - 512])
      start += entry.bytes.length
    }
    return (offset: number) => ranges.some(([from, to]) => offset > from && offset < to)
  })()

  it('parse the same values when the stream is cut in two at every offset', () => {
    const failures: string[] = []
    for (let offset = 0; offset <= stream.length; offset++) {
      // Every offset, except that inside a long value only every 97th is cut: each cut there
      // copies the whole value, and they all exercise the same path.
      if (interior(offset) && offset % 97 !== 0) continue
      const failure = mismatch([stream.subarray(0, offset), stream.subarray(offset)])
      if (failure !== undefined) failures.push(`cut at ${offset}: ${failure}`)
    }
    expect(failures).toEqual([])
  })

  it('parse the same values from 1-byte chunks and random chunkings', () => {
    expect(mismatch(fixedChunks(stream, 1))).toBeUndefined()
    for (let seed = 1; seed <= 50; seed++) {
      expect(mismatch(randomChunks(stream, prng(seed), [2, 9, 100, 5000, 80_000][seed % 5]!))).toBeUndefined()
    }
  })

  it('reject every truncation of every body with malformed (or parse a shorter raw value)', () => {
    for (const entry of corpus) {
      const body = bodyOf(entry.bytes)
      const parse = parsers[entry.kind]!
      const rawTail = hasRawTail(entry)
      for (let length = 0; length < body.length; length++) {
        // Inside a long value every cut takes the same path: sample it.
        if (length > 512 && length < body.length - 512 && length % 251 !== 0) continue
        // A copy, so that a read past the end cannot land in the rest of the corpus buffer.
        const truncated = Buffer.from(body.subarray(0, length))
        const error = thrown(() => parse(truncated))
        if (error === undefined && rawTail) continue
        expect(error, `${entry.kind} cut to ${length} of ${body.length}`).toBeInstanceOf(ProtocolError)
        expect((error as ProtocolError).code).toBe('malformed')
      }
    }
  })

  it('reject a trailing byte after the last field', () => {
    for (const entry of corpus) {
      if (hasRawTail(entry) || entry.expected === null) continue
      const body = Buffer.concat([bodyOf(entry.bytes), Buffer.from([0])])
      expectProtocolError(() => parsers[entry.kind]!(body), 'malformed')
    }
  })
})

/** Messages whose last field is "the rest of the body": any prefix or extension is well-formed. */
function hasRawTail(entry: CorpusEntry<string>): boolean {
  if (entry.kind === 'CopyData' || entry.kind === 'SASLResponse' || entry.kind === 'BackendKeyData') return true
  if (entry.kind !== 'Authentication') return false
  const { type } = entry.expected as { type: number }
  return type === AuthenticationType.SASLContinue || type === AuthenticationType.SASLFinal
}

describe.each([
  { direction: 'frontend', corpus: frontendCorpus() as CorpusEntry<string>[], serializers: FRONTEND_SERIALIZERS as Record<string, (value: unknown) => Buffer> },
  { direction: 'backend', corpus: backendCorpus() as CorpusEntry<string>[], serializers: BACKEND_SERIALIZERS as Record<string, (value: unknown) => Buffer> },
])('$direction serializers', ({ corpus, serializers }) => {
  it.each(corpus.map((entry, index) => ({ ...entry, index })))('#$index $kind serializes to the builder bytes', (entry) => {
    const bytes = serializers[entry.kind]!(entry.expected)
    expect(bytes.toString('hex')).toBe(entry.bytes.toString('hex'))
    expect(bytes.readInt32BE(1)).toBe(bytes.length - 1)
  })
})

describe('untyped frontend serializers', () => {
  it('match the builders', () => {
    const params = { user: 'alice', database: 'app', application_name: 'airlock/ü' }
    expect(serializeStartup(params).equals(fe.startup(params))).toBe(true)
    expect(serializeStartup({ user: 'bob' }, PROTOCOL_3_2).equals(fe.startup({ user: 'bob' }, 196610))).toBe(true)
    expect(serializeStartup({}).equals(fe.startup({}))).toBe(true)
    expect(serializeSSLRequest().equals(fe.sslRequest())).toBe(true)
    expect(serializeGSSENCRequest().equals(fe.gssencRequest())).toBe(true)
    const key = patternBytes(32)
    expect(serializeCancelRequest(-5, key).equals(fe.cancelRequest(-5, key))).toBe(true)
    expect(serializeCancelRequest(5, Buffer.from([1, 2, 3, 4])).equals(fe.cancelRequest(5, Buffer.from([1, 2, 3, 4])))).toBe(true)
  })

  it('fill Bind and Execute defaults', () => {
    expect(serializeBind({}).equals(fe.bind({}))).toBe(true)
    expect(serializeExecute().equals(fe.execute('', 0))).toBe(true)
    expect(serializeParse({ query: 'SELECT 1' }).equals(fe.parse('', 'SELECT 1'))).toBe(true)
  })

  it('write a NoticeResponse through serializeErrorFields', () => {
    const fields: ErrorFields = [[ErrorField.Severity, 'WARNING'], [ErrorField.Message, 'careful']]
    expect(serializeErrorFields(BackendMessage.NoticeResponse, fields).equals(be.noticeResponse([['S', 'WARNING'], ['M', 'careful']]))).toBe(
      true,
    )
  })
})

describe('parser details', () => {
  it('returns DataRow and Bind values as subarrays of the body, not copies', () => {
    const body = bodyOf(be.dataRow(['abc', null, 'de']))
    const [first, second, third] = parseDataRow(body)
    expect(second).toBeNull()
    expect(first!.buffer).toBe(body.buffer)
    expect(first!.byteOffset).toBe(body.byteOffset + 2 + 4)
    expect(third!.byteOffset).toBe(body.byteOffset + 2 + 4 + 3 + 4 + 4)
    const bind = bodyOf(fe.bind({ params: ['x'] }))
    expect(parseBind(bind).params[0]!.buffer).toBe(bind.buffer)
  })

  it('keeps strings byte-exact: a BOM and multi-byte text survive', () => {
    expect(parseQuery(bodyOf(fe.query('\uFEFFSELECT 1 -- 🐘')))).toBe('\uFEFFSELECT 1 -- 🐘')
  })

  it('reads unsigned counts: 65535 values in a DataRow', () => {
    const values = Array.from({ length: 0xffff }, (_, i) => (i % 7 === 0 ? null : String(i % 10)))
    const parsed = parseDataRow(bodyOf(be.dataRow(values)))
    expect(parsed).toHaveLength(0xffff)
    expect(parsed[0]).toBeNull()
    expect(parsed[0xfffd]!.toString()).toBe(String(0xfffd % 10))
    expect(serializeDataRow(parsed).equals(be.dataRow(values))).toBe(true)
  })

  it('finds error fields by code, first occurrence first', () => {
    const fields = parseErrorFields(bodyOf(be.errorResponse([['C', '42501'], ['M', 'denied'], ['M', 'again']])))
    expect(getField(fields, ErrorField.Code)).toBe('42501')
    expect(getField(fields, ErrorField.Message)).toBe('denied')
    expect(getField(fields, ErrorField.Hint)).toBeUndefined()
  })

  it('splits SASL mechanism lists', () => {
    expect(parseSaslMechanisms(Buffer.from('SCRAM-SHA-256\0\0'))).toEqual(['SCRAM-SHA-256'])
    expect(parseSaslMechanisms(Buffer.from('\0'))).toEqual([])
  })
})

const body = (): BufferList => new BufferList()

const PARSERS = {
  parseQuery,
  parseParse,
  parseBind,
  parseExecute,
  parseDescribe,
  parseClose,
  parseFunctionCall,
  parsePassword,
  parseSaslInitialResponse,
  parseCopyFail,
  parseAuthentication,
  parseSaslMechanisms,
  parseParameterStatus,
  parseBackendKeyData,
  parseReadyForQuery,
  parseCommandComplete,
  parseErrorFields,
  parseRowDescription,
  parseDataRow,
  parseNotification,
  parseCopyResponse,
  parseParameterDescription,
  parseFunctionCallResponse,
  parseNegotiateProtocolVersion,
} satisfies Record<string, Parser>

/** Adversarial bodies, as data: every one must fail with a ProtocolError of `code`. */
const BAD_BODIES: { parser: keyof typeof PARSERS; name: string; body: Buffer; code: ProtocolErrorCode }[] = [
  { parser: 'parseQuery', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseQuery', name: 'no NUL terminator', body: body().string('SELECT 1').body(), code: 'malformed' },
  { parser: 'parseQuery', name: 'bytes after the NUL', body: body().cstring('SELECT 1').string('; DROP').body(), code: 'malformed' },
  { parser: 'parseQuery', name: 'invalid UTF-8 byte 0xff', body: Buffer.from([0x53, 0xff, 0]), code: 'malformed' },
  { parser: 'parseQuery', name: 'overlong "/" (0xc0 0xaf)', body: Buffer.from([0xc0, 0xaf, 0]), code: 'malformed' },
  { parser: 'parseQuery', name: 'truncated 3-byte sequence', body: Buffer.from([0xe6, 0x97, 0]), code: 'malformed' },
  { parser: 'parseQuery', name: 'encoded UTF-16 surrogate', body: Buffer.from([0xed, 0xa0, 0x80, 0]), code: 'malformed' },
  { parser: 'parseParse', name: 'query without NUL', body: body().cstring('s').string('SELECT').body(), code: 'malformed' },
  { parser: 'parseParse', name: 'no parameter count', body: body().cstring('s').cstring('q').body(), code: 'malformed' },
  { parser: 'parseParse', name: 'half a parameter count', body: body().cstring('s').cstring('q').int8(0).body(), code: 'malformed' },
  { parser: 'parseParse', name: 'parameter count exceeds the body', body: body().cstring('').cstring('q').int16(2).int32(23).body(), code: 'malformed' },
  { parser: 'parseParse', name: 'parameter count 65535, no types', body: body().cstring('').cstring('q').int16(0xffff).body(), code: 'malformed' },
  { parser: 'parseParse', name: 'a type cut short', body: body().cstring('').cstring('q').int16(1).int16(23).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'portal without NUL', body: body().string('p').body(), code: 'malformed' },
  { parser: 'parseBind', name: 'format count exceeds the body', body: body().cstring('').cstring('').int16(3).int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'parameter count exceeds the body', body: body().cstring('').cstring('').int16(0).int16(2).value('a').int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'parameter count 65535', body: body().cstring('').cstring('').int16(0).int16(0xffff).int32(-1).int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'value length -2', body: body().cstring('').cstring('').int16(0).int16(1).int32(-2).int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'value length 0x80000000', body: body().cstring('').cstring('').int16(0).int16(1).int32(0x80000000).int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'value longer than the body', body: body().cstring('').cstring('').int16(0).int16(1).int32(100).string('abc').int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'value length 0x7fffffff', body: body().cstring('').cstring('').int16(0).int16(1).int32(0x7fffffff).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'no result format count', body: body().cstring('').cstring('').int16(0).int16(0).body(), code: 'malformed' },
  { parser: 'parseBind', name: 'result format count exceeds the body', body: body().cstring('').cstring('').int16(0).int16(0).int16(1).body(), code: 'malformed' },
  { parser: 'parseExecute', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseExecute', name: 'maxRows cut short', body: body().cstring('').int16(0).body(), code: 'malformed' },
  { parser: 'parseDescribe', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseDescribe', name: 'kind X', body: body().string('X').cstring('').body(), code: 'malformed' },
  { parser: 'parseDescribe', name: 'kind s (lower case)', body: body().string('s').cstring('').body(), code: 'malformed' },
  { parser: 'parseDescribe', name: 'name without NUL', body: body().string('S').string('stmt').body(), code: 'malformed' },
  { parser: 'parseClose', name: 'kind NUL', body: body().int8(0).cstring('').body(), code: 'malformed' },
  { parser: 'parseClose', name: 'kind only', body: body().string('P').body(), code: 'malformed' },
  { parser: 'parseFunctionCall', name: 'oid cut short', body: body().int16(1).body(), code: 'malformed' },
  { parser: 'parseFunctionCall', name: 'argument count exceeds the body', body: body().int32(1).int16(0).int16(9).int32(-1).int16(0).body(), code: 'malformed' },
  { parser: 'parseFunctionCall', name: 'no result format', body: body().int32(1).int16(0).int16(1).int32(-1).body(), code: 'malformed' },
  { parser: 'parsePassword', name: 'no NUL', body: body().string('secret').body(), code: 'malformed' },
  { parser: 'parseSaslInitialResponse', name: 'no data length', body: body().cstring('SCRAM-SHA-256').body(), code: 'malformed' },
  { parser: 'parseSaslInitialResponse', name: 'data length exceeds the body', body: body().cstring('SCRAM-SHA-256').int32(10).string('abc').body(), code: 'malformed' },
  { parser: 'parseSaslInitialResponse', name: 'data length -2', body: body().cstring('SCRAM-SHA-256').int32(-2).body(), code: 'malformed' },
  { parser: 'parseCopyFail', name: 'no NUL', body: body().string('oops').body(), code: 'malformed' },
  { parser: 'parseAuthentication', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseAuthentication', name: 'type cut short', body: Buffer.from([0, 0, 0]), code: 'malformed' },
  { parser: 'parseAuthentication', name: 'Ok with data', body: body().int32(0).int8(1).body(), code: 'malformed' },
  { parser: 'parseAuthentication', name: 'CleartextPassword with data', body: body().int32(3).int32(0).body(), code: 'malformed' },
  { parser: 'parseAuthentication', name: 'MD5Password with a 3-byte salt', body: body().int32(5).add([1, 2, 3]).body(), code: 'malformed' },
  { parser: 'parseAuthentication', name: 'MD5Password with a 5-byte salt', body: body().int32(5).add([1, 2, 3, 4, 5]).body(), code: 'malformed' },
  { parser: 'parseSaslMechanisms', name: 'empty data', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseSaslMechanisms', name: 'no closing empty name', body: body().cstring('SCRAM-SHA-256').body(), code: 'malformed' },
  { parser: 'parseSaslMechanisms', name: 'name without NUL', body: body().string('SCRAM').body(), code: 'malformed' },
  { parser: 'parseSaslMechanisms', name: 'bytes after the list', body: body().cstring('SCRAM-SHA-256').int8(0).string('x').body(), code: 'malformed' },
  { parser: 'parseParameterStatus', name: 'value missing', body: body().cstring('TimeZone').body(), code: 'malformed' },
  { parser: 'parseParameterStatus', name: 'value without NUL', body: body().cstring('TimeZone').string('UTC').body(), code: 'malformed' },
  { parser: 'parseBackendKeyData', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseBackendKeyData', name: 'no key', body: body().int32(1).body(), code: 'malformed' },
  { parser: 'parseBackendKeyData', name: '3-byte key', body: body().int32(1).add([1, 2, 3]).body(), code: 'malformed' },
  { parser: 'parseBackendKeyData', name: '257-byte key', body: body().int32(1).add(patternBytes(257)).body(), code: 'malformed' },
  { parser: 'parseReadyForQuery', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseReadyForQuery', name: 'status X', body: Buffer.from('X'), code: 'malformed' },
  { parser: 'parseReadyForQuery', name: 'status i (lower case)', body: Buffer.from('i'), code: 'malformed' },
  { parser: 'parseReadyForQuery', name: 'two bytes', body: Buffer.from('II'), code: 'malformed' },
  { parser: 'parseCommandComplete', name: 'no NUL', body: body().string('SELECT 1').body(), code: 'malformed' },
  { parser: 'parseCommandComplete', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseErrorFields', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseErrorFields', name: 'no terminator', body: body().string('S').cstring('ERROR').body(), code: 'malformed' },
  { parser: 'parseErrorFields', name: 'field code, then the end', body: body().string('M').body(), code: 'malformed' },
  { parser: 'parseErrorFields', name: 'value without NUL', body: body().string('M').string('boom').body(), code: 'malformed' },
  { parser: 'parseErrorFields', name: 'bytes after the terminator', body: body().string('M').cstring('boom').int8(0).string('C').body(), code: 'malformed' },
  { parser: 'parseErrorFields', name: 'value not UTF-8', body: body().string('M').add([0xfe, 0]).int8(0).body(), code: 'malformed' },
  { parser: 'parseRowDescription', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseRowDescription', name: 'count 1, no field', body: body().int16(1).body(), code: 'malformed' },
  { parser: 'parseRowDescription', name: 'count 65535', body: body().int16(0xffff).cstring('a').add(Buffer.alloc(18)).body(), code: 'malformed' },
  { parser: 'parseRowDescription', name: 'field cut after its name', body: body().int16(1).cstring('id').add(Buffer.alloc(20)).body().subarray(0, 2 + 3 + 10), code: 'malformed' },
  { parser: 'parseRowDescription', name: 'name without NUL', body: body().int16(1).string('x'.repeat(40)).body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseDataRow', name: 'count 65535, one value', body: body().int16(0xffff).value('a').body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'value length -2', body: body().int16(1).int32(-2).body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'value length 0xffffffff+1 pattern (0x80000000)', body: body().int16(1).int32(0x80000000).body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'value longer than the body', body: body().int16(1).int32(5).string('abcd').body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'value length 0x7fffffff', body: body().int16(1).int32(0x7fffffff).string('abcd').body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'length cut short', body: body().int16(1).int16(0).body(), code: 'malformed' },
  { parser: 'parseDataRow', name: 'bytes after the last value', body: body().int16(1).value('ab').int8(0).body(), code: 'malformed' },
  { parser: 'parseNotification', name: 'process id cut short', body: Buffer.from([0, 0]), code: 'malformed' },
  { parser: 'parseNotification', name: 'payload missing', body: body().int32(1).cstring('chan').body(), code: 'malformed' },
  { parser: 'parseCopyResponse', name: 'empty body', body: Buffer.alloc(0), code: 'malformed' },
  { parser: 'parseCopyResponse', name: 'format only', body: Buffer.from([0]), code: 'malformed' },
  { parser: 'parseCopyResponse', name: 'column count exceeds the body', body: body().int8(0).int16(3).int16(0).body(), code: 'malformed' },
  { parser: 'parseParameterDescription', name: 'count exceeds the body', body: body().int16(2).int32(23).body(), code: 'malformed' },
  { parser: 'parseFunctionCallResponse', name: 'length -2', body: body().int32(-2).body(), code: 'malformed' },
  { parser: 'parseFunctionCallResponse', name: 'result longer than the body', body: body().int32(8).int32(1).body(), code: 'malformed' },
  { parser: 'parseNegotiateProtocolVersion', name: 'negative count', body: body().int32(0).int32(-1).body(), code: 'malformed' },
  { parser: 'parseNegotiateProtocolVersion', name: 'count exceeds the body', body: body().int32(0).int32(0x7fffffff).cstring('a').body(), code: 'malformed' },
  { parser: 'parseNegotiateProtocolVersion', name: 'option without NUL', body: body().int32(0).int32(1).string('_pq_.x').body(), code: 'malformed' },
]

describe('adversarial bodies', () => {
  it.each(BAD_BODIES)('$parser: $name → $code', ({ parser, body, code }) => {
    // A copy, so that a read past the end would find nothing but guard pages of its own.
    expectProtocolError(() => PARSERS[parser](Buffer.from(body)), code)
  })

  it('random bodies only ever parse or throw ProtocolError', () => {
    const random = prng(42)
    const unexpected: string[] = []
    for (let round = 0; round < 3000; round++) {
      const length = Math.floor(random() * 48)
      const bytes = Buffer.alloc(length)
      for (let i = 0; i < length; i++) bytes[i] = random() < 0.3 ? 0 : Math.floor(random() * 256)
      for (const [name, parse] of Object.entries(PARSERS)) {
        const error = thrown(() => parse(bytes))
        if (error !== undefined && !(error instanceof ProtocolError)) unexpected.push(`${name}(${bytes.toString('hex')}): ${String(error)}`)
      }
    }
    expect(unexpected).toEqual([])
  })

  it('mutated corpus bodies only ever parse or throw ProtocolError', () => {
    const random = prng(7)
    const unexpected: string[] = []
    for (const { corpus, parsers } of directions) {
      for (const entry of corpus) {
        const original = bodyOf(entry.bytes)
        if (original.length === 0 || original.length > 1024) continue
        for (let round = 0; round < 200; round++) {
          const bytes = Buffer.from(original)
          const flips = 1 + Math.floor(random() * 3)
          for (let i = 0; i < flips; i++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
          const error = thrown(() => parsers[entry.kind]!(bytes))
          if (error !== undefined && !(error instanceof ProtocolError) && parsers[entry.kind] !== empty) {
            unexpected.push(`${entry.kind}(${bytes.toString('hex')}): ${String(error)}`)
          }
        }
      }
    }
    expect(unexpected).toEqual([])
  })
})

/** Values a serializer must refuse, as data. */
const BAD_VALUES: { name: string; serialize: () => Buffer; code: ProtocolErrorCode }[] = [
  { name: 'Query with a NUL', serialize: () => serializeQuery('SELECT 1\0; DROP TABLE t'), code: 'malformed' },
  { name: 'Parse name with a NUL', serialize: () => serializeParse({ name: 'a\0', query: 'x' }), code: 'malformed' },
  { name: 'Parse type OID -1', serialize: () => serializeParse({ query: 'x', paramTypes: [-1] }), code: 'malformed' },
  { name: 'Parse type OID 2^32', serialize: () => serializeParse({ query: 'x', paramTypes: [2 ** 32] }), code: 'malformed' },
  { name: 'Parse with 65536 types', serialize: () => serializeParse({ query: 'x', paramTypes: new Array<number>(65536).fill(0) }), code: 'oversize' },
  { name: 'Bind portal with a NUL', serialize: () => serializeBind({ portal: '\0' }), code: 'malformed' },
  { name: 'Bind format 32768', serialize: () => serializeBind({ paramFormats: [32768] }), code: 'malformed' },
  { name: 'Bind with 65536 values', serialize: () => serializeBind({ params: new Array<null>(65536).fill(null) }), code: 'oversize' },
  { name: 'Describe kind X', serialize: () => serializeDescribe({ kind: 'X' as 'S', name: '' }), code: 'malformed' },
  { name: 'Close name with a NUL', serialize: () => serializeClose({ kind: 'S', name: 's\0' }), code: 'malformed' },
  { name: 'Execute maxRows 2^31', serialize: () => serializeExecute({ maxRows: 2 ** 31 }), code: 'malformed' },
  { name: 'Execute maxRows 1.5', serialize: () => serializeExecute({ maxRows: 1.5 }), code: 'malformed' },
  { name: 'Password with a NUL', serialize: () => serializePassword('pass\0word'), code: 'malformed' },
  { name: 'SASL mechanism with a NUL', serialize: () => serializeSaslInitialResponse('SCRAM\0', Buffer.alloc(1)), code: 'malformed' },
  { name: 'CopyFail with a NUL', serialize: () => serializeCopyFail('\0'), code: 'malformed' },
  { name: 'Startup with an empty name', serialize: () => serializeStartup({ '': 'x' }), code: 'malformed' },
  { name: 'Startup name with a NUL', serialize: () => serializeStartup({ 'us\0er': 'x' }), code: 'malformed' },
  { name: 'Startup value with a NUL', serialize: () => serializeStartup({ user: 'a\0b' }), code: 'malformed' },
  { name: 'CancelRequest with a 3-byte key', serialize: () => serializeCancelRequest(1, Buffer.alloc(3)), code: 'malformed' },
  { name: 'CancelRequest with a 257-byte key', serialize: () => serializeCancelRequest(1, Buffer.alloc(257)), code: 'malformed' },
  { name: 'CancelRequest process id 2^31', serialize: () => serializeCancelRequest(2 ** 31, Buffer.alloc(4)), code: 'malformed' },
  { name: 'Authentication type 2^31', serialize: () => serializeAuthentication(2 ** 31), code: 'malformed' },
  { name: 'ParameterStatus name with a NUL', serialize: () => serializeParameterStatus('a\0', 'b'), code: 'malformed' },
  { name: 'BackendKeyData with a 3-byte key', serialize: () => serializeBackendKeyData(1, Buffer.alloc(3)), code: 'malformed' },
  { name: 'ReadyForQuery status X', serialize: () => serializeReadyForQuery('X' as 'I'), code: 'malformed' },
  { name: 'ErrorResponse field code 0', serialize: () => serializeErrorResponse([[0, 'x']]), code: 'malformed' },
  { name: 'ErrorResponse field code 256', serialize: () => serializeErrorResponse([[256, 'x']]), code: 'malformed' },
  { name: 'ErrorResponse value with a NUL', serialize: () => serializeErrorResponse([[ErrorField.Message, 'a\0b']]), code: 'malformed' },
  { name: 'NegotiateProtocolVersion option with a NUL', serialize: () => serializeNegotiateProtocolVersion(0, ['_pq_\0']), code: 'malformed' },
  {
    name: 'RowDescription typeSize 40000',
    serialize: () =>
      serializeRowDescription([{ name: 'a', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: 40000, typeModifier: -1, format: 0 }]),
    code: 'malformed',
  },
  {
    name: 'RowDescription tableOid -1',
    serialize: () =>
      serializeRowDescription([{ name: 'a', tableOid: -1, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 }]),
    code: 'malformed',
  },
  { name: 'DataRow with 65536 values', serialize: () => serializeDataRow(new Array<null>(65536).fill(null)), code: 'oversize' },
  { name: 'CommandComplete with a NUL', serialize: () => serializeCommandComplete('SELECT\0'), code: 'malformed' },
  { name: 'Notification channel with a NUL', serialize: () => serializeNotification({ processId: 1, channel: 'a\0', payload: '' }), code: 'malformed' },
  { name: 'CopyResponse format 256', serialize: () => serializeCopyResponse(BackendMessage.CopyOutResponse, { format: 256, columnFormats: [] }), code: 'malformed' },
]

describe('serializers refuse what the protocol cannot carry', () => {
  it.each(BAD_VALUES)('$name → $code', ({ serialize, code }) => {
    expectProtocolError(serialize, code)
  })
})
