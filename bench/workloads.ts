/** The workloads every path runs in every round. */

export type WorkloadId = 'select-1' | 'select-8' | 'tpcb-8' | 'connect' | 'copy'

interface WorkloadBase {
  id: WorkloadId
  title: string
  /** What the throughput number counts; higher is better for all of them. */
  metric: 'TPS' | 'connections/s' | 'MB/s'
  /** The unit CPU time is divided by. */
  per: 'transaction' | 'connection' | 'MB'
}

export interface PgbenchWorkload extends WorkloadBase {
  kind: 'pgbench'
  /** pgbench arguments besides connection, -n and -T. */
  args: readonly string[]
}

export interface CopyWorkload extends WorkloadBase {
  kind: 'copy'
}

export type Workload = PgbenchWorkload | CopyWorkload

/** Bytes per COPY row on the wire in text format: 1000 characters and a newline. */
export const COPY_ROW_BYTES = 1001

export const WORKLOADS: readonly Workload[] = [
  { id: 'select-1', kind: 'pgbench', title: 'select-only, 1 client', metric: 'TPS', per: 'transaction', args: ['-S', '-c', '1', '-j', '1'] },
  { id: 'select-8', kind: 'pgbench', title: 'select-only, 8 clients', metric: 'TPS', per: 'transaction', args: ['-S', '-c', '8', '-j', '2'] },
  { id: 'tpcb-8', kind: 'pgbench', title: 'TPC-B-like, 8 clients', metric: 'TPS', per: 'transaction', args: ['-c', '8', '-j', '2'] },
  {
    id: 'connect',
    kind: 'pgbench',
    title: 'new connection per select, 1 client',
    metric: 'connections/s',
    per: 'connection',
    args: ['-C', '-S', '-c', '1', '-j', '1'],
  },
  { id: 'copy', kind: 'copy', title: 'COPY ... TO STDOUT, 1000-byte rows', metric: 'MB/s', per: 'MB' },
]

export const WORKLOAD_IDS: readonly WorkloadId[] = WORKLOADS.map((workload) => workload.id)

/** The workload the target (≥ 0.7× pgbouncer) and the profile are about. */
export const HEADLINE_WORKLOAD: WorkloadId = 'select-8'

/** psql meta-command that streams `rows` rows of COPY_ROW_BYTES bytes from the server and discards them. */
export function copyCommand(rows: number): string {
  return `\\copy (select repeat('x', ${COPY_ROW_BYTES - 1}) from generate_series(1, ${rows})) to '/dev/null'`
}

/** A command line for the report: pgbench's own arguments, without connection details. */
export function describeWorkload(workload: Workload, options: { durationS: number; copyRows: number }): string {
  if (workload.kind === 'pgbench') return `pgbench -n ${workload.args.join(' ')} -T ${options.durationS}`
  const megabytes = (options.copyRows * COPY_ROW_BYTES) / 1e6
  return `psql ${copyCommand(options.copyRows)}  (${megabytes.toFixed(1)} MB, timed by psql \\timing)`
}
