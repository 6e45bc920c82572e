/**
 * The relay's masking path under every chunking: the same conversation — a simple Query with rows,
 * a notice, a notification, a parameter change, a COPY out and an error, then an extended-protocol
 * Execute with binary results — with both directions cut into whole messages, 1-byte chunks and
 * random chunks. The bytes the client receives and the bytes the server receives must be the same
 * every time, and masked.
 *
 * Both ends are fakes that hand the relay exactly the chunks chosen (real sockets would coalesce
 * them); the server side answers what the relay sends it, as PostgreSQL would.
 */
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadSqlParser } from '../../../../src/policy/index.js'
import { copyOutStatement, createMasker, type Masker } from '../../../../src/policy/masking/index.js'
import { ALLOW_ALL } from '../../../../src/protocols/hooks.js'
import { MessageFramer } from '../../../../src/protocols/postgres/framer.js'
import { PostgresRelay } from '../../../../src/protocols/postgres/relay.js'
import { ResultMasking } from '../../../../src/protocols/postgres/result-masking.js'
import type { CloseReason, Transport, TransportEvents } from '../../../../src/tunnel/transport.js'
import { be, fe, fixedChunks, prng, randomChunks } from '../../../helpers/pg-messages.js'

const SECRET = 'S3cr3t-Upstream-Passw0rd-4711'
const LABEL = '[CREDENTIAL]'
const TEXT = 25
const INT4 = 23

type Chunker = (bytes: Buffer) => Buffer[]

/** The client's side of the tunnel: what it is sent, and a way to send to the relay. */
class FakeTransport extends EventEmitter<TransportEvents> implements Transport {
  readonly received: Buffer[] = []
  closed = false
  bytesIn = 0
  bytesOut = 0
  write(chunk: Buffer): boolean {
    this.received.push(Buffer.from(chunk))
    return true
  }
  writev(chunks: readonly Buffer[]): boolean {
    for (const chunk of chunks) this.write(chunk)
    return true
  }
  end(): void {}
  pause(): void {}
  resume(): void {}
  control(): void {}
  close(_reason?: CloseReason): void {
    this.closed = true
  }
}

const field = (name: string, typeOid: number, format = 0) => ({ name, tableOid: 0, columnAttr: 0, typeOid, typeSize: -1, typeModifier: -1, format })

/**
 * A server that answers the frontend messages it is written as PostgreSQL would, and hands its
 * answers to the relay in the chunks `chunker` makes.
 */
class FakeServer extends EventEmitter {
  readonly written: Buffer[] = []
  destroyed = false
  private readonly framer = new MessageFramer({ maxMessageLength: 1 << 20 })
  private readonly outbox: Buffer[] = []
  private resultFormats: number[] = []

  /** @param queryAnswer what a simple Query gets instead of the conversation's answer */
  constructor(
    private readonly chunker: Chunker,
    private readonly queryAnswer?: readonly Buffer[],
  ) {
    super()
  }

  write(chunk: Buffer): boolean {
    this.written.push(Buffer.from(chunk))
    this.framer.push(Buffer.from(chunk))
    for (let frame = this.framer.next(); frame !== undefined; frame = this.framer.next()) this.answer(String.fromCharCode(frame.type), frame.body)
    return true
  }

  cork(): void {}
  uncork(): void {}
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {
    this.destroyed = true
  }

  /** Sends everything answered so far, chunked. */
  deliver(): void {
    const bytes = Buffer.concat(this.outbox.splice(0))
    for (const chunk of this.chunker(bytes)) this.emit('data', Buffer.from(chunk))
  }

  private answer(type: string, body: Buffer): void {
    const send = (...messages: Buffer[]): void => {
      this.outbox.push(...messages)
    }
    switch (type) {
      case 'Q':
        if (this.queryAnswer !== undefined) {
          send(...this.queryAnswer)
          break
        }
        send(
          be.rowDescription([field('pw', TEXT), field('n', INT4)]),
          be.dataRow([SECRET, '1']),
          be.dataRow(['clean', '2']),
          be.dataRow([Buffer.from(SECRET).toString('base64'), null]),
          be.commandComplete('SELECT 3'),
          be.noticeResponse([['S', 'NOTICE'], ['C', '00000'], ['M', `value: ${SECRET}`]]),
          be.notification(42, 'leak', `payload ${SECRET}`),
          be.parameterStatus('application_name', SECRET),
          be.copyOutResponse(0, [0, 0]),
          be.copyData(`1\t${SECRET}\n`),
          be.copyData('2\tclean\\tvalue\n'),
          be.copyDone(),
          be.commandComplete('COPY 2'),
          be.errorResponse([['S', 'ERROR'], ['C', '22P02'], ['M', `invalid input syntax for type integer: "${SECRET}"`]]),
          be.readyForQuery('I'),
        )
        break
      case 'P':
        send(be.parseComplete())
        break
      case 'B': {
        // The result formats are the last Int16 list of the body.
        const count = body.readInt16BE(body.length - 2)
        this.resultFormats = count === 0 ? [] : [body.readInt16BE(body.length - 2 - 2 * count)]
        send(be.bindComplete())
        break
      }
      case 'D':
        send(be.rowDescription([field('pw', TEXT, this.resultFormats[0] ?? 0), field('n', INT4, this.resultFormats[0] ?? 0)]))
        break
      case 'E':
        send(be.dataRow([SECRET, '7']), be.dataRow(['clean', '-3']), be.commandComplete('SELECT 2'))
        break
      case 'S':
        send(be.readyForQuery('I'))
        break
      case 'F':
        // A function returning the secret: the relay cannot know its type, so a finding nulls it.
        send(be.functionCallResponse(SECRET), be.readyForQuery('I'))
        break
      case 'H':
        break
      default:
        throw new Error(`the fake server does not answer ${type}`)
    }
  }
}

const CLIENT_MESSAGES = Buffer.concat([
  fe.query("select pw, n from t; copy (select n, pw from t) to stdout; select pw::int from t"),
  fe.parse('', 'select pw, n from t'),
  fe.bind({ resultFormats: [1] }),
  fe.describe('P', ''),
  fe.execute('', 0),
  fe.sync(),
])

async function converse(
  client: Chunker,
  server: Chunker,
  messages: Buffer = CLIENT_MESSAGES,
  { masker = createMasker({ detectors: [] }, { secrets: [SECRET] }), queryAnswer }: { masker?: Masker; queryAnswer?: readonly Buffer[] } = {},
): Promise<{ toClient: Buffer; toServer: Buffer }> {
  const transport = new FakeTransport()
  const upstream = new FakeServer(server, queryAnswer)
  const masking = new ResultMasking({ masker, columnRules: false, copyOut: copyOutStatement })
  const relay = new PostgresRelay(transport, upstream as unknown as Socket, new MessageFramer({ maxMessageLength: 1 << 20 }), ALLOW_ALL, { id: 's', identity: { id: 'i', display: 'i' } as never, connection: 'c' }, true, masking)
  const ended = relay.run(Buffer.alloc(0))
  for (const chunk of client(messages)) transport.emit('data', Buffer.from(chunk))
  // The relay holds the Execute until its own Describe is answered: deliver until nothing moves.
  for (let round = 0; round < 10; round++) {
    upstream.deliver()
    await new Promise((resolve) => setImmediate(resolve))
  }
  transport.emit('close', { message: 'done' })
  await ended
  return { toClient: Buffer.concat(transport.received), toServer: Buffer.concat(upstream.written) }
}

/** Types of the messages in a byte stream, for readable failures. */
function types(bytes: Buffer): string {
  const framer = new MessageFramer({ maxMessageLength: 1 << 20 })
  framer.push(bytes)
  let out = ''
  for (let frame = framer.next(); frame !== undefined; frame = framer.next()) out += String.fromCharCode(frame.type)
  return out
}

const whole: Chunker = (bytes) => [bytes]
const chunkings: [string, Chunker][] = [
  ['1-byte chunks', (bytes) => fixedChunks(bytes, 1)],
  ['7-byte chunks', (bytes) => fixedChunks(bytes, 7)],
  ...[1, 2, 3, 4, 5].map((seed): [string, Chunker] => [`random chunks (seed ${seed})`, (bytes) => randomChunks(bytes, prng(seed), 64)]),
]

let reference: { toClient: Buffer; toServer: Buffer }

beforeAll(async () => {
  await loadSqlParser()
  reference = await converse(whole, whole)
})

describe('the relay masking path', () => {
  it('masks every channel, rewrites the Bind to text and describes the portal itself (whole messages)', () => {
    const { toClient, toServer } = reference
    expect(toClient.includes(SECRET)).toBe(false)
    expect(toClient.includes(Buffer.from(SECRET).toString('base64'))).toBe(false)
    // T D D D C N A S H d d c C E Z, then 1 2 T(client's Describe) D D C Z: the relay's own T is not relayed.
    expect(types(toClient)).toBe('TDDDCNASHddcCEZ12TDDCZ')
    expect(toClient.toString('latin1').split(LABEL).length - 1).toBe(8)
    // The server was asked for text results, and for a Describe (and a Flush) before the Execute.
    expect(types(toServer)).toBe('QPBDDHES')
    expect(toServer.includes(fe.bind({ resultFormats: [] }))).toBe(true)
    // Binary results re-encoded: int4 7 and -3 as four bytes, the masked text as its bytes.
    expect(toClient.includes(be.dataRow([LABEL, Buffer.from([0, 0, 0, 7])]))).toBe(true)
    expect(toClient.includes(be.dataRow(['clean', Buffer.from([0xff, 0xff, 0xff, 0xfd])]))).toBe(true)
  })

  it('nulls a function-call result holding the secret (its type is unknown), in any chunking', async () => {
    const call = fe.functionCall(1234, [], [], 1)
    const expected = Buffer.concat([be.functionCallResponse(null), be.readyForQuery('I')])
    for (const [, chunker] of [['whole', whole] as [string, Chunker], ...chunkings]) {
      const run = await converse(chunker, chunker, call)
      expect(run.toClient.equals(expected)).toBe(true)
    }
  })

  it('sends a read whose rows are rewritten shorter, longer or dropped as the messages masked one by one, in any chunking', async () => {
    // Every row raised: a secret (rewritten shorter, in place in the read), a short address
    // (rewritten longer: a piece of its own), a clean row between them; and a COPY of the same.
    const values = Array.from({ length: 300 }, (_, i) => [`${SECRET} ${i}`, `a@b.co`, `clean ${i}`][i % 3]!)
    const rows = values.map((value, i) => be.dataRow([value, String(i)]))
    const lines = values.map((value, i) => be.copyData(`${i}\t${value}\n`))
    const answer = [be.rowDescription([field('pw', TEXT), field('n', INT4)]), ...rows, be.commandComplete('SELECT 300'), be.copyOutResponse(0, [0, 0]), ...lines, be.copyDone(), be.commandComplete('COPY 300'), be.readyForQuery('I')]
    const masker = () => createMasker({ detectors: ['email'] }, { secrets: [SECRET] })
    const alone = masker()
    const plan = alone.columns([field('pw', TEXT), field('n', INT4)])
    const expected = Buffer.concat([
      answer[0]!,
      ...values.map((value, i) => {
        const masked = alone.row([Buffer.from(value), Buffer.from(String(i))], plan)
        return masked === undefined ? rows[i]! : be.dataRow(masked.map((cell) => cell!))
      }),
      be.commandComplete('SELECT 300'),
      be.copyOutResponse(0, [0, 0]),
      ...values.map((value, i) => be.copyData(alone.copy(Buffer.from(`${i}\t${value}\n`), { format: 'text' }) ?? Buffer.from(`${i}\t${value}\n`))),
      be.copyDone(),
      be.commandComplete('COPY 300'),
      be.readyForQuery('I'),
    ])
    expect(expected.toString('latin1')).toContain('[CREDENTIAL] 297')
    expect(expected.toString('latin1')).toContain('[EMAIL]')
    const query = fe.query('select pw, n from t; copy (select n, pw from t) to stdout')
    for (const [, chunker] of [['whole', whole] as [string, Chunker], ...chunkings]) {
      const run = await converse(whole, chunker, query, { masker: masker(), queryAnswer: answer })
      expect(run.toClient.equals(expected)).toBe(true)
    }
  })

  it.each(chunkings)('the client side in %s: the same bytes both ways', async (_name, chunker) => {
    const run = await converse(chunker, whole)
    expect(run.toClient.equals(reference.toClient)).toBe(true)
    expect(run.toServer.equals(reference.toServer)).toBe(true)
  })

  it.each(chunkings)('the server side in %s: the same bytes both ways', async (_name, chunker) => {
    const run = await converse(whole, chunker)
    expect(run.toClient.equals(reference.toClient)).toBe(true)
    expect(run.toServer.equals(reference.toServer)).toBe(true)
  })

  it.each(chunkings)('both sides in %s: the same bytes both ways', async (_name, chunker) => {
    const run = await converse(chunker, chunker)
    expect(run.toClient.equals(reference.toClient)).toBe(true)
    expect(run.toServer.equals(reference.toServer)).toBe(true)
  })
})
