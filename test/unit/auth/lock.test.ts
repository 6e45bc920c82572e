/** The lock file that makes concurrent airlock processes run one login and one refresh. */
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { acquireLock } from '../../../src/auth/lock.js'
import { REPO } from '../../helpers/processes.js'

const lockPath = (): string => join(mkdtempSync(join(tmpdir(), 'airlock-lock-')), 'tokens.lock')

describe('lock file', () => {
  it('admits one holder at a time; a waiter gets it on release', async () => {
    const file = lockPath()
    const first = await acquireLock(file, { waitMs: 0 })
    expect(first).toBeDefined()
    expect(await acquireLock(file, { waitMs: 0 })).toBeUndefined()
    let waited = false
    const second = acquireLock(file, { waitMs: 10_000, onWait: () => (waited = true) })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await first!.release()
    const held = await second
    expect(held).toBeDefined()
    expect(waited).toBe(true)
    await held!.release()
    expect(existsSync(file)).toBe(false)
  })

  it('breaks a lock whose owner died, at once', async () => {
    const file = lockPath()
    const dead = spawnSync(process.execPath, ['-e', 'process.pid'], { stdio: 'ignore' })
    writeFileSync(file, JSON.stringify({ pid: dead.pid, host: hostname(), nonce: 'gone' }))
    const held = await acquireLock(file, { waitMs: 0 })
    expect(held).toBeDefined()
    await held!.release()
  })

  it('breaks a lock of another host only once it has not been touched for a while', async () => {
    const file = lockPath()
    writeFileSync(file, JSON.stringify({ pid: 1, host: 'another-host', nonce: 'remote' }))
    expect(await acquireLock(file, { waitMs: 0 })).toBeUndefined()
    const old = new Date(Date.now() - 120_000)
    utimesSync(file, old, old)
    const held = await acquireLock(file, { waitMs: 0 })
    expect(held).toBeDefined()
    await held!.release()
  })

  it('never removes a lock that is no longer its own', async () => {
    const file = lockPath()
    const held = await acquireLock(file, { waitMs: 0 })
    writeFileSync(file, JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'someone-else' }))
    await held!.release()
    expect(JSON.parse(readFileSync(file, 'utf8')).nonce).toBe('someone-else')
  })

  it('serialises real processes: no update is lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-lock-'))
    const counter = join(dir, 'counter')
    writeFileSync(counter, '0')
    const workers = Array.from({ length: 4 }, () =>
      spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/unit/auth/lock-worker.ts'), join(dir, 'lock'), counter, '15'], { cwd: REPO, stdio: 'inherit' }),
    )
    const codes = await Promise.all(workers.map(async (worker) => ((await once(worker, 'exit')) as [number])[0]))
    expect(codes).toEqual([0, 0, 0, 0])
    expect(readFileSync(counter, 'utf8')).toBe('60')
  }, 60_000)
})
