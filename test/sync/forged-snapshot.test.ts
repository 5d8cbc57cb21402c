/**
 * A forged snapshot end to end, over the in-memory transport: a listed writer holding every block
 * serves, as its snapshot, states it invented under the real heads (another writer's field
 * rewritten). The replica that joins from it must end equal to a replica that replayed the blocks
 * (the audit after the join repairs it) and report the writer; an honest snapshot changes
 * nothing. Only public modules are imported, so this runs against any version of the engine.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { type Storage } from '../../src/store/index.js'
import { MemoryStorage } from '../../src/store/memory.js'
import {
  BLOCKS_PROTOCOL, Replica, Replicator, SNAPSHOT_PROTOCOL, type SnapshotContent, buildSnapshot, decodeBlocksRequest, encodeBlocksResponse,
  encodeSnapshotResponse, signSnapshotRoot, topicOf
} from '../../src/sync/index.js'
import { type DocState, type JsonValue, type Op, createManifest, formatPublicKey, generateSigner } from '../../src/crdt/index.js'
import { type KiteError } from '../../src/errors.js'
import * as errors from '../../src/errors.js'
import { setLogLevel } from '../../src/log.js'
import { COLLS } from '../helpers/arbitraries.js'
import { MemoryHub, eventually } from '../helpers/memory-transport.js'

const DB = 'bafyreigj5hby77l2bevcmbd4b65tpef7hy7ospuccnpwsjwe3zwgtfsvw4'

async function view (storage: Storage): Promise<unknown> {
  return { collections: await storage.getCollections(), docs: await Promise.all(COLLS.map(async c => await storage.getDocs(c))) }
}

describe('a forged snapshot over the in-memory transport', () => {
  const running: Replicator[] = []
  afterEach(() => {
    for (const r of running.splice(0)) r.stop()
    setLogLevel('warn')
  })

  const writerA = generateSigner()
  const forger = generateSigner()
  const manifest = createManifest('audited', [formatPublicKey(writerA.publicKey), formatPublicKey(forger.publicKey)])

  async function replicaOn (hub: MemoryHub, name: string, options = {}, signer = generateSigner()): Promise<Replicator> {
    const r = new Replicator(await Replica.open(new MemoryStorage(), DB, { signer, manifest }), hub.join(name), { republishMs: 50, snapshotMinBlocks: 20, snapshotAuditDelayMs: 50, ...options })
    r.start()
    running.push(r)
    return r
  }

  async function write (r: Replicator, ops: Op[]): Promise<void> {
    const applied = await r.replica.commit(ops)
    if (applied !== undefined) await r.publishLocal(applied)
  }

  const docs = async (r: Replicator): Promise<unknown> => await view(r.replica.storage)

  /**
   * A listed writer that holds every block of `a` and serves, as its snapshot, states it forged
   * with `forge` under the real heads (signed with its own key), and its real blocks to anyone.
   */
  async function forgingWriter (hub: MemoryHub, a: Replicator, forge: (docs: SnapshotContent['docs']) => void): Promise<void> {
    const own = await Replica.open(new MemoryStorage(), DB, { signer: forger, manifest })
    for (const bytes of await a.replica.storage.getBlocks((await a.replica.storage.readSnapshotSource()).blocks)) await own.receive(bytes as Uint8Array)
    const source = await own.storage.readSnapshotSource()
    forge(source.docs)
    const built = await buildSnapshot(DB, source)
    const signed = await signSnapshotRoot(built.root, forger)
    // '0forger' sorts before every honest peer: the joiner asks it first.
    const t = hub.join('0forger')
    t.subscribe(topicOf(DB), () => {})
    t.handle(SNAPSHOT_PROTOCOL, async () => encodeSnapshotResponse({ root: built.root, ...signed }))
    t.handle(BLOCKS_PROTOCOL, async data => {
      const cids = decodeBlocksRequest(data).cids.map(c => c.toString())
      const stored = await own.storage.getBlocks(cids)
      return encodeBlocksResponse({ blocks: cids.map((c, i) => built.nodes.get(c) ?? stored[i]).filter((b): b is Uint8Array => b !== undefined) })
    })
  }

  it('a listed writer\'s snapshot with another writer\'s field rewritten: the joiner repairs it, reports the writer, and ends equal to a replica that replayed', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A', {}, writerA)
    for (let i = 0; i < 30; i++) await write(a, [{ op: 'put', coll: 'a', id: `d${i % 10}`, set: { owner: 'A', n: i } }])
    const replayer = await replicaOn(hub, 'R', { snapshotJoin: false })
    await eventually(async () => JSON.stringify(await docs(replayer)) === JSON.stringify(await docs(a)), 10_000, 'R to replay')
    await forgingWriter(hub, a, list => {
      const d3 = list.find(d => d.id === 'd3')?.state as DocState
      ;(d3.f.owner as { v: JsonValue }).v = 'the forger' // A's field, A's stamp: nothing else looks odd
    })
    const joiner = await replicaOn(hub, 'J')
    const reports: KiteError[] = []
    joiner.onError(err => { reports.push(err) })
    let sawForged = false
    joiner.replica.onChange(change => { if (change.changes.some(c => c.after?.owner === 'the forger')) sawForged = true })
    await eventually(async () => (await joiner.state()).snapshot !== null, 10_000, 'J to join from a snapshot')
    await eventually(async () => JSON.stringify(await docs(joiner)) === JSON.stringify(await docs(replayer)), 20_000, 'J to equal R')
    expect(sawForged).toBe(true) // it did join from the forgery
    expect(await joiner.replica.heads()).toEqual(await replayer.replica.heads())
    expect((await joiner.state()).audit?.status).toBe('repaired')
    const reported = reports.find(e => e.code === 'ERR_SNAPSHOT_MISMATCH') as errors.SnapshotMismatchError | undefined
    expect(reported).toBeInstanceOf(errors.SnapshotMismatchError)
    expect(reported?.producer).toBe(formatPublicKey(forger.publicKey))
    expect(reported?.differences).toBe(1)
    // Writes go on converging after the repair.
    await write(a, [{ op: 'put', coll: 'a', id: 'd3', set: { after: true } }])
    await eventually(async () => JSON.stringify(await docs(joiner)) === JSON.stringify(await docs(a)), 10_000, 'a later write to reach J')
    expect(JSON.stringify(await docs(joiner))).not.toContain('the forger')
  })

  it('an honest snapshot is verified: no change, no report', async () => {
    setLogLevel('silent')
    const hub = new MemoryHub()
    const a = await replicaOn(hub, 'A', {}, writerA)
    for (let i = 0; i < 30; i++) await write(a, [{ op: 'put', coll: 'a', id: `d${i % 10}`, set: { n: i }, inc: { c: 1 } }])
    const joiner = await replicaOn(hub, 'J')
    const reports: KiteError[] = []
    joiner.onError(err => { reports.push(err) })
    const changes: unknown[] = []
    await eventually(async () => (await joiner.state()).snapshot !== null, 10_000, 'J to join from a snapshot')
    joiner.replica.onChange(change => { changes.push(change) })
    await eventually(async () => (await joiner.state()).audit?.status === 'verified', 15_000, 'the audit to verify the snapshot')
    expect(reports).toEqual([])
    expect(changes).toEqual([])
    expect(await docs(joiner)).toEqual(await docs(a))
  })
})
