/**
 * The network measures of `npm run bench`: how fast KiteDB recovers from the faults of real
 * networks, in real Chromium against real relay processes.
 *
 * - `relay-restart`: a page's relay is killed (SIGKILL) and restarted on its key and port; the time
 *   from the relay being ready again to a fresh page, opening the page's address, seeing its list.
 * - `network-heal`: a page in a network namespace, directly connected to another, has its link
 *   taken down while both write; the time from the link coming back to both lists being equal
 *   (needs root, as the browser tests do; otherwise the measure is skipped with a note).
 * - `tab-to-tab`: two tabs of one browser on one database; an update in one, seen by the other's
 *   `observe` (per update).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { preview } from 'vite'
import { chromiumPath } from '../playwright.config.js'
import { Netns, RelayProcess, canMakeNetns } from '../test/e2e/helpers/cluster.js'
import { type Browser, type LaunchOptions, Tally, call, errorText, log } from './harness.js'
import { type Measure, type Result } from './measures.js'

/** What the network measures need of the benchmark run. */
export interface NetworkBench {
  launch: (label: string, options?: LaunchOptions) => Promise<Browser>
  /** measured runs of `m` (a warm-up run comes first and is discarded) */
  runs: (m: Measure) => number
  scaled: (n: number) => number
  dbName: (system: string, what: string, run: number) => string
  /** the benchmark page's Vite config (to serve the page on another address) */
  configFile: string
}

/** How long the relay stays down, and the link cut, at scale 1, ms. */
const RELAY_DOWN_MS = 5000
const CUT_MS = 15_000

async function waitFor (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

export async function relayRestart (bench: NetworkBench, m: Measure, n: number): Promise<Result> {
  const tally = new Tally()
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-relay-'))
  const relay = await RelayProcess.start('127.0.0.1', dir)
  const downMs = Math.max(1000, bench.scaled(RELAY_DOWN_MS))
  try {
    for (let run = 0; run <= bench.runs(m) && tally.failed === undefined; run++) {
      const a = await bench.launch('relay-restart-a')
      const b = await bench.launch('relay-restart-b')
      try {
        const address = await call(a.page, 'replCreate', bench.dbName('replicated', m.name, run), [relay.addr])
        await call(a.page, 'replInsertHistory', n, 10)
        await relay.kill()
        await new Promise(resolve => setTimeout(resolve, downMs))
        await relay.restart()
        const back = Date.now()
        await call(b.page, 'replCatchUp', address, [relay.addr], n, 60_000)
        const ms = Date.now() - back
        log(`relay-restart run ${run}${run === 0 ? ' (warm-up)' : ''}: a fresh page saw the list ${ms} ms after the relay was back`)
        tally.add(ms, [`the relay was down ${downMs} ms; the list has ${n} documents in ${Math.ceil(n / 10)} blocks; the time includes the fresh page's open and catch-up`], run > 0)
        await call(a.page, 'replClose')
        await call(b.page, 'replClose')
      } catch (err) {
        tally.failed = errorText(err)
      } finally {
        await a.close()
        await b.close()
      }
    }
  } finally {
    await relay.kill()
    await rm(dir, { recursive: true, force: true })
  }
  return tally.result(m, 'kitedb-replicated', n)
}

export async function networkHeal (bench: NetworkBench, m: Measure, n: number): Promise<Result> {
  const tally = new Tally()
  if (!canMakeNetns()) {
    return { name: m.name, system: 'kitedb-replicated', n, unit: m.unit, median: null, p99: null, note: 'skipped: needs root and iproute2 to cut a browser\'s link (a network namespace)' }
  }
  const ns = new Netns(chromiumPath)
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-heal-'))
  const server = await preview({ configFile: bench.configFile, preview: { port: 0, host: ns.hostIp, strictPort: false } })
  const cutMs = Math.max(2000, bench.scaled(CUT_MS))
  try {
    const relay = await RelayProcess.start(ns.hostIp, dir)
    try {
      const url = server.resolvedUrls?.network[0] ?? server.resolvedUrls?.local[0]
      if (url === undefined) throw new Error('the page has no URL inside the namespace')
      for (let run = 0; run <= bench.runs(m) && tally.failed === undefined; run++) {
        const a = await bench.launch('heal-a', { url })
        const b = await bench.launch('heal-b', { url, executablePath: ns.chromiumPath })
        try {
          const address = await call(a.page, 'replCreate', bench.dbName('replicated', m.name, run), [relay.addr])
          await call(a.page, 'replInsertHistory', n, 10)
          await call(b.page, 'replCatchUp', address, [relay.addr], n, 60_000)
          await waitFor('a direct connection', 20_000, async () => (await call(b.page, 'replPeers')).some(p => p.kind === 'direct'))
          ns.cut()
          await Promise.all([call(a.page, 'replInsert', 'a', 5), call(b.page, 'replInsert', 'b', 5)])
          await waitFor('the cut page to notice', 30_000, async () => (await call(b.page, 'replNetwork')).status !== 'online')
          await new Promise(resolve => setTimeout(resolve, cutMs))
          ns.heal()
          const healed = Date.now()
          try {
            await waitFor('both lists to be equal', 60_000, async () => {
              const [x, y] = await Promise.all([call(a.page, 'replExtraIds'), call(b.page, 'replExtraIds')])
              return x.length === 10 && JSON.stringify(x) === JSON.stringify(y)
            })
          } catch (err) {
            const [x, y] = await Promise.all([call(a.page, 'replDebug'), call(b.page, 'replDebug')])
            throw new Error(`${errorText(err)}; A: ${JSON.stringify(x)}; B: ${JSON.stringify(y)}`, { cause: err })
          }
          const ms = Date.now() - healed
          log(`network-heal run ${run}${run === 0 ? ' (warm-up)' : ''}: lists equal ${ms} ms after the link came back`)
          tally.add(ms, [`the link was down ${cutMs} ms (B noticed it first) while each side wrote 5 documents`], run > 0)
          await call(a.page, 'replClose')
          await call(b.page, 'replClose')
        } catch (err) {
          tally.failed = errorText(err)
        } finally {
          ns.heal()
          await a.close()
          await b.close()
        }
      }
    } finally {
      await relay.kill()
    }
  } finally {
    await server.close()
    ns.close()
    await rm(dir, { recursive: true, force: true })
  }
  return tally.result(m, 'kitedb-replicated', n)
}

export async function tabToTab (bench: NetworkBench, m: Measure, n: number): Promise<Result> {
  const tally = new Tally()
  const warm = Math.max(5, Math.round(n / 10))
  const browser = await bench.launch('tabs')
  try {
    const a = browser.page
    const b = await browser.newPage()
    const address = await call(a, 'replCreate', bench.dbName('tabs', m.name, 0), [])
    await call(a, 'replPing', 0)
    await call(b, 'replJoin', address, [])
    await call(b, 'replWaitSeq', 0, 30_000)
    for (let seq = 1; seq <= warm + n; seq++) {
      await Promise.all([call(a, 'replPing', seq), call(b, 'replWaitSeq', seq, 30_000)])
    }
    for (const ms of await call(b, 'replLatencies', warm + 1)) tally.add(ms, [], true)
    tally.notes.add(`${warm} warm-up updates discarded; both tabs local-only (the change travels by BroadcastChannel, not the network)`)
  } catch (err) {
    tally.failed = errorText(err)
  } finally {
    await browser.close()
  }
  return tally.result(m, 'kitedb', n)
}

