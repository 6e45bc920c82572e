import { describe, expect, it } from 'vitest'

import { SaltedPasswordCache, ScramClient, ScramError, type ScramErrorCode } from '../../../../src/protocols/postgres/scram.js'

/** RFC 7677 §3 test vector. */
const RFC = {
  password: 'pencil',
  username: 'user',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
}
const PROOF = 'dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='
const SERVER_NONCE = 'rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0'

function rfcClient(cache?: SaltedPasswordCache): ScramClient {
  return new ScramClient(RFC.password, {
    nonce: RFC.clientNonce,
    username: RFC.username,
    ...(cache === undefined ? {} : { saltedPasswordCache: cache }),
  })
}

/** A client that has sent its first message and awaits the server's. */
function started(options: { password?: string; nonce?: string } = {}): ScramClient {
  const client = new ScramClient(options.password ?? RFC.password, { nonce: options.nonce ?? RFC.clientNonce })
  client.clientFirstMessage()
  return client
}

function expectScramError(action: () => unknown, code: ScramErrorCode): void {
  let error: unknown
  try {
    action()
  } catch (caught) {
    error = caught
  }
  expect(error).toBeInstanceOf(ScramError)
  expect((error as ScramError).code).toBe(code)
}

describe('ScramClient', () => {
  it('reproduces the RFC 7677 test vector', () => {
    const client = rfcClient()
    expect(client.clientFirstMessage()).toBe(RFC.clientFirst)
    expect(client.handleServerFirst(RFC.serverFirst)).toBe(RFC.clientFinal)
    expect(() => client.verifyServerFinal(RFC.serverFinal)).not.toThrow()
  })

  it('sends an empty user name by default, as libpq does', () => {
    const client = new ScramClient('pencil', { nonce: 'abc' })
    expect(client.clientFirstMessage()).toBe('n,,n=,r=abc')
  })

  it('escapes , and = in a user name', () => {
    expect(new ScramClient('x', { nonce: 'abc', username: 'a,b=c' }).clientFirstMessage()).toBe('n,,n=a=2Cb=3Dc,r=abc')
  })

  it('makes a fresh printable nonce of 24 characters by default', () => {
    const first = new ScramClient('x').clientFirstMessage()
    const second = new ScramClient('x').clientFirstMessage()
    expect(first).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/)
    expect(first).not.toBe(second)
  })

  it('accepts server-first extensions after i= and server-final extensions after v=', () => {
    const client = rfcClient()
    client.clientFirstMessage()
    const final = client.handleServerFirst(`${RFC.serverFirst},x=future`)
    expect(final.startsWith(`c=biws,r=${SERVER_NONCE},p=`)).toBe(true)
    expect(final).not.toBe(RFC.clientFinal) // the extension is part of AuthMessage
  })

  it.each([
    ['server nonce does not start with the client nonce', `r=XOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['server nonce equals the client nonce', `r=${RFC.clientNonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['server nonce is a prefix of the client nonce', `r=rOprNG,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
  ])('rejects a nonce mismatch: %s', (_name, serverFirst) => {
    expectScramError(() => started().handleServerFirst(serverFirst), 'nonce-mismatch')
  })

  it.each([4095, 1, 0])('rejects %d iterations as too low', (iterations) => {
    const code: ScramErrorCode = iterations === 0 ? 'malformed' : 'iterations-too-low'
    expectScramError(() => started().handleServerFirst(`r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=${iterations}`), code)
  })

  it('reports a low iteration count in words', () => {
    let message = ''
    try {
      started().handleServerFirst(`r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000`)
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toContain('iterations too low')
  })

  it('rejects more iterations than maxIterations before running PBKDF2', () => {
    const client = new ScramClient('x', { nonce: 'abc', maxIterations: 10_000 })
    client.clientFirstMessage()
    expectScramError(() => client.handleServerFirst('r=abcdef,s=c2FsdA==,i=10001'), 'iterations-too-high')
  })

  /** Malformed server-first-messages, as data. */
  const BAD_SERVER_FIRST: [string, string][] = [
    ['empty', ''],
    ['garbage', 'hello'],
    ['attributes out of order', `s=W22ZaJ0SNY7soEsUEjb6gQ==,r=${SERVER_NONCE},i=4096`],
    ['missing salt', `r=${SERVER_NONCE},i=4096`],
    ['missing iterations', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==`],
    ['mandatory extension m=', `m=ext,r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['salt not base64', `r=${SERVER_NONCE},s=W22Z*J0SNY7soEsUEjb6gQ==,i=4096`],
    ['salt with bad padding', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096`],
    ['empty salt', `r=${SERVER_NONCE},s=,i=4096`],
    ['iterations not a number', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many`],
    ['iterations fractional', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096.5`],
    ['iterations with a sign', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096`],
    ['iterations negative', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096`],
    ['iterations with a space', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i= 4096`],
    ['iterations in hex', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0x1000`],
    ['iterations with a leading zero', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096`],
    ['iterations beyond 10 digits', `r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999`],
    ['empty attribute', `r=${SERVER_NONCE},,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
    ['attribute without =', `r=${SERVER_NONCE},s,i=4096`],
    ['server nonce with a non-printable byte', `r=${RFC.clientNonce}\u0001x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`],
  ]

  it.each(BAD_SERVER_FIRST)('rejects a malformed server-first-message: %s', (_name, serverFirst) => {
    expectScramError(() => started().handleServerFirst(serverFirst), 'malformed')
  })

  it('rejects a server signature that does not match', () => {
    const client = rfcClient()
    client.clientFirstMessage()
    client.handleServerFirst(RFC.serverFirst)
    expectScramError(() => client.verifyServerFinal('v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='), 'signature-mismatch')
  })

  it('rejects a server signature of the wrong length', () => {
    const client = rfcClient()
    client.clientFirstMessage()
    client.handleServerFirst(RFC.serverFirst)
    expectScramError(() => client.verifyServerFinal('v=AAAA'), 'signature-mismatch')
  })

  it('rejects the right signature computed for another password', () => {
    const client = rfcClient()
    const other = new ScramClient('pencil2', { nonce: RFC.clientNonce, username: RFC.username })
    client.clientFirstMessage()
    other.clientFirstMessage()
    expect(other.handleServerFirst(RFC.serverFirst)).not.toBe(RFC.clientFinal)
    expectScramError(() => other.verifyServerFinal(RFC.serverFinal), 'signature-mismatch')
  })

  it.each([
    ['e=invalid-proof', 'server-error'],
    ['e=other-error,x=1', 'server-error'],
    ['', 'malformed'],
    ['x=1', 'malformed'],
    ['v=not*base64', 'malformed'],
    ['v', 'malformed'],
  ] as [string, ScramErrorCode][])('rejects server-final %j with %s', (serverFinal, code) => {
    const client = rfcClient()
    client.clientFirstMessage()
    client.handleServerFirst(RFC.serverFirst)
    expectScramError(() => client.verifyServerFinal(serverFinal), code)
  })

  it.each([
    ['e=invalid-proof', 'invalid-proof'],
    ['e=whatever-the-server-says', 'unrecognised'],
  ])('names a known server error token, nothing else: %s', (serverFinal, expected) => {
    const client = rfcClient()
    client.clientFirstMessage()
    client.handleServerFirst(RFC.serverFirst)
    let message = ''
    try {
      client.verifyServerFinal(serverFinal)
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toContain(expected)
    expect(message).not.toContain('whatever')
  })

  it('enforces the order of the exchange', () => {
    expectScramError(() => new ScramClient('x').handleServerFirst(RFC.serverFirst), 'state')
    expectScramError(() => new ScramClient('x').verifyServerFinal(RFC.serverFinal), 'state')
    const client = rfcClient()
    client.clientFirstMessage()
    expectScramError(() => client.clientFirstMessage(), 'state')
    const done = rfcClient()
    done.clientFirstMessage()
    done.handleServerFirst(RFC.serverFirst)
    done.verifyServerFinal(RFC.serverFinal)
    expectScramError(() => done.verifyServerFinal(RFC.serverFinal), 'state')
  })

  it('ends the exchange after a failure', () => {
    const client = started()
    expectScramError(() => client.handleServerFirst('garbage'), 'malformed')
    expectScramError(() => client.handleServerFirst(RFC.serverFirst), 'state')
  })

  it.each(['', 'a,b', 'caf\u00e9', 'sp ace'])('refuses the client nonce %j', (nonce) => {
    expectScramError(() => new ScramClient('x', { nonce }), 'malformed')
  })

  it('never puts the password, the proof or the server signature in an error message', () => {
    const failures: (() => unknown)[] = [
      ...BAD_SERVER_FIRST.map(([, serverFirst]) => () => started().handleServerFirst(serverFirst)),
      () => started().handleServerFirst(`r=${SERVER_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100`),
      () => started().handleServerFirst(`r=XYZ,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`),
      ...['v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=', `e=${PROOF}`, `e=${RFC.password}`, `x=${PROOF}`].map(
        (serverFinal) => () => {
          const client = rfcClient()
          client.clientFirstMessage()
          client.handleServerFirst(RFC.serverFirst)
          client.verifyServerFinal(serverFinal)
        },
      ),
    ]
    for (const failure of failures) {
      let message: string | undefined
      try {
        failure()
      } catch (error) {
        expect(error).toBeInstanceOf(ScramError)
        message = (error as ScramError).message
      }
      expect(message).toBeDefined()
      expect(message).not.toContain(RFC.password)
      expect(message).not.toContain(PROOF)
      expect(message).not.toContain('6rriTRBi23WpRR')
    }
  })
})

describe('SaltedPasswordCache', () => {
  it('skips PBKDF2 for a second exchange with the same password, salt and iterations', () => {
    const cache = new SaltedPasswordCache()
    for (let i = 0; i < 3; i++) {
      const client = rfcClient(cache)
      client.clientFirstMessage()
      expect(client.handleServerFirst(RFC.serverFirst)).toBe(RFC.clientFinal)
      client.verifyServerFinal(RFC.serverFinal)
    }
    expect(cache.misses).toBe(1)
    expect(cache.hits).toBe(2)
    expect(cache.size).toBe(1)
  })

  it('computes again for another password, salt or iteration count', () => {
    const cache = new SaltedPasswordCache()
    const exchange = (password: string, salt: string, iterations: number): void => {
      const client = new ScramClient(password, { nonce: 'abc', saltedPasswordCache: cache })
      client.clientFirstMessage()
      client.handleServerFirst(`r=abcdef,s=${salt},i=${iterations}`)
    }
    exchange('pencil', 'c2FsdA==', 4096)
    exchange('pencil2', 'c2FsdA==', 4096)
    exchange('pencil', 'c2FsdDI=', 4096)
    exchange('pencil', 'c2FsdA==', 4097)
    expect(cache.misses).toBe(4)
    expect(cache.hits).toBe(0)
    exchange('pencil2', 'c2FsdA==', 4096)
    expect(cache.hits).toBe(1)
  })

  it('gives the same answer from the cache as without it', () => {
    const cache = new SaltedPasswordCache()
    const compute = (): Buffer => Buffer.from('salted')
    const password = Buffer.from('pencil')
    const salt = Buffer.from('salt')
    expect(cache.get(password, salt, 4096, compute).toString()).toBe('salted')
    expect(cache.get(password, salt, 4096, () => Buffer.from('other')).toString()).toBe('salted')
  })

  it('evicts the least recently used entry beyond maxEntries', () => {
    const cache = new SaltedPasswordCache({ maxEntries: 2 })
    let computed = 0
    const get = (password: string): Buffer =>
      cache.get(Buffer.from(password), Buffer.from('salt'), 4096, () => {
        computed++
        return Buffer.from(password)
      })
    get('a')
    get('b')
    get('a') // a is now the most recent
    get('c') // evicts b
    expect(cache.size).toBe(2)
    expect(computed).toBe(3)
    get('a')
    expect(computed).toBe(3)
    get('b')
    expect(computed).toBe(4)
  })

  it('holds 64 entries by default', () => {
    const cache = new SaltedPasswordCache()
    for (let i = 0; i < 100; i++) cache.get(Buffer.from(`p${i}`), Buffer.from('s'), 4096, () => Buffer.alloc(32))
    expect(cache.size).toBe(64)
  })

  it('keys entries by a digest, not by the password', () => {
    const cache = new SaltedPasswordCache()
    cache.get(Buffer.from('hunter2-secret'), Buffer.from('salt'), 4096, () => Buffer.alloc(32))
    const keys = [...(cache as unknown as { entries: Map<string, Buffer> }).entries.keys()]
    expect(keys).toHaveLength(1)
    expect(keys[0]).not.toContain('hunter2')
    expect(keys[0]).not.toContain(Buffer.from('hunter2-secret').toString('base64'))
  })

  it.each([0, -1, 1.5])('refuses maxEntries %d', (maxEntries) => {
    expect(() => new SaltedPasswordCache({ maxEntries })).toThrow(RangeError)
  })
})
