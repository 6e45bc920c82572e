/**
 * `AuditLog`: the gateway's side of the audit log. Records are chained and journaled on the event
 * loop (journal.ts); a writer thread stores them and answers queries (writer.ts).
 *
 * Start-up: claim the journal directory (lock, chain id), start the writer and let it open the
 * store, continue the chain from whichever is further along (the journal's last intact record or
 * the store's head: after a power loss the journal may lack what the store committed), open a new
 * segment and record `gateway.start`. The writer then ingests every older segment the store lacks
 * — what a killed gateway left behind — and follows the new one.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { AirlockError, isErrorCode } from '../errors.js'
import { type AuthFailure, type AuthFailureLimits, AuthFailureRecorder } from './auth-failures.js'
import { type ChainTip, claimJournalDir, journalTip, JournalWriter, type JournalIo, listSegments, SIGNAL_BYTES } from './journal.js'
import { type AuditEvent, type AuditEventInput, parseEventId } from './record.js'
import { type ChainCursor, describeStore, type EventFilter, type Head, parseStoreLocation, type StoreLocation, type StorePassword } from './store.js'
import type { ExpectedHead, VerifyReport } from './verify.js'
import type { ExportPosition, WriterData, WriterMessage, WriterRequest } from './writer.js'

export interface AuditLogOptions {
  /** `audit.store`: `sqlite:PATH` or a `postgres://` URL. */
  store: string
  /** `audit.password`, for a `postgres://` store. */
  password?: StorePassword
  logger: Logger
  /** The gateway's version, for `gateway.start`. */
  version: string
  now?: () => number
  /**
   * The journal directory. Default: `PATH.journal` next to a SQLite store; for PostgreSQL,
   * `$AIRLOCK_AUDIT_JOURNAL`, else `$XDG_STATE_HOME/airlock/audit-journal-<store>`.
   */
  journalDir?: string
  /** How long start-up waits for the store before going on without it. */
  storeWaitMs?: number
  segmentBytes?: number
  /** For tests of a failing disk. */
  io?: JournalIo
  /** Default MAX_STORE_LAG_MS. */
  maxLagMs?: number
  /** Defaults in auth-failures.ts. */
  authFailureLimits?: AuthFailureLimits
}

/**
 * The oldest record journaled and not yet stored may be this old before the log counts as
 * unavailable (new sessions refused with `audit.required`): a store that accepts connections and
 * then stops answering, or a writer that cannot keep up, must not leave sessions running on the
 * journal alone indefinitely.
 */
export const MAX_STORE_LAG_MS = 20_000
/** How finely the age of unstored records is tracked. */
const LAG_GRAIN_MS = 100
/** Marks kept for it; beyond, they are thinned (an outage of hours). */
const MAX_LAG_MARKS = 10_000

export interface AuditStatus {
  journal: 'ok' | 'failing'
  store: 'ok' | 'unavailable' | 'opening'
  /** Records journaled and not yet stored. */
  lag: number
  /** How long the oldest of them has waited, to LAG_GRAIN_MS; 0 when none waits. */
  lagMs: number
  /** Why the store is unavailable, when it is. */
  error?: string
}

export interface EventPage {
  events: AuditEvent[]
  /** Pass as `before` for the next (older) page; null at the end. */
  next: number | null
}

export interface TailPage {
  events: AuditEvent[]
  cursor: ChainCursor
}

/** Sends each export line (without newline) to `write`, which may wait for the consumer. */
export type ExportSink = (lines: string[]) => Promise<void>

export interface AuditLog {
  readonly chain: string
  readonly journalDir: string
  /**
   * Whether a new session can be recorded from start to end: the journal writes, the store stores,
   * and no record has waited for the store longer than MAX_STORE_LAG_MS.
   */
  readonly available: boolean
  status(): AuditStatus
  /**
   * Records an event. `durable`: in the kernel before this returns (statement.begin before the
   * statement is forwarded, session and admin events); otherwise written with the next durable
   * record or within a few milliseconds. Returns false when a durable record could not
   * be journaled (disk full, I/O error): nothing was recorded.
   */
  append(event: AuditEventInput, options?: { durable?: boolean }): boolean
  /**
   * Records a failed authentication durably, within limits per client address (auth-failures.ts):
   * past them, failures are counted into one summary record per window.
   */
  authFailure(failure: AuthFailure): void
  /** Waits (up to `timeoutMs`) until everything appended so far is in the store. */
  sync(timeoutMs?: number): Promise<void>
  list(filter: EventFilter, limit: number, before?: number): Promise<EventPage>
  get(id: string): Promise<AuditEvent | undefined>
  /** Events after `cursor` (from the current end when absent), waiting up to `waitMs` for one. */
  tail(filter: EventFilter, cursor: ChainCursor | undefined, limit: number, waitMs: number, signal?: AbortSignal): Promise<TailPage>
  heads(): Promise<Head[]>
  verify(expected: readonly ExpectedHead[]): Promise<VerifyReport>
  export(sink: ExportSink, options?: { chain?: string }): Promise<number>
  /** Records `gateway.stop`, lets the writer store everything (up to `timeoutMs`), and stops it. */
  close(reason: string, timeoutMs?: number): Promise<void>
}

/** The journal directory for a store when none is configured. */
export function defaultJournalDir(location: StoreLocation, env: NodeJS.ProcessEnv = process.env): string {
  if (location.kind === 'sqlite') return `${location.path}.journal`
  if (env.AIRLOCK_AUDIT_JOURNAL) return env.AIRLOCK_AUDIT_JOURNAL
  const state = env.XDG_STATE_HOME || join(homedir(), '.local', 'state')
  // Keyed by the URL without its password but with its query, as the first releases did: a
  // changed key would leave an existing journal (and its unstored records) behind.
  let keyed: string
  try {
    const url = new URL(location.url)
    url.password = ''
    keyed = url.href
  } catch {
    keyed = 'postgres://(unparseable)'
  }
  const key = createHash('sha256').update(keyed).digest('hex').slice(0, 12)
  return join(state, 'airlock', `audit-journal-${key}`)
}

/**
 * Opens the audit log. The journal must be usable; the store may be down (the writer keeps
 * trying; `available` says false until it succeeds).
 *
 * @throws AirlockError `config` when the journal directory cannot be used or belongs to another
 *   running gateway, `usage` for a malformed store.
 */
export async function openAuditLog(options: AuditLogOptions): Promise<AuditLog> {
  const { logger } = options
  const now = options.now ?? Date.now
  const location = parseStoreLocation(options.store)
  if (options.password !== undefined) {
    if (location.kind !== 'postgres') throw new AirlockError('config', 'audit.password is for a postgres:// audit store')
    location.password = options.password
  }
  const memory = location.kind === 'sqlite' && location.path === ':memory:'
  const dir = options.journalDir ?? (memory ? mkdtempSync(join(tmpdir(), 'airlock-audit-')) : defaultJournalDir(location))
  const claim = claimJournalDir(dir)
  const { chain } = claim
  const signalBuffer = new SharedArrayBuffer(SIGNAL_BYTES)
  const signal = new Int32Array(signalBuffer)

  let storeState: AuditStatus['store'] = 'opening'
  let storeError: string | undefined
  let stored = 0
  const maxLagMs = options.maxLagMs ?? MAX_STORE_LAG_MS
  /**
   * When unstored records were appended, coarsely: each entry's `seq` was appended at `time`, and
   * every later record after it. The first entry is the newest whose seq is at most the oldest
   * unstored record's, so the oldest unstored record is at most `now - unstored[0].time` old.
   * Records left from an earlier run count from start-up.
   */
  const unstored: { seq: number; time: number }[] = [{ seq: 0, time: now() }]
  let lagging = false
  let closing = false
  let worker!: Worker
  let firstReport: (head: ChainTip | undefined) => void = () => {}
  const reported = new Promise<ChainTip | undefined>((resolve) => (firstReport = resolve))
  const tailWaiters = new Set<() => void>()
  const calls = new Map<number, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>()
  let nextCall = 1

  const onMessage = (message: WriterMessage): void => {
    switch (message.type) {
      case 'store':
        if (message.ok) {
          storeState = 'ok'
          storeError = undefined
          firstReport(message.head)
        } else {
          storeState = 'unavailable'
          storeError = message.error.message
          logger.error({ event: 'audit.unavailable', store: describeStore(location), reason: message.error.message }, 'the audit store is unavailable')
          firstReport(undefined)
        }
        return
      case 'ingested':
        stored = message.seq
        while (unstored.length > 1 && unstored[1]!.seq <= stored + 1) unstored.shift()
        if (stored >= journal.tip.seq) unstored.length = 0
        for (const wake of [...tailWaiters]) wake()
        return
      case 'log':
        logger[message.level]({ ...message.fields, store: describeStore(location) }, message.message)
        return
      case 'reply': {
        const call = calls.get(message.id)
        if (call === undefined) return
        calls.delete(message.id)
        if (message.error === undefined) call.resolve(message.result)
        else {
          const { code, message: text, hint } = message.error
          call.reject(new AirlockError(isErrorCode(code) ? code : 'internal', text, hint === undefined ? {} : { hint }))
        }
      }
    }
  }

  const startWorker = (): void => {
    const data: WriterData = { location, dir, chain, signal: signalBuffer }
    worker = spawnWriter(data)
    worker.on('message', onMessage)
    worker.on('error', (error) => logger.error({ event: 'audit.writer-error', err: error }, 'the audit writer failed'))
    worker.on('exit', (code) => {
      for (const call of calls.values()) call.reject(new AirlockError('upstream-unavailable', 'the audit writer stopped'))
      calls.clear()
      if (closing) return
      storeState = 'unavailable'
      storeError = 'the audit writer stopped'
      logger.error({ event: 'audit.writer-exit', code }, 'the audit writer stopped; restarting it')
      setTimeout(() => {
        if (closing) return
        startWorker()
        post({ type: 'start' })
      }, 1000).unref()
    })
  }
  const post = (request: WriterRequest): void => worker.postMessage(request)
  const call = <T>(op: string, args: Record<string, unknown> = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextCall++
      calls.set(id, { resolve: resolve as (value: unknown) => void, reject })
      post({ type: 'rpc', id, op, args })
    })

  startWorker()
  let storeHead: ChainTip | undefined
  let journal: JournalWriter
  try {
    const waitMs = options.storeWaitMs ?? 8_000
    storeHead = await Promise.race([reported, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), waitMs).unref())])
    if (storeState === 'opening') logger.warn({ event: 'audit.store-slow', store: describeStore(location) }, 'the audit store has not answered yet; continuing with the journal')
    const journaled = journalTip(dir)
    const tip = storeHead !== undefined && (journaled === undefined || storeHead.seq > journaled.seq) ? storeHead : journaled
    if (tip === storeHead && storeHead !== undefined) {
      logger.warn({ event: 'audit.journal-behind', journal: journaled?.seq ?? 0, store: storeHead.seq }, 'the journal lacks records the store holds (lost on power failure); continuing from the store')
    }
    const segment = (listSegments(dir).at(-1) ?? 0) + 1
    journal = new JournalWriter({ dir, chain, tip, segment, signal, now, ...(options.segmentBytes ? { segmentBytes: options.segmentBytes } : {}), ...(options.io ? { io: options.io } : {}) })
    const unclean = tip !== undefined && journaled !== undefined && journaled.type !== 'gateway.stop'
    if (!journal.append({ type: 'gateway.start', version: options.version, pid: process.pid, unclean }, { durable: true })) {
      throw new AirlockError('config', `cannot write the audit journal in ${dir} (${errnoOf(journal.failure)})`, { hint: 'check free space and permissions' })
    }
  } catch (error) {
    closing = true
    await worker.terminate()
    claim.release()
    throw error
  }
  post({ type: 'start' })
  logger.info({ event: 'audit.open', store: describeStore(location), journal: dir, chain }, 'audit log open')

  const sync = async (timeoutMs = 5_000): Promise<void> => {
    journal.flush()
    await call('sync', { seq: journal.tip.seq, timeoutMs })
  }

  const lagMs = (): number => (unstored.length === 0 || journal.tip.seq <= stored ? 0 : Math.max(0, now() - unstored[0]!.time))
  /** Whether the store has fallen too far behind; logs the change either way. */
  const tooFarBehind = (): boolean => {
    const behind = lagMs() > maxLagMs
    if (behind !== lagging) {
      lagging = behind
      if (behind) logger.error({ event: 'audit.store-behind', store: describeStore(location), lagMs: lagMs(), records: journal.tip.seq - stored }, 'the audit store has stored nothing recent; new sessions are refused until it catches up')
      else logger.info({ event: 'audit.store-caught-up', store: describeStore(location) }, 'the audit store caught up')
    }
    return behind
  }
  const behindMessage = (): string => `the audit store has not stored a record for ${Math.round(lagMs() / 1000)} s (limit ${Math.round(maxLagMs / 1000)} s)`

  const authFailures = new AuthFailureRecorder((event) => log.append(event, { durable: true }), { now, ...options.authFailureLimits })

  const log: AuditLog = {
    chain,
    journalDir: dir,
    get available() {
      return !closing && journal.worthTrying && storeState === 'ok' && !tooFarBehind()
    },
    status() {
      const behind = tooFarBehind()
      return {
        journal: journal.healthy ? 'ok' : 'failing',
        store: storeState === 'ok' && behind ? 'unavailable' : storeState,
        lag: Math.max(0, journal.tip.seq - stored),
        lagMs: lagMs(),
        ...(storeError !== undefined ? { error: storeError } : behind ? { error: behindMessage() } : {}),
      }
    },
    append(event, appendOptions) {
      const ok = journal.append(event, appendOptions)
      if (ok) {
        const time = now()
        const last = unstored.at(-1)
        if (last === undefined || time - last.time >= LAG_GRAIN_MS) {
          unstored.push({ seq: journal.tip.seq, time })
          // A long outage: keep every other mark. Ages then read high, never low.
          if (unstored.length > MAX_LAG_MARKS) {
            const kept = unstored.filter((_, i) => i % 2 === 0 || i === unstored.length - 1)
            unstored.splice(0, unstored.length, ...kept)
          }
        }
      }
      return ok
    },
    authFailure(failure) {
      authFailures.record(failure)
    },
    sync,
    async list(filter, limit, before) {
      return call<EventPage>('list', { filter, limit, before })
    },
    async get(id) {
      const key = parseEventId(id)
      if (key === undefined) throw new AirlockError('usage', `${JSON.stringify(id)} is not an audit event id`, { hint: 'ids look like 0123456789abcdef:42 (chain:seq); see `airlock audit list`' })
      return (await call<AuditEvent | null>('get', key)) ?? undefined
    },
    async tail(filter, cursor, limit, waitMs, abort) {
      let position = cursor
      if (position === undefined) {
        await sync(2_000)
        position = Object.fromEntries((await call<Head[]>('heads')).map((head) => [head.chain, head.seq]))
      }
      const deadline = now() + waitMs
      for (;;) {
        const events = await call<AuditEvent[]>('after', { cursor: position, filter, limit })
        const next = { ...position }
        for (const event of events) next[event.chain] = Math.max(next[event.chain] ?? 0, event.seq)
        if (events.length > 0 || now() >= deadline || abort?.aborted === true) return { events, cursor: next }
        // Woken by this gateway's writer; polled for other gateways sharing the store.
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            tailWaiters.delete(wake)
            clearTimeout(timer)
            abort?.removeEventListener('abort', wake)
            resolve()
          }
          const timer = setTimeout(wake, Math.min(1_000, Math.max(0, deadline - now())))
          tailWaiters.add(wake)
          abort?.addEventListener('abort', wake, { once: true })
        })
      }
    },
    async heads() {
      await sync(2_000)
      return call<Head[]>('heads')
    },
    async verify(expected) {
      await sync(2_000)
      return call<VerifyReport>('verify', { expected })
    },
    async export(sink, exportOptions = {}) {
      await sync(2_000)
      let after: ExportPosition | null = null
      let count = 0
      for (;;) {
        const page: { lines: string[]; next: ExportPosition | null } = await call('export', { after, chain: exportOptions.chain })
        if (page.lines.length === 0) return count
        await sink(page.lines)
        count += page.lines.length
        after = page.next
      }
    },
    async close(reason, timeoutMs = 10_000) {
      if (closing) return
      authFailures.flush()
      journal.append({ type: 'gateway.stop', reason }, { durable: true })
      const last = journal.tip.seq
      closing = true
      try {
        await Promise.race([call('close', { seq: last, timeoutMs }), new Promise((resolve) => setTimeout(resolve, timeoutMs + 2_000).unref())])
      } catch {
        // the writer already stopped; the journal keeps what it did not store
      }
      journal.close()
      await worker.terminate()
      claim.release()
      if (memory) rmSync(dir, { recursive: true, force: true })
      const left = journal.tip.seq - stored
      if (left > 0) logger.warn({ event: 'audit.close-pending', records: left }, 'records not yet stored stay in the journal and are stored at the next start')
    },
  }
  return log
}

function errnoOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' ? code : 'error'
}

/** The writer thread: compiled JavaScript next to this file, or (from sources, in tests) TypeScript through tsx. */
function spawnWriter(data: WriterData): Worker {
  const here = import.meta.url
  if (!here.endsWith('.ts')) return new Worker(new URL('./writer.js', here), { workerData: data })
  const require = createRequire(here)
  const tsx = pathToFileURL(join(dirname(require.resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href
  const target = new URL('./writer.ts', here).href
  const code = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(target)});`
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), { workerData: data })
}
