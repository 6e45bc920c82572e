/** The ways into the database that the benchmark compares, and the proxy processes it measures. */

/** The processes whose CPU time is reported: `airlock connect`, the gateway, pgbouncer. */
export type Role = 'cli' | 'gateway' | 'pgbouncer'
export const ROLES: readonly Role[] = ['cli', 'gateway', 'pgbouncer']

export interface PathInfo {
  /** `direct`, `pgbouncer`, `node-relays`, `airlock:<variant>`. */
  id: string
  label: string
  /** `relays`: two bare Node TCP relays (bench/node-relay.ts), the tunnel's process hops with nothing else in them. */
  kind: 'direct' | 'pgbouncer' | 'relays' | 'tunnel'
  /** For tunnel paths: the policy configuration measured. */
  variant?: { id: string; description: string; headline?: true; audit?: false }
}
