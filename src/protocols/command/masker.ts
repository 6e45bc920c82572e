/**
 * The output-masking contract of command connections: a stream transform over raw output bytes.
 * The credential canary is one; the detector library plugs in as another, after it.
 */

/**
 * A streaming output transform. `write` returns what may be released now: possibly less than it
 * was given (a tail that could still become a match is held), never more than it has seen.
 */
export interface OutputMasker {
  write(chunk: Buffer): Buffer
  /** End of the stream: everything still held, masked. */
  flush(): Buffer
  /**
   * Bytes the user typed (a terminal echoes them back). A masker may release held output that only
   * repeats them: the user already knows those characters.
   */
  noteInput?(chunk: Buffer): void
  /**
   * Output has paused ({@link IDLE_RELEASE_MS}): what the masker is willing to release on a pause
   * (a held prompt line). The credential canary has none: a pause must not release a value being
   * printed one character at a time. Later stages only see what the canary released.
   */
  idle?(): Buffer
  /**
   * The values masked since the last call, by detector (`canary` for the connection's own
   * secrets), for the session's audit record; a stage that masks nothing of its own has none.
   */
  masked?(): Record<string, number>
}

/** How long output must pause before the sessions call `idle()`. */
export const IDLE_RELEASE_MS = 50

const EMPTY = Buffer.alloc(0)

/** Maskers applied in order, as one. */
export function chainMaskers(maskers: readonly OutputMasker[]): OutputMasker {
  if (maskers.length === 1) return maskers[0]!
  return {
    write(chunk) {
      let data = chunk
      for (const masker of maskers) {
        if (data.length === 0) break
        data = masker.write(data)
      }
      return data
    },
    flush() {
      // Each stage's flush output passes through the stages after it, which are then flushed too.
      let carried: Buffer = EMPTY
      for (const masker of maskers) {
        const written = carried.length === 0 ? EMPTY : masker.write(carried)
        const flushed = masker.flush()
        carried = written.length === 0 ? flushed : flushed.length === 0 ? written : Buffer.concat([written, flushed])
      }
      return carried
    },
    noteInput(chunk) {
      for (const masker of maskers) masker.noteInput?.(chunk)
    },
    ...(maskers.some((masker) => masker.idle !== undefined) ? { idle: () => idleAll(maskers) } : {}),
    masked: () => maskedCounts(maskers),
  }
}

/** The masked counts of several maskers (or streams), added up by detector. */
export function maskedCounts(maskers: readonly OutputMasker[]): Record<string, number> {
  const total: Record<string, number> = {}
  for (const masker of maskers) {
    for (const [name, count] of Object.entries(masker.masked?.() ?? {})) total[name] = (total[name] ?? 0) + count
  }
  return total
}

/** Each stage's idle release passes through the stages after it. */
function idleAll(maskers: readonly OutputMasker[]): Buffer {
  let carried: Buffer = EMPTY
  for (const masker of maskers) {
    const written = carried.length === 0 ? EMPTY : masker.write(carried)
    const released = masker.idle?.() ?? EMPTY
    carried = written.length === 0 ? released : released.length === 0 ? written : Buffer.concat([written, released])
  }
  return carried
}
