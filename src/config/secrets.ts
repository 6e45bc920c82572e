/**
 * Secrets by reference: the configuration names where a secret lives, never the secret itself.
 * Only a `SecretSource` turns a reference into a value, and nothing it throws carries one.
 */

import { readFile } from 'node:fs/promises'

import { AirlockError } from '../errors.js'

/** Where a secret lives: an environment variable of the gateway process, or a file. */
export type SecretRef = { env: string } | { file: string }

/** Reads secrets by reference. */
export interface SecretSource {
  /**
   * The current value of the secret. File references are read again on every call, so a rotated
   * file takes effect on the next upstream connection.
   *
   * @throws AirlockError `config` naming the reference (never a value) when the secret is missing,
   *   unreadable or empty.
   */
  read(ref: SecretRef): Promise<string>
  /** The reference in words, e.g. `env PG_PASSWORD` or `file /run/secrets/pg`; never the value. */
  describe(ref: SecretRef): string
}

/** Whether `value` is a well-formed secret reference: exactly one of `env` or `file`, a non-empty string. */
export function isSecretRef(value: unknown): value is SecretRef {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const keys = Object.keys(value)
  if (keys.length !== 1) return false
  const [key] = keys
  if (key !== 'env' && key !== 'file') return false
  const target = (value as Record<string, unknown>)[key]
  return typeof target === 'string' && target.length > 0
}

/**
 * A `SecretSource` over an environment (the gateway's own by default) and the file system.
 * A file's value loses one trailing newline (`\n` or `\r\n`), as `echo secret > file` writes one.
 */
export function createSecretSource(env: NodeJS.ProcessEnv = process.env): SecretSource {
  const describe = (ref: SecretRef): string => ('env' in ref ? `env ${ref.env}` : `file ${ref.file}`)

  return {
    describe,
    async read(ref) {
      if ('env' in ref) {
        const value = env[ref.env]
        if (value === undefined) throw missing(`${describe(ref)} is not set`)
        if (value === '') throw missing(`${describe(ref)} is empty`)
        return value
      }
      let text: string
      try {
        text = await readFile(ref.file, 'utf8')
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        throw missing(`${describe(ref)} cannot be read${code === undefined ? '' : ` (${code})`}`)
      }
      const value = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text
      if (value === '') throw missing(`${describe(ref)} is empty`)
      // No environment variable, password or header can hold one, and errors downstream quote it.
      if (value.includes('\0')) throw missing(`${describe(ref)} holds a NUL byte, which no secret can`)
      return value
    },
  }
}

function missing(message: string): AirlockError {
  return new AirlockError('config', message, {
    hint: 'secrets are read by reference: set the variable or create the file the configuration names',
  })
}
