import { expect, it } from 'vitest'
import { median, rotate } from '../../../bench/stats.js'

it('takes the median of odd and even counts, ignoring non-finite values', () => {
  expect(median([3, 1, 2])).toBe(2)
  expect(median([4, 1, 3, 2])).toBe(2.5)
  expect(median([Number.NaN, 5])).toBe(5)
  expect(median([])).toBeUndefined()
})

it('rotates so every round starts with another path', () => {
  expect(rotate(['a', 'b', 'c'], 0)).toEqual(['a', 'b', 'c'])
  expect(rotate(['a', 'b', 'c'], 1)).toEqual(['b', 'c', 'a'])
  expect(rotate(['a', 'b', 'c'], 5)).toEqual(['c', 'a', 'b'])
  expect(rotate([], 3)).toEqual([])
})
