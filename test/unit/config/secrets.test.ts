import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { describe, expect, it } from 'vitest'

import { createSecretSource, isSecretRef } from '../../../src/config/index.js'
import { AirlockError } from '../../../src/errors.js'

const VALUE = 's3cr3t-Value-That-Must-Not-Leak'

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'airlock-secrets-'))
}

async function readError(read: Promise<string>): Promise<AirlockError> {
  const error: unknown = await read.then(
    () => undefined,
    (rejected: unknown) => rejected,
  )
  expect(error).toBeInstanceOf(AirlockError)
  return error as AirlockError
}

describe('createSecretSource', () => {
  it('reads an env reference from the given environment', async () => {
    const secrets = createSecretSource({ PG_PASSWORD: VALUE })
    await expect(secrets.read({ env: 'PG_PASSWORD' })).resolves.toBe(VALUE)
  })

  it('reads the environment at every call', async () => {
    const env: NodeJS.ProcessEnv = { TOKEN: 'first' }
    const secrets = createSecretSource(env)
    await expect(secrets.read({ env: 'TOKEN' })).resolves.toBe('first')
    env['TOKEN'] = 'second'
    await expect(secrets.read({ env: 'TOKEN' })).resolves.toBe('second')
  })

  it.each<[string, NodeJS.ProcessEnv, string]>([
    ['unset', {}, 'env AIRLOCK_X is not set'],
    ['empty', { AIRLOCK_X: '' }, 'env AIRLOCK_X is empty'],
  ])('rejects an %s env var by naming the reference', async (_case, env, message) => {
    const error = await readError(createSecretSource(env).read({ env: 'AIRLOCK_X' }))
    expect(error.code).toBe('config')
    expect(error.message).toBe(message)
  })

  it.each<[string, string]>([
    ['a trailing newline', `${VALUE}\n`],
    ['a trailing CRLF', `${VALUE}\r\n`],
    ['no trailing newline', VALUE],
  ])('reads a file with %s', async (_case, content) => {
    const file = join(tempDir(), 'secret')
    writeFileSync(file, content)
    await expect(createSecretSource({}).read({ file })).resolves.toBe(VALUE)
  })

  it('strips only one trailing newline', async () => {
    const file = join(tempDir(), 'secret')
    writeFileSync(file, `${VALUE}\n\n`)
    await expect(createSecretSource({}).read({ file })).resolves.toBe(`${VALUE}\n`)
  })

  it('re-reads a file after it changes', async () => {
    const file = join(tempDir(), 'secret')
    const secrets = createSecretSource({})
    writeFileSync(file, 'before\n')
    await expect(secrets.read({ file })).resolves.toBe('before')
    writeFileSync(file, 'after\n')
    await expect(secrets.read({ file })).resolves.toBe('after')
  })

  it('rejects a missing file by naming it', async () => {
    const file = join(tempDir(), 'absent')
    const error = await readError(createSecretSource({}).read({ file }))
    expect(error.code).toBe('config')
    expect(error.message).toBe(`file ${file} cannot be read (ENOENT)`)
  })

  it.each<[string, string]>([
    ['empty', ''],
    ['only a newline', '\n'],
  ])('rejects a file that is %s', async (_case, content) => {
    const file = join(tempDir(), 'secret')
    writeFileSync(file, content)
    const error = await readError(createSecretSource({}).read({ file }))
    expect(error.code).toBe('config')
    expect(error.message).toBe(`file ${file} is empty`)
  })

  it('rejects a file holding a NUL byte, without quoting it', async () => {
    const file = join(tempDir(), 'secret')
    writeFileSync(file, 'FileSecret_NUL_77\0tail\n')
    const error = await readError(createSecretSource({}).read({ file }))
    expect(error.code).toBe('config')
    expect(error.message).toBe(`file ${file} holds a NUL byte, which no secret can`)
    expect(JSON.stringify(error)).not.toContain('FileSecret')
  })

  it('describes references without reading them', () => {
    const secrets = createSecretSource({ PG_PASSWORD: VALUE })
    expect(secrets.describe({ env: 'PG_PASSWORD' })).toBe('env PG_PASSWORD')
    expect(secrets.describe({ file: '/run/secrets/pg' })).toBe('file /run/secrets/pg')
  })
})

describe('isSecretRef', () => {
  it.each<[unknown, boolean]>([
    [{ env: 'PG_PASSWORD' }, true],
    [{ file: '/run/secrets/pg' }, true],
    [{ env: '' }, false],
    [{ env: 'A', file: '/b' }, false],
    [{ env: 1 }, false],
    [{ evn: 'A' }, false],
    ['hunter2', false],
    [null, false],
    [[{ env: 'A' }], false],
  ])('%j → %s', (value, expected) => {
    expect(isSecretRef(value)).toBe(expected)
  })
})
