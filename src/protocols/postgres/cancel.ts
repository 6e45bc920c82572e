/**
 * Cancel keys. Clients see a BackendKeyData of the gateway's own — random, with this gateway's id
 * in the high bits of the process id — never the upstream's. A CancelRequest arrives on a new
 * tunnel, is matched by key *and* identity, and only then is the real key sent upstream.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto'
import { connect } from 'node:net'
import { serializeCancelRequest } from './messages.js'

export interface CancelTarget {
  identityId: string
  host: string
  port: number
  processId: number
  secretKey: Buffer
}

export interface ClientKey {
  processId: number
  secretKey: Buffer
}

export class CancelRegistry {
  /** 7 bits, so process ids stay positive int32s: which gateway issued a key. */
  readonly gatewayId = randomInt(0, 128)
  private readonly targets = new Map<number, { key: Buffer; target: CancelTarget }>()

  register(target: CancelTarget): ClientKey {
    let processId: number
    do processId = (this.gatewayId << 24) | randomInt(1, 1 << 24)
    while (this.targets.has(processId))
    const secretKey = randomBytes(4)
    this.targets.set(processId, { key: secretKey, target })
    return { processId, secretKey }
  }

  unregister(processId: number): void {
    this.targets.delete(processId)
  }

  /**
   * Sends the real CancelRequest upstream when the key matches a live session of the same
   * identity. Like PostgreSQL, answers nothing either way: a wrong key learns nothing.
   */
  async cancel(identityId: string, processId: number, secretKey: Buffer): Promise<boolean> {
    const entry = this.targets.get(processId)
    if (entry === undefined || entry.key.length !== secretKey.length || !timingSafeEqual(entry.key, secretKey)) return false
    if (entry.target.identityId !== identityId) return false
    const { host, port, processId: upstreamPid, secretKey: upstreamKey } = entry.target
    await new Promise<void>((resolve) => {
      const socket = connect({ host, port }, () => socket.end(serializeCancelRequest(upstreamPid, upstreamKey)))
      socket.setTimeout(5_000, () => socket.destroy())
      socket.on('error', () => resolve())
      socket.on('close', () => resolve())
    })
    return true
  }
}
