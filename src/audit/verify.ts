/**
 * Verification of hash chains, against a store or an export file, with or without the gateway.
 *
 * Each chain is read in seq order and each record checked, in this order: it parses; its body
 * hashes to its stored hash (else: edited); it sits where it says (chain and seq: else moved, i.e.
 * reordered); its seq follows the one before (else: records missing, or a duplicate); its `prev`
 * is the hash of the record before (else: a record before it was deleted, inserted or replaced);
 * the store's filter columns match the body (else: edited). The first failure is the chain's
 * broken link; nothing after it is trusted. Expected heads (kept elsewhere) must be found intact,
 * which is what detects a tail cut off.
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { columnsOf, eventId, GENESIS, hashBody, isChainId, parseLine, type AuditRecord } from './record.js'
import type { AuditStore, StoredRow } from './store.js'

export type BreakKind = 'unreadable' | 'edited' | 'moved' | 'missing' | 'out-of-order' | 'relinked' | 'truncated'

export interface BrokenLink {
  /** Where the chain breaks: the seq at which a record was expected or found. */
  seq: number
  /** The event id (`CHAIN:SEQ`) of the offending record, when there is one. */
  id?: string
  kind: BreakKind
  reason: string
}

export interface ChainReport {
  chain: string
  /** Records checked and found intact. */
  records: number
  /** The last intact record: what `airlock audit head` would anchor. */
  head?: { seq: number; hash: string }
  broken?: BrokenLink
}

/** An anchored head: `HASH`, or `CHAIN:SEQ:HASH` as `airlock audit head` prints it. */
export interface ExpectedHead {
  chain?: string
  seq?: number
  hash: string
}

export interface VerifyReport {
  ok: boolean
  chains: ChainReport[]
  /** Expected heads not found in any intact chain. */
  missingHeads: (ExpectedHead & { reason: string })[]
}

/** Parses `--expect-head` values. Returns undefined for a malformed one. */
export function parseExpectedHead(text: string): ExpectedHead | undefined {
  const parts = text.trim().split(':')
  const hash = parts.at(-1)?.toLowerCase() ?? ''
  if (!/^[0-9a-f]{64}$/.test(hash)) return undefined
  if (parts.length === 1) return { hash }
  if (parts.length !== 3 || !isChainId(parts[0]!) || !/^[1-9]\d*$/.test(parts[1]!)) return undefined
  return { chain: parts[0]!, seq: Number(parts[1]), hash }
}

export function formatHead(head: { chain: string; seq: number; hash: string }): string {
  return `${head.chain}:${head.seq}:${head.hash}`
}

/** One record as a verifier sees it: the store's row, or a line of an export. */
export interface Candidate {
  /** Where it is stored; undefined for an export line (its position is its order). */
  at?: { chain: string; seq: number }
  body: string
  hash: string
  /** The store's filter columns, checked against the body. */
  columns?: StoredRow
}

/** Checks one chain's records, fed in order. */
export class ChainVerifier {
  private expectedSeq = 1
  private prev = GENESIS
  private readonly report: ChainReport

  constructor(readonly chain: string) {
    this.report = { chain, records: 0 }
  }

  get broken(): boolean {
    return this.report.broken !== undefined
  }

  /** Checks the next record; returns false once the chain is broken (further input is ignored). */
  next(candidate: Candidate): boolean {
    if (this.report.broken !== undefined) return false
    const position = candidate.at?.seq ?? this.expectedSeq
    const id = eventId(this.chain, position)
    const fail = (kind: BreakKind, reason: string, seq = position): false => {
      this.report.broken = { seq, id: eventId(this.chain, seq), kind, reason }
      return false
    }
    let record: AuditRecord
    try {
      record = JSON.parse(candidate.body) as AuditRecord
    } catch {
      return fail('unreadable', `record ${id} is not valid JSON (edited)`)
    }
    if (hashBody(candidate.body) !== candidate.hash) return fail('edited', `record ${id} does not match its hash: it was edited`)
    if (record.chain !== this.chain || (candidate.at !== undefined && record.seq !== candidate.at.seq)) {
      return fail('moved', `the record stored as ${id} is ${eventId(String(record.chain), Number(record.seq))}: records were reordered or moved`)
    }
    if (record.seq > this.expectedSeq) {
      const missing = record.seq - this.expectedSeq
      return fail(
        'missing',
        `${missing === 1 ? `record ${eventId(this.chain, this.expectedSeq)} is` : `records ${this.expectedSeq}..${record.seq - 1} are`} missing before ${eventId(this.chain, record.seq)}: deleted`,
        this.expectedSeq,
      )
    }
    if (record.seq < this.expectedSeq) {
      return fail(
        'out-of-order',
        `where ${eventId(this.chain, this.expectedSeq)} belongs there is a record claiming ${eventId(this.chain, record.seq)}: records were reordered, duplicated or inserted`,
        this.expectedSeq,
      )
    }
    if (record.prev !== this.prev) {
      return fail('relinked', `record ${id} does not follow the record before it: a record was deleted, inserted or replaced`)
    }
    if (candidate.columns !== undefined) {
      const derived = columnsOf(record) as unknown as Record<string, unknown>
      for (const [column, value] of Object.entries(derived)) {
        if ((candidate.columns as unknown as Record<string, unknown>)[column] !== value) {
          return fail('edited', `column ${column} of ${id} differs from the record: it was edited`)
        }
      }
    }
    this.expectedSeq = record.seq + 1
    this.prev = candidate.hash
    this.report.records++
    this.report.head = { seq: record.seq, hash: candidate.hash }
    return true
  }

  /** The report; `hashes` of intact records are checked against expected heads by the caller. */
  finish(): ChainReport {
    return this.report
  }
}

/** Collects intact hashes for the expected heads while records are verified. */
class HeadMatcher {
  private readonly found = new Set<ExpectedHead>()

  constructor(private readonly expected: readonly ExpectedHead[]) {}

  see(chain: string, seq: number, hash: string): void {
    for (const head of this.expected) {
      if (head.hash === hash && (head.chain === undefined || head.chain === chain) && (head.seq === undefined || head.seq === seq)) this.found.add(head)
    }
  }

  missing(chains: readonly ChainReport[]): VerifyReport['missingHeads'] {
    return this.expected
      .filter((head) => !this.found.has(head))
      .map((head) => {
        const chain = chains.find((each) => each.chain === head.chain)
        const reason =
          head.chain === undefined
            ? `no intact chain contains the expected head ${head.hash}: records were removed from the end, or rewritten`
            : chain === undefined
              ? `chain ${head.chain} is missing entirely`
              : chain.broken !== undefined && (head.seq === undefined || head.seq >= chain.broken.seq)
                ? `the expected head ${formatHead({ chain: head.chain, seq: head.seq ?? 0, hash: head.hash })} lies beyond the broken link at ${chain.broken.seq}`
                : `chain ${head.chain} ends at ${chain.head?.seq ?? 0} without the expected head${head.seq === undefined ? '' : ` at ${head.seq}`}: records were removed from the end, or rewritten`
        return { ...head, reason }
      })
  }
}

function summarize(chains: ChainReport[], matcher: HeadMatcher): VerifyReport {
  const missingHeads = matcher.missing(chains)
  return { ok: chains.every((chain) => chain.broken === undefined) && missingHeads.length === 0, chains, missingHeads }
}

/** Verifies every chain in a store, page by page; `pause` lets a long verify yield between pages. */
export async function verifyStore(store: AuditStore, expected: readonly ExpectedHead[] = [], pause?: () => Promise<void>): Promise<VerifyReport> {
  const matcher = new HeadMatcher(expected)
  const chains: ChainReport[] = []
  for (const { chain } of await store.heads()) {
    const verifier = new ChainVerifier(chain)
    let after = 0
    for (;;) {
      const rows = await store.chainPage(chain, after, 1000)
      if (rows.length === 0) break
      for (const row of rows) {
        if (!verifier.next({ at: { chain: row.chain, seq: row.seq }, body: row.record, hash: row.hash, columns: row })) break
        matcher.see(chain, row.seq, row.hash)
      }
      if (verifier.broken) break
      after = rows.at(-1)!.seq
      await pause?.()
    }
    chains.push(verifier.finish())
  }
  return summarize(chains, matcher)
}

/** Verifies an export file (JSON lines, any interleaving of chains, each chain in order). */
export async function verifyExportFile(path: string, expected: readonly ExpectedHead[] = []): Promise<VerifyReport> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Number.POSITIVE_INFINITY })
  return verifyLines(lines, expected)
}

export async function verifyLines(lines: AsyncIterable<string> | Iterable<string>, expected: readonly ExpectedHead[] = []): Promise<VerifyReport> {
  const matcher = new HeadMatcher(expected)
  const verifiers = new Map<string, ChainVerifier>()
  const unreadable: ChainReport[] = []
  let number = 0
  for await (const line of lines) {
    number++
    if (line.trim() === '') continue
    const parsed = parseLine(line)
    const chain = parsed?.record.chain
    if (parsed === undefined || typeof chain !== 'string') {
      unreadable.push({ chain: '(unknown)', records: 0, broken: { seq: 0, kind: 'unreadable', reason: `line ${number} is not an audit record` } })
      continue
    }
    let verifier = verifiers.get(chain)
    if (verifier === undefined) verifiers.set(chain, (verifier = new ChainVerifier(chain)))
    if (verifier.next({ body: parsed.body, hash: parsed.hash })) matcher.see(chain, parsed.record.seq, parsed.hash)
  }
  const chains = [...verifiers.values()].map((verifier) => verifier.finish()).sort((a, b) => a.chain.localeCompare(b.chain))
  return summarize([...chains, ...unreadable], matcher)
}
