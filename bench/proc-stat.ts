/**
 * What a process costs, from /proc: CPU time (utime + stime, fields 14 and 15 of /proc/PID/stat,
 * in clock ticks, all threads: for Node that includes libuv's pool and V8's GC and compiler
 * threads), read and write system calls (/proc/PID/io syscr/syscw, all threads: read/readv and
 * write/writev, which is what libuv and pgbouncer use on sockets, not recvmsg/sendmsg), and the
 * main thread's context switches (/proc/PID/status): a voluntary one is the event loop going to
 * sleep with nothing to do (so one wake-up), an involuntary one is being preempted.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** utime and stime in clock ticks from the text of /proc/PID/stat. */
export function parseProcStatTimes(stat: string): { user: number; system: number } {
  // Field 2 (comm) is parenthesised and may itself contain spaces and parentheses: split after the last ')'.
  const end = stat.lastIndexOf(')')
  if (end < 0) throw new Error('not a /proc/PID/stat line')
  const rest = stat.slice(end + 1).trim().split(/\s+/)
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const utime = Number(rest[14 - 3])
  const stime = Number(rest[15 - 3])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('no utime/stime in /proc/PID/stat')
  return { user: utime, system: stime }
}

export interface ProcessCounters {
  /** utime, clock ticks: the process's own code (JS, V8, libuv, OpenSSL...). */
  userTicks: number
  /** stime, clock ticks: the kernel on the process's behalf (system calls, for sockets the TCP stack). */
  systemTicks: number
  readCalls: number
  writeCalls: number
  voluntarySwitches: number
  involuntarySwitches: number
}

/** `name: value` fields of /proc/PID/io or /proc/PID/status. */
export function parseProcFields(text: string): Map<string, number> {
  const fields = new Map<string, number>()
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z_]+):\s+(\d+)\s*$/.exec(line)
    if (match?.[1] !== undefined && match[2] !== undefined) fields.set(match[1], Number(match[2]))
  }
  return fields
}

/** The counters of `pid`, or undefined when the process is gone. */
export function processCounters(pid: number): ProcessCounters | undefined {
  try {
    const io = parseProcFields(readFileSync(`/proc/${pid}/io`, 'utf8'))
    const status = parseProcFields(readFileSync(`/proc/${pid}/status`, 'utf8'))
    const times = parseProcStatTimes(readFileSync(`/proc/${pid}/stat`, 'utf8'))
    return {
      userTicks: times.user,
      systemTicks: times.system,
      readCalls: io.get('syscr') ?? Number.NaN,
      writeCalls: io.get('syscw') ?? Number.NaN,
      voluntarySwitches: status.get('voluntary_ctxt_switches') ?? Number.NaN,
      involuntarySwitches: status.get('nonvoluntary_ctxt_switches') ?? Number.NaN,
    }
  } catch {
    return undefined
  }
}

export interface MachineTicks {
  busy: number
  total: number
}

/** The aggregate `cpu` line of /proc/stat: busy = everything but idle and iowait. */
export function parseMachineTicks(procStat: string): MachineTicks {
  const line = procStat.split('\n').find((each) => each.startsWith('cpu '))
  if (line === undefined) throw new Error('no cpu line in /proc/stat')
  // user nice system idle iowait irq softirq steal (guest times are already inside user/nice)
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = fields.reduce((sum, each) => sum + each, 0)
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
  return { busy: total - idle, total }
}

export function machineTicks(): MachineTicks {
  return parseMachineTicks(readFileSync('/proc/stat', 'utf8'))
}

let clockTicks: number | undefined

/** `getconf CLK_TCK` (100 on every Linux build that matters; read, not assumed). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    clockTicks = Number.isInteger(value) && value > 0 ? value : 100
  }
  return clockTicks
}
