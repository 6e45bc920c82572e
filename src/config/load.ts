/**
 * Loading and checking the gateway configuration: YAML → schema → `GatewayConfig`, and the deeper
 * checks `airlock gateway check` runs (secrets, files, users) that need the machine, not the text.
 */

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { constants } from 'node:fs'
import { access, readFile, stat } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { dirname, isAbsolute, resolve } from 'node:path'

import { LineCounter, parseDocument, type ErrorCode as YamlErrorCode } from 'yaml'
import type { z } from 'zod'

import { AirlockError } from '../errors.js'
import { type NamespaceProbe, probeIsolation, resolveUser, type RunAsUser, userSwitchOnly } from '../protocols/command/launch.js'
import { recordingsDirProblem } from '../protocols/command/recording.js'
import {
  configErrorMap,
  connectionSecrets,
  createConfigSchema,
  secretRefsOf,
  isLoopbackHost,
  type ConnectionConfig,
  type GatewayConfig,
} from './schema.js'
import type { SecretRef, SecretSource } from './secrets.js'

/**
 * One result of `checkConfig`: an `error` stops the gateway from starting, a `warning` does not,
 * an `info` reports what was found on the host (e.g. that PID namespaces work).
 */
export interface CheckFinding {
  level: 'error' | 'warning' | 'info'
  /** Where in the configuration, e.g. `connections[pg-prod].upstream.password`. */
  path: string
  /** What is wrong and what to do; never a secret value. */
  message: string
}

/** What `checkConfig` compares against; the defaults are this process and the current time. */
export interface CheckOptions {
  /** The OS user the gateway runs as (`gid`: its primary group). */
  user?: { username: string; uid: number; gid?: number }
  now?: Date
  /** Looks a `runAs` user up; default: the host's user database. */
  resolveUser?: (name: string) => Promise<RunAsUser | undefined>
  /** Whether command sessions can get a PID namespace here; default: probed by running it. */
  probeIsolation?: () => Promise<NamespaceProbe>
}

interface GatewayUser {
  username: string
  uid: number
  gid?: number
}

const YAML_PROBLEMS: Record<YamlErrorCode, string> = {
  ALIAS_PROPS: 'an alias cannot have an anchor or a tag',
  BAD_ALIAS: 'an alias names no anchor defined before it',
  BAD_COLLECTION_TYPE: 'a tag is used on the wrong kind of collection',
  BAD_DIRECTIVE: 'invalid % directive',
  BAD_DQ_ESCAPE: 'invalid escape sequence in a double-quoted string (single quotes keep backslashes as is)',
  BAD_INDENT: 'bad indentation',
  BAD_PROP_ORDER: 'anchors and tags must come after the ?, : or - indicator',
  BAD_SCALAR_START: 'a plain value cannot start with this character: quote it',
  BLOCK_AS_IMPLICIT_KEY: 'a nested block cannot be a key (missing ":" or bad indentation?)',
  BLOCK_IN_FLOW: 'a block value inside a { } or [ ] collection',
  DUPLICATE_KEY: 'duplicate key',
  IMPOSSIBLE: 'unparseable YAML',
  KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
  MISSING_CHAR: 'a character is missing (a closing quote or bracket, a ":" or a ",")',
  MULTILINE_IMPLICIT_KEY: 'a key cannot span lines (missing ":" or bad indentation?)',
  MULTIPLE_ANCHORS: 'a node has more than one anchor',
  MULTIPLE_DOCS: 'more than one YAML document (remove the "---" separator)',
  MULTIPLE_TAGS: 'a node has more than one tag',
  NON_STRING_KEY: 'keys must be strings',
  RESOURCE_EXHAUSTION: 'aliases expand too far',
  TAB_AS_INDENT: 'tabs cannot indent YAML: use spaces',
  TAG_RESOLVE_FAILED: 'unknown tag',
  UNEXPECTED_TOKEN: 'unexpected character',
}

const EXPIRY_WARNING_MS = 14 * 24 * 60 * 60 * 1000
const MIN_HASH_KEY_BYTES = 32

/**
 * Reads, parses and validates a gateway configuration file. Relative paths in it resolve against
 * the file's directory.
 *
 * @throws AirlockError `config` when the file cannot be read, is not valid YAML (with line and
 *   column), or does not match the schema (every problem on its own line, `<path>: <problem>`).
 */
export async function loadConfig(file: string): Promise<GatewayConfig> {
  const path = resolve(file)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new AirlockError('config', `cannot read the gateway configuration ${path}${code === undefined ? '' : ` (${code})`}`, {
      hint: 'pass the file with --config FILE',
    })
  }
  return validate(parseYaml(text, path), dirname(path), path)
}

/**
 * Validates an already-parsed configuration (e.g. the demo's built-in one). Relative paths resolve
 * against `baseDir`.
 *
 * @throws AirlockError `config` listing every problem on its own line as `<path>: <problem>`.
 */
export function parseConfig(raw: unknown, baseDir: string): GatewayConfig {
  return validate(raw, resolve(baseDir), undefined)
}

function parseYaml(text: string, file: string): unknown {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false })
  if (doc.errors.length > 0) {
    // yaml's own messages can quote the source around the error; only its codes are repeated here.
    const lines = doc.errors.map((error) => {
      const { line, col } = lineCounter.linePos(error.pos[0])
      return `line ${line}, column ${col}: ${YAML_PROBLEMS[error.code] ?? 'invalid YAML'}`
    })
    throw new AirlockError('config', [`invalid YAML in ${file}:`, ...lines].join('\n'), {
      hint: 'fix the YAML syntax at the lines above',
    })
  }
  try {
    return doc.toJS({ maxAliasCount: 100 })
  } catch {
    throw new AirlockError('config', `invalid YAML in ${file}: aliases expand too far`)
  }
}

function validate(raw: unknown, baseDir: string, file: string | undefined): GatewayConfig {
  const where = file === undefined ? '' : ` in ${file}`
  if (raw === null || raw === undefined) {
    throw new AirlockError('config', `the gateway configuration${where} is empty`, {
      hint: 'start from the example in the README: listen, auth and connections',
    })
  }
  const result = createConfigSchema(baseDir).safeParse(raw, { error: configErrorMap })
  if (result.success) return result.data
  const lines = [...new Set(result.error.issues.flatMap((issue) => formatIssue(issue, raw)))]
  throw new AirlockError('config', [`invalid gateway configuration${where}:`, ...lines].join('\n'), {
    hint: 'fix each line above, then run `airlock gateway check`',
  })
}

function formatIssue(issue: z.core.$ZodIssue, raw: unknown): string[] {
  const path = formatPath(issue.path, raw)
  return issue.message.split('\n').map((problem) => `${path}: ${problem}`)
}

/**
 * `connections[pg-prod].upstream.port`: an index under `connections` is shown as the connection's
 * name when the input has a usable, unique one.
 */
function formatPath(path: readonly PropertyKey[], raw: unknown): string {
  let out = ''
  path.forEach((segment, depth) => {
    if (typeof segment === 'number') {
      const name = depth === 1 && path[0] === 'connections' ? connectionLabel(raw, segment) : undefined
      out += `[${name ?? segment}]`
    } else {
      const key = String(segment)
      out += /^[A-Za-z_$][\w$-]*$/.test(key) ? `${out === '' ? '' : '.'}${key}` : `[${JSON.stringify(key)}]`
    }
  })
  return out === '' ? 'top level' : out
}

function connectionLabel(raw: unknown, index: number): string | undefined {
  const connections = (raw as { connections?: unknown } | null)?.connections
  if (!Array.isArray(connections)) return undefined
  const names = connections.map((entry: unknown) => (entry as { name?: unknown } | null)?.name)
  const name = names[index]
  if (typeof name !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) return undefined
  return names.indexOf(name) === names.lastIndexOf(name) ? name : undefined
}

/**
 * The checks that need the machine rather than the text: every secret reference is read (and
 * reported by reference, never by value), TLS files are read and parsed, service token expiry,
 * command users and directories, the audit store's directory, and settings that are valid but
 * weaken the gateway.
 */
export async function checkConfig(
  config: GatewayConfig,
  secrets: SecretSource,
  options: CheckOptions = {},
): Promise<CheckFinding[]> {
  const now = options.now ?? new Date()
  const user = options.user ?? userInfo()
  const findings: CheckFinding[] = []
  const error = (path: string, message: string): void => void findings.push({ level: 'error', path, message })
  const warning = (path: string, message: string): void => void findings.push({ level: 'warning', path, message })

  const { listen } = config
  if (listen.tls !== undefined) {
    await checkKeyPair(listen.tls, 'listen.tls', now, { error, warning })
  } else if (!isLoopbackHost(listen.host)) {
    warning('listen.insecure', 'listening without TLS on a non-loopback address: tokens cross the network in clear text')
  }

  const { auth } = config
  if (auth.oidc.length === 0 && auth.serviceTokens.length === 0) {
    warning('auth', 'no identity can authenticate: add auth.oidc or auth.serviceTokens')
  }
  auth.oidc.forEach((issuer, index) => {
    const path = `auth.oidc[${index}]`
    if (new URL(issuer.issuer).protocol === 'http:') warning(`${path}.issuer`, 'an http:// issuer is for local development only')
  })
  auth.serviceTokens.forEach((token, index) => {
    if (token.expires === undefined) return
    const path = `auth.serviceTokens[${index}].expires`
    const left = token.expires.getTime() - now.getTime()
    if (left <= 0) warning(path, `service token '${token.name}' expired on ${day(token.expires)} and is refused: remove it or issue a new one`)
    else if (left < EXPIRY_WARNING_MS) warning(path, `service token '${token.name}' expires on ${day(token.expires)}`)
  })

  const { audit } = config
  if (audit.store.startsWith('sqlite:') && audit.store !== 'sqlite::memory:') {
    const directory = dirname(audit.store.slice('sqlite:'.length))
    if (!(await accessible(directory, constants.W_OK | constants.X_OK))) {
      error('audit.store', `the directory ${directory} does not exist or is not writable by the gateway`)
    }
  }
  if (!audit.required) warning('audit.required', 'statements are forwarded even when the audit store cannot record them')
  if (audit.password !== undefined) await readSecret(audit.password, 'audit.password', secrets, { error, warning })

  const hashKey = config.masking.hashKey
  if (hashKey !== undefined) {
    const value = await readSecret(hashKey, 'masking.hashKey', secrets, { error, warning })
    if (value !== undefined && Buffer.byteLength(value) < MIN_HASH_KEY_BYTES) {
      warning('masking.hashKey', `${secrets.describe(hashKey)} is shorter than ${MIN_HASH_KEY_BYTES} bytes: use e.g. \`openssl rand -hex 32\``)
    }
  }

  if (config.connections.length === 0) warning('connections', 'no connections: the gateway serves nothing')
  for (const connection of config.connections) {
    await checkConnection(connection, secrets, user, { error, warning })
  }
  const commands = config.connections.filter((connection): connection is Extract<ConnectionConfig, { type: 'command' }> => connection.type === 'command')
  if (commands.length > 0) {
    const info = (path: string, message: string): void => void findings.push({ level: 'info', path, message })
    await checkCommands(config, commands, user, options, { error, warning, info })
  }
  return findings
}

interface Report {
  error(path: string, message: string): void
  warning(path: string, message: string): void
}

type CommandConnectionConfig = Extract<ConnectionConfig, { type: 'command' }>

/**
 * What command connections need of the host: each `runAs` user looked up (never uid 0 or the
 * gateway's uid, never gid 0 or the gateway's gid), the PID-namespace probe, a private recordings
 * directory, and connections with different secrets sharing one user without namespaces.
 */
async function checkCommands(
  config: GatewayConfig,
  commands: CommandConnectionConfig[],
  user: GatewayUser,
  options: CheckOptions,
  report: Report & { info(path: string, message: string): void },
): Promise<void> {
  const lookup = options.resolveUser ?? resolveUser
  const uids = new Map<CommandConnectionConfig, number>()
  for (const connection of commands) {
    const at = `connections[${connection.name}].runAs`
    if (connection.runAs === 'root' || connection.runAs === '0' || connection.runAs === user.username || connection.runAs === String(user.uid)) continue
    const account = await lookup(connection.runAs)
    if (account === undefined) {
      report.error(at, `there is no user ${connection.runAs} on this host: create it (e.g. useradd --system ${connection.runAs})`)
      continue
    }
    uids.set(connection, account.uid)
    if (account.uid === 0) report.error(at, `${connection.runAs} has uid 0: must not run as root`)
    else if (account.uid === user.uid) report.error(at, `${connection.runAs} has the gateway's own uid (${user.uid}): it could read the gateway's secrets`)
    if (account.gid === 0) report.error(at, `${connection.runAs}'s primary group is gid 0 (root's): use a group of its own`)
    else if (user.gid !== undefined && account.gid === user.gid) {
      report.error(at, `${connection.runAs}'s primary group is the gateway's (gid ${user.gid}): it could read what the gateway shares with its group`)
    }
  }

  const namespaced = commands.filter((connection) => connection.isolation === 'pid-namespace')
  if (namespaced.length > 0) {
    const support = await (options.probeIsolation ?? probeIsolation)()
    for (const connection of namespaced) {
      const at = `connections[${connection.name}].isolation`
      if (support.mode === 'pid-namespace') report.info(at, 'each session gets its own PID and mount namespace (probed on this host)')
      else report.error(at, `sessions need a PID namespace and this host cannot give one: ${support.reason}; fix that, or opt out with isolation: none`)
    }
  }
  for (const connection of commands.filter((entry) => entry.isolation === 'none')) {
    const at = `connections[${connection.name}].isolation`
    const support = userSwitchOnly()
    if (support.mode === 'unavailable') report.error(at, support.reason)
    else report.warning(at, 'none: sessions run without a PID namespace; they can list other processes, and processes they detach may outlive them')
  }

  // The same uid without namespaces: a session can read /proc/PID/environ of another connection's session.
  const secretsOf = (connection: CommandConnectionConfig): string => JSON.stringify(secretRefsOf(connection).map((ref) => JSON.stringify(ref)).sort())
  for (const connection of commands) {
    const uid = uids.get(connection)
    if (uid === undefined) continue
    const others = commands.filter(
      (other) => other !== connection && uids.get(other) === uid && secretsOf(other) !== secretsOf(connection) && (other.isolation === 'none' || connection.isolation === 'none'),
    )
    if (others.length > 0) {
      report.warning(
        `connections[${connection.name}].runAs`,
        `shares user ${connection.runAs} with ${others.map((other) => other.name).join(', ')}, which hold${others.length === 1 ? 's' : ''} other secrets, and not every one runs in a PID namespace: a session can read the environment of the other's processes; give each its own runAs user`,
      )
    }
  }

  const dir = config.recordings.dir
  try {
    const problem = recordingsDirProblem(await stat(dir), user.uid)
    if (problem !== undefined) report.error('recordings.dir', `${dir} ${problem}`)
  } catch {
    const parent = await nearestExisting(dir)
    if (!(await accessible(parent, constants.W_OK | constants.X_OK))) {
      report.error('recordings.dir', `${dir} does not exist and ${parent} is not writable by the gateway`)
    }
  }
}

async function nearestExisting(path: string): Promise<string> {
  let current = dirname(path)
  while (current !== dirname(current) && !(await isDirectory(current))) current = dirname(current)
  return current
}

async function checkConnection(
  connection: ConnectionConfig,
  secrets: SecretSource,
  user: GatewayUser,
  report: Report,
): Promise<void> {
  const at = `connections[${connection.name}]`
  for (const { path, ref } of connectionSecrets(connection)) {
    await readSecret(ref, `${at}.${path.join('.')}`, secrets, report)
  }

  if (connection.type === 'mysql' || connection.type === 'http') {
    // The configuration is accepted (it is the design's), but no engine serves it yet.
    report.warning(`${at}.type`, `this gateway does not serve ${connection.type} connections yet: clients that connect are refused`)
  }
  switch (connection.type) {
    case 'postgres':
    case 'mysql': {
      const { upstream } = connection
      if (upstream.tls.ca !== undefined) await checkCertificateFile(upstream.tls.ca, `${at}.upstream.tls.ca`, report)
      if (upstream.tls.mode !== 'verify-full' && !isLoopbackHost(upstream.host)) {
        report.warning(
          `${at}.upstream.tls.mode`,
          upstream.tls.mode === 'disable'
            ? 'the credential and all data cross the network unencrypted'
            : "'require' encrypts but does not verify the server: use verify-full",
        )
      }
      if (upstream.allowCleartext) report.warning(`${at}.upstream.allowCleartext`, 'the server may ask for the password in clear text')
      if (upstream.allowMd5) report.warning(`${at}.upstream.allowMd5`, 'MD5 password authentication is weak: prefer SCRAM-SHA-256')
      if (connection.guardrails?.mode === 'audit-only') {
        report.warning(`${at}.guardrails.mode`, 'audit-only: guardrail violations are recorded but not blocked')
      }
      break
    }
    case 'http': {
      const url = new URL(connection.upstream.url)
      const carriesSecret = Object.values(connection.upstream.headers).some((value) => typeof value !== 'string')
      if (url.protocol === 'http:' && carriesSecret && !isLoopbackHost(url.hostname)) {
        report.warning(`${at}.upstream.url`, 'the credential header crosses the network in clear text: use https://')
      }
      break
    }
    case 'command': {
      if (connection.runAs === user.username || connection.runAs === String(user.uid)) {
        report.error(`${at}.runAs`, "must not run as the gateway's own user: it could read the gateway's secrets")
      } else if (connection.runAs === 'root' || connection.runAs === '0') {
        report.error(`${at}.runAs`, 'must not run as root: use a dedicated unprivileged user')
      }
      if (connection.cwd !== undefined && !(await isDirectory(connection.cwd))) {
        report.error(`${at}.cwd`, `${connection.cwd} is not a directory`)
      }
      const [program] = connection.command
      if (program !== undefined && isAbsolute(program) && !(await accessible(program, constants.X_OK))) {
        report.error(`${at}.command`, `${program} does not exist or is not executable`)
      }
      break
    }
    case 'tcp':
      break
  }
}

async function readSecret(ref: SecretRef, path: string, secrets: SecretSource, report: Report): Promise<string | undefined> {
  try {
    const value = await secrets.read(ref)
    if ('file' in ref && (await worldReadable(ref.file))) {
      report.warning(path, `${secrets.describe(ref)} is readable by every user on this host: chmod 600 it`)
    }
    return value
  } catch (error) {
    // A SecretSource promises that its AirlockErrors name only the reference.
    report.error(path, error instanceof AirlockError ? error.message : `${secrets.describe(ref)} cannot be read`)
    return undefined
  }
}

async function checkKeyPair(tls: { cert: string; key: string }, path: string, now: Date, report: Report): Promise<void> {
  const certificate = await checkCertificateFile(tls.cert, `${path}.cert`, report)
  let key: KeyObject | undefined
  try {
    key = createPrivateKey(await readFile(tls.key))
  } catch (error) {
    const unreadable = (error as NodeJS.ErrnoException).syscall !== undefined
    report.error(`${path}.key`, `${tls.key} ${unreadable ? 'cannot be read' : 'is not an unencrypted PEM private key'}`)
  }
  if (key !== undefined && (await worldReadable(tls.key))) {
    report.warning(`${path}.key`, `${tls.key} is readable by every user on this host: chmod 600 it`)
  }
  if (certificate === undefined) return
  if (key !== undefined && !certificate.checkPrivateKey(key)) {
    report.error(`${path}.key`, `${tls.key} is not the private key of ${tls.cert}`)
  }
  const expires = new Date(certificate.validTo)
  const left = expires.getTime() - now.getTime()
  if (left <= 0) report.error(`${path}.cert`, `the certificate expired on ${day(expires)}`)
  else if (left < EXPIRY_WARNING_MS) report.warning(`${path}.cert`, `the certificate expires on ${day(expires)}`)
}

async function checkCertificateFile(file: string, path: string, report: Report): Promise<X509Certificate | undefined> {
  let pem: Buffer
  try {
    pem = await readFile(file)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    report.error(path, `${file} cannot be read${code === undefined ? '' : ` (${code})`}`)
    return undefined
  }
  try {
    return new X509Certificate(pem)
  } catch {
    report.error(path, `${file} is not a PEM certificate`)
    return undefined
  }
}

async function accessible(path: string, mode: number): Promise<boolean> {
  try {
    await access(path, mode)
    return true
  } catch {
    return false
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch {
    return false
  }
}

async function worldReadable(path: string): Promise<boolean> {
  try {
    return ((await stat(path)).mode & 0o004) !== 0
  } catch {
    return false
  }
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10)
}
