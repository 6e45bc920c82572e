/**
 * The audit writer thread: ingests the journal into the store and answers the gateway's queries,
 * so neither a commit's fsync nor a long verify ever runs on the event loop that relays tunnels.
 *
 *   event loop                         writer thread                          store
 *     │ append: write(journal) ──────────▶ (Atomics.notify if idle) reads whole lines,
 *     │                                    checks each chain link ── INSERT batch ──▶│ commit (fsync)
 *     │ ◀── ingested {seq} ─────────────── deletes segments the store now holds ◀─────│
 *
 * Group commit: a commit starts at most every GROUP_MS; records accumulate meanwhile and the next
 * batch takes them all. Lines the running gateway wrote are trusted for their hash (it just
 * computed it); lines an earlier run left are verified, since a crash can leave one torn. While the
 * store is down (not yet open, failing, or a commit taking longer than GROUP_MS), the journal is
 * fdatasync'ed every GROUP_MS instead when it was written to, so records stay durable against
 * power loss in the same rhythm; a failed batch is kept and retried with backoff.
 */
import * as fs from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parentPort, workerData } from 'node:worker_threads'
import { toAirlockError } from '../errors.js'
import { type ChainTip, fsyncPath, listSegments, segmentName, SIGNAL_SEGMENT, SIGNAL_WAITING, SIGNAL_WRITES } from './journal.js'
import { type AuditRecord, columnsOf, formatLine, hashBody, type ParsedLine, parseLine, splitLine } from './record.js'
import { type AuditStore, type ChainCursor, type EventFilter, MAX_PAGE, type NewRow, openStore, type StoreLocation, type StoredRow } from './store.js'
import { type ExpectedHead, verifyStore } from './verify.js'

export interface WriterData {
  location: StoreLocation
  dir: string
  chain: string
  signal: SharedArrayBuffer
}

/** Messages from the writer to the gateway. */
export type WriterMessage =
  | { type: 'store'; ok: true; head: ChainTip | undefined }
  | { type: 'store'; ok: false; error: { code: string; message: string; hint?: string } }
  | { type: 'ingested'; seq: number }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; fields: Record<string, unknown>; message: string }
  | { type: 'reply'; id: number; result?: unknown; error?: { code: string; message: string; hint?: string } }

/** Messages from the gateway to the writer. */
export type WriterRequest = { type: 'start' } | { type: 'rpc'; id: number; op: string; args: Record<string, unknown> }

/** A commit starts at most this often: records gather meanwhile (group commit). */
export const GROUP_MS = 10
/** Largest read of the journal per batch. */
const READ_BYTES = 4 * 1024 * 1024
/** No record is larger than this (statement text is capped well below it). */
const MAX_READ_BYTES = 64 * 1024 * 1024
const BACKOFF_MS = [100, 250, 500, 1000, 2000, 5000] as const

/** `Atomics.waitAsync` (ES2024; in Node since 16), typed here because the project targets ES2023. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> }
}).waitAsync

/** An export position: the last line given, by chain and seq. */
export interface ExportPosition {
  chain: string
  seq: number
}

class Writer {
  private store: AuditStore | undefined
  private storeOk = false
  private tip: ChainTip = { seq: 0, hash: '' }
  private readonly signal: Int32Array
  private segment = 0
  private offset = 0
  /** Rows read and not yet committed, and the segments fully read whose rows they include. */
  private pending: NewRow[] = []
  private finished: number[] = []
  private readonly waiters: { seq: number; resolve: () => void }[] = []
  private stopping: { seq: number; deadline: number } | undefined
  /** The live segment when the journal directory was last fsync'ed. */
  private dirSyncedAt = -1
  /** When the commit in progress started, if one is. */
  private commitStarted: number | undefined
  /** The journal's write count at its last fdatasync. */
  private syncedWrites = -1
  /** The newest sealed segment fdatasync'ed. */
  private sealedSynced = 0
  /** Reused for every read: a fresh multi-megabyte buffer per batch would keep the collector busy. */
  private buffer = Buffer.allocUnsafe(READ_BYTES)
  /** The segment the gateway started writing when this writer started; older ones are replayed. */
  private firstLive = 0
  /** Records replayed from older segments; -1 once replay is over. */
  private replayed = 0

  constructor(private readonly data: WriterData) {
    this.signal = new Int32Array(data.signal)
    setInterval(() => this.syncWhileStoreDown(), GROUP_MS).unref()
  }

  /** The journal stands in for the store while it is down: fdatasync what was written since the last time. */
  private syncWhileStoreDown(): void {
    const stalled = this.commitStarted !== undefined && Date.now() - this.commitStarted > GROUP_MS
    if (this.storeOk && !stalled) return
    const writes = Atomics.load(this.signal, SIGNAL_WRITES)
    if (writes === this.syncedWrites) return
    this.syncedWrites = writes
    this.syncJournal()
  }

  post(message: WriterMessage): void {
    parentPort!.postMessage(message)
  }

  log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    this.post({ type: 'log', level, fields, message })
  }

  /** Opens the store, retrying until it can; reports the first outcome either way. */
  async open(): Promise<void> {
    for (let attempt = 0; this.stopping === undefined; attempt++) {
      try {
        const store = await openStore(this.data.location)
        const head = await store.head(this.data.chain)
        this.store = store
        this.storeOk = true
        this.tip = head ?? { seq: 0, hash: '' }
        this.post({ type: 'store', ok: true, head })
        return
      } catch (error) {
        const failure = toAirlockError(error)
        if (attempt === 0 || attempt % 10 === 0) this.post({ type: 'store', ok: false, error: failure.toJSON() })
        await sleep(BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)]!)
      }
    }
  }

  /** Ingests forever (until close). */
  async run(): Promise<void> {
    const segments = listSegments(this.data.dir)
    this.segment = segments[0] ?? Atomics.load(this.signal, SIGNAL_SEGMENT)
    this.firstLive = Atomics.load(this.signal, SIGNAL_SEGMENT)
    let failures = 0
    for (;;) {
      const seen = Atomics.load(this.signal, SIGNAL_WRITES)
      if (this.pending.length === 0) this.read()
      if (this.pending.length > 0 || this.finished.length > 0) {
        const started = Date.now()
        if (await this.commit()) {
          failures = 0
          // Group commit: let the next batch gather for a moment rather than commit (and fsync) per record.
          const rest = GROUP_MS - (Date.now() - started)
          if (rest > 0 && this.stopping === undefined) await sleep(rest)
        } else {
          failures++
          // Stopping with the store down: what is not stored stays in the journal for the next start.
          if (this.stopping !== undefined && Date.now() > this.stopping.deadline) return
          await sleep(BACKOFF_MS[Math.min(failures - 1, BACKOFF_MS.length - 1)]!)
        }
        continue
      }
      if (this.stopping !== undefined && (this.tip.seq >= this.stopping.seq || Date.now() > this.stopping.deadline)) return
      Atomics.store(this.signal, SIGNAL_WAITING, 1)
      const wait = waitAsync(this.signal, SIGNAL_WRITES, seen, this.stopping === undefined ? 1000 : 20)
      if (wait.async) await wait.value
      Atomics.store(this.signal, SIGNAL_WAITING, 0)
    }
  }

  /** Reads whole records from the journal into `pending`, moving past finished segments. */
  private read(): void {
    for (;;) {
      const path = join(this.data.dir, segmentName(this.segment))
      const live = Atomics.load(this.signal, SIGNAL_SEGMENT)
      const { rows, consumed, rest, torn: broken } = this.readFrom(path)
      // In a sealed segment, bytes after the last whole line are a record cut short by a crash.
      const torn = broken || (this.segment < live && consumed === 0 && rest > 0)
      this.offset += consumed
      for (const row of rows) this.pending.push(row)
      if (this.segment < this.firstLive) this.replayed += rows.length
      else if (this.replayed >= 0) {
        // Everything an earlier run left in the journal has been read.
        if (this.replayed > 0) this.log('info', { event: 'audit.replayed', records: this.replayed }, 'stored journal records an earlier run had not stored')
        this.replayed = -1
      }
      if (rows.length > 0 && this.pending.length >= 5000) return
      if (this.segment >= live) return
      // A sealed segment: everything in it is written. A torn tail is left by a crash.
      if (consumed === 0 || torn) {
        if (torn) this.log('warn', { event: 'audit.journal-torn', segment: this.segment, offset: this.offset }, 'ignored a partial record at the end of a journal segment (written when the gateway stopped abruptly)')
        this.finished.push(this.segment)
        const next = listSegments(this.data.dir).find((segment) => segment > this.segment)
        this.segment = next ?? live
        this.offset = 0
        if (next === undefined) return
      }
    }
  }

  private readFrom(path: string): { rows: NewRow[]; consumed: number; rest: number; torn: boolean } {
    let fd: number
    try {
      fd = fs.openSync(path, 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { rows: [], consumed: 0, rest: 0, torn: false }
      throw error
    }
    let buffer = this.buffer
    let length: number
    try {
      length = fs.readSync(fd, buffer, 0, buffer.length, this.offset)
      // A record longer than the buffer: read again with room for it (kept for next time).
      while (length === buffer.length && buffer.indexOf(0x0a) < 0 && buffer.length < MAX_READ_BYTES) {
        buffer = this.buffer = Buffer.allocUnsafe(buffer.length * 4)
        length = fs.readSync(fd, buffer, 0, buffer.length, this.offset)
      }
    } finally {
      fs.closeSync(fd)
    }
    const rows: NewRow[] = []
    let at = 0
    while (at < length) {
      const newline = buffer.indexOf(0x0a, at)
      if (newline < 0 || newline >= length) break
      const line = buffer.toString('utf8', at, newline)
      const parsed = this.segment >= this.firstLive ? trustedLine(line) : verifiedLine(line)
      if (parsed === undefined) return { rows, consumed: at, rest: length - at, torn: true }
      at = newline + 1
      const { record } = parsed
      if (record.chain !== this.data.chain) {
        this.log('error', { event: 'audit.journal-foreign', chain: record.chain }, 'a journal record of another chain was skipped')
        continue
      }
      if (record.seq <= this.tip.seq) {
        // Already stored (a replay after a restart); the same position must hold the same record.
        if (record.seq === this.tip.seq && this.tip.hash !== '' && parsed.hash !== this.tip.hash) {
          this.log('error', { event: 'audit.fork', chain: record.chain, seq: record.seq }, 'the store holds a different record at this position than the journal')
        }
        continue
      }
      // The chain link, checked as records are read (the hash itself is checked on replay only).
      const last = rows.at(-1) ?? this.pending.at(-1) ?? this.tip
      if (last.seq > 0 && (record.seq !== last.seq + 1 || record.prev !== last.hash)) {
        this.log('warn', { event: 'audit.chain-gap', chain: record.chain, seq: record.seq, after: last.seq }, 'the journal does not continue the stored chain; verify will report the break')
      }
      const row = columnsOf(record) as NewRow
      row.record = parsed.body
      row.hash = parsed.hash
      rows.push(row)
    }
    return { rows, consumed: at, rest: length - at, torn: false }
  }

  /** Commits `pending`; deletes finished segments. False when the store failed. */
  private async commit(): Promise<boolean> {
    if (this.store === undefined) return false
    const rows = this.pending
    try {
      if (rows.length > 0) {
        this.commitStarted = Date.now()
        const { conflicts } = await this.store.insert(rows).finally(() => (this.commitStarted = undefined))
        for (const conflict of conflicts) {
          const ours = rows.find((row) => row.chain === conflict.chain && row.seq === conflict.seq)
          if (ours !== undefined && ours.hash !== conflict.hash) {
            this.log('error', { event: 'audit.fork', chain: conflict.chain, seq: conflict.seq }, 'the store already holds a different record at this position; the journal record was not stored')
          }
        }
        const last = rows.at(-1)!
        this.tip = { seq: last.seq, hash: last.hash }
      }
    } catch (error) {
      if (this.storeOk) {
        this.storeOk = false
        this.post({ type: 'store', ok: false, error: toAirlockError(error).toJSON() })
        this.log('error', { event: 'audit.store-failed', err: describe(error) }, 'the audit store failed; records stay in the journal and are retried')
      }
      return false
    }
    this.pending = []
    if (!this.storeOk) {
      this.storeOk = true
      this.post({ type: 'store', ok: true, head: this.tip })
      this.log('info', { event: 'audit.store-recovered' }, 'the audit store is writable again')
    }
    for (const segment of this.finished) fs.rmSync(join(this.data.dir, segmentName(segment)), { force: true })
    this.finished = []
    this.post({ type: 'ingested', seq: this.tip.seq })
    for (const waiter of this.waiters.filter((each) => each.seq <= this.tip.seq)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1)
      waiter.resolve()
    }
    return true
  }

  /**
   * While the store is down, the journal is the durable copy: fdatasync the segment being written
   * and each sealed one not yet stored (once), and the directory after a segment was started.
   */
  private syncJournal(): void {
    const live = Atomics.load(this.signal, SIGNAL_SEGMENT)
    for (const segment of listSegments(this.data.dir)) {
      if (segment < this.segment || (segment < live && segment <= this.sealedSynced)) continue
      try {
        const fd = fs.openSync(join(this.data.dir, segmentName(segment)), 'r')
        try {
          fs.fdatasyncSync(fd)
        } finally {
          fs.closeSync(fd)
        }
        if (segment < live) this.sealedSynced = segment
      } catch {
        // removed meanwhile (stored): nothing to sync
      }
    }
    // The directory too, whenever a segment was started since (its entry must survive as well).
    if (this.dirSyncedAt !== live) {
      fsyncPath(this.data.dir)
      this.dirSyncedAt = live
    }
  }

  /** Resolves once everything up to `seq` is stored, or after `timeoutMs`. */
  synced(seq: number, timeoutMs: number): Promise<void> {
    if (this.tip.seq >= seq) return Promise.resolve()
    return new Promise((resolve) => {
      const waiter = { seq, resolve }
      this.waiters.push(waiter)
      setTimeout(() => {
        const index = this.waiters.indexOf(waiter)
        if (index >= 0) this.waiters.splice(index, 1)
        resolve()
      }, timeoutMs).unref()
    })
  }

  requireStore(): AuditStore {
    if (this.store === undefined || !this.storeOk) {
      throw Object.assign(new Error('the audit store is unavailable'), { airlock: { code: 'upstream-unavailable', message: 'the audit store is unavailable', hint: 'see the gateway log' } })
    }
    return this.store
  }

  async handle(op: string, args: Record<string, unknown>): Promise<unknown> {
    switch (op) {
      case 'sync':
        await this.synced(args.seq as number, args.timeoutMs as number)
        return { seq: this.tip.seq }
      case 'heads':
        return this.requireStore().heads()
      case 'list': {
        const limit = Math.min(args.limit as number, MAX_PAGE - 1)
        const rows = await this.requireStore().list(args.filter as EventFilter, limit + 1, args.before as number | undefined)
        const page = rows.slice(0, limit)
        return { events: page.map(toEvent), next: rows.length > limit ? page.at(-1)!.id : null }
      }
      case 'get': {
        const row = await this.requireStore().get(args.chain as string, args.seq as number)
        return row === undefined ? null : toEvent(row)
      }
      case 'after': {
        const rows = await this.requireStore().after(args.cursor as ChainCursor, args.filter as EventFilter, args.limit as number)
        return rows.map(toEvent)
      }
      case 'verify':
        return verifyStore(this.requireStore(), args.expected as ExpectedHead[], () => new Promise((resolve) => setImmediate(resolve)))
      case 'export':
        return this.exportPage(args.after as ExportPosition | null, args.chain as string | undefined)
      case 'close': {
        this.stopping = { seq: args.seq as number, deadline: Date.now() + (args.timeoutMs as number) }
        Atomics.notify(this.signal, SIGNAL_WRITES)
        // A store that never opened has nothing to finish: the journal keeps every record.
        if (this.store !== undefined) await this.done
        await this.store?.close()
        return { seq: this.tip.seq }
      }
      default:
        throw new Error(`unknown writer operation ${op}`)
    }
  }

  done: Promise<void> = Promise.resolve()

  /** One page of the export: whole chains in chain order, each in seq order. */
  private async exportPage(after: ExportPosition | null, only: string | undefined): Promise<{ lines: string[]; next: ExportPosition | null }> {
    const store = this.requireStore()
    const chains = (await store.heads()).map((head) => head.chain).filter((chain) => only === undefined || chain === only).sort()
    let index = after === null ? 0 : chains.findIndex((chain) => chain >= after.chain)
    let seq = after !== null && chains[index] === after.chain ? after.seq : 0
    while (index >= 0 && index < chains.length) {
      const chain = chains[index]!
      const rows = await store.chainPage(chain, seq, MAX_PAGE)
      if (rows.length > 0) {
        const last = rows.at(-1)!
        return { lines: rows.map((row) => formatLine(row.record, row.hash)), next: { chain, seq: last.seq } }
      }
      index++
      seq = 0
    }
    return { lines: [], next: null }
  }
}

/** A line an earlier run left: it must parse and match its hash (a crash can leave a torn one). */
function verifiedLine(line: string): ParsedLine | undefined {
  const parsed = parseLine(line)
  return parsed === undefined || hashBody(parsed.body) !== parsed.hash ? undefined : parsed
}

/**
 * A line the running gateway wrote whole, as formatLine made it: the body is the line without its
 * hash, so only the chain link is checked (in readFrom), not the hash again.
 */
function trustedLine(line: string): ParsedLine | undefined {
  const split = splitLine(line)
  if (split === undefined) return verifiedLine(line)
  try {
    return { record: JSON.parse(split.body) as AuditRecord, body: split.body, hash: split.hash }
  } catch {
    return undefined
  }
}

function toEvent(row: StoredRow): Record<string, unknown> {
  return { id: `${row.chain}:${row.seq}`, hash: row.hash, ...(JSON.parse(row.record) as Record<string, unknown>) }
}

function describe(error: unknown): string {
  const fields = error as { code?: unknown; message?: unknown }
  return typeof fields.code === 'string' ? fields.code : 'error'
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'signal' in workerData) {
  const writer = new Writer(workerData as WriterData)
  const opened = writer.open()
  parentPort.on('message', (message: WriterRequest) => {
    if (message.type === 'start') {
      writer.done = opened.then(() => writer.run())
      writer.done.catch((error: unknown) => {
        writer.log('error', { event: 'audit.writer-crashed', err: describe(error) }, 'the audit writer stopped')
        process.exit(1)
      })
      return
    }
    writer.handle(message.op, message.args).then(
      (result) => writer.post({ type: 'reply', id: message.id, result }),
      (error: unknown) => {
        const marked = (error as { airlock?: { code: string; message: string; hint?: string } }).airlock
        writer.post({ type: 'reply', id: message.id, error: marked ?? toAirlockError(error).toJSON() })
      },
    )
  })
}
