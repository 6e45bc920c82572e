/**
 * The detector corpus: recall on values that must be masked, precision against look-alikes.
 * Thresholds are asserted, not printed: 100% recall for the checksum detectors (card, IBAN) and
 * overall, precision of at least 0.95 with every detector on.
 */
import { describe, expect, it } from 'vitest'
import { createMasker, DETECTORS, type DetectorName, type Masker } from '../../../../src/policy/masking/index.js'
import { loadCorpus, type MustMask } from '../../../fixtures/masking/corpus.js'

const corpus = loadCorpus()
/** A connection secret is configured too: the canary must not add false positives. */
const everything = createMasker({}, { secrets: ['Zq7-unrelated-Secret!'] })
const CHECKSUM_DETECTORS: readonly DetectorName[] = ['credit-card', 'iban']

function masks(masker: Masker, entry: MustMask): boolean {
  const masked = masker.text(entry.text)
  return masked !== undefined && !masked.includes(entry.secret)
}

function recall(masker: (entry: MustMask) => Masker, entries: readonly MustMask[]): { recall: number; missed: string[] } {
  const missed = entries.filter((entry) => !masks(masker(entry), entry)).map((entry) => entry.text)
  return { recall: (entries.length - missed.length) / entries.length, missed }
}

describe('the masking corpus', () => {
  it('covers every detector with cases that must be masked and look-alikes', () => {
    for (const name of DETECTORS) {
      expect(corpus.mustMask.filter((entry) => entry.detector === name).length, name).toBeGreaterThanOrEqual(5)
      expect(corpus.lookAlikes.filter((entry) => entry.like === name).length, name).toBeGreaterThanOrEqual(4)
    }
    expect(corpus.mustMask.length).toBeGreaterThanOrEqual(120)
    expect(corpus.lookAlikes.length).toBeGreaterThanOrEqual(120)
  })

  it('finds every card number and IBAN (100% recall on the checksum detectors), each by its own detector', () => {
    for (const name of CHECKSUM_DETECTORS) {
      const alone = createMasker({ detectors: [name] })
      const result = recall(() => alone, corpus.mustMask.filter((entry) => entry.detector === name))
      expect(result.missed, name).toEqual([])
      expect(result.recall).toBe(1)
    }
  })

  it('finds each case with its own detector alone (per-detector recall)', () => {
    const alone = new Map(DETECTORS.map((name) => [name, createMasker({ detectors: [name] })]))
    for (const name of DETECTORS) {
      const result = recall((entry) => alone.get(entry.detector)!, corpus.mustMask.filter((entry) => entry.detector === name))
      expect(result.missed, name).toEqual([])
    }
  })

  it('finds every case with all detectors on (100% recall)', () => {
    const result = recall(() => everything, corpus.mustMask)
    expect(result.missed).toEqual([])
  })

  it('keeps precision at or above 0.95 against the look-alikes', () => {
    const truePositives = corpus.mustMask.filter((entry) => masks(everything, entry)).length
    const falsePositives = corpus.lookAlikes.filter((entry) => everything.text(entry.text) !== undefined)
    const precision = truePositives / (truePositives + falsePositives.length)
    expect(precision).toBeGreaterThanOrEqual(0.95)
    // And the look-alikes themselves: at least 95% pass untouched.
    expect((corpus.lookAlikes.length - falsePositives.length) / corpus.lookAlikes.length).toBeGreaterThanOrEqual(0.95)
  })

  it('leaves checksum look-alikes alone: no card failing Luhn, no IBAN failing mod 97', () => {
    for (const entry of corpus.lookAlikes.filter((each) => CHECKSUM_DETECTORS.includes(each.like as DetectorName))) {
      expect(everything.text(entry.text), entry.text).toBeUndefined()
    }
  })
})
