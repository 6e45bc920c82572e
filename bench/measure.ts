/** One run of one workload on one path, with the CPU time its proxy processes spent. */
import { ROLES, type Role } from './paths.js'
import { parseCopyCount, parsePgbenchOutput, parsePsqlTiming } from './pgbench-output.js'
import { clockTicksPerSecond, machineTicks, processCounters } from './proc-stat.js'
import { runCommand } from './processes.js'
import { type BenchPath, clientCommand } from './stack.js'
import { COPY_ROW_BYTES, copyCommand, type Workload } from './workloads.js'

export interface Sample {
  /** 1-based; 0 for the warm-up. */
  round: number
  workload: string
  path: string
  ok: boolean
  error?: string
  /** In the workload's metric (TPS, connections/s, MB/s). */
  throughput?: number
  /** Transactions, connections or MB: what CPU time is divided by. */
  units?: number
  /** pgbench "latency average"; for COPY, the statement's time. */
  latencyMs?: number
  /** pgbench -C "average connection time". */
  connectionMs?: number
  failedTransactions?: number
  wallMs: number
  /** utime + stime over the run, in clock ticks, of each proxy process in the path. */
  cpuTicks: Partial<Record<Role, number>>
  /** CPU time per unit, µs. */
  cpuUsPerUnit: Partial<Record<Role, number>>
  /** System calls and main-thread context switches per unit. */
  countersPerUnit: Partial<Record<Role, CountersPerUnit>>
  /** Share of the whole machine's CPU that was busy during the run (everyone's, not just ours). */
  machineBusy: number
  command: string
}

export interface CountersPerUnit {
  /** CPU time split: the process's own code, and the kernel on its behalf. */
  userUs: number
  systemUs: number
  /**
   * read/readv and write/writev calls. Not for pgbouncer, which uses recv/send: /proc/PID/io
   * does not count those.
   */
  readCalls?: number
  writeCalls?: number
  voluntarySwitches: number
  involuntarySwitches: number
}

export interface MeasureOptions {
  round: number
  durationS: number
  copyRows: number
  /** Aborting kills the client program at once and rejects. */
  signal?: AbortSignal
}

export async function measure(workload: Workload, path: BenchPath, options: MeasureOptions): Promise<Sample> {
  const pids = new Map<Role, number>()
  for (const role of ROLES) {
    const pid = path.processes[role]?.child.pid
    if (pid !== undefined) pids.set(role, pid)
  }
  const before = new Map([...pids].map(([role, pid]) => [role, processCounters(pid)]))
  const machineBefore = machineTicks()

  const run = await runWorkload(workload, path, options)

  const machineAfter = machineTicks()
  const cpuTicks: Partial<Record<Role, number>> = {}
  const cpuUsPerUnit: Partial<Record<Role, number>> = {}
  const countersPerUnit: Partial<Record<Role, CountersPerUnit>> = {}
  const errors = run.error === undefined ? [] : [run.error]
  for (const [role, pid] of pids) {
    const start = before.get(role)
    const end = processCounters(pid)
    if (start === undefined || end === undefined || !path.processes[role]?.running) {
      errors.push(`${path.processes[role]?.name ?? role} is not running`)
      continue
    }
    const user = end.userTicks - start.userTicks
    const system = end.systemTicks - start.systemTicks
    cpuTicks[role] = user + system
    const units = run.units
    if (units === undefined || units <= 0) continue
    const usPerTick = 1e6 / clockTicksPerSecond()
    cpuUsPerUnit[role] = ((user + system) * usPerTick) / units
    countersPerUnit[role] = {
      userUs: (user * usPerTick) / units,
      systemUs: (system * usPerTick) / units,
      ...(role === 'pgbouncer'
        ? {}
        : { readCalls: (end.readCalls - start.readCalls) / units, writeCalls: (end.writeCalls - start.writeCalls) / units }),
      voluntarySwitches: (end.voluntarySwitches - start.voluntarySwitches) / units,
      involuntarySwitches: (end.involuntarySwitches - start.involuntarySwitches) / units,
    }
  }
  const machineTotal = machineAfter.total - machineBefore.total
  return {
    round: options.round,
    workload: workload.id,
    path: path.id,
    ok: errors.length === 0,
    ...(errors.length === 0 ? {} : { error: errors.join('; ') }),
    ...(run.throughput === undefined ? {} : { throughput: run.throughput }),
    ...(run.units === undefined ? {} : { units: run.units }),
    ...(run.latencyMs === undefined ? {} : { latencyMs: run.latencyMs }),
    ...(run.connectionMs === undefined ? {} : { connectionMs: run.connectionMs }),
    ...(run.failedTransactions === undefined ? {} : { failedTransactions: run.failedTransactions }),
    wallMs: run.wallMs,
    cpuTicks,
    cpuUsPerUnit,
    countersPerUnit,
    machineBusy: machineTotal > 0 ? (machineAfter.busy - machineBefore.busy) / machineTotal : 0,
    command: run.command,
  }
}

interface WorkloadRun {
  error?: string
  throughput?: number
  units?: number
  latencyMs?: number
  connectionMs?: number
  failedTransactions?: number
  wallMs: number
  command: string
}

const firstLines = (text: string, lines = 6): string => text.trim().split('\n').slice(0, lines).join(' | ')

async function runWorkload(workload: Workload, path: BenchPath, options: MeasureOptions): Promise<WorkloadRun> {
  if (workload.kind === 'pgbench') {
    const args = ['-n', ...workload.args, '-T', String(options.durationS)]
    const spec = clientCommand('pgbench', path.endpoint, args, 'last')
    const command = `pgbench ${args.join(' ')}`
    const result = await runCommand(spec, { timeoutMs: (options.durationS + 60) * 1000, ...(options.signal ? { signal: options.signal } : {}) })
    const base = { wallMs: result.wallMs, command }
    let summary
    try {
      summary = parsePgbenchOutput(result.stdout, result.stderr)
    } catch (error) {
      return { ...base, error: `pgbench exit ${result.code}${result.timedOut ? ' (timed out)' : ''}: ${firstLines(result.stderr) || (error as Error).message}` }
    }
    const problems: string[] = []
    if (result.code !== 0) problems.push(`pgbench exit ${result.code}${result.timedOut ? ' (timed out)' : ''}: ${firstLines(result.stderr)}`)
    if (summary.aborted) problems.push('pgbench aborted the run')
    if (summary.failed > 0) problems.push(`${summary.failed} failed transactions`)
    if (summary.transactions === 0) problems.push('no transactions')
    return {
      ...base,
      ...(problems.length === 0 ? {} : { error: problems.join('; ') }),
      throughput: summary.tps,
      units: summary.transactions,
      failedTransactions: summary.failed,
      ...(summary.latencyMs === undefined ? {} : { latencyMs: summary.latencyMs }),
      ...(summary.connectionMs === undefined ? {} : { connectionMs: summary.connectionMs }),
    }
  }

  const copy = copyCommand(options.copyRows)
  const spec = clientCommand('psql', path.endpoint, ['-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\timing on', '-c', copy], 'flag')
  const result = await runCommand(spec, { timeoutMs: 300_000, ...(options.signal ? { signal: options.signal } : {}) })
  const base = { wallMs: result.wallMs, command: `psql -c '\\timing on' -c "${copy}"` }
  const rows = parseCopyCount(result.stdout)
  if (result.code !== 0 || rows !== options.copyRows) {
    return { ...base, error: `psql exit ${result.code}${result.timedOut ? ' (timed out)' : ''}, ${rows ?? 'no'} rows: ${firstLines(result.stderr)}` }
  }
  // psql's own timing covers the statement only, not process start and connection setup.
  const elapsedMs = parsePsqlTiming(result.stdout) ?? result.wallMs
  const megabytes = (options.copyRows * COPY_ROW_BYTES) / 1e6
  return { ...base, throughput: megabytes / (elapsedMs / 1000), units: megabytes, latencyMs: elapsedMs }
}
