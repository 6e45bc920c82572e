/** What the walk finds in a statement: calls (however spelled), tables and access, settings, nesting. */
import { beforeAll, expect, it } from 'vitest'
import { loadSqlParser } from '../../../../src/policy/index.js'
import { analyze } from '../../../../src/policy/guardrails/analyze.js'
import { parseSql } from '../../../../src/policy/guardrails/parser.js'

beforeAll(() => loadSqlParser())

function facts(sql: string) {
  const parsed = parseSql(sql)
  if (!parsed.ok) throw new Error(parsed.error)
  return analyze(parsed.statements[0]!)
}

it.each([
  ["SELECT pg_catalog.PG_READ_FILE('x')", ['pg_read_file']],
  ['SELECT U&"\\0070g_ls_dir"(\'.\')', ['pg_ls_dir']],
  ["SELECT ('x'::text).pg_read_file", ['pg_read_file']],
  ['SELECT t.lo_import FROM t', ['lo_import']],
  ['SELECT * FROM pg_ls_dir($$.$$) LIMIT 1', ['pg_ls_dir']],
  ['SELECT 1 UNION SELECT f(1) EXCEPT SELECT g()', ['f', 'g']],
  ['CALL p(q(1))', ['p', 'q']],
  ['SELECT count(*) FILTER (WHERE h(x)) OVER (ORDER BY k(y)) FROM t', ['count', 'h', 'k']],
  ["SELECT 'f(1)', $$g()$$", []],
  ['CREATE TABLE t (x text DEFAULT pg_read_file($$x$$))', ['pg_read_file']],
])('calls in %s', (sql, names) => {
  expect(facts(sql).functions.map((fn) => fn.name)).toEqual(names)
})

it.each([
  ['SELECT * FROM a JOIN b.c ON true', [['a', 'read'], ['b.c', 'read']]],
  ['INSERT INTO a SELECT * FROM b', [['a', 'write'], ['b', 'read']]],
  ['UPDATE a SET x = 1 FROM b WHERE a.id = b.id', [['a', 'write'], ['b', 'read']]],
  ['MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE', [['a', 'write'], ['b', 'read']]],
  ['DROP TABLE a, s.b', [['a', 'write'], ['s.b', 'write']]],
  ['CREATE TABLE a AS SELECT * FROM b', [['a', 'write'], ['b', 'read']]],
  ['SELECT * INTO a FROM b', [['a', 'write'], ['b', 'read']]],
  ['CREATE INDEX ON a (x)', [['a', 'write']]],
  ['GRANT SELECT ON a TO r', [['a', 'write']]],
  ['LOCK TABLE a', [['a', 'read']]],
  ['VACUUM a', [['a', 'write']]],
  ['COPY a FROM STDIN', [['a', 'write']]],
  ['WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d', [['d', 'read'], ['a', 'write']]],
])('tables in %s', (sql, tables) => {
  expect(facts(sql).tables.map((table) => [table.schema === undefined ? table.name : `${table.schema}.${table.name}`, table.access])).toEqual(tables)
})

it.each([
  ['SET "Standard_Conforming_Strings" = off', [{ name: 'standard_conforming_strings', value: 'off', reset: false, via: 'SET', stored: false }]],
  ['SET search_path = a, b', [{ name: 'search_path', value: 'a, b', reset: false, via: 'SET', stored: false }]],
  ['RESET ALL', [{ name: '*', value: undefined, reset: true, via: 'SET', stored: false }]],
  ['SET TRANSACTION READ WRITE', [{ name: 'transaction_read_only', value: 'off', reset: false, via: 'SET', stored: false }]],
  ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', [{ name: 'default_transaction_read_only', value: 'on', reset: false, via: 'SET', stored: false }]],
  ['BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE', [{ name: 'transaction_read_only', value: 'off', reset: false, via: 'BEGIN', stored: false }]],
  ["SELECT set_config('ROLE', 'x', false)", [{ name: 'role', value: 'x', reset: false, via: 'set_config', stored: false }]],
  ["SELECT set_config(n, 'x', false) FROM t", [{ name: undefined, value: 'x', reset: false, via: 'set_config', stored: false }]],
  ['ALTER SYSTEM SET work_mem = 1', [{ name: 'work_mem', value: '1', reset: false, via: 'SET', stored: true }]],
  ["UPDATE pg_settings SET setting = 'x' WHERE name = 'y'", [{ name: undefined, value: undefined, reset: false, via: 'set_config', stored: false }]],
])('settings changed by %s', (sql, settings) => {
  expect(facts(sql).settings).toEqual(settings)
})

it('marks what a plain EXPLAIN contains as not executed, and EXPLAIN ANALYZE as executed', () => {
  expect(facts('EXPLAIN DELETE FROM t').statements.map((each) => [each.tag, each.executes])).toEqual([
    ['EXPLAIN', true],
    ['DELETE', false],
  ])
  expect(facts('EXPLAIN (ANALYZE) DELETE FROM t').statements.map((each) => each.executes)).toEqual([true, true])
  expect(facts('EXPLAIN (ANALYZE off) DELETE FROM t').statements.map((each) => each.executes)).toEqual([true, false])
})

it('finds DML nested in CTEs, PREPARE, COPY and rule actions', () => {
  const tags = (sql: string) => facts(sql).statements.map((each) => each.tag)
  expect(tags('WITH a AS (UPDATE t SET x = 1 WHERE id = 1 RETURNING 1) SELECT * FROM a')).toEqual(['SELECT', 'UPDATE'])
  expect(tags('PREPARE p AS INSERT INTO t VALUES (1)')).toEqual(['PREPARE', 'INSERT', 'SELECT'])
  expect(tags('COPY (DELETE FROM t RETURNING *) TO STDOUT')).toEqual(['COPY', 'DELETE'])
  expect(tags('CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u')).toEqual(['CREATE RULE', 'DELETE'])
})

it('records what cannot be judged statically', () => {
  expect(facts('DO $$ BEGIN END $$').opaque).toEqual([{ reason: expect.stringContaining('DO block'), kind: 'DO' }])
  expect(facts("SELECT ts_rewrite('a'::tsquery, 'SELECT 1')").opaque).toHaveLength(1)
  expect(facts("SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)").opaque).toHaveLength(0)
  expect(facts("SELECT (x).dblink FROM t").opaque).toHaveLength(1)
})
