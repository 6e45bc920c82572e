import { expect, it } from 'vitest'
import { type CpuProfile, shortUrl, summarizeCpuProfile } from '../../../bench/cpuprofile.js'

const frame = (functionName: string, url = '', lineNumber = -1) => ({ functionName, url, lineNumber })

// Two call paths into the same `send`, one native write, idle and GC; samples 1 ms apart.
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)') },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('send', 'file:///repo/node_modules/ws/lib/sender.js', 353) },
    { id: 4, callFrame: frame('send', 'file:///repo/node_modules/ws/lib/sender.js', 353) },
    { id: 5, callFrame: frame('writeBuffer') },
    { id: 6, callFrame: frame('(garbage collector)') },
    { id: 7, callFrame: frame('', 'file:///repo/dist/src/tunnel/pipe.js', 20) },
  ],
  startTime: 1_000_000,
  endTime: 1_010_000,
  samples: [2, 2, 3, 4, 5, 5, 5, 6, 7, 2],
  timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
}

it('charges samples to the top frame and merges a function reached by several paths', () => {
  const summary = summarizeCpuProfile(profile, { root: '/repo' })
  expect(summary.windowed).toBe(false)
  expect(summary.samples).toBe(10)
  expect(summary.idleShare).toBeCloseTo(0.3)
  expect(summary.busyMs).toBeCloseTo(7)
  expect(summary.functions.map((entry) => [entry.name, entry.location, entry.samples])).toEqual([
    ['writeBuffer', '', 3],
    ['send', 'ws/lib/sender.js:354', 2],
    ['(anonymous)', 'dist/src/tunnel/pipe.js:21', 1],
    ['(garbage collector)', '', 1],
  ])
  expect(summary.functions[0]?.share).toBeCloseTo(3 / 7)
  expect(summary.files.map((entry) => [entry.name, entry.samples])).toEqual([
    ['(native)', 3],
    ['ws/lib/sender.js', 2],
    ['(garbage collector)', 1],
    ['dist/src/tunnel/pipe.js', 1],
  ])
})

it('counts only the samples inside a window of the profile clock', () => {
  // Sample i is taken at startTime + (i + 1) ms: the window [1_003_000, 1_007_000] holds samples 2..6.
  const summary = summarizeCpuProfile(profile, { window: { startUs: 1_003_000, endUs: 1_007_000 } })
  expect(summary.windowed).toBe(true)
  expect(summary.samples).toBe(5)
  expect(summary.durationMs).toBe(4)
  expect(summary.functions.map((entry) => [entry.name, entry.samples])).toEqual([
    ['writeBuffer', 3],
    ['send', 2],
  ])
})

it('falls back to the whole profile when the window lies outside it', () => {
  expect(summarizeCpuProfile(profile, { window: { startUs: 0, endUs: 5 } }).windowed).toBe(false)
})

it('shortens script URLs', () => {
  expect(shortUrl('file:///work/main/dist/src/x.js', '/work/main')).toBe('dist/src/x.js')
  expect(shortUrl('file:///work/main/node_modules/ws/lib/receiver.js', '/work/main/')).toBe('ws/lib/receiver.js')
  expect(shortUrl('node:internal/streams/writable', '/work/main')).toBe('node:internal/streams/writable')
})
