/**
 * One error base class for all of Airlock, a stable string code per failure kind, and the single
 * map from code to process exit status (documented in the README). Tests assert codes, never
 * messages. Messages never carry a secret.
 */

export const EXIT_CODES = {
  /** The target reported an error (an SQL error; a remote command's own status is passed through instead). */
  target: 1,
  /** Usage, invalid input, or an unknown connection. */
  usage: 2,
  /** Invalid gateway configuration. */
  config: 2,
  /** Blocked by a guardrail. */
  blocked: 3,
  /** Not logged in, or the token expired/was rejected and cannot be refreshed. */
  unauthenticated: 4,
  /** The identity lacks access to the connection or to an admin route. */
  forbidden: 5,
  /** The gateway cannot be reached. */
  'gateway-unreachable': 6,
  /** The gateway and this CLI do not speak the same tunnel protocol. */
  incompatible: 6,
  /** The gateway could not reach or authenticate to the upstream service. */
  'upstream-unavailable': 7,
  /** A limit was hit (session cap, rate limit, session duration, draining gateway). */
  limit: 7,
  /** A bug or an unexpected condition inside Airlock. */
  internal: 8,
  /** The tunnel dropped while a passed-through command was running. */
  'tunnel-dropped': 255,
} as const

export type ErrorCode = keyof typeof EXIT_CODES

export interface AirlockErrorOptions {
  cause?: unknown
  /** What the user can do next, e.g. "run `airlock login`". */
  hint?: string
}

export class AirlockError extends Error {
  readonly hint: string | undefined

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: AirlockErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.hint = options.hint
  }

  get exitCode(): number {
    return EXIT_CODES[this.code]
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint }
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(EXIT_CODES, value)
}

/** Any thrown value as an AirlockError; unknown failures become `internal` without their text. */
export function toAirlockError(error: unknown): AirlockError {
  if (error instanceof AirlockError) return error
  return new AirlockError('internal', 'internal error', { cause: error })
}
