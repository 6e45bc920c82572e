/** Rules, presets and their configuration, table-driven; the adversarial corpus lives in corpus.test.ts. */
import { beforeAll, describe, expect, it } from 'vitest'
import { AirlockError } from '../../../../src/errors.js'
import { BUILTIN_RULES, createGuardrails, type GuardrailsConfig, loadSqlParser, PRESETS, type RuleConfig } from '../../../../src/policy/index.js'

beforeAll(() => loadSqlParser())

const config = (presets: string[], rules: RuleConfig[] = [], mode: GuardrailsConfig['mode'] = 'enforce'): GuardrailsConfig => ({ mode, presets, rules })
const decide = (guardrails: GuardrailsConfig, sql: string) => createGuardrails(guardrails).assess(sql).decision

describe('configuration', () => {
  it.each([...PRESETS, ...Object.values(BUILTIN_RULES), 'airlock-internal'])('refuses a custom rule named %s', (id) => {
    expect(() => createGuardrails(config([], [{ id, action: 'deny', pattern: 'x' }]))).toThrow(expect.objectContaining({ code: 'config' }))
  })

  it('refuses an unknown preset', () => {
    let error: unknown
    try {
      createGuardrails(config(['no-fun']))
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(AirlockError)
    expect((error as AirlockError).code).toBe('config')
  })

  it('reports the mode and whether sessions must start read-only', () => {
    expect(createGuardrails(config(['read-only']))).toMatchObject({ mode: 'enforce', readOnly: true, presets: ['read-only'] })
    expect(createGuardrails(config(['no-ddl', 'no-ddl'], [], 'audit-only'))).toMatchObject({ mode: 'audit-only', readOnly: false, presets: ['no-ddl'] })
  })
})

describe('custom rule matchers', () => {
  const deny = (matcher: Partial<RuleConfig>): GuardrailsConfig => config([], [{ id: 'custom', action: 'deny', ...matcher }])

  it.each([
    [{ kind: ['DROP'] }, 'DROP TABLE victims', true],
    [{ kind: ['DROP'] }, 'DROP INDEX victims_pkey', true],
    [{ kind: ['DROP TABLE'] }, 'DROP INDEX victims_pkey', false],
    [{ kind: ['drop table'] }, 'drop table victims', true],
    [{ kind: ['DropStmt'] }, 'DROP VIEW v', true],
    [{ kind: ['CREATE'] }, 'CREATE INDEX ON t (x)', true],
    [{ kind: ['DELETE'] }, 'WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d', true],
    [{ kind: ['DELETE'] }, 'EXPLAIN DELETE FROM t', false],
    [{ kind: ['DELETE'] }, 'EXPLAIN ANALYZE DELETE FROM t', true],
    [{ kind: ['TRUNCATE'] }, "SELECT 'TRUNCATE t'", false],
    [{ function: ['pg_sleep*'] }, 'SELECT pg_sleep_for(interval $$1s$$)', true],
    [{ function: ['pg_catalog.pg_sleep'] }, 'SELECT pg_sleep(1)', true],
    [{ function: ['pg_catalog.pg_sleep'] }, 'SELECT other.pg_sleep(1)', false],
    [{ function: ['lower'] }, 'SELECT LOWER(x) FROM t', true],
    [{ function: ['lower'] }, 'SELECT lowercase FROM t', false],
    [{ table: ['accounts'] }, 'SELECT * FROM app.accounts', true],
    [{ table: ['public.accounts'] }, 'SELECT * FROM accounts', true],
    [{ table: ['public.accounts'] }, 'SELECT * FROM other.accounts', false],
    [{ table: ['hr.*'] }, 'SELECT * FROM salaries', false],
    [{ table: ['accounts'], access: 'write' }, 'SELECT * FROM accounts', false],
    [{ table: ['accounts'], access: 'write' }, 'UPDATE accounts SET x = 1 WHERE id = 1', true],
    [{ table: ['accounts'], access: 'write' }, 'INSERT INTO log SELECT * FROM accounts', false],
    [{ table: ['accounts'], access: 'read' }, 'INSERT INTO log SELECT * FROM accounts', true],
    [{ table: ['accounts'], access: 'write' }, 'DROP TABLE accounts', true],
    [{ table: ['accounts'], access: 'write' }, 'TRUNCATE accounts', true],
    [{ table: ['accounts'], access: 'write' }, 'COPY accounts FROM STDIN', true],
    [{ table: ['accounts'], access: 'write' }, 'COPY accounts TO STDOUT', false],
    [{ table: ['accounts'], access: 'read' }, 'CREATE VIEW v AS SELECT * FROM accounts', true],
    [{ pattern: 'secret' }, "SELECT 'SECRET'", true],
    [{ pattern: '^select\\s+1$' }, 'SELECT 1', true],
    [{ kind: ['SELECT'], table: ['accounts'] }, 'SELECT 1', false],
  ] as const)('%j on %s → blocked %s', (matcher, sql, blocked) => {
    const decision = decide(deny(matcher as Partial<RuleConfig>), sql)
    expect(decision.allow).toBe(!blocked)
    if (blocked) expect(decision).toMatchObject({ rule: 'custom', message: 'matches rule custom' })
  })

  it('uses the configured message', () => {
    expect(decide(config([], [{ id: 'hr', action: 'deny', table: ['hr.*'], message: 'HR needs a ticket' }]), 'SELECT * FROM hr.x')).toEqual({
      allow: false,
      rule: 'hr',
      message: 'HR needs a ticket',
    })
  })
})

describe('allow rules make exceptions for exactly their subject', () => {
  const files = (allow: Partial<RuleConfig>) => config(['no-server-files', 'read-only'], [{ id: 'exception', action: 'allow', ...allow }])

  it.each([
    [{ function: ['pg_ls_dir'] }, "SELECT pg_ls_dir('.')", { allow: true, rule: 'exception' }],
    [{ function: ['pg_ls_dir'] }, "SELECT pg_ls_dir('.'), pg_read_file('x')", { allow: false, rule: 'no-server-files' }],
    [{ function: ['pg_ls_dir'] }, "SELECT pg_ls_dir('.') FROM t FOR UPDATE", { allow: false, rule: 'read-only' }],
    [{ pattern: '^SELECT pg_' }, "SELECT pg_read_file('x'), pg_ls_dir('.')", { allow: true, rule: 'exception' }],
    [{ pattern: '^SET' }, 'SET standard_conforming_strings = off', { allow: false, rule: BUILTIN_RULES.pinnedSettings }],
    [{ kind: ['INSERT'], table: ['audit_log'] }, "INSERT INTO audit_log VALUES ('x')", { allow: true, rule: 'exception' }],
    [{ kind: ['INSERT'], table: ['audit_log'] }, "INSERT INTO other VALUES ('x')", { allow: false, rule: 'read-only' }],
    [{ kind: ['INSERT'], table: ['audit_log'] }, 'WITH x AS (INSERT INTO audit_log VALUES (1) RETURNING 1) DELETE FROM t WHERE id = 1', { allow: false, rule: 'read-only' }],
  ] as const)('%j on %s', (allow, sql, expected) => {
    expect(decide(files(allow as Partial<RuleConfig>), sql)).toMatchObject(expected)
  })

  it('covers a TRUNCATE of the named table only', () => {
    const guardrails = config(['no-ddl', 'safe-writes'], [{ id: 'scratch', action: 'allow', kind: ['TRUNCATE'], table: ['public.scratch'] }])
    expect(decide(guardrails, 'TRUNCATE scratch')).toEqual({ allow: true, rule: 'scratch' })
    expect(decide(guardrails, 'TRUNCATE scratch, victims')).toMatchObject({ allow: false, rule: 'no-ddl' })
  })

  it('lets a custom allow rule override a custom deny rule', () => {
    const guardrails = config([], [
      { id: 'no-hr', action: 'deny', table: ['hr.*'] },
      { id: 'directory', action: 'allow', table: ['hr.directory'], access: 'read' },
    ])
    expect(decide(guardrails, 'SELECT * FROM hr.directory')).toEqual({ allow: true, rule: 'directory' })
    expect(decide(guardrails, 'SELECT * FROM hr.directory JOIN hr.salaries USING (id)')).toMatchObject({ allow: false, rule: 'no-hr' })
    expect(decide(guardrails, 'UPDATE hr.directory SET name = 1 WHERE id = 1')).toMatchObject({ allow: false, rule: 'no-hr' })
  })
})

describe('what cannot be judged statically', () => {
  it.each([
    [['no-dynamic-sql', 'read-only'], 'no-dynamic-sql'],
    [['no-ddl', 'read-only'], 'no-ddl'],
    [[], BUILTIN_RULES.opaque],
  ])('is claimed by %j as %s', (presets, rule) => {
    const guardrails = createGuardrails(config(presets))
    expect(guardrails.assess('DO $$ BEGIN END $$').decision).toMatchObject({ allow: false, rule })
    expect(guardrails.assess("SELECT query_to_xml('select 1', true, true, '')").decision).toMatchObject({ allow: false, rule })
    expect(guardrails.unknownPrepared('p')).toMatchObject({ allow: false, rule })
  })

  it('blocks unparseable text and text too deep to walk', () => {
    expect(decide(config([]), 'SELEC 1')).toMatchObject({ allow: false, rule: BUILTIN_RULES.unparseable })
    const deep = `SELECT ${'NOT '.repeat(3_000)}true`
    expect(decide(config([]), deep)).toMatchObject({ allow: false, rule: BUILTIN_RULES.unparseable })
  })

  it('reads the body of a LANGUAGE sql function and judges it', () => {
    const guardrails = config(['no-server-files'])
    expect(decide(guardrails, "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT pg_read_file('x') $$")).toMatchObject({ allow: false, rule: 'no-server-files' })
    expect(decide(guardrails, 'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$')).toEqual({ allow: true })
    expect(decide(guardrails, 'CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT length(pg_read_file($$x$$)); END')).toMatchObject({ allow: false })
    expect(decide(guardrails, 'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$')).toMatchObject({ allow: false, rule: 'no-server-files' })
  })
})

describe('the pinned settings', () => {
  it.each([
    ["SET client_encoding = 'UTF-8'", true],
    ["SET client_encoding = 'unicode'", true],
    ['SET client_encoding = utf8', true],
    ["SET client_encoding = 'latin1'", false],
    ["SET NAMES 'sjis'", false],
    ['SET client_encoding TO DEFAULT', true],
    ['RESET client_encoding', true],
    ['SET standard_conforming_strings = yes', true],
    ['SET standard_conforming_strings = off', false],
    ['SET backslash_quote = safe_encoding', true],
    ["SET backslash_quote = 'off'", false],
    ["SELECT set_config('backslash_quote', 'on', false)", false],
    ["SELECT set_config(current_setting('x.name'), 'on', false)", false],
    ["ALTER ROLE app SET standard_conforming_strings = 'off'", false],
    ['RESET ALL', true],
  ])('%s → allowed %s (with no preset at all)', (sql, allowed) => {
    const decision = decide(config([]), sql)
    expect(decision.allow).toBe(allowed)
    if (!allowed) expect(decision).toMatchObject({ rule: BUILTIN_RULES.pinnedSettings })
  })
})

describe('FunctionCall by OID', () => {
  it.each([
    [[], 952, true],
    [['read-only'], 952, true],
    [['read-only'], 954, true],
    [['read-only'], 955, false],
    [['read-only'], 957, false],
    [[], 957, true],
    [[], 764, false],
    [[], 2_624, false],
  ])('with %j, function %i → allowed %s', (presets, oid, allowed) => {
    const decision = createGuardrails(config(presets)).assessFunctionCall(oid).decision
    expect(decision.allow).toBe(allowed)
    if (!allowed) expect(decision).toMatchObject({ rule: oid === 955 || oid === 957 ? 'read-only' : BUILTIN_RULES.functionCall })
  })
})

describe('assessments', () => {
  it('are cached by text', () => {
    const guardrails = createGuardrails(config(['read-only']))
    expect(guardrails.assess('SELECT 1')).toBe(guardrails.assess('SELECT 1'))
    expect(guardrails.assessFunctionCall(952)).toBe(guardrails.assessFunctionCall(952))
  })

  it('give each statement its own text, also after multibyte characters', () => {
    const assessment = createGuardrails(config(['no-ddl'])).assess("SELECT 'grüße'; DROP TABLE x; SELECT '€'")
    expect(assessment.statements.map((each) => [each.text, each.decision.allow])).toEqual([
      ["SELECT 'grüße'", true],
      ['DROP TABLE x', false],
      ["SELECT '€'", true],
    ])
    expect(assessment.decision).toMatchObject({ allow: false, rule: 'no-ddl', message: 'DROP TABLE changes the schema' })
  })

  it('name the prepared statements a text defines, runs and drops', () => {
    const assessment = createGuardrails(config([])).assess('PREPARE a AS SELECT 1; EXECUTE a; EXECUTE "B"(1); DEALLOCATE a; DISCARD ALL')
    expect(assessment).toMatchObject({ prepares: ['a'], executes: ['a', 'B'], deallocates: ['a'], deallocatesAll: true })
  })

  it('refuse a statement too long to check on the event loop', () => {
    const long = `SELECT '${'x'.repeat(1024 * 1024)}'`
    expect(decide(config([]), long)).toMatchObject({ allow: false, rule: BUILTIN_RULES.unparseable, message: expect.stringContaining('1 MiB') })
  })

  it('allow an empty text (a comment-only Query)', () => {
    expect(decide(config(['read-only']), '-- nothing')).toEqual({ allow: true })
  })
})
