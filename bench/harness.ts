/**
 * What the benchmark's parts share: driving the page, statistics, and turning figures into
 * results (bench/run.ts runs the measures; bench/network.ts the network ones).
 */
import { type Page } from '@playwright/test'
import { type BenchApi } from './page/main.js'
import { type Measure, type Result, type System } from './measures.js'

/** Median and nearest-rank 99th percentile of `xs` (non-empty). */
export function stats (xs: number[]): { median: number, p99: number } {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  const median = s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
  return { median, p99: s[Math.ceil(0.99 * s.length) - 1] }
}

/** An error's first line, without Playwright's `page.evaluate: ` prefix. */
export const errorText = (err: unknown): string => ((err as Error).message.split('\n')[0] ?? '').replace(/^page\.evaluate: /, '')
export const round = (x: number): number => Math.round(x * 1000) / 1000
export const log = (msg: string): void => { process.stderr.write(`[bench] ${msg}\n`) }

/** Call `window.bench[method](...args)` in `page`. */
export async function call<K extends keyof BenchApi> (page: Page, method: K, ...args: Parameters<BenchApi[K]>): Promise<Awaited<ReturnType<BenchApi[K]>>> {
  return await page.evaluate(async ([m, a]) => await (window.bench[m] as (...x: unknown[]) => unknown)(...a), [method, args] as const) as Awaited<ReturnType<BenchApi[K]>>
}

/** Wait until the page has set `window.bench`; rejects at once when its script throws. */
export async function ready (page: Page): Promise<void> {
  let onError = (_err: Error): void => {}
  const failed = new Promise<never>((_resolve, reject) => { onError = err => { reject(new Error(`the benchmark page failed to start: ${err.message}`)) } })
  page.once('pageerror', onError)
  try {
    await Promise.race([page.waitForFunction(() => 'bench' in window), failed])
  } finally {
    page.off('pageerror', onError)
  }
}

/** A Chromium with its own profile directory, showing the benchmark page. */
export interface Browser {
  page: Page
  /** another page of the same profile (another tab of the origin), showing the benchmark page */
  newPage: () => Promise<Page>
  close: () => Promise<void>
}

/** Where and how a Chromium is started: another executable (e.g. one inside a network namespace) and page URL. */
export interface LaunchOptions {
  executablePath?: string
  url?: string
}

/** Figures and notes of one system in one measure, turned into a `Result`. */
export class Tally {
  readonly samples: number[] = []
  readonly notes = new Set<string>()
  failed?: string

  /** One figure with its notes; `keep` false for a warm-up. */
  add (value: number, notes: string[], keep: boolean): void {
    for (const note of notes) this.notes.add(note)
    if (keep) this.samples.push(value)
  }

  result (m: Measure, system: System, n: number): Result {
    const base = { name: m.name, system, n, unit: m.unit }
    const others = [...this.notes]
    if (this.failed !== undefined) return { ...base, median: null, p99: null, note: [`error: ${this.failed}`, ...others].join('; ') }
    if (this.samples.length === 0) return { ...base, median: null, p99: null, note: ['error: no figure', ...others].join('; ') }
    const { median, p99 } = stats(this.samples)
    return { ...base, median: round(median), p99: round(p99), ...(others.length > 0 ? { note: others.join('; ') } : {}) }
  }
}
