/**
 * The gateway configuration schema. Parsing fills every default, turns durations into
 * milliseconds and sizes into bytes, and resolves every relative path against the configuration
 * file's directory, so the output types are what the gateway uses as is.
 *
 * Every message written here says what to do and never repeats the offending value: the value
 * might be a secret pasted into the wrong place.
 */

import { isIPv4, isIPv6 } from 'node:net'
import { resolve } from 'node:path'

import { z } from 'zod'

import { AirlockError } from '../errors.js'
import { PRESETS } from '../policy/guardrails/presets.js'
import { DETECTORS } from '../policy/masking/detectors.js'
import { BYTES_EXAMPLE, DURATION_EXAMPLE, parseBytes, parseDuration } from './duration.js'
import { isSecretRef, type SecretRef } from './secrets.js'

/** The message for a secret written inline where only a reference is allowed. */
export const INLINE_SECRET_MESSAGE = 'secrets only by reference: use { env: NAME } or { file: PATH }'

/** The guardrail presets a SQL connection can enable (the engine's list). */
export const GUARDRAIL_PRESETS = PRESETS

/** The built-in masking detectors (the engine's list); a connection whose masking lists none explicitly gets them all. */
export const MASKING_DETECTORS = DETECTORS

/** How a masked value is rewritten. `hash` needs the top-level `masking.hashKey`. */
export const MASKING_STRATEGIES = ['redact', 'partial', 'hash', 'null'] as const

/** The JWS algorithms an OIDC issuer may be configured to accept; all asymmetric. */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const

const DEFAULT_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const satisfies readonly (typeof JWT_ALGORITHMS)[number][]

const CONNECTION_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const HOST = /^[A-Za-z0-9._:%[\]-]+$/
const USER_NAME = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/
const SHA256_HEX = /^[0-9a-f]{64}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/

/** Header names whose value is a credential: such a header's value must be a reference. */
const SENSITIVE_HEADER = /authorization|cookie|passw(?:or)?d|secret|token|api[-_]?key|access[-_]?key|credential/i
/** Environment variable names whose value is a credential: such a variable's value must be a reference. */
const SENSITIVE_ENV = /passw(?:or)?d|secret|token|api_?key|access_?key|private_?key|credential/i

/** The tunnel's largest frame (256 KiB, MAX_FRAME) plus room for control messages. */
const MIN_PAYLOAD = 320 * 1024

const DATE_EXAMPLE = 'expected a date like 2027-01-01 or 2027-01-01T12:00:00Z'

/**
 * Whether `host` names this machine only: `localhost`, `127.0.0.0/8`, `::1` (also bracketed or
 * IPv4-mapped).
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (bare.toLowerCase() === 'localhost') return true
  if (isIPv4(bare)) return bare.startsWith('127.')
  if (!isIPv6(bare)) return false
  let canonical: string
  try {
    canonical = new URL(`http://[${bare}]/`).hostname
  } catch {
    return false
  }
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical)
}

/**
 * The zod error map for configuration parsing: messages say what is expected and never quote the
 * input.
 */
export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? `required: expected ${describeExpected(issue.expected)}`
        : `expected ${describeExpected(issue.expected)}, got ${describeInput(issue.input)}`
    case 'too_small':
      if (issue.origin === 'array' || issue.origin === 'string') {
        return Number(issue.minimum) <= 1 ? 'must not be empty' : `needs at least ${issue.minimum} entries`
      }
      return `must be ${issue.inclusive === false ? 'more than' : 'at least'} ${issue.minimum}`
    case 'too_big':
      if (issue.origin === 'array' || issue.origin === 'string') return `must have at most ${issue.maximum} entries`
      return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${issue.maximum}`
    case 'invalid_value':
      return `${issue.input === undefined ? 'required: expected' : 'expected'} one of: ${issue.values.map(String).join(', ')}`
    case 'invalid_format':
      return 'has the wrong format'
    case 'unrecognized_keys':
      return issue.keys.map((key) => unknownKey(key, [])).join('\n')
    case 'invalid_union':
      if (issue.discriminator !== undefined) {
        const options = Array.isArray(issue.options) ? issue.options.map(String).join(', ') : ''
        const given = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator]
        return `${given === undefined ? 'required: ' : ''}${issue.discriminator} must be one of: ${options}`
      }
      return 'does not match any accepted form'
    case 'invalid_key':
      return 'has an invalid key'
    default:
      return 'is invalid'
  }
}

function describeExpected(expected: string): string {
  switch (expected) {
    case 'string':
      return 'a string'
    case 'number':
      return 'a number'
    case 'int':
      return 'a whole number'
    case 'boolean':
      return 'true or false'
    case 'array':
      return 'a list'
    case 'object':
    case 'record':
      return 'a mapping (key: value)'
    case 'date':
      return 'a date'
    default:
      return expected
  }
}

function describeInput(input: unknown): string {
  if (input === null) return 'null'
  if (Array.isArray(input)) return 'a list'
  if (input instanceof Date) return 'a date'
  switch (typeof input) {
    case 'string':
      return 'a string'
    case 'number':
      return Number.isInteger(input) ? 'a whole number' : 'a number'
    case 'boolean':
      return 'true or false'
    case 'object':
      return 'a mapping'
    default:
      return typeof input
  }
}

function unknownKey(key: string, known: readonly string[]): string {
  const shown = key.length > 64 ? `${key.slice(0, 61)}...` : key
  const suggestion = closest(key, known)
  return suggestion === undefined
    ? `unknown key '${shown}'${known.length > 0 ? ` (expected one of: ${known.join(', ')})` : ''}`
    : `unknown key '${shown}' (did you mean '${suggestion}'?)`
}

function closest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase()
  let best: string | undefined
  let bestDistance = Math.max(1, Math.floor(key.length / 3)) + 1
  for (const candidate of known) {
    const distance = candidate.toLowerCase() === lower ? 0 : editDistance(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

/** Edit distance counting a swap of two neighbours as one edit ("prot" → "port"). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] ?? []
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1)
      row[j] = best
    }
  }
  return at(a.length, b.length)
}

function regexProblem(pattern: string): string | undefined {
  // Compiled both with and without the `u` flag so the policy engine may use either. Only the
  // reason is kept from the engine's message: the pattern it quotes may embed a secret to mask.
  for (const flags of ['', 'u']) {
    try {
      new RegExp(pattern, flags)
    } catch (error) {
      const reason = error instanceof Error ? error.message.split(': ').at(-1) : undefined
      return `not a valid regular expression${reason === undefined ? '' : ` (${reason})`}`
    }
  }
  return undefined
}

interface StrictOptions {
  /** The message when the whole object is missing. */
  required?: string
  /** The message when something other than a mapping is given. */
  wrongType?: string
  /**
   * The message for an unknown key that is no misspelling of a known one, in place of naming it
   * (in a secret reference, `password: { hunter2 }` makes the secret a key).
   */
  unknownKeys?: string
}

/** An object that rejects unknown keys, suggesting the closest known one. */
function strict<const Shape extends z.core.$ZodLooseShape>(shape: Shape, options: StrictOptions = {}) {
  const known = Object.keys(shape)
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => (options.unknownKeys !== undefined && closest(key, known) === undefined ? options.unknownKeys : unknownKey(key, known))).join('\n')
      }
      if (issue.code !== 'invalid_type') return undefined
      return issue.input === undefined ? options.required : options.wrongType
    },
  })
}

const text = z.string().min(1)
const group = z.string().min(1, 'a group name must not be empty')
const groups = z.array(group)

const host = z
  .string({ error: (issue) => (issue.input === undefined ? 'required: expected a host name like db.internal' : undefined) })
  .regex(HOST, 'expected a host name or IP address like db.internal')

/** A TCP port; 0 only where the gateway listens (pick a free port). */
function port(minimum: 0 | 1 = 1) {
  return z.int({ error: 'expected a port number like 5432' }).min(minimum).max(65535)
}

const pattern = z.string().superRefine((value, ctx) => {
  const problem = regexProblem(value)
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem })
})

const stringList = z
  .union([text, z.array(text).min(1)], { error: 'expected a string or a list of strings' })
  .transform((value) => (typeof value === 'string' ? [value] : value))

function duration(options: { positive?: boolean } = {}) {
  return z
    .union([z.string(), z.number()], {
      error: (issue) => `${issue.input === undefined ? 'required: ' : ''}expected ${DURATION_EXAMPLE}`,
    })
    .transform((value, ctx) => {
      let ms: number
      try {
        ms = parseDuration(value)
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: hintOf(error) ?? `expected ${DURATION_EXAMPLE}` })
        return z.NEVER
      }
      if (options.positive === true && ms === 0) {
        ctx.addIssue({ code: 'custom', message: 'must be longer than 0' })
        return z.NEVER
      }
      return ms
    })
}

function bytes(minimum: number) {
  return z
    .union([z.string(), z.number()], {
      error: (issue) => `${issue.input === undefined ? 'required: ' : ''}expected ${BYTES_EXAMPLE}`,
    })
    .transform((value, ctx) => {
      let size: number
      try {
        size = parseBytes(value)
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: hintOf(error) ?? `expected ${BYTES_EXAMPLE}` })
        return z.NEVER
      }
      if (size < minimum) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${minimum / 1024}KiB` })
        return z.NEVER
      }
      return size
    })
}

function hintOf(error: unknown): string | undefined {
  return error instanceof AirlockError ? error.hint : undefined
}

const date = z
  .union([z.date(), z.string().regex(ISO_DATE, DATE_EXAMPLE)], { error: DATE_EXAMPLE })
  .transform((value, ctx) => {
    const result = value instanceof Date ? value : new Date(value)
    if (Number.isNaN(result.getTime())) {
      ctx.addIssue({ code: 'custom', message: 'not a valid date' })
      return z.NEVER
    }
    return result
  })

function uniqueBy<T>(key: (item: T) => unknown, field: string, what: string, options: { quote?: boolean } = {}) {
  return (items: T[], ctx: z.core.$RefinementCtx<T[]>) => {
    if (!Array.isArray(items)) return
    const seen = new Map<unknown, number>()
    items.forEach((item, index) => {
      const value = typeof item === 'object' && item !== null ? key(item) : undefined
      if (typeof value !== 'string') return
      const first = seen.get(value)
      if (first === undefined) {
        seen.set(value, index)
        return
      }
      const shown = options.quote === false ? what : `${what} '${value}'`
      ctx.addIssue({ code: 'custom', path: [index, field], message: `duplicate ${shown} (same as entry ${first})` })
    })
  }
}

/**
 * The schema of the gateway configuration file. Relative paths (TLS files, `{ file }` secret
 * references, a `sqlite:` audit store, a command's `cwd`) resolve against `baseDir`.
 */
export function createConfigSchema(baseDir: string) {
  const path = z.string().min(1, 'expected a file path').transform((value) => resolve(baseDir, value))

  const secretRef = strict(
    {
      env: z.string().regex(ENV_NAME, 'expected an environment variable name like PG_PASSWORD').optional(),
      file: z.string().min(1, 'expected a file path').optional(),
    },
    { required: 'required: expected { env: NAME } or { file: PATH }', wrongType: INLINE_SECRET_MESSAGE, unknownKeys: INLINE_SECRET_MESSAGE },
  )
    .superRefine(
      (ref, ctx) => {
        if ((ref.env === undefined) === (ref.file === undefined)) {
          ctx.addIssue({ code: 'custom', message: 'expected exactly one of { env: NAME } or { file: PATH }' })
        }
      },
      { when: (payload) => payload.issues.length === 0 },
    )
    .transform((ref): SecretRef => (ref.env !== undefined ? { env: ref.env } : { file: resolve(baseDir, ref.file ?? '') }))

  const valueOrSecret = z.union([z.string(), secretRef], {
    error: 'expected a string, or a secret reference { env: NAME } or { file: PATH }',
  })

  function namedValues(keys: z.ZodString, sensitive: RegExp) {
    return z
      .record(keys, valueOrSecret)
      .superRefine((values, ctx) => {
        for (const [name, value] of Object.entries(values)) {
          if (typeof value === 'string' && sensitive.test(name)) {
            ctx.addIssue({ code: 'custom', path: [name], message: INLINE_SECRET_MESSAGE })
          }
        }
      })
      .default(() => ({}))
  }

  const access = strict(
    {
      groups: z
        .array(group, { error: (issue) => (issue.input === undefined ? 'required: add access.groups: [GROUP, ...]' : undefined) })
        .min(1, 'add access.groups: at least one group may use this connection (connections are closed by default)'),
    },
    { required: 'required: add access.groups: [GROUP, ...] naming who may use this connection (connections are closed by default)' },
  )

  const strategy = z.enum(MASKING_STRATEGIES).default('redact')

  const masking = strict({
    detectors: z.array(z.enum(MASKING_DETECTORS)).default(() => [...MASKING_DETECTORS]),
    columns: z
      .array(
        strict({
          match: stringList,
          strategy,
          keep: z.int().min(0).default(4),
        }),
      )
      .default(() => []),
    custom: z
      .array(
        strict({
          name: text,
          pattern,
          strategy,
        }),
      )
      .default(() => []),
  })

  const sqlRule = strict({
    id: text,
    action: z.enum(['deny', 'allow']).default('deny'),
    message: text.optional(),
    kind: stringList.optional(),
    function: stringList.optional(),
    table: stringList.optional(),
    access: z.enum(['read', 'write', 'any']).optional(),
    pattern: pattern.optional(),
  }).superRefine((rule, ctx) => {
    if (rule.kind === undefined && rule.function === undefined && rule.table === undefined && rule.pattern === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a rule needs at least one matcher: kind, function, table or pattern' })
    }
  })

  const sqlGuardrails = strict({
    mode: z.enum(['enforce', 'audit-only']).default('enforce'),
    presets: z.array(z.enum(GUARDRAIL_PRESETS)).default(() => []),
    rules: z
      .array(sqlRule)
      .superRefine(uniqueBy((rule) => rule.id, 'id', 'rule id'))
      .default(() => []),
  })

  function sqlUpstream(defaultPort: number) {
    return strict({
      host,
      port: port().default(defaultPort),
      database: text,
      user: text,
      password: secretRef.optional(),
      tls: strict({
        mode: z.enum(['disable', 'require', 'verify-full']).default('verify-full'),
        ca: path.optional(),
        serverName: text.optional(),
      }).prefault({}),
      allowMd5: z.boolean().default(false),
      allowCleartext: z.boolean().default(false),
    })
  }

  const common = {
    name: z.string().regex(CONNECTION_NAME, 'a connection name is 1-63 of a-z 0-9 . _ - starting with a letter or digit'),
    description: text.optional(),
    access,
  }

  const postgres = strict({
    ...common,
    type: z.literal('postgres'),
    upstream: sqlUpstream(5432),
    guardrails: sqlGuardrails.optional(),
    masking: masking.optional(),
  })

  const mysql = strict({
    ...common,
    type: z.literal('mysql'),
    upstream: sqlUpstream(3306),
    guardrails: sqlGuardrails.optional(),
    masking: masking.optional(),
  })

  const tcp = strict({
    ...common,
    type: z.literal('tcp'),
    upstream: strict({ host, port: port() }),
  })

  const httpUrl = z.string().superRefine((value, ctx) => {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected a URL like https://api.internal' })
      return
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      ctx.addIssue({ code: 'custom', message: 'expected an http:// or https:// URL' })
    } else if (url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', message: `no credentials in the URL: ${INLINE_SECRET_MESSAGE} in upstream.headers` })
    }
  })

  const httpRule = strict({
    id: text,
    action: z.enum(['deny', 'allow']).default('deny'),
    message: text.optional(),
    method: stringList.transform((methods) => methods.map((method) => method.toUpperCase())).optional(),
    path: stringList.optional(),
  }).superRefine((rule, ctx) => {
    if (rule.method === undefined && rule.path === undefined) {
      ctx.addIssue({ code: 'custom', message: 'a rule needs at least one matcher: method or path' })
    }
  })

  const http = strict({
    ...common,
    type: z.literal('http'),
    upstream: strict({
      url: httpUrl,
      headers: namedValues(z.string().min(1), SENSITIVE_HEADER),
    }),
    guardrails: strict({
      rules: z
        .array(httpRule)
        .superRefine(uniqueBy((rule) => rule.id, 'id', 'rule id'))
        .default(() => []),
    }).optional(),
    masking: masking.optional(),
  })

  const command = strict({
    ...common,
    type: z.literal('command'),
    command: z
      .array(text, { error: (issue) => (issue.input === undefined ? 'required: expected the program and its arguments, e.g. [bash, --norc]' : undefined) })
      .min(1, 'expected the program and its arguments, e.g. [bash, --norc]'),
    runAs: z
      .string({ error: (issue) => (issue.input === undefined ? 'required: name the OS user the command runs as' : undefined) })
      .regex(USER_NAME, 'expected an OS user name like airlock-shell'),
    allowArgs: z.boolean().default(false),
    cwd: path.optional(),
    env: namedValues(z.string().regex(ENV_NAME, 'expected an environment variable name'), SENSITIVE_ENV),
    idleTimeout: duration({ positive: true }).optional(),
    maxDuration: duration({ positive: true }).optional(),
    guardrails: strict({
      deny: z.array(strict({ pattern, message: text.optional() })).default(() => []),
    }).optional(),
    masking: masking.optional(),
    /**
     * `pid-namespace` (default): each session in its own PID + mount namespace, refused where the
     * host cannot create one; `none`: the user switch only, an explicit opt-in.
     */
    isolation: z.enum(['pid-namespace', 'none']).default('pid-namespace'),
  })

  const connection = z.discriminatedUnion('type', [postgres, mysql, tcp, http, command])

  const issuer = z.string().superRefine((value, ctx) => {
    let url: URL
    try {
      url = new URL(value)
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected an https:// URL like https://idp.example.com' })
      return
    }
    const secure = url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname))
    if (!secure) {
      ctx.addIssue({ code: 'custom', message: 'expected an https:// URL (http:// only for a loopback host)' })
    } else if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', message: 'an issuer URL has no query, fragment or credentials' })
    }
  })

  const oidcIssuer = strict({
    issuer,
    audience: text.optional(),
    cliClientId: text.optional(),
    scopes: z.array(text).default(() => ['openid', 'profile', 'email', 'offline_access']),
    groupsClaim: text.default('groups'),
    machine: z.boolean().default(false),
    require: z.record(text, z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' })).optional(),
    groups: groups.default(() => []),
    algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(() => [...DEFAULT_ALGORITHMS]),
  }).superRefine((oidc, ctx) => {
    if (oidc.machine && Object.keys(oidc.require ?? {}).length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['require'],
        message: 'a workload issuer is shared by every repository/project of the provider: constrain it with require: {...}',
      })
    }
    if (oidc.machine && oidc.audience === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['audience'],
        message:
          'a workload issuer needs audience: the aud your CI jobs request for this gateway (e.g. audience: airlock); without it a token minted for any other service would be accepted',
      })
    }
    if (!oidc.machine && oidc.cliClientId === undefined && oidc.audience === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'an interactive issuer needs cliClientId (advertised to `airlock login`) or audience (for JWT access tokens)',
      })
    }
  })

  const serviceToken = strict({
    name: text,
    sha256: z
      .string()
      .regex(SHA256_HEX, 'expected the SHA-256 of the token as 64 lowercase hex digits (printf %s "$TOKEN" | sha256sum)'),
    groups: groups.min(1, 'add at least one group'),
    expires: date.optional(),
  })

  const listen = strict({
    host: host.default('127.0.0.1'),
    port: port(0).default(8009),
    tls: strict({ cert: path, key: path }).optional(),
    insecure: z.boolean().default(false),
  }).superRefine((value, ctx) => {
    if (!isLoopbackHost(value.host) && value.tls === undefined && !value.insecure) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls'],
        message: 'a non-loopback listen needs TLS (listen.tls.cert/key) or listen.insecure: true',
      })
    }
  })

  const auth = strict({
    adminGroups: groups.default(() => []),
    oidc: z
      .array(oidcIssuer)
      .superRefine(uniqueBy((entry) => entry.issuer, 'issuer', 'issuer'))
      .default(() => []),
    serviceTokens: z
      .array(serviceToken)
      .superRefine(uniqueBy((token) => token.name, 'name', 'service token name'))
      .superRefine(uniqueBy((token) => token.sha256, 'sha256', 'token hash', { quote: false }))
      .default(() => []),
  })

  const sessions = strict({
    maxDuration: duration({ positive: true }).prefault('8h'),
    idleTimeout: duration({ positive: true }).prefault('30m'),
    maxPerIdentity: z.int().min(1).default(32),
    drainGrace: duration().prefault('30s'),
  })

  const limits = strict({
    maxPayload: bytes(MIN_PAYLOAD).prefault('1MiB'),
    headerTimeout: duration({ positive: true }).prefault('10s'),
    upgradesPerMinutePerIp: z.int().min(1).default(600),
  })

  /** Query parameters of a postgres URL that carry a secret (node-postgres and libpq read both). */
  const secretUrlParams = ['password', 'sslpassword']
  const auditStore = z.string().transform((store, ctx) => {
    if (store.startsWith('sqlite:')) {
      const file = store.slice('sqlite:'.length)
      if (file === '') {
        ctx.addIssue({ code: 'custom', message: 'expected sqlite:PATH, e.g. sqlite:./airlock-audit.db' })
        return z.NEVER
      }
      return file === ':memory:' ? store : `sqlite:${resolve(baseDir, file)}`
    }
    if (/^postgres(?:ql)?:\/\//.test(store)) {
      let url: URL | undefined
      try {
        url = new URL(store)
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected a URL like postgres://audit@db.internal/airlock' })
      }
      const inQuery = url === undefined ? [] : [...new Set(url.searchParams.keys())].filter((key) => secretUrlParams.includes(key.toLowerCase()))
      if (url !== undefined && (url.password !== '' || inQuery.length > 0)) {
        const where = url.password !== '' ? 'in the URL' : `in the URL's query (${inQuery.join(', ')})`
        ctx.addIssue({
          code: 'custom',
          message: `no password ${where}: secrets only by reference: set audit.password: { env: NAME } or { file: PATH }`,
        })
      }
      return store
    }
    ctx.addIssue({ code: 'custom', message: 'expected sqlite:PATH or a postgres:// URL' })
    return store
  })

  return strict(
    {
      listen: listen.prefault({}),
      auth: auth.prefault({}),
      sessions: sessions.prefault({}),
      limits: limits.prefault({}),
      audit: strict({ store: auditStore.prefault('sqlite:./airlock-audit.db'), password: secretRef.optional(), required: z.boolean().default(true) })
        .superRefine((audit, ctx) => {
          if (audit.password !== undefined && !audit.store.startsWith('postgres')) {
            ctx.addIssue({ code: 'custom', path: ['password'], message: 'audit.password is for a postgres:// store; a sqlite: store has none' })
          }
        })
        .prefault({}),
      masking: strict({ hashKey: secretRef.optional() }).prefault({}),
      /** Command session recordings (asciicast v2): a directory of mode 0700 owned by the gateway's user. */
      recordings: strict({ dir: path.prefault('./recordings') }).prefault({}),
      log: strict({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') }).prefault({}),
      connections: z
        .array(connection, { error: (issue) => (issue.input === undefined ? 'required: list the connections (may be [])' : undefined) })
        .superRefine(uniqueBy((entry) => entry.name, 'name', 'connection name'), { when: () => true }),
    },
    {
      required: 'the configuration is empty: expected a mapping with listen, auth and connections',
      wrongType: 'expected a mapping with listen, auth and connections',
    },
  ).superRefine((config, ctx) => {
    const hashing = config.connections.filter((entry) => 'masking' in entry && usesHashStrategy(entry.masking))
    if (hashing.length > 0 && config.masking.hashKey === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['masking', 'hashKey'],
        message: `the hash masking strategy (${hashing.map((entry) => entry.name).join(', ')}) needs masking.hashKey: { env: NAME } or { file: PATH }`,
      })
    }
  })
}

function usesHashStrategy(masking: { columns: { strategy: string }[]; custom: { strategy: string }[] } | undefined): boolean {
  if (masking === undefined) return false
  return [...masking.columns, ...masking.custom].some((rule) => rule.strategy === 'hash')
}

/** The parsed gateway configuration: defaults filled, durations in ms, sizes in bytes, paths absolute. */
export type GatewayConfig = z.output<ReturnType<typeof createConfigSchema>>

/** One entry of `connections`, discriminated on `type`. */
export type ConnectionConfig = GatewayConfig['connections'][number]

/** A PostgreSQL connection. */
export type PostgresConnection = Extract<ConnectionConfig, { type: 'postgres' }>

/** A MySQL or MariaDB connection. */
export type MysqlConnection = Extract<ConnectionConfig, { type: 'mysql' }>

/** A byte-passthrough TCP connection. */
export type TcpConnection = Extract<ConnectionConfig, { type: 'tcp' }>

/** A reverse-proxied HTTP API. */
export type HttpConnection = Extract<ConnectionConfig, { type: 'http' }>

/** A fixed command run under a pty or pipes as `runAs`. */
export type CommandConnection = Extract<ConnectionConfig, { type: 'command' }>

/** An OIDC issuer whose tokens the gateway accepts. */
export type OidcIssuerConfig = GatewayConfig['auth']['oidc'][number]

/** A static service token, stored as its SHA-256. */
export type ServiceTokenConfig = GatewayConfig['auth']['serviceTokens'][number]

/** The guardrails of a SQL connection. */
export type SqlGuardrailsConfig = NonNullable<PostgresConnection['guardrails']>

/** One custom guardrail rule of a SQL connection. */
export type SqlRuleConfig = SqlGuardrailsConfig['rules'][number]

/** The masking of a connection. */
export type MaskingConfig = NonNullable<PostgresConnection['masking']>

/** A secret reference held by a connection, with where it sits under the connection. */
export interface ConnectionSecret {
  /** Keys from the connection down to the reference, e.g. `['upstream', 'password']`. */
  path: string[]
  ref: SecretRef
}

/** Every secret reference `connection` holds, with its location. */
export function connectionSecrets(connection: ConnectionConfig): ConnectionSecret[] {
  switch (connection.type) {
    case 'postgres':
    case 'mysql':
      return connection.upstream.password === undefined
        ? []
        : [{ path: ['upstream', 'password'], ref: connection.upstream.password }]
    case 'http':
      return refsIn(connection.upstream.headers, ['upstream', 'headers'])
    case 'command':
      return refsIn(connection.env, ['env'])
    case 'tcp':
      return []
  }
}

function refsIn(values: Record<string, string | SecretRef>, path: string[]): ConnectionSecret[] {
  return Object.entries(values).flatMap(([name, value]) => (isSecretRef(value) ? [{ path: [...path, name], ref: value }] : []))
}

/**
 * Every secret reference a connection holds (upstream password, header and environment
 * references): what the gateway must read to authenticate upstream, and what the credential
 * canary masks in everything the connection returns.
 */
export function secretRefsOf(connection: ConnectionConfig): SecretRef[] {
  return connectionSecrets(connection).map((entry) => entry.ref)
}
