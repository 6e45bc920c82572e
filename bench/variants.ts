/**
 * The policy configurations the benchmark measures: every one that exists, each one entry here.
 * A variant is the YAML merged into the benchmark's `postgres` connection; each gets its own
 * connection on the gateway and its own `airlock connect`, and runs as its own path in every round.
 *
 * As guardrails, masking and audit land, add an entry per configuration worth knowing the cost of,
 * e.g. `{ id: 'read-only', yaml: 'guardrails: { presets: [read-only] }' }`.
 */

export interface PolicyVariant {
  /** Short id: the path is named `airlock <id>`, the gateway connection `bench-<id>`. */
  id: string
  /** What this configuration is, for the report. */
  description: string
  /** Merged into the connection entry of the gateway configuration. */
  yaml: string
  /** The product default: the headline number. Exactly one variant has it. */
  headline?: true
  /**
   * `false`: served by a gateway without an audit log (bench/unaudited-gateway.ts), the baseline
   * for what audit costs. The product cannot run without one; only the benchmark can.
   */
  audit?: false
}

export const VARIANTS: readonly PolicyVariant[] = [
  {
    id: 'default',
    description: 'the product default: every statement audited (SQLite store), no guardrails or masking configured',
    yaml: '',
    headline: true,
  },
  {
    id: 'no-audit',
    description: 'the default without the audit log (a benchmark-only gateway): what audit costs',
    yaml: '',
    audit: false,
  },
  {
    id: 'guardrails',
    description: 'audited, and every statement parsed and checked by four guardrail presets',
    yaml: 'guardrails: { presets: [no-ddl, no-server-files, no-role-changes, safe-writes] }',
  },
]

export function headlineVariant(variants: readonly PolicyVariant[] = VARIANTS): PolicyVariant {
  const headlines = variants.filter((variant) => variant.headline)
  if (headlines.length !== 1 || headlines[0] === undefined) throw new Error('exactly one policy variant must be the headline')
  return headlines[0]
}
