/**
 * A lock file shared by every `airlock` process of the user, so that concurrent processes run one
 * login flow and one token refresh: with refresh-token rotation and reuse detection, two processes
 * refreshing with the same refresh token would get the whole login revoked.
 *
 * The lock is a file created with O_EXCL holding the owner's pid, host and a nonce. The owner
 * touches it every few seconds; a lock whose owner is gone (same host, dead pid) or that has not
 * been touched for a while is stale and is broken by renaming it away, which only one process can do.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { link, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises'
import { hostname } from 'node:os'
import { AirlockError } from '../errors.js'

export interface LockOptions {
  /** How long to wait for another holder; 0 tries once. */
  waitMs: number
  /** Called once when the lock is busy and waiting starts. */
  onWait?: () => void
}

export interface HeldLock {
  release(): Promise<void>
}

const HEARTBEAT_MS = 5_000
const STALE_MS = 30_000
const POLL_MS = 75

interface Owner {
  pid: number
  host: string
  nonce: string
}

/** Takes the lock, waiting up to `waitMs`; `undefined` when another process still holds it then. */
export async function acquireLock(file: string, options: LockOptions): Promise<HeldLock | undefined> {
  const deadline = Date.now() + options.waitMs
  let announced = false
  for (;;) {
    const held = await tryCreate(file)
    if (held !== undefined) return held
    if (await breakIfStale(file)) continue
    if (Date.now() >= deadline) return undefined
    if (!announced) {
      announced = true
      options.onWait?.()
    }
    await sleep(POLL_MS + Math.floor(Math.random() * POLL_MS))
  }
}

/** Runs `fn` holding the lock; `unauthenticated` if another process holds it for longer than `waitMs`. */
export async function withLock<T>(file: string, options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, options)
  if (lock === undefined) {
    throw new AirlockError('unauthenticated', 'another airlock process is logging in or refreshing the same login and did not finish', {
      hint: `wait for it, or remove ${file} if no airlock process is running`,
    })
  }
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}

async function tryCreate(file: string): Promise<HeldLock | undefined> {
  const owner: Owner = { pid: process.pid, host: hostname(), nonce: randomBytes(12).toString('hex') }
  let handle
  try {
    handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw error
  }
  try {
    await handle.writeFile(JSON.stringify(owner))
  } finally {
    await handle.close()
  }
  const heartbeat = setInterval(() => {
    const now = new Date()
    utimes(file, now, now).catch(() => {})
  }, HEARTBEAT_MS)
  heartbeat.unref()
  let released = false
  return {
    release: async () => {
      if (released) return
      released = true
      clearInterval(heartbeat)
      // Only our own lock: if it was broken as stale meanwhile, the file is someone else's now.
      if ((await readOwner(file))?.nonce === owner.nonce) await unlink(file).catch(() => {})
    },
  }
}

async function breakIfStale(file: string): Promise<boolean> {
  let modified: number
  try {
    modified = (await stat(file)).mtimeMs
  } catch {
    return true
  }
  const owner = await readOwner(file)
  const dead = owner !== undefined && owner.host === hostname() && !alive(owner.pid)
  // A lock file still empty is being written by its owner; give it the usual grace.
  if (!dead && Date.now() - modified < STALE_MS) return false
  const aside = `${file}.stale-${randomBytes(6).toString('hex')}`
  try {
    await rename(file, aside)
  } catch {
    return true
  }
  const moved = await readOwner(aside)
  if (owner !== undefined && moved !== undefined && moved.nonce !== owner.nonce) {
    // We moved a lock taken after our check: put it back, unless yet another process holds one now.
    await link(aside, file).catch(() => {})
  }
  await unlink(aside).catch(() => {})
  return true
}

async function readOwner(file: string): Promise<Owner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<Owner>
    return typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.nonce === 'string'
      ? { pid: parsed.pid, host: parsed.host, nonce: parsed.nonce }
      : undefined
  } catch {
    return undefined
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
