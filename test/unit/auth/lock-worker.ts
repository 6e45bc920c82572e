/** A separate process for lock.test.ts: increments a counter file `rounds` times, each under the lock. */
import { readFileSync, writeFileSync } from 'node:fs'
import { withLock } from '../../../src/auth/lock.js'

const [lockFile, counterFile, rounds] = process.argv.slice(2) as [string, string, string]
for (let round = 0; round < Number(rounds); round++) {
  await withLock(lockFile, { waitMs: 60_000 }, async () => {
    const value = Number(readFileSync(counterFile, 'utf8'))
    await new Promise((resolve) => setTimeout(resolve, 1))
    writeFileSync(counterFile, String(value + 1))
  })
}
