/**
 * The masking engine a gateway builds per connection: column rules, detectors, custom patterns and
 * the credential canary, applied to rows, COPY lines and the text fields of other messages.
 * Synchronous, no I/O; one instance per session (it keeps counts and reusable scratch space).
 *
 * Every value first goes through the {@link Prefilter} (one pass over its bytes); a row in which
 * nothing is raised comes back as `undefined`, with nothing allocated. Only raised values are
 * decoded and handed to the detectors the prefilter named.
 */
import { AirlockError } from '../../errors.js'
import { Canary, CANARY_LABEL } from './canary.js'
import { globToRegExp, Profile, profileOf, TEXT_OID } from './columns.js'
import { type CopyDialect, type CopyFormat, dialectOf, parseCopyLine, writeCopyLine } from './copy.js'
import { BUILTIN_DETECTORS, type Detector, type DetectorName, DETECTORS } from './detectors.js'
import { type Batched, type Carry, Prefilter } from './prefilter.js'
import { type MaskingStrategy, replacement, type Rewrite } from './strategies.js'
import { createMaskingStream, type MaskingStream, type MaskingStreamOptions, type StreamContext } from './stream.js'

/** A column rule: every value of a column whose name matches one of the globs is rewritten. */
export interface ColumnRuleConfig {
  readonly match: readonly string[]
  readonly strategy: MaskingStrategy
  /** `partial`: characters kept at the end (default 4). */
  readonly keep?: number
}

/** A custom detector: a regular expression (JavaScript syntax) and what its matches become. */
export interface CustomDetectorConfig {
  readonly name: string
  readonly pattern: string
  readonly strategy: MaskingStrategy
}

/** A connection's `masking` section; absent `detectors` means all of them. */
export interface MaskingConfig {
  readonly detectors?: readonly DetectorName[]
  readonly columns?: readonly ColumnRuleConfig[]
  readonly custom?: readonly CustomDetectorConfig[]
}

export interface MaskerOptions {
  /** The connection's secret values (upstream password, injected headers, ...): the canary. */
  readonly secrets?: readonly string[]
  /** The top-level `masking.hashKey`; required when a rule or custom detector uses `hash`. */
  readonly hashKey?: Buffer | string
  /** Scan in C when the addon is built (default); false keeps every scan in JavaScript (tests, comparisons). */
  readonly native?: boolean
}

/** A result column as RowDescription describes it (PostgreSQL's FieldDescription fits). */
export interface ColumnField {
  readonly name: string
  readonly typeOid: number
  /** 0 text (default), 1 binary. */
  readonly format?: number
}

/** How the values of one result set are masked: from {@link Masker.columns}, for {@link Masker.row}. */
export interface ColumnPlan<F extends ColumnField = ColumnField> {
  /** Columns in the result set. */
  readonly width: number
  /**
   * The field descriptions the client must be sent, or undefined when they stay as they are.
   * A column under a rule becomes `text` (type 25, size -1, modifier -1, format 0), so a driver
   * accepts `[REDACTED]` in what was an `int8`; a name holding a secret is masked.
   */
  readonly fields: readonly F[] | undefined
  /** Per column: under a column rule (its values are rewritten whole, and sent as text). */
  readonly ruled: readonly boolean[]
}

/**
 * Where a message lies in the bytes read from the server (a framer's Frame is one): its type byte
 * at `offset` of `chunk`. Given with each DataRow or CopyData body, it lets the masker scan the
 * messages that follow in the same read in one call into C; undefined `chunk`: the message was
 * assembled from several reads, and is scanned alone.
 */
export interface MessagePlace {
  readonly chunk: Buffer | undefined
  readonly offset: number
}

/** What {@link Masker.cleanRows} and {@link Masker.cleanCopyLines} found: set by them, owned by the caller. */
export interface CleanRun {
  /** Messages that need nothing masked, one after another from the offset given. */
  count: number
  /** Where they end in the chunk (the offset given when there are none). */
  end: number
}

/** Masked values since the last {@link Masker.takeCounts}, for the audit's `statement.end`. */
export interface MaskCounts {
  /** Findings and rewritten cells, all kinds together. */
  readonly total: number
  /** Findings per detector: built-in names, custom names, and `canary` for the connection's secrets. */
  readonly detectors: Readonly<Record<string, number>>
  /** Values rewritten by a column rule, per column name. */
  readonly columns: Readonly<Record<string, number>>
  /** Binary-format values nulled because something was found in them (they cannot be rewritten). */
  readonly nulled: number
}

export interface Masker {
  /** The plan for a result set with these columns (RowDescription, or a COPY's column names). */
  columns<F extends ColumnField>(fields: readonly F[]): ColumnPlan<F>
  /**
   * One row's values (DataRow order) masked under `plan`, or undefined when nothing changes (the
   * fast path: nothing is allocated). A finding in a value that cannot hold a label — binary
   * format, a number, a date, a UUID, bytea — nulls the value (counted as `nulled`).
   */
  row(values: readonly (Buffer | null)[], plan: ColumnPlan): (Buffer | null)[] | undefined
  /**
   * {@link row} over a DataRow body as it came from the server (Int16 count, then per value an
   * Int32 length, -1 for NULL, and the bytes): the clean case reads the body in place and
   * allocates nothing; otherwise the row's values, masked, for `serializeDataRow`. With `place`,
   * the rows after it in the same read are scanned in the same call into C.
   */
  dataRow(body: Buffer, plan: ColumnPlan, place?: MessagePlace): (Buffer | null)[] | undefined
  /** A text outside rows (error and notice fields, a notification, a parameter value, a name) masked, or undefined. */
  text(value: string): string | undefined
  /**
   * ErrorResponse/NoticeResponse fields masked, or undefined: every field but severity, SQLSTATE,
   * position and the server's source location (S V C P p F L R).
   */
  errorFields(fields: readonly (readonly [number, string])[]): [number, string][] | undefined
  /**
   * One COPY TO STDOUT data line (a CopyData body) masked, or undefined. Without a plan the columns
   * are anonymous: detectors and canary apply, column rules cannot. With `headroom` the masked
   * line starts that many bytes into the buffer returned (room for a message header).
   */
  copy(line: Buffer, format: CopyFormat, plan?: ColumnPlan, place?: MessagePlace, headroom?: number): Buffer | undefined
  /**
   * The DataRow messages (type, length, body) at `offset` of `chunk` and after it, whole in the
   * chunk, that {@link dataRow} would leave unchanged under `plan`, found in one call into C: how
   * many, and where they end, into `run`. They can be passed on as they are, without a frame each.
   * A DataRow of the same read after them keeps its flags for {@link dataRow} with its place.
   * None without the addon, or under column rules.
   */
  cleanRows(chunk: Buffer, offset: number, plan: ColumnPlan, run: CleanRun): void
  /** {@link cleanRows} for CopyData lines of a COPY TO STDOUT in `format`, as {@link copy} without a plan reads them. */
  cleanCopyLines(chunk: Buffer, offset: number, format: CopyFormat, run: CleanRun): void
  /** A streaming masker for command output (see {@link MaskingStream}). */
  stream(options?: MaskingStreamOptions): MaskingStream
  /** The counts since the previous call, and a fresh start. */
  takeCounts(): MaskCounts
}

// Flags: which detectors a value needs. Built-ins are 1 << their index in DETECTORS.
const CANARY = 1 << 11
const CUSTOM = 1 << 12
/** Source index of the canary; custom detectors follow it. */
const CANARY_SOURCE = 11
const FIRST_CUSTOM_SOURCE = 12
const ALL_DETECTOR_BITS = (1 << DETECTORS.length) - 1

/** Digits in a run (with separators) that raise the phone/card/IBAN/SSN detectors in text. */
const TEXT_DIGIT_RUN = 9
/** Digits in a run that raise the card detector in a number. */
const NUMBER_DIGIT_RUN = 13
const NEVER = Number.MAX_SAFE_INTEGER
/** Messages of one read scanned per call into C (the results are kept until they are asked for). */
const BATCH = 512
/** Flags of the cells (or fields) of the messages of a batch that raise (more than a row's widest: 1,664 columns). */
const BATCH_CELLS = 8192
/** What {@link DefaultMasker.cleanCopyLine} found in a line. */
const enum Found {
  Nothing,
  /** Something, and each field's flags are in the prefilter's io (see {@link Prefilter.fieldFlags}). */
  InC,
  /** Something, or the line needs parsing first: {@link Masker.row} scans its values. */
  Something,
}
/** Type byte + Int32 length before a message body. */
const HEADER = 5
/** Column plans a masker keeps for reuse (one per distinct result description). */
const MAX_PLANS = 256
const BACKSLASH = 0x5c
const NEWLINE = 0x0a
const RETURN = 0x0d

/** Error fields that carry no text a query can influence: severity, SQLSTATE, positions, source location. */
const FIXED_ERROR_FIELDS = new Set([...'SVCPpFLR'].map((char) => char.charCodeAt(0)))

interface Source {
  /** The name counted: a detector name, a custom name, or `canary`. */
  readonly name: string
  readonly rewrite: Rewrite
}

/** What the masker does with one column. */
interface Column {
  /** Flags the prefilter may raise for this column's type. */
  readonly mask: number
  readonly digitLimit: number
  readonly digitFlags: number
  /** Flags raised whatever the bytes (a custom pattern without an anchor, an unanchorable secret). */
  readonly always: number
  readonly rule: Rewrite | undefined
  /** Sent in binary: a value under a rule, or with a finding, is nulled (it cannot be rewritten). */
  readonly binary: boolean
  /** A finding nulls the value: binary, or a type that cannot hold a label (numbers, dates, bytea). */
  readonly nullOnFinding: boolean
  /** json/jsonb: labels outside strings are quoted. */
  readonly json: boolean
  readonly name: string
}

class Plan<F extends ColumnField> implements ColumnPlan<F> {
  /** Some column is under a rule. */
  readonly anyRuled: boolean

  constructor(
    readonly owner: DefaultMasker,
    readonly width: number,
    readonly fields: readonly F[] | undefined,
    readonly ruled: readonly boolean[],
    readonly internal: readonly Column[],
  ) {
    this.anyRuled = ruled.includes(true)
  }
}

/** One finding in a cell, after overlaps are merged. */
interface Span {
  start: number
  end: number
  source: number
  /** Merged from findings of different sources: written as the winner's label. */
  mixed: boolean
}

/**
 * Builds a masker. Validates the configuration once (unknown detector, bad pattern, `hash`
 * without a key: AirlockError `config`); the returned masker never re-checks.
 */
export function createMasker(config: MaskingConfig, options: MaskerOptions = {}): Masker {
  return new DefaultMasker(config, options)
}

class DefaultMasker implements Masker {
  private readonly detectors: Detector[] = []
  private readonly sources: Source[] = []
  private readonly custom: { pattern: RegExp; source: number }[] = []
  private readonly rules: { globs: RegExp[]; rewrite: Rewrite }[] = []
  private readonly canary: Canary | undefined
  private readonly prefilter: Prefilter
  private readonly hashKey: Buffer | undefined
  /** Flags raised by digit runs in text, and in numbers. */
  private readonly textDigits: number
  private readonly numberDigits: number
  /** Flags every value raises (custom patterns without an anchor, a secret without one). */
  private readonly always: number
  private readonly textColumn: Column
  /** Scratch: the flags of each cell of the row being masked, and the bytes carried between cells. */
  private flags = new Int32Array(64)
  private readonly carry: Carry = { window: 0, length: 0 }
  private readonly anonymous = new Map<number, Plan<ColumnField>>()
  /** Plans that keep the description as it is, by the columns' names, types and formats (see {@link columns}). */
  private readonly plans = new Map<string, Plan<ColumnField>>()
  /** COPY formats as parsed, by the object the caller passes for each COPY. */
  private readonly dialects = new WeakMap<CopyFormat, CopyDialect>()
  private counts = emptyCounts()
  /**
   * Results of one call into C over the messages of the current read: for the `count` messages
   * from the one at `next`, in order (`out` and `cells`: see {@link Batched}); `key` is what they
   * were scanned under (columns or a dialect).
   */
  private readonly batch = { chunk: undefined as Buffer | undefined, key: undefined as unknown, next: -1, index: 0, count: 0, out: new Int32Array(2 * BATCH), cells: new Int32Array(BATCH_CELLS) }

  constructor(config: MaskingConfig, options: MaskerOptions) {
    const enabled = config.detectors ?? DETECTORS
    for (const name of enabled) {
      if (!(DETECTORS as readonly string[]).includes(name)) throw new AirlockError('config', `unknown masking detector ${JSON.stringify(name)}`, { hint: `use one of: ${DETECTORS.join(', ')}` })
    }
    for (const name of DETECTORS) {
      const detector = BUILTIN_DETECTORS[name]
      this.sources.push({ name, rewrite: { strategy: 'redact', label: detector.label, keep: 0 } })
      if (enabled.includes(name)) this.detectors.push(detector)
    }
    this.sources.push({ name: 'canary', rewrite: { strategy: 'redact', label: CANARY_LABEL, keep: 0 } })

    this.hashKey = options.hashKey === undefined ? undefined : Buffer.from(options.hashKey)
    const needKey = (strategy: MaskingStrategy, what: string): void => {
      if (strategy === 'hash' && (this.hashKey === undefined || this.hashKey.length === 0)) {
        throw new AirlockError('config', `${what} uses the hash strategy, which needs masking.hashKey`, { hint: 'set masking: { hashKey: { env: AIRLOCK_HASH_KEY } } at the top level of the configuration' })
      }
    }

    for (const rule of config.columns ?? []) {
      needKey(rule.strategy, `the column rule for ${rule.match.join(', ')}`)
      this.rules.push({
        globs: rule.match.map(globToRegExp),
        rewrite: { strategy: rule.strategy, label: '[REDACTED]', keep: rule.keep ?? 4 },
      })
    }

    const canary = Canary.create(options.secrets ?? [])
    this.canary = canary
    const anchors: [string, number][] = []
    for (const detector of this.detectors) {
      for (const gram of detector.anchors) anchors.push([gram, 1 << DETECTORS.indexOf(detector.name)])
    }
    let always = 0
    if (canary !== undefined) {
      for (const gram of canary.anchors) anchors.push([gram, CANARY])
      if (canary.always) always |= CANARY
    }

    const names = new Set<string>([...DETECTORS, 'canary'])
    for (const custom of config.custom ?? []) {
      if (names.has(custom.name)) throw new AirlockError('config', `masking detector name ${JSON.stringify(custom.name)} is taken`, { hint: 'give the custom detector another name' })
      names.add(custom.name)
      needKey(custom.strategy, `custom detector ${custom.name}`)
      let pattern: RegExp
      try {
        pattern = new RegExp(custom.pattern, 'g')
      } catch {
        throw new AirlockError('config', `custom detector ${custom.name}: not a valid regular expression`)
      }
      const source = this.sources.length
      this.sources.push({ name: custom.name, rewrite: { strategy: custom.strategy, label: `[${custom.name.toUpperCase()}]`, keep: 4 } })
      this.custom.push({ pattern, source })
      const anchor = literalPrefix(custom.pattern)
      if (anchor === undefined) always |= CUSTOM
      else anchors.push([anchor, CUSTOM])
    }
    this.prefilter = Prefilter.for({ atSign: this.bitsWith('at-sign'), percent: canary === undefined ? 0 : CANARY, across: CANARY, anchors }, options.native === false ? 'javascript' : 'native')
    this.always = always
    this.textDigits = this.bitsWith('digits')
    this.numberDigits = this.bitsOf(['credit-card'])
    this.textColumn = this.column('', 0, 0)
  }

  columns<F extends ColumnField>(fields: readonly F[]): ColumnPlan<F> {
    // A result's description usually repeats (every run of the same query): plans that send the
    // description unchanged depend on names, types and formats only, so they are kept and reused.
    let key = ''
    for (const field of fields) key += `${field.name.length}:${field.name}/${field.typeOid}/${field.format ?? 0}/`
    const known = this.plans.get(key)
    if (known !== undefined) return known as Plan<F>
    let changed = false
    const internal: Column[] = []
    const ruled: boolean[] = []
    const described = fields.map((field) => {
      const column = this.column(field.name, field.typeOid, field.format ?? 0)
      internal.push(column)
      ruled.push(column.rule !== undefined)
      const name = this.text(field.name) ?? field.name
      if (column.rule === undefined && name === field.name) return field
      changed = true
      if (column.rule === undefined) return { ...field, name }
      return { ...field, name, typeOid: TEXT_OID, typeSize: -1, typeModifier: -1, format: 0 }
    })
    const plan = new Plan(this, fields.length, changed ? described : undefined, ruled, internal)
    if (!changed) {
      if (this.plans.size >= MAX_PLANS) this.plans.delete(this.plans.keys().next().value!)
      this.plans.set(key, plan as Plan<ColumnField>)
    }
    return plan
  }

  row(values: readonly (Buffer | null)[], plan: ColumnPlan): (Buffer | null)[] | undefined {
    const columns = this.internalOf(plan)
    if (values.length !== columns.length) throw new AirlockError('internal', `a row of ${values.length} values does not fit a plan of ${columns.length} columns`)
    if (this.flags.length < values.length) this.flags = new Int32Array(values.length * 2)
    const flags = this.flags
    const prefilter = this.prefilter
    // Windows across cells matter to the canary only.
    const carry = this.canary === undefined ? undefined : this.carry
    if (carry !== undefined) carry.length = 0
    let raised = 0
    let ruled = false
    let first = true
    for (let i = 0; i < values.length; i++) {
      const value = values[i]!
      if (value === null) {
        flags[i] = 0
        continue
      }
      const column = columns[i]!
      const cell = column.always | (prefilter.scanCell(value, column.digitLimit, column.digitFlags, carry, first) & column.mask)
      first = false
      flags[i] = cell
      raised |= cell
      if (column.rule !== undefined) ruled = true
    }
    if (raised === 0 && !ruled) return undefined
    return this.maskRow(values, columns, flags)
  }

  dataRow(body: Buffer, plan: ColumnPlan, place?: MessagePlace): (Buffer | null)[] | undefined {
    const columns = this.internalOf(plan)
    if (body.length < 2) throw malformed()
    const count = body.readUInt16BE(0)
    if (count !== columns.length) throw new AirlockError('internal', `a row of ${count} values does not fit a plan of ${columns.length} columns`)
    if (this.flags.length < count) this.flags = new Int32Array(count * 2)
    const flags = this.flags
    const prefilter = this.prefilter
    // In C when built: one call for the rows of a read (or for this row), nothing allocated.
    const carried = this.canary !== undefined
    const batched = this.fromBatch(body, place, columns)
    const native = batched ?? prefilter.dataRow(body, columns, carried)
    if (native !== undefined) {
      if (native === -1) throw malformed()
      if (native === 0 && !(plan as Plan<ColumnField>).anyRuled) return undefined
      // Each cell's flags: kept by the batch (it keeps every row it takes that raises), or in io
      // after the scan alone.
      if (native === 0) flags.fill(0, 0, count)
      else if (batched === undefined || !this.batchedCells(count, flags)) {
        if (batched !== undefined) prefilter.dataRow(body, columns, carried)
        prefilter.cellFlags(count, flags)
      }
      return this.maskRow(valuesOf(body, count), columns, flags)
    }
    const carry = this.canary === undefined ? undefined : this.carry
    if (carry !== undefined) carry.length = 0
    let raised = 0
    let ruled = false
    let offset = 2
    for (let i = 0; i < count; i++) {
      if (offset + 4 > body.length) throw malformed()
      const length = body.readInt32BE(offset)
      offset += 4
      if (length === -1) {
        flags[i] = 0
        continue
      }
      if (length < 0 || offset + length > body.length) throw malformed()
      const column = columns[i]!
      const cell = column.always | (prefilter.scan(body, offset, offset + length, column.digitLimit, column.digitFlags, carry) & column.mask)
      flags[i] = cell
      raised |= cell
      if (column.rule !== undefined) ruled = true
      offset += length
    }
    if (offset !== body.length) throw malformed()
    if (raised === 0 && !ruled) return undefined
    return this.maskRow(valuesOf(body, count), columns, flags)
  }

  text(value: string): string | undefined {
    const bytes = Buffer.from(value, 'utf8')
    const masked = this.maskSingle(bytes)
    return masked === undefined ? undefined : masked.toString('utf8')
  }

  errorFields(fields: readonly (readonly [number, string])[]): [number, string][] | undefined {
    let out: [number, string][] | undefined
    fields.forEach(([code, value], index) => {
      if (FIXED_ERROR_FIELDS.has(code)) return
      const masked = this.text(value)
      if (masked === undefined) return
      out ??= fields.map(([each, text]) => [each, text])
      out[index]![1] = masked
    })
    return out
  }

  copy(line: Buffer, format: CopyFormat, plan?: ColumnPlan, place?: MessagePlace, headroom = 0): Buffer | undefined {
    const dialect = this.dialect(format)
    // Where a scan in C left each field's flags (then the fields are not scanned again).
    let scanned: 'batch' | 'io' | undefined
    if (plan === undefined) {
      // -1: something to unescape; undefined: not in a batch.
      const batched = this.textColumn.always !== 0 ? undefined : this.fromBatch(line, place, dialect)
      if (batched === 0) return undefined
      if (batched === undefined) {
        const found = this.cleanCopyLine(line, dialect)
        if (found === Found.Nothing) return undefined
        if (found === Found.InC) scanned = 'io'
      } else if (batched > 0) {
        scanned = 'batch'
      }
    }
    const parsed = parseCopyLine(line, dialect)
    if (parsed === undefined) {
      // Not well-formed: mask the line as one text, in place (labels need no quoting).
      const masked = this.maskSingle(line)
      if (masked === undefined || headroom === 0) return masked
      const out = Buffer.allocUnsafe(headroom + masked.length)
      masked.copy(out, headroom)
      return out
    }
    const width = parsed.values.length
    if (plan !== undefined && plan.width !== width) {
      // The fields do not line up with the named columns: rules cannot be placed, so every field
      // is treated as ruled (fail closed).
      const redacted = parsed.values.map((value) => (value === null ? null : Buffer.from('[REDACTED]')))
      this.counts.columns['*'] = (this.counts.columns['*'] ?? 0) + width
      this.counts.total += width
      return writeCopyLine(line, parsed, redacted, dialect, headroom)
    }
    const anonymous = plan ?? this.anonymousPlan(width)
    if (this.flags.length < width) this.flags = new Int32Array(width * 2)
    // A line wider than C keeps flags for is scanned again.
    const kept = scanned === 'batch' ? this.batchedCells(width, this.flags) : scanned === 'io' && this.prefilter.fieldFlags(width, this.flags)
    const masked = kept ? this.maskRow(parsed.values, this.internalOf(anonymous), this.flags) : this.row(parsed.values, anonymous)
    return masked === undefined ? undefined : writeCopyLine(line, parsed, masked, dialect, headroom)
  }

  cleanRows(chunk: Buffer, offset: number, plan: ColumnPlan, run: CleanRun): void {
    const columns = this.internalOf(plan)
    this.cleanRun(chunk, offset, (plan as Plan<ColumnField>).anyRuled ? undefined : columns, run)
  }

  cleanCopyLines(chunk: Buffer, offset: number, format: CopyFormat, run: CleanRun): void {
    this.cleanRun(chunk, offset, this.textColumn.always !== 0 ? undefined : this.dialect(format), run)
  }

  stream(options?: MaskingStreamOptions): MaskingStream {
    return createMaskingStream(this.streamContext(), options)
  }

  takeCounts(): MaskCounts {
    const counts = this.counts
    this.counts = emptyCounts()
    return counts
  }

  // ---- internals ----------------------------------------------------------------------------

  /**
   * The fast path of {@link copy} without a plan: a line with nothing to unescape (no backslash in
   * text, no quote in CSV) holds its values as they are between delimiters, so the prefilter can
   * read them in place, as {@link dataRow} does, and a clean line allocates nothing. Nothing: the
   * line goes out unchanged.
   */
  private cleanCopyLine(line: Buffer, dialect: CopyDialect): Found {
    const column = this.textColumn
    if (column.always !== 0) return Found.Something
    if (line.includes(dialect.csv ? dialect.quote : BACKSLASH)) return Found.Something
    let end = line.length
    if (end > 0 && line[end - 1] === NEWLINE) end--
    if (dialect.csv && end > 0 && line[end - 1] === RETURN) end--
    const prefilter = this.prefilter
    const native = prefilter.copyLine(line, end, dialect.delimiter, dialect.null, column, this.canary !== undefined)
    if (native !== undefined) return native === 0 ? Found.Nothing : Found.InC
    const carry = this.canary === undefined ? undefined : this.carry
    if (carry !== undefined) carry.length = 0
    for (let start = 0; start <= end; ) {
      let stop = line.indexOf(dialect.delimiter, start)
      if (stop < 0 || stop > end) stop = end
      // A NULL field is skipped, as in row(): it neither raises nor carries.
      const isNull = stop - start === dialect.null.length && line.compare(dialect.null, 0, dialect.null.length, start, stop) === 0
      if (!isNull && (prefilter.scan(line, start, stop, column.digitLimit, column.digitFlags, carry) & column.mask) !== 0) return Found.Something
      start = stop + 1
    }
    return Found.Nothing
  }

  /**
   * The flags of the message whose body is `body` (at `place`), from a batch over its read: the
   * one kept, or a new one from this message on, DataRows under `key` (the columns) or COPY
   * lines in `key` (the dialect). Undefined without a place in a read, or when the batch cannot
   * start there.
   */
  private fromBatch(body: Buffer, place: MessagePlace | undefined, key: readonly Column[] | CopyDialect): number | undefined {
    const chunk = place?.chunk
    if (chunk === undefined || !this.prefilter.native) return undefined
    const at = place!.offset
    // The body must be the message at `at` (its length field says so), whole inside the read.
    if (at < 0 || at + HEADER + body.length > chunk.length || chunk.readInt32BE(at + 1) !== body.length + 4) return undefined
    if (!this.batchAt(chunk, at, key)) return undefined
    const batch = this.batch
    batch.next = at + HEADER + body.length
    return batch.out[2 * batch.index++]
  }

  /**
   * The flags of each cell (or field) of the message {@link fromBatch} gave last, as the batch
   * kept them, into `flags`; false when it did not keep them (the message raised nothing, or was
   * wider than there was room for), or kept another width (then the message is scanned again).
   */
  private batchedCells(width: number, flags: Int32Array): boolean {
    const { out, cells, index } = this.batch
    const at = index > 0 ? out[2 * index - 1]! : -1
    if (at < 0 || cells[at] !== width) return false
    for (let i = 0; i < width; i++) flags[i] = cells[at + 1 + i]!
    return true
  }

  /**
   * A batch whose next message is the one at `at` of `chunk` under `key`: the one kept when it
   * reaches there, else a new one; false when none can start there.
   */
  private batchAt(chunk: Buffer, at: number, key: readonly Column[] | CopyDialect): boolean {
    const batch = this.batch
    if (chunk === batch.chunk && at === batch.next && batch.index < batch.count && batch.key === key) return true
    return this.startBatch(chunk, at, key) !== 0
  }

  /** A new batch: the messages under `key` from `at` of `chunk` scanned in one call; how many. */
  private startBatch(chunk: Buffer, at: number, key: readonly Column[] | CopyDialect): number {
    const batch = this.batch
    const carried = this.canary !== undefined
    const dialect = 'delimiter' in key ? key : undefined
    const scanned =
      dialect === undefined
        ? this.prefilter.dataRows(chunk, at, key as readonly Column[], carried, batch)
        : this.prefilter.copyLines(chunk, at, dialect.csv ? dialect.quote : -1, dialect.delimiter, dialect.null, this.textColumn, carried, batch)
    batch.chunk = chunk
    batch.count = scanned ?? 0
    batch.index = 0
    batch.key = key
    batch.next = batch.count === 0 ? -1 : at
    return batch.count
  }

  /**
   * See {@link cleanRows}: a batch from `offset`, whose clean messages (flags 0) are counted into
   * `run` and taken from it; the first that is not stays next for {@link fromBatch}. None when
   * `key` is undefined (every message needs the slow path) or without the addon.
   */
  private cleanRun(chunk: Buffer, offset: number, key: readonly Column[] | CopyDialect | undefined, run: CleanRun): void {
    run.count = 0
    run.end = offset
    if (key === undefined || !this.prefilter.native) return
    if (!this.batchAt(chunk, offset, key)) return
    const batch = this.batch
    const { out, count, index } = batch
    let clean = index
    let at = offset
    // The C walk read each of these whole inside the chunk: type byte, then Int32 length.
    while (clean < count && out[2 * clean] === 0) {
      at += 1 + chunk.readInt32BE(at + 1)
      clean++
    }
    batch.index = clean
    batch.next = at
    run.count = clean - index
    run.end = at
  }

  private dialect(format: CopyFormat): CopyDialect {
    let dialect = this.dialects.get(format)
    if (dialect === undefined) {
      dialect = dialectOf(format)
      this.dialects.set(format, dialect)
    }
    return dialect
  }

  private bitsOf(names: readonly DetectorName[]): number {
    let bits = 0
    for (const detector of this.detectors) if (names.includes(detector.name)) bits |= 1 << DETECTORS.indexOf(detector.name)
    return bits
  }

  private bitsWith(trigger: 'at-sign' | 'digits'): number {
    return this.bitsOf(this.detectors.filter((detector) => detector.triggers.includes(trigger)).map((detector) => detector.name))
  }

  private column(name: string, typeOid: number, format: number): Column {
    const profile = profileOf(typeOid, format)
    const rule = this.rules.find((each) => each.globs.some((glob) => glob.test(name)))?.rewrite
    const binary = format !== 0
    const base = { always: this.always, rule, binary, name }
    switch (profile) {
      case Profile.Text:
      case Profile.Json:
        return { ...base, mask: ~0, digitLimit: TEXT_DIGIT_RUN, digitFlags: this.textDigits, nullOnFinding: binary, json: profile === Profile.Json }
      case Profile.Number:
        return { ...base, mask: this.numberDigits | CANARY | CUSTOM, digitLimit: NUMBER_DIGIT_RUN, digitFlags: this.numberDigits, nullOnFinding: true, json: false }
      case Profile.Opaque:
        return { ...base, mask: CANARY | CUSTOM, digitLimit: NEVER, digitFlags: 0, nullOnFinding: true, json: false }
    }
  }

  private internalOf(plan: ColumnPlan): readonly Column[] {
    if (!(plan instanceof Plan) || plan.owner !== this) throw new AirlockError('internal', 'a column plan is used with a masker that did not make it')
    return plan.internal
  }

  private anonymousPlan(width: number): Plan<ColumnField> {
    let plan = this.anonymous.get(width)
    if (plan === undefined) {
      plan = new Plan(this, width, undefined, new Array<boolean>(width).fill(false), new Array<Column>(width).fill(this.textColumn))
      this.anonymous.set(width, plan)
    }
    return plan
  }

  /** The masked form of one text value, or undefined when unchanged; `null` strategies write their label. */
  private maskSingle(bytes: Buffer): Buffer | undefined {
    const found = this.findSingle(bytes)
    if (found.length === 0) return undefined
    return this.rewrite(bytes, found, false, this.textColumn) ?? undefined
  }

  /** Findings (start, end, source triples) in one text value. */
  private findSingle(bytes: Buffer): number[] {
    const column = this.textColumn
    const flags = column.always | this.prefilter.scanValue(bytes, 0, bytes.length, column.digitLimit, column.digitFlags)
    const found: number[] = []
    if (flags === 0) return found
    if ((flags & CANARY) !== 0) this.canary?.find(bytes, (start, end) => found.push(start, end, CANARY_SOURCE))
    this.detect(bytes, flags, found)
    return found
  }

  /** The slow path of {@link row}: some value raised a flag or sits under a rule. */
  private maskRow(values: readonly (Buffer | null)[], columns: readonly Column[], flags: Int32Array): (Buffer | null)[] | undefined {
    const found: (number[] | undefined)[] = new Array(values.length)
    let canary = false
    for (let i = 0; i < values.length; i++) if ((flags[i]! & CANARY) !== 0) canary = true
    if (canary) this.canaryRow(values, found)

    let out: (Buffer | null)[] | undefined
    for (let i = 0; i < values.length; i++) {
      const value = values[i]!
      if (value === null) continue
      const column = columns[i]!
      let masked: Buffer | null | undefined
      if (column.rule !== undefined) {
        // The whole value is rewritten; what detectors would find in it goes with it. But `partial`
        // would show the end of a credential: the canary wins.
        const credential = column.rule.strategy === 'partial' && found[i] !== undefined && found[i]!.length > 0
        masked = column.binary ? null : credential ? Buffer.from(CANARY_LABEL) : toBuffer(replacement(column.rule, value, this.hashKey, true))
        if (credential) this.counts.detectors.canary = (this.counts.detectors.canary ?? 0) + 1
        this.counts.columns[column.name] = (this.counts.columns[column.name] ?? 0) + 1
        this.counts.total++
        if (column.binary) this.counts.nulled++
      } else {
        const cell = (found[i] ??= [])
        if ((flags[i]! & (ALL_DETECTOR_BITS | CUSTOM)) !== 0) this.detect(value, flags[i]!, cell)
        if (cell.length === 0) continue
        masked = this.rewrite(value, cell, true, column)
        if (masked === undefined) continue
      }
      out ??= values.slice()
      out[i] = masked
    }
    return out
  }

  /** Runs the detectors `flags` names over `bytes`, appending findings (start, end, source). */
  private detect(bytes: Buffer, flags: number, found: number[]): void {
    if ((flags & ALL_DETECTOR_BITS) !== 0) {
      const text = bytes.toString('latin1')
      for (const detector of this.detectors) {
        const index = DETECTORS.indexOf(detector.name)
        if ((flags & (1 << index)) !== 0) detector.find(text, (start, end) => found.push(start, end, index))
      }
    }
    if ((flags & CUSTOM) !== 0 && this.custom.length > 0) this.detectCustom(bytes, found)
  }

  /** Custom patterns read the value as UTF-8 text (they may name non-ASCII characters). */
  private detectCustom(bytes: Buffer, found: number[]): void {
    let text = bytes.toString('utf8')
    let offsets: Int32Array | undefined
    if (text.length !== bytes.length) {
      if (Buffer.byteLength(text, 'utf8') === bytes.length) offsets = utf8Offsets(text)
      else text = bytes.toString('latin1') // not UTF-8 (binary): one character per byte
    }
    for (const { pattern, source } of this.custom) {
      pattern.lastIndex = 0
      for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
        if (match[0].length === 0) {
          pattern.lastIndex++
          continue
        }
        const start = match.index
        const end = start + match[0].length
        found.push(offsets?.[start] ?? start, offsets?.[end] ?? end, source)
      }
    }
  }

  /**
   * The canary over one row: the cells joined as they are (a secret split over columns) and, for
   * each separator some secret contains, joined with it. Findings are mapped back to the cells.
   */
  private canaryRow(values: readonly (Buffer | null)[], found: (number[] | undefined)[]): void {
    const canary = this.canary!
    const cells: number[] = []
    for (let i = 0; i < values.length; i++) if (values[i] !== null) cells.push(i)
    if (cells.length === 1) {
      const only = cells[0]!
      const value = values[only]!
      canary.find(value, (start, end) => (found[only] ??= []).push(start, end, CANARY_SOURCE))
      return
    }
    for (const separator of [-1, ...canary.separators]) {
      const starts: number[] = []
      const pieces: Buffer[] = []
      let length = 0
      for (const i of cells) {
        if (separator >= 0 && pieces.length > 0) {
          pieces.push(Buffer.of(separator))
          length++
        }
        starts.push(length)
        pieces.push(values[i]!)
        length += values[i]!.length
      }
      const joined = Buffer.concat(pieces, length)
      canary.find(joined, (start, end) => {
        cells.forEach((cell, k) => {
          const cellStart = starts[k]!
          const cellEnd = cellStart + values[cell]!.length
          const from = Math.max(start, cellStart)
          const to = Math.min(end, cellEnd)
          if (from < to) (found[cell] ??= []).push(from - cellStart, to - cellStart, CANARY_SOURCE)
        })
      })
    }
  }

  /**
   * `bytes` with its findings rewritten; null when a finding's strategy is `null` (and `canBeNull`),
   * or when the column's values cannot hold a label (fail closed); undefined when nothing changes.
   */
  private rewrite(bytes: Buffer, found: readonly number[], canBeNull: boolean, column: Column): Buffer | null | undefined {
    const spans = mergeSpans(bytes, found, this.sources)
    if (spans.length === 0) return undefined
    for (const span of spans) {
      const name = this.sources[span.source]!.name
      this.counts.detectors[name] = (this.counts.detectors[name] ?? 0) + 1
      this.counts.total++
    }
    if (column.nullOnFinding && canBeNull) {
      this.counts.nulled++
      return null
    }
    const strings = column.json ? jsonStrings(bytes) : undefined
    // The replacements first, then the value written once around them.
    const texts: string[] = []
    let size = bytes.length
    for (const span of spans) {
      const rewrite = this.sources[span.source]!.rewrite
      const strategy = span.mixed && rewrite.strategy !== 'null' ? 'redact' : rewrite.strategy
      let text = strategy === 'redact' ? rewrite.label : replacement(rewrite, bytes.subarray(span.start, span.end), this.hashKey, canBeNull)
      if (text === null) return null
      if (strings !== undefined) {
        // Inside one JSON string the label is string content; outside every string it is written
        // as a string; across a string's edge the value cannot stay JSON: null it.
        const inside = strings.find(([start, end]) => span.start < end && span.end > start)
        if (inside === undefined) text = JSON.stringify(text)
        else if (span.start < inside[0] || span.end > inside[1]) {
          if (!canBeNull) return undefined
          this.counts.nulled++
          return null
        }
      }
      texts.push(text)
      size += Buffer.byteLength(text, 'utf8') - (span.end - span.start)
    }
    const out = Buffer.allocUnsafe(size)
    let at = 0
    let written = 0
    for (let i = 0; i < spans.length; i++) {
      written += bytes.copy(out, written, at, spans[i]!.start)
      written += out.write(texts[i]!, written, 'utf8')
      at = spans[i]!.end
    }
    bytes.copy(out, written, at)
    return out
  }

  /** What a stream needs: masking, where findings are, and what to hold back for. */
  private streamContext(): StreamContext {
    return {
      mask: (bytes) => this.maskSingle(bytes),
      findings: (bytes) => mergeSpans(bytes, this.findSingle(bytes), this.sources).flatMap((span) => [span.start, span.end]),
      canary: this.canary,
      holdLines: this.custom.length > 0,
    }
  }
}

/** The values of a well-formed DataRow body, as subarrays of it. */
function valuesOf(body: Buffer, count: number): (Buffer | null)[] {
  const values: (Buffer | null)[] = new Array(count)
  let offset = 2
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(offset)
    offset += 4
    values[i] = length === -1 ? null : body.subarray(offset, offset + length)
    if (length > 0) offset += length
  }
  return values
}

function malformed(): AirlockError {
  return new AirlockError('internal', 'a DataRow body does not hold the values it announces')
}

function emptyCounts(): { total: number; detectors: Record<string, number>; columns: Record<string, number>; nulled: number } {
  return { total: 0, detectors: {}, columns: {}, nulled: 0 }
}

function toBuffer(text: string | null): Buffer | null {
  return text === null ? null : Buffer.from(text, 'utf8')
}

function isContinuation(byte: number | undefined): boolean {
  return byte !== undefined && (byte & 0xc0) === 0x80
}

/**
 * Findings (start, end, source triples) widened to whole UTF-8 characters, sorted, and merged
 * where they overlap; a merged span takes the canary's label if the canary is in it, else the
 * label of the finding that started first.
 */
function mergeSpans(bytes: Buffer, found: readonly number[], sources: readonly Source[]): Span[] {
  const spans: Span[] = []
  for (let i = 0; i < found.length; i += 3) {
    let start = found[i]!
    let end = found[i + 1]!
    while (start > 0 && isContinuation(bytes[start])) start--
    while (end < bytes.length && isContinuation(bytes[end])) end++
    if (end > start) spans.push({ start, end, source: found[i + 2]!, mixed: false })
  }
  spans.sort((a, b) => a.start - b.start || b.end - a.end)
  const merged: Span[] = []
  for (const span of spans) {
    const last = merged[merged.length - 1]
    if (last === undefined || span.start >= last.end) {
      merged.push(span)
      continue
    }
    if (span.end > last.end) last.end = span.end
    if (span.source !== last.source) {
      last.mixed = true
      const strictest = span.source === CANARY_SOURCE || sources[span.source]!.rewrite.strategy === 'null'
      if (strictest && last.source !== CANARY_SOURCE) last.source = span.source
    }
  }
  return merged
}

/** The [start, end) byte ranges of the contents of the string literals of a JSON text. */
function jsonStrings(bytes: Buffer): [number, number][] {
  const ranges: [number, number][] = []
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x22 /* " */) continue
    const start = i + 1
    for (i = start; i < bytes.length && bytes[i] !== 0x22; i++) if (bytes[i] === 0x5c /* \ */) i++
    ranges.push([start, i])
  }
  return ranges
}

/** Byte offset of each UTF-16 index of `text` (and of its end). */
function utf8Offsets(text: string): Int32Array {
  const offsets = new Int32Array(text.length + 1)
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    offsets[i] = bytes
    const code = text.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff) {
      // A surrogate pair is one 4-byte character; its low half starts nowhere of its own.
      bytes += 4
      offsets[++i] = bytes
    } else bytes += 3
  }
  offsets[text.length] = bytes
  return offsets
}

/**
 * The case-folded first four characters of `pattern` when it starts with four literal characters
 * and has no alternation (so every match starts with them); otherwise undefined.
 */
function literalPrefix(pattern: string): string | undefined {
  if (pattern.includes('|')) return undefined
  const match = /^[A-Za-z0-9_\-:=@#&!,;'"<>~ ]{4}/.exec(pattern)
  if (match === null) return undefined
  // A quantifier right after the fourth character could make it optional or repeat it.
  if (/^[?*+{]/.test(pattern.slice(4))) return undefined
  return match[0].toLowerCase()
}
