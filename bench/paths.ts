/** The ways into the database that the benchmark compares, and the proxy processes it measures. */

/** The processes whose CPU time is reported: `airlock connect`, the gateway, pgbouncer. */
export type Role = 'cli' | 'gateway' | 'pgbouncer'
export const ROLES: readonly Role[] = ['cli', 'gateway', 'pgbouncer']

export interface PathInfo {
  /** `direct`, `pgbouncer`, `airlock:<variant>`. */
  id: string
  label: string
  kind: 'direct' | 'pgbouncer' | 'tunnel'
  /** For tunnel paths: the policy configuration measured. */
  variant?: { id: string; description: string; headline?: true; audit?: false }
}
