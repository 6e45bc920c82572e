/**
 * The audit log: hash-chained records of sessions, statements, authentication failures and admin
 * actions, journaled before the gateway acts on them and stored in SQLite or PostgreSQL by a writer
 * thread; verification against a store or an export file.
 */
export { type AuthFailure, type AuthFailureLimits, AuthFailureRecorder } from './auth-failures.js'
export { type AuditLog, type AuditLogOptions, type AuditStatus, defaultJournalDir, type EventPage, type ExportSink, openAuditLog, type TailPage } from './log.js'
export {
  type AuditEvent,
  type AuditEventInput,
  type AuditRecord,
  type AuditVerdict,
  canonicalJson,
  columnsOf,
  eventId,
  formatLine,
  GENESIS,
  hashBody,
  parseEventId,
  parseLine,
} from './record.js'
export { createRedactor, type Redaction, type Redactor } from './redact.js'
export { type AuditStore, type ChainCursor, describeStore, type EventFilter, type Head, openStore, parseStoreLocation, type StoreLocation } from './store.js'
export {
  type BrokenLink,
  type ChainReport,
  type ExpectedHead,
  formatHead,
  parseExpectedHead,
  verifyExportFile,
  verifyLines,
  verifyStore,
  type VerifyReport,
} from './verify.js'
export { describeEvent, describeEventFully, describeHeads, describeReport, EVENT_COLUMNS, eventRow, printable } from './format.js'
export { decodeCursor, encodeCursor, parseExpectParams, parseListQuery, parseSince, parseTailQuery, VERDICTS } from './query.js'
