/**
 * The real CLI under a real pseudo-terminal (node-pty), as a person at a terminal runs it; and a
 * gateway process whose working directory is its config directory (so `./recordings` lands there).
 */
import { execFileSync } from 'node:child_process'
import { spawn as spawnPty, type IPty } from '@lydell/node-pty'
import { makeTokens, type TestGateway, type TestGatewayOptions, writeGatewayConfig } from './gateway.js'
import { assertBuilt, BIN, REPO, spawnAirlock, transcript } from './processes.js'

/** The OS user command connections run as in tests (created once, idempotently). */
export const SHELL_USER = 'airlock-shell-test'

export function ensureShellUser(): void {
  try {
    execFileSync('id', ['-u', SHELL_USER], { stdio: 'ignore' })
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', SHELL_USER], { stdio: 'ignore' })
  }
}

export async function startCommandGateway(options: TestGatewayOptions): Promise<TestGateway> {
  const tokens = makeTokens()
  const { dir, configFile } = writeGatewayConfig(options, tokens)
  const gateway = spawnAirlock(['gateway', 'serve', '--config', configFile], { env: options.env ?? {}, cwd: dir })
  // Generous: on a loaded 2-core machine a gateway can take tens of seconds to start.
  const listening = await gateway.waitFor<{ event?: string; url?: string }>((line) => line.event === 'gateway.listen', 90_000)
  const url = listening.url!
  return {
    url,
    tokens,
    configFile,
    dir,
    process: gateway,
    env: (who) => ({ AIRLOCK_GATEWAY: url, AIRLOCK_TOKEN: tokens[who] }),
    stop: () => gateway.stop('SIGTERM'),
  }
}

export interface PtyClient {
  pty: IPty
  /** Everything the terminal received, as bytes. */
  bytes(): Buffer
  text(): string
  write(data: string): void
  resize(cols: number, rows: number): void
  /** Resolves when the output since `from` (a byte offset, default 0) matches. */
  waitFor(pattern: RegExp | string, options?: { from?: number; timeoutMs?: number }): Promise<void>
  /** Resolves when the wrapper shell has printed the CLI's exit status and the terminal settings after it. */
  done(): Promise<{ status: number; stty: string }>
}

/**
 * Runs `airlock ARGS` in a shell under a pty; after the CLI exits, the shell prints its exit status
 * and `stty -a`, so a test can check the terminal was restored.
 */
export function runUnderPty(args: readonly string[], options: { env: NodeJS.ProcessEnv; cols?: number; rows?: number }): PtyClient {
  assertBuilt()
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', TERM: 'xterm-256color', LANG: 'C.UTF-8', NO_COLOR: '1' }
  for (const [name, value] of Object.entries(options.env)) if (value !== undefined) env[name] = value
  const script = '"$@"; status=$?; printf "\\n[airlock-exit %s]\\n" "$status"; stty -a; printf "[stty-end]\\n"'
  const pty = spawnPty('/bin/sh', ['-c', script, 'sh', process.execPath, BIN, ...args], {
    name: 'xterm-256color',
    cols: options.cols ?? 80,
    rows: options.rows ?? 24,
    cwd: REPO,
    env,
    encoding: null,
  })
  const chunks: Buffer[] = []
  let size = 0
  const waiters: (() => void)[] = []
  ;(pty.onData as unknown as (listener: (data: Buffer) => void) => void)((data) => {
    chunks.push(data)
    size += data.length
    transcript.push(data.toString('utf8'))
    for (const waiter of [...waiters]) waiter()
  })
  const exited = new Promise<void>((resolve) => pty.onExit(() => resolve()))
  const bytes = (): Buffer => Buffer.concat(chunks, size)
  const text = (): string => bytes().toString('utf8')

  const waitFor = (pattern: RegExp | string, { from = 0, timeoutMs = 60_000 } = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      const test = (): boolean => {
        const seen = bytes().subarray(from).toString('utf8')
        return typeof pattern === 'string' ? seen.includes(pattern) : pattern.test(seen)
      }
      if (test()) return resolve()
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1)
        reject(new Error(`timed out waiting for ${String(pattern)}; the terminal shows:\n${JSON.stringify(text().slice(-2000))}`))
      }, timeoutMs)
      const check = (): void => {
        if (!test()) return
        clearTimeout(timer)
        waiters.splice(waiters.indexOf(check), 1)
        resolve()
      }
      waiters.push(check)
    })

  return {
    pty,
    bytes,
    text,
    write: (data) => pty.write(data),
    resize: (cols, rows) => pty.resize(cols, rows),
    waitFor,
    done: async () => {
      await waitFor('[stty-end]', { timeoutMs: 90_000 })
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2_000))])
      const all = text()
      const match = /\[airlock-exit (\d+)\]/.exec(all)
      if (match === null) throw new Error(`no exit status in ${JSON.stringify(all.slice(-500))}`)
      return { status: Number(match[1]), stty: all.slice(match.index) }
    },
  }
}
