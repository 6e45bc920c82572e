/**
 * The guardrail presets a SQL connection can enable, in the order their findings are reported:
 * on its own so the configuration schema can name them without loading the SQL parser.
 */
export const PRESETS = ['read-only', 'no-ddl', 'no-server-files', 'no-role-changes', 'safe-writes', 'no-dynamic-sql'] as const
export type Preset = (typeof PRESETS)[number]
