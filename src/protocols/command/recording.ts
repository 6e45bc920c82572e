/**
 * Session recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a JSON
 * header line, then one `[seconds, code, data]` line per event. Airlock writes the *masked* output
 * (`o`), submitted input lines (`i`, themselves passed through the canary), terminal resizes (`r`,
 * "COLSxROWS") and markers (`m`: a blocked line, the exit status). Files are created mode 0600 in a
 * directory of mode 0700, one per session, named after the session id.
 */
import { once } from 'node:events'
import { createWriteStream, type WriteStream } from 'node:fs'
import { chmod, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { StringDecoder } from 'node:string_decoder'

export interface RecordingHeader {
  version: 2
  width: number
  height: number
  /** Unix time of the start, in seconds. */
  timestamp: number
  title?: string
  command?: string
  env?: Record<string, string>
}

export interface RecorderOptions {
  dir: string
  session: string
  width: number
  height: number
  title?: string
  command?: string
  env?: Record<string, string>
  /** Milliseconds since the epoch; the default is Date.now. */
  now?: () => number
}

export interface Recorder {
  readonly path: string
  /** Output bytes (already masked). Each stream name keeps its own UTF-8 decoder. */
  output(chunk: Buffer, stream?: string): void
  input(text: string): void
  resize(cols: number, rows: number): void
  marker(label: string): void
  /** False while the file is behind; `drained` resolves when it has caught up. */
  readonly writable: boolean
  drained(): Promise<void>
  /** Flushes the decoders and closes the file. */
  close(): Promise<void>
}

/** Creates the recordings directory (0700) and the session's file (0600), and writes the header. */
export async function createRecorder(options: RecorderOptions): Promise<Recorder> {
  await mkdir(options.dir, { recursive: true, mode: 0o700 })
  const path = join(options.dir, `${options.session}.cast`)
  const file = createWriteStream(path, { flags: 'wx', mode: 0o600 })
  await once(file, 'open')
  // The mode given to open() is filtered by the umask; make it exact.
  await chmod(path, 0o600)
  return new AsciicastRecorder(path, file, options)
}

class AsciicastRecorder implements Recorder {
  private readonly decoders = new Map<string, StringDecoder>()
  private readonly now: () => number
  private readonly start: number
  private closed = false

  constructor(
    readonly path: string,
    private readonly file: WriteStream,
    options: RecorderOptions,
  ) {
    this.now = options.now ?? Date.now
    this.start = this.now()
    const header: RecordingHeader = {
      version: 2,
      width: options.width,
      height: options.height,
      timestamp: Math.floor(this.start / 1000),
      ...(options.title === undefined ? {} : { title: options.title }),
      ...(options.command === undefined ? {} : { command: options.command }),
      ...(options.env === undefined ? {} : { env: options.env }),
    }
    this.file.write(`${JSON.stringify(header)}\n`)
  }

  get writable(): boolean {
    return !this.file.writableNeedDrain
  }

  async drained(): Promise<void> {
    if (this.file.writableNeedDrain && !this.closed) await once(this.file, 'drain')
  }

  output(chunk: Buffer, stream = 'out'): void {
    let decoder = this.decoders.get(stream)
    if (decoder === undefined) {
      decoder = new StringDecoder('utf8')
      this.decoders.set(stream, decoder)
    }
    const text = decoder.write(chunk)
    if (text !== '') this.event('o', text)
  }

  input(text: string): void {
    this.event('i', text)
  }

  resize(cols: number, rows: number): void {
    this.event('r', `${cols}x${rows}`)
  }

  marker(label: string): void {
    this.event('m', label)
  }

  async close(): Promise<void> {
    if (this.closed) return
    for (const decoder of this.decoders.values()) {
      const rest = decoder.end()
      if (rest !== '') this.event('o', rest)
    }
    this.closed = true
    await new Promise<void>((resolve, reject) => this.file.end((error?: Error | null) => (error ? reject(error) : resolve())))
  }

  private event(code: string, data: string): void {
    if (this.closed) return
    const seconds = Math.max(0, this.now() - this.start) / 1000
    this.file.write(`${JSON.stringify([Number(seconds.toFixed(6)), code, data])}\n`)
  }
}
