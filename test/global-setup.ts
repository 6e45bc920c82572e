/**
 * Before any test: the CLI children the integration tests start run the built dist/ (see
 * `childEnv` in helpers/processes.ts), so a source newer than its build would test old code.
 * `npm test` builds first; a bare `npx vitest` after an edit is stopped here with what to run.
 */
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { REPO } from './helpers/processes.js'

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* sources(path)
    else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path
  }
}

export default function checkBuild(): void {
  const stale: string[] = []
  for (const root of ['src', 'commands']) {
    for (const source of sources(join(REPO, root))) {
      const built = join(REPO, 'dist', relative(REPO, source).replace(/\.tsx?$/, '.js'))
      let builtAt: number
      try {
        builtAt = statSync(built).mtimeMs
      } catch {
        builtAt = -1
      }
      if (builtAt < statSync(source).mtimeMs) stale.push(relative(REPO, source))
    }
  }
  if (stale.length > 0) {
    throw new Error(`dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`npm run build\` first (\`npm test\` does)`)
  }
}
