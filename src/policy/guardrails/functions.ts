/**
 * What the presets know about built-in functions, by name (any schema: an extension's functions
 * live wherever it was installed). Names are compared lowercase, after the parser has resolved
 * quoting and `U&"..."` escapes.
 */

/** no-server-files: functions that touch the database server's file system or reach out from it. */
export function serverFileReason(name: string): string | undefined {
  switch (name) {
    case 'pg_read_file':
    case 'pg_read_binary_file':
      return `${name} reads files on the database server`
    case 'pg_stat_file':
      return `${name} reads file metadata on the database server`
    case 'lo_import':
      return `${name} reads a file on the database server into a large object`
    case 'lo_export':
      return `${name} writes a file on the database server`
    case 'pg_file_write':
    case 'pg_file_rename':
    case 'pg_file_unlink':
    case 'pg_file_sync':
      return `${name} writes files on the database server`
    case 'pg_logdir_ls':
      return `${name} lists directories on the database server`
    default:
      if (name.startsWith('pg_ls_') && name.endsWith('dir')) return `${name} lists directories on the database server`
      if (name.startsWith('dblink')) return `${name} connects from the database server to other servers`
      return undefined
  }
}

const WRITING_FUNCTIONS = new Set([
  'nextval',
  'setval',
  'lo_creat',
  'lo_create',
  'lo_unlink',
  'lowrite',
  'lo_put',
  'lo_from_bytea',
  'lo_import',
  'lo_truncate',
  'lo_truncate64',
  'pg_notify',
  'brin_summarize_new_values',
  'brin_summarize_range',
  'brin_desummarize_range',
  'gin_clean_pending_list',
  'dblink_exec',
])

const SERVER_STATE_FUNCTIONS = new Set([
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_rotate_logfile',
  'pg_switch_wal',
  'pg_create_restore_point',
  'pg_promote',
  'pg_wal_replay_pause',
  'pg_wal_replay_resume',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_import_system_collations',
  'pg_logical_emit_message',
  'pg_replication_slot_advance',
])

/** read-only: functions that write data or change the server's state. */
export function writingReason(name: string): string | undefined {
  if (WRITING_FUNCTIONS.has(name)) return `${name} changes data`
  if (SERVER_STATE_FUNCTIONS.has(name) || name.startsWith('pg_stat_reset') || name.startsWith('pg_replication_origin_')) {
    return `${name} changes the server's state`
  }
  if (/^pg_(create|drop|copy)_.*replication_slot$/.test(name)) return `${name} changes replication slots`
  return undefined
}

/**
 * Functions that run SQL (or read whole tables) given as text at run time: what they do cannot be
 * judged from the statement. `ts_rewrite` only in its two-argument form, which takes a query.
 */
export function runsSqlText(name: string, argumentCount: number): boolean {
  switch (name) {
    case 'query_to_xml':
    case 'query_to_xml_and_xmlschema':
    case 'query_to_xmlschema':
    case 'table_to_xml':
    case 'table_to_xml_and_xmlschema':
    case 'table_to_xmlschema':
    case 'schema_to_xml':
    case 'schema_to_xml_and_xmlschema':
    case 'schema_to_xmlschema':
    case 'database_to_xml':
    case 'database_to_xml_and_xmlschema':
    case 'database_to_xmlschema':
    case 'ts_stat':
    case 'crosstab':
    case 'crosstab2':
    case 'crosstab3':
    case 'crosstab4':
    case 'connectby':
    case 'dblink':
    case 'dblink_exec':
    case 'dblink_open':
    case 'dblink_send_query':
      return true
    case 'ts_rewrite':
      return argumentCount === 2
    default:
      return false
  }
}

/**
 * The built-in functions a driver calls through the protocol's FunctionCall message, by their
 * fixed OIDs (pg_proc.dat; the same on every server version that has them): libpq's and JDBC's
 * large-object API. Server-side `lo_import`/`lo_export` (764, 765, 767) are deliberately absent.
 */
export const FUNCTION_CALL_ALLOWLIST: ReadonlyMap<number, string> = new Map([
  [715, 'lo_create'],
  [952, 'lo_open'],
  [953, 'lo_close'],
  [954, 'loread'],
  [955, 'lowrite'],
  [956, 'lo_lseek'],
  [957, 'lo_creat'],
  [958, 'lo_tell'],
  [964, 'lo_unlink'],
  [1004, 'lo_truncate'],
  [3170, 'lo_lseek64'],
  [3171, 'lo_tell64'],
  [3172, 'lo_truncate64'],
])

/** Languages whose functions cannot reach the server's files or programs (PostgreSQL's trusted ones). */
export const TRUSTED_LANGUAGES = new Set(['sql', 'plpgsql', 'plperl', 'pltcl', 'plv8'])
