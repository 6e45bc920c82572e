/**
 * safe-writes: whether a WHERE (or MERGE ON) condition selects every row as written — `true`,
 * `1 = 1`, `'a' = 'a'`, `id = id`, `x IS NULL OR x IS NOT NULL`, `NOT false`, `EXISTS (SELECT 1)`,
 * `true OR ...`. Static folding of what is visible in the text, not a theorem prover: a condition
 * it cannot fold counts as narrowing.
 */
import { constantText, parseBoolean } from './analyze.js'

type Body = Record<string, unknown>

export function isTriviallyTrue(condition: unknown): boolean {
  return truth(condition) === true
}

const COMPARISONS = new Set(['=', '<>', '!=', '<', '>', '<=', '>='])

function truth(node: unknown): boolean | undefined {
  if (!isObject(node)) return undefined
  if (isObject(node.A_Const)) {
    const constant = node.A_Const
    if (isObject(constant.boolval)) return constant.boolval.boolval === true
    // An untyped literal in a boolean position is read as a boolean: WHERE 'yes'.
    if (isObject(constant.sval)) return parseBoolean(constantText(node) ?? '')
    return undefined
  }
  if (isObject(node.TypeCast)) {
    const names = asArray((node.TypeCast.typeName as Body | undefined)?.names)
    const type = stringOf(names[names.length - 1])
    const text = constantText(node.TypeCast.arg)
    if ((type === 'bool' || type === 'boolean') && text !== undefined) return parseBoolean(text)
    return undefined
  }
  if (isObject(node.BoolExpr)) return boolExpr(node.BoolExpr)
  if (isObject(node.A_Expr)) return expression(node.A_Expr)
  if (isObject(node.NullTest)) {
    const test = node.NullTest
    if (constantText(test.arg) === undefined) return undefined
    return test.nulltesttype === 'IS_NOT_NULL'
  }
  if (isObject(node.BooleanTest)) {
    const inner = truth(node.BooleanTest.arg)
    if (inner === undefined) return undefined
    switch (node.BooleanTest.booltesttype) {
      case 'IS_TRUE':
      case 'IS_NOT_FALSE':
        return inner
      case 'IS_FALSE':
      case 'IS_NOT_TRUE':
        return !inner
      default:
        return undefined
    }
  }
  if (isObject(node.SubLink) && node.SubLink.subLinkType === 'EXISTS_SUBLINK') {
    const select = (node.SubLink.subselect as Body | undefined)?.SelectStmt
    if (isObject(select) && select.fromClause === undefined && select.limitCount === undefined && select.havingClause === undefined) {
      return select.whereClause === undefined || truth(select.whereClause) === true ? true : undefined
    }
  }
  return undefined
}

function boolExpr(expr: Body): boolean | undefined {
  const args = asArray(expr.args)
  switch (expr.boolop) {
    case 'NOT_EXPR': {
      const inner = truth(args[0])
      return inner === undefined ? undefined : !inner
    }
    case 'AND_EXPR': {
      const values = args.map(truth)
      if (values.some((value) => value === false)) return false
      return values.every((value) => value === true) ? true : undefined
    }
    case 'OR_EXPR': {
      const values = args.map(truth)
      if (values.some((value) => value === true)) return true
      if (complementaryNullTests(args)) return true
      return values.every((value) => value === false) ? false : undefined
    }
    default:
      return undefined
  }
}

/** `x IS NULL OR x IS NOT NULL` (in any order, among other terms). */
function complementaryNullTests(args: unknown[]): boolean {
  const tests = args.filter((arg): arg is { NullTest: Body } => isObject(arg) && isObject(arg.NullTest))
  return tests.some((a) => tests.some((b) => a.NullTest.nulltesttype !== b.NullTest.nulltesttype && same(a.NullTest.arg, b.NullTest.arg)))
}

function expression(expr: Body): boolean | undefined {
  const operator = stringOf(asArray(expr.name)[asArray(expr.name).length - 1])
  switch (expr.kind) {
    case 'AEXPR_OP':
      if (operator === undefined || !COMPARISONS.has(operator)) return undefined
      return compare(operator, expr.lexpr, expr.rexpr)
    case 'AEXPR_NOT_DISTINCT':
      return same(expr.lexpr, expr.rexpr) ? true : undefined
    case 'AEXPR_DISTINCT':
      return same(expr.lexpr, expr.rexpr) ? false : undefined
    case 'AEXPR_IN': {
      if (operator !== '=') return undefined
      const left = constantText(expr.lexpr)
      const list = isObject(expr.rexpr) && isObject(expr.rexpr.List) ? asArray(expr.rexpr.List.items) : asArray(expr.rexpr)
      return list.some((item) => same(item, expr.lexpr) || (left !== undefined && constantText(item) === left)) ? true : undefined
    }
    case 'AEXPR_LIKE':
    case 'AEXPR_ILIKE': {
      const pattern = constantText(expr.rexpr)
      return (operator === '~~' || operator === '~~*') && pattern !== undefined && /^%+$/.test(pattern) ? true : undefined
    }
    default:
      return undefined
  }
}

function compare(operator: string, left: unknown, right: unknown): boolean | undefined {
  const a = constantText(left)
  const b = constantText(right)
  if (a !== undefined && b !== undefined) {
    const numeric = a.trim() !== '' && b.trim() !== '' && Number.isFinite(Number(a)) && Number.isFinite(Number(b))
    const order = numeric ? Math.sign(Number(a) - Number(b)) : a === b ? 0 : a < b ? -1 : 1
    return ordered(operator, order)
  }
  // The same expression on both sides (`id = id`), ignoring NULLs as the "trivially true" does.
  return same(left, right) ? ordered(operator, 0) : undefined
}

function ordered(operator: string, order: number): boolean {
  switch (operator) {
    case '=':
      return order === 0
    case '<>':
    case '!=':
      return order !== 0
    case '<':
      return order < 0
    case '>':
      return order > 0
    case '<=':
      return order <= 0
    default:
      return order >= 0
  }
}

/** Structural equality of two expressions, ignoring source locations. */
function same(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return false
  return JSON.stringify(a, withoutLocation) === JSON.stringify(b, withoutLocation)
}

function withoutLocation(key: string, value: unknown): unknown {
  return key === 'location' ? undefined : value
}

function isObject(value: unknown): value is Body {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

function stringOf(value: unknown): string | undefined {
  return isObject(value) && isObject(value.String) && typeof value.String.sval === 'string' ? value.String.sval : undefined
}
