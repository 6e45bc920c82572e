import { readFileSync } from 'node:fs'

/** This package's version, found by walking up from this file (the same from `src/` and `dist/src/`). */
export const VERSION: string = (() => {
  let dir = new URL('.', import.meta.url)
  for (let depth = 0; depth < 4; depth++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'airlock' && typeof pkg.version === 'string') return pkg.version
    } catch {
      // not here; go up
    }
    dir = new URL('..', dir)
  }
  return '0.0.0'
})()
