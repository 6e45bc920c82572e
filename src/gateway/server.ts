/**
 * The gateway's composition root: HTTP + WebSocket server, authentication and authorisation,
 * the session registry, and the hand-off of each tunnel to its protocol engine.
 *
 *   CLI ── upgrade /v1/connections/NAME/tunnel ──▶ Origin? rate? client version? draining?
 *                                                  token → identity → connection → access → cap
 *       ◀──────────── 101 + ready {session} ─────── engine.open() reached the upstream
 *       ◀═══════════════ relay ═══════════════════▶ engine.relay() until either side ends
 */
import { createReadStream, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { WebSocketServer } from 'ws'
import { type AuditLog, encodeCursor, openAuditLog, parseExpectParams, parseListQuery, parseTailQuery, type Redactor } from '../audit/index.js'
import { type Authenticator, createAuthenticator, hasAnyGroup, type Identity } from '../auth/index.js'
import { type ConnectionConfig, type GatewayConfig, parseDuration, type SecretSource } from '../config/index.js'
import { AirlockError, toAirlockError } from '../errors.js'
import { nativePrefilter } from '../policy/masking/native.js'
import type { EngineReport, ProtocolEngine } from '../protocols/engine.js'
import { ALLOW_ALL, type StatementHooks } from '../protocols/hooks.js'
import { createCommandEngine } from '../protocols/command/index.js'
import { createPostgresEngine } from '../protocols/postgres/engine.js'
import { tcpEngine } from '../protocols/tcp/engine.js'
import { CLIENT_HEADER, decodeOpenParams, OPEN_HEADER, type OpenParams, parseClientHeader, PROTOCOL_VERSION } from '../tunnel/protocol.js'
import { WsTransport } from '../tunnel/transport.js'
import { VERSION } from '../version.js'
import { commandBlockedEvent, connectionCanary, sessionEndEvent, sessionStartEvent, VerdictNotes, withAudit } from './audit-hooks.js'
import { commandMaskers } from './command-masking.js'
import { decodePathName, HttpError, refuseUpgrade, sendError, sendJson } from './http.js'
import { Metrics } from './metrics.js'
import { postgresMasking } from './masking.js'
import { createPolicyHooks } from './policy-hooks.js'
import { RateLimiter } from './rate-limit.js'
import { SessionRegistry } from './sessions.js'

export interface GatewayOptions {
  config: GatewayConfig
  logger: Logger
  secrets: SecretSource
  /** Engines by connection type; defaults to every engine this build has. */
  engines?: Partial<Record<ConnectionConfig['type'], ProtocolEngine>>
  authenticator?: Authenticator
  now?: () => number
  /** Ping interval of each tunnel. */
  keepaliveMs?: number
  /** Statement hooks per session (policy + audit); when absent, each connection's guardrails (allow-all without). */
  hooks?: (session: { id: string; identity: Identity; connection: ConnectionConfig }) => StatementHooks
  /** `false` runs without an audit log: for tests and benchmarks only; the configuration cannot turn audit off. */
  audit?: false
}

export interface Gateway {
  /** The base URL clients use (`http(s)://host:port/`). */
  readonly url: URL
  readonly sessions: SessionRegistry
  /**
   * Stops taking sessions, lets open ones run for up to `graceMs`, then closes them with a reason
   * and shuts the server down.
   */
  drain(graceMs?: number): Promise<void>
}

async function defaultEngines(config: GatewayConfig, secrets: SecretSource): Promise<Partial<Record<ConnectionConfig['type'], ProtocolEngine>>> {
  const command = createCommandEngine({ recordingsDir: config.recordings.dir, maskers: await commandMaskers(config, secrets) })
  return { tcp: tcpEngine, postgres: createPostgresEngine({ masking: postgresMasking(config, secrets) }), command }
}
const TUNNEL_PATH = /^\/v1\/connections\/([^/]+)\/tunnel$/
const SESSION_PATH = /^\/v1\/sessions\/([^/]+)$/
const CONNECTION_PATH = /^\/v1\/connections\/([^/]+)$/
const AUDIT_EVENT_PATH = /^\/v1\/audit\/events\/([^/]+)$/
const RECORDING_PATH = /^\/v1\/audit\/sessions\/(ses_[A-Za-z0-9_-]{1,64})\/recording$/
const IDENTITY_SESSIONS_PATH = /^\/v1\/identities\/([^/]+)\/sessions$/

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config, logger, secrets } = options
  const now = options.now ?? Date.now
  const engines = options.engines ?? (await defaultEngines(config, secrets))
  const authenticator =
    options.authenticator ?? createAuthenticator({ serviceTokens: config.auth.serviceTokens, oidc: config.auth.oidc, now })
  const connections = new Map(config.connections.map((connection) => [connection.name, connection]))
  const sessions = new SessionRegistry(
    {
      maxDurationMs: config.sessions.maxDuration,
      idleTimeoutMs: config.sessions.idleTimeout,
      maxPerIdentity: config.sessions.maxPerIdentity,
    },
    now,
  )
  // Fail closed: without a journal no statement could be recorded before it runs.
  let audit: AuditLog | undefined
  // A file is read again for each new store connection (rotation); a variable's value is read here.
  const passwordRef = config.audit.password
  const auditPassword = passwordRef === undefined ? undefined : 'file' in passwordRef ? passwordRef : { value: await secrets.read(passwordRef) }
  if (options.audit !== false) {
    try {
      audit = await openAuditLog({ store: config.audit.store, ...(auditPassword === undefined ? {} : { password: auditPassword }), logger, version: VERSION, now })
    } catch (error) {
      if (config.audit.required) throw error
      logger.error({ event: 'audit.disabled', reason: toAirlockError(error).message }, 'running WITHOUT an audit log (audit.required is false)')
    }
  }
  const verdictNotes = new VerdictNotes()
  /** Sessions whose end is not yet recorded: drain waits for them before closing the audit log. */
  let unrecorded = 0
  // Compiled (and the SQL parser loaded) before the first tunnel is accepted.
  const hooksFor =
    options.hooks ??
    (
      await createPolicyHooks({
        connections: config.connections,
        onVerdict: ({ decision, ...record }) => {
          if (audit !== undefined) verdictNotes.note({ decision, ...record })
          logger.info({ event: 'guardrail.verdict', ...record, allow: decision.allow, rule: decision.rule }, decision.allow ? 'guardrail exception' : 'guardrail verdict')
        },
      })
    ).hooksFor
  const upgradeLimiter = new RateLimiter(config.limits.upgradesPerMinutePerIp, now)
  /** Failed authentications per client address: past the rate they are answered 429, not logged one by one. */
  const failureLimiter = new RateLimiter(config.limits.upgradesPerMinutePerIp, now)
  const metrics = new Metrics()
  const countTunnel = metrics.counter('airlock_tunnels_total', 'Tunnels opened, by connection')
  const countRefusal = metrics.counter('airlock_refusals_total', 'Requests and upgrades refused, by error code')
  const countBytes = metrics.counter('airlock_tunnel_bytes_total', 'Bytes relayed by ended tunnels, by direction')
  metrics.gauge('airlock_sessions_active', 'Open sessions', () => sessions.size)
  if (audit !== undefined) {
    const log = audit
    metrics.gauge('airlock_audit_available', '1 while the audit log can record new sessions (journal writable, store reachable)', () => (log.available ? 1 : 0))
    metrics.gauge('airlock_audit_lag_records', 'Audit records journaled and not yet in the store', () => log.status().lag)
  }
  let draining = false

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.limits.maxPayload,
    perMessageDeflate: false,
    clientTracking: false,
  })

  const tls = config.listen.tls
  const server: Server = tls
    ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) })
    : createHttpServer()
  server.headersTimeout = config.limits.headerTimeout
  server.requestTimeout = Math.max(config.limits.headerTimeout, 30_000)

  const requireIdentity = async (request: IncomingMessage): Promise<Identity> => {
    try {
      return await authenticator.authenticate(request.headers.authorization)
    } catch (error) {
      const failure = toAirlockError(error)
      if (!failureLimiter.take(clientAddress(request))) {
        throw new AirlockError('limit', 'too many failed authentications from this address', { hint: 'check the token, and retry in a minute' })
      }
      const path = new URL(request.url ?? '/', 'http://gateway').pathname
      logger.warn({ event: 'auth.failure', client: clientAddress(request), path, reason: failure.message }, 'authentication failed')
      audit?.authFailure({ address: clientAddress(request), path, code: failure.code, reason: failure.message })
      throw failure
    }
  }

  /** The named connection if the identity may use it: unknown names are `usage` (404), others' are `forbidden`. */
  const authorize = (identity: Identity, name: string): ConnectionConfig => {
    const connection = connections.get(name)
    if (connection === undefined) {
      throw new HttpError(404, 'usage', `unknown connection ${JSON.stringify(name)}`, { hint: 'list what you may use with `airlock connections`' })
    }
    if (!hasAnyGroup(identity, connection.access.groups)) {
      throw new AirlockError('forbidden', `${identity.display} may not use connection ${name}`, {
        hint: 'ask a gateway admin for access to it',
      })
    }
    sessions.assertNotRevoked(identity)
    return connection
  }

  const requireAdmin = async (request: IncomingMessage): Promise<Identity> => {
    const identity = await requireIdentity(request)
    if (!hasAnyGroup(identity, config.auth.adminGroups)) {
      throw new AirlockError('forbidden', `${identity.display} is not a gateway admin`, {
        hint: 'admin routes need a group listed in auth.adminGroups',
      })
    }
    // A revoked admin (a stolen token, most often) may not read the audit or end others' sessions.
    sessions.assertNotRevoked(identity, 'admin actions')
    return identity
  }

  const routes = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const url = new URL(request.url ?? '/', 'http://gateway')
    const method = request.method ?? 'GET'
    if (method === 'GET' && url.pathname === '/healthz') {
      const auditDown = audit !== undefined && config.audit.required && !audit.available
      return sendJson(response, draining || auditDown ? 503 : 200, {
        ok: !draining && !auditDown,
        draining,
        sessions: sessions.size,
        audit: audit === undefined ? 'off' : audit.status(),
      })
    }
    if (method === 'GET' && url.pathname === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
      response.end(metrics.render())
      return
    }
    if (method === 'GET' && url.pathname === '/.well-known/airlock') {
      return sendJson(response, 200, {
        version: VERSION,
        proto: PROTOCOL_VERSION,
        oidc: config.auth.oidc
          .filter((issuer) => !issuer.machine)
          .map((issuer) => ({ issuer: issuer.issuer, cliClientId: issuer.cliClientId, scopes: issuer.scopes, audience: issuer.audience })),
      })
    }
    if (method === 'GET' && url.pathname === '/v1/whoami') {
      const identity = await requireIdentity(request)
      return sendJson(response, 200, {
        kind: identity.kind,
        id: identity.id,
        name: identity.display,
        groups: identity.groups,
        admin: hasAnyGroup(identity, config.auth.adminGroups),
        expiresAt: identity.expiresAt === undefined ? null : new Date(identity.expiresAt).toISOString(),
      })
    }
    if (method === 'GET' && url.pathname === '/v1/connections') {
      const identity = await requireIdentity(request)
      return sendJson(response, 200, {
        connections: config.connections
          .filter((connection) => hasAnyGroup(identity, connection.access.groups))
          .map((connection) => ({ name: connection.name, type: connection.type, description: connection.description ?? null })),
      })
    }
    const connectionMatch = CONNECTION_PATH.exec(url.pathname)
    if (method === 'GET' && connectionMatch !== null) {
      const identity = await requireIdentity(request)
      const connection = authorize(identity, decodePathName(connectionMatch[1]!))
      return sendJson(response, 200, {
        name: connection.name,
        type: connection.type,
        description: connection.description ?? null,
        ...(connection.type === 'postgres' || connection.type === 'mysql' ? { database: connection.upstream.database, user: connection.upstream.user } : {}),
      })
    }
    if (method === 'GET' && url.pathname === '/v1/sessions') {
      await requireAdmin(request)
      return sendJson(response, 200, { sessions: sessions.list() })
    }
    const sessionMatch = SESSION_PATH.exec(url.pathname)
    if (method === 'DELETE' && sessionMatch !== null) {
      const admin = await requireAdmin(request)
      const id = decodePathName(sessionMatch[1]!)
      const session = sessions.get(id)
      if (session === undefined) throw new HttpError(404, 'usage', `no live session ${id}`, { hint: 'list sessions with `airlock sessions list`' })
      if (audit?.append({ type: 'admin.kill', identity: admin.id, user: admin.display, session: id, killed: true }, { durable: true }) === false && config.audit.required) {
        throw new HttpError(503, 'upstream-unavailable', 'the audit log cannot record this action, so it was not taken', { hint: 'see the gateway log' })
      }
      sessions.kill(id, { code: 'forbidden', message: `session ended by gateway admin ${admin.display}` })
      logger.info({ event: 'session.kill', session: id, admin: admin.id }, 'session killed by admin')
      return sendJson(response, 200, { killed: id })
    }
    const identityMatch = IDENTITY_SESSIONS_PATH.exec(url.pathname)
    if (method === 'DELETE' && identityMatch !== null) {
      // Revoke an identity: end its sessions, refuse new ones for `?for=DURATION` or until restart.
      const admin = await requireAdmin(request)
      const revoked = decodePathName(identityMatch[1]!)
      const period = url.searchParams.get('for')
      const until = period === null ? Number.POSITIVE_INFINITY : now() + revocationPeriod(period)
      const record = { type: 'admin.revoke' as const, identity: admin.id, user: admin.display, revoked, sessions: sessions.idsFor(revoked), ...(until === Number.POSITIVE_INFINITY ? {} : { until: new Date(until).toISOString() }) }
      if (audit?.append(record, { durable: true }) === false && config.audit.required) {
        throw new HttpError(503, 'upstream-unavailable', 'the audit log cannot record this action, so it was not taken', { hint: 'see the gateway log' })
      }
      const killed = sessions.revoke(revoked, admin.display, until)
      logger.info({ event: 'identity.revoke', revoked, sessions: killed.length, until: record.until ?? null, admin: admin.id }, 'identity revoked by admin')
      return sendJson(response, 200, { identity: revoked, killed, until: record.until ?? null })
    }
    if (method === 'GET' && url.pathname.startsWith('/v1/audit/')) return auditRoute(request, response, url)
    throw new HttpError(404, 'usage', `no route ${method} ${url.pathname}`)
  }

  /** `GET /v1/audit/...` (admin): events, one event, tail (long poll), verify, head, export (JSON lines). */
  const auditRoute = async (request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> => {
    const admin = await requireAdmin(request)
    if (audit === undefined) throw new HttpError(503, 'upstream-unavailable', 'this gateway runs without an audit log', { hint: 'see the gateway log' })
    const params = url.searchParams
    const eventMatch = AUDIT_EVENT_PATH.exec(url.pathname)
    if (url.pathname === '/v1/audit/events') {
      const query = parseListQuery(params, now())
      const page = await audit.list(query.filter, query.limit, query.before)
      return sendJson(response, 200, { events: page.events, next: page.next === null ? null : String(page.next) })
    }
    if (eventMatch !== null) {
      const id = decodePathName(eventMatch[1]!)
      const event = await audit.get(id)
      if (event === undefined) throw new HttpError(404, 'usage', `no audit event ${id}`, { hint: 'list events with `airlock audit list`' })
      return sendJson(response, 200, event)
    }
    if (url.pathname === '/v1/audit/tail') {
      const query = parseTailQuery(params, now())
      const gone = new AbortController()
      response.once('close', () => gone.abort())
      const page = await audit.tail(query.filter, query.cursor, query.limit, query.waitMs, gone.signal)
      return sendJson(response, 200, { events: page.events, cursor: encodeCursor(page.cursor) })
    }
    if (url.pathname === '/v1/audit/verify') {
      return sendJson(response, 200, await audit.verify(parseExpectParams(params)))
    }
    if (url.pathname === '/v1/audit/head') {
      return sendJson(response, 200, { heads: await audit.heads() })
    }
    const recordingMatch = RECORDING_PATH.exec(url.pathname)
    if (recordingMatch !== null) return sendRecording(response, admin, recordingMatch[1]!)
    if (url.pathname === '/v1/audit/export') {
      const format = params.get('format') ?? 'jsonl'
      if (format !== 'jsonl') throw new AirlockError('usage', 'export --format must be jsonl')
      const chain = params.get('chain') ?? undefined
      const filter: Record<string, string> = { format, ...(chain === undefined ? {} : { chain }) }
      if (!audit.append({ type: 'admin.export', identity: admin.id, user: admin.display, filter }, { durable: true }) && config.audit.required) {
        throw new HttpError(503, 'upstream-unavailable', 'the audit log cannot record this export, so it was not started', { hint: 'see the gateway log' })
      }
      let started = false
      const write = async (lines: string[]): Promise<void> => {
        if (!started) {
          response.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' })
          started = true
        }
        if (response.destroyed) throw new AirlockError('usage', 'the client left')
        if (!response.write(`${lines.join('\n')}\n`)) await new Promise((resolve) => response.once('drain', resolve))
      }
      try {
        await audit.export(write, chain === undefined ? {} : { chain })
      } catch (error) {
        if (!started) throw error
        // Headers are gone: cut the stream short so the client sees an incomplete export, never a silent one.
        response.destroy()
        return
      }
      if (!started) response.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' })
      response.end()
      return
    }
    throw new HttpError(404, 'usage', `no route GET ${url.pathname}`)
  }

  /** A command session's recording (asciicast v2) for `airlock audit replay`; reading it is recorded. */
  const sendRecording = async (response: ServerResponse, admin: Identity, id: string): Promise<void> => {
    const file = createReadStream(join(config.recordings.dir, `${id}.cast`))
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve())
      file.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'ENOENT'
            ? new HttpError(404, 'usage', `no recording of session ${id}`, { hint: 'only command sessions are recorded; list them with `airlock audit list --type session.end`' })
            : error,
        ),
      )
    })
    if (audit?.append({ type: 'admin.replay', identity: admin.id, user: admin.display, session: id }, { durable: true }) === false && config.audit.required) {
      file.destroy()
      throw new HttpError(503, 'upstream-unavailable', 'the audit log cannot record this replay, so it was not started', { hint: 'see the gateway log' })
    }
    response.writeHead(200, { 'content-type': 'application/x-asciicast', 'cache-control': 'no-store' })
    file.pipe(response)
    file.once('error', () => response.destroy())
  }

  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    routes(request, response).catch((error: unknown) => {
      const failure = toAirlockError(error)
      if (failure.code === 'internal') logger.error({ err: error, path: request.url }, 'request failed')
      countRefusal({ code: failure.code })
      sendError(response, failure)
    })
  })

  const admitTunnel = async (
    request: IncomingMessage,
  ): Promise<{ identity: Identity; connection: ConnectionConfig; engine: ProtocolEngine; params: OpenParams; clientVersion: string }> => {
    const url = new URL(request.url ?? '/', 'http://gateway')
    const match = TUNNEL_PATH.exec(url.pathname)
    if (match === null) throw new HttpError(404, 'usage', `no route ${url.pathname}`)
    if (request.headers.origin !== undefined) {
      throw new AirlockError('forbidden', 'tunnels cannot be opened from a web browser', { hint: 'use the airlock CLI' })
    }
    if (!upgradeLimiter.take(clientAddress(request))) {
      throw new AirlockError('limit', 'too many tunnel requests from this address', { hint: 'slow down and retry in a minute' })
    }
    const client = parseClientHeader(header(request, CLIENT_HEADER))
    if (client === undefined || client.proto !== PROTOCOL_VERSION) {
      throw new AirlockError(
        'incompatible',
        client === undefined
          ? `this gateway (airlock ${VERSION}) needs an airlock CLI speaking tunnel protocol ${PROTOCOL_VERSION}`
          : `this gateway speaks tunnel protocol ${PROTOCOL_VERSION}; airlock CLI ${client.version} speaks ${client.proto}`,
        { hint: 'install an airlock CLI that matches the gateway version' },
      )
    }
    if (draining) throw new HttpError(503, 'limit', 'the gateway is shutting down', { hint: 'retry in a moment; another gateway will take the session' })
    const identity = await requireIdentity(request)
    const connection = authorize(identity, decodePathName(match[1]!))
    const engine = engines[connection.type]
    if (engine === undefined) {
      throw new HttpError(501, 'upstream-unavailable', `connection ${connection.name}: this gateway cannot serve ${connection.type} connections yet`)
    }
    sessions.assertCanAdmit(identity)
    if (audit !== undefined && config.audit.required && !audit.available) {
      throw new HttpError(503, 'upstream-unavailable', 'the audit log is unavailable, so no session can start', {
        hint: 'sessions are refused rather than run unaudited; a gateway admin must fix audit.store (see the gateway log)',
      })
    }
    const params = decodeOpenParams(header(request, OPEN_HEADER))
    if (params === undefined) throw new AirlockError('usage', 'malformed Airlock-Open header')
    return { identity, connection, engine, params, clientVersion: client.version }
  }

  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy())
    admitTunnel(request).then(
      (admitted) => {
        wss.handleUpgrade(request, socket, head, (ws) => {
          const transport = new WsTransport(ws, { socket, peerReasons: false, ...(options.keepaliveMs === undefined ? {} : { keepaliveMs: options.keepaliveMs }) })
          let session
          try {
            // Checked again: another upgrade of the same identity may have been admitted meanwhile.
            session = sessions.add({
              identity: admitted.identity,
              connection: admitted.connection.name,
              clientAddress: clientAddress(request),
              clientVersion: admitted.clientVersion,
              transport,
            })
          } catch (error) {
            const failure = toAirlockError(error)
            countRefusal({ code: failure.code })
            transport.close(failure.toJSON())
            return
          }
          void runSession(session.id, admitted, transport)
        })
      },
      (error: unknown) => {
        const failure = toAirlockError(error)
        if (failure.code === 'internal') logger.error({ err: error }, 'upgrade failed')
        countRefusal({ code: failure.code })
        refuseUpgrade(socket, failure)
      },
    )
  })

  const runSession = async (
    id: string,
    admitted: Awaited<ReturnType<typeof admitTunnel>>,
    transport: WsTransport,
  ): Promise<void> => {
    const { identity, connection, engine, params } = admitted
    const sessionLogger = logger.child({ session: id, connection: connection.name, identity: identity.id })
    sessionLogger.info({ event: 'session.start', clientVersion: admitted.clientVersion }, 'session started')
    countTunnel({ connection: connection.name })
    const startedAt = now()
    let reason
    let redactor: Redactor | undefined
    let audited = false
    let recording: { path: string; sha256: string; bytes: number } | undefined
    let masked: Record<string, number> | undefined
    unrecorded++
    try {
      if (audit !== undefined) {
        redactor = await connectionCanary(connection, secrets)
        const clientAddress = sessions.get(id)?.clientAddress ?? 'unknown'
        const command = connection.type === 'command' ? { mode: params.mode ?? 'pty', args: params.args ?? [] } : undefined
        audited = audit.append(
          sessionStartEvent({ id, identity, connection: connection.name, clientAddress, clientVersion: admitted.clientVersion, ...(command ? { command } : {}) }, redactor),
          { durable: true },
        )
        if (!audited && config.audit.required) {
          throw new AirlockError('upstream-unavailable', 'the audit log cannot record this session, so it was not started', {
            hint: 'sessions are refused rather than run unaudited; a gateway admin must fix the audit journal (see the gateway log)',
          })
        }
      }
      const policy = hooksFor({ id, identity, connection })
      const hooks =
        audit !== undefined && redactor !== undefined
          ? withAudit(policy ?? ALLOW_ALL, { log: audit, required: config.audit.required, session: { id, identity, connection }, redactor, verdicts: verdictNotes })
          : policy
      const report = (event: EngineReport): void => {
        if (event.type === 'recording') recording = { path: event.path, sha256: event.sha256, bytes: event.bytes }
        else if (event.type === 'masked') masked = event.counts
        else if (audited) audit?.append(commandBlockedEvent({ id, identity, connection: connection.name }, event, redactor), { durable: true })
      }
      const link = await engine.open({ id, identity, connection, params, transport, secrets, logger: sessionLogger, report, ...(hooks ? { hooks } : {}) })
      if (transport.closed) {
        link.abort()
        reason = { message: 'client left before the upstream was ready' }
      } else {
        transport.control({ type: 'ready', session: id, connection: connection.name })
        reason = await link.relay()
        transport.close(reason)
      }
    } catch (error) {
      const failure = toAirlockError(error)
      sessionLogger.warn({ event: 'session.error', code: failure.code, err: failure.code === 'internal' ? error : undefined }, failure.message)
      reason = failure.toJSON()
      transport.close(reason)
    }
    countBytes({ direction: 'in' }, transport.bytesIn)
    countBytes({ direction: 'out' }, transport.bytesOut)
    sessionLogger.info(
      { event: 'session.end', reason: reason.message, code: reason.code, bytesIn: transport.bytesIn, bytesOut: transport.bytesOut, durationMs: now() - startedAt },
      'session ended',
    )
    if (audited) {
      const outcome = { reason, bytesIn: transport.bytesIn, bytesOut: transport.bytesOut, durationMs: now() - startedAt, ...(recording ? { recording } : {}), ...(masked ? { masked } : {}) }
      audit?.append(sessionEndEvent({ id, identity, connection: connection.name }, outcome, redactor), { durable: true })
    }
    unrecorded--
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = new URL(`${tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}/`)
  const maskingScan = nativePrefilter === undefined ? 'javascript' : `native-${nativePrefilter.simd()}`
  logger.info({ event: 'gateway.listen', url: url.href, tls: Boolean(tls), connections: config.connections.length, maskingScan }, 'gateway listening')
  if (nativePrefilter === undefined) {
    logger.warn({ event: 'gateway.masking-scan' }, 'the masking prefilter addon is not built (build/Release/airlock_prefilter.node): masking runs in JavaScript, several times slower; install a C compiler, make and Python, then run `npm run install` in the checkout (or `npm rebuild airlock` where it is installed)')
  }

  let drained: Promise<void> | undefined
  const drain = (graceMs = config.sessions.drainGrace): Promise<void> => {
    drained ??= (async () => {
      draining = true
      logger.info({ event: 'gateway.drain', sessions: sessions.size, graceMs }, 'draining: no new sessions')
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const deadline = now() + graceMs
      while (sessions.size > 0 && now() < deadline) await sleep(Math.min(100, graceMs))
      sessions.closeAll({ code: 'limit', message: 'the gateway is shutting down', hint: 'reconnect; another gateway will take the session' })
      const waitUntil = now() + 2_000
      while (sessions.size > 0 && now() < waitUntil) await sleep(20)
      sessions.stop()
      server.closeAllConnections()
      await closed
      const recordedBy = now() + 2_000
      while (unrecorded > 0 && now() < recordedBy) await sleep(20)
      await audit?.close('the gateway stopped')
      logger.info({ event: 'gateway.stopped' }, 'gateway stopped')
    })()
    return drained
  }

  return { url, sessions, drain }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function clientAddress(request: IncomingMessage): string {
  return request.socket.remoteAddress ?? 'unknown'
}

/** `?for=` of a revocation: a positive duration (`30m`, `8h`). */
function revocationPeriod(text: string): number {
  let ms = 0
  try {
    ms = parseDuration(text)
  } catch {
    // Answered below, in the caller's terms.
  }
  if (ms <= 0) throw new HttpError(400, 'usage', `for must be a positive duration like 30m or 8h, not ${JSON.stringify(text.slice(0, 40))}`)
  return ms
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
