/** Command-line options of `npm run bench`. Pure: parsing only, no I/O. */

export interface BenchOptions {
  /** Interleaved rounds; every path runs every workload once per round. */
  rounds: number
  /** Seconds per pgbench run. */
  durationS: number
  /** Seconds of unrecorded select-only load per path before the first round (JIT, caches). */
  warmupS: number
  /** pgbench scale factor for `pgbench -i`. */
  scale: number
  /** Rows of the COPY workload; each row is COPY_ROW_BYTES bytes on the wire. */
  copyRows: number
  /** Workload ids to run; undefined = all. */
  only: string[] | undefined
  /** Policy variant ids to run (the first is the one profiled); undefined = all (profile: the headline). */
  variants: string[] | undefined
  /** Profile mode: one profiled tunnel run (select-only, 8 clients, or the first `only`) instead of the rounds. */
  profile: boolean
  quick: boolean
  help: boolean
}

export const USAGE = `usage: npm run bench -- [--rounds N] [--duration S] [--quick] [--only W[,W...]] [--variant V[,V...]] [--profile] [--masking]

  --rounds N      interleaved rounds (default 5)
  --duration S    seconds per pgbench run (default 6)
  --quick         smoke run: 2 rounds of 2 s, pgbench scale 1, a 20 MB COPY
  --only W,...    run only these workloads (repeatable): WORKLOADS
  --variant V,... run only these policy variants of the tunnel (repeatable): VARIANTS;
                  with --profile, the first is the one profiled (default: the headline)
  --profile       no rounds: run the gateway and the CLI under node --cpu-prof during one
                  select-only 8-client run (or the first --only workload), write the profiles
                  to bench/results/profiles and print the top self-time functions of each
  --masking       only the masking workload (also run after the others when --only is not
                  given): a text-heavy 100 MB result, direct and through tunnels without
                  masking, with the canary alone, and with every detector; a round of it
                  takes about 3 s, so it runs three per --rounds (15 by default)
  --help          this text`

const DEFAULTS = { rounds: 5, durationS: 6, warmupS: 3, scale: 10, copyRows: 100_000 }
const QUICK = { rounds: 2, durationS: 2, warmupS: 1, scale: 1, copyRows: 20_000 }

export class UsageError extends Error {
  override name = 'UsageError'
}

/** Parses `argv` (without node and the script); `workloads` are the valid `--only` ids, `variants` the valid `--variant` ids. */
export function parseBenchArgs(argv: readonly string[], workloads: readonly string[], variants: readonly string[] = []): BenchOptions {
  let rounds: number | undefined
  let durationS: number | undefined
  let quick = false
  let profile = false
  let help = false
  let only: string[] | undefined
  let chosen: string[] | undefined

  const args = [...argv]
  const value = (flag: string, inline: string | undefined): string => {
    const next = inline ?? args.shift()
    if (next === undefined || next.startsWith('--')) throw new UsageError(`${flag} needs a value`)
    return next
  }
  /** A comma-separated list of ids, each one of `valid`. */
  const ids = (flag: string, inline: string | undefined, what: string, valid: readonly string[]): string[] => {
    const listed = value(flag, inline).split(',').map((id) => id.trim()).filter((id) => id !== '')
    for (const id of listed) {
      if (!valid.includes(id)) throw new UsageError(`unknown ${what} ${JSON.stringify(id)} (expected one of: ${valid.join(', ')})`)
    }
    return listed
  }
  const positive = (flag: string, text: string, integer: boolean): number => {
    const parsed = Number(text)
    if (!Number.isFinite(parsed) || parsed <= 0 || (integer && !Number.isInteger(parsed))) {
      throw new UsageError(`${flag} expects a positive ${integer ? 'whole ' : ''}number, got ${JSON.stringify(text)}`)
    }
    return parsed
  }

  while (args.length > 0) {
    const arg = args.shift()!
    const [flag = '', inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    switch (flag) {
      case '--rounds':
        rounds = positive(flag, value(flag, inline), true)
        break
      case '--duration':
        durationS = positive(flag, value(flag, inline), false)
        break
      case '--quick':
        quick = true
        break
      case '--profile':
        profile = true
        break
      case '--only':
        only = [...(only ?? []), ...ids(flag, inline, 'workload', workloads)]
        break
      case '--variant':
        chosen = [...(chosen ?? []), ...ids(flag, inline, 'variant', variants)]
        break
      case '--help':
      case '-h':
        help = true
        break
      default:
        throw new UsageError(`unknown argument ${JSON.stringify(arg)}`)
    }
  }

  const base = quick ? QUICK : DEFAULTS
  return {
    rounds: rounds ?? base.rounds,
    durationS: durationS ?? base.durationS,
    warmupS: base.warmupS,
    scale: base.scale,
    copyRows: base.copyRows,
    only: only === undefined ? undefined : [...new Set(only)],
    variants: chosen === undefined ? undefined : [...new Set(chosen)],
    profile,
    quick,
    help,
  }
}

export function usage(workloads: readonly string[], variants: readonly string[] = []): string {
  return USAGE.replace('WORKLOADS', workloads.join(', ')).replace('VARIANTS', variants.join(', '))
}
