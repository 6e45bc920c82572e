/**
 * Every process the benchmark starts goes through here, so every one of them can be stopped: on a
 * normal end, on an error, on Ctrl-C (see `stopAllNow`), and, where util-linux `setpriv` exists,
 * by the kernel when the benchmark itself dies (PR_SET_PDEATHSIG). `setpriv` execs, so the pid we
 * hold is the program's own pid, whose /proc/PID/stat we read for CPU time.
 */
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

export interface CommandSpec {
  command: string
  args: readonly string[]
  env: NodeJS.ProcessEnv
  cwd?: string
  /** Run as this OS user (e.g. pgbouncer refuses to run as root). */
  user?: { name: string; uid: number; gid: number }
}

const live = new Set<ChildProcess>()

/** Absolute path of `name` on PATH or in the sbin directories, or undefined. */
export function findProgram(name: string, extraDirs: readonly string[] = ['/usr/sbin', '/sbin', '/usr/local/sbin']): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs]
  for (const dir of dirs) {
    if (dir !== '' && existsSync(join(dir, name))) return join(dir, name)
  }
  return undefined
}

const setpriv = findProgram('setpriv')

/** The environment for children: ours without libpq, Airlock and Node option variables. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('PG') || key.startsWith('AIRLOCK_') || key === 'NODE_OPTIONS' || key === 'DATABASE_URL') continue
    env[key] = value
  }
  return { ...env, NO_COLOR: '1', ...extra }
}

function launch(spec: CommandSpec, stdio: SpawnOptions['stdio']): ChildProcess {
  let command = spec.command
  let args = [...spec.args]
  const options: SpawnOptions = { env: spec.env, stdio, ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }) }
  if (setpriv !== undefined) {
    const user = spec.user === undefined ? [] : ['--reuid', spec.user.name, '--regid', spec.user.name, '--init-groups']
    args = ['--pdeathsig', 'KILL', ...user, '--', command, ...args]
    command = setpriv
  } else if (spec.user !== undefined) {
    options.uid = spec.user.uid
    options.gid = spec.user.gid
  }
  const child = spawn(command, args, options)
  live.add(child)
  child.once('exit', () => live.delete(child))
  child.once('error', () => live.delete(child))
  return child
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  wallMs: number
  timedOut: boolean
}

/** Runs a command to completion, killing it after `timeoutMs` or when `signal` aborts. */
export async function runCommand(spec: CommandSpec, options: { timeoutMs: number; input?: string; signal?: AbortSignal }): Promise<RunResult> {
  options.signal?.throwIfAborted()
  const started = performance.now()
  const child = launch(spec, ['pipe', 'pipe', 'pipe'])
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdin!.on('error', () => {})
  child.stdin!.end(options.input ?? '')
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, options.timeoutMs)
  const abort = (): void => {
    child.kill('SIGKILL')
  }
  options.signal?.addEventListener('abort', abort, { once: true })
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (exitCode: number | null, exitSignal: NodeJS.Signals | null) => resolve([exitCode, exitSignal]))
    })
    options.signal?.throwIfAborted()
    return { code, signal, stdout, stderr, wallMs: performance.now() - started, timedOut }
  } finally {
    clearTimeout(timer)
    options.signal?.removeEventListener('abort', abort)
  }
}

/** A long-running process (database proxy, gateway, CLI) whose output goes to a log file. */
export class Service {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  private exitCode: number | null | undefined

  constructor(
    readonly name: string,
    spec: CommandSpec,
    readonly logFile: string,
  ) {
    const fd = openSync(logFile, 'a')
    try {
      this.child = launch(spec, ['ignore', fd, fd])
    } finally {
      closeSync(fd)
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal === null ? null : 128)
        resolve(this.exitCode)
      })
      this.child.once('error', () => {
        this.exitCode = 127
        resolve(127)
      })
    })
  }

  get pid(): number {
    const pid = this.child.pid
    if (pid === undefined) throw new Error(`${this.name} did not start`)
    return pid
  }

  get running(): boolean {
    return this.exitCode === undefined
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8')
    } catch {
      return ''
    }
  }

  /** The last lines of the log, for error messages. */
  logTail(lines = 20): string {
    return this.log().trimEnd().split('\n').slice(-lines).join('\n')
  }

  /**
   * Waits for a log line (parsed as JSON when it is JSON) that satisfies `match`; fails when the
   * process exits first or after `timeoutMs`.
   */
  async waitForLine<T>(match: (line: unknown) => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      for (const text of this.log().split('\n')) {
        let line: unknown = text
        try {
          line = JSON.parse(text)
        } catch {
          // a plain text line
        }
        const found = match(line)
        if (found !== undefined) return found
      }
      if (!this.running) throw new Error(`${this.name} exited (${this.exitCode}) before it was ready:\n${this.logTail()}`)
      if (performance.now() > deadline) throw new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.logTail()}`)
      await sleep(50)
    }
  }

  /** Sends `signal`, then SIGKILL when the process has not exited after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<number | null> {
    if (this.running) this.child.kill(signal)
    const timer = setTimeout(() => {
      if (this.running) this.child.kill('SIGKILL')
    }, graceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}

/** SIGKILL to every process still running; synchronous, for exit and signal handlers. */
export function stopAllNow(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
}
