/**
 * CPU profiles of benchmark pages (`npm run bench -- --profile DIR`): Chromium's sampling
 * profiler over CDP, written as .cpuprofile files, with a summary of where the self time went.
 */
import { readFile, readdir, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Page } from '@playwright/test'
import { log } from './harness.js'

/**
 * Start Chromium's sampling profiler in `page` (CDP `Profiler`, 100 µs interval). The returned
 * function stops it, writes the profile to `file` (open it in Chrome DevTools' Performance panel)
 * and logs where the self time went: by category (idle, program, GC, each native call, each
 * module: npm package or src/ folder) and the top functions.
 */
export async function startProfile (page: Page): Promise<(file: string) => Promise<void>> {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 })
  await cdp.send('Profiler.start')
  return async file => {
    const { profile } = await cdp.send('Profiler.stop')
    await cdp.detach()
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, JSON.stringify(profile))
    const modules = await moduleLines()
    log(`CPU profile written to ${file}\n${summariseProfile(profile, (url, line) => pageModule(modules, url, line))}`)
  }
}

/** The module (npm package or src/ or bench/ folder) of `line` of the built page's script `url`. */
function pageModule (modules: Map<string, Array<[number, string]>>, url: string, line: number): string {
  const starts = modules.get(url.replace(/^.*\//, '')) ?? []
  let module = 'script'
  for (const [at, m] of starts) { if (at > line) break; module = m }
  return module
}

/** The module of a Node script `url`: its npm package, its src/ or bench/ folder, or `node:` for Node's own. */
function nodeModule (url: string): string {
  if (url.startsWith('node:')) return 'node:'
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
  if (dep !== undefined) return dep
  return /\/((?:src|bench|bin)\/(?:[^/]+\/)*)[^/]+$/.exec(url)?.[1].replace(/\/$/, '') ?? 'script'
}

/**
 * Summarise a Node CPU profile (`node --cpu-prof`) as `startProfile` does a page's, once per named
 * window of `process.hrtime` µs (the profile's timestamps are the same monotonic clock on Linux).
 */
export async function summariseNodeProfile (file: string, windows: Record<string, [number, number]>): Promise<void> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
  for (const [name, window] of Object.entries(windows)) {
    log(`${name} (${((window[1] - window[0]) / 1000).toFixed(0)} ms of ${file}):\n${summariseProfile(profile, nodeModule, window)}`)
  }
}

/** A CDP CPU profile (the parts read here). */
interface CpuProfile {
  nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number } }>
  startTime?: number
  samples?: number[]
  timeDeltas?: number[]
}

/**
 * Where each module starts in the built page's scripts: an unminified build marks each module
 * with a `// <path>` line. By script file name, sorted line numbers (0-based) and module names
 * (an npm package, or the folder of src/ or bench/).
 */
async function moduleLines (): Promise<Map<string, Array<[number, string]>>> {
  const dir = fileURLToPath(new URL('./dist/assets/', import.meta.url))
  const out = new Map<string, Array<[number, string]>>()
  for (const name of (await readdir(dir)).filter(f => f.endsWith('.js'))) {
    const starts: Array<[number, string]> = []
    ;(await readFile(join(dir, name), 'utf8')).split('\n').forEach((line, i) => {
      const path = /^\/\/ ((?:node_modules|src|bench)\/\S+)$/.exec(line)?.[1]
      if (path === undefined) return
      const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1]
      starts.push([i, dep ?? path.replace(/\/[^/]+$/, '')])
    })
    out.set(name, starts)
  }
  return out
}

/**
 * Self time of a CDP CPU profile by category and by function, as text; `module` names the module
 * of a script line; only samples within `window` (profile µs) when given.
 */
function summariseProfile (profile: CpuProfile, module: (url: string, line: number) => string, window?: [number, number]): string {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const selfMs = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  let at = profile.startTime ?? 0
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0
    if (window !== undefined && (at < window[0] || at > window[1])) continue
    // a sample's time is the delta to the next one
    const ms = (deltas[i + 1] ?? 0) / 1000
    selfMs.set(samples[i], (selfMs.get(samples[i]) ?? 0) + ms)
  }
  const total = [...selfMs.values()].reduce((a, b) => a + b, 0)
  // native work (idle, program, GC, IndexedDB calls) by name; script by its module
  const category = (url: string, name: string, line: number): string => url === '' ? `(${name || 'native'})` : module(url, line)
  const cats = new Map<string, number>()
  const funcs = new Map<string, number>()
  for (const [id, ms] of selfMs) {
    const { callFrame: f } = byId.get(id) as { callFrame: { functionName: string, url: string, lineNumber: number } }
    const c = category(f.url, f.functionName, f.lineNumber)
    cats.set(c, (cats.get(c) ?? 0) + ms)
    const fn = `${f.functionName || '(anonymous)'}${f.url === '' ? '' : ` (${c}, line ${f.lineNumber + 1})`}`
    funcs.set(fn, (funcs.get(fn) ?? 0) + ms)
  }
  const top = (m: Map<string, number>, k: number): string => [...m].sort((a, b) => b[1] - a[1]).slice(0, k)
    .map(([name, ms]) => `  ${ms.toFixed(1).padStart(8)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%  ${name}`).join('\n')
  return `self time ${total.toFixed(0)} ms by category:\n${top(cats, 12)}\ntop functions:\n${top(funcs, 20)}`
}
