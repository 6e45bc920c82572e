/**
 * `npm run bench`: Airlock against a direct connection and pgbouncer, on this machine.
 *
 * Starts its own PostgreSQL cluster, pgbouncer (session pooling) and an Airlock gateway with one
 * `airlock connect` per policy variant (variants.ts), then runs every workload (workloads.ts) on
 * every path, interleaved: each round runs each workload on each path back to back, in an order
 * rotated per round, so a ratio between paths compares runs a few seconds apart. The report gives
 * medians of those per-round ratios, since single numbers on a shared machine move by ±30%.
 * CPU time, system calls and wake-ups per transaction of the CLI, the gateway and pgbouncer come
 * from /proc/PID/stat, io and status.
 *
 * Progress goes to stderr, the report to stdout, every sample to bench/results/<timestamp>.json.
 * Exits 1 when any run of any path failed, 2 on bad arguments.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release } from 'node:os'
import { join } from 'node:path'
import { runMaskingBench } from './masking.js'
import { measure, type Sample } from './measure.js'
import { parseBenchArgs, usage, UsageError, type BenchOptions } from './options.js'
import { PROFILES_DIR, renderProfile, runProfile } from './profile.js'
import { stopAllNow } from './processes.js'
import { renderDetails, renderProcessCosts, renderSummary, type ReportContext, summarize } from './report.js'
import { REPO, Stack } from './stack.js'
import { rotate } from './stats.js'
import { VARIANTS } from './variants.js'
import { describeWorkload, HEADLINE_WORKLOAD, WORKLOAD_IDS, WORKLOADS } from './workloads.js'

/** The issue's target for select-only at 8 clients: tunnel ÷ pgbouncer. */
const TARGET_VS_PGBOUNCER = 0.7
const RESULTS_DIR = join(REPO, 'bench', 'results')

const progress = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`)
}

/** Aborted by the first Ctrl-C / SIGTERM: the running client is killed, then everything is stopped in order. */
const interrupt = new AbortController()

function installSignalHandlers(): void {
  // Last resort for any path that exits without stopping its children.
  process.on('exit', () => stopAllNow())
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupt.signal.aborted) {
      stopAllNow()
      process.exit(130)
    }
    progress(`${signal}: stopping every process this benchmark started (again to kill them at once)`)
    interrupt.abort(new Error(`interrupted by ${signal}`))
    // Bounded even if an orderly stop hangs; 'exit' handlers also stop the cluster (test/helpers/pg-cluster.ts).
    setTimeout(() => {
      stopAllNow()
      process.exit(130)
    }, 30_000).unref()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

function machine(): Record<string, unknown> {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model, kernel: release(), node: process.version, loadavg: loadavg() }
}

async function bench(options: BenchOptions, stamp: string): Promise<number> {
  const workloads = WORKLOADS.filter((workload) => options.only === undefined || options.only.includes(workload.id))
  const { signal } = interrupt
  const variants = VARIANTS.filter((variant) => options.variants === undefined || options.variants.includes(variant.id))
  const stack = new Stack({ scale: options.scale, variants, pgbouncer: true, relays: true, progress, signal })
  const startedAt = new Date().toISOString()
  const samples: Sample[] = []
  try {
    await stack.start()
    for (const note of stack.notes) progress(`NOTE ${note}`)
    const paths = stack.paths
    progress(`paths: ${paths.map((path) => path.label).join(', ')}; workloads: ${workloads.map((workload) => workload.id).join(', ')}`)

    // Unrecorded load on every path first: JIT-compiled relay code, warm caches, a pgbouncer pool.
    const warmup = WORKLOADS.find((workload) => workload.id === HEADLINE_WORKLOAD)!
    for (const path of paths) {
      const sample = await measure(warmup, path, { round: 0, durationS: options.warmupS, copyRows: options.copyRows, signal })
      progress(`warm-up ${path.label}: ${sample.ok ? `${Math.round(sample.throughput ?? 0)} TPS` : `ERROR ${sample.error ?? ''}`}`)
      samples.push(sample)
    }

    for (let round = 1; round <= options.rounds; round++) {
      for (const [index, workload] of workloads.entries()) {
        for (const path of rotate(paths, round - 1 + index)) {
          const sample = await measure(workload, path, { round, durationS: options.durationS, copyRows: options.copyRows, signal })
          samples.push(sample)
          const cpu = Object.entries(sample.cpuUsPerUnit)
            .map(([role, value]) => `${role} ${Math.round(value)} µs`)
            .join(', ')
          progress(
            `round ${round}/${options.rounds} ${workload.id.padEnd(8)} ${path.label.padEnd(18)} ` +
              (sample.ok ? `${(sample.throughput ?? 0).toFixed(1)} ${workload.metric}${cpu === '' ? '' : ` (${cpu} per ${workload.per})`}` : `ERROR ${sample.error ?? ''}`),
          )
        }
      }
    }

    const failed = samples.filter((sample) => !sample.ok)
    if (failed.length > 0) process.stderr.write(`\n${stack.logTails()}\n`)
    const summaries = summarize(samples, paths, workloads, options.rounds)
    const context: ReportContext = {
      workloads,
      paths,
      summaries,
      rounds: options.rounds,
      commands: Object.fromEntries(workloads.map((workload) => [workload.id, describeWorkload(workload, options)])),
      headlineWorkload: HEADLINE_WORKLOAD,
      target: TARGET_VS_PGBOUNCER,
    }

    mkdirSync(RESULTS_DIR, { recursive: true })
    const resultsFile = join(RESULTS_DIR, `${stamp}.json`)
    writeFileSync(
      resultsFile,
      JSON.stringify(
        {
          startedAt,
          finishedAt: new Date().toISOString(),
          options,
          machine: machine(),
          versions: stack.versions,
          notes: stack.notes,
          target: { workload: HEADLINE_WORKLOAD, vsPgbouncer: TARGET_VS_PGBOUNCER },
          variants,
          paths: paths.map(({ id, label, kind, variant, endpoint }) => ({ id, label, kind, variant: variant?.id, port: endpoint.port })),
          workloads: workloads.map((workload) => ({ ...workload, command: context.commands[workload.id] })),
          samples,
          summaries,
        },
        null,
        2,
      ) + '\n',
    )

    const header = [
      `Airlock benchmark ${startedAt}: ${options.rounds} interleaved rounds, ${options.durationS} s per pgbench run, pgbench scale ${options.scale}`,
      `PostgreSQL ${stack.versions.postgres ?? '?'}, pgbouncer ${stack.versions.pgbouncer ?? 'not installed'} (pool_mode=session), Node ${process.version}, ` +
        `${cpus().length} CPUs, load ${loadavg().map((value) => value.toFixed(2)).join(' ')}`,
      'paths: direct = pgbench → PostgreSQL; pgbouncer = pgbench → pgbouncer → PostgreSQL; two Node relays = pgbench → relay → relay → PostgreSQL (two Node processes, as in the tunnel, that only copy bytes); airlock = pgbench → airlock connect ═ws═▶ gateway → PostgreSQL (all on 127.0.0.1, no TLS)',
      ...stack.notes.map((note) => `NOTE: ${note}`),
      '',
    ]
    process.stdout.write(`${header.join('\n')}\n${renderSummary(context)}\n${renderProcessCosts(context)}\n${renderDetails(context)}`)
    process.stdout.write(`raw numbers: ${resultsFile}\n`)
    if (failed.length > 0) {
      process.stdout.write(`FAILED: ${failed.length} run(s) errored:\n${failed.map((sample) => `  round ${sample.round} ${sample.workload} ${sample.path}: ${sample.error ?? ''}`).join('\n')}\n`)
      return 1
    }
    return 0
  } catch (error) {
    if (!signal.aborted) process.stderr.write(`\n${stack.logTails()}\n`)
    throw error
  } finally {
    await stack.stop()
  }
}

async function profile(options: BenchOptions, stamp: string): Promise<number> {
  const run = await runProfile(options, stamp, progress, interrupt.signal)
  process.stdout.write(renderProfile(run))
  process.stdout.write(`profiles: ${PROFILES_DIR} (open in Chrome DevTools → Performance, or speedscope)\n`)
  return run.sample.ok ? 0 : 1
}

/**
 * Rounds of the masking workload per --rounds: a round is about 3 s (eight 100 MB reads), and its
 * ratios drift by ±10% from round to round on a shared machine, so it takes more of them.
 */
const MASKING_ROUNDS_PER_ROUND = 3

/** The masking workload (bench/masking.ts): a stack of its own, after the main report. */
async function masking(options: BenchOptions): Promise<number> {
  const text = await runMaskingBench({ rounds: options.rounds * MASKING_ROUNDS_PER_ROUND, bytes: 100e6, progress, signal: interrupt.signal })
  process.stdout.write(`\n${text}`)
  return 0
}

const VARIANT_IDS = VARIANTS.map((variant) => variant.id)

async function main(): Promise<number> {
  let options: BenchOptions
  // `--masking`: only the masking workload.
  const args = process.argv.slice(2)
  const maskingOnly = args.includes('--masking')
  try {
    options = parseBenchArgs(
      args.filter((arg) => arg !== '--masking'),
      WORKLOAD_IDS,
      VARIANT_IDS,
    )
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`${error.message}\n\n${usage(WORKLOAD_IDS, VARIANT_IDS)}\n`)
    return 2
  }
  if (options.help) {
    process.stdout.write(`${usage(WORKLOAD_IDS, VARIANT_IDS)}\n`)
    return 0
  }
  installSignalHandlers()
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  if (options.profile) return profile(options, stamp)
  if (maskingOnly) return masking(options)
  const code = await bench(options, stamp)
  // `--only` picks among the main workloads; the masking workload runs with all of them.
  return options.only === undefined ? Math.max(code, await masking(options)) : code
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (interrupt.signal.aborted) {
      progress('interrupted; every process stopped')
      process.exit(130)
    }
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    stopAllNow()
    process.exit(1)
  },
)
