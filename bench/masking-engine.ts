/**
 * The masking workload of bench/masking.ts without the processes around it: the same ~100 MB of
 * rows, cut into 64 KiB reads as a socket hands them over, masked in this process as the relay
 * does it (clean runs found in one call into C per read; the messages that raise masked in
 * JavaScript and serialized). It separates the masker's cost from the relay's, the tunnel's and
 * the scheduling of four processes on two cores, and takes seconds.
 *
 *   node --import tsx bench/masking-engine.ts [--rounds N] [--every-row]
 *
 * --every-row puts an email address in every row instead of every 50th (the JavaScript path's
 * cost per message). Prints per workload and configuration the fastest of N rounds (default 9):
 * ms per pass, ns per byte, the messages that raised, and the ms spent masking those.
 */
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { createMasker, type Masker, type MaskingConfig } from '../src/policy/masking/index.js'
import { serializeCopyData, serializeDataRow } from '../src/protocols/postgres/messages.js'
import { BackendMessage } from '../src/protocols/postgres/protocol.js'

const TARGET_BYTES = 100e6
const READ_BYTES = 64 * 1024
/** A password of the shape the bench's cluster makes (24 random bytes, base64url), fixed so runs compare. */
const SECRET = 'q7Z0-vK3mR_8tW1xLp4NcY6bHs2JdF9e'
const FIELDS = [
  { name: 'id', typeOid: 23 },
  { name: 'body', typeOid: 25 },
]
const CONFIGS: { label: string; config: MaskingConfig }[] = [
  { label: 'canary alone', config: { detectors: [] } },
  { label: 'every detector', config: {} },
]

/** The text of row `id`: the same as ROW_TEXT in bench/masking.ts. */
function rowText(id: number, everyRow: boolean): string {
  const md5 = createHash('md5').update(String(id)).digest('hex')
  const sentence = `Order ${id} shipped to warehouse ${id % 97} on 2024-03-${String((id % 28) + 1).padStart(2, '0')}; ref ${md5}. `
  return sentence.repeat(8) + (everyRow || id % 50 === 0 ? `contact ops${id}@example.com` : 'no contact on file')
}

/** The rows as COPY lines and as DataRows, each cut into reads at message boundaries. */
function workloads(everyRow: boolean): { id: string; reads: Buffer[]; bytes: number }[] {
  const copy: Buffer[] = []
  const rows: Buffer[] = []
  let bytes = 0
  for (let id = 1; bytes < TARGET_BYTES; id++) {
    const text = rowText(id, everyRow)
    copy.push(serializeCopyData(Buffer.from(`${id}\t${text}\n`)))
    rows.push(serializeDataRow([Buffer.from(String(id)), Buffer.from(text)]))
    bytes += rows[rows.length - 1]!.length
  }
  return [
    { id: 'copy', reads: cut(copy), bytes: copy.reduce((sum, message) => sum + message.length, 0) },
    { id: 'select', reads: cut(rows), bytes },
  ]
}

function cut(messages: readonly Buffer[]): Buffer[] {
  const reads: Buffer[] = []
  let pending: Buffer[] = []
  let size = 0
  for (const message of messages) {
    if (size + message.length > READ_BYTES && pending.length > 0) {
      reads.push(Buffer.concat(pending))
      pending = []
      size = 0
    }
    pending.push(message)
    size += message.length
  }
  if (pending.length > 0) reads.push(Buffer.concat(pending))
  return reads
}

/** One pass as the relay's pumpBackend makes it: ms in all, ms masking the messages that raise, how many. */
function pass(masker: Masker, reads: readonly Buffer[]): { ms: number; raisedMs: number; raised: number } {
  const plan = masker.columns(FIELDS)
  const format = { format: 'text' as const }
  const run = { count: 0, end: 0 }
  let raisedMs = 0
  let raised = 0
  const start = performance.now()
  for (const chunk of reads) {
    for (let offset = 0; offset < chunk.length; ) {
      const rows = chunk[offset] === BackendMessage.DataRow
      if (rows) masker.cleanRows(chunk, offset, plan, run)
      else masker.cleanCopyLines(chunk, offset, format, run)
      offset = run.end
      if (offset >= chunk.length) break
      const size = 1 + chunk.readInt32BE(offset + 1)
      const body = chunk.subarray(offset + 5, offset + size)
      const place = { chunk, offset }
      const before = performance.now()
      if (rows) {
        const masked = masker.dataRow(body, plan, place)
        if (masked !== undefined) serializeDataRow(masked)
      } else {
        // As the relay does it: the line written once, with room for the CopyData header.
        const masked = masker.copy(body, format, undefined, place, 5)
        if (masked !== undefined) masked.writeInt32BE(masked.length - 1, 1)
      }
      raisedMs += performance.now() - before
      raised++
      offset += size
    }
  }
  return { ms: performance.now() - start, raisedMs, raised }
}

function main(): void {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '9' }, 'every-row': { type: 'boolean', default: false } } })
  const rounds = Number(values.rounds)
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds takes a whole number of at least 1')
  const everyRow = values['every-row'] ?? false
  console.log(`masking engine, in this process: fastest of ${rounds} passes; an email address in ${everyRow ? 'every row' : 'every 50th row'}\n`)
  console.log(`${'workload'.padEnd(8)} ${'configuration'.padEnd(15)} ${'ms'.padStart(7)} ${'ns/byte'.padStart(8)} ${'raised'.padStart(8)} ${'raised ms'.padStart(10)}`)
  for (const workload of workloads(everyRow)) {
    for (const { label, config } of CONFIGS) {
      const masker = createMasker(config, { secrets: [SECRET] })
      let best = { ms: Number.POSITIVE_INFINITY, raisedMs: 0, raised: 0 }
      for (let round = 0; round < rounds; round++) {
        const result = pass(masker, workload.reads)
        if (result.ms < best.ms) best = result
      }
      const perByte = (best.ms * 1e6) / workload.bytes
      console.log(`${workload.id.padEnd(8)} ${label.padEnd(15)} ${best.ms.toFixed(1).padStart(7)} ${perByte.toFixed(3).padStart(8)} ${String(best.raised).padStart(8)} ${best.raisedMs.toFixed(1).padStart(10)}`)
    }
  }
}

main()
