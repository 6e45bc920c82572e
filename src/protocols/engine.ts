/**
 * The contract between the gateway and a protocol engine. An engine reaches the upstream service
 * with the held credential and relays the tunnel to it; it never sees WebSockets, policy or audit.
 */
import type { Logger } from 'pino'
import type { Identity } from '../auth/identity.js'
import type { ConnectionConfig, SecretSource } from '../config/index.js'
import type { StatementHooks } from './hooks.js'
import type { OpenParams } from '../tunnel/protocol.js'
import type { CloseReason, Transport } from '../tunnel/transport.js'

export interface EngineSession {
  id: string
  identity: Identity
  connection: ConnectionConfig
  params: OpenParams
  transport: Transport
  secrets: SecretSource
  logger: Logger
  /** Policy and audit for each statement; engines that do not parse statements ignore it. */
  hooks?: StatementHooks
  /** What the engine tells the gateway's audit about the session beyond statements. */
  report?: (event: EngineReport) => void
}

/** Session facts an engine reports: the gateway records them (engines never import audit). */
export type EngineReport =
  /** The session's recording, once it is closed: its path and the SHA-256 of its bytes. */
  | { type: 'recording'; path: string; sha256: string; bytes: number }
  /** Input refused by a deny pattern: extra arguments, a one-off run's input, or an interactive line (masked). */
  | { type: 'blocked'; rule: string; message: string; where: 'args' | 'input' | 'line'; text?: string }
  /** Values masked in the session's output, by detector (`canary`: the connection's secrets), when it ends. */
  | { type: 'masked'; counts: Record<string, number> }

export interface ProtocolEngine {
  /**
   * Reaches (and authenticates to) the upstream. Throws an AirlockError — `upstream-unavailable`
   * when the service cannot be reached — whose message is safe to show the caller.
   */
  open(session: EngineSession): Promise<UpstreamLink>
}

export interface UpstreamLink {
  /** Relays until either side ends and resolves with why; closing the transport ends it. */
  relay(): Promise<CloseReason>
  /** Releases the upstream without relaying (the client left while it was being reached). */
  abort(): void
}
