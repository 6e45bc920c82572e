/** Child processes of the real CLI (`node bin/run.js`), with their output captured for leak checks. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = fileURLToPath(new URL('../../', import.meta.url))
export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

/** Everything any child printed during the test file, so a test can assert no secret ever appeared. */
export const transcript: string[] = []

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  input?: string
  timeoutMs?: number
  cwd?: string
}

/**
 * The environment of a CLI child: this process's, without the Airlock settings a test did not pass
 * and without vitest's NODE_ENV=test. Under that, oclif would load commands/ through tsx from the
 * TypeScript sources (slower to start, about 75 MB more resident); without it the child runs the
 * built dist/ as a user's `airlock` does (`npm test` builds first; {@link assertBuilt}).
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  assertBuilt()
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...extra }
  for (const key of ['AIRLOCK_GATEWAY', 'AIRLOCK_TOKEN', 'AIRLOCK_CONFIG', 'NODE_ENV'] as const) {
    if (!(key in extra)) delete env[key]
  }
  return env
}

/** Runs `airlock ARGS` to completion. */
export async function airlock(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(options.env), cwd: options.cwd ?? REPO, stdio: ['pipe', 'pipe', 'pipe'] })
  const out = collect(child)
  child.stdin!.end(options.input ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000)
  const [code] = (await once(child, 'exit')) as [number | null]
  clearTimeout(timer)
  await out.done
  return { code, stdout: out.stdout(), stderr: out.stderr() }
}

export interface Spawned {
  child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first stdout line (parsed as JSON when possible) that satisfies `match`. */
  waitFor<T = Record<string, unknown>>(match: (line: T) => boolean, timeoutMs?: number): Promise<T>
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `airlock ARGS` in the background (a gateway, a `connect`). */
export function spawnAirlock(args: readonly string[], options: RunOptions = {}): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(options.env), cwd: options.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] })
  const out = collect(child)
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  return {
    child,
    stdout: out.stdout,
    stderr: out.stderr,
    waitFor: (match, timeoutMs = 60_000) => out.waitFor(match, timeoutMs),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const code = await exited
      await out.done
      return code
    },
  }
}

function collect(child: ChildProcess) {
  let stdout = ''
  let stderr = ''
  let pending = ''
  const waiters: { match: (line: any) => boolean; resolve: (line: any) => void }[] = []
  const seen: unknown[] = []
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    transcript.push(chunk)
    pending += chunk
    let newline: number
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline)
      pending = pending.slice(newline + 1)
      let line: unknown = text
      try {
        line = JSON.parse(text)
      } catch {
        // plain text line
      }
      seen.push(line)
      for (const waiter of [...waiters]) {
        if (waiter.match(line)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(line)
        }
      }
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
    transcript.push(chunk)
  })
  const done = Promise.all([once(child.stdout!, 'end'), once(child.stderr!, 'end')]).then(() => undefined)
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor: <T>(match: (line: T) => boolean, timeoutMs: number): Promise<T> => {
      const found = seen.find((line) => safeMatch(match, line))
      if (found !== undefined) return Promise.resolve(found as T)
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for output; stdout so far:\n${stdout}\nstderr:\n${stderr}`)), timeoutMs)
        waiters.push({
          match: (line) => safeMatch(match, line),
          resolve: (line) => {
            clearTimeout(timer)
            resolve(line as T)
          },
        })
        void once(child, 'exit').then(() => {
          clearTimeout(timer)
          reject(new Error(`process exited (${child.exitCode}) before the expected output; stdout:\n${stdout}\nstderr:\n${stderr}`))
        })
      })
    },
  }
}

function safeMatch(match: (line: any) => boolean, line: unknown): boolean {
  try {
    return match(line)
  } catch {
    return false
  }
}

/** Resident memory of a process in bytes, from /proc. */
export async function residentBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  if (match === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

let built = false

/**
 * CLI children run the built dist/, so a source newer than its build would test old code: the
 * first child of a test file stops the run with what to do (`npm test` builds first; a bare
 * `npx vitest` after an edit does not).
 */
export function assertBuilt(): void {
  if (built) return
  const stale: string[] = []
  for (const root of ['src', 'commands']) {
    for (const source of typeScriptFiles(join(REPO, root))) {
      const output = join(REPO, 'dist', relative(REPO, source).replace(/\.tsx?$/, '.js'))
      let builtAt = -1
      try {
        builtAt = statSync(output).mtimeMs
      } catch {
        // not built
      }
      if (builtAt < statSync(source).mtimeMs) stale.push(relative(REPO, source))
    }
  }
  if (stale.length > 0) {
    throw new Error(`dist/ is older than ${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`npm run build\` first (\`npm test\` does)`)
  }
  built = true
}

function* typeScriptFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* typeScriptFiles(path)
    else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) yield path
  }
}
