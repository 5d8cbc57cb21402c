/**
 * `npm run bench`: measures raw Dexie, RxDB (free Dexie storage) and KiteDB side by side in
 * headless Chromium, on the same documents in the same run, and prints a markdown table.
 *
 *   npm run bench -- [--scale S] [--runs N] [--only NAME] [--json FILE] [--profile DIR] [--trace DIR [--trace-libp2p PATTERN]] [--keeper-full]
 *
 * Builds bench/page with Vite, serves it with `vite.preview` on a free port and drives it through
 * `window.bench`. Each system runs in its own Chromium with its own profile directory, so storage
 * is on disk (not an incognito context's memory) and every system has its own renderer and
 * IndexedDB. Replicated KiteDB runs in two more Chromiums (two "devices") through a relay started
 * here; room-10 (bench/room.ts) in ten BrowserContexts of one Chromium through a relay process.
 * Exits 1 when a measure failed.
 *
 * One piece, though a little over 400 lines: the options, the browsers and relay every measure
 * shares, the local measures and the table; the replicated measures live in their own files
 * (catchup.ts, network.ts, keeper.ts, room.ts).
 */
import { appendFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { build, preview, type PreviewServer } from 'vite'
import { chromiumArgs, chromiumPath } from '../playwright.config.js'
import { createRelayNode, type PeerNode } from '../src/net/index.js'
import { CITIES, makeDoc } from './page/docs.js'
import { type Timed } from './page/main.js'
import { type LocalSystem } from './page/systems.js'
import { MEASURES, type Measure, type Result, type Unit } from './measures.js'
import { type Browser, type LaunchOptions, Tally, call, errorText, log, ready } from './harness.js'
import { networkHeal, relayRestart, tabToTab } from './network.js'
import { keeperCatchUp, keeperIngest } from './keeper.js'
import { catchUp } from './catchup.js'
import { startProfile } from './profile.js'
import { roomTen } from './room.js'

/** Command-line options. */
interface Options {
  scale: number
  runs?: number
  only?: string
  json?: string
  /** write a CPU profile of KiteDB's last measured run of each local measure, and of both pages' last catch-up (`catch-up`: the joining page, `catch-up-a`: the serving one), here */
  profile?: string
  /** write every page's console here, one file per page, KiteDB's debug log on */
  trace?: string
  /** libp2p debug namespaces to log too with `trace` (its logger's `debug` pattern, e.g. `libp2p:webrtc*`) */
  traceLibp2p?: string
  /** run keeper-ingest at its full size (1,000,000 blocks) */
  keeperFull?: boolean
}

const USAGE = 'usage: npm run bench -- [--scale S] [--runs N] [--only NAME] [--json FILE] [--profile DIR] [--trace DIR [--trace-libp2p PATTERN]] [--keeper-full]\n' +
  `measures: ${MEASURES.map(m => m.name).join(', ')}`

/** Parse `argv` (without node and script); throws with the usage on a bad option. */
function parseArgs (argv: string[]): Options {
  const options: Options = { scale: 1 }
  const value = (i: number): string => {
    const v = argv[i]
    if (v === undefined) throw new Error(`${argv[i - 1] ?? ''} needs a value\n${USAGE}`)
    return v
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--scale') options.scale = Number(value(++i))
    else if (a === '--runs') options.runs = Number(value(++i))
    else if (a === '--only') options.only = value(++i)
    else if (a === '--json') options.json = value(++i)
    else if (a === '--profile') options.profile = value(++i)
    else if (a === '--trace') options.trace = value(++i)
    else if (a === '--trace-libp2p') options.traceLibp2p = value(++i)
    else if (a === '--keeper-full') options.keeperFull = true
    else throw new Error(`unknown option ${a}\n${USAGE}`)
  }
  if (!(options.scale > 0)) throw new Error('--scale must be a positive number')
  if (options.runs !== undefined && !(Number.isInteger(options.runs) && options.runs >= 1)) throw new Error('--runs must be an integer ≥ 1')
  if (options.only !== undefined && !MEASURES.some(m => m.name === options.only)) throw new Error(`unknown measure ${options.only}\n${USAGE}`)
  return options
}

/** The measure named `name` (one of MEASURES). */
function measure (name: string): Measure {
  const m = MEASURES.find(x => x.name === name)
  if (m === undefined) throw new Error(`no measure ${name}`)
  return m
}

const LOCAL_SYSTEMS: LocalSystem[] = ['dexie', 'rxdb', 'kitedb']
/** documents per insert call when loading the find/cold-open/heap database */
const LOAD_CHUNK = 1000
/** documents per insert call (so per block) of the replicated history */
const HISTORY_CHUNK = 100
/**
 * The same for catch-up-100k: 100 blocks of 1,000. The block size matters: one run each on the
 * shared 2-core machine (2026-11-30), 1,000 blocks of 100 took A 47 s to write (1,000-doc
 * blocks: 20 s) and B 21.0 s to catch up (15.7 s), B's heap after GC 169 MiB (58.5 MiB).
 */
const HISTORY_CHUNK_100K = 1000

/** The resources of one benchmark run, released by `close`. */
class Bench {
  private readonly browsers = new Map<LocalSystem, Browser>()
  private readonly fixtures = new Map<LocalSystem, { name: string, timed: Timed, heapMB: number }>()
  private relay?: PeerNode
  private readonly open = new Set<Browser>()
  private readonly runId = Date.now().toString(36)

  constructor (readonly url: string, private readonly options: Options, readonly configFile: string) {}

  scaled (n: number): number { return Math.max(1, Math.round(n * this.options.scale)) }

  /** where CPU profiles go (`--profile`), if anywhere */
  get profileDir (): string | undefined { return this.options.profile }

  /** measured runs of `m` (a warm-up run comes first and is discarded, unless `m.warmUp` is false) */
  runs (m: Measure): number { return this.options.runs ?? m.runs ?? (m.slow === true ? 3 : 5) }

  /** the first run's number: 0 (a warm-up, discarded) or, for a measure without warm-up, 1 */
  firstRun (m: Measure): number { return m.warmUp === false ? 1 : 0 }

  /** A database name never used before. */
  dbName (system: string, what: string, run: number): string { return `bench-${this.runId}-${system}-${what}-${run}` }

  async launch (label: string, launchOptions: LaunchOptions = {}): Promise<Browser> {
    const dir = await mkdtemp(join(tmpdir(), `kitedb-bench-${label}-`))
    const url = launchOptions.url ?? this.url
    let context: BrowserContext | undefined
    try {
      context = await chromium.launchPersistentContext(dir, { executablePath: launchOptions.executablePath ?? chromiumPath, args: [...chromiumArgs, '--js-flags=--expose-gc'], headless: true })
      const page = context.pages()[0] ?? await context.newPage()
      if (this.options.trace !== undefined) {
        // Before the page loads: KiteDB's and libp2p's loggers read these once.
        await context.addInitScript(debug => { localStorage.setItem('debug', debug); localStorage.setItem('kitedbLog', 'debug') }, this.options.traceLibp2p ?? '')
        await mkdir(this.options.trace, { recursive: true })
        const file = join(this.options.trace, `${label}-${Date.now()}.log`)
        page.on('console', msg => { appendFileSync(file, `${Date.now()} ${msg.text()}\n`) })
      }
      page.on('pageerror', err => { log(`${label} page error: ${err.message}`) })
      // failed relay dials are expected in the network measures
      page.on('console', msg => { if (msg.type() === 'error' && !msg.text().startsWith('WebSocket connection')) log(`${label} console: ${msg.text()}`) })
      await page.goto(url)
      await ready(page)
      const ctx = context
      const browser: Browser = {
        page,
        newPage: async () => {
          const another = await ctx.newPage()
          another.on('pageerror', err => { log(`${label} (another tab) page error: ${err.message}`) })
          await another.goto(url)
          await ready(another)
          return another
        },
        close: async () => {
          this.open.delete(browser)
          await ctx.close()
          await rm(dir, { recursive: true, force: true })
        }
      }
      this.open.add(browser)
      return browser
    } catch (err) {
      await context?.close()
      await rm(dir, { recursive: true, force: true })
      throw err
    }
  }

  /** The page of a local system (its Chromium is started on first use). */
  async page (system: LocalSystem): Promise<Page> {
    let b = this.browsers.get(system)
    if (b === undefined) this.browsers.set(system, b = await this.launch(system))
    return b.page
  }

  /** The relay multiaddr (the relay is started on first use). */
  async relayAddrs (): Promise<string[]> {
    this.relay ??= await createRelayNode({ port: 0 })
    return this.relay.getMultiaddrs().map(ma => ma.toString())
  }

  /** Documents in the find/cold-open/heap database. */
  fixtureSize (): number { return this.scaled(100_000) }

  /** Load the system's 100,000-doc database into its page once, then read its JS heap. */
  async fixture (system: LocalSystem): Promise<{ name: string, timed: Timed, heapMB: number }> {
    let f = this.fixtures.get(system)
    if (f !== undefined) return f
    const page = await this.page(system)
    const name = this.dbName(system, 'fixture', 0)
    const n = this.fixtureSize()
    const timed = await call(page, 'load', system, name, n, LOAD_CHUNK)
    log(`${system}: loaded ${n} docs in ${((timed.ms ?? 0) / 1000).toFixed(1)} s (${LOAD_CHUNK} per call)`)
    const cdp = await page.context().newCDPSession(page)
    await cdp.send('HeapProfiler.collectGarbage')
    const { usedSize } = await cdp.send('Runtime.getHeapUsage')
    await cdp.detach()
    this.fixtures.set(system, f = { name, timed, heapMB: usedSize / 2 ** 20 })
    return f
  }

  /** Reload the page of `system` (a cold start: no JS state, the database on disk). */
  async reload (system: LocalSystem): Promise<Page> {
    const page = await this.page(system)
    await page.reload()
    await ready(page)
    return page
  }

  async close (): Promise<void> {
    for (const b of [...this.open]) await b.close().catch(err => { log(`closing a browser: ${(err as Error).message}`) })
    await this.relay?.stop()
  }
}

/**
 * Run `m` on every local system: a warm-up run, then the measured runs, the systems interleaved
 * within each run. `once` gives one run's figure (or one per call). A system whose result differs
 * from raw Dexie's in the same run (other ids found, other counts after a write) fails the measure:
 * a fast wrong answer is no figure.
 */
async function runLocal (bench: Bench, m: Measure, n: number, once: (system: LocalSystem, run: number) => Promise<Timed | Timed[]>): Promise<Result[]> {
  const tallies = new Map(LOCAL_SYSTEMS.map(s => [s, new Tally()]))
  const runs = bench.runs(m)
  for (let run = 0; run <= runs; run++) {
    let dexieResult: string | undefined
    for (const system of LOCAL_SYSTEMS) {
      const tally = tallies.get(system) as Tally
      if (tally.failed !== undefined) continue
      try {
        const profiling = system === 'kitedb' && run === runs && bench.profileDir !== undefined
        const stop = profiling ? await startProfile(await bench.page(system)) : undefined
        const figures = await once(system, run)
        if (stop !== undefined) await stop(join(bench.profileDir as string, `${m.name}.cpuprofile`))
        for (const t of Array.isArray(figures) ? figures : [figures]) {
          tally.add(t.ms, t.notes, run > 0)
          if (t.result === undefined) continue
          if (system === 'dexie') dexieResult = t.result
          else if (t.result !== dexieResult) throw new Error(`run ${run}: the result differs from raw Dexie's (${t.result}; Dexie: ${dexieResult ?? 'none'})`)
        }
      } catch (err) {
        tally.failed = errorText(err)
      }
    }
  }
  return LOCAL_SYSTEMS.map(s => (tallies.get(s) as Tally).result(m, s, n))
}

/** The email looked up in run `run` (a different document each run, the same for every system). */
function emailFor (bench: Bench, run: number): string {
  return makeDoc((run * 7919 + 13) % bench.fixtureSize()).email
}

async function measureLocal (bench: Bench, m: Measure): Promise<Result[]> {
  const n = bench.scaled(m.n)
  switch (m.name) {
    case 'insert-bulk':
      return await runLocal(bench, m, n, async (s, run) => await call(await bench.page(s), 'insertBulk', s, bench.dbName(s, m.name, run), n))
    case 'insert-one':
      return await runLocal(bench, m, n, async (s, run) => {
        const { ms, notes } = await call(await bench.page(s), 'insertOneEach', s, bench.dbName(s, m.name, run), n)
        return ms.map(x => ({ ms: x, notes }))
      })
    case 'find-eq-indexed':
    case 'find-range-sort':
    case 'find-unindexed': {
      const kind = ({ 'find-eq-indexed': 'email', 'find-range-sort': 'range', 'find-unindexed': 'city' } as const)[m.name]
      return await runLocal(bench, m, n, async (s, run) => {
        await bench.fixture(s)
        return await call(await bench.page(s), 'find', kind, kind === 'city' ? CITIES[run % CITIES.length] : emailFor(bench, run))
      })
    }
    case 'update-many':
      return await runLocal(bench, m, n, async (s, run) => await call(await bench.page(s), 'updateMany', s, bench.dbName(s, m.name, run), n))
    case 'cold-open':
      return await runLocal(bench, m, n, async (s, run) => {
        const { name } = await bench.fixture(s)
        return await call(await bench.reload(s), 'coldOpen', s, name, emailFor(bench, run))
      })
    case 'heap-after-load': {
      const results: Result[] = []
      for (const s of LOCAL_SYSTEMS) {
        const tally = new Tally()
        try {
          const { timed, heapMB } = await bench.fixture(s)
          tally.add(heapMB, timed.notes, true)
        } catch (err) {
          tally.failed = errorText(err)
        }
        results.push(tally.result(m, s, n))
      }
      return results
    }
    default:
      throw new Error(`no runner for ${m.name}`)
  }
}

/**
 * Observe latency: page A writes `{seq, sentAt}` into one document, page B's `observe` callback
 * records its arrival; A writes the next once B has seen the last. Warm-up pings are discarded.
 */
async function observeLatency (bench: Bench, m: Measure, n: number): Promise<Result> {
  const tally = new Tally()
  const relays = await bench.relayAddrs()
  const warm = Math.max(5, Math.round(n / 10))
  const a = await bench.launch('replica-a')
  const b = await bench.launch('replica-b')
  try {
    const address = await call(a.page, 'replCreate', bench.dbName('replicated', m.name, 0), relays)
    await call(a.page, 'replPing', 0)
    await call(b.page, 'replJoin', address, relays)
    await call(b.page, 'replWaitSeq', 0, 60_000)
    // Measure the steady state: give the pages up to 15 s to upgrade to a direct connection.
    const deadline = Date.now() + 15_000
    let kinds: string[] = []
    do {
      kinds = (await call(b.page, 'replPeers')).map(p => `${p.kind} (${p.transport})`)
      if (kinds.some(k => k.startsWith('direct'))) break
      await new Promise(resolve => setTimeout(resolve, 250))
    } while (Date.now() < deadline)
    tally.notes.add(`B's peers: ${kinds.join(', ') || 'none'}`)
    for (let seq = 1; seq <= warm + n; seq++) {
      await Promise.all([call(a.page, 'replPing', seq), call(b.page, 'replWaitSeq', seq, 30_000)])
    }
    for (const ms of await call(b.page, 'replLatencies', warm + 1)) tally.add(ms, [], true)
    tally.notes.add(`${warm} warm-up updates discarded`)
    await call(a.page, 'replClose')
    await call(b.page, 'replClose')
  } catch (err) {
    tally.failed = errorText(err)
  } finally {
    await a.close()
    await b.close()
  }
  return tally.result(m, 'kitedb-replicated', n)
}

function formatValue (x: number, unit: Unit): string {
  if (unit === 'x') return `${x.toFixed(2)}×`
  return `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} ${unit}`
}

/** How the systems are driven, printed under the table. */
const METHOD = [
  'Each system runs in its own headless Chromium with an on-disk profile; a warm-up run is discarded; median/p99 are over runs, or over calls for per-call measures.',
  'Dexie: a plain table indexed `_id, age, email`. RxDB: free Dexie storage, dev-mode off, no schema validation, multiInstance off, primary key `id`;',
  'its updateMany is find(selector).incrementalPatch(), and its query cache is dropped after each find so every run reads storage.',
  'Dexie\'s unindexed scan is toArray() (one getAll) and a JS filter.',
  'KiteDB: local-only with storage `indexeddb`; kitedb-replicated: two Chromiums joined through a relay in the bench process (room-10: ten BrowserContexts of one Chromium, the relay a separate process).',
  `The find, cold-open and heap measures share one database per system, loaded ${LOAD_CHUNK} docs per call; heap: CDP Runtime.getHeapUsage after HeapProfiler.collectGarbage.`
]

/** The results as a markdown table (measure | system | n | median | p99 | ratio to Dexie), then their notes (each once, with the measures it applies to). */
function formatTable (results: Result[]): string {
  const lines = ['| measure | system | n | median | p99 | ratio to Dexie |', '|---|---|---:|---:|---:|---:|']
  const notes = new Map<string, string[]>()
  for (const r of results) {
    const label = MEASURES.find(m => m.name === r.name)?.label ?? r.name
    const dexie = results.find(x => x.name === r.name && x.system === 'dexie')?.median
    const ratio = r.median !== null && dexie !== undefined && dexie !== null && dexie > 0 ? `${(r.median / dexie).toFixed(2)}×` : '—'
    const missing = r.note?.startsWith('skipped:') === true ? 'skipped' : 'error'
    lines.push(`| ${r.name}: ${label} | ${r.system} | ${r.n.toLocaleString('en-US')} | ${r.median !== null ? formatValue(r.median, r.unit) : missing} | ${r.p99 !== null ? formatValue(r.p99, r.unit) : missing} | ${ratio} |`)
    for (const note of r.note?.split('; ') ?? []) {
      const key = `${r.system}: ${note}`
      notes.set(key, [...notes.get(key) ?? [], r.name])
    }
  }
  return [...lines, '', ...METHOD, ...(notes.size > 0 ? ['', 'Notes:', ...[...notes].map(([note, names]) => `- ${note} (${names.join(', ')})`)] : [])].join('\n')
}

/** Run the benchmark with `options`; returns the results (also printed, and written as JSON with `--json`). */
async function runBench (options: Options): Promise<Result[]> {
  const started = Date.now()
  const configFile = fileURLToPath(new URL('./vite.config.ts', import.meta.url))
  log('building the page…')
  // Profiling: unminified, so profiles name functions.
  await build(options.profile === undefined ? { configFile } : { configFile, build: { minify: false } })
  const server: PreviewServer = await preview({ configFile, preview: { port: 0 } })
  const url = server.resolvedUrls?.local[0]
  if (url === undefined) throw new Error('vite preview has no local URL')
  const bench = new Bench(url, options, configFile)
  const results: Result[] = []
  try {
    // a measure taken in another's runs (`from`) runs with it, also for `--only`
    const only = MEASURES.find(x => x.name === options.only)
    for (const m of MEASURES.filter(x => x.from === undefined && (only === undefined || x.name === (only.from ?? only.name)))) {
      const t0 = Date.now()
      const before = results.length
      const n = bench.scaled(m.n)
      if (m.name === 'observe-latency') results.push(await observeLatency(bench, m, n))
      else if (m.name === 'catch-up') results.push(...await catchUp(bench, { time: m, bytes: measure('catch-up-bytes'), first: measure('catch-up-first') }, n, HISTORY_CHUNK))
      else if (m.name === 'catch-up-100k') results.push(...await catchUp(bench, { time: m, bytes: measure('catch-up-100k-bytes'), heap: measure('heap-100k-catch-up'), heapPeak: measure('heap-100k-catch-up-peak') }, n, Math.min(HISTORY_CHUNK_100K, n)))
      else if (m.name === 'room-10') results.push(...await roomTen(bench, { latency: m, relayCpu: measure('room-10-relay-cpu'), heap: measure('room-10-heap'), idleCpu: measure('room-10-idle-cpu'), burstCpu: measure('room-10-burst-cpu') }, n))
      else if (m.name === 'relay-restart') results.push(await relayRestart(bench, m, n))
      else if (m.name === 'network-heal') results.push(await networkHeal(bench, m, n))
      else if (m.name === 'tab-to-tab') results.push(await tabToTab(bench, m, n))
      else if (m.name === 'keeper-catch-up') results.push(await keeperCatchUp(bench, m, n))
      else if (m.name === 'keeper-ingest') results.push(...await keeperIngest(bench, m, MEASURES.find(x => x.from === m.name) as Measure, options.keeperFull === true))
      else results.push(...await measureLocal(bench, m))
      log(`${m.name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      // the reason goes to stderr too, where a caller that only keeps stderr (the smoke test) sees it
      for (const r of results.slice(before)) if (r.note?.startsWith('error:') === true) log(`${r.name}/${r.system} FAILED: ${r.note}`)
    }
  } finally {
    await bench.close()
    await server.close()
  }
  console.log(formatTable(results))
  console.log(`\nscale ${options.scale}, ${((Date.now() - started) / 1000).toFixed(1)} s in all`)
  if (options.json !== undefined) await writeFile(options.json, JSON.stringify(results, null, 2) + '\n')
  return results
}

try {
  const results = await runBench(parseArgs(process.argv.slice(2)))
  process.exit(results.some(r => r.note?.startsWith('error:') === true) ? 1 : 0) // 'skipped:' (a measure this machine cannot take) is not a failure
} catch (err) {
  console.error((err as Error).message)
  process.exit(2)
}
