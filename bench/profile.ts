/**
 * `npm run bench -- --profile [--only WORKLOAD]`: the gateway and the CLI run under
 * `node --cpu-prof` through one run of a workload (select-only at 8 clients unless `--only` names
 * another); each profile is then summarised by self time, counting only the samples taken during
 * that run (not start-up or warm-up).
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type CpuProfile, type ProfileSummary, summarizeCpuProfile } from './cpuprofile.js'
import { measure, type Sample } from './measure.js'
import type { BenchOptions } from './options.js'
import { formatNumber, renderTable } from './report.js'
import { REPO, Stack } from './stack.js'
import { headlineVariant, VARIANTS } from './variants.js'
import { HEADLINE_WORKLOAD, type Workload, WORKLOADS } from './workloads.js'

export const PROFILES_DIR = join(REPO, 'bench', 'results', 'profiles')

export interface ProfileRun {
  workload: Workload
  sample: Sample
  /** Per process: its main thread's profile, summarised, and the profiles of its other threads (the audit writer, a module loader). */
  profiles: { role: 'gateway' | 'cli'; file: string; others: string[]; summary: ProfileSummary }[]
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)

export async function runProfile(options: BenchOptions, stamp: string, progress: (line: string) => void, signal: AbortSignal): Promise<ProfileRun> {
  mkdirSync(PROFILES_DIR, { recursive: true })
  const variant = VARIANTS.find((each) => each.id === options.variants?.[0]) ?? headlineVariant()
  // A directory per process: every thread writes its own profile there (a gateway run through tsx has
  // a module-loader thread too, and the audit writer is one); the main thread's is the largest.
  const dirs = { gateway: join(PROFILES_DIR, `gateway-${stamp}`), cli: join(PROFILES_DIR, `cli-${stamp}`) }
  const workload = WORKLOADS.find((each) => each.id === (options.only?.[0] ?? HEADLINE_WORKLOAD))!
  const warmup = WORKLOADS.find((each) => each.id === HEADLINE_WORKLOAD)!
  const stack = new Stack({
    scale: options.scale,
    variants: [variant],
    pgbouncer: false,
    nodeFlags: (role) => ['--cpu-prof', '--cpu-prof-dir', dirs[role]],
    progress,
    signal,
  })
  let sample: Sample
  let window: { startUs: number; endUs: number }
  try {
    await stack.start()
    const path = stack.paths.find((each) => each.kind === 'tunnel')!
    progress(`warm-up: ${warmup.id} for ${options.warmupS} s`)
    await measure(warmup, path, { round: 0, durationS: options.warmupS, copyRows: options.copyRows, signal })
    progress(`profiled run: ${workload.id} for ${options.durationS} s through ${path.label}`)
    const startUs = nowUs()
    sample = await measure(workload, path, { round: 1, durationS: options.durationS, copyRows: options.copyRows, signal })
    window = { startUs, endUs: nowUs() }
  } finally {
    // The profiles are written when the processes exit normally (SIGINT / SIGTERM handlers).
    await stack.stop()
  }
  const profiles = (['gateway', 'cli'] as const).map((role) => {
    const files = profilesIn(dirs[role])
    const file = files[0]!
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
    return { role, file, others: files.slice(1), summary: summarizeCpuProfile(profile, { top: 15, root: REPO, window }) }
  })
  return { workload, sample, profiles }
}

/** The profiles in `dir`, largest first: the main thread's (the threads beside it sample mostly idle time), then the others. */
function profilesIn(dir: string): string[] {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => ({ path: join(dir, name), size: statSync(join(dir, name)).size }))
    .sort((a, b) => b.size - a.size)
  if (files.length === 0) throw new Error(`no CPU profile was written in ${dir}`)
  return files.map((file) => file.path)
}

export function renderProfile(run: ProfileRun): string {
  const { sample } = run
  const out: string[] = [
    `Profiled run (${sample.command}; under --cpu-prof, so slower than unprofiled): ${formatNumber(sample.throughput)} ${run.workload.metric}, ` +
      `latency ${formatNumber(sample.latencyMs)} ms, CPU cli ${formatNumber(sample.cpuUsPerUnit.cli)} µs/${run.workload.per}, ` +
      `gateway ${formatNumber(sample.cpuUsPerUnit.gateway)} µs/${run.workload.per}` +
      (sample.ok ? '' : `  ERROR: ${sample.error ?? ''}`),
    '',
  ]
  for (const { role, file, others, summary } of run.profiles) {
    const name = role === 'cli' ? 'airlock connect (CLI)' : 'airlock gateway'
    const span = summary.windowed ? 'during the profiled run only' : 'whole process lifetime (the run window was not in the profile)'
    out.push(
      `${name}: ${file}`,
      `  ${span}: ${formatNumber(summary.durationMs)} ms, main thread busy ${formatNumber(summary.busyMs)} ms ` +
        `(${Math.round((1 - summary.idleShare) * 100)}% of samples; "(program)" is native time outside JS: syscalls, libuv, V8 internals)`,
      ...others.map((other) => `  another thread of it (the audit writer, a module loader): ${other}`),
    )
    out.push(
      renderTable(
        ['self ms', 'share', 'function', 'location'],
        summary.functions.map((entry) => [formatNumber(entry.selfMs), `${(entry.share * 100).toFixed(1)}%`, entry.name, entry.location]),
        ['r', 'r', 'l', 'l'],
      )
        .split('\n')
        .map((line) => `  ${line}`)
        .join('\n'),
      '  by file:',
      renderTable(
        ['self ms', 'share', 'file'],
        summary.files.slice(0, 10).map((entry) => [formatNumber(entry.selfMs), `${(entry.share * 100).toFixed(1)}%`, entry.name]),
        ['r', 'r', 'l'],
      )
        .split('\n')
        .map((line) => `  ${line}`)
        .join('\n'),
      '',
    )
  }
  return out.join('\n')
}
