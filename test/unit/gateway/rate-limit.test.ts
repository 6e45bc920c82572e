import { expect, it } from 'vitest'
import { RateLimiter } from '../../../src/gateway/rate-limit.js'

it('allows a burst of the per-minute rate, then refills over time, per key', () => {
  let now = 0
  const limiter = new RateLimiter(60, () => now)
  for (let i = 0; i < 60; i++) expect(limiter.take('10.0.0.1')).toBe(true)
  expect(limiter.take('10.0.0.1')).toBe(false)
  expect(limiter.take('10.0.0.2')).toBe(true)
  now += 1_000
  expect(limiter.take('10.0.0.1')).toBe(true)
  expect(limiter.take('10.0.0.1')).toBe(false)
})
