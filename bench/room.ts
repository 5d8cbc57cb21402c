/**
 * `room-10`: a room of ten browsers on one list. Ten pages, each in its own BrowserContext of one
 * Chromium (own storage, own libp2p node; lighter than ten Chromiums on a 2-core machine), join
 * one database through a relay running as its own process (bin/kitedb-relay.js). The first page
 * writes `{seq, sentAt}` into one document, waits until the other nine have seen it via
 * `observe`, then writes the next. Each run: an idle period, then a burst of `n` updates; run 0
 * is a warm-up in the same room and is discarded.
 *
 * - `room-10`: ms from the write to each of the nine `observe` callbacks (9 × n figures a run).
 * - `room-10-relay-cpu`: ms of relay CPU (user + system, /proc/<pid>/stat, 10 ms ticks) per update.
 * - `room-10-heap`: MiB of each page's JS heap after GC (CDP HeapProfiler.collectGarbage, then
 *   Runtime.getHeapUsage), after each burst.
 * - `room-10-idle-cpu`: % of one core, each page's renderer process CPU (user + system, all its
 *   threads: CDP SystemInfo.getProcessInfo, the `size` busiest renderers taken as the pages) over
 *   the idle period. The notes add each page's main-thread task time (CDP Performance
 *   `TaskDuration`: wall time of tasks, so inflated when ten renderers share two cores).
 * - `room-10-burst-cpu`: ms of each page's renderer process CPU per update during the burst (the
 *   same sources).
 *
 * With `--profile DIR`, the last run profiles one observer page (idle, burst) and the writer (burst)
 * with Chromium's sampling profiler, and the relay (`node --cpu-prof`, summarised over the same
 * idle and burst windows), and logs where the time went.
 *
 * Below scale 1 the room is smaller (`--scale 0.002`: 3 pages), so the smoke test stays quick.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type CDPSession, type Page } from '@playwright/test'
import { chromiumArgs, chromiumPath } from '../playwright.config.js'
import { RelayProcess } from '../test/e2e/helpers/cluster.js'
import { Tally, call, errorText, log, ready, stats } from './harness.js'
import { type Measure, type Result } from './measures.js'
import { startProfile, summariseNodeProfile } from './profile.js'

/** What the room needs of the benchmark run. */
export interface RoomBench {
  /** the benchmark page */
  url: string
  /** measured runs of `m` (a warm-up run comes first and is discarded) */
  runs: (m: Measure) => number
  scaled: (n: number) => number
  dbName: (system: string, what: string, run: number) => string
  /** where CPU profiles go (`--profile`), if anywhere */
  profileDir?: string
}

/** The measures the room's runs feed. */
export interface RoomMeasures { latency: Measure, relayCpu: Measure, heap: Measure, idleCpu: Measure, burstCpu: Measure }

/** Pages in the room at scale 1, and the idle period, ms. */
const PAGES = 10
const IDLE_MS = 5000
/** How long every page may take to see the first update, and to see the others as peers, ms. */
const JOIN_TIMEOUT_MS = 90_000
const PEERS_TIMEOUT_MS = 45_000

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const MiB = 2 ** 20

/** Clock ticks per second of /proc/<pid>/stat's times. */
function clockTicks (): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
}

/** CPU time (user + system) of process `pid`, ms, from /proc/<pid>/stat. */
async function processCpuMs (pid: number, ticks: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // fields after "pid (comm) ": state is field 3, utime 14, stime 15
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / ticks
}

/** A page of the room with its CDP session (Performance metrics on). */
interface Member { page: Page, cdp: CDPSession }

/** A page's main-thread task time so far, ms (CDP Performance.getMetrics `TaskDuration`, seconds). */
async function taskMs (m: Member): Promise<number> {
  const { metrics } = await m.cdp.send('Performance.getMetrics')
  return (metrics.find(x => x.name === 'TaskDuration')?.value ?? 0) * 1000
}

async function heapAfterGc (m: Member): Promise<number> {
  await m.cdp.send('HeapProfiler.collectGarbage')
  return (await m.cdp.send('Runtime.getHeapUsage')).usedSize
}

/** Wait until `check` holds, polling every 250 ms; false after `timeoutMs`. */
async function until (timeoutMs: number, check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) return false
    await sleep(250)
  }
  return true
}

const describe = (xs: number[], unit: string): string => {
  const { median, p99 } = stats(xs)
  return `median ${median.toFixed(1)} ${unit}, max ${p99.toFixed(1)} ${unit}`
}

export async function roomTen (bench: RoomBench, ms: RoomMeasures, n: number): Promise<Result[]> {
  const size = Math.min(PAGES, Math.max(3, bench.scaled(PAGES)))
  const idleMs = Math.max(1000, bench.scaled(IDLE_MS))
  const latency = new Tally()
  const relayCpu = new Tally()
  const heap = new Tally()
  const idleCpu = new Tally()
  const burstCpu = new Tally()
  const tallies = [latency, relayCpu, heap, idleCpu, burstCpu]
  const common = `${size} pages, each a BrowserContext of one Chromium (own storage and libp2p node), one writer and ${size - 1} observers, the relay a separate process on this machine, one room for all runs (run 0 a warm-up)`
  for (const t of tallies) t.notes.add(common)
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-room-'))
  const profileDir = bench.profileDir
  const relayProfileDir = profileDir === undefined ? undefined : join(profileDir, `room-10-relay-${Date.now()}`)
  const relay = await RelayProcess.start('127.0.0.1', dir, [], undefined, relayProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${relayProfileDir}`, '--cpu-prof-interval=250'])
  /** the relay profile's windows (process.hrtime µs) */
  const windows: Record<string, [number, number]> = {}
  const nowUs = (): number => Number(process.hrtime.bigint() / 1000n)
  const ticks = clockTicks()
  const browser = await chromium.launch({ executablePath: chromiumPath, args: [...chromiumArgs, '--js-flags=--expose-gc'], headless: true })
  try {
    const members: Member[] = await Promise.all(Array.from({ length: size }, async (_, i) => {
      const context = await browser.newContext()
      const page = await context.newPage()
      page.on('pageerror', err => { log(`room page ${i} page error: ${err.message}`) })
      page.on('console', msg => { if (msg.type() === 'error' && !msg.text().startsWith('WebSocket connection')) log(`room page ${i} console: ${msg.text()}`) })
      await page.goto(bench.url)
      await ready(page)
      const cdp = await context.newCDPSession(page)
      await cdp.send('Performance.enable')
      return { page, cdp }
    }))
    const [writer, ...observers] = members as [Member, ...Member[]]
    const relays = [relay.addr]
    const t0 = Date.now()
    const address = await call(writer.page, 'replCreate', bench.dbName('replicated', ms.latency.name, 0), relays)
    await call(writer.page, 'replPing', 0)
    await Promise.all(observers.map(async (o, i) => {
      try {
        await call(o.page, 'replJoin', address, relays)
        await call(o.page, 'replWaitSeq', 0, JOIN_TIMEOUT_MS)
      } catch (err) {
        throw new Error(`room page ${i + 1} of ${size} never saw the first update: ${errorText(err)}`, { cause: err })
      }
    }))
    const joinedMs = Date.now() - t0
    log(`room: all ${size - 1} observers saw the first update ${joinedMs} ms after the writer opened`)
    latency.notes.add(`the ${size - 1} observers, opened at once, all saw the first update ${(joinedMs / 1000).toFixed(1)} s after the writer opened`)
    // Measure the steady state: each page should hear from the others, over direct connections.
    const peerCounts = async (): Promise<Array<{ all: number, direct: number }>> => await Promise.all(members.map(async m => {
      const peers = await call(m.page, 'replPeers')
      return { all: peers.filter(p => p.kind !== 'none').length, direct: peers.filter(p => p.kind === 'direct').length }
    }))
    let counts: Array<{ all: number, direct: number }> = []
    const connected = await until(PEERS_TIMEOUT_MS, async () => (counts = await peerCounts()).every(c => c.direct >= size - 1))
    const seen = `each page's connected peers (direct/all): ${counts.map(c => `${c.direct}/${c.all}`).join(', ')}`
    log(`room: ${connected ? 'every page directly connected to the others' : `not every page directly connected to all ${size - 1} others after ${PEERS_TIMEOUT_MS / 1000} s`}; ${seen}`)
    if (counts.some(c => c.all < size - 1)) {
      throw new Error(`after ${PEERS_TIMEOUT_MS / 1000} s, not every page is connected to the ${size - 1} others: ${seen}`)
    }
    for (const t of tallies) t.notes.add(`before the runs, ${seen}`)
    const browserCdp = await browser.newBrowserCDPSession()
    /** Run `during`; the CPU each part spent meanwhile, ms: the relay, the `size` busiest renderers, the other Chromium processes, each page's main-thread tasks. */
    const measureSpan = async (during: () => Promise<void>): Promise<{ ms: number, relay: number, renderers: number[], rest: number, tasks: number[] }> => {
      const read = async (): Promise<{ at: number, relay: number, procs: Map<number, { type: string, ms: number }>, tasks: number[] }> => {
        const [relayMs, { processInfo }, tasks] = await Promise.all([processCpuMs(relay.pid, ticks), browserCdp.send('SystemInfo.getProcessInfo'), Promise.all(members.map(taskMs))])
        return { at: Date.now(), relay: relayMs, procs: new Map(processInfo.map(p => [p.id, { type: p.type, ms: p.cpuTime * 1000 }])), tasks }
      }
      const a = await read()
      await during()
      const b = await read()
      const deltas = [...b.procs].map(([id, p]) => ({ type: p.type, ms: p.ms - (a.procs.get(id)?.ms ?? 0) }))
      const renderers = deltas.filter(d => d.type === 'renderer').map(d => d.ms).sort((x, y) => y - x)
      const rest = deltas.reduce((sum, d) => sum + d.ms, 0) - renderers.slice(0, size).reduce((sum, x) => sum + x, 0)
      return { ms: b.at - a.at, relay: b.relay - a.relay, renderers: renderers.slice(0, size), rest, tasks: b.tasks.map((x, i) => x - (a.tasks[i])) }
    }
    let seq = 0
    const lastRun = bench.runs(ms.latency)
    for (let run = 0; run <= lastRun; run++) {
      const keep = run > 0
      const profiling = profileDir !== undefined && run === lastRun
      // idle: nothing written, every page open and connected
      const idleProfile = profiling ? await startProfile(observers[0].page) : undefined
      let at = nowUs()
      const idle = await measureSpan(async () => { await sleep(idleMs) })
      if (profiling) windows['relay, idle'] = [at, nowUs()]
      await idleProfile?.(join(profileDir as string, 'room-10-idle-observer.cpuprofile'))
      const burstProfiles = profiling ? await Promise.all([startProfile(observers[0].page), startProfile(writer.page)]) : undefined
      at = nowUs()
      const idlePct = idle.renderers.map(x => 100 * x / idle.ms)
      for (const x of idlePct) idleCpu.add(x, [], keep)
      // the burst: one update at a time, the next once all observers have seen it
      const first = seq + 1
      const burst = await measureSpan(async () => {
        for (let k = 0; k < n; k++) {
          seq++
          await Promise.all([call(writer.page, 'replPing', seq), ...observers.map(async (o, i) => {
            try {
              await call(o.page, 'replWaitSeq', seq, 30_000)
            } catch (err) {
              throw new Error(`room page ${i + 1} of ${size}: ${errorText(err)}`, { cause: err })
            }
          })])
        }
      })
      if (burstProfiles !== undefined) {
        windows['relay, burst'] = [at, nowUs()]
        await burstProfiles[0](join(profileDir as string, 'room-10-burst-observer.cpuprofile'))
        await burstProfiles[1](join(profileDir as string, 'room-10-burst-writer.cpuprofile'))
      }
      const perUpdate = burst.renderers.map(x => x / n)
      relayCpu.add(burst.relay / n, [], keep)
      for (const x of perUpdate) burstCpu.add(x, [], keep)
      // what the relay and the pages spend anyway, over as long as the burst took
      const relayIdleShare = burst.ms * idle.relay / idle.ms / n
      const rendererIdleShare = burst.ms * stats(idle.renderers).median / idle.ms / n
      const lat: number[] = []
      for (const [i, o] of observers.entries()) {
        const got = (await call(o.page, 'replLatencies', first)).slice(0, n)
        if (got.length < n) throw new Error(`room page ${i + 1} recorded ${got.length} of ${n} updates (coalesced?)`)
        lat.push(...got)
      }
      for (const x of lat) latency.add(x, [], keep)
      const heaps = await Promise.all(members.map(heapAfterGc))
      for (const x of heaps) heap.add(x / MiB, [], keep)
      const tasksIdle = idle.tasks.map(x => 100 * x / idle.ms)
      const tasksBurst = burst.tasks.map(x => x / n)
      log(`room run ${run}${keep ? '' : ' (warm-up)'}: latency ${describe(lat, 'ms')}, burst ${(burst.ms / 1000).toFixed(1)} s; relay ${(burst.relay / n).toFixed(2)} ms CPU per update (${burst.relay.toFixed(0)} ms for ${n}), ${(100 * idle.relay / idle.ms).toFixed(1)} % idle; ` +
        `page renderers idle ${describe(idlePct, '%')}, burst ${describe(perUpdate, 'ms')} per update; main-thread tasks idle ${describe(tasksIdle, '%')}, burst writer ${(tasksBurst[0]).toFixed(1)} ms, observers ${describe(tasksBurst.slice(1), 'ms')} per update; ` +
        `other Chromium processes idle ${(100 * idle.rest / idle.ms).toFixed(1)} %, burst ${(burst.rest / n).toFixed(2)} ms per update; heap ${describe(heaps.map(x => x / MiB), 'MiB')}`)
      if (keep) {
        relayCpu.notes.add(`run ${run}: the relay's idle rate (${(100 * idle.relay / idle.ms).toFixed(1)} % of one core) would account for ${relayIdleShare.toFixed(2)} ms per update over the burst's ${(burst.ms / 1000).toFixed(1)} s`)
        idleCpu.notes.add(`run ${run}: main-thread task time (CDP Performance TaskDuration, wall time of tasks, inflated when ${size} renderers share 2 cores) ${describe(tasksIdle, '%')}, other Chromium processes (browser, GPU, network) ${(100 * idle.rest / idle.ms).toFixed(1)} % in all`)
        burstCpu.notes.add(`run ${run}: the page's idle rate would account for ${rendererIdleShare.toFixed(1)} ms per update, main-thread task time (TaskDuration) writer ${(tasksBurst[0]).toFixed(1)} ms and observers ${describe(tasksBurst.slice(1), 'ms')} per update, other Chromium processes ${(burst.rest / n).toFixed(2)} ms per update in all`)
      }
    }
    latency.notes.add(`${n} updates per run, each written once the ${size - 1} observers saw the last (figures over every observer and update)`)
    relayCpu.notes.add('relay CPU: /proc/<pid>/stat utime + stime over the burst (10 ms ticks) ÷ updates')
    for (const t of [idleCpu, burstCpu]) t.notes.add(`page CPU: user + system time of the ${size} busiest renderer processes (CDP SystemInfo.getProcessInfo, all threads, 10 ms resolution), one a page`)
    idleCpu.notes.add(`idle: ${idleMs} ms with nothing written`)
    burstCpu.notes.add('burst: the CPU over the burst ÷ updates, the driver\'s page.evaluate calls included (per update one a page: the write, each observer\'s wait), in the renderers and the browser process')
    heap.notes.add('heap: CDP HeapProfiler.collectGarbage then Runtime.getHeapUsage (used size) after each burst, per page')
    for (const m of members) await call(m.page, 'replClose').catch(() => {})
  } catch (err) {
    const text = errorText(err)
    for (const t of tallies) t.failed = text
  } finally {
    await browser.close()
    // SIGTERM: the relay stops cleanly, so node writes its --cpu-prof profile
    if (relayProfileDir !== undefined) await Promise.race([relay.kill('SIGTERM'), sleep(10_000)])
    await relay.kill()
    await rm(dir, { recursive: true, force: true })
    if (relayProfileDir !== undefined && Object.keys(windows).length > 0) {
      const files = await readdir(relayProfileDir).catch(() => [])
      for (const f of files.filter(x => x.endsWith('.cpuprofile'))) await summariseNodeProfile(join(relayProfileDir, f), windows)
    }
  }
  return [
    latency.result(ms.latency, 'kitedb-replicated', n),
    relayCpu.result(ms.relayCpu, 'kitedb-replicated', n),
    heap.result(ms.heap, 'kitedb-replicated', n),
    idleCpu.result(ms.idleCpu, 'kitedb-replicated', n),
    burstCpu.result(ms.burstCpu, 'kitedb-replicated', n)
  ]
}
