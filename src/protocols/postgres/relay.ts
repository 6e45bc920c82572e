/**
 * The post-startup Postgres relay: frontend messages from the tunnel to the upstream socket and
 * backend messages back, with every statement passing `StatementHooks.begin` before it is
 * forwarded and `end` once its result is known.
 *
 *   client (tunnel)                  relay                               upstream
 *     │── Query "a; b" ─────────────▶ begin(a), begin(b) ── Query ──────▶│
 *     │◀── T D* C(a) T D* C(b) Z ──── end(a), end(b) ◀──────────────────│
 *     │── P B E(x) P B E(y) S ──────▶ begin(x) … begin(y): denied ───────▶│ P B E P(fails) B E S
 *     │◀── 1 2 C(x) 1 2 E(42501) Z ── error rewritten as the guardrail's ◀│ 1 2 C 1 2 E(42601) … Z
 *
 * A denied statement is replaced upstream by one that fails at parse time, so the server's own
 * error handling (abort the transaction, discard until Sync) keeps both sides' transaction state
 * identical; the server's error comes back rewritten as SQLSTATE 42501, routine airlock_guardrail.
 *
 * With masking (result-masking.ts), what the server sends is masked on its way to the client, and
 * the relay asks the server for text results and describes each portal itself before its Execute
 * (see the diagram there); a statement whose results masking cannot read is refused as a block is.
 *
 * Hot path: frames are subarrays of the read chunks; unchanged frames that lie next to each other
 * in memory go out as one slice, so a chunk of untouched messages is written once, uncopied.
 */
import { performance } from 'node:perf_hooks'
import type { Socket } from 'node:net'
import { AirlockError } from '../../errors.js'
import type { StatementContext, StatementHooks, StatementPlan, Verdict } from '../hooks.js'
import type { CloseReason, Transport } from '../../tunnel/transport.js'
import { type Frame, MessageFramer, ProtocolError } from './framer.js'
import {
  type ErrorFields,
  getField,
  parseBind,
  parseClose,
  parseCommandComplete,
  parseErrorFields,
  parseCopyResponse,
  parseDescribe,
  parseExecute,
  parseFunctionCall,
  parseParameterStatus,
  parseParse,
  parseQuery,
  parseReadyForQuery,
  parseRowDescription,
  serializeBind,
  serializeDescribe,
  serializeErrorResponse,
  serializeFlush,
  serializeParse,
  serializeQuery,
} from './messages.js'
import { BackendMessage, ErrorField, FormatCode, FrontendMessage } from './protocol.js'
import { type CleanRun, type CopyOutFormat, type ResultMasking, type ResultState, SWALLOWED, unsupportedBinary } from './result-masking.js'
import { splitStatements } from './split.js'

/** Fails in the server's parser whatever the session state, so nothing of it can run. */
export const BLOCKED_SQL = 'AIRLOCK GUARDRAIL BLOCKED THIS STATEMENT'
/** The rule named in a refusal by masking (a statement whose results masking cannot read). */
export const MASKING_RULE = 'masking'
/** Largest frontend message accepted (a Bind with a large bytea, a long Query); allocated when its header arrives, so it bounds per-connection memory. */
export const MAX_FRONTEND_MESSAGE = 64 * 1024 * 1024

/**
 * What a policy asks of a Postgres session, carried on the hooks it hands the engine (engines never
 * import policy): startup parameters that override the client's, and ParameterStatus values the
 * session must keep — any other value reported ends the session, fail closed.
 */
export interface PostgresSessionRequirements {
  startupParameters: Readonly<Record<string, string>>
  pinned: Readonly<Record<string, string>>
}

/** StatementHooks with what a Postgres-aware policy may also want from the relay. */
export interface PostgresStatementHooks extends StatementHooks {
  readonly postgres?: PostgresSessionRequirements
  /**
   * Told when a named prepared statement's text changes as the server will see it: a Parse
   * (`text`), a Close or a Parse the server rejected (`undefined`, or the text it reverts to).
   * SQL `EXECUTE name` runs protocol-level statements too, so a policy needs their text.
   */
  preparedStatement?(name: string, text: string | undefined): void
}

export interface SessionInfo {
  id: string
  identity: StatementContext['session']['identity']
  connection: string
}

/** One frontend message that the server will answer, in the order sent. */
type Pending =
  | { kind: 'query'; statements: Tracked[]; index: number; blocked: Verdict | undefined }
  | { kind: 'execute'; statement: Tracked; blocked: Verdict | undefined; result: ResultSlot | undefined }
  | { kind: 'function'; statement: Tracked; blocked: Verdict | undefined }
  /** `previous`: what the name meant before, restored if the server rejects or skips this message. */
  | { kind: 'parse'; name: string; previous: string | undefined }
  | { kind: 'bind'; portal: string; previous: Bound | undefined }
  /** `result`: a Describe the relay injected (its answer is not relayed) to learn a portal's columns. */
  | { kind: 'describe'; target: 'S' | 'P'; formats: readonly number[] | undefined; result: ResultSlot | undefined }
  /** `previous`: the statement or portal the Close removed, restored if the server skips it. */
  | { kind: 'close'; target: 'S'; name: string; previous: string | undefined }
  | { kind: 'close'; target: 'P'; name: string; previous: Bound | undefined }
  | { kind: 'sync' }

/** A portal's columns as the relay's own Describe learns them, for the Execute after it. */
interface ResultSlot {
  state?: ResultState
  settled: boolean
  /** Set when the Execute waits for the answer (the client asked for binary results). */
  settle?: (state: ResultState | undefined) => void
}

interface Bound {
  name: string
  text: string
}

interface Tracked {
  context: StatementContext
  startedAt: number
  rows: number
  done: boolean
  /** A COPY TO STDOUT under masking: how its lines are written. */
  copy?: CopyOutFormat
}

export class PostgresRelay {
  private readonly frontend = new MessageFramer({ maxMessageLength: MAX_FRONTEND_MESSAGE })
  private readonly pending: Pending[] = []
  private pendingHead = 0
  /**
   * Prepared statements and portals as they will be once the server has processed what was sent:
   * within one pipeline an Execute only runs if the Parse/Bind before it succeeded, so the newest
   * definition is the one that runs; a rejected or skipped Parse/Bind restores the previous one.
   */
  private readonly statements = new Map<string, string>()
  private readonly portals = new Map<string, Bound>()
  /**
   * Doubt: a Parse or Bind of a named statement or portal, or a Close, may fail or be skipped,
   * and after the next Sync the server goes on with the old definition (a Parse of a name that
   * exists fails; a Close after an error is skipped). A Bind, Execute or Query sent after such a
   * Sync waits until the server has answered up to it, so the names mean what the server has.
   * `barrier`: the position (counted over everything ever sent) of the last Sync after a doubtful
   * message; `answered`: how many sent messages the server has answered.
   */
  private sent = 0
  private answered = 0
  private doubtfulSinceSync = false
  private barrier = -1
  private barrierWaiters: (() => void)[] = []
  private sequence = 0
  /** Frames held while a hook answers asynchronously. */
  private waiting: Promise<void> | undefined
  /** Flow control from the two reasons to stop reading the client. */
  private heldByHook = false
  private upstreamFull = false
  private fail: (error: unknown) => void = () => {}
  /** Reused per pump: one per direction, emptied by every flush. */
  private readonly frontendOut = new Batch()
  private readonly backendOut = new Batch()
  /** What {@link passRun} found last. */
  private readonly passed: CleanRun = { count: 0, end: 0 }
  /** ParameterStatus values the policy needs kept (see {@link PostgresSessionRequirements}). */
  private readonly pinned: ReadonlyMap<string, string> | undefined
  /** Masking: result formats each portal was bound with (client's view), the simple-query result set, a COPY out. */
  private readonly portalFormats = new Map<string, readonly number[]>()
  private simpleResult: ResultState | undefined
  private copying: CopyOutFormat | undefined

  constructor(
    private readonly transport: Transport,
    private readonly upstream: Socket,
    private readonly backend: MessageFramer,
    private readonly hooks: PostgresStatementHooks,
    private readonly session: SessionInfo,
    /** The server's current setting; the splitter must read strings as the server does. */
    private standardConformingStrings = true,
    /** The session's masking; undefined relays every result as the server sends it. */
    private readonly masking?: ResultMasking,
  ) {
    const pinned = hooks.postgres?.pinned
    this.pinned = pinned === undefined ? undefined : new Map(Object.entries(pinned))
  }

  /** Relays until either side ends. `greeting` goes to the client first (AuthenticationOk ...). */
  run(greeting: Buffer): Promise<CloseReason> {
    const { transport, upstream } = this
    return new Promise((resolve) => {
      let done = false
      const finish = (reason: CloseReason): void => {
        if (done) return
        done = true
        this.skipAll()
        transport.close(reason)
        if (reason.code === undefined && !upstream.destroyed) upstream.end(() => upstream.destroy())
        else upstream.destroy()
        resolve(reason)
      }
      this.fail = (error: unknown): void => {
        if (error instanceof ProtocolError) {
          const message = `protocol violation: ${error.message}`
          transport.write(fatal('08P01', message))
          finish({ code: 'usage', message })
        } else if (error instanceof AirlockError && error.code === 'blocked') {
          transport.write(fatal('42501', error.message, error.hint))
          // An orderly close, so that the client is sure to read the FATAL before the end.
          finish({ message: error.message })
        } else {
          finish({ code: 'internal', message: 'internal error in the Postgres relay' })
        }
      }

      transport.on('data', (chunk) => {
        try {
          this.frontend.push(chunk)
          if (this.waiting === undefined) this.pumpFrontend()
        } catch (error) {
          this.fail(error)
        }
      })
      transport.on('end', () => upstream.end())
      transport.on('close', finish)
      transport.on('drain', () => upstream.resume())
      upstream.on('drain', () => {
        this.upstreamFull = false
        this.updateFlow()
      })
      upstream.on('data', (chunk: Buffer) => {
        try {
          this.backend.push(chunk)
          this.pumpBackend()
        } catch (error) {
          this.fail(error)
        }
      })
      upstream.on('end', () => transport.end())
      upstream.on('error', (error: NodeJS.ErrnoException) => {
        finish({ code: 'upstream-unavailable', message: `the database connection failed (${error.code ?? error.message})` })
      })
      upstream.on('close', () => finish({ message: 'the database closed the connection' }))

      transport.write(greeting)
      transport.resume()
      upstream.resume()
      // Messages the server sent right after ReadyForQuery during startup are already framed.
      this.pumpBackend()
    })
  }

  // ---- client → server ---------------------------------------------------------------------

  private pumpFrontend(): void {
    const out = this.frontendOut
    for (let frame = this.frontend.next(); frame !== undefined; frame = this.frontend.next()) {
      const plan = this.onFrontend(frame, out)
      if (plan !== undefined) {
        // A hook answered with a promise: hold everything after this frame until it settles.
        this.flushUpstream(out)
        this.heldByHook = true
        this.updateFlow()
        this.waiting = plan
          .then((forward) => {
            this.waiting = undefined
            this.heldByHook = false
            const after = new Batch()
            forward(after)
            this.flushUpstream(after)
            this.updateFlow()
            this.pumpFrontend()
          })
          .catch((error: unknown) => this.fail(error))
        return
      }
    }
    this.flushUpstream(out)
  }

  /** Handles one frontend frame; returns a promise only when a hook answered asynchronously. */
  private onFrontend(frame: Frame, out: Batch): Promise<(out: Batch) => void> | undefined {
    switch (frame.type) {
      case FrontendMessage.Query:
      case FrontendMessage.Bind:
      case FrontendMessage.Execute: {
        const handle = frame.type === FrontendMessage.Query ? this.query : frame.type === FrontendMessage.Bind ? this.bind : this.execute
        const doubts = this.settledDoubts()
        return doubts === undefined ? handle.call(this, frame, out) : this.afterDoubts(doubts, frame, handle)
      }
      case FrontendMessage.Parse: {
        const { name, query } = parseParse(frame.body)
        this.enqueue({ kind: 'parse', name, previous: this.statements.get(name) }, name !== '')
        this.statements.set(name, query)
        if (name !== '') this.hooks.preparedStatement?.(name, query)
        out.add(frame.raw, frame)
        return undefined
      }
      case FrontendMessage.FunctionCall: {
        const { oid } = parseFunctionCall(frame.body)
        const statement = this.track('function-call', `function ${oid}`)
        return this.decide([statement], out, (verdict, batch) => {
          this.enqueue({ kind: 'function', statement, blocked: verdict })
          batch.add(verdict === undefined ? frame.raw : serializeQuery(BLOCKED_SQL))
        })
      }
      case FrontendMessage.Close: {
        const { kind, name } = parseClose(frame.body)
        const entry: Pending = kind === 'S' ? { kind: 'close', target: 'S', name, previous: this.statements.get(name) } : { kind: 'close', target: 'P', name, previous: this.portals.get(name) }
        if (kind === 'S') {
          this.statements.delete(name)
          if (name !== '') this.hooks.preparedStatement?.(name, undefined)
        } else {
          this.portals.delete(name)
          this.portalFormats.delete(name)
        }
        this.enqueue(entry, entry.previous !== undefined)
        out.add(frame.raw, frame)
        return undefined
      }
      case FrontendMessage.Describe: {
        const { kind, name } = parseDescribe(frame.body)
        const formats = kind === 'P' ? this.portalFormats.get(name) : undefined
        this.enqueue({ kind: 'describe', target: kind, formats, result: undefined })
        out.add(frame.raw, frame)
        return undefined
      }
      case FrontendMessage.Sync:
        this.enqueue({ kind: 'sync' })
        out.add(frame.raw, frame)
        return undefined
      case FrontendMessage.Flush:
      case FrontendMessage.CopyData:
      case FrontendMessage.CopyDone:
      case FrontendMessage.CopyFail:
      case FrontendMessage.Terminate:
        out.add(frame.raw, frame)
        return undefined
      default:
        throw new ProtocolError('malformed', `unexpected frontend message ${JSON.stringify(String.fromCharCode(frame.type))}`)
    }
  }

  private query(frame: Frame, out: Batch): Promise<(out: Batch) => void> | undefined {
    const text = parseQuery(frame.body)
    const statements = splitStatements(text, this.standardConformingStrings).map((sql) => this.track(/^\s*copy\b/i.test(sql) ? 'copy' : 'simple', sql))
    return this.decide(statements, out, (verdict, batch) => {
      this.enqueue({ kind: 'query', statements, index: 0, blocked: verdict })
      batch.add(verdict === undefined ? frame.raw : serializeQuery(BLOCKED_SQL))
    })
  }

  private bind(frame: Frame, out: Batch): undefined {
    const bind = parseBind(frame.body)
    const { portal, statement } = bind
    this.enqueue({ kind: 'bind', portal, previous: this.portals.get(portal) }, portal !== '')
    // A statement the relay never saw (SQL PREPARE) has no text: the hooks get '' and decide.
    this.portals.set(portal, { name: statement, text: this.statements.get(statement) ?? '' })
    if (this.masking !== undefined && bind.resultFormats.some((format) => format !== FormatCode.Text)) {
      // Masking reads text: the server sends text, the relay re-encodes what the client wants in binary.
      this.portalFormats.set(portal, bind.resultFormats)
      out.add(serializeBind({ ...bind, resultFormats: [] }))
    } else {
      if (this.masking !== undefined) this.portalFormats.delete(portal)
      out.add(frame.raw, frame)
    }
    return undefined
  }

  private execute(frame: Frame, out: Batch): Promise<(out: Batch) => void> | undefined {
    const { portal } = parseExecute(frame.body)
    const bound = this.portals.get(portal)
    const text = bound?.text ?? ''
    const statement = this.track(/^\s*copy\b/i.test(text) ? 'copy' : 'extended', text, bound?.name ?? '')
    const described = this.masking === undefined ? undefined : this.describePortal(portal, out)
    return this.decide([statement], out, (verdict, batch) => {
      this.enqueue({ kind: 'execute', statement, blocked: verdict, result: described?.slot })
      if (verdict === undefined) {
        batch.add(frame.raw, frame)
      } else {
        // The stand-in replaces the server's unnamed statement.
        this.statements.delete('')
        batch.add(serializeParse({ name: '', query: BLOCKED_SQL }))
      }
    }, described?.check)
  }

  /** Records a message the server will answer; `doubtful`: see {@link barrier}. */
  private enqueue(entry: Pending, doubtful = false): void {
    this.pending.push(entry)
    const position = this.sent++
    if (doubtful) this.doubtfulSinceSync = true
    else if (entry.kind === 'sync' && this.doubtfulSinceSync) {
      this.barrier = position
      this.doubtfulSinceSync = false
    }
  }

  /** Resolves once the server has answered up to the last Sync after a doubtful message; undefined when it has. */
  private settledDoubts(): Promise<void> | undefined {
    if (this.barrier < this.answered) return undefined
    return new Promise((resolve) => this.barrierWaiters.push(resolve))
  }

  /** `handle` for `frame` once the doubts are settled, as {@link onFrontend} answers asynchronously. */
  private afterDoubts(
    doubts: Promise<void>,
    frame: Frame,
    handle: (frame: Frame, out: Batch) => Promise<(out: Batch) => void> | undefined,
  ): Promise<(out: Batch) => void> {
    return doubts.then(() => {
      const batch = new Batch()
      const plan = handle.call(this, frame, batch)
      if (plan === undefined) return (after: Batch) => batch.moveTo(after)
      // What the handler sent ahead (a Describe the relay injects) goes now: the plan may wait for its answer.
      this.flushUpstream(batch)
      return plan
    })
  }

  /**
   * Runs `begin` for each statement; `forward` receives the first denying verdict (or none).
   * Synchronous answers forward at once; any promise defers the forward until all settle.
   */
  private decide(
    statements: Tracked[],
    out: Batch,
    forward: (verdict: Verdict | undefined, batch: Batch) => void,
    /** Masking's answer on binary results, when it needs the server's description first. */
    masked?: Promise<Verdict | undefined>,
  ): Promise<(out: Batch) => void> | undefined {
    const plans = statements.map((statement) => this.hooks.begin(statement.context))
    const copy = this.masking === undefined ? undefined : this.copyRefusal(statements)
    if (masked === undefined && plans.every((plan): plan is StatementPlan => !(plan instanceof Promise))) {
      forward(firstDenial(plans) ?? copy, out)
      return undefined
    }
    const hooked = Promise.all(plans).then(
      (settled) => firstDenial(settled),
      // A hook that fails blocks: fail closed.
      (): Verdict => ({ allow: false, rule: 'airlock-internal', message: 'the statement could not be checked' }),
    )
    return Promise.all([hooked, masked]).then(([denial, binary]) => (batch: Batch) => forward(denial ?? copy ?? binary, batch))
  }

  /**
   * Masking refuses a COPY TO STDOUT it cannot read: binary, unparseable, or under column rules
   * (COPY sends no column names to match them against). Notes the line format of the others.
   */
  private copyRefusal(statements: readonly Tracked[]): Verdict | undefined {
    const masking = this.masking!
    for (const statement of statements) {
      if (!/copy/i.test(statement.context.text)) continue
      const kind = masking.copyOut(statement.context.text)
      if (kind === undefined) continue
      if (kind.format === 'binary') return maskingRefusal('binary COPY output cannot be masked', 'use COPY ... TO STDOUT in text or CSV format')
      if (kind.format === 'unreadable') return maskingRefusal('the COPY statement could not be read, so its output cannot be masked')
      if (masking.columnRules) {
        return maskingRefusal('COPY TO STDOUT cannot apply the connection\'s column masking rules (COPY sends no column names)', 'use SELECT for this data')
      }
      statement.copy = kind
    }
    return undefined
  }

  /**
   * Under masking, every Execute is preceded by a Describe of its portal, whose answer the relay
   * keeps (the client did not ask for it): the columns to mask. When the client asked for binary
   * results, the Execute waits for that answer (a Flush makes the server send it at once): a type
   * the relay cannot re-encode is refused before anything of the statement runs.
   */
  private describePortal(portal: string, out: Batch): { slot: ResultSlot; check: Promise<Verdict | undefined> | undefined } {
    const formats = this.portalFormats.get(portal)
    const slot: ResultSlot = { settled: false }
    out.add(serializeDescribe({ kind: 'P', name: portal }))
    this.enqueue({ kind: 'describe', target: 'P', formats, result: slot })
    if (formats === undefined) return { slot, check: undefined }
    out.add(serializeFlush())
    const check = new Promise<Verdict | undefined>((resolve) => {
      slot.settle = (state) => {
        if (state === undefined || state.unsupported.length === 0) return resolve(undefined)
        const refusal = unsupportedBinary(state.unsupported)
        resolve(maskingRefusal(refusal.message, refusal.hint))
      }
    })
    return { slot, check }
  }

  private track(path: StatementContext['path'], text: string, statementName?: string): Tracked {
    const context: StatementContext = {
      session: this.session,
      sequence: ++this.sequence,
      path,
      text,
      ...(statementName === undefined ? {} : { statementName }),
    }
    if (!this.standardConformingStrings) context.backslashEscapes = true
    return { context, startedAt: performance.now(), rows: 0, done: false }
  }

  private flushUpstream(out: Batch): void {
    if (out.isEmpty()) return
    const pieces = out.take()
    let ok = true
    if (pieces.length === 1) {
      ok = this.upstream.write(pieces[0]!)
    } else {
      // Several pieces (a rewritten message between untouched ones) go out in one writev.
      this.upstream.cork()
      for (const piece of pieces) ok = this.upstream.write(piece) && ok
      this.upstream.uncork()
    }
    if (!ok) {
      this.upstreamFull = true
      this.updateFlow()
    }
  }

  /** Reads the client only while neither a pending hook nor a full upstream says stop. */
  private updateFlow(): void {
    if (this.heldByHook || this.upstreamFull) this.transport.pause()
    else this.transport.resume()
  }

  // ---- server → client ---------------------------------------------------------------------

  private pumpBackend(): void {
    const out = this.backendOut
    for (;;) {
      this.passRun(out)
      const frame = this.backend.next()
      if (frame === undefined) break
      const bytes = this.onBackend(frame)
      out.add(bytes, bytes === frame.raw ? frame : undefined)
    }
    if (out.isEmpty()) return
    // One network write per read: usually one slice of it; a message rewritten, or one that
    // straddled reads (copied by the framer), goes between the slices, uncopied, each its own frame.
    if (!this.transport.writev(out.take())) this.upstream.pause()
  }

  private get head(): Pending | undefined {
    return this.pending[this.pendingHead]
  }

  private shift(): Pending | undefined {
    const head = this.pending[this.pendingHead++]
    if (head !== undefined) {
      this.answered++
      if (this.answered > this.barrier && this.barrierWaiters.length > 0) {
        const waiters = this.barrierWaiters
        this.barrierWaiters = []
        for (const resolve of waiters) resolve()
      }
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead)
      this.pendingHead = 0
    }
    return head
  }

  /**
   * The result rows (DataRow) or COPY lines (CopyData) at the framer's position that go to the
   * client as the server sent them, passed on in one piece without a frame each and counted as
   * {@link onBackend} would count them: under masking those the masker finds clean, in one call
   * into C; without masking every whole one in the read. The first that is not is left to
   * onBackend.
   */
  private passRun(out: Batch): void {
    const type = this.backend.peekType()
    if (type !== BackendMessage.DataRow && type !== BackendMessage.CopyData) return
    const start = this.backend.peek()!
    const { chunk, offset } = start
    const run = this.passed
    const head = this.head
    const masking = this.masking
    if (type === BackendMessage.DataRow) {
      if (masking === undefined) {
        this.backend.wholeRun(start, type, run)
      } else {
        const state = head?.kind === 'query' ? this.simpleResult : head?.kind === 'execute' ? head.result?.state : undefined
        // No result set known: onBackend fails closed.
        if (state === undefined) return
        masking.cleanRows(chunk, offset, state, run)
      }
      if (run.count === 0) return
      countRows(head, run.count)
    } else if (this.copying !== undefined || masking === undefined) {
      if (this.copying !== undefined) masking!.cleanCopyLines(chunk, offset, this.copying, run)
      else this.backend.wholeRun(start, type, run)
      if (run.count === 0) return
    } else {
      return
    }
    out.add(chunk.subarray(offset, run.end), start)
    this.backend.pass(run.end - offset)
  }

  /** Returns the bytes to send the client for this frame (the frame itself unless rewritten). */
  private onBackend(frame: Frame): Buffer {
    const head = this.head
    switch (frame.type) {
      case BackendMessage.DataRow:
        countRows(head, 1)
        if (this.masking !== undefined) return this.masking.dataRow(frame, this.resultOf(head))
        return frame.raw
      case BackendMessage.CommandComplete:
      case BackendMessage.EmptyQueryResponse: {
        const tag = frame.type === BackendMessage.CommandComplete ? parseCommandComplete(frame.body) : undefined
        this.copying = undefined
        if (head?.kind === 'query') {
          const statement = head.statements[head.index]
          if (statement !== undefined) {
            this.end(statement, 'ok', tag)
            head.index++
          }
        } else if (head?.kind === 'execute') {
          this.end(head.statement, 'ok', tag)
          this.shift()
        }
        return frame.raw
      }
      case BackendMessage.PortalSuspended:
        if (head?.kind === 'execute') {
          this.end(head.statement, 'ok', 'SUSPENDED')
          this.shift()
        }
        return frame.raw
      case BackendMessage.FunctionCallResponse: {
        const raw = this.masking === undefined ? frame.raw : this.masking.functionResult(frame)
        if (head?.kind === 'function') this.end(head.statement, 'ok')
        return raw
      }
      case BackendMessage.ParseComplete:
      case BackendMessage.BindComplete:
      case BackendMessage.CloseComplete:
      case BackendMessage.NoData:
        if (head !== undefined && head.kind !== 'query' && head.kind !== 'function') this.shift()
        if (frame.type === BackendMessage.NoData && head?.kind === 'describe' && head.result !== undefined) {
          // The relay's own Describe: the portal returns no rows.
          settle(head.result, undefined)
          return SWALLOWED
        }
        return frame.raw
      case BackendMessage.RowDescription:
        if (this.masking !== undefined) return this.onRowDescription(frame, head)
        if (head?.kind === 'describe') this.shift()
        return frame.raw
      case BackendMessage.CopyOutResponse:
        if (this.masking !== undefined) this.onCopyOut(frame, head)
        return frame.raw
      case BackendMessage.CopyBothResponse:
        if (this.masking !== undefined) throw new AirlockError('blocked', 'replication streams cannot be masked; the session is closed')
        return frame.raw
      case BackendMessage.CopyData:
        if (this.copying !== undefined) return this.masking!.copyData(frame, this.copying)
        if (this.masking !== undefined) throw new AirlockError('blocked', 'COPY data the gateway cannot place cannot be masked; the session is closed')
        return frame.raw
      case BackendMessage.CopyDone:
        this.copying = undefined
        return frame.raw
      case BackendMessage.NoticeResponse:
        return this.masking === undefined ? frame.raw : this.masking.errorFields(frame)
      case BackendMessage.NotificationResponse:
        return this.masking === undefined ? frame.raw : this.masking.notification(frame)
      case BackendMessage.ParameterStatus: {
        const { name, value } = parseParameterStatus(frame.body)
        if (name === 'standard_conforming_strings') this.standardConformingStrings = value === 'on'
        const expected = this.pinned?.get(name)
        if (expected !== undefined && value !== expected) {
          // Statements were judged as the server read them with the pinned value: fail closed.
          throw new AirlockError('blocked', `the session changed ${name}, which Airlock pins to ${expected}; the session is closed`, {
            hint: `leave ${name} at ${expected}`,
          })
        }
        return this.masking === undefined ? frame.raw : this.masking.parameterStatus(frame)
      }
      case BackendMessage.ErrorResponse:
        return this.onError(frame)
      case BackendMessage.ReadyForQuery: {
        parseReadyForQuery(frame.body)
        // Everything before the Sync/Query this answers has been answered or skipped.
        for (let pending = this.shift(); pending !== undefined; pending = this.shift()) {
          this.skip(pending)
          if (pending.kind === 'sync' || pending.kind === 'query' || pending.kind === 'function') break
        }
        return frame.raw
      }
      default:
        return frame.raw
    }
  }

  /** Under masking: the result set a RowDescription announces, and what the client is told of it. */
  private onRowDescription(frame: Frame, head: Pending | undefined): Buffer {
    const masking = this.masking!
    const fields = parseRowDescription(frame.body)
    if (head?.kind === 'describe') {
      this.shift()
      const state = masking.result(fields, head.target === 'P' ? head.formats : undefined)
      if (head.result === undefined) return masking.rowDescription(frame, state)
      settle(head.result, state)
      return SWALLOWED
    }
    // A Query's result set (a FETCH from a binary cursor is sent in binary: the masker nulls findings).
    this.simpleResult = masking.result(fields, undefined)
    return masking.rowDescription(frame, this.simpleResult)
  }

  /** The result set rows under `head` belong to; none known fails closed. */
  private resultOf(head: Pending | undefined): ResultState {
    const state = head?.kind === 'query' ? this.simpleResult : head?.kind === 'execute' ? head.result?.state : undefined
    if (state === undefined) throw new AirlockError('blocked', 'rows the gateway could not describe cannot be masked; the session is closed')
    return state
  }

  private onCopyOut(frame: Frame, head: Pending | undefined): void {
    const statement = head?.kind === 'query' ? head.statements[head.index] : head?.kind === 'execute' ? head.statement : undefined
    const { format } = parseCopyResponse(frame.body)
    // Binary and unreadable COPY statements were refused before they ran; anything else is unexpected.
    if (format !== FormatCode.Text || statement?.copy === undefined) {
      throw new AirlockError('blocked', 'COPY output the gateway cannot read cannot be masked; the session is closed', {
        hint: 'use COPY ... TO STDOUT in text or CSV format, as a statement of its own',
      })
    }
    this.copying = statement.copy
  }

  private onError(frame: Frame): Buffer {
    const head = this.head
    this.copying = undefined
    // Masked first: the counts go to the statement the error ends.
    const raw = this.masking === undefined ? frame.raw : this.masking.errorFields(frame)
    if (head === undefined) return raw
    const fields = parseErrorFields(frame.body)
    const sqlstate = getField(fields, ErrorField.Code)
    if (head.kind === 'query') {
      const statement = head.statements[head.index]
      if (head.blocked !== undefined) {
        for (const each of head.statements) this.end(each, 'blocked', undefined, '42501')
        return guardrailError(head.blocked, fields)
      }
      if (statement !== undefined) this.end(statement, 'error', undefined, sqlstate)
      return raw
    }
    if (head.kind === 'function') {
      if (head.blocked !== undefined) {
        this.end(head.statement, 'blocked', undefined, '42501')
        return guardrailError(head.blocked, fields)
      }
      this.end(head.statement, 'error', undefined, sqlstate)
      return raw
    }
    if (head.kind === 'sync') return raw
    // Extended protocol: this error answers the head message; the server now skips to Sync.
    const undone: Pending[] = [this.shift()!]
    while (this.head !== undefined && this.head.kind !== 'sync') undone.push(this.shift()!)
    // Newest first, so a name defined twice in the pipeline ends at its definition before it.
    for (let i = undone.length - 1; i >= 0; i--) this.undo(undone[i]!)
    if (head.kind === 'describe' && head.result !== undefined) {
      // The relay's own Describe failed (no such portal): the client would have had this error
      // from its Execute, which the server now skips.
      settle(head.result, undefined)
      const execute = undone[1]
      if (execute?.kind === 'execute') this.end(execute.statement, 'error', undefined, sqlstate)
    }
    for (const pending of undone.slice(1)) this.skip(pending)
    if (head.kind === 'execute') {
      if (head.blocked !== undefined) {
        this.end(head.statement, 'blocked', undefined, '42501')
        return guardrailError(head.blocked, fields)
      }
      this.end(head.statement, 'error', undefined, sqlstate)
    }
    return raw
  }

  /** The server did not process this Parse/Bind: the name means what it meant before. */
  private undo(pending: Pending): void {
    if (pending.kind === 'parse') {
      if (pending.previous === undefined) this.statements.delete(pending.name)
      else this.statements.set(pending.name, pending.previous)
      if (pending.name !== '') this.hooks.preparedStatement?.(pending.name, pending.previous)
    } else if (pending.kind === 'bind') {
      if (pending.previous === undefined) this.portals.delete(pending.portal)
      else this.portals.set(pending.portal, pending.previous)
    } else if (pending.kind === 'close' && pending.target === 'S' && pending.previous !== undefined) {
      this.statements.set(pending.name, pending.previous)
      if (pending.name !== '') this.hooks.preparedStatement?.(pending.name, pending.previous)
    } else if (pending.kind === 'close' && pending.target === 'P' && pending.previous !== undefined) {
      this.portals.set(pending.name, pending.previous)
    }
  }

  private skip(pending: Pending): void {
    if (pending.kind === 'describe' && pending.result !== undefined) settle(pending.result, undefined)
    if (pending.kind === 'query') for (const statement of pending.statements) this.end(statement, 'skipped')
    else if (pending.kind === 'execute' || pending.kind === 'function') this.end(pending.statement, 'skipped')
  }

  private skipAll(): void {
    for (let pending = this.shift(); pending !== undefined; pending = this.shift()) this.skip(pending)
  }

  private end(statement: Tracked, outcome: 'ok' | 'error' | 'blocked' | 'skipped', command?: string, sqlstate?: string): void {
    if (statement.done) return
    statement.done = true
    const masked = this.masking?.takeCounts()
    this.hooks.end(statement.context, {
      outcome,
      rows: statement.rows,
      durationMs: performance.now() - statement.startedAt,
      ...(command === undefined ? {} : { command }),
      ...(sqlstate === undefined ? {} : { sqlstate }),
      ...(masked === undefined ? {} : { masked }),
    })
  }
}

/** Adds `count` result rows to the statement they belong to (the current one of a Query, or the Execute's). */
function countRows(head: Pending | undefined, count: number): void {
  if (head?.kind === 'query') {
    const statement = head.statements[head.index]
    if (statement !== undefined) statement.rows += count
  } else if (head?.kind === 'execute') {
    head.statement.rows += count
  }
}

/** A FATAL ErrorResponse for failures of the relay itself. */
export function fatal(sqlstate: string, message: string, hint?: string): Buffer {
  const fields: ErrorFields = [
    [ErrorField.Severity, 'FATAL'],
    [ErrorField.SeverityV, 'FATAL'],
    [ErrorField.Code, sqlstate],
    [ErrorField.Message, message],
  ]
  if (hint !== undefined) fields.push([ErrorField.Hint, hint])
  return serializeErrorResponse(fields)
}

function settle(slot: ResultSlot, state: ResultState | undefined): void {
  if (slot.settled) return
  slot.settled = true
  slot.state = state
  slot.settle?.(state)
}

function maskingRefusal(message: string, hint?: string): Verdict {
  return { allow: false, rule: MASKING_RULE, message, ...(hint === undefined ? {} : { hint }) }
}

function firstDenial(plans: readonly StatementPlan[]): Verdict | undefined {
  return plans.find((plan) => !plan.verdict.allow)?.verdict
}

/**
 * The server's error for the stand-in statement, rewritten as the guardrail's: SQLSTATE 42501,
 * routine airlock_guardrail, the rule in the message. Severity stays the server's (ERROR).
 */
function guardrailError(verdict: Verdict, upstream: ErrorFields): Buffer {
  if (verdict.allow) throw new Error('guardrailError needs a denial')
  const severity = getField(upstream, ErrorField.Severity) ?? 'ERROR'
  const fields: ErrorFields = [
    [ErrorField.Severity, severity],
    [ErrorField.SeverityV, getField(upstream, ErrorField.SeverityV) ?? severity],
    [ErrorField.Code, '42501'],
    [ErrorField.Message, verdict.rule === MASKING_RULE ? `refused by airlock masking: ${verdict.message}` : `blocked by airlock guardrail ${verdict.rule}: ${verdict.message}`],
    [ErrorField.Routine, verdict.rule === MASKING_RULE ? 'airlock_masking' : 'airlock_guardrail'],
  ]
  if (verdict.hint !== undefined) fields.splice(4, 0, [ErrorField.Hint, verdict.hint])
  return serializeErrorResponse(fields)
}

/**
 * Outgoing buffers for one write: slices that are adjacent in the same memory are merged, so an
 * unchanged run of messages from one read goes out as one uncopied slice. A rewritten message is
 * a piece of its own between the runs before and after it (the transport sends them all in one
 * write): writing it over the original and moving the run up to keep one slice cost more, in
 * copying up to a read's worth of bytes per rewritten row, than the frames it saved.
 */
class Batch {
  private pieces: Buffer[] = []
  /** Whole frames of one chunk added in a row and not yet sliced: bytes [start, end) of it. */
  private chunk: Buffer | undefined
  private start = 0
  private end = 0

  /**
   * `piece`, which is the frame at `place` when one is given: then frames that follow each other in
   * the same chunk are merged by offset (no slice made, no ArrayBuffer compared, per message).
   */
  add(piece: Buffer, place?: Pick<Frame, 'chunk' | 'offset'>): void {
    if (piece.length === 0) return
    const chunk = place?.chunk
    if (chunk !== undefined) {
      if (chunk === this.chunk && place!.offset === this.end) {
        this.end += piece.length
        return
      }
      this.flushRun()
      this.chunk = chunk
      this.start = place!.offset
      this.end = place!.offset + piece.length
      return
    }
    this.flushRun()
    this.push(piece)
  }

  private flushRun(): void {
    if (this.chunk === undefined) return
    const run = this.chunk.subarray(this.start, this.end)
    this.chunk = undefined
    this.push(run)
  }

  private push(piece: Buffer): void {
    const last = this.pieces[this.pieces.length - 1]
    if (last !== undefined && last.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
      this.pieces[this.pieces.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + piece.length)
    } else {
      this.pieces.push(piece)
    }
  }

  isEmpty(): boolean {
    return this.pieces.length === 0 && this.chunk === undefined
  }

  /** Everything added here, added to `other` in order. */
  moveTo(other: Batch): void {
    for (const piece of this.take()) other.add(piece)
  }

  take(): Buffer[] {
    this.flushRun()
    const pieces = this.pieces
    this.pieces = []
    return pieces
  }
}
