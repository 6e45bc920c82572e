/**
 * The audit journal: an append-only directory of JSON-lines segments that the event loop writes
 * synchronously, so a record is in the kernel (and survives the gateway being killed) when
 * `append` returns. A worker thread ingests it into the store; see writer.ts.
 *
 *   DIR/lock            pid of the gateway that owns the journal (one writer per chain)
 *   DIR/chain           this journal's chain id, fixed when the directory is created
 *   DIR/000000000007.jsonl   segments; the newest is written, older ones wait to be ingested
 *
 * Each record is one line: the canonical body with its hash (record.ts). A line is only ever
 * written whole by one `write`; a write that fails part-way is cut off again, and a line cut off
 * by a crash fails its hash, so readers stop at the last whole record.
 */
import * as fs from 'node:fs'
import { join } from 'node:path'
import { AirlockError } from '../errors.js'
import {
  type AuditEventInput,
  type AuditRecord,
  formatLine,
  GENESIS,
  hashBody,
  isChainId,
  newChainId,
  parseLine,
  RECORD_VERSION,
  recordBody,
} from './record.js'

/** After a failed write, how long before a new session may try again. */
export const RETRY_MS = 1000
/** Longest a queued (not durable) record waits for a write. */
export const QUEUE_MS = 5
/** A new segment is started once the current one is this large. */
export const DEFAULT_SEGMENT_BYTES = 32 * 1024 * 1024
const SEGMENT = /^(\d{12})\.jsonl$/

/** The file operations the journal needs; injectable so a test can make the disk fail. */
export interface JournalIo {
  openSync(path: string, flags: string, mode?: number): number
  writeSync(fd: number, data: string, position: number, encoding: 'utf8'): number
  ftruncateSync(fd: number, length: number): void
  closeSync(fd: number): void
}

const NODE_IO: JournalIo = {
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  writeSync: (fd, data, position, encoding) => fs.writeSync(fd, data, position, encoding),
  ftruncateSync: (fd, length) => fs.ftruncateSync(fd, length),
  closeSync: (fd) => fs.closeSync(fd),
}

export function segmentName(segment: number): string {
  return `${String(segment).padStart(12, '0')}.jsonl`
}

/** The segment numbers present in `dir`, oldest first. */
export function listSegments(dir: string): number[] {
  return fs
    .readdirSync(dir)
    .map((name) => SEGMENT.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
}

export interface ChainTip {
  seq: number
  hash: string
  /** The type of the last record, to tell a clean stop from a crash. */
  type?: string
}

/** One whole record read back from a segment. */
export interface JournalEntry {
  record: AuditRecord
  body: string
  hash: string
  /** Byte offset just past the line's newline. */
  end: number
}

/**
 * The whole, intact records of a segment from `offset`: each line must end in a newline, parse,
 * and match its hash. Stops at the first line that does not (a torn tail).
 */
export function readSegment(path: string, offset = 0): { entries: JournalEntry[]; torn: boolean } {
  let data: Buffer
  try {
    data = fs.readFileSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], torn: false }
    throw error
  }
  const entries: JournalEntry[] = []
  let at = offset
  while (at < data.length) {
    const newline = data.indexOf(0x0a, at)
    if (newline < 0) return { entries, torn: true }
    const parsed = parseLine(data.toString('utf8', at, newline))
    if (parsed === undefined || hashBody(parsed.body) !== parsed.hash) return { entries, torn: true }
    at = newline + 1
    entries.push({ ...parsed, end: at })
  }
  return { entries, torn: false }
}

/** The last intact record in the journal, newest segment first; undefined for an empty journal. */
export function journalTip(dir: string): ChainTip | undefined {
  for (const segment of listSegments(dir).reverse()) {
    const { entries } = readSegment(join(dir, segmentName(segment)))
    const last = entries.at(-1)
    if (last !== undefined) return { seq: last.record.seq, hash: last.hash, type: last.record.type }
  }
  return undefined
}

/**
 * Takes the journal directory for this process: creates it (0700) and its chain id on first use,
 * and refuses when another live process holds it.
 *
 * @throws AirlockError `config` when the directory cannot be used or another gateway owns it.
 */
export function claimJournalDir(dir: string): { chain: string; release(): void } {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (error) {
    throw new AirlockError('config', `cannot create the audit journal directory ${dir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'the gateway needs a writable directory next to audit.store for its journal',
    })
  }
  const lock = join(dir, 'lock')
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      break
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== 'EEXIST' || attempt > 0) {
        throw new AirlockError('config', `cannot lock the audit journal ${dir} (${code ?? 'error'})`, {
          hint: 'the gateway needs a writable directory next to audit.store for its journal',
        })
      }
      const owner = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10)
      if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
        throw new AirlockError('config', `the audit journal ${dir} belongs to another running gateway (pid ${owner})`, {
          hint: 'each gateway needs its own journal: give each its own audit.store file, or run one gateway per host',
        })
      }
      fs.rmSync(lock, { force: true })
    }
  }
  let chain: string
  const chainFile = join(dir, 'chain')
  try {
    chain = fs.readFileSync(chainFile, 'utf8').trim()
  } catch {
    chain = newChainId()
    const temp = `${chainFile}.tmp`
    fs.writeFileSync(temp, `${chain}\n`, { mode: 0o600 })
    fsyncPath(temp)
    fs.renameSync(temp, chainFile)
    fsyncPath(dir)
  }
  if (!isChainId(chain)) {
    throw new AirlockError('config', `${chainFile} does not hold a chain id`, { hint: 'restore the file, or move the journal directory away to start a new chain' })
  }
  return {
    chain,
    release: () => {
      try {
        if (Number.parseInt(fs.readFileSync(lock, 'utf8'), 10) === process.pid) fs.rmSync(lock, { force: true })
      } catch {
        // already gone
      }
    },
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function fsyncPath(path: string): void {
  const fd = fs.openSync(path, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Shared with the writer thread: [0] counts writes, [1] is the segment being written, [2] is 1
 * while the writer waits for a write (only then is it worth waking).
 */
export const SIGNAL_WRITES = 0
export const SIGNAL_SEGMENT = 1
export const SIGNAL_WAITING = 2
export const SIGNAL_BYTES = 16

export interface JournalWriterOptions {
  dir: string
  chain: string
  /** Where the chain continues: the last record already written (journal or store). */
  tip: ChainTip | undefined
  /** The segment to start; must not exist yet. */
  segment: number
  signal: Int32Array
  now: () => number
  segmentBytes?: number
  io?: JournalIo
}

/**
 * Appends records on the event loop. `append(event, { durable: true })` returns once the record
 * (and every record queued before it) is in the kernel; other records are queued and written with
 * the next durable one, or after QUEUE_MS, whichever is first.
 */
export class JournalWriter {
  readonly chain: string
  private readonly dir: string
  private readonly io: JournalIo
  private readonly signal: Int32Array
  private readonly now: () => number
  private readonly segmentBytes: number
  private fd: number
  private segment: number
  private offset = 0
  private seq: number
  private prev: string
  private queued = ''
  private flushScheduled = false
  private failed: unknown
  private closed = false
  private lastNow = Number.NaN
  private failedAt = 0
  private lastTime = ''

  constructor(options: JournalWriterOptions) {
    this.chain = options.chain
    this.dir = options.dir
    this.io = options.io ?? NODE_IO
    this.signal = options.signal
    this.now = options.now
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    this.seq = options.tip?.seq ?? 0
    this.prev = options.tip?.hash ?? GENESIS
    this.segment = options.segment
    this.fd = this.io.openSync(join(this.dir, segmentName(this.segment)), 'wx', 0o600)
    Atomics.store(this.signal, SIGNAL_SEGMENT, this.segment)
  }

  /** The last record numbered (written or queued). */
  get tip(): ChainTip {
    return { seq: this.seq, hash: this.prev }
  }

  /** False after a write failed, until one succeeds again. */
  get healthy(): boolean {
    return this.failed === undefined && !this.closed
  }

  /**
   * Whether to try a new session: healthy, or the last failure is a while ago (the session's own
   * first record is the retry; nothing else may be writing to find out the disk has room again).
   */
  get worthTrying(): boolean {
    return this.healthy || (!this.closed && Date.now() - this.failedAt > RETRY_MS)
  }

  /** The error of the last failed write, if the journal is failing. */
  get failure(): unknown {
    return this.failed
  }

  /**
   * Numbers, chains and writes (or queues) one record. Returns false when a durable record could
   * not be written: it is then dropped, the chain does not advance, and the caller must act as if
   * nothing was recorded. Queued records stay queued across failures and are retried.
   */
  append(event: AuditEventInput, options: { durable?: boolean } = {}): boolean {
    if (this.closed) return false
    const body = recordBody(event, { v: RECORD_VERSION, chain: this.chain, seq: this.seq + 1, prev: this.prev, time: this.time() })
    const hash = hashBody(body)
    const line = `${formatLine(body, hash)}\n`
    if (options.durable !== true) {
      this.queued += line
      this.seq++
      this.prev = hash
      if (!this.flushScheduled) {
        this.flushScheduled = true
        // Usually a durable record takes these along first; the timer bounds how long they wait.
        setTimeout(() => {
          this.flushScheduled = false
          this.flush()
        }, QUEUE_MS).unref()
      }
      return true
    }
    if (!this.write(this.queued + line)) return false
    this.queued = ''
    this.seq++
    this.prev = hash
    return true
  }

  /** The current time as records hold it; formatted once per millisecond (records come in bursts). */
  private time(): string {
    const now = this.now()
    if (now !== this.lastNow) {
      this.lastNow = now
      this.lastTime = new Date(now).toISOString()
    }
    return this.lastTime
  }

  /** Writes queued records now. */
  flush(): boolean {
    if (this.queued === '' || this.closed) return true
    if (!this.write(this.queued)) return false
    this.queued = ''
    return true
  }

  /** Writes what is queued and closes the segment; later appends return false. */
  close(): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.io.closeSync(this.fd)
  }

  private write(data: string): boolean {
    try {
      if (this.offset >= this.segmentBytes) this.rotate()
      const length = Buffer.byteLength(data)
      let written = 0
      try {
        written = this.io.writeSync(this.fd, data, this.offset, 'utf8')
      } finally {
        // A write cut short (disk full) must not leave half a line for the next one to follow.
        if (written !== length) this.io.ftruncateSync(this.fd, this.offset)
      }
      if (written !== length) throw Object.assign(new Error('short write to the audit journal'), { code: 'ENOSPC' })
      this.offset += length
      this.failed = undefined
      Atomics.add(this.signal, SIGNAL_WRITES, 1)
      if (Atomics.load(this.signal, SIGNAL_WAITING) === 1) Atomics.notify(this.signal, SIGNAL_WRITES)
      return true
    } catch (error) {
      this.failed = error
      this.failedAt = Date.now()
      return false
    }
  }

  private rotate(): void {
    const next = this.segment + 1
    const fd = this.io.openSync(join(this.dir, segmentName(next)), 'wx', 0o600)
    this.io.closeSync(this.fd)
    this.fd = fd
    this.segment = next
    this.offset = 0
    Atomics.store(this.signal, SIGNAL_SEGMENT, next)
  }
}
