/**
 * Where the CLI keeps tokens: the OS keychain (macOS Keychain, Windows Credential Manager, the
 * Secret Service on Linux) through @napi-rs/keyring, or private files when no keychain is usable.
 *
 * A keychain is trusted only after a write/read/delete round trip: on headless Linux without an
 * unlocked Secret Service, reads may return nothing without an error, and tokens "stored" there
 * would silently vanish. On Linux the Secret Service is required explicitly; the kernel keyring
 * fallback of the library does not survive a logout or a reboot.
 */
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { AirlockError } from '../errors.js'
import { checkPrivateDir, ensurePrivateDir, readPrivateFile, removePrivateFile, writePrivateFile } from './private-files.js'

export type TokenStoreKind = 'keychain' | 'file'

/** A small key → secret string map. Values are never logged or printed. */
export interface TokenStore {
  readonly kind: TokenStoreKind
  /** Where the values are, for `airlock status`: "OS keychain" or a directory. */
  readonly location: string
  get(key: string): Promise<string | undefined>
  set(key: string, value: string): Promise<void>
  delete(key: string): Promise<boolean>
}

const SERVICE = 'airlock'
/** Keychain calls can block on an unlock prompt; a person needs time, a dead D-Bus does not get forever. */
const KEYCHAIN_TIMEOUT_MS = 60_000

type KeyringModule = typeof import('@napi-rs/keyring')

export class KeychainTokenStore implements TokenStore {
  readonly kind = 'keychain'
  readonly location = 'OS keychain'

  private constructor(private readonly keyring: KeyringModule) {}

  /** The keychain if a round trip works, else why not. */
  static async open(): Promise<{ store: KeychainTokenStore } | { reason: string }> {
    let keyring: KeyringModule
    try {
      keyring = await import('@napi-rs/keyring')
    } catch {
      return { reason: 'the keychain library cannot be loaded on this platform' }
    }
    const store = new KeychainTokenStore(keyring)
    const probe = `probe-${randomBytes(8).toString('hex')}`
    const value = randomBytes(16).toString('base64url')
    try {
      await store.set(probe, value)
      const read = await store.get(probe)
      if (read !== value) {
        await store.delete(probe).catch(() => false)
        return { reason: 'the keychain accepted a value but did not return it (no unlocked keyring?)' }
      }
    } catch (error) {
      await store.delete(probe).catch(() => false)
      return { reason: keychainProblem(error) }
    }
    // A keychain that cannot delete would keep tokens after `airlock logout`.
    try {
      if (!(await store.delete(probe))) return { reason: 'the keychain stored a value but did not delete it' }
    } catch (error) {
      return { reason: keychainProblem(error) }
    }
    return { store }
  }

  /** The keychain without a probe: for reading tokens a previous login stored there. */
  static async reopen(): Promise<KeychainTokenStore> {
    try {
      return new KeychainTokenStore(await import('@napi-rs/keyring'))
    } catch (error) {
      throw unusableKeychain(error)
    }
  }

  async get(key: string): Promise<string | undefined> {
    return guarded(async () => (await this.entry(key).getPassword(AbortSignal.timeout(KEYCHAIN_TIMEOUT_MS))) ?? undefined)
  }

  async set(key: string, value: string): Promise<void> {
    await guarded(() => this.entry(key).setPassword(value, AbortSignal.timeout(KEYCHAIN_TIMEOUT_MS)))
  }

  async delete(key: string): Promise<boolean> {
    return guarded(() => this.entry(key).deletePassword(AbortSignal.timeout(KEYCHAIN_TIMEOUT_MS)))
  }

  private entry(key: string): InstanceType<KeyringModule['AsyncEntry']> {
    return new this.keyring.AsyncEntry(SERVICE, key, process.platform === 'linux' ? { linux: { store: 'secret-service' } } : undefined)
  }
}

/** One 0600 file per key in a 0700 directory; the key is hashed into the file name. */
export class FileTokenStore implements TokenStore {
  readonly kind = 'file'

  constructor(readonly location: string) {}

  async get(key: string): Promise<string | undefined> {
    if (!(await checkPrivateDir(this.location))) return undefined
    const text = await readPrivateFile(this.fileFor(key))
    if (text === undefined) return undefined
    let parsed: { key?: unknown; value?: unknown }
    try {
      parsed = JSON.parse(text) as typeof parsed
    } catch {
      return undefined
    }
    return parsed.key === key && typeof parsed.value === 'string' ? parsed.value : undefined
  }

  async set(key: string, value: string): Promise<void> {
    await ensurePrivateDir(this.location)
    await writePrivateFile(this.fileFor(key), JSON.stringify({ key, value }))
  }

  async delete(key: string): Promise<boolean> {
    if (!(await checkPrivateDir(this.location))) return false
    return removePrivateFile(this.fileFor(key))
  }

  fileFor(key: string): string {
    return join(this.location, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`)
  }
}

export interface SelectedStore {
  store: TokenStore
  /** Why the keychain was not used, when the file store was chosen without being asked for. */
  fallbackReason?: string
}

/**
 * The store for a new login: `AIRLOCK_TOKEN_STORE=keychain|file` if set, else the keychain when
 * its round trip works, else the file store (and why).
 */
export async function selectTokenStore(configDir: string, env: NodeJS.ProcessEnv = process.env): Promise<SelectedStore> {
  const forced = env.AIRLOCK_TOKEN_STORE?.trim()
  if (forced === 'file') return { store: fileStore(configDir) }
  if (forced !== undefined && forced !== '' && forced !== 'keychain') {
    throw new AirlockError('usage', 'AIRLOCK_TOKEN_STORE must be keychain or file', { hint: 'unset it to let airlock choose' })
  }
  const keychain = await KeychainTokenStore.open()
  if ('store' in keychain) return { store: keychain.store }
  if (forced === 'keychain') {
    throw new AirlockError('usage', `AIRLOCK_TOKEN_STORE=keychain, but the OS keychain is not usable: ${keychain.reason}`, {
      hint: 'unlock the keyring (on Linux a Secret Service such as gnome-keyring on the D-Bus session), or set AIRLOCK_TOKEN_STORE=file',
    })
  }
  return { store: fileStore(configDir), fallbackReason: keychain.reason }
}

/** The store a previous login used. */
export async function openTokenStore(kind: TokenStoreKind, configDir: string): Promise<TokenStore> {
  return kind === 'file' ? fileStore(configDir) : KeychainTokenStore.reopen()
}

function fileStore(configDir: string): FileTokenStore {
  return new FileTokenStore(join(configDir, 'tokens'))
}

/** Native keychain failures become one `unauthenticated` error that says what to do. */
async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation()
  } catch (error) {
    throw error instanceof AirlockError ? error : unusableKeychain(error)
  }
}

function keychainProblem(error: unknown): string {
  if (error instanceof AirlockError && error.cause !== undefined) return keychainProblem(error.cause)
  const message = error instanceof Error ? error.message : String(error)
  if (/DBUS_SESSION_BUS_ADDRESS|D-?Bus/i.test(message)) return 'no D-Bus session with a Secret Service (headless or SSH session?)'
  if (/locked/i.test(message)) return 'the keyring is locked'
  if (/abort|timeout/i.test(message)) return 'the keychain did not answer'
  return 'the keychain refused access'
}

function unusableKeychain(error: unknown): AirlockError {
  return new AirlockError('unauthenticated', `the OS keychain holding your login is not usable here: ${keychainProblem(error)}`, {
    hint: 'run `airlock login` again from this session (tokens then go to a private file if no keychain works), or set AIRLOCK_TOKEN_STORE=file',
    cause: error,
  })
}
