import { expect, it } from 'vitest'
import type { Sample } from '../../../bench/measure.js'
import type { PathInfo } from '../../../bench/paths.js'
import { formatNumber, renderSummary, renderTable, summarize } from '../../../bench/report.js'
import type { Workload } from '../../../bench/workloads.js'

const workload: Workload = { id: 'select-8', kind: 'pgbench', title: 'select-only, 8 clients', metric: 'TPS', per: 'transaction', args: ['-S'] }
const paths: PathInfo[] = [
  { id: 'direct', label: 'direct', kind: 'direct' },
  { id: 'pgbouncer', label: 'pgbouncer', kind: 'pgbouncer' },
  { id: 'airlock:allow-all', label: 'airlock allow-all', kind: 'tunnel', variant: { id: 'allow-all', description: 'default', headline: true } },
]

const sample = (round: number, path: string, throughput: number, latencyMs: number, ok = true): Sample => ({
  round,
  workload: 'select-8',
  path,
  ok,
  throughput,
  units: throughput * 6,
  latencyMs,
  wallMs: 6000,
  cpuTicks: {},
  cpuUsPerUnit: path === 'airlock:allow-all' ? { cli: 80, gateway: 90 + round } : path === 'pgbouncer' ? { pgbouncer: 35 } : {},
  countersPerUnit:
    path === 'airlock:allow-all'
      ? { cli: { userUs: 50, systemUs: 30, readCalls: 2, writeCalls: 2 + round, voluntarySwitches: 1, involuntarySwitches: 0.5 } }
      : path === 'pgbouncer'
        ? { pgbouncer: { userUs: 20, systemUs: 15, voluntarySwitches: 0.5, involuntarySwitches: 0 } }
        : {},
  machineBusy: 0.9,
  command: 'pgbench',
})

it('takes medians of per-round ratios, skipping rounds where a side failed', () => {
  const samples = [
    sample(0, 'airlock:allow-all', 1, 1), // the warm-up never counts
    sample(1, 'direct', 10_000, 0.5),
    sample(1, 'pgbouncer', 8_000, 0.6),
    sample(1, 'airlock:allow-all', 4_000, 1.5),
    sample(2, 'direct', 20_000, 0.4),
    sample(2, 'pgbouncer', 10_000, 0.8),
    sample(2, 'airlock:allow-all', 6_000, 1.2),
    sample(3, 'direct', 10_000, 0.5),
    sample(3, 'pgbouncer', 5_000, 0.9),
    sample(3, 'airlock:allow-all', 4_500, 1.1, false),
  ]
  const [summary] = summarize(samples, paths, [workload], 3)
  const ratios = summary!.ratios['airlock:allow-all']!
  expect(ratios.vsDirect?.rounds).toEqual([0.4, 0.3, null])
  expect(ratios.vsDirect?.median).toBeCloseTo(0.35)
  expect(ratios.vsPgbouncer?.rounds).toEqual([0.5, 0.6, null])
  expect(ratios.vsPgbouncer?.median).toBeCloseTo(0.55)
  const tunnel = summary!.paths.find((each) => each.path === 'airlock:allow-all')!
  expect(tunnel.median).toBe(5_000)
  expect(tunnel.rounds).toEqual([4_000, 6_000, null])
  expect(tunnel.addedLatencyMs).toBeCloseTo(0.9)
  expect(tunnel.cpuUsPerUnit).toEqual({ cli: 80, gateway: 91.5 })
  expect(tunnel.errors).toHaveLength(1)
  expect(tunnel.countersPerUnit.cli).toEqual({ userUs: 50, systemUs: 30, readCalls: 2, writeCalls: 3.5, voluntarySwitches: 1, involuntarySwitches: 0.5 })
  expect(summary!.paths.find((each) => each.path === 'pgbouncer')!.countersPerUnit.pgbouncer).toEqual({
    userUs: 20,
    systemUs: 15,
    voluntarySwitches: 0.5,
    involuntarySwitches: 0,
  })
})

it('renders aligned columns and readable numbers', () => {
  expect(renderTable(['path', 'TPS'], [['direct', '15,150'], ['airlock', '900']], ['l', 'r'])).toBe(
    ['path        TPS', '-------  ------', 'direct   15,150', 'airlock     900'].join('\n'),
  )
  expect(formatNumber(15150.8)).toBe('15,151')
  expect(formatNumber(507.46)).toBe('507.5')
  expect(formatNumber(0.1784)).toBe('0.178')
  expect(formatNumber(undefined)).toBe('—')
})

it('renders the summary without a pgbouncer column when pgbouncer is not installed', () => {
  const withoutPgbouncer = paths.filter((path) => path.kind !== 'pgbouncer')
  const samples = [sample(1, 'direct', 10_000, 0.5), sample(1, 'airlock:allow-all', 4_000, 1.5)]
  const summaries = summarize(samples, withoutPgbouncer, [workload], 1)
  const text = renderSummary({ workloads: [workload], paths: withoutPgbouncer, summaries, rounds: 1, commands: {}, headlineWorkload: 'select-8', target: 0.7 })
  expect(text).toContain('tunnel/pgbouncer — (target ≥ 0.70×), tunnel/direct 0.40×')
  expect(text).toMatch(/select-only, 8 clients\s+TPS\s+10,000\s+n\/a\s+4,000\s+0\.40×\s+n\/a/)
})

it('prices each policy against the tunnel without audit, round by round', () => {
  const withBaseline: PathInfo[] = [
    ...paths,
    { id: 'airlock:no-audit', label: 'airlock no-audit', kind: 'tunnel', variant: { id: 'no-audit', description: 'baseline', audit: false } },
  ]
  const samples = [
    sample(1, 'direct', 10_000, 0.5),
    sample(1, 'airlock:allow-all', 4_000, 1.5),
    sample(1, 'airlock:no-audit', 5_000, 1.2),
    sample(2, 'direct', 10_000, 0.5),
    sample(2, 'airlock:allow-all', 3_000, 1.5),
    sample(2, 'airlock:no-audit', 3_000, 1.2),
  ]
  const summaries = summarize(samples, withBaseline, [workload], 2)
  const ratios = summaries[0]!.ratios
  expect(ratios['airlock:allow-all']!.vsUnaudited?.rounds).toEqual([0.8, 1])
  expect(ratios['airlock:allow-all']!.vsUnaudited?.median).toBeCloseTo(0.9)
  expect(ratios['airlock:no-audit']!.vsUnaudited).toBeUndefined()
  const text = renderSummary({ workloads: [workload], paths: withBaseline, summaries, rounds: 2, commands: {}, headlineWorkload: 'select-8', target: 0.7 })
  expect(text).toContain('What each policy costs: throughput ÷ airlock no-audit')
  expect(text).toMatch(/select-only, 8 clients\s+0\.90×/)
})

it('shows the floor of the shape: two bare Node relays against pgbouncer, and each tunnel against them', () => {
  const withRelays: PathInfo[] = [...paths, { id: 'node-relays', label: 'two Node relays', kind: 'relays' }]
  const samples = [
    sample(1, 'direct', 10_000, 0.5),
    sample(1, 'pgbouncer', 8_000, 0.6),
    sample(1, 'node-relays', 4_000, 1.0),
    sample(1, 'airlock:allow-all', 2_000, 1.5),
    sample(2, 'direct', 10_000, 0.5),
    sample(2, 'pgbouncer', 10_000, 0.6),
    sample(2, 'node-relays', 4_000, 1.0),
    sample(2, 'airlock:allow-all', 3_000, 1.5),
  ]
  const summaries = summarize(samples, withRelays, [workload], 2)
  const ratios = summaries[0]!.ratios
  expect(ratios['node-relays']!.vsPgbouncer?.rounds).toEqual([0.5, 0.4])
  expect(ratios['node-relays']!.vsRelays).toBeUndefined()
  expect(ratios['node-relays']!.vsUnaudited).toBeUndefined()
  expect(ratios['airlock:allow-all']!.vsRelays?.rounds).toEqual([0.5, 0.75])
  expect(ratios['airlock:allow-all']!.vsRelays?.median).toBeCloseTo(0.625)
  const text = renderSummary({ workloads: [workload], paths: withRelays, summaries, rounds: 2, commands: {}, headlineWorkload: 'select-8', target: 0.7 })
  expect(text).toContain("the shape's floor: two bare Node TCP relays reach 0.45× of pgbouncer; the tunnel reaches 0.63× of them")
  expect(text).toMatch(/select-only, 8 clients\s+4,000\s+0\.45×\s+0\.63×/)
  // The relays are no policy variant: no table of their own.
  expect(text).not.toContain('two Node relays: medians over rounds')
})
