/**
 * The cost of masking: a text-heavy ~100 MB result read as COPY TO STDOUT and as SELECT rows,
 * directly and through three tunnels that differ only in masking:
 *
 *   direct             client ──▶ PostgreSQL
 *   tunnel unmasked    no secret held (trust upstream), no `masking`: nothing to mask
 *   tunnel canary      the upstream password held: the credential canary alone (the default)
 *   tunnel masking     `masking: {}`: every built-in detector and the canary
 *
 * The client is a minimal raw-protocol reader (it counts bytes and finds ReadyForQuery), so the
 * proxies' cost dominates. Rounds are interleaved with a rotating order; the report gives medians
 * of per-round ratios. The gateway and each CLI are processes of their own, as in production.
 * Beside time, the report gives the CPU time of the gateway's main thread (the relay, where
 * masking runs) per run, from /proc/PID/schedstat (nanoseconds).
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { MessageFramer } from '../src/protocols/postgres/framer.js'
import { serializePassword, serializeQuery, serializeStartup } from '../src/protocols/postgres/messages.js'
import { AuthenticationType, BackendMessage } from '../src/protocols/postgres/protocol.js'
import { startTestGateway, type TestGateway } from '../test/helpers/gateway.js'
import { startPgCluster, type PgCluster } from '../test/helpers/pg-cluster.js'
import { spawnAirlock, type Spawned } from '../test/helpers/processes.js'
import { median, rotate } from './stats.js'

export interface MaskingBenchOptions {
  rounds: number
  /** Target result size in bytes (default 100 MB). */
  bytes: number
  progress: (line: string) => void
  signal?: AbortSignal
}

interface Path {
  label: string
  port: number
  /** The local secret of `airlock connect`; undefined for direct. */
  password?: string
}

/** Bytes of one row's text column: prose, numbers, hex ids, and now and then an address. */
const ROW_TEXT = `repeat('Order ' || id || ' shipped to warehouse ' || (id % 97) || ' on 2024-03-' || lpad((id % 28 + 1)::text, 2, '0') || '; ref ' || md5(id::text) || '. ', 8) || case when id % 50 = 0 then 'contact ops' || id || '@example.com' else 'no contact on file' end`

const WORKLOADS = [
  { id: 'copy', sql: 'copy (select id, body from docs) to stdout' },
  { id: 'select', sql: 'select id, body from docs' },
] as const

export async function runMaskingBench(options: MaskingBenchOptions): Promise<string> {
  const { progress } = options
  let cluster: PgCluster | undefined
  let gateway: TestGateway | undefined
  const tunnels: Spawned[] = []
  try {
    progress('masking: starting a trust-authenticated cluster and a gateway')
    cluster = await startPgCluster({ auth: 'trust', ssl: false, settings: { shared_buffers: '256MB' } })
    const rowBytes = Number(await cluster.psql(`select avg(length(${ROW_TEXT}))::int from generate_series(1, 1000) as id`))
    const rows = Math.ceil(options.bytes / rowBytes)
    await cluster.psql(`create table docs as select id, ${ROW_TEXT} as body from generate_series(1, ${rows}) as id; vacuum analyze docs; alter table docs owner to app`, 'app')
    const upstream = { host: '127.0.0.1', port: cluster.port, database: 'app', user: 'app' }
    const held = { ...upstream, password: { env: 'BENCH_PG_PASSWORD' } }
    gateway = await startTestGateway({
      env: { BENCH_PG_PASSWORD: cluster.app.password },
      connections: [
        { name: 'unmasked', type: 'postgres', upstream: { ...upstream, tls: { mode: 'disable' } }, access: { groups: ['eng'] } },
        { name: 'canary', type: 'postgres', upstream: { ...held, tls: { mode: 'disable' } }, access: { groups: ['eng'] } },
        { name: 'masking', type: 'postgres', upstream: { ...held, tls: { mode: 'disable' } }, access: { groups: ['eng'] }, masking: {} },
      ],
    })
    const paths: Path[] = [{ label: 'direct', port: cluster.port }]
    for (const name of ['unmasked', 'canary', 'masking']) {
      const spawned = spawnAirlock(['connect', name, '--json'], { env: gateway.env('user') })
      tunnels.push(spawned)
      const ready = await spawned.waitFor<{ type: string; dsn: string }>((event) => event.type === 'ready')
      const url = new URL(ready.dsn)
      paths.push({ label: `tunnel ${name}`, port: Number(url.port), password: decodeURIComponent(url.password) })
    }

    // Warm-up: JIT the relay and the masker, and the table into shared buffers.
    for (const path of paths) await read(path, WORKLOADS[0].sql)
    const seconds = new Map<string, number[]>()
    const gatewayCpu = new Map<string, number[]>()
    const gatewayPid = gateway.process.child.pid
    let resultBytes = 0
    for (let round = 1; round <= options.rounds; round++) {
      for (const [index, workload] of WORKLOADS.entries()) {
        for (const path of rotate(paths, round + index)) {
          if (options.signal?.aborted) throw options.signal.reason
          const cpuBefore = mainThreadCpu(gatewayPid)
          const run = await read(path, workload.sql)
          const cpu = mainThreadCpu(gatewayPid) - cpuBefore
          resultBytes = run.bytes
          const key = `${workload.id}|${path.label}`
          seconds.set(key, [...(seconds.get(key) ?? []), run.seconds])
          gatewayCpu.set(key, [...(gatewayCpu.get(key) ?? []), cpu])
          progress(`masking round ${round}/${options.rounds} ${workload.id.padEnd(6)} ${path.label.padEnd(16)} ${(run.bytes / 1e6 / run.seconds).toFixed(0)} MB/s`)
        }
      }
    }
    return report(seconds, gatewayCpu, paths, options.rounds, resultBytes, rows)
  } finally {
    await Promise.all(tunnels.map((spawned) => spawned.stop('SIGINT')))
    await gateway?.stop()
    await cluster?.stop()
  }
}

/** Runs `sql` over a fresh raw session on `path`; the bytes received from the first result message to ReadyForQuery. */
async function read(path: Path, sql: string): Promise<{ seconds: number; bytes: number }> {
  const socket = connect({ host: '127.0.0.1', port: path.port })
  await once(socket, 'connect')
  socket.setNoDelay(true)
  const framer = new MessageFramer({ maxMessageLength: 1 << 26 })
  socket.write(serializeStartup({ user: 'app', database: 'app' }))
  await until(socket, framer, (type, body) => {
    // The CLI asks for its local secret in cleartext; AuthenticationOk follows.
    if (type === BackendMessage.Authentication && body.readInt32BE(0) === AuthenticationType.CleartextPassword && path.password !== undefined) {
      socket.write(serializePassword(path.password))
    }
    return type === BackendMessage.ReadyForQuery
  })
  let bytes = 0
  const counting = (chunk: Buffer): void => {
    bytes += chunk.length
  }
  socket.on('data', counting)
  const started = performance.now()
  socket.write(serializeQuery(sql))
  await until(socket, framer, (type, body) => {
    if (type === BackendMessage.ErrorResponse) throw new Error(`${path.label}: ${body.toString('latin1')}`)
    return type === BackendMessage.ReadyForQuery
  })
  const seconds = (performance.now() - started) / 1000
  socket.off('data', counting)
  socket.destroy()
  return { seconds, bytes }
}

function until(socket: Socket, framer: MessageFramer, stop: (type: number, body: Buffer) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      try {
        framer.push(chunk)
        for (let frame = framer.next(); frame !== undefined; frame = framer.next()) {
          if (stop(frame.type, frame.body)) {
            socket.off('data', onData)
            resolve()
            return
          }
        }
      } catch (error) {
        socket.off('data', onData)
        reject(error)
      }
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error('the session closed')))
  })
}

/** CPU time of a process's main thread so far, in seconds (/proc/PID/schedstat: on-CPU nanoseconds); NaN without one. */
function mainThreadCpu(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9
  } catch {
    return Number.NaN
  }
}

function report(seconds: Map<string, number[]>, gatewayCpu: Map<string, number[]>, paths: readonly Path[], rounds: number, bytes: number, rows: number): string {
  const lines = [
    `Masking: ${(bytes / 1e6).toFixed(0)} MB per run (${rows} rows of text), ${rounds} interleaved rounds; medians of per-round ratios (time ÷ time)`,
    'gateway CPU: the main thread (relay and masking), ms per run and ns per byte of the result',
    '',
    `${'workload'.padEnd(8)} ${'path'.padEnd(16)} ${'MB/s'.padStart(6)}  vs unmasked tunnel  vs direct  gateway CPU ms  ns/byte`,
  ]
  for (const workload of WORKLOADS) {
    const of = (label: string): number[] => seconds.get(`${workload.id}|${label}`) ?? []
    for (const path of paths) {
      const own = of(path.label)
      const ratio = (base: string): string => {
        const baseline = of(base)
        return `${(median(own.map((value, round) => value / baseline[round]!)) ?? Number.NaN).toFixed(2)}×`
      }
      const throughput = bytes / 1e6 / (median(own) ?? Number.NaN)
      const cpu = path.password === undefined ? undefined : median(gatewayCpu.get(`${workload.id}|${path.label}`) ?? [])
      const cpuColumns = cpu === undefined ? '' : `  ${(cpu * 1000).toFixed(0).padStart(13)}  ${((cpu * 1e9) / bytes).toFixed(2).padStart(7)}`
      lines.push(`${workload.id.padEnd(8)} ${path.label.padEnd(16)} ${throughput.toFixed(0).padStart(6)}  ${ratio('tunnel unmasked').padStart(18)}  ${ratio('direct').padStart(9)}${cpuColumns}`)
    }
  }
  lines.push('', 'time ratios: 1.15× against the unmasked tunnel is the target for `tunnel masking` (masking costs ≤ 15%)', '')
  return lines.join('\n')
}
