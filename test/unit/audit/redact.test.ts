import { describe, expect, it } from 'vitest'
import { createRedactor } from '../../../src/audit/redact.js'

const CANARY = "p@ss'w0rd/Held+Secret=="

describe('createRedactor', () => {
  const redactor = createRedactor([CANARY])
  const b64 = Buffer.from(CANARY).toString('base64')
  const hex = Buffer.from(CANARY).toString('hex')

  it.each([
    ['plain statements untouched', 'SELECT abalance FROM pgbench_accounts WHERE aid = 1', 'SELECT abalance FROM pgbench_accounts WHERE aid = 1', []],
    ['ALTER ROLE ... PASSWORD', "ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '[REDACTED:secret-assignment]'", ['secret-assignment']],
    ['WITH ENCRYPTED PASSWORD', "create user bob with encrypted password 'x''y'", "create user bob with encrypted password '[REDACTED:secret-assignment]'", ['secret-assignment']],
    ['dollar-quoted password', 'ALTER USER bob PASSWORD $pw$s3cr3t$pw$', 'ALTER USER bob PASSWORD $pw$[REDACTED:secret-assignment]$pw$', ['secret-assignment']],
    ['E-string password', "alter role bob password E'a\\'b'", "alter role bob password E'[REDACTED:secret-assignment]'", ['secret-assignment']],
    ['user mapping options', "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'pw')", "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '[REDACTED:secret-assignment]')", ['secret-assignment']],
    ['a secret-named setting', "SET app.api_token = 'tok-123'", "SET app.api_token = '[REDACTED:secret-assignment]'", ['secret-assignment']],
    ['set_config of a secret setting', "select set_config('app.secret', 'v', false)", "select set_config('app.secret', '[REDACTED:secret-assignment]', false)", ['secret-assignment']],
    ['a conninfo password', "select dblink_connect('host=db user=u password=pw1 dbname=x')", "select dblink_connect('host=db user=u password=[REDACTED:dsn-password] dbname=x')", ['dsn-password']],
    ['a URL password', "select 'postgresql://u:pw2@db/x'", "select 'postgresql://u:[REDACTED:dsn-password]@db/x'", ['dsn-password']],
    ['a JWT in a comment', 'select 1 -- eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', 'select 1 -- [REDACTED:jwt]', ['jwt']],
    ['an AWS key id', "insert into t values ('AKIAIOSFODNN7EXAMPLE')", "insert into t values ('[REDACTED:cloud-keys]')", ['cloud-keys']],
    ['a GitHub token', "select 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'", "select '[REDACTED:api-keys]'", ['api-keys']],
    ['a private key', "select '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----'", "select '[REDACTED:private-key]'", ['private-key']],
    ['a password column compared to a literal', "select * from users where password = 'x'", "select * from users where password = '[REDACTED:secret-assignment]'", ['secret-assignment']],
    ['the word in a string is not a keyword', "select 'password' as label", "select 'password' as label", []],
    ['quoted identifiers are words', `ALTER ROLE "Bob" PASSWORD 'z'`, `ALTER ROLE "Bob" PASSWORD '[REDACTED:secret-assignment]'`, ['secret-assignment']],
    ['a conninfo password quoted inside the literal', "select dblink_connect('host=x password=''Leak7 dsn'' dbname=y')", "select dblink_connect('host=x password=[REDACTED:dsn-password] dbname=y')", ['dsn-password']],
    ['a conninfo password holding ; and &', "select dblink_connect('host=x password=Ab;cd&LEAKTAIL dbname=y')", "select dblink_connect('host=x password=[REDACTED:dsn-password] dbname=y')", ['dsn-password']],
    ['an unquoted value set to a secret setting', 'SET app.password = hunter2', 'SET app.password = [REDACTED:secret-assignment]', ['secret-assignment']],
    ['an unquoted value set with TO', 'ALTER ROLE bob SET app.api_token TO abc123', 'ALTER ROLE bob SET app.api_token TO [REDACTED:secret-assignment]', ['secret-assignment']],
    ['a quoted identifier as the value', 'SET SESSION app.secret = "Quoted-Ident"', 'SET SESSION app.secret = [REDACTED:secret-assignment]', ['secret-assignment']],
    ['a function assigned to a password column is no value', "UPDATE users SET password = crypt('x', gen_salt('bf'))", "UPDATE users SET password = crypt('[REDACTED:secret-assignment]', gen_salt('[REDACTED:secret-assignment]'))", ['secret-assignment']],
    ['a password continued in a second literal', "CREATE ROLE lk2 PASSWORD 'abc'\n'Leak2_concat'", "CREATE ROLE lk2 PASSWORD '[REDACTED:secret-assignment]'\n'[REDACTED:secret-assignment]'", ['secret-assignment']],
    ['a line comment ended by a carriage return', "CREATE ROLE lk1 PASSWORD --x\r'Leak1_CRcomment'", "CREATE ROLE lk1 PASSWORD --x\r'[REDACTED:secret-assignment]'", ['secret-assignment']],
  ])('%s', (_, text, expected, detectors) => {
    expect(redactor.redact(text)).toEqual({ text: expected, redacted: detectors })
  })

  it('reads plain strings with backslash escapes when the session has standard_conforming_strings off', () => {
    const text = "CREATE ROLE lk5 PASSWORD 'ab\\'Leak6_scs'"
    expect(redactor.redact(text, { backslashEscapes: true })).toEqual({ text: "CREATE ROLE lk5 PASSWORD '[REDACTED:secret-assignment]'", redacted: ['secret-assignment'] })
    // Read the standard way, the backslash ends nothing: the quote after it closes the literal.
    expect(redactor.redact(text).text).toContain('Leak6_scs')
  })

  /**
   * Passwords the redactor once let through, kept as data: each row's secret must be gone from the
   * text, the detector named, and the statement otherwise recorded as sent.
   */
  const NESTED_AND_PREFIXED: [name: string, text: string, expected: string, secret: string][] = [
    [
      'EXECUTE string inside a DO body',
      "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''pw-do-1'''; END $$",
      "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ''[REDACTED:secret-assignment]'''; END $$",
      'pw-do-1',
    ],
    [
      'EXECUTE string inside a tagged DO body',
      "do $body$ begin execute 'create role r login password ''pw-do-2'''; end $body$",
      "do $body$ begin execute 'create role r login password ''[REDACTED:secret-assignment]'''; end $body$",
      'pw-do-2',
    ],
    [
      'EXECUTE with the password concatenated',
      "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ' || quote_literal('pw-concat'); END $$",
      "DO $$ BEGIN EXECUTE 'ALTER ROLE x PASSWORD ' || quote_literal('[REDACTED:secret-assignment]'); END $$",
      'pw-concat',
    ],
    [
      // Every argument after such a template: which one fills the password is not counted.
      'EXECUTE format with the password as %L',
      "DO $$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', 'x', 'pw-format'); END $$",
      "DO $$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', '[REDACTED:secret-assignment]', '[REDACTED:secret-assignment]'); END $$",
      'pw-format',
    ],
    [
      'a function body',
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ ALTER ROLE x PASSWORD 'pw-fn' $$",
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ ALTER ROLE x PASSWORD '[REDACTED:secret-assignment]' $$",
      'pw-fn',
    ],
    [
      'a function body in a plain string',
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'ALTER ROLE x PASSWORD ''pw-fn-2'''",
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'ALTER ROLE x PASSWORD ''[REDACTED:secret-assignment]'''",
      'pw-fn-2',
    ],
    [
      'an E-string body with backslash quotes',
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS E'ALTER ROLE x PASSWORD \\'pw-e-body\\''",
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS E'ALTER ROLE x PASSWORD ''[REDACTED:secret-assignment]'''",
      'pw-e-body',
    ],
    ["a U&'' password", "ALTER ROLE x PASSWORD U&'pw-unicode'", "ALTER ROLE x PASSWORD U&'[REDACTED:secret-assignment]'", 'pw-unicode'],
    ["a u&'' password with escapes", "alter role x password u&'pw\\0041-esc'", "alter role x password u&'[REDACTED:secret-assignment]'", 'pw\\0041-esc'],
    ["an N'' password", "ALTER ROLE x PASSWORD N'pw-national'", "ALTER ROLE x PASSWORD N'[REDACTED:secret-assignment]'", 'pw-national'],
    ['crypt', "SELECT crypt('pw-crypt', gen_salt('bf'))", "SELECT crypt('[REDACTED:secret-assignment]', gen_salt('[REDACTED:secret-assignment]'))", 'pw-crypt'],
    [
      'crypt in a comparison',
      "select 1 from users where hash = public.crypt('pw-check', hash)",
      "select 1 from users where hash = public.crypt('[REDACTED:secret-assignment]', hash)",
      'pw-check',
    ],
    [
      'pgp_sym_encrypt',
      "INSERT INTO t VALUES (pgp_sym_encrypt('data', 'pw-pgp'))",
      "INSERT INTO t VALUES (pgp_sym_encrypt('[REDACTED:secret-assignment]', '[REDACTED:secret-assignment]'))",
      'pw-pgp',
    ],
    [
      'pgp_sym_decrypt with options',
      "select pgp_sym_decrypt(col, 'pw-pgp-2', 'cipher-algo=aes256') from t",
      "select pgp_sym_decrypt(col, '[REDACTED:secret-assignment]', '[REDACTED:secret-assignment]') from t",
      'pw-pgp-2',
    ],
    ['hmac', "select hmac(body, 'key-hmac', 'sha256') from t", "select hmac(body, '[REDACTED:secret-assignment]', '[REDACTED:secret-assignment]') from t", 'key-hmac'],
    ['encrypt', "select encrypt('x', 'key-enc', 'aes')", "select encrypt('[REDACTED:secret-assignment]', '[REDACTED:secret-assignment]', '[REDACTED:secret-assignment]')", 'key-enc'],
    [
      'only the call is secret, not what follows it',
      "select crypt('pw-only', s), 'kept' from t",
      "select crypt('[REDACTED:secret-assignment]', s), 'kept' from t",
      'pw-only',
    ],
  ]

  it.each(NESTED_AND_PREFIXED)('redacts %s', (_, text, expected, secret) => {
    const result = redactor.redact(text)
    expect(result.text).not.toContain(secret)
    expect(result).toEqual({ text: expected, redacted: ['secret-assignment'] })
  })

  it('leaves SQL inside literals alone when it holds no secret', () => {
    const text = "DO $$ BEGIN EXECUTE 'UPDATE t SET note = ''passing'''; END $$"
    expect(redactor.redact(text)).toEqual({ text, redacted: [] })
  })

  it.each([
    ['raw', CANARY],
    ['SQL-quoted', CANARY.replaceAll("'", "''")],
    ['base64', b64],
    ['base64 unpadded', b64.replace(/=+$/, '')],
    ['base64url', Buffer.from(CANARY).toString('base64url')],
    ['hex', hex],
    ['HEX', hex.toUpperCase()],
    ['percent-encoded', encodeURIComponent(CANARY)],
  ])('removes the connection secret %s, anywhere', (_, form) => {
    const { text, redacted } = redactor.redact(`select 1 /* ${form} */, '${form}', "${form}"`)
    expect(text).not.toContain(form)
    expect(text).not.toContain(CANARY)
    expect(redacted).toContain('credential')
  })

  it.each([
    ["E'' hex escapes", `E'${[...Buffer.from(CANARY)].map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('')}'`],
    ["E'' octal escapes", `e'${[...Buffer.from(CANARY)].map((byte) => `\\${byte.toString(8).padStart(3, '0')}`).join('')}'`],
    ["E'' with a backslashed quote", `E'${CANARY.replaceAll("'", "\\'")}'`],
    ["U&'' escapes", `U&'${[...CANARY].map((c) => `\\${c.codePointAt(0)!.toString(16).padStart(4, '0')}`).join('')}'`],
    ["U&'' with some characters escaped", `u&'${CANARY.replace('p', '\\0070').replaceAll("'", "''")}'`],
  ])('removes the connection secret spelt with %s', (_, literal) => {
    const { text, redacted } = redactor.redact(`select length(${literal}) as n`)
    expect(text).toMatch(/^select length\((?:E|e|U&|u&)'\[REDACTED:credential\]'\) as n$/)
    expect(redacted).toContain('credential')
  })

  it('leaves escaped literals that do not decode to the secret', () => {
    const text = "select E'\\x41\\n', U&'\\0041'"
    expect(redactor.redact(text)).toEqual({ text, redacted: [] })
  })

  it('redacts the canary in free text', () => {
    expect(redactor.redactSecrets(`could not connect: ${CANARY}`)).toBe('could not connect: [REDACTED:credential]')
  })

  it('redacts an unterminated literal to its end', () => {
    expect(redactor.redact("alter role x password 'abc").text).toBe("alter role x password '[REDACTED:secret-assignment]")
  })
})
