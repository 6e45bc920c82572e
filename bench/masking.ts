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
 * Beside time, the report gives per run the CPU time of the gateway's main thread (the relay,
 * where masking runs; /proc/PID/schedstat, nanoseconds), of the gateway's other threads (V8's
 * garbage collector and compiler), of the path's CLI, and of the whole machine (every process:
 * PostgreSQL and the client too; /proc/stat, clock ticks). When the machine's cores are busy
 * throughout, time follows the machine's CPU, not the gateway's alone.
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
import { clockTicksPerSecond, machineTicks, processCounters } from './proc-stat.js'
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
  /** The `airlock connect` process; undefined for direct. */
  cliPid?: number
}

/** One run: seconds, and CPU seconds of the gateway's main thread, its other threads, the path's CLI and the machine. */
interface Sample {
  seconds: number
  gatewayMain: number
  gatewayOther: number
  cli: number
  machine: number
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
      paths.push({ label: `tunnel ${name}`, port: Number(url.port), password: decodeURIComponent(url.password), cliPid: spawned.child.pid })
    }

    // Warm-up: JIT the relay and the masker, and the table into shared buffers.
    for (const path of paths) await read(path, WORKLOADS[0].sql)
    const samples = new Map<string, Sample[]>()
    const gatewayPid = gateway.process.child.pid
    let resultBytes = 0
    for (let round = 1; round <= options.rounds; round++) {
      for (const [index, workload] of WORKLOADS.entries()) {
        for (const path of rotate(paths, round + index)) {
          if (options.signal?.aborted) throw options.signal.reason
          const before = cpuNow(gatewayPid, path.cliPid)
          const run = await read(path, workload.sql)
          const after = cpuNow(gatewayPid, path.cliPid)
          resultBytes = run.bytes
          const key = `${workload.id}|${path.label}`
          const gatewayMain = after.gatewayMain - before.gatewayMain
          samples.set(key, [
            ...(samples.get(key) ?? []),
            { seconds: run.seconds, gatewayMain, gatewayOther: after.gatewayAll - before.gatewayAll - gatewayMain, cli: after.cli - before.cli, machine: after.machine - before.machine },
          ])
          progress(`masking round ${round}/${options.rounds} ${workload.id.padEnd(6)} ${path.label.padEnd(16)} ${(run.bytes / 1e6 / run.seconds).toFixed(0)} MB/s`)
        }
      }
    }
    return report(samples, paths, options.rounds, resultBytes, rows)
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

/** CPU seconds so far: the gateway's main thread (nanoseconds) and all its threads, the CLI's, the machine's (clock ticks). */
function cpuNow(gatewayPid: number | undefined, cliPid: number | undefined): { gatewayMain: number; gatewayAll: number; cli: number; machine: number } {
  const tick = clockTicksPerSecond()
  const ticksOf = (pid: number | undefined): number => {
    const counters = pid === undefined ? undefined : processCounters(pid)
    return counters === undefined ? Number.NaN : (counters.userTicks + counters.systemTicks) / tick
  }
  return { gatewayMain: mainThreadCpu(gatewayPid), gatewayAll: ticksOf(gatewayPid), cli: cliPid === undefined ? 0 : ticksOf(cliPid), machine: machineTicks().busy / tick }
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

function report(samples: Map<string, Sample[]>, paths: readonly Path[], rounds: number, bytes: number, rows: number): string {
  const lines = [
    `Masking: ${(bytes / 1e6).toFixed(0)} MB per run (${rows} rows of text), ${rounds} interleaved rounds; medians of per-round ratios (time ÷ time)`,
    'CPU per run, medians: the gateway\'s main thread (relay and masking; also per byte of the result) and its other threads (GC, compiler),',
    `the path's CLI, and the whole machine (every process, in ${(1000 / clockTicksPerSecond()).toFixed(0)} ms ticks; "cores" is machine CPU ÷ time)`,
    '',
    `${'workload'.padEnd(8)} ${'path'.padEnd(16)} ${'MB/s'.padStart(6)}  vs unmasked  vs direct  gateway ms  ns/byte  gw other ms  CLI ms  machine ms  cores`,
  ]
  const ms = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? '' : (value * 1000).toFixed(0))
  for (const workload of WORKLOADS) {
    const of = (label: string): Sample[] => samples.get(`${workload.id}|${label}`) ?? []
    for (const path of paths) {
      const own = of(path.label)
      const ratio = (base: string): string => {
        const baseline = of(base)
        return `${(median(own.map((sample, round) => sample.seconds / baseline[round]!.seconds)) ?? Number.NaN).toFixed(2)}×`
      }
      const middle = (pick: (sample: Sample) => number): number | undefined => median(own.map(pick))
      const seconds = middle((sample) => sample.seconds) ?? Number.NaN
      const machine = middle((sample) => sample.machine)
      const tunnel = path.password !== undefined
      const main = tunnel ? middle((sample) => sample.gatewayMain) : undefined
      const perByte = main === undefined ? '' : ((main * 1e9) / bytes).toFixed(2)
      lines.push(
        [
          `${workload.id.padEnd(8)} ${path.label.padEnd(16)} ${(bytes / 1e6 / seconds).toFixed(0).padStart(6)}`,
          ratio('tunnel unmasked').padStart(11),
          ratio('direct').padStart(9),
          ms(main).padStart(10),
          perByte.padStart(7),
          ms(tunnel ? middle((sample) => sample.gatewayOther) : undefined).padStart(11),
          ms(tunnel ? middle((sample) => sample.cli) : undefined).padStart(6),
          ms(machine).padStart(10),
          (machine === undefined ? '' : (machine / seconds).toFixed(2)).padStart(5),
        ].join('  '),
      )
    }
  }
  lines.push('', 'time ratios: 1.15× against the unmasked tunnel is the target for `tunnel masking` (masking costs ≤ 15%)', '')
  return lines.join('\n')
}
