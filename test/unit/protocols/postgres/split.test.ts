import { describe, expect, it } from 'vitest'
import { splitStatements } from '../../../../src/protocols/postgres/split.js'

const cases: [string, string[]][] = [
  ['select 1', ['select 1']],
  ['select 1;', ['select 1']],
  ['select 1; select 2', ['select 1', 'select 2']],
  ['  ;; select 1 ;  ; ', ['select 1']],
  ["select ';' ; select 2", ["select ';'", 'select 2']],
  ["select 'it''s; fine'; select 2", ["select 'it''s; fine'", 'select 2']],
  ["select E'a\\'; b'; select 2", ["select E'a\\'; b'", 'select 2']],
  ['select "a;b" from t; select 2', ['select "a;b" from t', 'select 2']],
  ['select $$a;b$$; select 2', ['select $$a;b$$', 'select 2']],
  ['select $tag$ $$ ; $tag$; select 2', ['select $tag$ $$ ; $tag$', 'select 2']],
  ['select $1; select 2', ['select $1', 'select 2']],
  ['select a$b; select 2', ['select a$b', 'select 2']],
  ['select 1 -- c;omment\n; select 2', ['select 1 -- c;omment', 'select 2']],
  ['select /* a; /* nested; */ b; */ 1; select 2', ['select /* a; /* nested; */ b; */ 1', 'select 2']],
  ['create rule r as on insert to t do also (insert into a values (1); insert into b values (2)); select 1', [
    'create rule r as on insert to t do also (insert into a values (1); insert into b values (2))',
    'select 1',
  ]],
  ['-- only a comment', []],
  ['select 1; -- trailing comment', ['select 1']],
  ['', []],
  ["select 'unterminated; select 2", ["select 'unterminated; select 2"]],
  // Comments that a second, regex reading took for one long comment: the statement between them
  // must stay a statement (it runs).
  ['/*--*/ DROP TABLE t /*\n*/', ['/*--*/ DROP TABLE t /*\n*/']],
  ['select 1; /*--*/ delete from t /*\n*/', ['select 1', '/*--*/ delete from t /*\n*/']],
  ['/* -- */ begin read write /* \n */; delete from t', ['/* -- */ begin read write /* \n */', 'delete from t']],
  // A line comment ends at a carriage return too.
  ['-- note\rdrop table t; select 1', ['-- note\rdrop table t', 'select 1']],
  ['select 1 -- c;omment\r; select 2', ['select 1 -- c;omment', 'select 2']],
  ['/* a */ ; -- b\n ; /* c\n */', []],
]

describe('splitStatements', () => {
  it.each(cases)('%j', (text, expected) => {
    expect(splitStatements(text)).toEqual(expected)
  })

  it('honours standard_conforming_strings = off (backslash escapes in plain strings)', () => {
    expect(splitStatements("select 'a\\'; b'; select 2", false)).toEqual(["select 'a\\'; b'", 'select 2'])
    expect(splitStatements("select 'a\\'; b'; select 2", true)).toEqual(["select 'a\\'", "b'; select 2"])
  })
})

describe('the single-statement fast path', () => {
  it.each([
    ['SELECT abalance FROM pgbench_accounts WHERE aid = 42;', ['SELECT abalance FROM pgbench_accounts WHERE aid = 42']],
    ['  UPDATE t SET a = a + 1 WHERE id = 7  ', ['UPDATE t SET a = a + 1 WHERE id = 7']],
    ['select 1 ;  ', ['select 1']],
    ['   ', []],
    [';', []],
  ])('%j', (text, expected) => {
    expect(splitStatements(text)).toEqual(expected)
  })
})
