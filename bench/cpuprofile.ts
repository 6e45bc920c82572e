/**
 * Self time from a V8 `.cpuprofile` (what `node --cpu-prof` writes): every sample is charged to the
 * node on top of the stack, and nodes are merged by function name and source location, so the same
 * function reached through different call paths counts once. Pure.
 */

/** The parts of the .cpuprofile format read here. */
export interface CpuProfile {
  nodes: {
    id: number
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number }
    hitCount?: number
  }[]
  /** Microseconds. */
  startTime: number
  endTime: number
  /** Node id of the top frame of each sample. */
  samples?: number[]
  /** Microseconds from the previous sample (from startTime for the first). */
  timeDeltas?: number[]
}

export interface SelfTimeEntry {
  /** Function name, or "(anonymous)". */
  name: string
  /** Short `file:line` (1-based), or "" for V8's pseudo-frames such as "(garbage collector)". */
  location: string
  samples: number
  selfMs: number
  /** Share of the busy samples (every sample but "(idle)"). */
  share: number
}

export interface ProfileSummary {
  /** The span summarised: the window when one was given and the profile covers it, else the whole profile. */
  durationMs: number
  /** Whether only samples inside the requested window were counted. */
  windowed: boolean
  samples: number
  idleShare: number
  /** Busy CPU time the profile accounts for, ms. */
  busyMs: number
  functions: SelfTimeEntry[]
  /** Self time per source file (same shape; `name` is the file, `location` empty). */
  files: SelfTimeEntry[]
}

const PSEUDO_FRAMES = new Set(['(idle)', '(program)', '(garbage collector)', '(root)'])

/**
 * Shortens a script URL for display: repository-relative for our code, package-relative under
 * node_modules, `node:` URLs as they are.
 */
export function shortUrl(url: string, root: string): string {
  let short = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url
  const modules = short.lastIndexOf('/node_modules/')
  if (modules >= 0) return short.slice(modules + '/node_modules/'.length)
  const base = root.endsWith('/') ? root : `${root}/`
  if (short.startsWith(base)) short = short.slice(base.length)
  return short
}

export interface SummaryOptions {
  /** How many functions and files to keep (default 15). */
  top?: number
  /** Repository root, stripped from file URLs. */
  root?: string
  /**
   * Count only samples taken in this span, in the profile's clock (µs, CLOCK_MONOTONIC on Linux,
   * the same as `process.hrtime`): e.g. one benchmark run, without start-up and warm-up.
   */
  window?: { startUs: number; endUs: number }
}

export function summarizeCpuProfile(profile: CpuProfile, options: SummaryOptions = {}): ProfileSummary {
  const top = options.top ?? 15
  const root = options.root ?? ''
  const counts = new Map<number, number>()
  const { window } = options
  const windowed =
    window !== undefined &&
    profile.samples !== undefined &&
    profile.timeDeltas?.length === profile.samples.length &&
    window.startUs >= profile.startTime &&
    window.endUs <= profile.endTime
  if (windowed) {
    let at = profile.startTime
    profile.samples!.forEach((id, index) => {
      at += profile.timeDeltas![index] ?? 0
      if (at >= window.startUs && at <= window.endUs) counts.set(id, (counts.get(id) ?? 0) + 1)
    })
  } else if (profile.samples !== undefined && profile.samples.length > 0) {
    for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1)
  } else {
    for (const node of profile.nodes) counts.set(node.id, node.hitCount ?? 0)
  }
  const total = [...counts.values()].reduce((sum, each) => sum + each, 0)
  const durationMs = windowed ? (window.endUs - window.startUs) / 1000 : (profile.endTime - profile.startTime) / 1000
  const msPerSample = total === 0 ? 0 : durationMs / total

  const byFunction = new Map<string, { name: string; location: string; samples: number }>()
  const byFile = new Map<string, { name: string; location: string; samples: number }>()
  let idle = 0
  for (const node of profile.nodes) {
    const samples = counts.get(node.id) ?? 0
    if (samples === 0) continue
    const { functionName, url, lineNumber } = node.callFrame
    const name = functionName === '' ? '(anonymous)' : functionName
    if (name === '(idle)') {
      idle += samples
      continue
    }
    const file = url === '' ? (PSEUDO_FRAMES.has(name) ? name : '(native)') : shortUrl(url, root)
    const location = url === '' ? '' : `${file}:${lineNumber + 1}`
    const key = `${name}\u0000${location}`
    const entry = byFunction.get(key) ?? { name, location, samples: 0 }
    entry.samples += samples
    byFunction.set(key, entry)
    const fileEntry = byFile.get(file) ?? { name: file, location: '', samples: 0 }
    fileEntry.samples += samples
    byFile.set(file, fileEntry)
  }
  const busy = total - idle
  const finish = (entries: Iterable<{ name: string; location: string; samples: number }>): SelfTimeEntry[] =>
    [...entries]
      .sort((a, b) => b.samples - a.samples || a.name.localeCompare(b.name))
      .slice(0, top)
      .map((entry) => ({ ...entry, selfMs: entry.samples * msPerSample, share: busy === 0 ? 0 : entry.samples / busy }))
  return {
    durationMs,
    windowed,
    samples: total,
    idleShare: total === 0 ? 0 : idle / total,
    busyMs: busy * msPerSample,
    functions: finish(byFunction.values()),
    files: finish(byFile.values()),
  }
}
