/**
 * Masking: what the gateway rewrites in the results it relays. Column rules, detectors with
 * validators, custom patterns and the credential canary, over rows, COPY lines, message texts and
 * command output streams. Pure: no I/O, synchronous.
 */
export { CANARY_LABEL, FRAGMENT_MIN } from './canary.js'
export { TEXT_OID } from './columns.js'
export type { CopyFormat } from './copy.js'
export { copyOutStatement } from './copy-statement.js'
export type { CopyOutStatement } from './copy-statement.js'
export { DETECTORS } from './detectors.js'
export type { DetectorName } from './detectors.js'
export { createMasker } from './masker.js'
export type { ColumnField, ColumnPlan, ColumnRuleConfig, CustomDetectorConfig, MaskCounts, Masker, MaskerOptions, MaskingConfig } from './masker.js'
export { HASH_HEX_DIGITS, HASH_PREFIX, keyedHash } from './strategies.js'
export type { MaskingStrategy } from './strategies.js'
export type { MaskingStream, MaskingStreamOptions } from './stream.js'
