import { afterEach, describe, expect, it, vi } from 'vitest'
import { AuthFailureRecorder, SUMMARY_ADDRESSES } from '../../../src/audit/auth-failures.js'
import type { AuditEventInput } from '../../../src/audit/record.js'

afterEach(() => {
  vi.useRealTimers()
})

function setup(limits: { perAddress?: number; perWindow?: number } = {}) {
  vi.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') })
  const events: AuditEventInput[] = []
  const recorder = new AuthFailureRecorder((event) => (events.push(event), true), { windowMs: 60_000, ...limits })
  const fail = (address: string, times = 1): void => {
    for (let i = 0; i < times; i++) recorder.record({ address, path: '/v1/connections', code: 'unauthenticated', reason: 'bad token' })
  }
  const individual = () => events.filter((event) => event.type === 'auth.failure')
  const summaries = () => events.filter((event) => event.type === 'auth.failure.summary')
  return { recorder, events, fail, individual, summaries }
}

describe('AuthFailureRecorder', () => {
  it('records the first failures of each address one by one, then one summary with the count when the window ends', () => {
    const { fail, individual, summaries } = setup({ perAddress: 3 })
    fail('203.0.113.7', 1000)
    fail('198.51.100.2', 2)
    expect(individual().map((event) => (event as { client: { address: string } }).client.address)).toEqual([
      '203.0.113.7',
      '203.0.113.7',
      '203.0.113.7',
      '198.51.100.2',
      '198.51.100.2',
    ])
    expect(summaries()).toEqual([])
    vi.advanceTimersByTime(60_000)
    expect(summaries()).toEqual([
      { type: 'auth.failure.summary', since: '2026-01-01T00:00:00.000Z', count: 997, clients: [{ address: '203.0.113.7', count: 997 }], otherClients: 0 },
    ])
    // A new window records again.
    fail('203.0.113.7')
    expect(individual()).toHaveLength(6)
  })

  it('writes nothing more when no failure went unrecorded', () => {
    const { fail, events } = setup({ perAddress: 3 })
    fail('203.0.113.7', 3)
    vi.advanceTimersByTime(120_000)
    expect(events).toHaveLength(3)
  })

  it('caps failures recorded one by one across all addresses, and names at most SUMMARY_ADDRESSES in the summary', () => {
    const { recorder, fail, individual, summaries } = setup({ perAddress: 2, perWindow: 20 })
    for (let i = 0; i < 200; i++) fail(`2001:db8::${i.toString(16)}`, 3)
    expect(individual()).toHaveLength(20)
    recorder.flush()
    const [summary] = summaries() as Extract<AuditEventInput, { type: 'auth.failure.summary' }>[]
    expect(summary!.count).toBe(600 - 20)
    expect(summary!.clients).toHaveLength(SUMMARY_ADDRESSES)
    expect(summary!.otherClients).toBe(200 - SUMMARY_ADDRESSES)
    expect(summary!.clients[0]!.count).toBe(3)
  })

  it('bounds the records one address can cause, however many failures it sends', () => {
    const { fail, events } = setup()
    for (let minute = 0; minute < 10; minute++) {
      fail('203.0.113.7', 10_000)
      vi.advanceTimersByTime(60_000)
    }
    // Ten windows: ten records one by one (the default) and one summary each.
    expect(events).toHaveLength(10 * 11)
  })
})
