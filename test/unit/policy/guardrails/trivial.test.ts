/** safe-writes: which WHERE clauses select every row as written. */
import { beforeAll, expect, it } from 'vitest'
import { loadSqlParser } from '../../../../src/policy/index.js'
import { parseSql } from '../../../../src/policy/guardrails/parser.js'
import { isTriviallyTrue } from '../../../../src/policy/guardrails/trivial.js'

beforeAll(() => loadSqlParser())

function where(condition: string): unknown {
  const parsed = parseSql(`DELETE FROM t WHERE ${condition}`)
  if (!parsed.ok) throw new Error(parsed.error)
  return parsed.statements[0]!.body.whereClause
}

it.each([
  ['true', true],
  ['TRUE', true],
  ['false', false],
  ['1 = 1', true],
  ['1 = 2', false],
  ['2 > 1', true],
  ['1.5 >= 1.5', true],
  ["'a' = 'a'", true],
  ["'a' <> 'b'", true],
  ['id = id', true],
  ['t.id = t.id', true],
  ['t.id = id', false],
  ['id <> id', false],
  ['id <= id', true],
  ['id = 1', false],
  ['NOT false', true],
  ['NOT (1 = 2)', true],
  ['NOT id = 1', false],
  ['id = 1 OR true', true],
  ['id = 1 AND true', false],
  ['true AND 1 = 1', true],
  ['x IS NULL OR x IS NOT NULL', true],
  ['x IS NULL OR y IS NOT NULL', false],
  ["'t'", true],
  ["'yes'::boolean", true],
  ['1::bool', true],
  ["'no'::boolean", false],
  ['EXISTS (SELECT 1)', true],
  ['EXISTS (SELECT 1 FROM u)', false],
  ['id IS NOT DISTINCT FROM id', true],
  ['id IS DISTINCT FROM id', false],
  ["note LIKE '%'", true],
  ["note LIKE '%a'", false],
  ['1 IN (1, 2)', true],
  ['id IN (id)', true],
  ['id IN (1, 2)', false],
  ['(1 < 2) IS TRUE', true],
  ["1 IS NOT NULL", true],
  ['CURRENT OF c', false],
  ['random() < 2', false],
])('WHERE %s → trivially true %s', (condition, expected) => {
  expect(isTriviallyTrue(where(condition))).toBe(expected)
})
