/**
 * From per-round samples to the numbers that mean something on a noisy machine (medians of
 * per-round ratios between paths measured back to back), and the text tables on stdout. Pure.
 */
import type { CountersPerUnit, Sample } from './measure.js'
import { type PathInfo, ROLES, type Role } from './paths.js'
import { max, median, min } from './stats.js'
import type { Workload } from './workloads.js'

export interface PathStats {
  path: string
  /** Throughput per round (index 0 = round 1); null where the run failed or is missing. */
  rounds: (number | null)[]
  median?: number
  min?: number
  max?: number
  latencyMs?: number
  connectionMs?: number
  /** Median per-round difference to direct. */
  addedLatencyMs?: number
  addedConnectionMs?: number
  cpuUsPerUnit: Partial<Record<Role, number>>
  countersPerUnit: Partial<Record<Role, CountersPerUnit>>
  machineBusy?: number
  errors: string[]
}

export interface Ratio {
  /** Per round; null where either side failed. */
  rounds: (number | null)[]
  median?: number
}

export interface WorkloadSummary {
  workload: string
  paths: PathStats[]
  /** Per tunnel path id, and for the two bare relays. */
  ratios: Record<string, { vsDirect?: Ratio; vsPgbouncer?: Ratio; vsUnaudited?: Ratio; vsRelays?: Ratio }>
}

type Numeric = 'throughput' | 'latencyMs' | 'connectionMs'

function perRound(samples: readonly Sample[], workload: string, path: string, rounds: number, field: Numeric): (number | null)[] {
  return Array.from({ length: rounds }, (_, index) => {
    const sample = samples.find((each) => each.round === index + 1 && each.workload === workload && each.path === path)
    const value = sample?.ok ? sample[field] : undefined
    return value === undefined ? null : value
  })
}

const present = (values: readonly (number | null)[]): number[] => values.filter((value): value is number => value !== null)

function pairwise(a: readonly (number | null)[], b: readonly (number | null)[], combine: (x: number, y: number) => number): (number | null)[] {
  return a.map((value, index) => {
    const other = b[index]
    return value === null || other === null || other === undefined ? null : combine(value, other)
  })
}

const withValue = <K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> =>
  value === undefined ? {} : ({ [key]: value } as Partial<Record<K, number>>)

export function summarize(samples: readonly Sample[], paths: readonly PathInfo[], workloads: readonly Workload[], rounds: number): WorkloadSummary[] {
  return workloads.map((workload) => {
    const direct = paths.find((path) => path.kind === 'direct')
    const pgbouncer = paths.find((path) => path.kind === 'pgbouncer')
    const series = (path: PathInfo | undefined, field: Numeric) => (path === undefined ? undefined : perRound(samples, workload.id, path.id, rounds, field))

    const stats = paths.map((path): PathStats => {
      const mine = samples.filter((sample) => sample.round > 0 && sample.workload === workload.id && sample.path === path.id)
      const throughput = perRound(samples, workload.id, path.id, rounds, 'throughput')
      const latency = perRound(samples, workload.id, path.id, rounds, 'latencyMs')
      const connection = perRound(samples, workload.id, path.id, rounds, 'connectionMs')
      const ok = mine.filter((sample) => sample.ok)
      const cpuUsPerUnit: Partial<Record<Role, number>> = {}
      const countersPerUnit: Partial<Record<Role, CountersPerUnit>> = {}
      for (const role of ROLES) {
        const value = median(ok.flatMap((sample) => (sample.cpuUsPerUnit[role] === undefined ? [] : [sample.cpuUsPerUnit[role]!])))
        if (value !== undefined) cpuUsPerUnit[role] = value
        const counters = ok.flatMap((sample) => (sample.countersPerUnit[role] === undefined ? [] : [sample.countersPerUnit[role]!]))
        if (counters.length > 0) {
          const of = (field: keyof CountersPerUnit) => median(counters.flatMap((each) => (each[field] === undefined ? [] : [each[field]])))
          countersPerUnit[role] = {
            userUs: of('userUs') ?? Number.NaN,
            systemUs: of('systemUs') ?? Number.NaN,
            ...withValue('readCalls', of('readCalls')),
            ...withValue('writeCalls', of('writeCalls')),
            voluntarySwitches: of('voluntarySwitches') ?? Number.NaN,
            involuntarySwitches: of('involuntarySwitches') ?? Number.NaN,
          }
        }
      }
      const directLatency = series(direct, 'latencyMs')
      const directConnection = series(direct, 'connectionMs')
      const added = (own: (number | null)[], base: (number | null)[] | undefined) =>
        path.kind === 'direct' || base === undefined ? undefined : median(present(pairwise(own, base, (x, y) => x - y)))
      return {
        path: path.id,
        rounds: throughput,
        ...withValue('median', median(present(throughput))),
        ...withValue('min', min(present(throughput))),
        ...withValue('max', max(present(throughput))),
        ...withValue('latencyMs', median(present(latency))),
        ...withValue('connectionMs', median(present(connection))),
        ...withValue('addedLatencyMs', added(latency, directLatency)),
        ...withValue('addedConnectionMs', added(connection, directConnection)),
        cpuUsPerUnit,
        countersPerUnit,
        ...withValue('machineBusy', median(mine.map((sample) => sample.machineBusy))),
        errors: mine.filter((sample) => !sample.ok).map((sample) => `round ${sample.round}: ${sample.error ?? 'failed'}`),
      }
    })

    const ratios: WorkloadSummary['ratios'] = {}
    const ratio = (own: (number | null)[], base: (number | null)[] | undefined): Ratio | undefined => {
      if (base === undefined) return undefined
      const values = pairwise(own, base, (x, y) => (y === 0 ? Number.NaN : x / y)).map((value) => (value === null || Number.isNaN(value) ? null : value))
      return { rounds: values, ...withValue('median', median(present(values))) }
    }
    // The tunnel without audit: what every policy's cost is measured against.
    const unaudited = paths.find((each) => each.kind === 'tunnel' && each.variant?.audit === false)
    const relays = paths.find((each) => each.kind === 'relays')
    for (const path of paths.filter((each) => each.kind === 'tunnel' || each.kind === 'relays')) {
      const own = perRound(samples, workload.id, path.id, rounds, 'throughput')
      const vsDirect = ratio(own, series(direct, 'throughput'))
      const vsPgbouncer = ratio(own, series(pgbouncer, 'throughput'))
      const vsUnaudited = path.kind !== 'tunnel' || path === unaudited ? undefined : ratio(own, series(unaudited, 'throughput'))
      const vsRelays = path.kind !== 'tunnel' ? undefined : ratio(own, series(relays, 'throughput'))
      ratios[path.id] = {
        ...(vsDirect ? { vsDirect } : {}),
        ...(vsPgbouncer ? { vsPgbouncer } : {}),
        ...(vsUnaudited ? { vsUnaudited } : {}),
        ...(vsRelays ? { vsRelays } : {}),
      }
    }
    return { workload: workload.id, paths: stats, ratios }
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Text

/** Fixed-width columns; `align` per column, 'l' or 'r'. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], align: readonly ('l' | 'r')[]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (align[column] === 'r' ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n')
}

/** 12,345 / 1,234.5 / 12.35 / 0.178: about four significant digits, thousands separated. */
export function formatNumber(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—'
  const magnitude = Math.abs(value)
  const digits = magnitude >= 1000 ? 0 : magnitude >= 100 ? 1 : magnitude >= 10 ? 2 : 3
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

const formatRatio = (value: number | undefined): string => (value === undefined ? '—' : `${value.toFixed(2)}×`)
const formatSigned = (value: number | undefined): string => (value === undefined ? '' : `${value >= 0 ? '+' : '−'}${formatNumber(Math.abs(value))}`)
const formatCpu = (value: number | undefined): string => (value === undefined ? '—' : Math.round(value).toLocaleString('en-US'))
const sum = (...values: (number | undefined)[]): number | undefined =>
  values.every((value) => value === undefined) ? undefined : values.reduce<number>((total, value) => total + (value ?? 0), 0)

export interface ReportContext {
  workloads: readonly Workload[]
  paths: readonly PathInfo[]
  summaries: readonly WorkloadSummary[]
  rounds: number
  /** Per workload id: the command line shown above its details. */
  commands: Record<string, string>
  headlineWorkload: string
  target: number
}

const unitLabel = (workload: Workload): string => (workload.per === 'transaction' ? 'tx' : workload.per === 'connection' ? 'conn' : 'MB')

/** The headline line, the summary table per policy variant (headline variant first), and latencies. */
export function renderSummary(context: ReportContext): string {
  const { workloads, paths, summaries } = context
  const direct = paths.find((path) => path.kind === 'direct')
  const pgbouncer = paths.find((path) => path.kind === 'pgbouncer')
  const tunnels = paths.filter((path) => path.kind === 'tunnel').sort((a, b) => Number(Boolean(b.variant?.headline)) - Number(Boolean(a.variant?.headline)))
  const relays = paths.find((path) => path.kind === 'relays')
  const out: string[] = []
  const byWorkload = (id: string) => summaries.find((summary) => summary.workload === id)
  const stat = (summary: WorkloadSummary | undefined, path: PathInfo | undefined) => (path === undefined ? undefined : summary?.paths.find((each) => each.path === path.id))

  const headline = tunnels.find((tunnel) => tunnel.variant?.headline)
  const headlineWorkload = workloads.find((workload) => workload.id === context.headlineWorkload)
  if (headline !== undefined && headlineWorkload !== undefined) {
    const ratios = byWorkload(headlineWorkload.id)?.ratios[headline.id]
    const vsPgbouncer = ratios?.vsPgbouncer?.median
    const verdict = vsPgbouncer === undefined ? '' : vsPgbouncer >= context.target ? ', met' : ', not met'
    out.push(
      `HEADLINE  ${headline.label}: ${headline.variant?.description ?? ''}`,
      `          ${headlineWorkload.title}: tunnel/pgbouncer ${formatRatio(vsPgbouncer)} (target ≥ ${context.target.toFixed(2)}×${verdict}), tunnel/direct ${formatRatio(ratios?.vsDirect?.median)}`,
    )
    const floor = relays === undefined ? undefined : byWorkload(headlineWorkload.id)?.ratios[relays.id]?.vsPgbouncer?.median
    if (floor !== undefined) {
      out.push(`          the shape's floor: two bare Node TCP relays reach ${formatRatio(floor)} of pgbouncer; the tunnel reaches ${formatRatio(ratios?.vsRelays?.median)} of them`)
    }
    out.push('')
  }

  for (const tunnel of tunnels) {
    out.push(
      `${tunnel.label}${tunnel.variant?.headline ? ' — product default (headline)' : ''}: medians over rounds; ratios are medians of per-round ratios (higher is better); CPU is µs per unit of the process named`,
    )
    const rows = workloads.map((workload) => {
      const summary = byWorkload(workload.id)
      const own = stat(summary, tunnel)
      const bouncer = stat(summary, pgbouncer)
      const ratios = summary?.ratios[tunnel.id]
      return [
        workload.title,
        workload.metric,
        formatNumber(stat(summary, direct)?.median),
        pgbouncer === undefined ? 'n/a' : formatNumber(bouncer?.median),
        formatNumber(own?.median),
        formatRatio(ratios?.vsDirect?.median),
        pgbouncer === undefined ? 'n/a' : formatRatio(ratios?.vsPgbouncer?.median),
        unitLabel(workload),
        formatCpu(own?.cpuUsPerUnit.cli),
        formatCpu(own?.cpuUsPerUnit.gateway),
        formatCpu(sum(own?.cpuUsPerUnit.cli, own?.cpuUsPerUnit.gateway)),
        pgbouncer === undefined ? 'n/a' : formatCpu(bouncer?.cpuUsPerUnit.pgbouncer),
      ]
    })
    out.push(
      renderTable(
        ['workload', 'metric', 'direct', 'pgbouncer', 'airlock', '÷direct', '÷pgbouncer', 'per', 'CPU cli', 'CPU gateway', 'CPU cli+gw', 'CPU pgbouncer'],
        rows,
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'r'],
      ),
    )
    const latencyLines: string[] = []
    for (const workload of workloads) {
      const summary = byWorkload(workload.id)
      const field = workload.per === 'connection' ? 'connection' : workload.id === 'select-1' ? 'latency' : undefined
      if (field === undefined) continue
      const show = (path: PathInfo | undefined) => {
        const each = stat(summary, path)
        if (path === undefined || each === undefined) return undefined
        const value = field === 'connection' ? each.connectionMs : each.latencyMs
        const added = field === 'connection' ? each.addedConnectionMs : each.addedLatencyMs
        return `${path.label} ${formatNumber(value)} ms${path.kind === 'direct' ? '' : ` (${formatSigned(added)})`}`
      }
      const parts = [show(direct), show(pgbouncer), show(tunnel)].filter((part): part is string => part !== undefined)
      latencyLines.push(`  ${workload.title}, ${field === 'connection' ? 'average connection time' : 'latency per transaction'}: ${parts.join(', ')}`)
    }
    if (latencyLines.length > 0) out.push('', 'Added latency (median of per-round differences to direct):', ...latencyLines)
    out.push('')
  }
  const unaudited = tunnels.find((tunnel) => tunnel.variant?.audit === false)
  const costed = tunnels.filter((tunnel) => tunnel !== unaudited)
  if (unaudited !== undefined && costed.length > 0) {
    out.push(
      '',
      `What each policy costs: throughput ÷ ${unaudited.label} (the same tunnel without audit, a benchmark-only gateway), median of per-round ratios; audit target ≥ 0.90×`,
      renderTable(
        ['workload', ...costed.map((tunnel) => tunnel.label)],
        workloads.map((workload) => [workload.title, ...costed.map((tunnel) => formatRatio(byWorkload(workload.id)?.ratios[tunnel.id]?.vsUnaudited?.median))]),
        ['l', ...costed.map(() => 'r' as const)],
      ),
    )
  }
  if (relays !== undefined && tunnels.length > 0) {
    out.push(
      '',
      `The shape's floor: ${relays.label} (bench/node-relay.ts: accept, connect, copy bytes; no WebSocket, protocol or policy) in the tunnel's place,`,
      'and each tunnel ÷ them (median of per-round ratios): what the two Node process hops cost before Airlock does anything',
      renderTable(
        ['workload', relays.label, '÷pgbouncer', ...tunnels.map((tunnel) => `${tunnel.label} ÷relays`)],
        workloads.map((workload) => {
          const summary = byWorkload(workload.id)
          return [
            workload.title,
            formatNumber(stat(summary, relays)?.median),
            pgbouncer === undefined ? 'n/a' : formatRatio(summary?.ratios[relays.id]?.vsPgbouncer?.median),
            ...tunnels.map((tunnel) => formatRatio(summary?.ratios[tunnel.id]?.vsRelays?.median)),
          ]
        }),
        ['l', 'r', 'r', ...tunnels.map(() => 'r' as const)],
      ),
    )
  }
  return out.join('\n')
}

const formatCount = (value: number | undefined): string => (value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(value >= 100 ? 0 : 2))

/**
 * What each proxy process spends per unit of work (medians over rounds): CPU, read and write
 * system calls, and main-thread sleeps (voluntary context switches: one per event-loop wake-up)
 * and preemptions.
 */
export function renderProcessCosts(context: ReportContext): string {
  const rows: string[][] = []
  for (const workload of context.workloads) {
    const summary = context.summaries.find((each) => each.workload === workload.id)
    for (const path of context.paths) {
      const stats = summary?.paths.find((each) => each.path === path.id)
      for (const role of ROLES) {
        const counters = stats?.countersPerUnit[role]
        if (counters === undefined) continue
        const name =
          path.kind === 'relays'
            ? `Node relay, ${role === 'cli' ? 'first' : 'second'} hop`
            : role === 'cli'
              ? `airlock connect (${path.variant?.id ?? path.label})`
              : role === 'gateway'
                ? `gateway (${path.variant?.id ?? path.label})`
                : 'pgbouncer'
        rows.push([
          workload.title,
          unitLabel(workload),
          name,
          formatCpu(stats?.cpuUsPerUnit[role]),
          formatCpu(counters.userUs),
          formatCpu(counters.systemUs),
          formatCount(counters.readCalls),
          formatCount(counters.writeCalls),
          formatCount(counters.voluntarySwitches),
          formatCount(counters.involuntarySwitches),
        ])
      }
    }
  }
  return [
    'Per unit of work, per proxy process (medians over rounds): CPU µs, split into user (own code) and sys (kernel: system calls, the TCP stack);',
    'read/write(v) system calls, all threads (pgbouncer uses recv/send, which /proc/PID/io does not count); main-thread sleeps (voluntary',
    'context switches: each is one wait for the event loop to be woken) and preemptions (involuntary: runnable, but the CPU went to another process)',
    renderTable(
      ['workload', 'per', 'process', 'CPU µs', 'user', 'sys', 'reads', 'writes', 'sleeps', 'preempted'],
      rows,
      ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  ].join('\n')
}

/** One table per workload: every path, every round. */
export function renderDetails(context: ReportContext): string {
  const out: string[] = []
  for (const workload of context.workloads) {
    const summary = context.summaries.find((each) => each.workload === workload.id)
    if (summary === undefined) continue
    out.push(`${workload.title} — ${context.commands[workload.id] ?? ''}`)
    const unit = unitLabel(workload)
    const rows = context.paths.map((path) => {
      const stats = summary.paths.find((each) => each.path === path.id)
      return [
        path.label,
        formatNumber(stats?.median),
        `${formatNumber(stats?.min)} – ${formatNumber(stats?.max)}`,
        (stats?.rounds ?? []).map((value) => (value === null ? 'ERR' : formatNumber(value))).join(' '),
        formatNumber(workload.per === 'connection' ? stats?.connectionMs : stats?.latencyMs),
        formatCpu(stats?.cpuUsPerUnit.cli),
        formatCpu(stats?.cpuUsPerUnit.gateway),
        formatCpu(stats?.cpuUsPerUnit.pgbouncer),
        stats?.machineBusy === undefined ? '—' : `${Math.round(stats.machineBusy * 100)}%`,
      ]
    })
    const latencyHeader = workload.per === 'connection' ? 'conn ms' : workload.kind === 'copy' ? 'copy ms' : 'latency ms'
    out.push(
      renderTable(
        ['path', `median ${workload.metric}`, 'min – max', 'per round', latencyHeader, `cli µs/${unit}`, `gateway µs/${unit}`, `pgbouncer µs/${unit}`, 'machine busy'],
        rows,
        ['l', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r'],
      ),
    )
    for (const [pathId, ratios] of Object.entries(summary.ratios)) {
      const label = context.paths.find((path) => path.id === pathId)?.label ?? pathId
      const show = (name: string, ratio: Ratio | undefined) =>
        ratio === undefined ? undefined : `${name} ${formatRatio(ratio.median)} (${ratio.rounds.map((value) => (value === null ? 'ERR' : value.toFixed(2))).join(' ')})`
      const parts = [show('÷direct', ratios.vsDirect), show('÷pgbouncer', ratios.vsPgbouncer)].filter((part): part is string => part !== undefined)
      out.push(`  ${label}: ${parts.join('   ')}`)
    }
    for (const stats of summary.paths) for (const error of stats.errors) out.push(`  ERROR ${stats.path} ${error}`)
    out.push('')
  }
  return out.join('\n')
}
