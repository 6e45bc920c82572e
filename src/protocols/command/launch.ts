/**
 * How a command connection's process is started: as the configured `runAs` user, with an
 * environment built from scratch, and — where the host allows it — alone in a PID and mount
 * namespace of its own.
 *
 * With `pid-namespace` isolation the process tree is
 *
 *   gateway (root)
 *     └─ unshare --pid --fork --kill-child --mount-proc        (root, gateway's namespace)
 *          └─ setpriv --reuid U --regid G --clear-groups        (PID 1 of the new namespace)
 *               = sh -c '"$@"; exit $?' airlock PROGRAM ARGS   (as U: a tiny init that reaps
 *                  └─ PROGRAM ARGS                               and reports the exit status)
 *
 * so from inside, `/proc` lists only the session's own processes (not the gateway, not another
 * session's shell holding other secrets), and ending the session kills every process it started,
 * `nohup` and `setsid` included (when PID 1 of a namespace dies, the kernel kills the rest). The
 * init is a shell rather than the program because the kernel ignores default-action signals sent to
 * a namespace's PID 1: Ctrl-C must reach the program as in any terminal.
 *
 * With `none` (an explicit opt-in per connection), the program is started through
 * `setpriv --reuid U --regid G --clear-groups`: the same user switch without the namespace. Not
 * node's or node-pty's own uid/gid switch: they call setgid/setuid but never setgroups, so the
 * process would keep the gateway's supplementary groups. It can then see other processes in `/proc`
 * (and read the environment of another process of the same user), and processes it detaches from
 * its session may outlive it.
 */
import { execFile } from 'node:child_process'
import { accessSync, constants as fsConstants } from 'node:fs'
import { access, readdir, readFile, stat } from 'node:fs/promises'
import { constants } from 'node:os'
import { delimiter, isAbsolute, join, resolve } from 'node:path'
import { promisify } from 'node:util'

export type IsolationMode = 'pid-namespace' | 'none'

/** The OS user a command runs as. */
export interface RunAsUser {
  name: string
  uid: number
  gid: number
  home: string
  shell: string
}

/** Where the command's processes look for programs unless the connection's `env` sets PATH. */
export const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin'
/** Where the gateway looks for unshare, setpriv and sh: fixed, never the gateway's own PATH. */
const SYSTEM_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin']
const NO_LOGIN = /\/(nologin|false)$/

const execFileAsync = promisify(execFile)

/** Looks `name` up in the user database (NSS via `getent`, else /etc/passwd). */
export async function resolveUser(name: string): Promise<RunAsUser | undefined> {
  let entry: string | undefined
  try {
    const { stdout } = await execFileAsync('getent', ['passwd', name], { timeout: 5_000, env: { PATH: SYSTEM_DIRS.join(delimiter) } })
    entry = stdout.split('\n')[0]
  } catch (error) {
    // getent exits 2 for an unknown user; a missing getent falls back to the file.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return undefined
    const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '')
    entry = passwd.split('\n').find((line) => line.split(':')[0] === name || (/^\d+$/.test(name) && line.split(':')[2] === name))
  }
  const fields = entry?.split(':')
  if (fields === undefined || fields.length < 7) return undefined
  const uid = Number(fields[2])
  const gid = Number(fields[3])
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined
  return { name: fields[0]!, uid, gid, home: fields[5] || '/', shell: fields[6] || '/bin/sh' }
}

export interface EnvironmentOptions {
  user: RunAsUser
  mode: 'pty' | 'pipes'
  session: string
  /** The connection's `env`, secret references already read. */
  connectionEnv: Record<string, string>
}

/**
 * The command's whole environment: a login-like base for the user, then the connection's `env`
 * (which may override any of it). Nothing comes from the gateway's own environment.
 */
export function buildEnvironment(options: EnvironmentOptions): Record<string, string> {
  const { user } = options
  return {
    PATH: DEFAULT_PATH,
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    SHELL: NO_LOGIN.test(user.shell) ? '/bin/sh' : user.shell,
    LANG: 'C.UTF-8',
    TERM: options.mode === 'pty' ? 'xterm-256color' : 'dumb',
    AIRLOCK_SESSION: options.session,
    ...options.connectionEnv,
  }
}

/** The absolute path of `program` as the command's PATH finds it, or undefined. */
export async function resolveProgram(program: string, path: string, cwd: string): Promise<string | undefined> {
  const candidates = program.includes('/') ? [resolve(cwd, program)] : path.split(delimiter).filter((dir) => isAbsolute(dir)).map((dir) => join(dir, program))
  for (const candidate of candidates) {
    try {
      if ((await stat(candidate)).isFile()) {
        await access(candidate, fsConstants.X_OK)
        return candidate
      }
    } catch {
      // not here
    }
  }
  return undefined
}

export async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isDirectory(),
    () => false,
  )
}

export type IsolationSupport =
  | { mode: 'pid-namespace'; unshare: string; setpriv: string; sh: string }
  | { mode: 'none'; setpriv: string }
  /** Neither: `reason` says why. */
  | { mode: 'unavailable'; reason: string }

/** What {@link probeIsolation} finds. */
export type NamespaceProbe = Extract<IsolationSupport, { mode: 'pid-namespace' | 'unavailable' }>

function findSystemProgram(name: string): string | undefined {
  for (const dir of SYSTEM_DIRS) {
    const candidate = join(dir, name)
    try {
      accessSync(candidate, fsConstants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/**
 * Whether this host can give each session its own PID namespace: util-linux `unshare` and
 * `setpriv` (with `--pdeathsig`) present, and the gateway allowed to create namespaces and switch
 * users (root, or CAP_SYS_ADMIN + CAP_SETUID + CAP_SETGID). Probed once by running the real chain.
 */
export async function probeIsolation(): Promise<NamespaceProbe> {
  const unshare = findSystemProgram('unshare')
  const setpriv = findSystemProgram('setpriv')
  const sh = findSystemProgram('sh')
  if (unshare === undefined || setpriv === undefined || sh === undefined) {
    return { mode: 'unavailable', reason: 'util-linux unshare and setpriv are not installed' }
  }
  const argv = namespaceArgv({ unshare, setpriv, sh }, { uid: 65534, gid: 65534 }, ['true'])
  try {
    await execFileAsync(argv[0]!, argv.slice(1), { timeout: 10_000, env: { PATH: SYSTEM_DIRS.join(delimiter) } })
    return { mode: 'pid-namespace', unshare, setpriv, sh }
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim().split('\n')[0]
    return { mode: 'unavailable', reason: `the gateway cannot create a PID namespace here${stderr ? ` (${stderr})` : ''}` }
  }
}

/** The user switch without a namespace (isolation `none`): util-linux `setpriv` must be installed. */
export function userSwitchOnly(): IsolationSupport {
  const setpriv = findSystemProgram('setpriv')
  return setpriv === undefined ? { mode: 'unavailable', reason: 'util-linux setpriv is not installed' } : { mode: 'none', setpriv }
}

/** The argv that runs `command` as uid/gid inside a fresh PID + mount namespace. */
export function namespaceArgv(programs: { unshare: string; setpriv: string; sh: string }, ids: { uid: number; gid: number }, command: readonly string[]): string[] {
  return [
    programs.unshare, '--pid', '--fork', '--kill-child', '--mount-proc', '--',
    programs.setpriv, '--reuid', String(ids.uid), '--regid', String(ids.gid), '--clear-groups', '--pdeathsig', 'keep', '--',
    programs.sh, '-c', '"$@"; exit $?', 'airlock', ...command,
  ]
}

/** The argv that runs `command` as uid/gid, supplementary groups cleared, without a namespace. */
export function userSwitchArgv(setpriv: string, ids: { uid: number; gid: number }, command: readonly string[]): string[] {
  return [setpriv, '--reuid', String(ids.uid), '--regid', String(ids.gid), '--clear-groups', '--', ...command]
}

/** What the gateway spawns (as itself): the user switch is always part of the argv. */
export interface LaunchPlan {
  file: string
  args: string[]
}

export function launchPlan(support: Exclude<IsolationSupport, { mode: 'unavailable' }>, user: RunAsUser, command: readonly string[]): LaunchPlan {
  const [file, ...args] = support.mode === 'pid-namespace' ? namespaceArgv(support, user, command) : userSwitchArgv(support.setpriv, user, command)
  return { file: file!, args }
}

const CAP_SETGID = 6n
const CAP_SETUID = 7n

/** Whether this process may switch to another user (CAP_SETUID and CAP_SETGID, which root has). */
export async function canSwitchUser(): Promise<boolean> {
  try {
    const status = await readFile('/proc/self/status', 'utf8')
    const effective = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`)
    return ((effective >> CAP_SETUID) & 1n) === 1n && ((effective >> CAP_SETGID) & 1n) === 1n
  } catch {
    return process.getuid?.() === 0
  }
}

/** The signal's name if it is one this platform knows. */
export function knownSignal(name: string): NodeJS.Signals | undefined {
  return Object.hasOwn(constants.signals, name) ? (name as NodeJS.Signals) : undefined
}

export function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[name] ?? 0
}

/** The name of signal `number`, if any. */
export function signalName(number: number): NodeJS.Signals | undefined {
  return (Object.entries(constants.signals) as [NodeJS.Signals, number][]).find(([, value]) => value === number)?.[0]
}

/** Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, tty_nr, tpgid. */
async function statFields(pid: number): Promise<string[] | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8')
    return text.slice(text.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/**
 * Sends `signal` to the foreground process group of the terminal `pid` controls, as the terminal
 * itself would for Ctrl-C; falls back to `pid`'s own group.
 */
export async function signalForeground(pid: number, signal: NodeJS.Signals): Promise<void> {
  const tpgid = Number((await statFields(pid))?.[5])
  signalGroup(Number.isInteger(tpgid) && tpgid > 0 ? tpgid : pid, signal)
}

export function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal)
  } catch {
    // already gone
  }
}

/** SIGKILL to every process whose session id is `sid` (isolation `none`: what the session left behind). */
export async function killSession(sid: number): Promise<void> {
  let entries: string[]
  try {
    entries = await readdir('/proc')
  } catch {
    return
  }
  await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        const fields = await statFields(Number(entry))
        if (fields !== undefined && Number(fields[3]) === sid) {
          try {
            process.kill(Number(entry), 'SIGKILL')
          } catch {
            // gone meanwhile
          }
        }
      }),
  )
}
