/**
 * Plays an asciicast v2 recording to a Writable: the output events (`o`) in order, waiting between
 * them as recorded, divided by `speed`. For `airlock audit replay ID`.
 */
import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Writable } from 'node:stream'
import { AirlockError } from '../../errors.js'
import type { RecordingHeader } from './recording.js'

export interface ReplayOptions {
  /** 1 = as recorded, 4 = four times faster, Infinity = no waiting. Default 1. */
  speed?: number
  /** Pauses longer than this (after the speed-up) are shortened to it. */
  maxIdleMs?: number
  /** Also write input events (`i`, the submitted lines). Default false: a terminal echo already shows them. */
  input?: boolean
  signal?: AbortSignal
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>
}

export interface ReplayResult {
  header: RecordingHeader
  /** Output events written. */
  events: number
  /** Markers in the recording (blocked lines, the exit status), in order. */
  markers: string[]
}

/**
 * Replays a recording — a file path, or a stream of it (e.g. an HTTP response from the gateway) —
 * to `out`, respecting its backpressure. Rejects with a `usage` AirlockError when it is not an
 * asciicast v2 recording.
 */
export async function replayRecording(source: string | NodeJS.ReadableStream, out: Writable, options: ReplayOptions = {}): Promise<ReplayResult> {
  const speed = options.speed ?? 1
  if (!(speed > 0)) throw new AirlockError('usage', 'the replay speed must be greater than 0')
  const sleep = options.sleep ?? ((ms: number) => delay(ms, options.signal))
  const name = typeof source === 'string' ? source : 'the recording'
  const lines = createInterface({ input: typeof source === 'string' ? createReadStream(source, { encoding: 'utf8' }) : source, crlfDelay: Infinity })
  let header: RecordingHeader | undefined
  let previous = 0
  let events = 0
  const markers: string[] = []
  let lineNumber = 0
  try {
    for await (const line of lines) {
      lineNumber++
      if (line.trim() === '') continue
      if (header === undefined) {
        header = parseHeader(line)
        continue
      }
      options.signal?.throwIfAborted()
      const [time, code, data] = parseEvent(line, lineNumber)
      if (code === 'm') markers.push(data)
      if (code !== 'o' && !(code === 'i' && options.input === true)) continue
      let wait = Number.isFinite(speed) ? ((time - previous) * 1000) / speed : 0
      if (options.maxIdleMs !== undefined) wait = Math.min(wait, options.maxIdleMs)
      previous = time
      if (wait > 0) await sleep(wait)
      events++
      if (!out.write(data)) await once(out, 'drain')
    }
  } finally {
    lines.close()
  }
  if (header === undefined) throw new AirlockError('usage', `${name} is empty, not an asciicast recording`)
  return { header, events, markers }
}

function parseHeader(line: string): RecordingHeader {
  let header: unknown
  try {
    header = JSON.parse(line)
  } catch {
    header = undefined
  }
  const value = header as Partial<RecordingHeader> | undefined
  if (typeof value !== 'object' || value === null || value.version !== 2) {
    throw new AirlockError('usage', 'not an asciicast v2 recording (the first line is not a version 2 header)')
  }
  return value as RecordingHeader
}

function parseEvent(line: string, lineNumber: number): [number, string, string] {
  let event: unknown
  try {
    event = JSON.parse(line)
  } catch {
    event = undefined
  }
  if (!Array.isArray(event) || typeof event[0] !== 'number' || typeof event[1] !== 'string' || typeof event[2] !== 'string') {
    throw new AirlockError('usage', `malformed asciicast event at line ${lineNumber}`)
  }
  return [event[0], event[1], event[2]]
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
