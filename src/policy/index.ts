/**
 * Policy: what the gateway decides about the traffic it relays. Pure — no I/O, no catalog
 * lookups; the gateway wires it to engines through `StatementHooks`.
 */
export {
  BUILTIN_RULES,
  createGuardrails,
  GuardrailsSession,
  loadSqlParser,
  PINNED_SETTINGS,
  PRESET_REASONS,
  PRESETS,
} from './guardrails/index.js'
export type {
  Assessment,
  Check,
  Decision,
  Guardrails,
  GuardrailsConfig,
  Preset,
  RuleConfig,
  StatementInput,
  StatementPath,
  StatementVerdict,
} from './guardrails/index.js'
