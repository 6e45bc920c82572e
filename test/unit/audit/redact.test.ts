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
  ])('%s', (_, text, expected, detectors) => {
    expect(redactor.redact(text)).toEqual({ text: expected, redacted: detectors })
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

  it('redacts the canary in free text', () => {
    expect(redactor.redactSecrets(`could not connect: ${CANARY}`)).toBe('could not connect: [REDACTED:credential]')
  })

  it('redacts an unterminated literal to its end', () => {
    expect(redactor.redact("alter role x password 'abc").text).toBe("alter role x password '[REDACTED:secret-assignment]")
  })
})
