/**
 * Byte builders for PostgreSQL protocol tests, in the manner of pg-protocol's
 * `testing/buffer-list.ts` and `testing/test-buffers.ts`. They are written independently of
 * `src/protocols/postgres/messages.ts` (type bytes as characters, Buffer.concat, no shared code)
 * so that a test comparing the two is not circular.
 *
 * Also a corpus of messages of every type, each with the value its parser should return.
 */

/** Accumulates fields, then joins them into a message with an optional type byte and a length. */
export class BufferList {
  private readonly parts: Buffer[] = []

  add(bytes: Buffer | Uint8Array | readonly number[]): this {
    this.parts.push(Buffer.isBuffer(bytes) ? Buffer.from(bytes) : Buffer.from(bytes as Uint8Array))
    return this
  }

  int8(value: number): this {
    return this.add(Buffer.from([value & 0xff]))
  }

  /** Any 16-bit pattern: negative values are written as two's complement. */
  int16(value: number): this {
    const bytes = Buffer.alloc(2)
    bytes.writeUInt16BE(value & 0xffff)
    return this.add(bytes)
  }

  /** Any 32-bit pattern: negative values are written as two's complement. */
  int32(value: number): this {
    const bytes = Buffer.alloc(4)
    bytes.writeUInt32BE(value >>> 0)
    return this.add(bytes)
  }

  /** UTF-8 text without a terminator. */
  string(value: string): this {
    return this.add(Buffer.from(value, 'utf8'))
  }

  /** UTF-8 text and its NUL. */
  cstring(value: string): this {
    return this.string(value).int8(0)
  }

  /** Int32 length (-1 for null), then the bytes. */
  value(value: Buffer | string | null): this {
    if (value === null) return this.int32(-1)
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
    return this.int32(bytes.length).add(bytes)
  }

  /** The fields alone. */
  body(): Buffer {
    return Buffer.concat(this.parts)
  }

  /**
   * With a type (a character or a byte): type, Int32 length counting itself and the body.
   * Without: Int32 length counting itself and the body (the startup packet layout).
   */
  join(type?: string | number): Buffer {
    const body = this.body()
    const length = Buffer.alloc(4)
    length.writeUInt32BE(body.length + 4)
    if (type === undefined) return Buffer.concat([length, body])
    const typeByte = typeof type === 'string' ? type.charCodeAt(0) : type
    return Buffer.concat([Buffer.from([typeByte]), length, body])
  }
}

const list = (): BufferList => new BufferList()

/** A typed message with an arbitrary body. */
export function message(type: string | number, body: Buffer = Buffer.alloc(0)): Buffer {
  return list().add(body).join(type)
}

/** Just a header with any length field, for adversarial framing. */
export function header(type: string | number, length: number): Buffer {
  return list()
    .int8(typeof type === 'string' ? type.charCodeAt(0) : type)
    .int32(length)
    .body()
}

function valuesList(values: readonly (Buffer | string | null)[]): BufferList {
  const buffers = list().int16(values.length)
  for (const value of values) buffers.value(value)
  return buffers
}

function formatsList(buffers: BufferList, formats: readonly number[]): BufferList {
  buffers.int16(formats.length)
  for (const format of formats) buffers.int16(format)
  return buffers
}

/** Messages a client sends. */
export const fe = {
  startup(params: Record<string, string>, protocol = 196608): Buffer {
    const buffers = list().int32(protocol)
    for (const [name, value] of Object.entries(params)) buffers.cstring(name).cstring(value)
    return buffers.int8(0).join()
  },
  sslRequest: (): Buffer => list().int32(80877103).join(),
  gssencRequest: (): Buffer => list().int32(80877104).join(),
  cancelRequest: (processId: number, secretKey: Buffer): Buffer =>
    list().int32(80877102).int32(processId).add(secretKey).join(),
  query: (text: string): Buffer => list().cstring(text).join('Q'),
  parse(name: string, query: string, paramTypes: readonly number[] = []): Buffer {
    const buffers = list().cstring(name).cstring(query).int16(paramTypes.length)
    for (const oid of paramTypes) buffers.int32(oid)
    return buffers.join('P')
  },
  bind(options: {
    portal?: string
    statement?: string
    paramFormats?: readonly number[]
    params?: readonly (Buffer | string | null)[]
    resultFormats?: readonly number[]
  }): Buffer {
    const buffers = list()
      .cstring(options.portal ?? '')
      .cstring(options.statement ?? '')
    formatsList(buffers, options.paramFormats ?? [])
    buffers.add(valuesList(options.params ?? []).body())
    formatsList(buffers, options.resultFormats ?? [])
    return buffers.join('B')
  },
  describe: (kind: 'S' | 'P', name: string): Buffer => list().string(kind).cstring(name).join('D'),
  close: (kind: 'S' | 'P', name: string): Buffer => list().string(kind).cstring(name).join('C'),
  execute: (portal: string, maxRows: number): Buffer => list().cstring(portal).int32(maxRows).join('E'),
  functionCall(oid: number, argFormats: readonly number[], args: readonly (Buffer | string | null)[], resultFormat: number): Buffer {
    const buffers = list().int32(oid)
    formatsList(buffers, argFormats)
    return buffers.add(valuesList(args).body()).int16(resultFormat).join('F')
  },
  sync: (): Buffer => message('S'),
  flush: (): Buffer => message('H'),
  terminate: (): Buffer => message('X'),
  password: (text: string): Buffer => list().cstring(text).join('p'),
  saslInitialResponse: (mechanism: string, data: Buffer | string | null): Buffer =>
    list().cstring(mechanism).value(data).join('p'),
  saslResponse: (data: Buffer | string): Buffer => list().add(Buffer.from(data)).join('p'),
  copyData: (data: Buffer | string): Buffer => list().add(Buffer.from(data)).join('d'),
  copyDone: (): Buffer => message('c'),
  copyFail: (reason: string): Buffer => list().cstring(reason).join('f'),
}

export interface RowField {
  name: string
  tableOid: number
  columnAttr: number
  typeOid: number
  typeSize: number
  typeModifier: number
  format: number
}

function errorBody(fields: readonly [string, string][]): BufferList {
  const buffers = list()
  for (const [code, value] of fields) buffers.string(code).cstring(value)
  return buffers.int8(0)
}

/** Messages a server sends. */
export const be = {
  authenticationOk: (): Buffer => list().int32(0).join('R'),
  authenticationCleartextPassword: (): Buffer => list().int32(3).join('R'),
  authenticationMD5Password: (salt: Buffer): Buffer => list().int32(5).add(salt).join('R'),
  authenticationSASL(mechanisms: readonly string[]): Buffer {
    const buffers = list().int32(10)
    for (const mechanism of mechanisms) buffers.cstring(mechanism)
    return buffers.int8(0).join('R')
  },
  authenticationSASLContinue: (data: string): Buffer => list().int32(11).string(data).join('R'),
  authenticationSASLFinal: (data: string): Buffer => list().int32(12).string(data).join('R'),
  parameterStatus: (name: string, value: string): Buffer => list().cstring(name).cstring(value).join('S'),
  backendKeyData: (processId: number, secretKey: Buffer): Buffer => list().int32(processId).add(secretKey).join('K'),
  readyForQuery: (status: 'I' | 'T' | 'E'): Buffer => list().string(status).join('Z'),
  commandComplete: (tag: string): Buffer => list().cstring(tag).join('C'),
  errorResponse: (fields: readonly [string, string][]): Buffer => errorBody(fields).join('E'),
  noticeResponse: (fields: readonly [string, string][]): Buffer => errorBody(fields).join('N'),
  rowDescription(fields: readonly RowField[]): Buffer {
    const buffers = list().int16(fields.length)
    for (const field of fields) {
      buffers
        .cstring(field.name)
        .int32(field.tableOid)
        .int16(field.columnAttr)
        .int32(field.typeOid)
        .int16(field.typeSize)
        .int32(field.typeModifier)
        .int16(field.format)
    }
    return buffers.join('T')
  },
  dataRow: (values: readonly (Buffer | string | null)[]): Buffer => valuesList(values).join('D'),
  parseComplete: (): Buffer => message('1'),
  bindComplete: (): Buffer => message('2'),
  closeComplete: (): Buffer => message('3'),
  noData: (): Buffer => message('n'),
  emptyQueryResponse: (): Buffer => message('I'),
  portalSuspended: (): Buffer => message('s'),
  copyInResponse: (format: number, columnFormats: readonly number[]): Buffer =>
    formatsList(list().int8(format), columnFormats).join('G'),
  copyOutResponse: (format: number, columnFormats: readonly number[]): Buffer =>
    formatsList(list().int8(format), columnFormats).join('H'),
  copyBothResponse: (format: number, columnFormats: readonly number[]): Buffer =>
    formatsList(list().int8(format), columnFormats).join('W'),
  copyData: (data: Buffer | string): Buffer => list().add(Buffer.from(data)).join('d'),
  copyDone: (): Buffer => message('c'),
  notification: (processId: number, channel: string, payload: string): Buffer =>
    list().int32(processId).cstring(channel).cstring(payload).join('A'),
  parameterDescription(oids: readonly number[]): Buffer {
    const buffers = list().int16(oids.length)
    for (const oid of oids) buffers.int32(oid)
    return buffers.join('t')
  },
  functionCallResponse: (result: Buffer | string | null): Buffer => list().value(result).join('V'),
  negotiateProtocolVersion(newestVersion: number, unrecognized: readonly string[]): Buffer {
    const buffers = list().int32(newestVersion).int32(unrecognized.length)
    for (const option of unrecognized) buffers.cstring(option)
    return buffers.join('v')
  },
}

// Corpus -----------------------------------------------------------------------------------------

/** Message kinds a client sends, as named by the parsers that read them. */
export type FrontendKind =
  | 'Query'
  | 'Parse'
  | 'Bind'
  | 'Describe'
  | 'Close'
  | 'Execute'
  | 'FunctionCall'
  | 'Sync'
  | 'Flush'
  | 'Terminate'
  | 'Password'
  | 'SASLInitialResponse'
  | 'SASLResponse'
  | 'CopyData'
  | 'CopyDone'
  | 'CopyFail'

/** Message kinds a server sends. */
export type BackendKind =
  | 'Authentication'
  | 'ParameterStatus'
  | 'BackendKeyData'
  | 'ReadyForQuery'
  | 'CommandComplete'
  | 'ErrorResponse'
  | 'NoticeResponse'
  | 'RowDescription'
  | 'DataRow'
  | 'ParseComplete'
  | 'BindComplete'
  | 'CloseComplete'
  | 'NoData'
  | 'EmptyQueryResponse'
  | 'PortalSuspended'
  | 'CopyInResponse'
  | 'CopyOutResponse'
  | 'CopyBothResponse'
  | 'CopyData'
  | 'CopyDone'
  | 'NotificationResponse'
  | 'ParameterDescription'
  | 'FunctionCallResponse'
  | 'NegotiateProtocolVersion'

/** One message of the corpus: its bytes and what its parser returns. */
export interface CorpusEntry<Kind extends string> {
  kind: Kind
  /** The type byte as a character. */
  type: string
  bytes: Buffer
  expected: unknown
}

function entry<Kind extends string>(kind: Kind, bytes: Buffer, expected: unknown): CorpusEntry<Kind> {
  return { kind, type: String.fromCharCode(bytes[0]!), bytes, expected }
}

/** Deterministic bytes (no Math.random), so a failure reproduces. */
export function patternBytes(length: number, seed = 1): Buffer {
  const bytes = Buffer.alloc(length)
  let state = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    bytes[i] = state & 0xff
  }
  return bytes
}

/** One of each frontend message, with edge values: empty and multi-byte strings, NULLs, extremes. */
export function frontendCorpus(): CorpusEntry<FrontendKind>[] {
  const binary = Buffer.from([0, 1, 2, 0, 255, 0])
  return [
    entry('Query', fe.query('SELECT 1'), 'SELECT 1'),
    entry('Query', fe.query(''), ''),
    entry('Query', fe.query("SELECT 'grüße, 日本, 🐘'"), "SELECT 'grüße, 日本, 🐘'"),
    entry('Parse', fe.parse('', 'SELECT $1::int', []), { name: '', query: 'SELECT $1::int', paramTypes: [] }),
    entry('Parse', fe.parse('s1', 'SELECT $1, $2, $3', [23, 0, 0xffffffff]), {
      name: 's1',
      query: 'SELECT $1, $2, $3',
      paramTypes: [23, 0, 0xffffffff],
    }),
    entry('Bind', fe.bind({}), { portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] }),
    entry(
      'Bind',
      fe.bind({ portal: 'p1', statement: 's1', paramFormats: [0, 1], params: ['42', null, binary, ''], resultFormats: [1] }),
      {
        portal: 'p1',
        statement: 's1',
        paramFormats: [0, 1],
        params: [Buffer.from('42'), null, binary, Buffer.alloc(0)],
        resultFormats: [1],
      },
    ),
    entry('Describe', fe.describe('S', 's1'), { kind: 'S', name: 's1' }),
    entry('Describe', fe.describe('P', ''), { kind: 'P', name: '' }),
    entry('Close', fe.close('P', 'p1'), { kind: 'P', name: 'p1' }),
    entry('Close', fe.close('S', ''), { kind: 'S', name: '' }),
    entry('Execute', fe.execute('', 0), { portal: '', maxRows: 0 }),
    entry('Execute', fe.execute('p1', 0x7fffffff), { portal: 'p1', maxRows: 0x7fffffff }),
    entry('FunctionCall', fe.functionCall(1598, [1], [binary, null], 1), {
      oid: 1598,
      argFormats: [1],
      args: [binary, null],
      resultFormat: 1,
    }),
    entry('Sync', fe.sync(), null),
    entry('Flush', fe.flush(), null),
    entry('Password', fe.password('md5a3556571e93b0d20722ba62be61e8c2d'), 'md5a3556571e93b0d20722ba62be61e8c2d'),
    entry('SASLInitialResponse', fe.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc'), {
      mechanism: 'SCRAM-SHA-256',
      data: Buffer.from('n,,n=,r=abc'),
    }),
    entry('SASLInitialResponse', fe.saslInitialResponse('SCRAM-SHA-256', null), { mechanism: 'SCRAM-SHA-256', data: null }),
    entry('SASLResponse', fe.saslResponse('c=biws,r=abc,p=xyz'), Buffer.from('c=biws,r=abc,p=xyz')),
    entry('CopyData', fe.copyData('1\talice\n'), Buffer.from('1\talice\n')),
    entry('CopyData', fe.copyData(Buffer.alloc(0)), Buffer.alloc(0)),
    entry('CopyDone', fe.copyDone(), null),
    entry('CopyFail', fe.copyFail('aborted by user'), 'aborted by user'),
    entry('Terminate', fe.terminate(), null),
  ]
}

/** Size of the large DataRow column in {@link backendCorpus}: bigger than one 64 KiB read. */
export const LARGE_VALUE_LENGTH = 70 * 1024

/** One of each backend message, with edge values, including a 70 KiB DataRow and empty bodies. */
export function backendCorpus(): CorpusEntry<BackendKind>[] {
  const large = patternBytes(LARGE_VALUE_LENGTH, 7)
  const key32 = patternBytes(32, 3)
  const errorFields: [string, string][] = [
    ['S', 'ERROR'],
    ['V', 'ERROR'],
    ['C', '42P01'],
    ['M', 'relation "nope" does not exist'],
    ['P', '15'],
    ['F', 'parse_relation.c'],
    ['L', '1392'],
    ['R', 'parserOpenTable'],
  ]
  const codes = (fields: [string, string][]): [number, string][] => fields.map(([c, v]) => [c.charCodeAt(0), v])
  const rowFields: RowField[] = [
    { name: 'id', tableOid: 16384, columnAttr: 1, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
    { name: 'naïve', tableOid: 0, columnAttr: 0, typeOid: 0xfffffffe, typeSize: -1, typeModifier: 0x7fffffff, format: 1 },
    { name: '', tableOid: 0xffffffff, columnAttr: -32768, typeOid: 2275, typeSize: -2, typeModifier: -2147483648, format: 0 },
  ]
  return [
    entry('Authentication', be.authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']), {
      type: 10,
      data: Buffer.from('SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0'),
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    }),
    entry('Authentication', be.authenticationSASLContinue('r=abc,s=c2FsdA==,i=4096'), {
      type: 11,
      data: Buffer.from('r=abc,s=c2FsdA==,i=4096'),
    }),
    entry('Authentication', be.authenticationSASLFinal('v=abc='), { type: 12, data: Buffer.from('v=abc=') }),
    entry('Authentication', be.authenticationMD5Password(Buffer.from([1, 0, 255, 7])), {
      type: 5,
      data: Buffer.from([1, 0, 255, 7]),
    }),
    entry('Authentication', be.authenticationCleartextPassword(), { type: 3, data: Buffer.alloc(0) }),
    entry('Authentication', be.authenticationOk(), { type: 0, data: Buffer.alloc(0) }),
    entry('ParameterStatus', be.parameterStatus('server_version', '17.2'), { name: 'server_version', value: '17.2' }),
    entry('ParameterStatus', be.parameterStatus('application_name', ''), { name: 'application_name', value: '' }),
    entry('BackendKeyData', be.backendKeyData(4242, Buffer.from([0xde, 0xad, 0xbe, 0xef])), {
      processId: 4242,
      secretKey: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
    }),
    entry('BackendKeyData', be.backendKeyData(-1, key32), { processId: -1, secretKey: key32 }),
    // As PostgreSQL 15 sends it for an unknown _pq_ option: the whole version code of 3.0.
    entry('NegotiateProtocolVersion', be.negotiateProtocolVersion(196608, ['_pq_.compression', '_pq_.x']), {
      newestVersion: 196608,
      unrecognized: ['_pq_.compression', '_pq_.x'],
    }),
    entry('NegotiateProtocolVersion', be.negotiateProtocolVersion(196610, []), { newestVersion: 196610, unrecognized: [] }),
    entry('ReadyForQuery', be.readyForQuery('I'), 'I'),
    entry('ParseComplete', be.parseComplete(), null),
    entry('ParameterDescription', be.parameterDescription([23, 25, 0xffffffff]), [23, 25, 0xffffffff]),
    entry('ParameterDescription', be.parameterDescription([]), []),
    entry('BindComplete', be.bindComplete(), null),
    entry('RowDescription', be.rowDescription(rowFields), rowFields),
    entry('RowDescription', be.rowDescription([]), []),
    entry('DataRow', be.dataRow(['1', null, '', Buffer.from([0, 0, 0])]), [
      Buffer.from('1'),
      null,
      Buffer.alloc(0),
      Buffer.from([0, 0, 0]),
    ]),
    entry('DataRow', be.dataRow(['2', large, 'tail']), [Buffer.from('2'), large, Buffer.from('tail')]),
    entry('DataRow', be.dataRow([]), []),
    entry('PortalSuspended', be.portalSuspended(), null),
    entry('CommandComplete', be.commandComplete('SELECT 3'), 'SELECT 3'),
    entry('NoData', be.noData(), null),
    entry('EmptyQueryResponse', be.emptyQueryResponse(), null),
    entry('CloseComplete', be.closeComplete(), null),
    entry('NoticeResponse', be.noticeResponse([['S', 'NOTICE'], ['M', 'table « t » exists, skipping']]), [
      [0x53, 'NOTICE'],
      [0x4d, 'table « t » exists, skipping'],
    ]),
    entry('ErrorResponse', be.errorResponse(errorFields), codes(errorFields)),
    entry('ErrorResponse', be.errorResponse([]), []),
    entry('NotificationResponse', be.notification(77, 'jobs', '{"id":1}'), { processId: 77, channel: 'jobs', payload: '{"id":1}' }),
    entry('NotificationResponse', be.notification(0, 'c', ''), { processId: 0, channel: 'c', payload: '' }),
    entry('CopyInResponse', be.copyInResponse(0, [0, 0]), { format: 0, columnFormats: [0, 0] }),
    entry('CopyOutResponse', be.copyOutResponse(1, [1]), { format: 1, columnFormats: [1] }),
    entry('CopyBothResponse', be.copyBothResponse(0, []), { format: 0, columnFormats: [] }),
    entry('CopyData', be.copyData('1\talice\n'), Buffer.from('1\talice\n')),
    entry('CopyData', be.copyData(Buffer.alloc(0)), Buffer.alloc(0)),
    entry('CopyDone', be.copyDone(), null),
    entry('FunctionCallResponse', be.functionCallResponse(Buffer.from([0, 0, 0, 1])), Buffer.from([0, 0, 0, 1])),
    entry('FunctionCallResponse', be.functionCallResponse(null), null),
    entry('ReadyForQuery', be.readyForQuery('T'), 'T'),
    entry('ReadyForQuery', be.readyForQuery('E'), 'E'),
  ]
}

/** Startup packets of every kind, with what `parseStartupPacket` returns. */
export function startupCorpus(): { name: string; bytes: Buffer; expected: unknown }[] {
  const key256 = patternBytes(256, 5)
  return [
    { name: 'SSLRequest', bytes: fe.sslRequest(), expected: { kind: 'ssl' } },
    { name: 'GSSENCRequest', bytes: fe.gssencRequest(), expected: { kind: 'gssenc' } },
    {
      name: 'CancelRequest 3.0',
      bytes: fe.cancelRequest(4242, Buffer.from([1, 2, 3, 4])),
      expected: { kind: 'cancel', processId: 4242, secretKey: Buffer.from([1, 2, 3, 4]) },
    },
    {
      name: 'CancelRequest 3.2, 32-byte key',
      bytes: fe.cancelRequest(7, patternBytes(32, 9)),
      expected: { kind: 'cancel', processId: 7, secretKey: patternBytes(32, 9) },
    },
    {
      name: 'CancelRequest 3.2, 256-byte key',
      bytes: fe.cancelRequest(-2, key256),
      expected: { kind: 'cancel', processId: -2, secretKey: key256 },
    },
    {
      name: 'StartupMessage 3.0',
      bytes: fe.startup({ user: 'alice', database: 'app', application_name: 'psql', options: '-c search_path=ü' }),
      expected: {
        kind: 'startup',
        major: 3,
        minor: 0,
        params: new Map([
          ['user', 'alice'],
          ['database', 'app'],
          ['application_name', 'psql'],
          ['options', '-c search_path=ü'],
        ]),
      },
    },
    {
      name: 'StartupMessage 3.2, protocol option, empty value',
      bytes: fe.startup({ user: 'bob', '_pq_.test_option': 'on', x: '' }, 196610),
      expected: {
        kind: 'startup',
        major: 3,
        minor: 2,
        params: new Map([
          ['user', 'bob'],
          ['_pq_.test_option', 'on'],
          ['x', ''],
        ]),
      },
    },
    {
      name: 'StartupMessage without params',
      bytes: fe.startup({}),
      expected: { kind: 'startup', major: 3, minor: 0, params: new Map() },
    },
  ]
}

/** A small deterministic PRNG (mulberry32) for random chunkings. */
export function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `bytes` cut into pieces of random sizes in [1, maxChunk]. */
export function randomChunks(bytes: Buffer, random: () => number, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < bytes.length; ) {
    const size = 1 + Math.floor(random() * maxChunk)
    chunks.push(bytes.subarray(offset, offset + size))
    offset += size
  }
  return chunks
}

/** `bytes` in chunks of `size` bytes. */
export function fixedChunks(bytes: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = []
  for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size))
  return chunks
}

/** Deep equality that compares Buffers by content; fast enough to run per chunking. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b)
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false
    return true
  }
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map) || !(b instanceof Map) || a.size !== b.size) return false
    const left = [...a.entries()]
    const right = [...b.entries()]
    return sameValue(left, right)
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = Object.keys(a)
    if (keys.length !== Object.keys(b).length) return false
    for (const key of keys) {
      if (!Object.hasOwn(b, key) || !sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) {
        return false
      }
    }
    return true
  }
  return Object.is(a, b)
}
