/**
 * SCRAM-SHA-256 client (RFC 5802, RFC 7677) as PostgreSQL uses it: no channel binding (gs2 header
 * `n,,`), and an empty user name, because the server takes the user from the StartupMessage.
 *
 *   gateway (ScramClient)                                  upstream
 *     │── SASLInitialResponse: n,,n=,r=<client nonce> ──────▶│
 *     │◀── SASLContinue: r=<client+server nonce>,s=<salt>,i=<iterations>
 *     │── SASLResponse: c=biws,r=<nonce>,p=<client proof> ──▶│
 *     │◀── SASLFinal: v=<server signature> | e=<error> ──────│
 *
 * SASLprep is not applied: the password's UTF-8 bytes are used as they are. That equals SASLprep
 * for printable ASCII, and it is what PostgreSQL itself does when a password does not survive
 * SASLprep; a non-ASCII password that SASLprep would change is out of scope.
 *
 * Errors never carry the password, keys or proofs.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'

/** Why a SCRAM exchange failed. */
export type ScramErrorCode =
  | 'state'
  | 'malformed'
  | 'nonce-mismatch'
  | 'iterations-too-low'
  | 'iterations-too-high'
  | 'server-error'
  | 'signature-mismatch'

/** A failed SCRAM exchange: a malformed or unacceptable server message, or a failed verification. */
export class ScramError extends Error {
  constructor(
    readonly code: ScramErrorCode,
    message: string,
  ) {
    super(message)
    this.name = new.target.name
  }
}

/** RFC 7677 §4: at least 4096 iterations. */
export const MIN_ITERATIONS = 4096
/** PBKDF2 runs synchronously; this bounds how long one exchange can hold the event loop. */
export const DEFAULT_MAX_ITERATIONS = 1_000_000
const KEY_LENGTH = 32
const DEFAULT_CACHE_ENTRIES = 64
/** base64("n,,"): the gs2 header without channel binding, echoed in client-final's `c=`. */
const GS2_HEADER = 'n,,'
const CHANNEL_BINDING = Buffer.from(GS2_HEADER).toString('base64')
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
/** RFC 5802 §7 server-error-value tokens. */
const SERVER_ERRORS = new Set([
  'invalid-encoding',
  'extensions-not-supported',
  'invalid-proof',
  'channel-bindings-dont-match',
  'server-does-support-channel-binding',
  'channel-binding-not-supported',
  'unsupported-channel-binding-type',
  'unknown-user',
  'invalid-username-encoding',
  'no-resources',
  'other-error',
])
/** RFC 5802 `printable`: %x21-2B / %x2D-7E, i.e. visible ASCII except ','. */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/

/**
 * SaltedPassword values by password digest, salt and iteration count, so that repeated
 * connections with the same credential skip PBKDF2. At most `maxEntries`, least recently used
 * evicted first. Keys hold an HMAC of the password under a random per-cache key, never the
 * password itself. Returned buffers are shared: do not modify them.
 */
export class SaltedPasswordCache {
  private readonly entries = new Map<string, Buffer>()
  private readonly keyKey = randomBytes(32)
  private readonly maxEntries: number
  private hitCount = 0
  private missCount = 0

  constructor(options: { maxEntries?: number } = {}) {
    const maxEntries = options.maxEntries ?? DEFAULT_CACHE_ENTRIES
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer')
    this.maxEntries = maxEntries
  }

  /** Lookups answered from the cache. */
  get hits(): number {
    return this.hitCount
  }

  /** Lookups that ran PBKDF2. */
  get misses(): number {
    return this.missCount
  }

  get size(): number {
    return this.entries.size
  }

  /** The SaltedPassword for these inputs, computed with `compute` only when not cached. */
  get(password: Buffer, salt: Buffer, iterations: number, compute: () => Buffer): Buffer {
    const key = `${createHmac('sha256', this.keyKey).update(password).digest('base64')}:${salt.toString('base64')}:${iterations}`
    const cached = this.entries.get(key)
    if (cached !== undefined) {
      this.hitCount++
      this.entries.delete(key)
      this.entries.set(key, cached)
      return cached
    }
    this.missCount++
    const value = compute()
    this.entries.set(key, value)
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
    return value
  }
}

/** Options of a {@link ScramClient}. */
export interface ScramClientOptions {
  /** The client nonce: printable ASCII without ','. Default: 18 random bytes, base64. */
  nonce?: string
  /** The SCRAM user name; PostgreSQL ignores it (default ''). */
  username?: string
  /** Shares PBKDF2 results across clients. */
  saltedPasswordCache?: SaltedPasswordCache
  /** Largest iteration count accepted from the server (default {@link DEFAULT_MAX_ITERATIONS}). */
  maxIterations?: number
}

type State =
  | { step: 'initial' }
  | { step: 'first-sent' }
  | { step: 'final-sent'; serverSignature: Buffer }
  | { step: 'done' }

/**
 * One SCRAM-SHA-256 exchange. Call `clientFirstMessage`, `handleServerFirst`, `verifyServerFinal`
 * in that order; each throws {@link ScramError} when the server's message is malformed or fails
 * verification, after which the exchange is over.
 */
export class ScramClient {
  private readonly password: Buffer
  private readonly nonce: string
  private readonly clientFirstBare: string
  private readonly cache: SaltedPasswordCache | undefined
  private readonly maxIterations: number
  private state: State = { step: 'initial' }

  constructor(password: string, options: ScramClientOptions = {}) {
    this.password = Buffer.from(password, 'utf8')
    this.nonce = options.nonce ?? randomBytes(18).toString('base64')
    if (!PRINTABLE.test(this.nonce)) throw new ScramError('malformed', 'client nonce must be printable ASCII without commas')
    this.clientFirstBare = `n=${escapeUsername(options.username ?? '')},r=${this.nonce}`
    this.cache = options.saltedPasswordCache
    this.maxIterations = options.maxIterations ?? DEFAULT_MAX_ITERATIONS
  }

  /** The client-first-message: `n,,n=<user>,r=<client nonce>`. */
  clientFirstMessage(): string {
    if (this.state.step !== 'initial') throw this.outOfOrder('initial')
    this.state = { step: 'first-sent' }
    return GS2_HEADER + this.clientFirstBare
  }

  /** Checks the server-first-message and returns the client-final-message with the proof. */
  handleServerFirst(serverFirst: string): string {
    if (this.state.step !== 'first-sent') throw this.outOfOrder('first-sent')
    this.state = { step: 'done' }
    const attributes = parseAttributes(serverFirst, 'server-first-message')
    // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
    const [nonce, salt, iterations] = attributes
    if (nonce?.[0] === 'm') throw new ScramError('malformed', 'server requires an unsupported SCRAM extension')
    if (nonce?.[0] !== 'r' || salt?.[0] !== 's' || iterations?.[0] !== 'i') {
      throw new ScramError('malformed', 'server-first-message lacks r=, s= or i= in order')
    }
    const serverNonce = nonce[1]
    if (!PRINTABLE.test(serverNonce)) throw new ScramError('malformed', 'server nonce is not printable ASCII')
    if (!serverNonce.startsWith(this.nonce) || serverNonce.length === this.nonce.length) {
      throw new ScramError('nonce-mismatch', 'server nonce does not extend the client nonce')
    }
    if (!BASE64.test(salt[1]) || salt[1] === '') throw new ScramError('malformed', 'salt is not valid base64')
    const saltBytes = Buffer.from(salt[1], 'base64')
    if (!/^[1-9][0-9]{0,9}$/.test(iterations[1])) throw new ScramError('malformed', 'iteration count is not a positive integer')
    const count = Number(iterations[1])
    if (count < MIN_ITERATIONS) {
      throw new ScramError('iterations-too-low', `iterations too low (${count} < ${MIN_ITERATIONS})`)
    }
    if (count > this.maxIterations) {
      throw new ScramError('iterations-too-high', `iterations too high (${count} > ${this.maxIterations})`)
    }

    const compute = (): Buffer => pbkdf2Sync(this.password, saltBytes, count, KEY_LENGTH, 'sha256')
    const saltedPassword = this.cache === undefined ? compute() : this.cache.get(this.password, saltBytes, count, compute)
    const clientKey = hmac(saltedPassword, 'Client Key')
    const storedKey = createHash('sha256').update(clientKey).digest()
    const serverKey = hmac(saltedPassword, 'Server Key')
    const withoutProof = `c=${CHANNEL_BINDING},r=${serverNonce}`
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`
    const clientSignature = hmac(storedKey, authMessage)
    const proof = Buffer.allocUnsafe(KEY_LENGTH)
    for (let i = 0; i < KEY_LENGTH; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!
    this.state = { step: 'final-sent', serverSignature: hmac(serverKey, authMessage) }
    return `${withoutProof},p=${proof.toString('base64')}`
  }

  /** Checks the server-final-message: `v=<signature>` must match, `e=<error>` fails. */
  verifyServerFinal(serverFinal: string): void {
    const state = this.state
    if (state.step !== 'final-sent') throw this.outOfOrder('final-sent')
    this.state = { step: 'done' }
    const attributes = parseAttributes(serverFinal, 'server-final-message')
    const [first] = attributes
    if (first?.[0] === 'e') {
      // Only the RFC's own tokens are repeated: anything else could be text the server chose.
      const value = SERVER_ERRORS.has(first[1]) ? first[1] : 'unrecognised error'
      throw new ScramError('server-error', `server reported SCRAM error: ${value}`)
    }
    if (first?.[0] !== 'v') throw new ScramError('malformed', 'server-final-message lacks v=')
    if (!BASE64.test(first[1])) throw new ScramError('malformed', 'server signature is not valid base64')
    const signature = Buffer.from(first[1], 'base64')
    if (signature.length !== state.serverSignature.length || !timingSafeEqual(signature, state.serverSignature)) {
      throw new ScramError('signature-mismatch', 'server signature does not match')
    }
  }

  private outOfOrder(expected: State['step']): ScramError {
    const actual = this.state.step
    this.state = { step: 'done' }
    return new ScramError('state', `SCRAM exchange is at step ${actual}, not ${expected}`)
  }
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/** RFC 5802 saslname: ',' and '=' are escaped as =2C and =3D. */
function escapeUsername(username: string): string {
  return username.replace(/=/g, '=3D').replace(/,/g, '=2C')
}

/** `a=value` pairs separated by ','; attribute names are single ASCII letters. */
function parseAttributes(message: string, what: string): [name: string, value: string][] {
  const attributes: [string, string][] = []
  for (const part of message.split(',')) {
    if (part.length < 2 || part[1] !== '=' || !/^[A-Za-z]$/.test(part[0]!)) {
      throw new ScramError('malformed', `${what} has a malformed attribute`)
    }
    attributes.push([part[0]!, part.slice(2)])
  }
  return attributes
}
