/** What pgbench (PostgreSQL 15) prints at the end of a run, as numbers. Pure. */

export interface PgbenchSummary {
  /** "number of transactions actually processed"; with -C every transaction is a new connection. */
  transactions: number
  /** "number of failed transactions" (PostgreSQL 15+; 0 when the line is absent). */
  failed: number
  tps: number
  /** "latency average", ms. */
  latencyMs: number | undefined
  /** "average connection time" (-C), ms. */
  connectionMs: number | undefined
  /** "initial connection time" (without -C), ms. */
  initialConnectionMs: number | undefined
  /** pgbench said the run was aborted (a client died); the numbers are incomplete. */
  aborted: boolean
}

const number = (text: string, pattern: RegExp): number | undefined => {
  const match = pattern.exec(text)
  return match?.[1] === undefined ? undefined : Number(match[1])
}

/** Parses pgbench's stdout (and stderr, for abort messages); throws when the totals are missing. */
export function parsePgbenchOutput(stdout: string, stderr = ''): PgbenchSummary {
  const transactions = number(stdout, /^number of transactions actually processed: (\d+)/m)
  const tps = number(stdout, /^tps = ([\d.]+)/m)
  if (transactions === undefined || tps === undefined) {
    throw new Error('pgbench printed no totals (no "number of transactions actually processed" / "tps =" line)')
  }
  return {
    transactions,
    failed: number(stdout, /^number of failed transactions: (\d+)/m) ?? 0,
    tps,
    latencyMs: number(stdout, /^latency average = ([\d.]+) ms/m),
    connectionMs: number(stdout, /^average connection time = ([\d.]+) ms/m),
    initialConnectionMs: number(stdout, /^initial connection time = ([\d.]+) ms/m),
    aborted: /Run was aborted/i.test(stdout) || /\bclient \d+ (?:script \d+ )?aborted\b/.test(stderr),
  }
}

/** psql's `\timing` line ("Time: 812.345 ms" or "Time: 1234.5 ms (00:01.234)"), in ms. */
export function parsePsqlTiming(stdout: string): number | undefined {
  return number(stdout, /^Time: ([\d.]+) ms/m)
}

/** The row count of psql's "COPY n" line. */
export function parseCopyCount(stdout: string): number | undefined {
  return number(stdout, /^COPY (\d+)$/m)
}
