/**
 * Making a snapshot (docs/snapshots.md) from a replica's complete state: its pages, covered lists
 * and root, encoded (`format.ts`). What is offered, when, and to whom is `serve.ts`'s.
 */
import { type CID, type EncodedChunk, parseCid } from '../../crdt/index.js'
import { type SnapshotNode, type SnapshotPage, encodeSizedNode } from './format.js'

/** Pages are filled to about this many bytes of content before compression (estimated from the page before; one over 1 MiB is split). */
const PAGE_TARGET_BYTES = 512 * 1024
/** CIDs per covered list (a CID link is about 41 bytes: about 820 KB per list). */
const COVERED_PER_NODE = 20_000

/** A snapshot made by this replica: its root, and the bytes of every node by CID string. */
export interface BuiltSnapshot {
  root: CID
  /** root, pages and covered lists */
  nodes: Map<string, Uint8Array>
  /** CID strings of every block at or below its heads */
  covered: Set<string>
  /** heads it was taken at (sorted CID strings) */
  heads: string[]
}

/**
 * Make the snapshot of database `dbId` from a replica's complete state: pages of at most 1 MiB in
 * (collection, id) order, covered lists, and the root. Rejects with `InvalidBlockError` when a
 * single document's state does not fit in a page.
 */
export async function buildSnapshot (dbId: string, source: { heads: string[], docs: SnapshotPage['docs'], colls: SnapshotPage['colls'], blocks: string[] }, key?: Uint8Array): Promise<BuiltSnapshot> {
  const nodes = new Map<string, Uint8Array>()
  const sealing = key !== undefined ? { db: dbId, key } : undefined
  const add = async (node: SnapshotNode): Promise<EncodedChunk & { content: number }> => {
    const encoded = await encodeSizedNode(node, sealing)
    nodes.set(encoded.cid.toString(), encoded.bytes)
    return encoded
  }
  const pages: CID[] = []
  /** content bytes of the last page encoded, per document */
  let perDoc = 0
  const flush = async (docs: SnapshotPage['docs'], colls: SnapshotPage['colls']): Promise<void> => {
    try {
      const { cid, content } = await add({ kind: 'page', docs, colls })
      pages.push(cid)
      if (docs.length > 0) perDoc = content / docs.length
    } catch (err) {
      // Larger documents than the pages before: split the page in two (one document over 1 MiB cannot be).
      if (docs.length < 2) throw err
      const half = docs.length >>> 1
      await flush(docs.slice(0, half), colls)
      await flush(docs.slice(half), [])
    }
  }
  // Pages hold as many documents as fit in PAGE_TARGET_BYTES at the size per document of the
  // page before (the first page: 256 documents).
  let colls = source.colls
  for (let start = 0; start < source.docs.length || colls.length > 0;) {
    const count = perDoc > 0 ? Math.max(1, Math.floor(PAGE_TARGET_BYTES / perDoc)) : 256
    await flush(source.docs.slice(start, start + count), colls)
    colls = []
    start += count
  }
  const covered: CID[] = []
  for (let i = 0; i < source.blocks.length; i += COVERED_PER_NODE) {
    covered.push((await add({ kind: 'covered', cids: source.blocks.slice(i, i + COVERED_PER_NODE).map(c => parseCid(c) as CID) })).cid)
  }
  const { cid: root } = await add({
    kind: 'root',
    db: dbId,
    heads: source.heads.map(h => parseCid(h) as CID),
    pages,
    covered,
    docs: source.docs.length,
    blocks: source.blocks.length
  })
  return { root, nodes, covered: new Set(source.blocks), heads: source.heads }
}
