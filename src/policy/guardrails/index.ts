/** SQL guardrails: statements judged on the real parse tree, per connection and per session. */
export { createGuardrails } from './guardrails.js'
export type { Assessment, Decision, Guardrails, GuardrailsConfig, StatementVerdict } from './guardrails.js'
export { loadSqlParser } from './parser.js'
export { BUILTIN_RULES, PINNED_SETTINGS, PRESET_REASONS, PRESETS } from './rules.js'
export type { Preset, RuleConfig } from './rules.js'
export { GuardrailsSession } from './session.js'
export type { Check, StatementInput, StatementPath } from './session.js'
