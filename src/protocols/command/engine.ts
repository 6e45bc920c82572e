/**
 * command: a fixed argv run on the gateway as the connection's `runAs` user, with the secrets in
 * its environment, under a pty (`airlock connect`) or pipes (`airlock exec`). The caller gets a
 * terminal or a clean one-off run; the output passes the credential canary (and any further
 * maskers) before it leaves the gateway, and is recorded as asciicast v2.
 *
 *   CLI                                   gateway                              process
 *     │── upgrade {mode, cols, rows, args} ▶│ allowArgs? deny(args)? user, secrets, env
 *     │                                    │── start (pty now; pipes at once, or after
 *     │                                    │   the whole input passed the deny patterns) ─▶│
 *     │◀── ready ──────────────────────────│                                               │
 *     │◀════════════ pty-session.ts / pipe-session.ts until exit or close ═══════════════▶│
 *
 * Isolation (launch.ts): never the gateway's user or root, no supplementary groups, an
 * environment built from scratch, and a PID + mount namespace per session; a connection runs
 * without the namespace only when it says `isolation: none`, and a host that cannot create one
 * refuses the sessions of every other command connection.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { resolve as resolvePath } from 'node:path'
import type { CommandConnection, SecretSource } from '../../config/index.js'
import { isSecretRef } from '../../config/index.js'
import { AirlockError } from '../../errors.js'
import type { CloseReason } from '../../tunnel/transport.js'
import type { EngineSession, ProtocolEngine, UpstreamLink } from '../engine.js'
import { CanaryAutomaton, canaryForms } from './canary.js'
import { CANARY_MARKER, createCanaryStream } from './canary-stream.js'
import { compileDenyRules, type DenyRule, findDenied } from './input-checks.js'
import {
  buildEnvironment,
  canSwitchUser,
  isDirectory,
  type IsolationSupport,
  killSession,
  launchPlan,
  probeIsolation,
  resolveProgram,
  resolveUser,
  type RunAsUser,
  signalForeground,
  signalGroup,
  userSwitchOnly,
} from './launch.js'
import { chainMaskers, maskedCounts, type OutputMasker } from './masker.js'
import { runPipeSession } from './pipe-session.js'
import { type PtyProcess, runPtySession } from './pty-session.js'
import { createRecorder } from './recording.js'

/** Which output stream a masker is made for. */
export interface MaskerContext {
  connection: CommandConnection
  stream: 'pty' | 'stdout' | 'stderr'
}

export interface CommandEngineOptions {
  /** Where session recordings go: a directory of mode 0700 owned by the gateway's user (created if missing). */
  recordingsDir: string
  /** Further output maskers, applied after the credential canary: where the detector library plugs in. */
  maskers?: (context: MaskerContext) => OutputMasker[]
  /** Largest one-off input held to be checked against deny patterns. Default 16 MiB. */
  maxCheckedInput?: number
  /** Between SIGHUP/SIGTERM and SIGKILL when a session ends under a running process. Default 2 s. */
  killGraceMs?: number
}

const DEFAULT_MAX_CHECKED_INPUT = 16 * 1024 * 1024
const DEFAULT_KILL_GRACE_MS = 2_000
const DEFAULT_COLS = 80
const DEFAULT_ROWS = 24
const AUTOMATON_CACHE = 32

/** The command engine; create one per gateway. */
export function createCommandEngine(options: CommandEngineOptions): ProtocolEngine {
  const recordingsDir = resolvePath(options.recordingsDir)
  const maxCheckedInput = options.maxCheckedInput ?? DEFAULT_MAX_CHECKED_INPUT
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS
  const automata = new Map<string, CanaryAutomaton>()
  const denyRules = new WeakMap<CommandConnection, DenyRule[]>()
  let namespaces: Promise<IsolationSupport> | undefined
  const warned = new WeakSet<CommandConnection>()

  /** Fail closed: a connection gets a session without a PID namespace only when it opted out of it. */
  const isolationFor = async (session: EngineSession, connection: CommandConnection): Promise<Exclude<IsolationSupport, { mode: 'unavailable' }>> => {
    if (connection.isolation === 'none') {
      const support = userSwitchOnly()
      if (support.mode === 'unavailable') throw unavailable(connection.name, support.reason)
      if (!warned.has(connection)) {
        warned.add(connection)
        session.logger.warn(
          { event: 'command.isolation', isolation: 'none' },
          'this connection runs without a PID namespace (isolation: none): its sessions can list other processes, and detached processes may outlive a session',
        )
      }
      return support
    }
    namespaces ??= probeIsolation()
    const support = await namespaces
    if (support.mode === 'unavailable') {
      session.logger.error({ event: 'command.isolation', isolation: 'unavailable', reason: support.reason }, 'command session refused: no PID namespace')
      throw unavailable(connection.name, `command sessions require a PID namespace: ${support.reason}`)
    }
    return support
  }

  const automatonFor = (values: string[]): CanaryAutomaton | undefined => {
    if (values.length === 0) return undefined
    const key = createHash('sha256').update(values.slice().sort().join('\0')).digest('base64')
    let automaton = automata.get(key)
    if (automaton === undefined) {
      automaton = new CanaryAutomaton(values.flatMap(canaryForms))
      if (automata.size >= AUTOMATON_CACHE) automata.delete(automata.keys().next().value!)
      automata.set(key, automaton)
    }
    return automaton
  }

  return {
    async open(session: EngineSession): Promise<UpstreamLink> {
      const { connection, params } = session
      if (connection.type !== 'command') throw new AirlockError('internal', `command engine given a ${connection.type} connection`)
      const mode = params.mode ?? 'pty'
      const args = params.args ?? []
      if (args.length > 0 && !connection.allowArgs) {
        throw new AirlockError('usage', `connection ${connection.name} takes no arguments`, {
          hint: 'run it without arguments after --; a gateway admin can set allowArgs: true',
        })
      }
      let rules = denyRules.get(connection)
      if (rules === undefined) {
        rules = compileDenyRules(connection)
        denyRules.set(connection, rules)
      }
      const deniedArgs = args.length === 0 ? undefined : findDenied(rules, args.join(' '))
      if (deniedArgs !== undefined) {
        session.report?.({ type: 'blocked', rule: deniedArgs.id, message: deniedArgs.message, where: 'args' })
        throw new AirlockError('blocked', `blocked by guardrail ${deniedArgs.id}: ${deniedArgs.message}`, { hint: 'the command did not run' })
      }

      const user = await runAsUser(connection)
      const { env: connectionEnv, secrets } = await readEnvironment(connection, session.secrets)
      const env = buildEnvironment({ user, mode, session: session.id, connectionEnv })
      const cwd = connection.cwd ?? ((await isDirectory(user.home)) ? user.home : '/')
      const [program, ...fixedArgs] = connection.command
      const programPath = await resolveProgram(program!, env.PATH ?? '', cwd)
      if (programPath === undefined) throw unavailable(connection.name, `${program} is not installed on the gateway host`)
      const support = await isolationFor(session, connection)
      const plan = launchPlan(support, user, [programPath, ...fixedArgs, ...args])

      const automaton = automatonFor(secrets)
      const marker = Buffer.from(CANARY_MARKER)
      const maskText = (text: string): string => (automaton === undefined ? text : automaton.replaceAll(Buffer.from(text), marker).toString('utf8'))
      // Every output stream's maskers: what they masked goes to the audit when the session ends.
      const outputMaskers: OutputMasker[] = []
      const maskerFor = (stream: MaskerContext['stream']): OutputMasker => {
        // Secrets first, then the detectors: a detector must never see (or hold) a raw secret's end.
        const maskers = [...(automaton === undefined ? [] : [createCanaryStream(automaton)]), ...(options.maskers?.({ connection, stream }) ?? [])]
        const masker = maskers.length === 0 ? passThrough() : chainMaskers(maskers)
        outputMaskers.push(masker)
        return masker
      }
      const cols = params.cols ?? DEFAULT_COLS
      const rows = params.rows ?? DEFAULT_ROWS

      const recorder = await createRecorder({
        dir: recordingsDir,
        session: session.id,
        width: cols,
        height: rows,
        title: `${connection.name} (${mode}) ${session.identity.display}`,
        command: maskText([...connection.command, ...args].join(' ')),
        env: { TERM: env.TERM ?? '', SHELL: env.SHELL ?? '' },
      }).catch((error: NodeJS.ErrnoException) => {
        session.logger.error({ event: 'session.recording.error', code: error.code, dir: recordingsDir }, 'cannot create the session recording')
        throw unavailable(connection.name, 'the gateway cannot record the session')
      })
      session.logger.info({ event: 'session.recording', path: recorder.path, format: 'asciicast-v2', isolation: support.mode }, 'session recording')
      recorder.onError((error) => {
        // Fail closed: a session that cannot be recorded does not go on.
        session.logger.error({ event: 'session.recording.error', code: error.code, path: recorder.path }, 'the session recording cannot be written: ending the session')
        session.transport.close({
          code: 'upstream-unavailable',
          message: 'the gateway cannot write the session recording, so the session was ended',
          hint: 'a gateway admin must check the recordings directory (see the gateway log)',
        })
      })
      const closeRecording = (): Promise<void> =>
        recorder.close().then(
          (summary) => session.report?.({ type: 'recording', ...summary }),
          () => {
            // Logged where it failed; the audit record then has no recording to point at.
          },
        )
      const relayed = async (relay: () => Promise<CloseReason>): Promise<CloseReason> => {
        const reason = await relay()
        const masked = maskedCounts(outputMaskers)
        if (Object.keys(masked).length > 0) session.report?.({ type: 'masked', counts: masked })
        await closeRecording()
        return reason
      }
      const onBlocked = (rule: { id: string; message: string }, where: 'input' | 'line', text?: string): void =>
        session.report?.({ type: 'blocked', rule: rule.id, message: rule.message, where, ...(text === undefined ? {} : { text }) })
      const limits = {
        ...(connection.idleTimeout === undefined ? {} : { idleTimeoutMs: connection.idleTimeout }),
        ...(connection.maxDuration === undefined ? {} : { maxDurationMs: connection.maxDuration }),
      }

      if (mode === 'pipes') {
        return {
          relay: () =>
            relayed(() => runPipeSession({
              transport: session.transport,
              spawn: () =>
                spawn(plan.file, plan.args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true }),
              stdoutMasker: maskerFor('stdout'),
              stderrMasker: maskerFor('stderr'),
              recorder,
              rules,
              maxCheckedInput,
              inputMasker: automaton === undefined ? passThrough() : createCanaryStream(automaton),
              limits,
              terminate: (child) => terminateGroup(child, killGraceMs),
              onBlocked: (rule) => onBlocked(rule, 'input'),
              logger: session.logger,
            })),
          abort: () => void closeRecording(),
        }
      }

      let pty: PtyProcess & { kill(signal?: string): void }
      try {
        pty = await spawnPty(plan, { cwd, env, cols, rows })
      } catch (error) {
        await closeRecording()
        // Not the error itself: spawn errors can quote the environment's values (a secret with a NUL).
        session.logger.warn({ event: 'command.spawn.error', code: (error as NodeJS.ErrnoException).code, name: (error as Error).name }, 'the command could not be started')
        throw unavailable(connection.name, 'the gateway could not start the command')
      }
      const exited = new Promise<void>((resolve) => pty.onExit(() => resolve()))
      const terminate = async (): Promise<void> => {
        // A hangup, as when a terminal closes; then SIGKILL for whatever is left of the session.
        await signalForeground(pty.pid, 'SIGHUP')
        signalGroup(pty.pid, 'SIGHUP')
        if (await within(exited, killGraceMs)) return
        signalGroup(pty.pid, 'SIGKILL')
        await killSession(pty.pid)
        await within(exited, 1_000)
      }
      const socket = (pty as unknown as { _socket?: { writableLength?: number; on(event: 'drain', listener: () => void): void } })._socket
      return {
        relay: () =>
          relayed(() => runPtySession({
            transport: session.transport,
            pty,
            masker: maskerFor('pty'),
            recorder,
            rules,
            maskText,
            limits,
            terminate,
            onBlocked: (rule, text) => onBlocked(rule, 'line', text),
            logger: session.logger,
            ...(socket?.writableLength === undefined
              ? {}
              : { inputBacklog: () => socket.writableLength ?? 0, onInputDrain: (listener: () => void) => socket.on('drain', listener) }),
          })),
        abort: () => {
          void terminate()
          void closeRecording()
        },
      }
    },
  }
}

async function runAsUser(connection: CommandConnection): Promise<RunAsUser> {
  if (!(await canSwitchUser())) {
    throw unavailable(connection.name, 'the gateway cannot switch to another user: run it as root, or with CAP_SETUID and CAP_SETGID')
  }
  const user = await resolveUser(connection.runAs)
  if (user === undefined) throw unavailable(connection.name, `the gateway host has no user ${connection.runAs}`)
  if (user.uid === 0 || user.uid === process.getuid?.()) {
    throw unavailable(connection.name, `refusing to run the command as ${user.uid === 0 ? 'root' : "the gateway's own user"}`)
  }
  return user
}

/** The connection's `env` with its secret references read; `secrets` are the values the canary masks. */
async function readEnvironment(connection: CommandConnection, source: SecretSource): Promise<{ env: Record<string, string>; secrets: string[] }> {
  const env: Record<string, string> = {}
  const secrets: string[] = []
  for (const [name, value] of Object.entries(connection.env)) {
    if (!isSecretRef(value)) {
      env[name] = value
      continue
    }
    try {
      env[name] = await source.read(value)
    } catch {
      throw unavailable(connection.name, `the gateway cannot read the secret for ${name} (${source.describe(value)})`)
    }
    secrets.push(env[name])
  }
  return { env, secrets }
}

async function spawnPty(
  plan: ReturnType<typeof launchPlan>,
  options: { cwd: string; env: Record<string, string>; cols: number; rows: number },
): Promise<PtyProcess & { kill(signal?: string): void }> {
  // Loaded on first use: the gateway need not load a native module it may never use.
  const { spawn: spawnTerminal } = await import('@lydell/node-pty')
  const terminal = spawnTerminal(plan.file, plan.args, {
    name: options.env.TERM ?? 'xterm-256color',
    cols: options.cols,
    rows: options.rows,
    cwd: options.cwd,
    env: options.env,
    encoding: null,
  })
  return terminal as unknown as PtyProcess & { kill(signal?: string): void }
}

/** SIGTERM to the process group, SIGKILL (and everything left in its session) after the grace. */
async function terminateGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit').then(() => undefined)
  signalGroup(child.pid, 'SIGTERM')
  if (await within(exited, graceMs)) return
  signalGroup(child.pid, 'SIGKILL')
  await killSession(child.pid)
  await within(exited, 1_000)
}

/** Whether `promise` settles within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  const result = await Promise.race([promise.then(() => true), timeout])
  clearTimeout(timer)
  return result
}

function passThrough(): OutputMasker {
  const empty = Buffer.alloc(0)
  return { write: (chunk) => chunk, flush: () => empty }
}

function unavailable(connection: string, reason: string): AirlockError {
  return new AirlockError('upstream-unavailable', `connection ${connection}: ${reason}`, {
    hint: 'a gateway admin can check the connection with `airlock gateway check`',
  })
}
