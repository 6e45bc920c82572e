import { describe, expect, it } from 'vitest'
import { parseCopyCount, parsePgbenchOutput, parsePsqlTiming } from '../../../bench/pgbench-output.js'

const selectOnly = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 6 s
number of transactions actually processed: 90734
number of failed transactions: 0 (0.000%)
latency average = 0.528 ms
initial connection time = 12.345 ms
tps = 15150.812345 (without initial connection time)
`

describe('parsePgbenchOutput', () => {
  it('reads the totals of a select-only run', () => {
    expect(parsePgbenchOutput(selectOnly)).toEqual({
      transactions: 90734,
      failed: 0,
      tps: 15150.812345,
      latencyMs: 0.528,
      connectionMs: undefined,
      initialConnectionMs: 12.345,
      aborted: false,
    })
  })

  it('reads the connection time of a -C run', () => {
    const output = selectOnly
      .replace('initial connection time = 12.345 ms\n', 'average connection time = 3.839 ms\n')
      .replace('(without initial connection time)', '(including reconnection times)')
    expect(parsePgbenchOutput(output)).toMatchObject({ connectionMs: 3.839, initialConnectionMs: undefined, tps: 15150.812345 })
  })

  it('reports failed transactions and aborted runs', () => {
    const output = selectOnly.replace('number of failed transactions: 0 (0.000%)', 'number of failed transactions: 7 (0.010%)') + 'Run was aborted; the above results are incomplete.\n'
    expect(parsePgbenchOutput(output)).toMatchObject({ failed: 7, aborted: true })
    expect(parsePgbenchOutput(selectOnly, 'pgbench: error: client 3 script 0 aborted in command 1 query 0: ERROR:  boom')).toMatchObject({ aborted: true })
    expect(parsePgbenchOutput(selectOnly, 'client 3 aborted in command 1 (SQL) of script 0; ...')).toMatchObject({ aborted: true })
    expect(parsePgbenchOutput(selectOnly, 'pgbench: warning: something else')).toMatchObject({ aborted: false })
  })

  it('throws when pgbench printed no totals', () => {
    expect(() => parsePgbenchOutput('pgbench: error: connection to server failed\n')).toThrow(/no totals/)
  })
})

describe('psql output', () => {
  it('reads \\timing and the COPY count', () => {
    const stdout = 'Timing is on.\nCOPY 100000\nTime: 812.345 ms\n'
    expect(parsePsqlTiming(stdout)).toBe(812.345)
    expect(parseCopyCount(stdout)).toBe(100000)
    expect(parsePsqlTiming('Time: 61234.5 ms (01:01.235)\n')).toBe(61234.5)
    expect(parseCopyCount('Timing is on.\n')).toBeUndefined()
  })
})
