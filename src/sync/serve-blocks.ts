/**
 * Answering peers over `/kitedb/1/blocks` and `/kitedb/1/snapshot` (docs/design.md,
 * "Replication"): a replica's blocks, headsets and manifest, and the nodes and offers of its
 * snapshots (`SnapshotServer`). One handler per protocol and transport serves every database
 * replicated over it. The asking side is `ask-blocks.ts`; keepers answer with `collectBlocks` too.
 */
import { type Logger, createLogger } from '../log.js'
import { readBlockHeader } from '../crdt/index.js'
import { MANIFEST_KEY, type Replica } from './replica.js'
import { type SnapshotServer, signSnapshotRoot } from './snapshot/index.js'
import { type Transport } from './transport.js'
import {
  type BlocksRequest, BLOCKS_PROTOCOL, MAX_MESSAGE_BYTES, MAX_REQUEST_CIDS, SNAPSHOT_PROTOCOL,
  decodeBlocksRequest, decodeSnapshotRequest, encodeBlocksResponse, encodeSnapshotResponse
} from './wire.js'

const log = createLogger('sync')

/** What a transport serves for one database: its replica's blocks and snapshots. */
interface Served { replica: Replica, snapshots: SnapshotServer }

/** Per transport: what it serves, by database id, and how to stop serving. */
const served = new WeakMap<Transport, { dbs: Map<string, Served>, unhandle: () => void }>()

/**
 * Serve `replica`'s blocks on `/kitedb/1/blocks` and the snapshots of `snapshots` on
 * `/kitedb/1/snapshot` (their nodes go out over `/kitedb/1/blocks` too) of `transport`. One
 * handler per protocol and transport dispatches by the request's database id. Returns a function
 * that stops serving this replica.
 */
export function serveBlocks (transport: Transport, replica: Replica, snapshots: SnapshotServer): () => void {
  let entry = served.get(transport)
  if (entry === undefined) {
    const dbs = new Map<string, Served>()
    const unhandleBlocks = transport.handle(BLOCKS_PROTOCOL, async (data, from) => await answerBlockRequest(dbs, data, from))
    const unhandleSnapshots = transport.handle(SNAPSHOT_PROTOCOL, async (data, from) => await answerSnapshotRequest(dbs, data, from))
    served.set(transport, entry = { dbs, unhandle: () => { unhandleBlocks(); unhandleSnapshots() } })
  }
  const { dbs, unhandle } = entry
  dbs.set(replica.dbId, { replica, snapshots })
  return () => {
    if (dbs.get(replica.dbId)?.replica !== replica) return
    dbs.delete(replica.dbId)
    if (dbs.size === 0) {
      unhandle()
      served.delete(transport)
    }
  }
}

/**
 * `decode(data)` of a request from peer `from`; when it throws, the reason is logged (a warning
 * on `logger`, naming `what` and the peer) before the error is rethrown. Replicas and keepers
 * decode requests with it.
 */
export function decodeLogged<T> (logger: Logger, what: string, decode: (data: Uint8Array) => T, data: Uint8Array, from: string): T {
  try {
    return decode(data)
  } catch (err) {
    logger.warn(`bad ${what} from ${from}: ${(err as Error).message}`)
    throw err
  }
}

async function answerBlockRequest (dbs: Map<string, Served>, data: Uint8Array, from: string): Promise<Uint8Array> {
  const req = decodeLogged(log, 'block request', decodeBlocksRequest, data, from)
  const target = dbs.get(req.db)
  if (target === undefined) return encodeBlocksResponse({ blocks: [] })
  const { replica, snapshots } = target
  // A requester that joined from our latest snapshot names its root: the walk stops at what it covers.
  const have = new Set(req.have.map(c => c.toString()))
  const covered = snapshots.coveredFor(have)
  const blocks = await collectBlocks(req, async cid => {
    const node = snapshots.node(cid)
    if (node !== undefined) return { bytes: node, walk: false } // a snapshot node: nothing to walk
    const bytes = (await replica.storage.getBlocks([cid]))[0] ?? await replica.getHeadset(cid) ??
      (cid === replica.dbId ? await replica.storage.getMeta<Uint8Array>(MANIFEST_KEY) : undefined)
    return bytes === undefined ? undefined : { bytes, walk: true }
  }, cid => have.has(cid) || covered.has(cid))
  return encodeBlocksResponse({ blocks })
}

/**
 * The answer to a blocks request: the asked blocks first, then, breadth first, their chunks and
 * ancestors, up to the requester's heads (`stop`) and the message budget (`req.max`, at most
 * `MAX_MESSAGE_BYTES`), so a requester that lacks a long chain gets it in one round trip.
 * `lookup` gives a node's bytes, and whether to walk its chunks and parents (a block: yes; a
 * snapshot node: no; anything that is not a block is not walked either). Used by replicas and
 * keepers alike.
 */
export async function collectBlocks (
  req: BlocksRequest,
  lookup: (cid: string) => Promise<{ bytes: Uint8Array, walk: boolean } | undefined>,
  stop: (cid: string) => boolean
): Promise<Uint8Array[]> {
  const queue = req.cids.map(c => c.toString())
  const sent = new Set<string>()
  const blocks: Uint8Array[] = []
  let size = 64
  const budget = Math.min(MAX_MESSAGE_BYTES, req.max ?? MAX_MESSAGE_BYTES)
  while (queue.length > 0 && blocks.length < MAX_REQUEST_CIDS) {
    const cid = queue.shift() as string
    if (sent.has(cid)) continue
    sent.add(cid)
    const found = await lookup(cid)
    if (found === undefined) continue
    const { bytes } = found
    if (size + bytes.byteLength + 16 > budget) {
      if (64 + bytes.byteLength + 16 > budget) continue // can never fit this budget: left out, the rest may
      break // the requester asks again for the rest
    }
    size += bytes.byteLength + 16
    blocks.push(bytes)
    if (!found.walk) continue
    try {
      const header = readBlockHeader(bytes)
      for (const c of header.chunks) queue.push(c.toString())
      for (const p of header.parents) if (!stop(p.toString())) queue.push(p.toString())
    } catch {
      // a chunk, a headset or the manifest: nothing to walk
    }
  }
  return blocks
}

async function answerSnapshotRequest (dbs: Map<string, Served>, data: Uint8Array, from: string): Promise<Uint8Array> {
  const req = decodeLogged(log, 'snapshot request', decodeSnapshotRequest, data, from)
  const served = dbs.get(req.db)
  // A replica that may not write offers none: joiners take snapshots from writers only.
  if (served === undefined || !served.replica.canWrite) return encodeSnapshotResponse({})
  const root = await served.snapshots.offer(req.blocks, from)
  return encodeSnapshotResponse(root !== undefined ? { root, ...await signSnapshotRoot(root, served.replica.signer, served.replica.link) } : {})
}
