import { describe, expect, it } from 'vitest'

import { parseBytes, parseDuration } from '../../../src/config/index.js'
import { AirlockError } from '../../../src/errors.js'

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

describe('parseDuration', () => {
  it.each<[string | number, number]>([
    ['8h', 8 * HOUR],
    ['30m', 30 * MINUTE],
    ['10s', 10 * SECOND],
    ['500ms', 500],
    ['1h30m', HOUR + 30 * MINUTE],
    ['1h30m15s250ms', HOUR + 30 * MINUTE + 15 * SECOND + 250],
    ['2d', 48 * HOUR],
    ['1.5h', 90 * MINUTE],
    ['0.5s', 500],
    [' 5m ', 5 * MINUTE],
    ['0', 0],
    ['0s', 0],
    [1500, 1500],
    [0, 0],
  ])('%j is %d ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected)
  })

  it.each<[string | number]>([
    [''],
    ['8'],
    ['8x'],
    ['h'],
    ['8H'],
    ['-5m'],
    ['1h 30m'],
    ['30m1h'],
    ['1h1h'],
    ['5 minutes'],
    ['1e3ms'],
    [-1],
    [1.5],
    [Number.NaN],
    [Number.POSITIVE_INFINITY],
  ])('rejects %j with a config error', (input) => {
    const error = catchError(() => parseDuration(input))
    expect(error.code).toBe('config')
    expect(error.hint).toBeTruthy()
  })

  it('tells a bare number to add a unit', () => {
    expect(catchError(() => parseDuration('500')).hint).toMatch(/add a unit/)
  })
})

describe('parseBytes', () => {
  it.each<[string | number, number]>([
    ['1MiB', 1024 * 1024],
    ['64KiB', 64 * 1024],
    ['2GiB', 2 * 1024 ** 3],
    ['512B', 512],
    ['1.5KiB', 1536],
    [' 1MiB ', 1024 * 1024],
    [65536, 65536],
    [0, 0],
  ])('%j is %d bytes', (input, expected) => {
    expect(parseBytes(input)).toBe(expected)
  })

  it.each<[string | number]>([[''], ['1'], ['1MB'], ['1mib'], ['1 MiB'], ['MiB'], ['-1KiB'], ['1TiB'], [-1], [0.5]])(
    'rejects %j with a config error',
    (input) => {
      expect(catchError(() => parseBytes(input)).code).toBe('config')
    },
  )

  it('points decimal units to binary ones', () => {
    expect(catchError(() => parseBytes('1MB')).hint).toMatch(/MiB/)
  })
})

function catchError(run: () => unknown): AirlockError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(AirlockError)
    return error as AirlockError
  }
  throw new Error('expected an error')
}
