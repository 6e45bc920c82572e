/**
 * Bodies of PostgreSQL protocol messages: parsers that read the `body` of a `Frame` and
 * serializers that build a whole message. Pure, no I/O.
 *
 * Parsers never copy bytes (binary values are subarrays of the body), decode strings as strict
 * UTF-8, and throw {@link ProtocolError} `malformed` on a body that ends early, carries trailing
 * bytes, or holds an invalid value. Serializers allocate one buffer of the exact size and throw
 * `malformed` for a value the protocol cannot carry (a string with a NUL, an Int16 out of range).
 *
 * Strings on the wire are NUL-terminated; counts of formats, parameters, columns and types are
 * unsigned Int16 (up to 65535); a value length of -1 means NULL.
 */
import { isUtf8 } from 'node:buffer'

import { ProtocolError } from './framer.js'
import {
  AuthenticationType,
  BackendMessage,
  CANCEL_REQUEST_CODE,
  type ErrorField,
  FrontendMessage,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  MIN_CANCEL_KEY_LENGTH,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE,
  TransactionStatus,
} from './protocol.js'

// Types ------------------------------------------------------------------------------------------

/** Fields of an ErrorResponse or NoticeResponse in wire order: `[ErrorField code, value]`. */
export type ErrorFields = [code: number, value: string][]

/** One column of a RowDescription. */
export interface FieldDescription {
  name: string
  /** OID of the source table, 0 when the column is not a plain table column. */
  tableOid: number
  /** Attribute number of the column in that table, 0 otherwise. */
  columnAttr: number
  typeOid: number
  /** `pg_type.typlen`: negative for variable-width types. */
  typeSize: number
  /** `pg_attribute.atttypmod`, type-specific; -1 when none. */
  typeModifier: number
  /** 0 text, 1 binary. */
  format: number
}

/** A Parse message: prepare `query` as statement `name` ('' is the unnamed statement). */
export interface ParseMessage {
  name: string
  query: string
  /** Parameter type OIDs; 0 leaves a type unspecified. May be fewer than the parameters. */
  paramTypes: number[]
}

/** A Bind message: bind `statement` with `params` into `portal`. */
export interface BindMessage {
  portal: string
  statement: string
  /** None: all text; one: applies to all; else one per parameter. */
  paramFormats: number[]
  /** Subarrays of the body; `null` is SQL NULL. */
  params: (Buffer | null)[]
  /** None: all text; one: applies to all; else one per result column. */
  resultFormats: number[]
}

/** An Execute message. */
export interface ExecuteMessage {
  portal: string
  /** 0 (or negative) for no limit. */
  maxRows: number
}

/** What a Describe or Close refers to: a prepared statement (`S`) or a portal (`P`). */
export interface DescribeTarget {
  kind: 'S' | 'P'
  name: string
}

/** A FunctionCall message (the legacy fast-path interface). */
export interface FunctionCallMessage {
  oid: number
  argFormats: number[]
  args: (Buffer | null)[]
  resultFormat: number
}

/** A SASLInitialResponse: the chosen mechanism and its first message (`null` when absent). */
export interface SaslInitialResponse {
  mechanism: string
  data: Buffer | null
}

/** An Authentication message: an {@link AuthenticationType} and its type-specific data. */
export interface AuthenticationMessage {
  type: number
  data: Buffer
}

/** A ParameterStatus message. */
export interface ParameterStatus {
  name: string
  value: string
}

/** A BackendKeyData message; the key is 4 bytes in protocol 3.0, 4..256 bytes in 3.2. */
export interface BackendKeyData {
  processId: number
  secretKey: Buffer
}

/** ReadyForQuery's transaction status: idle, in a transaction, in a failed transaction. */
export type TransactionState = 'I' | 'T' | 'E'

/** A NotificationResponse (LISTEN/NOTIFY). */
export interface Notification {
  processId: number
  channel: string
  payload: string
}

/** A CopyInResponse, CopyOutResponse or CopyBothResponse. */
export interface CopyResponse {
  /** 0 text, 1 binary: the overall COPY format. */
  format: number
  columnFormats: number[]
}

/** A NegotiateProtocolVersion: the newest protocol version the server speaks and the options it ignored. */
export interface NegotiateProtocolVersion {
  /**
   * The whole version code, `major << 16 | minor` (196608 for 3.0), not just the minor number:
   * the protocol documentation says "newest minor version", but servers send, and libpq reads,
   * the full code.
   */
  newestVersion: number
  unrecognized: string[]
}

// Reading ----------------------------------------------------------------------------------------

/** A bounds-checked cursor over one message body. */
class Reader {
  private offset = 0

  constructor(
    private readonly body: Buffer,
    private readonly message: string,
  ) {}

  get remaining(): number {
    return this.body.length - this.offset
  }

  byte(): number {
    this.need(1)
    return this.body[this.offset++]!
  }

  int16(): number {
    this.need(2)
    const value = this.body.readInt16BE(this.offset)
    this.offset += 2
    return value
  }

  uint16(): number {
    this.need(2)
    const value = this.body.readUInt16BE(this.offset)
    this.offset += 2
    return value
  }

  int32(): number {
    this.need(4)
    const value = this.body.readInt32BE(this.offset)
    this.offset += 4
    return value
  }

  /** OIDs are unsigned 32-bit. */
  uint32(): number {
    this.need(4)
    const value = this.body.readUInt32BE(this.offset)
    this.offset += 4
    return value
  }

  /** A Uint16 count of items of at least `itemSize` bytes each, checked against what is left. */
  count(itemSize: number): number {
    const count = this.uint16()
    if (count * itemSize > this.remaining) throw this.malformed(`count ${count} exceeds the body`)
    return count
  }

  cstring(): string {
    const end = this.body.indexOf(0, this.offset)
    if (end < 0) throw this.malformed('string lacks its NUL terminator')
    const value = decodeUtf8(this.body, this.offset, end, this.message)
    this.offset = end + 1
    return value
  }

  bytes(length: number): Buffer {
    this.need(length)
    const value = this.body.subarray(this.offset, this.offset + length)
    this.offset += length
    return value
  }

  /** An Int32 length (-1 for NULL) followed by that many bytes. */
  value(): Buffer | null {
    const length = this.int32()
    if (length === -1) return null
    if (length < 0) throw this.malformed(`value length ${length}`)
    return this.bytes(length)
  }

  rest(): Buffer {
    const value = this.body.subarray(this.offset)
    this.offset = this.body.length
    return value
  }

  end(): void {
    if (this.offset !== this.body.length) throw this.malformed('trailing bytes after the last field')
  }

  malformed(detail: string): ProtocolError {
    return new ProtocolError('malformed', `${this.message}: ${detail}`)
  }

  private need(count: number): void {
    if (this.offset + count > this.body.length) throw this.malformed('body ends early')
  }
}

function decodeUtf8(body: Buffer, start: number, end: number, message: string): string {
  if (!isUtf8(body.subarray(start, end))) throw new ProtocolError('malformed', `${message}: string is not valid UTF-8`)
  return body.toString('utf8', start, end)
}

function readFormats(reader: Reader): number[] {
  const count = reader.count(2)
  const formats = new Array<number>(count)
  for (let i = 0; i < count; i++) formats[i] = reader.int16()
  return formats
}

function readValues(reader: Reader): (Buffer | null)[] {
  const count = reader.count(4)
  const values = new Array<Buffer | null>(count)
  for (let i = 0; i < count; i++) values[i] = reader.value()
  return values
}

function readStringList(reader: Reader, count: number): string[] {
  const values = new Array<string>(count)
  for (let i = 0; i < count; i++) values[i] = reader.cstring()
  return values
}

// Frontend parsers -------------------------------------------------------------------------------

/** Query (`Q`): the SQL text of a simple-protocol query. */
export function parseQuery(body: Buffer): string {
  const reader = new Reader(body, 'Query')
  const text = reader.cstring()
  reader.end()
  return text
}

/** Parse (`P`). */
export function parseParse(body: Buffer): ParseMessage {
  const reader = new Reader(body, 'Parse')
  const name = reader.cstring()
  const query = reader.cstring()
  const count = reader.count(4)
  const paramTypes = new Array<number>(count)
  for (let i = 0; i < count; i++) paramTypes[i] = reader.uint32()
  reader.end()
  return { name, query, paramTypes }
}

/** Bind (`B`); parameter values are subarrays of `body`. */
export function parseBind(body: Buffer): BindMessage {
  const reader = new Reader(body, 'Bind')
  const portal = reader.cstring()
  const statement = reader.cstring()
  const paramFormats = readFormats(reader)
  const params = readValues(reader)
  const resultFormats = readFormats(reader)
  reader.end()
  return { portal, statement, paramFormats, params, resultFormats }
}

/** Execute (`E`). */
export function parseExecute(body: Buffer): ExecuteMessage {
  const reader = new Reader(body, 'Execute')
  const portal = reader.cstring()
  const maxRows = reader.int32()
  reader.end()
  return { portal, maxRows }
}

/** Describe (`D`). */
export function parseDescribe(body: Buffer): DescribeTarget {
  return parseTarget(body, 'Describe')
}

/** Close (`C`). */
export function parseClose(body: Buffer): DescribeTarget {
  return parseTarget(body, 'Close')
}

function parseTarget(body: Buffer, message: string): DescribeTarget {
  const reader = new Reader(body, message)
  const kind = reader.byte()
  if (kind !== 0x53 /* S */ && kind !== 0x50 /* P */) throw reader.malformed(`unknown target kind ${kind}`)
  const name = reader.cstring()
  reader.end()
  return { kind: kind === 0x53 ? 'S' : 'P', name }
}

/** FunctionCall (`F`); arguments are subarrays of `body`. */
export function parseFunctionCall(body: Buffer): FunctionCallMessage {
  const reader = new Reader(body, 'FunctionCall')
  const oid = reader.uint32()
  const argFormats = readFormats(reader)
  const args = readValues(reader)
  const resultFormat = reader.int16()
  reader.end()
  return { oid, argFormats, args, resultFormat }
}

/** PasswordMessage (`p` answering CleartextPassword or MD5Password). */
export function parsePassword(body: Buffer): string {
  const reader = new Reader(body, 'PasswordMessage')
  const password = reader.cstring()
  reader.end()
  return password
}

/** SASLInitialResponse (`p` answering AuthenticationSASL). SASLResponse is the raw body. */
export function parseSaslInitialResponse(body: Buffer): SaslInitialResponse {
  const reader = new Reader(body, 'SASLInitialResponse')
  const mechanism = reader.cstring()
  const data = reader.value()
  reader.end()
  return { mechanism, data }
}

/** CopyFail (`f`): the reason the client gives. */
export function parseCopyFail(body: Buffer): string {
  const reader = new Reader(body, 'CopyFail')
  const message = reader.cstring()
  reader.end()
  return message
}

// Backend parsers --------------------------------------------------------------------------------

/**
 * Authentication (`R`). `data` is what follows the type: empty for Ok and CleartextPassword, the
 * 4-byte salt for MD5Password, the mechanism list for SASL, the SCRAM message for SASLContinue
 * and SASLFinal.
 */
export function parseAuthentication(body: Buffer): AuthenticationMessage {
  const reader = new Reader(body, 'Authentication')
  const type = reader.int32()
  const data = reader.rest()
  const expected =
    type === AuthenticationType.Ok || type === AuthenticationType.CleartextPassword
      ? 0
      : type === AuthenticationType.MD5Password
        ? 4
        : data.length
  if (data.length !== expected) throw reader.malformed(`type ${type} carries ${data.length} bytes`)
  return { type, data }
}

/** The mechanism names of an AuthenticationSASL's data: NUL-terminated names, then an empty one. */
export function parseSaslMechanisms(data: Buffer): string[] {
  const reader = new Reader(data, 'AuthenticationSASL')
  const mechanisms: string[] = []
  for (;;) {
    const mechanism = reader.cstring()
    if (mechanism === '') break
    mechanisms.push(mechanism)
  }
  reader.end()
  return mechanisms
}

/** ParameterStatus (`S`). */
export function parseParameterStatus(body: Buffer): ParameterStatus {
  const reader = new Reader(body, 'ParameterStatus')
  const name = reader.cstring()
  const value = reader.cstring()
  reader.end()
  return { name, value }
}

/** BackendKeyData (`K`); the key is a subarray of `body`. */
export function parseBackendKeyData(body: Buffer): BackendKeyData {
  const reader = new Reader(body, 'BackendKeyData')
  const processId = reader.int32()
  const secretKey = reader.rest()
  if (secretKey.length < MIN_CANCEL_KEY_LENGTH || secretKey.length > MAX_CANCEL_KEY_LENGTH) {
    throw reader.malformed(`secret key of ${secretKey.length} bytes is outside [4, 256]`)
  }
  return { processId, secretKey }
}

/** ReadyForQuery (`Z`): the transaction status. */
export function parseReadyForQuery(body: Buffer): TransactionState {
  const reader = new Reader(body, 'ReadyForQuery')
  const status = reader.byte()
  reader.end()
  switch (status) {
    case TransactionStatus.Idle:
      return 'I'
    case TransactionStatus.InTransaction:
      return 'T'
    case TransactionStatus.Failed:
      return 'E'
    default:
      throw reader.malformed(`unknown transaction status ${status}`)
  }
}

/** CommandComplete (`C`): the command tag, e.g. `SELECT 3`. */
export function parseCommandComplete(body: Buffer): string {
  const reader = new Reader(body, 'CommandComplete')
  const tag = reader.cstring()
  reader.end()
  return tag
}

/** ErrorResponse (`E`) and NoticeResponse (`N`): fields in wire order, ended by a zero byte. */
export function parseErrorFields(body: Buffer): ErrorFields {
  const reader = new Reader(body, 'ErrorResponse/NoticeResponse')
  const fields: ErrorFields = []
  for (;;) {
    const code = reader.byte()
    if (code === 0) break
    fields.push([code, reader.cstring()])
  }
  reader.end()
  return fields
}

/** The first value of field `code`, if present. */
export function getField(fields: ErrorFields, code: ErrorField): string | undefined {
  for (const [fieldCode, value] of fields) if (fieldCode === code) return value
  return undefined
}

/** RowDescription (`T`). */
export function parseRowDescription(body: Buffer): FieldDescription[] {
  const reader = new Reader(body, 'RowDescription')
  // Each field is a name (at least its NUL) and 18 bytes of fixed fields.
  const count = reader.count(19)
  const fields = new Array<FieldDescription>(count)
  for (let i = 0; i < count; i++) {
    fields[i] = {
      name: reader.cstring(),
      tableOid: reader.uint32(),
      columnAttr: reader.int16(),
      typeOid: reader.uint32(),
      typeSize: reader.int16(),
      typeModifier: reader.int32(),
      format: reader.int16(),
    }
  }
  reader.end()
  return fields
}

/** DataRow (`D`): column values as subarrays of `body`, `null` for SQL NULL. */
export function parseDataRow(body: Buffer): (Buffer | null)[] {
  const reader = new Reader(body, 'DataRow')
  const values = readValues(reader)
  reader.end()
  return values
}

/** NotificationResponse (`A`). */
export function parseNotification(body: Buffer): Notification {
  const reader = new Reader(body, 'NotificationResponse')
  const processId = reader.int32()
  const channel = reader.cstring()
  const payload = reader.cstring()
  reader.end()
  return { processId, channel, payload }
}

/** CopyInResponse (`G`), CopyOutResponse (`H`), CopyBothResponse (`W`). */
export function parseCopyResponse(body: Buffer): CopyResponse {
  const reader = new Reader(body, 'CopyResponse')
  const format = reader.byte()
  const columnFormats = readFormats(reader)
  reader.end()
  return { format, columnFormats }
}

/** ParameterDescription (`t`): the parameter type OIDs of a prepared statement. */
export function parseParameterDescription(body: Buffer): number[] {
  const reader = new Reader(body, 'ParameterDescription')
  const count = reader.count(4)
  const oids = new Array<number>(count)
  for (let i = 0; i < count; i++) oids[i] = reader.uint32()
  reader.end()
  return oids
}

/** FunctionCallResponse (`V`): the result as a subarray of `body`, `null` for NULL. */
export function parseFunctionCallResponse(body: Buffer): Buffer | null {
  const reader = new Reader(body, 'FunctionCallResponse')
  const result = reader.value()
  reader.end()
  return result
}

/** NegotiateProtocolVersion (`v`). */
export function parseNegotiateProtocolVersion(body: Buffer): NegotiateProtocolVersion {
  const reader = new Reader(body, 'NegotiateProtocolVersion')
  const newestVersion = reader.int32()
  const count = reader.int32()
  if (count < 0 || count > reader.remaining) throw reader.malformed(`count ${count} exceeds the body`)
  const unrecognized = readStringList(reader, count)
  reader.end()
  return { newestVersion, unrecognized }
}

// Writing ----------------------------------------------------------------------------------------

const MAX_INT32 = 0x7fffffff

/** Writes into one buffer allocated at the exact size computed beforehand. */
class Writer {
  readonly buffer: Buffer
  private offset = 0

  constructor(size: number) {
    if (size > MAX_INT32) throw new ProtocolError('oversize', `message of ${size} bytes exceeds the Int32 length`)
    this.buffer = Buffer.allocUnsafe(size)
  }

  /** A typed message: type byte, then the length, which counts itself but not the type byte. */
  static message(type: number, bodySize: number): Writer {
    if (bodySize > MAX_INT32 - 4) throw new ProtocolError('oversize', `body of ${bodySize} bytes exceeds the Int32 length`)
    const writer = new Writer(5 + bodySize)
    writer.buffer[0] = type
    writer.buffer.writeInt32BE(4 + bodySize, 1)
    writer.offset = 5
    return writer
  }

  byte(value: number): this {
    if (value !== (value & 0xff)) throw new ProtocolError('malformed', `${value} is not a byte`)
    this.buffer[this.offset++] = value
    return this
  }

  int16(value: number): this {
    if (value !== (value << 16) >> 16) throw new ProtocolError('malformed', `${value} is not an Int16`)
    this.buffer.writeInt16BE(value, this.offset)
    this.offset += 2
    return this
  }

  uint16(value: number): this {
    this.buffer.writeUInt16BE(value, this.offset)
    this.offset += 2
    return this
  }

  int32(value: number): this {
    if (value !== (value | 0)) throw new ProtocolError('malformed', `${value} is not an Int32`)
    this.buffer.writeInt32BE(value, this.offset)
    this.offset += 4
    return this
  }

  uint32(value: number): this {
    if (value !== value >>> 0) throw new ProtocolError('malformed', `${value} is not an unsigned Int32`)
    this.buffer.writeUInt32BE(value, this.offset)
    this.offset += 4
    return this
  }

  /** A string already measured with {@link cstringSize}. */
  cstring(value: string): this {
    this.offset += this.buffer.write(value, this.offset, 'utf8')
    this.buffer[this.offset++] = 0
    return this
  }

  bytes(value: Buffer): this {
    this.offset += value.copy(this.buffer, this.offset)
    return this
  }

  /** An Int32 length (-1 for NULL), then the bytes. */
  value(value: Buffer | null): this {
    if (value === null) return this.int32(-1)
    return this.int32(value.length).bytes(value)
  }

  done(): Buffer {
    // allocUnsafe memory must never leave unwritten.
    if (this.offset !== this.buffer.length) throw new Error(`serializer wrote ${this.offset} of ${this.buffer.length} bytes`)
    return this.buffer
  }
}

/** Encoded size of a NUL-terminated string; rejects strings that contain NUL. */
function cstringSize(value: string): number {
  if (value.includes('\0')) throw new ProtocolError('malformed', 'string contains a NUL byte')
  return Buffer.byteLength(value, 'utf8') + 1
}

function countOf(items: readonly unknown[], what: string): number {
  if (items.length > 0xffff) throw new ProtocolError('oversize', `${items.length} ${what} exceed the Int16 count`)
  return items.length
}

function valuesSize(values: readonly (Buffer | null)[]): number {
  let size = 2
  for (const value of values) size += value === null ? 4 : 4 + value.length
  return size
}

function writeFormats(writer: Writer, formats: readonly number[]): void {
  writer.uint16(countOf(formats, 'format codes'))
  for (const format of formats) writer.int16(format)
}

function writeValues(writer: Writer, values: readonly (Buffer | null)[]): void {
  writer.uint16(countOf(values, 'values'))
  for (const value of values) writer.value(value)
}

function empty(type: number): Buffer {
  return Writer.message(type, 0).done()
}

function text(type: number, value: string): Buffer {
  return Writer.message(type, cstringSize(value)).cstring(value).done()
}

function checkCancelKey(secretKey: Buffer): void {
  if (secretKey.length < MIN_CANCEL_KEY_LENGTH || secretKey.length > MAX_CANCEL_KEY_LENGTH) {
    throw new ProtocolError('malformed', `secret key of ${secretKey.length} bytes is outside [4, 256]`)
  }
}

// Frontend serializers ---------------------------------------------------------------------------

/** StartupMessage: Int32 length, Int32 protocol, name/value pairs, a terminating NUL. */
export function serializeStartup(params: Record<string, string>, protocol: number = PROTOCOL_3_0): Buffer {
  const entries = Object.entries(params)
  let size = 8 + 1
  for (const [name, value] of entries) {
    if (name === '') throw new ProtocolError('malformed', 'startup parameter name is empty')
    size += cstringSize(name) + cstringSize(value)
  }
  const writer = new Writer(size).int32(size).int32(protocol)
  for (const [name, value] of entries) writer.cstring(name).cstring(value)
  return writer.byte(0).done()
}

/** SSLRequest: asks the server to start TLS; it answers one byte, `S` or `N`. */
export function serializeSSLRequest(): Buffer {
  return new Writer(8).int32(8).int32(SSL_REQUEST_CODE).done()
}

/** GSSENCRequest: asks for GSSAPI encryption; the server answers `G` or `N`. */
export function serializeGSSENCRequest(): Buffer {
  return new Writer(8).int32(8).int32(GSSENC_REQUEST_CODE).done()
}

/** CancelRequest, sent on a new connection; a 4-byte key is protocol 3.0, longer keys 3.2. */
export function serializeCancelRequest(processId: number, secretKey: Buffer): Buffer {
  checkCancelKey(secretKey)
  const size = 12 + secretKey.length
  return new Writer(size).int32(size).int32(CANCEL_REQUEST_CODE).int32(processId).bytes(secretKey).done()
}

/** Query (`Q`). */
export function serializeQuery(sql: string): Buffer {
  return text(FrontendMessage.Query, sql)
}

/** Parse (`P`). */
export function serializeParse(message: { name?: string; query: string; paramTypes?: readonly number[] }): Buffer {
  const name = message.name ?? ''
  const paramTypes = message.paramTypes ?? []
  const size = cstringSize(name) + cstringSize(message.query) + 2 + 4 * countOf(paramTypes, 'parameter types')
  const writer = Writer.message(FrontendMessage.Parse, size).cstring(name).cstring(message.query).uint16(paramTypes.length)
  for (const oid of paramTypes) writer.uint32(oid)
  return writer.done()
}

/** Bind (`B`). */
export function serializeBind(message: {
  portal?: string
  statement?: string
  paramFormats?: readonly number[]
  params?: readonly (Buffer | null)[]
  resultFormats?: readonly number[]
}): Buffer {
  const portal = message.portal ?? ''
  const statement = message.statement ?? ''
  const paramFormats = message.paramFormats ?? []
  const params = message.params ?? []
  const resultFormats = message.resultFormats ?? []
  const size =
    cstringSize(portal) + cstringSize(statement) + 2 + 2 * paramFormats.length + valuesSize(params) + 2 + 2 * resultFormats.length
  const writer = Writer.message(FrontendMessage.Bind, size).cstring(portal).cstring(statement)
  writeFormats(writer, paramFormats)
  writeValues(writer, params)
  writeFormats(writer, resultFormats)
  return writer.done()
}

/** Describe (`D`) of a statement (`S`) or portal (`P`). */
export function serializeDescribe(target: DescribeTarget): Buffer {
  return serializeTarget(FrontendMessage.Describe, target)
}

/** Close (`C`) of a statement (`S`) or portal (`P`). */
export function serializeClose(target: DescribeTarget): Buffer {
  return serializeTarget(FrontendMessage.Close, target)
}

function serializeTarget(type: number, target: DescribeTarget): Buffer {
  if (target.kind !== 'S' && target.kind !== 'P') throw new ProtocolError('malformed', 'target kind must be S or P')
  return Writer.message(type, 1 + cstringSize(target.name))
    .byte(target.kind.charCodeAt(0))
    .cstring(target.name)
    .done()
}

/** Execute (`E`); `maxRows` 0 fetches all rows. */
export function serializeExecute(message: { portal?: string; maxRows?: number } = {}): Buffer {
  const portal = message.portal ?? ''
  return Writer.message(FrontendMessage.Execute, cstringSize(portal) + 4)
    .cstring(portal)
    .int32(message.maxRows ?? 0)
    .done()
}

/** FunctionCall (`F`). */
export function serializeFunctionCall(message: FunctionCallMessage): Buffer {
  const size = 4 + 2 + 2 * message.argFormats.length + valuesSize(message.args) + 2
  const writer = Writer.message(FrontendMessage.FunctionCall, size).uint32(message.oid)
  writeFormats(writer, message.argFormats)
  writeValues(writer, message.args)
  return writer.int16(message.resultFormat).done()
}

/** Sync (`S`). */
export function serializeSync(): Buffer {
  return empty(FrontendMessage.Sync)
}

/** Flush (`H`). */
export function serializeFlush(): Buffer {
  return empty(FrontendMessage.Flush)
}

/** Terminate (`X`). */
export function serializeTerminate(): Buffer {
  return empty(FrontendMessage.Terminate)
}

/** PasswordMessage (`p`): a cleartext password or an MD5 hash, NUL-terminated. */
export function serializePassword(password: string): Buffer {
  return text(FrontendMessage.Password, password)
}

/** SASLInitialResponse (`p`): mechanism, then the Int32-length-prefixed client-first-message (-1 for none). */
export function serializeSaslInitialResponse(mechanism: string, data: Buffer | null): Buffer {
  return Writer.message(FrontendMessage.Password, cstringSize(mechanism) + 4 + (data?.length ?? 0))
    .cstring(mechanism)
    .value(data)
    .done()
}

/** SASLResponse (`p`): the raw client-final-message. */
export function serializeSaslResponse(data: Buffer): Buffer {
  return Writer.message(FrontendMessage.Password, data.length).bytes(data).done()
}

/** CopyData (`d`), the same in both directions. */
export function serializeCopyData(data: Buffer): Buffer {
  return Writer.message(FrontendMessage.CopyData, data.length).bytes(data).done()
}

/** CopyDone (`c`), the same in both directions. */
export function serializeCopyDone(): Buffer {
  return empty(FrontendMessage.CopyDone)
}

/** CopyFail (`f`). */
export function serializeCopyFail(message: string): Buffer {
  return text(FrontendMessage.CopyFail, message)
}

// Backend serializers ----------------------------------------------------------------------------

/** Authentication (`R`) of `type` with its type-specific data. */
export function serializeAuthentication(type: number, data?: Buffer): Buffer {
  const writer = Writer.message(BackendMessage.Authentication, 4 + (data?.length ?? 0)).int32(type)
  if (data !== undefined) writer.bytes(data)
  return writer.done()
}

/** ParameterStatus (`S`). */
export function serializeParameterStatus(name: string, value: string): Buffer {
  return Writer.message(BackendMessage.ParameterStatus, cstringSize(name) + cstringSize(value))
    .cstring(name)
    .cstring(value)
    .done()
}

/** BackendKeyData (`K`). */
export function serializeBackendKeyData(processId: number, secretKey: Buffer): Buffer {
  checkCancelKey(secretKey)
  return Writer.message(BackendMessage.BackendKeyData, 4 + secretKey.length).int32(processId).bytes(secretKey).done()
}

/** ReadyForQuery (`Z`). */
export function serializeReadyForQuery(status: TransactionState): Buffer {
  if (status !== 'I' && status !== 'T' && status !== 'E') throw new ProtocolError('malformed', 'unknown transaction status')
  return Writer.message(BackendMessage.ReadyForQuery, 1).byte(status.charCodeAt(0)).done()
}

/** An ErrorResponse (`E`) or NoticeResponse (`N`), chosen by `type`. */
export function serializeErrorFields(type: number, fields: ErrorFields): Buffer {
  let size = 1
  for (const [code, value] of fields) {
    if (!Number.isInteger(code) || code < 1 || code > 0xff) {
      throw new ProtocolError('malformed', `field code ${code} is not a non-zero byte`)
    }
    size += 1 + cstringSize(value)
  }
  const writer = Writer.message(type, size)
  for (const [code, value] of fields) writer.byte(code).cstring(value)
  return writer.byte(0).done()
}

/** ErrorResponse (`E`). */
export function serializeErrorResponse(fields: ErrorFields): Buffer {
  return serializeErrorFields(BackendMessage.ErrorResponse, fields)
}

/** NoticeResponse (`N`). */
export function serializeNoticeResponse(fields: ErrorFields): Buffer {
  return serializeErrorFields(BackendMessage.NoticeResponse, fields)
}

/**
 * NegotiateProtocolVersion (`v`). `newestVersion` is the whole version code, e.g.
 * {@link PROTOCOL_3_0}: libpq reads it as `major << 16 | minor`.
 */
export function serializeNegotiateProtocolVersion(newestVersion: number, unrecognized: readonly string[]): Buffer {
  let size = 8
  for (const option of unrecognized) size += cstringSize(option)
  const writer = Writer.message(BackendMessage.NegotiateProtocolVersion, size).int32(newestVersion).int32(unrecognized.length)
  for (const option of unrecognized) writer.cstring(option)
  return writer.done()
}

/** RowDescription (`T`). */
export function serializeRowDescription(fields: readonly FieldDescription[]): Buffer {
  let size = 2
  for (const field of fields) size += cstringSize(field.name) + 18
  const writer = Writer.message(BackendMessage.RowDescription, size).uint16(countOf(fields, 'fields'))
  for (const field of fields) {
    writer
      .cstring(field.name)
      .uint32(field.tableOid)
      .int16(field.columnAttr)
      .uint32(field.typeOid)
      .int16(field.typeSize)
      .int32(field.typeModifier)
      .int16(field.format)
  }
  return writer.done()
}

/** DataRow (`D`). */
export function serializeDataRow(values: readonly (Buffer | null)[]): Buffer {
  const writer = Writer.message(BackendMessage.DataRow, valuesSize(values))
  writeValues(writer, values)
  return writer.done()
}

/** CommandComplete (`C`). */
export function serializeCommandComplete(tag: string): Buffer {
  return text(BackendMessage.CommandComplete, tag)
}

/** EmptyQueryResponse (`I`): the answer to an empty query string. */
export function serializeEmptyQueryResponse(): Buffer {
  return empty(BackendMessage.EmptyQueryResponse)
}

/** NotificationResponse (`A`). */
export function serializeNotification(notification: Notification): Buffer {
  return Writer.message(
    BackendMessage.NotificationResponse,
    4 + cstringSize(notification.channel) + cstringSize(notification.payload),
  )
    .int32(notification.processId)
    .cstring(notification.channel)
    .cstring(notification.payload)
    .done()
}

/** CopyInResponse (`G`), CopyOutResponse (`H`) or CopyBothResponse (`W`), chosen by `type`. */
export function serializeCopyResponse(type: number, response: CopyResponse): Buffer {
  const writer = Writer.message(type, 1 + 2 + 2 * response.columnFormats.length).byte(response.format)
  writeFormats(writer, response.columnFormats)
  return writer.done()
}

/** ParameterDescription (`t`). */
export function serializeParameterDescription(oids: readonly number[]): Buffer {
  const writer = Writer.message(BackendMessage.ParameterDescription, 2 + 4 * oids.length).uint16(countOf(oids, 'parameter types'))
  for (const oid of oids) writer.uint32(oid)
  return writer.done()
}

/** FunctionCallResponse (`V`). */
export function serializeFunctionCallResponse(result: Buffer | null): Buffer {
  return Writer.message(BackendMessage.FunctionCallResponse, 4 + (result?.length ?? 0))
    .value(result)
    .done()
}

/** A body-less message of any type, e.g. ParseComplete, BindComplete, NoData. */
export function serializeEmptyMessage(type: number): Buffer {
  return empty(type)
}
