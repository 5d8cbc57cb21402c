/**
 * Minimal logging shared by every layer (imports nothing). Rejected network input is logged at
 * `warn` with its reason; `debug` is silent unless enabled with `setLogLevel('debug')` or, in a
 * browser, `localStorage.kitedbLog = 'debug'`.
 */
export type LogLevel = 'debug' | 'warn' | 'silent'

export interface Logger {
  debug (message: string, ...details: unknown[]): void
  warn (message: string, ...details: unknown[]): void
}

let level: LogLevel = initialLevel()

function initialLevel (): LogLevel {
  try {
    const fromStorage = (globalThis as { localStorage?: Storage }).localStorage?.getItem('kitedbLog')
    const fromEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.KITEDB_LOG
    const v = fromStorage ?? fromEnv
    if (v === 'debug' || v === 'warn' || v === 'silent') return v
  } catch { /* localStorage refused (sandboxed frame, privacy mode): the default level */ }
  return 'warn'
}

/** Set the global log level: `'debug'` (everything), `'warn'` (default), `'silent'`. */
export function setLogLevel (next: LogLevel): void {
  level = next
}

/** One warning KiteDB logged: refused network input and the like, with its reason. */
export interface Warning {
  /** when, ms since the epoch */
  at: number
  /** the layer that logged it: `sync`, `net`, `db`, `keep`… */
  scope: string
  message: string
}

/** Warnings kept for `recentWarnings`. */
const MAX_WARNINGS = 50
const warnings: Warning[] = []

/**
 * The last warnings logged in this page or process, newest last (at most 50, whatever the log
 * level): what `Database.inspect` shows as refused input.
 */
export function recentWarnings (): Warning[] {
  return [...warnings]
}

/** A logger whose lines start with `[kitedb:<name>]`. */
export function createLogger (name: string): Logger {
  const prefix = `[kitedb:${name}]`
  return {
    debug: (message, ...details) => { if (level === 'debug') console.debug(prefix, message, ...details) },
    warn: (message, ...details) => {
      warnings.push({ at: Date.now(), scope: name, message })
      if (warnings.length > MAX_WARNINGS) warnings.shift()
      if (level !== 'silent') console.warn(prefix, message, ...details)
    }
  }
}
