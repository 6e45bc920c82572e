/** Small statistics over per-round numbers. Pure. */

/** The median; the mean of the two middle values for an even count; undefined for none. */
export function median(values: readonly number[]): number | undefined {
  const finite = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b)
  if (finite.length === 0) return undefined
  const middle = Math.floor(finite.length / 2)
  return finite.length % 2 === 1 ? finite[middle] : (finite[middle - 1]! + finite[middle]!) / 2
}

export function min(values: readonly number[]): number | undefined {
  const finite = values.filter((value) => Number.isFinite(value))
  return finite.length === 0 ? undefined : Math.min(...finite)
}

export function max(values: readonly number[]): number | undefined {
  const finite = values.filter((value) => Number.isFinite(value))
  return finite.length === 0 ? undefined : Math.max(...finite)
}

/** `items` rotated left by `by` places, so each round starts with a different path. */
export function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return []
  const shift = ((by % items.length) + items.length) % items.length
  return [...items.slice(shift), ...items.slice(0, shift)]
}
