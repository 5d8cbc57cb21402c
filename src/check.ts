/**
 * Assertions for the conformance suites that ship with the library (`storageConformance`,
 * `transportConformance`). They run in any test runner and in browsers, so they depend on no
 * test framework: a failed check throws an `Error` whose message says what was checked, what
 * was expected and what came. This module imports nothing.
 */

/** One case of a conformance suite: run it with any test runner; it rejects when the implementation fails. */
export interface ConformanceCase {
  /** what the case checks, as a sentence */
  name: string
  /** resolves when the implementation passes; rejects with an `Error` saying what failed */
  run: () => Promise<void>
}

/** Most characters of a value shown in a failure message. */
const SHOWN = 600

/**
 * A canonical text of a value, equal for values the suites consider equal: object keys sorted
 * and keys holding `undefined` left out (as JSON does); byte arrays, `Map`s and `Date`s by content.
 */
export function show (value: unknown): string {
  if (value === undefined) return 'undefined'
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value)
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return `[function ${value.name}]`
  if (ArrayBuffer.isView(value)) return `bytes[${[...new Uint8Array(value.buffer, value.byteOffset, value.byteLength)].join(',')}]`
  if (value instanceof Date) return `Date(${value.getTime()})`
  if (value instanceof Map) return `Map{${[...value].map(([k, v]) => `${show(k)}=>${show(v)}`).join(',')}}`
  if (Array.isArray(value)) return `[${value.map(show).join(',')}]`
  if (typeof value === 'object') {
    const record = value as Record<string, unknown>
    const keys = Object.keys(record).filter(k => record[k] !== undefined).sort()
    return `{${keys.map(k => `${JSON.stringify(k)}:${show(record[k])}`).join(',')}}`
  }
  return (value as symbol).toString() // all that is left
}

function clip (text: string): string {
  return text.length > SHOWN ? `${text.slice(0, SHOWN)}… (${text.length} characters)` : text
}

/** Throws `Error(what)` unless `condition` holds. */
export function check (condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what)
}

/** Throws unless `actual` equals `expected` as `show` sees them (deep, key order ignored). */
export function checkEqual (actual: unknown, expected: unknown, what: string): void {
  const a = show(actual)
  const e = show(expected)
  if (a !== e) throw new Error(`${what}: expected ${clip(e)}, got ${clip(a)}`)
}

/**
 * Await `promise` and return what it rejected with; throws when it resolves instead, or when it
 * settles neither way within `withinMs` (so a hanging implementation fails rather than hangs).
 */
export async function rejection (promise: Promise<unknown>, what: string, withinMs = 60_000): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hung = new Promise<'hung'>(resolve => { timer = setTimeout(() => { resolve('hung') }, withinMs) })
  try {
    const outcome = await Promise.race([promise.then(value => ({ value }), (error: unknown) => ({ error })), hung])
    if (outcome === 'hung') throw new Error(`${what}: neither resolved nor rejected within ${withinMs} ms`)
    if (!('error' in outcome)) throw new Error(`${what}: expected a rejection, but it resolved with ${clip(show(outcome.value))}`)
    return outcome.error
  } finally {
    clearTimeout(timer)
  }
}

/** Await `promise`, or throw when it does not settle within `withinMs`. */
export async function within<T> (promise: Promise<T>, withinMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hung = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: did not settle within ${withinMs} ms`)) }, withinMs)
  })
  try {
    return await Promise.race([promise, hung])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Poll `condition` every `everyMs` until it holds, running `act` before each poll (e.g. publish
 * again, since gossip may lose messages while a mesh forms). Throws `Error` naming `what` after
 * `timeoutMs`.
 */
export async function eventually (condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string, options: { everyMs?: number, act?: () => unknown } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const everyMs = options.everyMs ?? 20
  for (;;) {
    await options.act?.()
    if (await condition()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** The stable `code` of an error (as `KiteError`s carry), if it has one. */
export function codeOf (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}
