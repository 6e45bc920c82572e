import { createHash } from 'node:crypto'
import { chmodSync, chownSync, createReadStream, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { createRecorder, recordingsDirProblem } from '../../../../src/protocols/command/recording.js'
import { replayRecording } from '../../../../src/protocols/command/replay.js'

function sink(): Writable & { text(): string } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'))
      callback()
    },
  })
  return Object.assign(stream, { text: () => chunks.join('') })
}

async function record(dir: string): Promise<string> {
  let clock = 1_700_000_000_000
  const recorder = await createRecorder({ dir, session: 'ses_test', width: 100, height: 30, title: 'ops', now: () => clock })
  recorder.output(Buffer.from('$ '))
  clock += 1500
  recorder.input('ls\n')
  recorder.output(Buffer.from('ls\r\nfile\r\n'))
  clock += 250
  recorder.resize(120, 40)
  // A character split across two chunks is written whole, once.
  const snowman = Buffer.from('☃')
  recorder.output(snowman.subarray(0, 1))
  clock += 10_000
  recorder.output(snowman.subarray(1))
  recorder.marker('exit 0')
  await recorder.close()
  return recorder.path
}

describe('asciicast recording and replay', () => {
  it('writes an asciicast v2 file, mode 0600 in a 0700 directory', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'airlock-rec-')), 'recordings')
    const path = await record(dir)
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    const [header, ...events] = readFileSync(path, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as unknown)
    expect(header).toMatchObject({ version: 2, width: 100, height: 30, timestamp: 1_700_000_000, title: 'ops' })
    expect(events).toEqual([
      [0, 'o', '$ '],
      [1.5, 'i', 'ls\n'],
      [1.5, 'o', 'ls\r\nfile\r\n'],
      [1.75, 'r', '120x40'],
      [11.75, 'o', '☃'],
      [11.75, 'm', 'exit 0'],
    ])
  })

  it('closes with the SHA-256 and size of the bytes it wrote', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'airlock-rec-')), 'recordings')
    const recorder = await createRecorder({ dir, session: 'ses_hash', width: 80, height: 24 })
    recorder.output(Buffer.from('hello\r\n'))
    const summary = await recorder.close()
    const bytes = readFileSync(summary.path)
    expect(summary).toEqual({ path: join(dir, 'ses_hash.cast'), sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length })
    // Closing twice is one close.
    expect(await recorder.close()).toEqual(summary)
  })

  it('refuses a recordings directory that other users could read, or that another user owns', async () => {
    const base = mkdtempSync(join(tmpdir(), 'airlock-rec-'))
    const open = join(base, 'open')
    mkdirSync(open)
    chmodSync(open, 0o755)
    await expect(createRecorder({ dir: open, session: 'ses_x', width: 80, height: 24 })).rejects.toThrow(/has mode 0755/)
    const foreign = join(base, 'foreign')
    mkdirSync(foreign, { mode: 0o700 })
    if (process.getuid?.() === 0) {
      chownSync(foreign, 65534, 65534)
      await expect(createRecorder({ dir: foreign, session: 'ses_x', width: 80, height: 24 })).rejects.toThrow(/owned by uid 65534/)
    }
    expect(recordingsDirProblem({ isDirectory: () => true, mode: 0o40700, uid: 7 }, 8)).toMatch(/owned by uid 7/)
    expect(recordingsDirProblem({ isDirectory: () => true, mode: 0o40700, uid: 8 }, 8)).toBeUndefined()
  })

  it('replays the output identically, waiting as recorded divided by the speed', async () => {
    const path = await record(join(mkdtempSync(join(tmpdir(), 'airlock-rec-')), 'r'))
    for (const [speed, expected] of [
      [1, [1500, 10_250]],
      [4, [375, 2562.5]],
    ] as const) {
      const waits: number[] = []
      const out = sink()
      const result = await replayRecording(path, out, { speed, sleep: async (ms) => void waits.push(ms) })
      expect(out.text()).toBe('$ ls\r\nfile\r\n☃')
      expect(waits).toEqual(expected)
      expect(result.markers).toEqual(['exit 0'])
      expect(result.header.width).toBe(100)
    }
  })

  it('caps long pauses, never waits at infinite speed, and writes input only when asked', async () => {
    const path = await record(join(mkdtempSync(join(tmpdir(), 'airlock-rec-')), 'r'))
    const waits: number[] = []
    await replayRecording(path, sink(), { maxIdleMs: 2_000, sleep: async (ms) => void waits.push(ms) })
    expect(waits).toEqual([1500, 2000])
    const out = sink()
    await replayRecording(path, out, { speed: Infinity, input: true, sleep: async () => expect.fail('no waiting') })
    expect(out.text()).toBe('$ ls\nls\r\nfile\r\n☃')
    const streamed = sink()
    await replayRecording(createReadStream(path), streamed, { speed: Infinity })
    expect(streamed.text()).toBe('$ ls\r\nfile\r\n☃')
  })

  it('refuses a file that is not an asciicast v2 recording', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-rec-'))
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(dir, 'bad.cast'), '{"version": 1}\n')
    await expect(replayRecording(join(dir, 'bad.cast'), sink())).rejects.toMatchObject({ code: 'usage' })
  })
})
