import { expect, it } from 'vitest'
import { parseBenchArgs, UsageError } from '../../../bench/options.js'

const workloads = ['select-1', 'select-8', 'copy']

it('defaults to 5 rounds of 6 s at scale 10', () => {
  expect(parseBenchArgs([], workloads)).toMatchObject({ rounds: 5, durationS: 6, scale: 10, copyRows: 100_000, only: undefined, profile: false, quick: false })
})

it('makes --quick short, while explicit values still win', () => {
  expect(parseBenchArgs(['--quick'], workloads)).toMatchObject({ rounds: 2, durationS: 2, scale: 1, copyRows: 20_000 })
  expect(parseBenchArgs(['--quick', '--rounds', '3', '--duration=1.5'], workloads)).toMatchObject({ rounds: 3, durationS: 1.5 })
})

it('accepts --only as a list or repeated, and --profile', () => {
  expect(parseBenchArgs(['--only', 'select-8,copy', '--only=select-8', '--profile'], workloads)).toMatchObject({ only: ['select-8', 'copy'], profile: true })
})

it('rejects unknown workloads, flags and bad numbers', () => {
  expect(() => parseBenchArgs(['--only', 'tpcc'], workloads)).toThrow(UsageError)
  expect(() => parseBenchArgs(['--fast'], workloads)).toThrow(UsageError)
  expect(() => parseBenchArgs(['--rounds', '0'], workloads)).toThrow(UsageError)
  expect(() => parseBenchArgs(['--rounds', '2.5'], workloads)).toThrow(UsageError)
  expect(() => parseBenchArgs(['--duration'], workloads)).toThrow(UsageError)
})

it('picks policy variants with --variant, and rejects an unknown one', () => {
  const variants = ['default', 'no-audit', 'guardrails']
  expect(parseBenchArgs([], workloads, variants).variants).toBeUndefined()
  expect(parseBenchArgs(['--variant', 'no-audit,default', '--variant=no-audit', '--profile'], workloads, variants)).toMatchObject({ variants: ['no-audit', 'default'], profile: true })
  expect(() => parseBenchArgs(['--variant', 'read-only'], workloads, variants)).toThrow(/unknown variant "read-only" \(expected one of: default, no-audit, guardrails\)/)
  expect(() => parseBenchArgs(['--variant'], workloads, variants)).toThrow(UsageError)
})
