/**
 * Session recordings in asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a JSON
 * header line, then one `[seconds, code, data]` line per event. Airlock writes the *masked* output
 * (`o`), submitted input lines (`i`, themselves passed through the canary), terminal resizes (`r`,
 * "COLSxROWS") and markers (`m`: a blocked line, the exit status). Files are created mode 0600 in a
 * directory of mode 0700 owned by the gateway's user, one per session, named after the session id.
 * The SHA-256 of the file is computed as it is written, for the session's audit record.
 */
import { createHash, type Hash } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, type WriteStream } from 'node:fs'
import { chmod, mkdir, stat } from 'node:fs/promises'
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
  /** False while the file is behind; `drained` resolves when it has caught up (or failed). */
  readonly writable: boolean
  drained(): Promise<void>
  /**
   * Called once when the file cannot be written (a full disk, an I/O error): the recording is
   * incomplete from then on, and nothing more is written to it.
   */
  onError(listener: (error: NodeJS.ErrnoException) => void): void
  /** Flushes the decoders and closes the file; resolves with what the audit record points at. */
  close(): Promise<RecordingSummary>
}

export interface RecordingSummary {
  path: string
  /** Lowercase hex SHA-256 of the file's bytes. */
  sha256: string
  bytes: number
}

/**
 * Makes sure `dir` is a directory of mode 0700 owned by this process's user, creating it (and its
 * parents) if needed. Refuses an existing one that others could read or write.
 */
export async function prepareRecordingsDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const info = await stat(dir)
  const problem = recordingsDirProblem(info)
  if (problem !== undefined) throw Object.assign(new Error(`${dir} ${problem}`), { code: 'EPERM' })
}

/** Why a recordings directory with these attributes must not be used, or undefined. */
export function recordingsDirProblem(info: { isDirectory(): boolean; mode: number; uid: number }, uid = process.getuid?.()): string | undefined {
  if (!info.isDirectory()) return 'is not a directory'
  if (uid !== undefined && info.uid !== uid) return `is owned by uid ${info.uid}, not the gateway's user (uid ${uid})`
  if ((info.mode & 0o077) !== 0) return `has mode 0${(info.mode & 0o777).toString(8)}: recordings must be private to the gateway's user (chmod 700)`
  return undefined
}

/** Creates the session's file (0600) in the recordings directory, and writes the header. */
export async function createRecorder(options: RecorderOptions): Promise<Recorder> {
  await prepareRecordingsDir(options.dir)
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
  private readonly hash: Hash = createHash('sha256')
  private bytes = 0
  private closed = false
  private failure: NodeJS.ErrnoException | undefined
  private readonly errorListeners: ((error: NodeJS.ErrnoException) => void)[] = []
  private readonly drainWaiters = new Set<() => void>()

  constructor(
    readonly path: string,
    private readonly file: WriteStream,
    options: RecorderOptions,
  ) {
    this.now = options.now ?? Date.now
    this.start = this.now()
    // Without a listener a write error would be thrown from the event loop: the whole gateway down.
    this.file.on('error', (error: NodeJS.ErrnoException) => {
      if (this.failure !== undefined) return
      this.failure = error
      // Whoever waits for a drain must not wait forever.
      for (const waiter of this.drainWaiters) waiter()
      for (const listener of this.errorListeners.splice(0)) listener(error)
    })
    const header: RecordingHeader = {
      version: 2,
      width: options.width,
      height: options.height,
      timestamp: Math.floor(this.start / 1000),
      ...(options.title === undefined ? {} : { title: options.title }),
      ...(options.command === undefined ? {} : { command: options.command }),
      ...(options.env === undefined ? {} : { env: options.env }),
    }
    this.write(`${JSON.stringify(header)}\n`)
  }

  get writable(): boolean {
    return this.failure !== undefined || !this.file.writableNeedDrain
  }

  drained(): Promise<void> {
    if (this.failure !== undefined || !this.file.writableNeedDrain || this.closed) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        this.file.off('drain', done)
        this.drainWaiters.delete(done)
        resolve()
      }
      this.drainWaiters.add(done)
      this.file.once('drain', done)
    })
  }

  onError(listener: (error: NodeJS.ErrnoException) => void): void {
    if (this.failure !== undefined) listener(this.failure)
    else this.errorListeners.push(listener)
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

  private closing: Promise<RecordingSummary> | undefined

  close(): Promise<RecordingSummary> {
    this.closing ??= this.finish()
    return this.closing
  }

  private async finish(): Promise<RecordingSummary> {
    for (const decoder of this.decoders.values()) {
      const rest = decoder.end()
      if (rest !== '') this.event('o', rest)
    }
    this.closed = true
    if (this.failure === undefined) {
      await new Promise<void>((resolve) => this.file.end(() => resolve()))
    } else {
      this.file.destroy()
    }
    if (this.failure !== undefined) throw this.failure
    return { path: this.path, sha256: this.hash.digest('hex'), bytes: this.bytes }
  }

  private event(code: string, data: string): void {
    if (this.closed) return
    const seconds = Math.max(0, this.now() - this.start) / 1000
    this.write(`${JSON.stringify([Number(seconds.toFixed(6)), code, data])}\n`)
  }

  private write(line: string): void {
    if (this.failure !== undefined) return
    this.hash.update(line)
    this.bytes += Buffer.byteLength(line)
    this.file.write(line)
  }
}
