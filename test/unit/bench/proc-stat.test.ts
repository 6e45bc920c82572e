import { expect, it } from 'vitest'
import { parseMachineTicks, parseProcFields, parseProcStatTimes } from '../../../bench/proc-stat.js'

it('reads utime and stime (fields 14 and 15), whatever the command name holds', () => {
  const fields = (comm: string) => `4242 (${comm}) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 0 0 20 0 11 0 5000 1000000 5000 18446744073709551615`
  expect(parseProcStatTimes(fields('node'))).toEqual({ user: 150, system: 25 })
  expect(parseProcStatTimes(fields('a) b (c'))).toEqual({ user: 150, system: 25 })
  expect(() => parseProcStatTimes('garbage')).toThrow()
})

it('reads name: value fields of /proc/PID/io and /proc/PID/status', () => {
  const fields = parseProcFields('rchar: 6976\nsyscr: 10\nsyscw: 3\nName:\tnode\nvoluntary_ctxt_switches:\t42\nnonvoluntary_ctxt_switches:\t7\n')
  expect(fields.get('syscr')).toBe(10)
  expect(fields.get('syscw')).toBe(3)
  expect(fields.get('voluntary_ctxt_switches')).toBe(42)
  expect(fields.get('nonvoluntary_ctxt_switches')).toBe(7)
  expect(fields.has('Name')).toBe(false)
})

it('counts idle and iowait as not busy in /proc/stat', () => {
  const stat = 'cpu  100 10 50 800 40 5 5 0 0 0\ncpu0 50 5 25 400 20 2 3 0 0 0\nintr 1 2 3\n'
  expect(parseMachineTicks(stat)).toEqual({ busy: 170, total: 1010 })
})
