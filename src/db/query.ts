/**
 * What a query may ask of mingo, and how mingo runs it: queries, projections, sorts and update
 * paths are checked before mingo sees them, and mingo runs with options that keep the documented
 * operator set safe on data other peers wrote.
 *
 * - **No code.** `$where`, `$function` and `$accumulator` run JavaScript: they are refused (a
 *   typed `ValidationError`), and mingo runs with `scriptEnabled: false` besides. Only the
 *   documented query operators are accepted (`QUERY_OPERATORS`, `FIELD_OPERATORS`); `$expr` takes
 *   mingo's expression operators except those that run code or regular expressions.
 * - **Odd keys.** A path is dot-separated non-empty parts, none of them a property name of
 *   `Object.prototype` (`RESERVED_KEYS`: no document holds one, and `{__proto__: …}` from
 *   `JSON.parse` would otherwise turn into an empty query that matches everything).
 * - **Regular expressions in linear time.** A backtracking engine (JavaScript's `RegExp`) can take
 *   exponential time: `^(a+)+$` over 29 characters a peer wrote took 8.5 s. KiteDB matches every
 *   `$regex` (and every regular expression in `$in`, `$nin`, `$all`, `$not` and `$elemMatch`,
 *   and in `$pull`) with RE2 (re2js), whose time is linear in the string's length times the
 *   pattern's, whatever either holds. Patterns are at most `MAX_REGEX_LENGTH` characters and use
 *   RE2's syntax: JavaScript's except backreferences and lookaround, which are refused. What this
 *   does not bound: a query's total time still grows with the number and size of the documents it
 *   reads (as any scan does), and `i` folds case by Unicode simple folding, as RE2 does.
 */
import { Context } from 'mingo/core'
import { type Options as MingoOptions } from 'mingo/types'
import * as expressionOperators from 'mingo/operators/expression'
import * as projectionOperators from 'mingo/operators/projection'
import * as queryOperators from 'mingo/operators/query'
import { Query } from 'mingo/query'
import { updateMany as mingoUpdateMany } from 'mingo/updater'
import { resolve } from 'mingo/util'
import { type RE2JS } from 're2js'
import { ValidationError } from '../errors.js'
import { isPlainObject, reservedKeyProblem } from '../crdt/index.js'

/** Longest regular expression pattern accepted, in characters. */
export const MAX_REGEX_LENGTH = 1024

/** Operators accepted where a query names fields (the top level, `$and`, `$or`, `$nor`, `$elemMatch`). */
export const QUERY_OPERATORS: ReadonlySet<string> = new Set(['$and', '$or', '$nor', '$expr'])

/** Operators accepted on a field: the documented ones. */
export const FIELD_OPERATORS: ReadonlySet<string> = new Set([
  '$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$not', '$exists', '$type', '$regex', '$options',
  '$elemMatch', '$size', '$all', '$mod'
])

/** Expression operators refused inside `$expr` (and anywhere else): they run code, or a backtracking regex. */
const REFUSED_EXPRESSIONS: ReadonlySet<string> = new Set(['$where', '$function', '$accumulator', '$regexMatch', '$regexFind', '$regexFindAll'])

/**
 * Check a dotted path (a field of a query, projection, sort, index or update). Throws
 * `ValidationError` naming `what` for an empty part or a part among `RESERVED_KEYS`.
 */
export function checkPath (path: unknown, what: string): void {
  if (typeof path !== 'string' || path.length === 0) throw new ValidationError(`${what}: a path must be a non-empty string`)
  for (const part of path.split('.')) {
    if (part.length === 0) throw new ValidationError(`${what} "${path}": a path cannot have an empty part`)
    const reserved = reservedKeyProblem(part)
    if (reserved !== undefined) throw new ValidationError(`${what} "${path}": ${reserved}`)
  }
}

/**
 * Check a query before it is compiled: a plain object whose keys are documented operators or
 * valid paths (see the file's doc), with patterns RE2 accepts. Throws `ValidationError` with the
 * reason; never runs anything the query holds.
 */
export function checkQuery (query: unknown, where = 'query'): void {
  if (!isPlainObject(query)) throw new ValidationError(`${where} must be a plain object`)
  for (const key of Object.keys(query)) {
    const value = query[key]
    if (key.startsWith('$')) {
      if (!QUERY_OPERATORS.has(key)) throw new ValidationError(`${where}: ${refusal(key)}`)
      if (key === '$expr') checkExpression(value, `${where}.$expr`)
      else {
        if (!Array.isArray(value) || value.length === 0) throw new ValidationError(`${where}.${key} must be a non-empty array of queries`)
        value.forEach((q, i) => { checkQuery(q, `${where}.${key}[${i}]`) })
      }
      continue
    }
    checkPath(key, `${where} field`)
    checkCondition(value, `${where}.${key}`)
  }
}

/**
 * Check a projection: `undefined`, or an object of valid paths (see `checkPath`) whose specs are
 * values, `$elemMatch` conditions (checked as queries) or expressions (no operator that runs code
 * or a backtracking regex). Throws `ValidationError`.
 */
export function checkProjection (projection: unknown): void {
  if (projection === undefined) return
  if (!isPlainObject(projection)) throw new ValidationError('a projection must be an object of paths, like {title: 1}')
  for (const [path, spec] of Object.entries(projection)) {
    checkPath(path, 'projection')
    if (!isPlainObject(spec)) { checkValue(spec, `projection.${path}`); continue }
    for (const [op, v] of Object.entries(spec)) {
      if (op === '$elemMatch') checkQuery({ [path]: { $elemMatch: v } }, 'projection')
      else checkExpression({ [op]: v }, `projection.${path}`)
    }
  }
}

/** A field's condition: a value, a RegExp, or an object of field operators. */
function checkCondition (cond: unknown, where: string): void {
  if (cond instanceof RegExp) { checkPattern(cond, where); return }
  if (!isPlainObject(cond)) { checkValue(cond, where); return }
  const keys = Object.keys(cond)
  if (!keys.some(k => k.startsWith('$'))) { checkValue(cond, where); return } // an object to compare with
  for (const op of keys) {
    const v = cond[op]
    if (!FIELD_OPERATORS.has(op)) throw new ValidationError(`${where}: ${refusal(op)}`)
    if (op === '$regex') {
      if (typeof v !== 'string' && !(v instanceof RegExp)) throw new ValidationError(`${where}.$regex must be a string or a RegExp`)
      const flags = cond.$options
      if (flags !== undefined && (typeof flags !== 'string' || !/^[imsu]*$/.test(flags))) throw new ValidationError(`${where}.$options must be made of the flags i, m, s, u`)
      checkPattern(typeof v === 'string' ? safeRegExp(v, flags, where) : v, where)
    } else if (op === '$not') {
      checkCondition(v, `${where}.$not`)
    } else if (op === '$elemMatch') {
      if (!isPlainObject(v)) throw new ValidationError(`${where}.$elemMatch must be an object`)
      if (Object.keys(v).every(k => k.startsWith('$') && FIELD_OPERATORS.has(k))) checkCondition(v, `${where}.$elemMatch`)
      else checkQuery(v, `${where}.$elemMatch`)
    } else {
      checkValue(v, `${where}.${op}`)
    }
  }
}

/**
 * An operand (of a query operator, or of an update): data to compare with or to write. Its
 * RegExps must be linear-time ones; nothing in it may run code; no key in it may be one of
 * `RESERVED_KEYS` (mingo copies operands key by key, so `{__proto__: 1}` would silently become
 * `{}`). Throws `ValidationError`.
 */
export function checkValue (value: unknown, where: string): void {
  if (value instanceof RegExp) { checkPattern(value, where); return }
  if (typeof value === 'function') throw new ValidationError(`${where} holds a function: queries compare data, they run no code`)
  if (Array.isArray(value)) { value.forEach((v, i) => { checkValue(v, `${where}[${i}]`) }); return }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (REFUSED_EXPRESSIONS.has(k)) throw new ValidationError(`${where}: ${refusal(k)}`)
      const reserved = reservedKeyProblem(k)
      if (reserved !== undefined) throw new ValidationError(`${where} has the key ${k}: ${reserved}`)
      checkValue(v, `${where}.${k}`)
    }
  }
}

/** An `$expr` expression: no operator that runs code or a backtracking regular expression, anywhere in it. */
function checkExpression (expr: unknown, where: string): void {
  if (typeof expr === 'function') throw new ValidationError(`${where} holds a function: queries run no code`)
  if (Array.isArray(expr)) { expr.forEach((e, i) => { checkExpression(e, `${where}[${i}]`) }); return }
  if (expr instanceof RegExp) { checkPattern(expr, where); return }
  if (expr !== null && typeof expr === 'object') {
    for (const [k, v] of Object.entries(expr)) {
      if (REFUSED_EXPRESSIONS.has(k)) throw new ValidationError(`${where}: ${refusal(k)}`)
      if (!k.startsWith('$')) checkPath(k, `${where} field`)
      checkExpression(v, `${where}.${k}`)
    }
  }
}

function refusal (op: string): string {
  if (op === '$where' || op === '$function' || op === '$accumulator') return `${op} runs JavaScript: operators that run code are disabled`
  if (op.startsWith('$regex')) return `${op} is not supported: use {field: {$regex: …}}, which runs in linear time`
  return `unknown or unsupported operator ${op}`
}

/** `new RegExp(source, flags)`, as a `ValidationError` when JavaScript refuses it. */
function safeRegExp (source: string, flags: string | undefined, where: string): RegExp {
  try {
    return new RegExp(source, flags)
  } catch (err) {
    throw new ValidationError(`${where}: invalid regular expression: ${(err as Error).message}`, { cause: err })
  }
}

/** Compiled RE2 programs by `flags/source`, so a pattern is compiled once per page (a bounded cache). */
const compiled = new Map<string, RE2JS>()

/**
 * RE2 (re2js) is loaded the first time a query or update holds a regular expression, so apps that
 * never use one do not load it at start. Mingo compiles patterns synchronously, inside the query's
 * construction: callers that may meet a pattern first await `prepareRegex` (the planner and the
 * update paths do).
 */
let RE2: typeof RE2JS | undefined
let loadingRE2: Promise<void> | undefined

/** Load the regular-expression engine, once. */
export async function loadRegexEngine (): Promise<void> {
  loadingRE2 ??= import('re2js').then(m => { RE2 = m.RE2JS })
  await loadingRE2
}

/** Whether the regular-expression engine is loaded. */
export function regexEngineLoaded (): boolean { return RE2 !== undefined }

/** Whether any of `values` (queries, updates) holds a regular expression: a RegExp or a `$regex` key, at any depth. */
export function holdsRegex (...values: unknown[]): boolean {
  const stack = [...values]
  for (let seen = 0; stack.length > 0 && seen < 100_000; seen++) {
    const v = stack.pop()
    if (v instanceof RegExp) return true
    if (typeof v !== 'object' || v === null) continue
    if (Array.isArray(v)) { stack.push(...(v as unknown[])); continue }
    for (const [k, x] of Object.entries(v)) {
      if (k === '$regex') return true
      stack.push(x)
    }
  }
  return false
}

/**
 * Check a pattern: its length, and, once the engine is loaded, that RE2 can run it (without the
 * engine, that part of the check happens when the query is compiled, after `prepareRegex`).
 * Throws `ValidationError`.
 */
function checkPattern (re: RegExp, where: string): void {
  if (re.source.length > MAX_REGEX_LENGTH) throw new ValidationError(`${where}: the pattern is ${re.source.length} characters, over the ${MAX_REGEX_LENGTH}-character limit`)
  if (RE2 !== undefined) linearRegExp(re, where)
}

/** Load the regular-expression engine when `values` hold a pattern and it is not loaded yet. */
export async function prepareRegex (...values: unknown[]): Promise<void> {
  if (RE2 === undefined && holdsRegex(...values)) await loadRegexEngine()
}

/**
 * The RE2 (linear-time) form of a JavaScript regular expression: an object whose `exec(s)` and
 * `test(s)` match as the RegExp would (unanchored; flags `i`, `m`, `s`; others ignored). Throws
 * `ValidationError` for a pattern over `MAX_REGEX_LENGTH` characters or one RE2 cannot run
 * (backreferences, lookaround).
 */
export function linearRegExp (re: RegExp, where = 'regular expression'): { exec: (s: string) => string[] | null, test: (s: string) => boolean } {
  if (re.source.length > MAX_REGEX_LENGTH) throw new ValidationError(`${where}: the pattern is ${re.source.length} characters, over the ${MAX_REGEX_LENGTH}-character limit`)
  const cacheKey = `${re.flags}/${re.source}`
  let program = compiled.get(cacheKey)
  if (program === undefined) {
    if (RE2 === undefined) throw new Error(`${where}: the regular-expression engine is not loaded (await prepareRegex first)`)
    let flags = 0
    if (re.flags.includes('i')) flags |= RE2.CASE_INSENSITIVE
    if (re.flags.includes('m')) flags |= RE2.MULTILINE
    if (re.flags.includes('s')) flags |= RE2.DOTALL
    try {
      program = RE2.compile(RE2.translateRegExp(re.source), flags)
    } catch (err) {
      throw new ValidationError(`${where}: /${re.source}/ cannot run in linear time (RE2 syntax: no backreferences or lookaround): ${(err as Error).message}`, { cause: err })
    }
    if (compiled.size >= 256) compiled.clear()
    compiled.set(cacheKey, program)
  }
  const p = program
  return {
    exec: (s: string) => {
      const m = p.matcher(s)
      return m.find() ? [m.group() ?? ''] : null
    },
    test: (s: string) => p.matcher(s).find()
  }
}

type QueryOperator = (selector: string, value: unknown, options: MingoOptions) => (obj: unknown) => boolean
const isRegExp = (v: unknown): v is RegExp => v instanceof RegExp

/** `$regex`: mingo's, with the RegExp swapped for its RE2 form (mingo calls only `exec`). */
const $regex: QueryOperator = (selector, value, options) =>
  (mingoRegex as unknown as QueryOperator)(selector, linearRegExp(value as RegExp), options)

/** `$in`/`$nin`: mingo's for plain values; a RegExp among them matches as `$regex` does. */
function withPatterns (base: QueryOperator, negate: boolean): QueryOperator {
  return (selector, value, options) => {
    if (!Array.isArray(value) || !value.some(isRegExp)) return base(selector, value, options)
    const plain = (mingoIn as unknown as QueryOperator)(selector, value.filter(v => !isRegExp(v)), options)
    const patterns = value.filter(isRegExp).map(re => $regex(selector, re, options))
    return obj => (plain(obj) || patterns.some(p => p(obj))) !== negate
  }
}

/** `$all`: mingo's for plain values; each RegExp must match some string element of the array. */
const $all: QueryOperator = (selector, value, options) => {
  if (!Array.isArray(value) || !value.some(isRegExp)) return (mingoAll as unknown as QueryOperator)(selector, value, options)
  const plainValues = value.filter(v => !isRegExp(v))
  const plain = plainValues.length > 0 ? (mingoAll as unknown as QueryOperator)(selector, plainValues, options) : undefined
  const patterns = value.filter(isRegExp).map(re => linearRegExp(re))
  return obj => {
    const values = resolve(obj as Record<string, unknown>, selector, { unwrapArray: true })
    if (!Array.isArray(values) || values.length === 0) return false
    return (plain === undefined || plain(obj)) && patterns.every(p => values.some(s => typeof s === 'string' && p.test(s)))
  }
}

/** The operator functions a mingo module exports, minus `REFUSED_EXPRESSIONS`. */
function operatorsOf (module: Record<string, unknown>): never {
  return Object.fromEntries(Object.entries(module).filter(([k, v]) => k.startsWith('$') && typeof v === 'function' && !REFUSED_EXPRESSIONS.has(k))) as never
}

const { $all: mingoAll, $in: mingoIn, $nin: mingoNin, $regex: mingoRegex } = queryOperators

/**
 * The options every mingo query and update of KiteDB runs with: no scripts, only the operators
 * mingo ships minus those that run code or backtracking regular expressions, and the regular
 * expression operators above. (A context given to the `mingo` entry point's `Query` cannot
 * replace mingo's operators, so KiteDB uses mingo's core `Query` and updater with this context.)
 */
export const MINGO_OPTIONS: Partial<MingoOptions> = {
  scriptEnabled: false,
  context: Context.init({
    query: {
      ...(operatorsOf(queryOperators) as Record<string, unknown>),
      $regex: $regex,
      $in: withPatterns(mingoIn as unknown as QueryOperator, false),
      $nin: withPatterns(mingoNin as unknown as QueryOperator, true),
      $all: $all
    },
    expression: operatorsOf(expressionOperators),
    projection: operatorsOf(projectionOperators)
  })
}

/** A mingo `Query` of a query already checked with `checkQuery`, run with `MINGO_OPTIONS`. */
export function mingoQuery (query: Record<string, unknown>): Query {
  return new Query(query, MINGO_OPTIONS)
}

/**
 * mingo's update of every document of `docs` in place, in one call (mingo sets up its operators
 * once per call: per document, that was most of a 1,000-document `updateMany`'s update time), run
 * with `MINGO_OPTIONS` (so a `$pull` condition's regular expressions run in linear time). Values
 * taken from `update` are deep copies, so no two documents share them. Throws what mingo throws
 * for an invalid update.
 */
export function runMingoUpdate (docs: Array<Record<string, unknown>>, update: Record<string, unknown>): void {
  mingoUpdateMany(docs, {}, update as never, { cloneMode: 'deep' }, MINGO_OPTIONS)
}
