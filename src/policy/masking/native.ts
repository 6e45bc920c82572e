/**
 * The prefilter's scan in C (`native/prefilter.c`, built by `npm ci` through node-gyp into
 * `build/Release`). The JavaScript scan in prefilter.ts is the reference and the fallback: both
 * return the same flags for the same bytes, so a missing addon costs speed, never coverage.
 */
import { createRequire } from 'node:module'

/** A scanner made by {@link NativePrefilter.create}: opaque, freed with its last reference. */
export type NativeScanner = { readonly __nativeScanner: unique symbol }

export interface NativePrefilter {
  /**
   * A scanner over copies of the tables; `bits` is [atSign, percent, across, simd (0: the scalar
   * scan only, as on a CPU without AVX2; 1: the best the CPU has; 2: AVX2 at most)]. `io` stays shared:
   * column specs in (4 ints per column: mask, digit limit, digit flags, always; the column count
   * in its last element), then cell flags out.
   */
  create(withDigits: Uint8Array, withoutDigits: Uint8Array, slots: Int32Array, anchorKeys: Int32Array, anchorFlags: Int32Array, bits: Int32Array, io: Int32Array): NativeScanner
  /** The SIMD scan this CPU runs (`native` mode): AVX-512 (BW), AVX2, or none (the scalar walk). */
  simd(): 'avx512' | 'avx2' | 'none'
  /** Prefilter.scan over bytes [from, to); carry 0: none, 1: go on from the previous cell, 2: a fresh row. */
  scan(scanner: NativeScanner, bytes: Uint8Array, from: number, to: number, digitLimit: number, digitFlags: number, carry: 0 | 1 | 2): number
  /** A DataRow body under the specs in io: the cells' flags together (each in io), -1 malformed, -2 specs do not fit. */
  dataRow(scanner: NativeScanner, body: Uint8Array, carry: boolean): number
  /** The fields of a COPY line with nothing to unescape: the flags of all together (each field's in io, after the DataRow columns' specs). */
  copyLine(scanner: NativeScanner, line: Uint8Array, end: number, delimiter: number, nullBytes: Uint8Array, digitLimit: number, digitFlags: number, mask: number, carry: boolean): number
  /** dataRow over the DataRow messages following each other whole in `chunk` from `start`, into `out` and `cells` (see Prefilter's Batched); the rows scanned. */
  dataRows(scanner: NativeScanner, chunk: Uint8Array, start: number, out: Int32Array, cells: Int32Array, carry: boolean): number
  /** copyLine over the CopyData messages following each other whole in `chunk` from `start` (flags -1: needs unescaping), into `out` and `cells` (see Prefilter's Batched); the lines scanned. */
  copyLines(scanner: NativeScanner, chunk: Uint8Array, start: number, out: Int32Array, cells: Int32Array, quote: number, delimiter: number, nullBytes: Uint8Array, digitLimit: number, digitFlags: number, mask: number, carry: boolean): number
}

/** From src/ (tests, tsx) and from dist/src/ (the built CLI). */
const CANDIDATES = ['../../../build/Release/airlock_prefilter.node', '../../../../build/Release/airlock_prefilter.node']

function load(): NativePrefilter | undefined {
  const require = createRequire(import.meta.url)
  for (const candidate of CANDIDATES) {
    try {
      return require(candidate) as NativePrefilter
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'MODULE_NOT_FOUND') throw error
    }
  }
  return undefined
}

/** The addon, or undefined when it was not built (`npm ci --ignore-scripts`): the JavaScript scan is used. */
export const nativePrefilter: NativePrefilter | undefined = load()
