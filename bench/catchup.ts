/**
 * The catch-up measures of `npm run bench`: page A writes a history, then a fresh Chromium B opens
 * A's address; the time runs from B's `KiteDB.open` to its `observe({})` seeing every doc.
 *
 * - `catch-up` (10,000 docs) with `catch-up-bytes` and `catch-up-first`.
 * - `catch-up-100k` (100,000 docs) with `catch-up-100k-bytes`, and B's JS heap:
 *   `heap-100k-catch-up` (MiB after GC once caught up) and `heap-100k-catch-up-peak` (MiB, the
 *   largest of the samples taken every 100 ms during the catch-up).
 */
import { join } from 'node:path'
import { encode as encodeDagCbor } from '@ipld/dag-cbor'
import { type Page } from '@playwright/test'
import { makeDoc } from './page/docs.js'
import { type WireBytes } from './page/wire.js'
import { type Measure, type Result } from './measures.js'
import { type Browser, Tally, call, errorText, log, stats } from './harness.js'
import { startProfile } from './profile.js'

/** What the catch-up measures need of the benchmark run. */
export interface CatchUpBench {
  launch: (label: string) => Promise<Browser>
  /** measured runs of `m` */
  runs: (m: Measure) => number
  /** the first run's number: 0 when a warm-up run comes first (discarded), else 1 */
  firstRun: (m: Measure) => number
  dbName: (system: string, what: string, run: number) => string
  relayAddrs: () => Promise<string[]>
  /** where CPU profiles go (`--profile`), if anywhere */
  profileDir: string | undefined
}

/** The measures one catch-up series feeds: `time` drives it, the others are taken in its runs. */
export interface CatchUpMeasures {
  /** ms from B's open to its observe({}) seeing every doc */
  time: Measure
  /** bytes B received by then ÷ the docs' dag-cbor size */
  bytes: Measure
  /** ms until B's observe({}) first shows a screenful */
  first?: Measure
  /** MiB of B's JS heap after GC, once caught up (its database open, the observer stopped) */
  heap?: Measure
  /** MiB, the largest of B's JS heap samples during the catch-up */
  heapPeak?: Measure
}

/** The dag-cbor size of documents 0…n-1, each encoded on its own, summed (the issue's reference). */
function dagCborBytes (n: number): number {
  let bytes = 0
  for (let i = 0; i < n; i++) bytes += encodeDagCbor(makeDoc(i)).byteLength
  return bytes
}

const formatBytes = (x: number): string => `${Math.round(x).toLocaleString('en-US')} B`
const MiB = 2 ** 20

/**
 * Sample `page`'s JS heap (CDP Runtime.getHeapUsage, used size) every `everyMs` until the returned
 * function is called; it resolves to the largest sample (bytes) and how many were taken.
 */
async function sampleHeap (page: Page, everyMs: number): Promise<() => Promise<{ peak: number, samples: number }>> {
  const cdp = await page.context().newCDPSession(page)
  let sampling = true
  let peak = 0
  let samples = 0
  const loop = (async () => {
    while (sampling) {
      const { usedSize } = await cdp.send('Runtime.getHeapUsage')
      peak = Math.max(peak, usedSize)
      samples++
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
  })()
  return async () => {
    sampling = false
    await loop
    await cdp.detach()
    return { peak, samples }
  }
}

/** `page`'s JS heap after a full GC (CDP HeapProfiler.collectGarbage, then Runtime.getHeapUsage), bytes. */
export async function heapAfterGc (page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page)
  try {
    await cdp.send('HeapProfiler.collectGarbage')
    return (await cdp.send('Runtime.getHeapUsage')).usedSize
  } finally {
    await cdp.detach()
  }
}

/**
 * Catch-up of `n` documents written by A `chunk` per insert call (one block each). Each run has a
 * fresh A and a fresh B (own Chromiums, own profiles). Returns the results of every measure in
 * `ms`, `time` first.
 */
export async function catchUp (bench: CatchUpBench, ms: CatchUpMeasures, n: number, chunk: number): Promise<Result[]> {
  const m = ms.time
  const tally = new Tally()
  const firstTally = new Tally()
  const bytesTally = new Tally()
  const heapTally = new Tally()
  const peakTally = new Tally()
  const tallies = [tally, firstTally, bytesTally, heapTally, peakTally]
  const reference = dagCborBytes(n)
  const wires: WireBytes[] = []
  const relays = await bench.relayAddrs()
  const start = bench.firstRun(m)
  const last = bench.runs(m)
  const notes = [`history written as ${Math.ceil(n / chunk)} insert call(s) of ≤ ${chunk} docs (one block each)`]
  if (chunk !== 100) notes.push(`catch-up writes 100 docs per call: the block size changes these figures (see HISTORY_CHUNK_100K in bench/run.ts)`)
  if (start > 0) notes.push('no warm-up run')
  for (let run = start; run <= last && tally.failed === undefined; run++) {
    const a = await bench.launch('replica-a')
    try {
      const address = await call(a.page, 'replCreate', bench.dbName('replicated', m.name, run), relays)
      const t0 = Date.now()
      await call(a.page, 'replInsertHistory', n, chunk)
      log(`${m.name} run ${run}: A wrote ${n} docs in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      const b = await bench.launch('replica-b')
      try {
        const profiling = run === last && bench.profileDir !== undefined
        const stopProfile = profiling ? await startProfile(b.page) : undefined
        const stopProfileA = profiling ? await startProfile(a.page) : undefined
        const stopHeap = ms.heapPeak !== undefined ? await sampleHeap(b.page, 100) : undefined
        const { ms: took, wire, snapshot, phases } = await call(b.page, 'replCatchUp', address, relays, n, 60_000 + n * 20)
        const heap = await stopHeap?.()
        await stopProfile?.(join(bench.profileDir as string, `${m.name}.cpuprofile`))
        await stopProfileA?.(join(bench.profileDir as string, `${m.name}-a.cpuprofile`))
        const peers = (await call(b.page, 'replPeers')).map(p => `${p.kind} (${p.transport})`).join(', ') || 'none'
        const joined = snapshot ? 'joined from a snapshot' : 'replayed the blocks'
        const timeline = Object.entries(phases).sort((x, y) => x[1] - y[1]).map(([phase, at]) => `${phase} ${(at / 1000).toFixed(2)} s`).join(', ')
        log(`${m.name} run ${run}${run === 0 ? ' (warm-up)' : ''}: ${Math.round(took)} ms (${timeline}), ${joined}, received WebRTC ${formatBytes(wire.webrtc.received)} + WebSocket ${formatBytes(wire.websocket.received)}, sent WebRTC ${formatBytes(wire.webrtc.sent)} + WebSocket ${formatBytes(wire.websocket.sent)}` +
          `; data channels received: ${Object.entries(wire.byProtocol).sort((x, y) => y[1].received - x[1].received).map(([p, b]) => `${p} ${formatBytes(b.received)} (${b.channels} ch)`).join(', ')}`)
        const keep = run > 0
        tally.add(took, [...notes, `B ${joined}`, `run ${run}: B reached (s from its open) ${timeline}, all ${(took / 1000).toFixed(2)} s, over ${wire.webrtc.connections} WebRTC connection(s), ${formatBytes(wire.byProtocol['/kitedb/1/blocks']?.received ?? 0)} of /kitedb/1/blocks payload`], keep)
        firstTally.add(phases.first ?? took, [...notes, `B ${joined}`], keep)
        bytesTally.add((wire.webrtc.received + wire.websocket.received) / reference, [...notes, `B ${joined}`, `B's peers after catching up: ${peers}`], keep)
        if (heap !== undefined) {
          const after = await heapAfterGc(b.page)
          log(`${m.name} run ${run}: B's JS heap peak ${(heap.peak / MiB).toFixed(1)} MiB (${heap.samples} samples), after GC ${(after / MiB).toFixed(1)} MiB`)
          heapTally.add(after / MiB, [...notes, `B ${joined}`, 'CDP HeapProfiler.collectGarbage then Runtime.getHeapUsage (used size), B\'s database still open, its observer stopped'], keep)
          peakTally.add(heap.peak / MiB, [...notes, `B ${joined}`, `the largest of B's Runtime.getHeapUsage samples every 100 ms from its open to all docs observed (${heap.samples} in the last run, each answered between tasks, so the peak is a lower bound)`], keep)
        }
        if (keep) wires.push(wire)
        await call(b.page, 'replClose')
      } finally {
        await b.close()
      }
      await call(a.page, 'replClose')
    } catch (err) {
      const text = errorText(err)
      for (const t of tallies) t.failed = text
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
  const results = [tally.result(m, 'kitedb-replicated', n), bytesTally.result(ms.bytes, 'kitedb-replicated', n)]
  if (ms.first !== undefined) results.push(firstTally.result(ms.first, 'kitedb-replicated', n))
  if (ms.heap !== undefined) results.push(heapTally.result(ms.heap, 'kitedb-replicated', n))
  if (ms.heapPeak !== undefined) results.push(peakTally.result(ms.heapPeak, 'kitedb-replicated', n))
  return results
}
