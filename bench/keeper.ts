/**
 * The keeper measures of `npm run bench` (docs/keepers.md), against a real relay process with
 * `--keep`:
 *
 * - `keeper-catch-up`: page A writes the history (100 documents a block), waits until the keeper
 *   stores it and a snapshot of it (`whenKept({snapshot: true})`) and closes its Chromium; a fresh
 *   Chromium B then opens A's address with every writer offline. The time runs from B's
 *   `KiteDB.open` to its `observe({})` seeing every document.
 * - `keeper-ingest` / `keeper-rss`: this process hands the keeper 1,000 databases' worth of
 *   sealed, signed blocks (chains of 1,000 blocks each at full size) over the keep protocol, as
 *   replicas would (`put` requests of up to 3 MiB, two databases at once); the rate is blocks acknowledged
 *   (after the keeper's commit) per second of the whole ingest, and the RSS is the keeper
 *   process's resident memory afterwards (VmRSS; its peak VmHWM in the note). Blocks are made
 *   (signed and sealed) ahead of each database's hand-over, outside the timed part. Full size
 *   (1,000,000 blocks) only with `--keeper-full`; otherwise a tenth, scaled by `--scale`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type CID, createManifest, encodeBlock, encodeManifest, generateKey, generateSigner, linkSigner } from '../src/crdt/index.js'
import { Libp2pTransport, createPeerNode, parseRelays } from '../src/net/index.js'
import { KEEP_PROTOCOL, type KeepRequest, decodeKeepResponse, encodeKeepRequest } from '../src/sync/index.js'
import { RelayProcess } from '../test/e2e/helpers/cluster.js'
import { type NetworkBench } from './network.js'
import { Tally, call, errorText, log } from './harness.js'
import { type Measure, type Result } from './measures.js'

/** documents per insert call (so per block) of the history */
const HISTORY_CHUNK = 100
/** A writer makes snapshots once it holds this many blocks (`snapshotMinBlocks`' default). */
const SNAPSHOT_MIN_BLOCKS = 50

export async function keeperCatchUp (bench: NetworkBench, m: Measure, n: number): Promise<Result> {
  const tally = new Tally()
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-keep-'))
  const relay = await RelayProcess.start('127.0.0.1', dir, ['--keep', join(dir, 'keep')])
  const snapshot = Math.ceil(n / HISTORY_CHUNK) >= SNAPSHOT_MIN_BLOCKS
  try {
    for (let run = 0; run <= bench.runs(m) && tally.failed === undefined; run++) {
      try {
        const a = await bench.launch('keeper-a')
        let address: string
        let keptMs: number
        try {
          address = await call(a.page, 'replCreate', bench.dbName('keeper', m.name, run), [relay.addr])
          await call(a.page, 'replInsertHistory', n, HISTORY_CHUNK)
          keptMs = await call(a.page, 'replWhenKept', snapshot, 120_000)
          await call(a.page, 'replClose')
        } finally {
          await a.close()
        }
        const b = await bench.launch('keeper-b')
        try {
          const { ms, snapshot: joined, phases } = await call(b.page, 'replCatchUp', address, [relay.addr], n, 60_000 + n * 20)
          const timeline = Object.entries(phases).sort((x, y) => x[1] - y[1]).map(([phase, at]) => `${phase} ${(at / 1000).toFixed(2)} s`).join(', ')
          log(`keeper-catch-up run ${run}${run === 0 ? ' (warm-up)' : ''}: ${Math.round(ms)} ms (${timeline}), ${joined ? 'joined from the kept snapshot' : 'replayed the kept blocks'}; A's whenKept waited ${Math.round(keptMs)} ms`)
          tally.add(ms, [`every writer offline: A closed its Chromium after whenKept${snapshot ? '({snapshot: true})' : ''}`, `B ${joined ? 'joined from the kept writer snapshot' : 'replayed the kept blocks'}`,
            `history written as ${Math.ceil(n / HISTORY_CHUNK)} insert call(s) of ≤ ${HISTORY_CHUNK} docs`], run > 0)
          await call(b.page, 'replClose')
        } finally {
          await b.close()
        }
      } catch (err) {
        tally.failed = errorText(err)
      }
    }
  } finally {
    await relay.kill()
    await rm(dir, { recursive: true, force: true })
  }
  return tally.result(m, 'kitedb-replicated', n)
}

/** Resident and peak memory of process `pid`, MiB (Linux /proc). */
async function memoryOf (pid: number): Promise<{ rss: number, hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN)
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 }
}

export async function keeperIngest (bench: NetworkBench, ingest: Measure, rss: Measure, full: boolean): Promise<Result[]> {
  const total = full ? ingest.n : bench.scaled(ingest.n / 10)
  const databases = Math.max(1, Math.min(1000, Math.round(total / 1000)))
  const perDb = Math.max(1, Math.floor(total / databases))
  const blocks = databases * perDb
  const rate = new Tally()
  const memory = new Tally()
  const dir = await mkdtemp(join(tmpdir(), 'kitedb-bench-ingest-'))
  const relay = await RelayProcess.start('127.0.0.1', dir, ['--keep', join(dir, 'keep'), '--keep-per-peer', String(databases + 1), '--keep-max', String(databases + 1)])
  const node = await createPeerNode({ relays: [relay.addr], webrtc: false })
  const transport = new Libp2pTransport(node, { relays: parseRelays([relay.addr]), directConnections: false, limits: { requestsPerSecond: 1000, requestBurst: 1000 } })
  try {
    const keeper = relay.addr.split('/p2p/')[1]
    const ask = async (req: KeepRequest): Promise<void> => {
      const response = decodeKeepResponse(await transport.request(keeper, KEEP_PROTOCOL, encodeKeepRequest(req), { timeoutMs: 60_000 }), req.t)
      if ('error' in response) throw new Error(`the keeper refused: ${response.error.message}`)
      if ('put' in response && response.put.refused.length > 0) throw new Error(`the keeper refused blocks: ${response.put.refused[0]?.reason ?? ''}`)
    }
    const pid = relay.pid
    const before = await memoryOf(pid)
    let ingestMs = 0
    let done = 0
    /** One link-secret database's blocks, sealed, signed by a writer and by the link key (made before the clock runs). */
    const makeDatabase = async (d: number): Promise<{ db: string, manifest: Uint8Array, groups: Uint8Array[][] }> => {
      const key = generateKey()
      const { bytes: manifest, cid } = encodeManifest(createManifest(`bench ${d}`, ['*'], key))
      const db = cid.toString()
      const signer = generateSigner()
      const link = linkSigner(key)
      const groups: Uint8Array[][] = [[]]
      let size = 0
      let parent: CID | undefined
      for (let i = 0; i < perDb; i++) {
        const b = await encodeBlock({ v: 1, db, parents: parent === undefined ? [] : [parent], hlc: { t: Date.now(), c: i, r: 'bench' }, ops: [{ op: 'put', coll: 'docs', id: `d${i}`, set: { n: i, title: `document ${i}` } }] }, { signer, key, link, valuesChecked: true })
        if (size + b.bytes.byteLength > 3 * 1024 * 1024) { groups.push([]); size = 0 }
        groups[groups.length - 1].push(b.bytes)
        size += b.bytes.byteLength
        parent = b.cid
      }
      return { db, manifest, groups }
    }
    const handOver = async ({ db, manifest, groups }: Awaited<ReturnType<typeof makeDatabase>>): Promise<void> => {
      await ask({ t: 'keep', db, manifest })
      for (const group of groups) await ask({ t: 'put', db, blocks: group })
    }
    // Two databases handed over at once, as two replicas would (the keeper's requests run concurrently).
    for (let d = 0; d < databases; d += 2) {
      const batch = await Promise.all([d, d + 1].filter(x => x < databases).map(makeDatabase))
      const t0 = performance.now()
      await Promise.all(batch.map(handOver))
      ingestMs += performance.now() - t0
      done += batch.length
      if (done % 100 === 0) log(`keeper-ingest: ${done} of ${databases} databases (${Math.round(done * perDb / (ingestMs / 1000))} blocks/s so far)`)
    }
    const after = await memoryOf(pid)
    const perSecond = blocks / (ingestMs / 1000)
    log(`keeper-ingest: ${blocks} blocks in ${databases} databases in ${(ingestMs / 1000).toFixed(1)} s of hand-over: ${Math.round(perSecond)} blocks/s; keeper RSS ${after.rss.toFixed(0)} MiB (peak ${after.hwm.toFixed(0)}, ${before.rss.toFixed(0)} before)`)
    const notes = [`${databases} link-secret databases × ${perDb} sealed blocks (a chain each), put requests of ≤ 3 MiB, two databases handed over at once, each acknowledged after the keeper's fsynced LevelDB batch`,
      `keeper in its own process (bin/kitedb-relay.js --keep); pusher in the bench process over WebSockets; blocks made before each database's hand-over, not timed`]
    rate.add(perSecond, notes, true)
    memory.add(after.rss, [`keeper RSS ${before.rss.toFixed(0)} MiB before the ingest, peak ${after.hwm.toFixed(0)} MiB`, `${blocks} blocks kept`], true)
  } catch (err) {
    rate.failed = memory.failed = errorText(err)
  } finally {
    transport.close()
    await node.stop()
    await relay.kill()
    await rm(dir, { recursive: true, force: true })
  }
  return [rate.result(ingest, 'keeper', blocks), memory.result(rss, 'keeper', blocks)]
}
