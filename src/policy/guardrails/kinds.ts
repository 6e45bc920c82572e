/**
 * Statement kinds: the command tag PostgreSQL would report for a parse-tree node (`DROP TABLE`,
 * `CREATE EXTENSION`), and how the presets classify each node type.
 */

type Body = Record<string, unknown>

/** Object types as written in SQL, where the enum name is not already the SQL spelling. */
const OBJECT_WORDS: Record<string, string> = {
  OBJECT_MATVIEW: 'MATERIALIZED VIEW',
  OBJECT_FDW: 'FOREIGN DATA WRAPPER',
  OBJECT_FOREIGN_SERVER: 'SERVER',
  OBJECT_TSCONFIGURATION: 'TEXT SEARCH CONFIGURATION',
  OBJECT_TSDICTIONARY: 'TEXT SEARCH DICTIONARY',
  OBJECT_TSPARSER: 'TEXT SEARCH PARSER',
  OBJECT_TSTEMPLATE: 'TEXT SEARCH TEMPLATE',
  OBJECT_STATISTIC_EXT: 'STATISTICS',
  OBJECT_LARGEOBJECT: 'LARGE OBJECT',
  OBJECT_OPCLASS: 'OPERATOR CLASS',
  OBJECT_OPFAMILY: 'OPERATOR FAMILY',
  OBJECT_DOMCONSTRAINT: 'DOMAIN',
  OBJECT_TABCONSTRAINT: 'TABLE',
  OBJECT_DEFACL: 'DEFAULT PRIVILEGES',
  OBJECT_PUBLICATION_NAMESPACE: 'PUBLICATION',
  OBJECT_PUBLICATION_REL: 'PUBLICATION',
}

function objectWords(objectType: unknown): string {
  if (typeof objectType !== 'string') return 'TABLE'
  return OBJECT_WORDS[objectType] ?? objectType.replace(/^OBJECT_/, '').replace(/_/g, ' ')
}

const TRANSACTION_TAGS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'START TRANSACTION',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION',
  TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED',
  TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
}

const FIXED_TAGS: Record<string, string> = {
  InsertStmt: 'INSERT',
  UpdateStmt: 'UPDATE',
  DeleteStmt: 'DELETE',
  MergeStmt: 'MERGE',
  TruncateStmt: 'TRUNCATE',
  CopyStmt: 'COPY',
  ExplainStmt: 'EXPLAIN',
  DoStmt: 'DO',
  CallStmt: 'CALL',
  PrepareStmt: 'PREPARE',
  ExecuteStmt: 'EXECUTE',
  DeallocateStmt: 'DEALLOCATE',
  DeclareCursorStmt: 'DECLARE CURSOR',
  ClosePortalStmt: 'CLOSE CURSOR',
  VariableShowStmt: 'SHOW',
  LockStmt: 'LOCK TABLE',
  ListenStmt: 'LISTEN',
  UnlistenStmt: 'UNLISTEN',
  NotifyStmt: 'NOTIFY',
  LoadStmt: 'LOAD',
  CheckPointStmt: 'CHECKPOINT',
  ClusterStmt: 'CLUSTER',
  ReindexStmt: 'REINDEX',
  AlterSystemStmt: 'ALTER SYSTEM',
  CreateStmt: 'CREATE TABLE',
  CreateForeignTableStmt: 'CREATE FOREIGN TABLE',
  ViewStmt: 'CREATE VIEW',
  IndexStmt: 'CREATE INDEX',
  CreateRoleStmt: 'CREATE ROLE',
  AlterRoleStmt: 'ALTER ROLE',
  AlterRoleSetStmt: 'ALTER ROLE',
  DropRoleStmt: 'DROP ROLE',
  CommentStmt: 'COMMENT',
  SecLabelStmt: 'SECURITY LABEL',
  CreateExtensionStmt: 'CREATE EXTENSION',
  AlterExtensionStmt: 'ALTER EXTENSION',
  AlterExtensionContentsStmt: 'ALTER EXTENSION',
  CreateSchemaStmt: 'CREATE SCHEMA',
  CreateSeqStmt: 'CREATE SEQUENCE',
  AlterSeqStmt: 'ALTER SEQUENCE',
  CreatedbStmt: 'CREATE DATABASE',
  DropdbStmt: 'DROP DATABASE',
  AlterDatabaseStmt: 'ALTER DATABASE',
  AlterDatabaseSetStmt: 'ALTER DATABASE',
  AlterDatabaseRefreshCollStmt: 'ALTER DATABASE',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateEventTrigStmt: 'CREATE EVENT TRIGGER',
  AlterEventTrigStmt: 'ALTER EVENT TRIGGER',
  RuleStmt: 'CREATE RULE',
  CreatePolicyStmt: 'CREATE POLICY',
  AlterPolicyStmt: 'ALTER POLICY',
  CreateForeignServerStmt: 'CREATE SERVER',
  AlterForeignServerStmt: 'ALTER SERVER',
  CreateUserMappingStmt: 'CREATE USER MAPPING',
  AlterUserMappingStmt: 'ALTER USER MAPPING',
  DropUserMappingStmt: 'DROP USER MAPPING',
  ImportForeignSchemaStmt: 'IMPORT FOREIGN SCHEMA',
  CreateFdwStmt: 'CREATE FOREIGN DATA WRAPPER',
  AlterFdwStmt: 'ALTER FOREIGN DATA WRAPPER',
  CreatePLangStmt: 'CREATE LANGUAGE',
  CreateTableSpaceStmt: 'CREATE TABLESPACE',
  DropTableSpaceStmt: 'DROP TABLESPACE',
  AlterTableSpaceOptionsStmt: 'ALTER TABLESPACE',
  AlterTableMoveAllStmt: 'ALTER TABLE',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  CreateSubscriptionStmt: 'CREATE SUBSCRIPTION',
  AlterSubscriptionStmt: 'ALTER SUBSCRIPTION',
  DropSubscriptionStmt: 'DROP SUBSCRIPTION',
  CreatePublicationStmt: 'CREATE PUBLICATION',
  AlterPublicationStmt: 'ALTER PUBLICATION',
  DropOwnedStmt: 'DROP OWNED',
  ReassignOwnedStmt: 'REASSIGN OWNED',
  AlterDefaultPrivilegesStmt: 'ALTER DEFAULT PRIVILEGES',
  ConstraintsSetStmt: 'SET CONSTRAINTS',
  CreateDomainStmt: 'CREATE DOMAIN',
  AlterDomainStmt: 'ALTER DOMAIN',
  CompositeTypeStmt: 'CREATE TYPE',
  CreateEnumStmt: 'CREATE TYPE',
  CreateRangeStmt: 'CREATE TYPE',
  AlterEnumStmt: 'ALTER TYPE',
  AlterTypeStmt: 'ALTER TYPE',
  CreateCastStmt: 'CREATE CAST',
  CreateConversionStmt: 'CREATE CONVERSION',
  CreateTransformStmt: 'CREATE TRANSFORM',
  CreateOpClassStmt: 'CREATE OPERATOR CLASS',
  CreateOpFamilyStmt: 'CREATE OPERATOR FAMILY',
  AlterOpFamilyStmt: 'ALTER OPERATOR FAMILY',
  AlterOperatorStmt: 'ALTER OPERATOR',
  CreateStatsStmt: 'CREATE STATISTICS',
  AlterStatsStmt: 'ALTER STATISTICS',
  CreateAmStmt: 'CREATE ACCESS METHOD',
  AlterCollationStmt: 'ALTER COLLATION',
  AlterTSDictionaryStmt: 'ALTER TEXT SEARCH DICTIONARY',
  AlterTSConfigurationStmt: 'ALTER TEXT SEARCH CONFIGURATION',
  ReplicaIdentityStmt: 'ALTER TABLE',
  AlterObjectDependsStmt: 'ALTER',
  AlterFunctionStmt: 'ALTER FUNCTION',
}

/** The command tag of a statement node, e.g. `DROP TABLE` for a DropStmt removing a table. */
export function statementTag(node: string, body: Body): string {
  const fixed = FIXED_TAGS[node]
  if (fixed !== undefined) return fixed
  switch (node) {
    case 'SelectStmt':
      return body.intoClause === undefined ? 'SELECT' : 'SELECT INTO'
    case 'VariableSetStmt':
      return body.kind === 'VAR_RESET' || body.kind === 'VAR_RESET_ALL' ? 'RESET' : 'SET'
    case 'TransactionStmt':
      return TRANSACTION_TAGS[String(body.kind)] ?? 'BEGIN'
    case 'FetchStmt':
      return body.ismove === true ? 'MOVE' : 'FETCH'
    case 'DiscardStmt':
      return `DISCARD ${String(body.target ?? 'DISCARD_ALL').replace(/^DISCARD_/, '')}`
    case 'VacuumStmt':
      return body.is_vacuumcmd === true ? 'VACUUM' : 'ANALYZE'
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return body.is_grant === true ? 'GRANT' : 'REVOKE'
    case 'CreateTableAsStmt':
      return body.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS'
    case 'CreateFunctionStmt':
      return body.is_procedure === true ? 'CREATE PROCEDURE' : 'CREATE FUNCTION'
    case 'DropStmt':
      return `DROP ${objectWords(body.removeType)}`
    case 'RenameStmt':
      return `ALTER ${objectWords(body.renameType)}`
    case 'AlterTableStmt':
      return `ALTER ${objectWords(body.objtype)}`
    case 'AlterOwnerStmt':
    case 'AlterObjectSchemaStmt':
      return `ALTER ${objectWords(body.objectType)}`
    case 'DefineStmt':
      return `CREATE ${objectWords(body.kind)}`
    default:
      // e.g. FooBarStmt → FOO BAR: a readable name for node types this table does not know.
      return node
        .replace(/Stmt$/, '')
        .replace(/([a-z])([A-Z])/g, '$1 $2')
        .toUpperCase()
  }
}

/** Whether `node` is a statement node (as opposed to an expression or clause). */
export function isStatementNode(node: string): boolean {
  return node.endsWith('Stmt') && node !== 'RawStmt'
}

/**
 * Statements that cannot write by themselves (read-only). Whatever they contain is judged on its
 * own: an EXPLAIN ANALYZE's statement, a PREPARE's body, a COPY's query, a SET's parameter.
 */
export const NON_WRITING = new Set([
  // A protocol FunctionCall: judged by the function it calls.
  'FunctionCall',
  'SelectStmt',
  'ExplainStmt',
  'VariableShowStmt',
  'VariableSetStmt',
  'TransactionStmt',
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'PrepareStmt',
  'ExecuteStmt',
  'DeallocateStmt',
  'DiscardStmt',
  'ListenStmt',
  'UnlistenStmt',
  'LockStmt',
  'CopyStmt',
  'ConstraintsSetStmt',
])

/**
 * Statements that are not schema changes (no-ddl). Everything else — CREATE, ALTER, DROP,
 * TRUNCATE, COMMENT, GRANT, REVOKE, SELECT INTO, roles, extensions, ... — is.
 */
export const NOT_DDL = new Set([
  'FunctionCall',
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'CopyStmt',
  'ExplainStmt',
  'DoStmt',
  'CallStmt',
  'PrepareStmt',
  'ExecuteStmt',
  'DeallocateStmt',
  'DeclareCursorStmt',
  'FetchStmt',
  'ClosePortalStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'TransactionStmt',
  'LockStmt',
  'ListenStmt',
  'UnlistenStmt',
  'NotifyStmt',
  'DiscardStmt',
  'LoadStmt',
  'CheckPointStmt',
  'VacuumStmt',
  'ClusterStmt',
  'ReindexStmt',
  'AlterSystemStmt',
  'ConstraintsSetStmt',
  'RefreshMatViewStmt',
])

/** Statements whose directly named relations are only read (their DML targets are handled apart). */
export const READS_RELATIONS = new Set([
  'SelectStmt',
  'ExplainStmt',
  'DeclareCursorStmt',
  'LockStmt',
  'PrepareStmt',
  'ExecuteStmt',
  'CallStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'CopyStmt',
])
