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
 * here. Exits 1 when a measure failed.
 */
import { appendFileSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { encode as encodeDagCbor } from '@ipld/dag-cbor'
import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { build, preview, type PreviewServer } from 'vite'
import { chromiumArgs, chromiumPath } from '../playwright.config.js'
import { createRelayNode, type PeerNode } from '../src/net/index.js'
import { CITIES, makeDoc } from './page/docs.js'
import { type Timed } from './page/main.js'
import { type LocalSystem } from './page/systems.js'
import { type WireBytes } from './page/wire.js'
import { MEASURES, type Measure, type Result, type Unit } from './measures.js'
import { type Browser, type LaunchOptions, Tally, call, errorText, log, ready, stats } from './harness.js'
import { networkHeal, relayRestart, tabToTab } from './network.js'
import { keeperCatchUp, keeperIngest } from './keeper.js'

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

const LOCAL_SYSTEMS: LocalSystem[] = ['dexie', 'rxdb', 'kitedb']
/** documents per insert call when loading the find/cold-open/heap database */
const LOAD_CHUNK = 1000
/** documents per insert call (so per block) of the replicated history */
const HISTORY_CHUNK = 100

/** The resources of one benchmark run, released by `close`. */
class Bench {
  private readonly browsers = new Map<LocalSystem, Browser>()
  private readonly fixtures = new Map<LocalSystem, { name: string, timed: Timed, heapMB: number }>()
  private relay?: PeerNode
  private readonly open = new Set<Browser>()
  private readonly runId = Date.now().toString(36)

  constructor (private readonly url: string, private readonly options: Options, readonly configFile: string) {}

  scaled (n: number): number { return Math.max(1, Math.round(n * this.options.scale)) }

  /** where CPU profiles go (`--profile`), if anywhere */
  get profileDir (): string | undefined { return this.options.profile }

  /** measured runs of `m` (a warm-up run comes first and is discarded) */
  runs (m: Measure): number { return this.options.runs ?? (m.slow === true ? 3 : 5) }

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
 * Start Chromium's sampling profiler in `page` (CDP `Profiler`, 100 µs interval). The returned
 * function stops it, writes the profile to `file` (open it in Chrome DevTools' Performance panel)
 * and logs where the self time went: by category (idle, program, GC, each native call, each
 * module: npm package or src/ folder) and the top functions.
 */
async function startProfile (page: Page): Promise<(file: string) => Promise<void>> {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Profiler.enable')
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 })
  await cdp.send('Profiler.start')
  return async file => {
    const { profile } = await cdp.send('Profiler.stop')
    await cdp.detach()
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, JSON.stringify(profile))
    log(`CPU profile written to ${file}\n${summariseProfile(profile, await moduleLines())}`)
  }
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

/** Self time of a CDP CPU profile by category and by function, as text. */
function summariseProfile (profile: { nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number } }>, samples?: number[], timeDeltas?: number[] }, modules: Map<string, Array<[number, string]>>): string {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const selfMs = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  for (let i = 0; i < samples.length; i++) {
    // a sample's time is the delta to the next one
    const ms = (deltas[i + 1] ?? 0) / 1000
    selfMs.set(samples[i], (selfMs.get(samples[i]) ?? 0) + ms)
  }
  const total = [...selfMs.values()].reduce((a, b) => a + b, 0)
  // native work (idle, program, GC, IndexedDB calls) by name; script by its module
  const category = (url: string, name: string, line: number): string => {
    if (url === '') return `(${name || 'native'})`
    const starts = modules.get(url.replace(/^.*\//, '')) ?? []
    let module = 'script'
    for (const [at, m] of starts) { if (at > line) break; module = m }
    return module
  }
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

/** The dag-cbor size of documents 0…n-1, each encoded on its own, summed (what catch-up-bytes divides by). */
function dagCborBytes (n: number): number {
  let bytes = 0
  for (let i = 0; i < n; i++) bytes += encodeDagCbor(makeDoc(i)).byteLength
  return bytes
}

const formatBytes = (x: number): string => `${Math.round(x).toLocaleString('en-US')} B`

/**
 * Catch-up: page A writes the history (`HISTORY_CHUNK` docs per block), then a fresh Chromium B
 * opens A's address; the time runs from B's `KiteDB.open` to its `observe({})` seeing every doc.
 * The same runs give `bytes` (catch-up-bytes): what B received by then (WebRTC transport stats +
 * WebSocket messages) over the dag-cbor size of the documents.
 */
async function catchUp (bench: Bench, m: Measure, bytes: Measure, n: number): Promise<Result[]> {
  const tally = new Tally()
  const bytesTally = new Tally()
  const reference = dagCborBytes(n)
  const wires: WireBytes[] = []
  const relays = await bench.relayAddrs()
  for (let run = 0; run <= bench.runs(m) && tally.failed === undefined; run++) {
    const a = await bench.launch('replica-a')
    try {
      const address = await call(a.page, 'replCreate', bench.dbName('replicated', m.name, run), relays)
      await call(a.page, 'replInsertHistory', n, HISTORY_CHUNK)
      const b = await bench.launch('replica-b')
      try {
        const stopProfile = run === bench.runs(m) && bench.profileDir !== undefined ? await startProfile(b.page) : undefined
        const stopProfileA = run === bench.runs(m) && bench.profileDir !== undefined ? await startProfile(a.page) : undefined
        const { ms, wire, snapshot, phases } = await call(b.page, 'replCatchUp', address, relays, n, 60_000 + n * 20)
        await stopProfile?.(join(bench.profileDir as string, `${m.name}.cpuprofile`))
        await stopProfileA?.(join(bench.profileDir as string, `${m.name}-a.cpuprofile`))
        const peers = (await call(b.page, 'replPeers')).map(p => `${p.kind} (${p.transport})`).join(', ') || 'none'
        const joined = snapshot ? 'joined from a snapshot' : 'replayed the blocks'
        const timeline = Object.entries(phases).sort((x, y) => x[1] - y[1]).map(([phase, at]) => `${phase} ${(at / 1000).toFixed(2)} s`).join(', ')
        log(`catch-up run ${run}${run === 0 ? ' (warm-up)' : ''}: ${Math.round(ms)} ms (${timeline}), ${joined}, received WebRTC ${formatBytes(wire.webrtc.received)} + WebSocket ${formatBytes(wire.websocket.received)}, sent WebRTC ${formatBytes(wire.webrtc.sent)} + WebSocket ${formatBytes(wire.websocket.sent)}` +
          `; data channels received: ${Object.entries(wire.byProtocol).sort((x, y) => y[1].received - x[1].received).map(([p, b]) => `${p} ${formatBytes(b.received)} (${b.channels} ch)`).join(', ')}`)
        const notes = [`history written as ${Math.ceil(n / HISTORY_CHUNK)} insert call(s) of ≤ ${HISTORY_CHUNK} docs`]
        tally.add(ms, [...notes, `B ${joined}`], run > 0)
        bytesTally.add((wire.webrtc.received + wire.websocket.received) / reference, [...notes, `B ${joined}`, `B's peers after catching up: ${peers}`], run > 0)
        if (run > 0) wires.push(wire)
        await call(b.page, 'replClose')
      } finally {
        await b.close()
      }
      await call(a.page, 'replClose')
    } catch (err) {
      tally.failed = bytesTally.failed = errorText(err)
    } finally {
      await a.close()
    }
  }
  if (wires.length > 0) {
    const median = (f: (w: WireBytes) => number): number => stats(wires.map(f)).median
    const med = (f: (w: WireBytes) => number): string => formatBytes(median(f))
    bytesTally.notes.add(`received (medians over ${wires.length} run(s)): WebRTC ${med(w => w.webrtc.received)} + WebSocket ${med(w => w.websocket.received)}, total ${med(w => w.webrtc.received + w.websocket.received)}`)
    bytesTally.notes.add(`sent: WebRTC ${med(w => w.webrtc.sent)} + WebSocket ${med(w => w.websocket.sent)}, total ${med(w => w.webrtc.sent + w.websocket.sent)}`)
    bytesTally.notes.add(`reference: the ${n.toLocaleString('en-US')} docs' dag-cbor, each encoded alone, summed: ${formatBytes(reference)}`)
    bytesTally.notes.add(`WebRTC: getStats() 'transport' bytes of ${median(w => w.webrtc.connections)} peer connection(s), read before each close (DTLS packets carrying SCTP and the data channels, handshakes included, ICE checks and UDP/IP headers not)` +
      `, 'candidate-pair' bytes received ${med(w => w.webrtcPairs.received)}`)
    const protocols = [...new Set(wires.flatMap(w => Object.keys(w.byProtocol)))]
      .map(p => ({ p, received: median(w => w.byProtocol[p]?.received ?? 0) })).sort((x, y) => y.received - x.received)
    const payload = med(w => Object.values(w.byProtocol).reduce((sum, b) => sum + b.received, 0))
    bytesTally.notes.add(`WebRTC data channel payloads received (medians): ${payload} in all, by protocol ${protocols.filter(x => x.received > 0).map(({ p, received }) => `${p} ${formatBytes(received)}`).join(', ')}`)
    bytesTally.notes.add('WebSocket: message payloads of the relay connection (no WebSocket framing, no TCP/IP headers)')
  }
  return [tally.result(m, 'kitedb-replicated', n), bytesTally.result(bytes, 'kitedb-replicated', n)]
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
  'KiteDB: local-only with storage `indexeddb`; kitedb-replicated: two Chromiums joined through a relay in the bench process.',
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
      const n = bench.scaled(m.n)
      if (m.name === 'observe-latency') results.push(await observeLatency(bench, m, n))
      else if (m.name === 'catch-up') results.push(...await catchUp(bench, m, MEASURES.find(x => x.from === m.name) as Measure, n))
      else if (m.name === 'relay-restart') results.push(await relayRestart(bench, m, n))
      else if (m.name === 'network-heal') results.push(await networkHeal(bench, m, n))
      else if (m.name === 'tab-to-tab') results.push(await tabToTab(bench, m, n))
      else if (m.name === 'keeper-catch-up') results.push(await keeperCatchUp(bench, m, n))
      else if (m.name === 'keeper-ingest') results.push(...await keeperIngest(bench, m, MEASURES.find(x => x.from === m.name) as Measure, options.keeperFull === true))
      else results.push(...await measureLocal(bench, m))
      log(`${m.name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
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
