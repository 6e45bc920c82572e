import { EventEmitter } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import type { Identity } from '../../../src/auth/index.js'
import { SessionRegistry } from '../../../src/gateway/sessions.js'
import type { CloseReason, Transport } from '../../../src/tunnel/index.js'

/** A transport that records how it was closed; the registry only reads counters and closes. */
class RecordingTransport extends EventEmitter {
  bytesIn = 0
  bytesOut = 0
  closed = false
  reason: CloseReason | undefined
  close(reason: CloseReason): void {
    if (this.closed) return
    this.closed = true
    this.reason = reason
    this.emit('close', reason)
  }
}

const alice: Identity = { kind: 'service', id: 'service:alice', display: 'alice', groups: ['eng'] }
const bob: Identity = { kind: 'service', id: 'service:bob', display: 'bob', groups: ['eng'] }

let registry: SessionRegistry
afterEach(() => registry?.stop())

function setup(limits = { maxDurationMs: 60_000, idleTimeoutMs: 10_000, maxPerIdentity: 2 }) {
  let now = 1_000_000
  registry = new SessionRegistry(limits, () => now, 60_000)
  const open = (identity: Identity) => {
    const transport = new RecordingTransport()
    const session = registry.add({ identity, connection: 'db', clientAddress: '127.0.0.1', clientVersion: '0.1.0', transport: transport as unknown as Transport })
    return { session, transport }
  }
  return { open, advance: (ms: number) => (now += ms) }
}

describe('SessionRegistry', () => {
  it('caps sessions per identity, not globally', () => {
    const { open } = setup()
    open(alice)
    open(alice)
    expect(() => open(alice)).toThrow(expect.objectContaining({ code: 'limit' }))
    expect(() => open(bob)).not.toThrow()
  })

  it('frees a slot when a session closes', () => {
    const { open } = setup()
    const first = open(alice)
    open(alice)
    first.transport.close({ message: 'done' })
    expect(() => open(alice)).not.toThrow()
    expect(registry.size).toBe(2)
  })

  it('ends a session at maxDuration even while it is busy', () => {
    const { open, advance } = setup()
    const { transport } = open(alice)
    for (let i = 0; i < 7; i++) {
      advance(9_000)
      transport.bytesIn += 10
      registry.sweep()
    }
    expect(transport.reason).toMatchObject({ code: 'limit', message: expect.stringMatching(/maximum duration \(1m\)/) })
  })

  it('ends a session idle for idleTimeout, and activity resets the clock', () => {
    const { open, advance } = setup()
    const { transport } = open(alice)
    advance(9_000)
    transport.bytesOut += 1
    registry.sweep()
    advance(9_000)
    registry.sweep()
    expect(transport.closed).toBe(false)
    advance(1_000)
    registry.sweep()
    expect(transport.reason).toMatchObject({ code: 'limit', message: expect.stringMatching(/idle/) })
  })

  it('kills by id and lists live sessions without secrets', () => {
    const { open } = setup()
    const { session, transport } = open(alice)
    expect(registry.list()).toEqual([expect.objectContaining({ id: session.id, identity: 'alice', connection: 'db' })])
    expect(registry.kill(session.id, { code: 'forbidden', message: 'killed' })).toBe(true)
    expect(transport.reason?.code).toBe('forbidden')
    expect(registry.kill('ses_unknown', { message: 'x' })).toBe(false)
    expect(registry.list()).toEqual([])
  })

  it('gives unguessable session ids', () => {
    const { open } = setup({ maxDurationMs: 1_000, idleTimeoutMs: 1_000, maxPerIdentity: 100 })
    const ids = new Set(Array.from({ length: 50 }, () => open(alice).session.id))
    expect(ids.size).toBe(50)
    for (const id of ids) expect(id).toMatch(/^ses_[A-Za-z0-9_-]{16}$/)
  })

  it('revokes an identity: ends its sessions only, refuses it until the period passes', () => {
    const { open, advance } = setup()
    const a1 = open(alice)
    const a2 = open(alice)
    const b = open(bob)
    expect(registry.revoke(alice.id, 'admin', 1_000_000 + 60_000).sort()).toEqual([a1.session.id, a2.session.id].sort())
    expect(a1.transport.reason).toMatchObject({ code: 'forbidden' })
    expect(a2.transport.closed).toBe(true)
    expect(b.transport.closed).toBe(false)
    expect(() => open(alice)).toThrow(expect.objectContaining({ code: 'forbidden' }))
    advance(59_999)
    expect(() => registry.assertNotRevoked(alice)).toThrow(expect.objectContaining({ code: 'forbidden' }))
    advance(1)
    expect(open(alice).transport.closed).toBe(false)
  })

  it('keeps a revocation without a period until the gateway restarts', () => {
    const { open, advance } = setup()
    registry.revoke(alice.id, 'admin', Number.POSITIVE_INFINITY)
    advance(365 * 86_400_000)
    expect(() => open(alice)).toThrow(expect.objectContaining({ code: 'forbidden' }))
    expect(open(bob).transport.closed).toBe(false)
  })
})
