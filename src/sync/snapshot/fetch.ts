/**
 * Fetching a snapshot (docs/snapshots.md): its nodes asked for in parallel batches from one peer,
 * each verified against its CID and decoded as it arrives, and the whole checked to add up before
 * a replica installs it (`Replica.installSnapshot`).
 */
import { InvalidBlockError, NetworkError } from '../../errors.js'
import { type CID, type EncodedBlock, type EncodedChunk, compareDocKeys, decodeBlock, decodeChunk } from '../../crdt/index.js'
import { type SnapshotContent } from '../replica.js'
import { type SnapshotPage, type SnapshotRoot, decodeSnapshotNode } from './format.js'

/** Nodes asked for in one request while fetching a snapshot (≤ 1 MiB each: an answer stays under 4 MiB). */
const FETCH_NODES = 2
/** Requests in flight while fetching a snapshot. */
const FETCH_PARALLEL = 3

/** Progress of fetching a snapshot's nodes. */
export interface SnapshotFetchProgress {
  /** CID string of its root */
  root: string
  /** nodes known so far (root, pages, covered lists, head blocks and their chunks) */
  nodes: number
  /** nodes fetched and verified */
  fetched: number
  /** documents in the snapshot (0 until the root is fetched) */
  documents: number
}

/** How a joiner checks a snapshot beyond its hashes: the database key, and who may have written its head blocks. */
export interface SnapshotTrust {
  /** the database key of an encrypted database (every node and head block must be sealed with it) */
  key?: Uint8Array
  /** whether a head block's writer may write (default: any correctly signed writer) */
  mayWrite?: (writer: Uint8Array) => boolean
  /** the link public key of a link-secret database: every head block must carry the link signature */
  link?: Uint8Array
}

/**
 * Fetch, verify and assemble the snapshot with root `root` of database `dbId`. `fetch` asks a peer
 * for nodes by CID and returns the bytes it got, by CID string, unverified (a subset, possibly
 * empty). Every node is checked against its CID and decoded totally; the whole must be consistent:
 * pages in (collection, id) order adding up to the root's count, covered lists adding up to its
 * count, every head and every head's parent covered, blocks of this database. `onPage` sees
 * each page as soon as it is verified against its CID and decoded (the whole is checked later). Throws
 * `InvalidBlockError` for an invalid snapshot, `NetworkError` when the peer stops supplying nodes.
 */
export async function fetchSnapshot (
  dbId: string,
  root: CID,
  fetch: (cids: CID[]) => Promise<Map<string, Uint8Array>>,
  onProgress: (p: SnapshotFetchProgress) => void,
  trust: SnapshotTrust = {},
  onPage?: (page: SnapshotPage) => void
): Promise<SnapshotContent> {
  const sealing = trust.key !== undefined ? { db: dbId, key: trust.key } : undefined
  const opened = trust.key !== undefined ? { key: trust.key } : {}
  const openedHead = trust.link !== undefined ? { ...opened, link: trust.link } : opened
  const progress: SnapshotFetchProgress = { root: root.toString(), nodes: 1, fetched: 0, documents: 0 }
  /** nodes still wanted, by CID string, with what to do with their bytes */
  const want = new Map<string, { cid: CID, take: (bytes: Uint8Array) => void | Promise<void> }>()
  // FETCH_PARALLEL requests of FETCH_NODES nodes each in flight. A worker asks for its next batch
  // as soon as an answer arrives, and the answer's nodes are verified and decoded meanwhile
  // (`taking`): the peer sends while this replica decodes.
  const inFlight = new Set<string>()
  const taking: Array<Promise<void>> = []
  const failures: unknown[] = []
  let stop = false
  /** a node asked for alone: the first page, so the first screenful does not wait for a second page's bytes */
  let alone: string | undefined
  const worker = async (): Promise<void> => {
    while (!stop) {
      let batch = [...want.values()].filter(w => !inFlight.has(w.cid.toString())).slice(0, FETCH_NODES)
      if (batch.length === 0) return
      if (batch[0].cid.toString() === alone) batch = batch.slice(0, 1)
      // A batch stays in flight until answered, so no other worker asks for it meanwhile.
      for (const w of batch) inFlight.add(w.cid.toString())
      let supplied = 0
      try {
        const answer = await fetch(batch.map(w => w.cid))
        for (const w of batch) {
          const bytes = answer.get(w.cid.toString())
          if (bytes === undefined) continue
          want.delete(w.cid.toString())
          supplied++
          taking.push((async () => { await w.take(bytes) })().then(() => {
            progress.fetched++
            onProgress({ ...progress })
          }, err => {
            stop = true
            failures.push(err)
          }))
        }
      } finally {
        for (const w of batch) inFlight.delete(w.cid.toString())
      }
      if (supplied === 0) throw new NetworkError(`the peer stopped supplying snapshot ${root.toString()} (${want.size} nodes left)`)
    }
  }
  const got = async (): Promise<void> => {
    // A head block taken names its chunks: they are wanted next.
    while (want.size > 0 || taking.length > 0) {
      const results = await Promise.allSettled(Array.from({ length: FETCH_PARALLEL }, async () => {
        try {
          await worker()
        } catch (err) {
          stop = true
          throw err
        }
      }))
      await Promise.all(taking.splice(0))
      for (const r of results) if (r.status === 'rejected') failures.push(r.reason)
      // An invalid node outweighs a network failure: the snapshot is refused rather than retried.
      const failure = failures.find(err => err instanceof InvalidBlockError) ?? failures[0]
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- what a worker threw, passed on as it is
      if (failure !== undefined) throw failure
    }
  }
  let rootNode: SnapshotRoot | undefined
  want.set(root.toString(), {
    cid: root,
    take: async bytes => {
      const node = await decodeSnapshotNode(bytes, root, sealing)
      if (node.kind !== 'root') throw new InvalidBlockError(`snapshot ${root.toString()} is not a root`)
      if (node.db !== dbId) throw new InvalidBlockError(`snapshot belongs to database ${node.db}, not ${dbId}`)
      rootNode = node
    }
  })
  await got()
  const r = rootNode as SnapshotRoot
  const named = [...r.pages, ...r.covered, ...r.heads].map(c => c.toString())
  if (r.heads.length === 0 || new Set(named).size !== named.length) throw new InvalidBlockError('snapshot root has no heads, or names a node twice')
  progress.documents = r.docs
  alone = r.pages[0]?.toString()
  const pages: Array<SnapshotPage | undefined> = r.pages.map(() => undefined)
  const covered: Array<CID[] | undefined> = r.covered.map(() => undefined)
  const heads: Array<EncodedBlock | undefined> = r.heads.map(() => undefined)
  r.pages.forEach((cid, i) => {
    want.set(cid.toString(), {
      cid,
      take: async bytes => {
        const node = await decodeSnapshotNode(bytes, cid, sealing)
        if (node.kind !== 'page') throw new InvalidBlockError(`snapshot page ${cid.toString()} is a ${node.kind}`)
        pages[i] = node
        onPage?.(node)
      }
    })
  })
  r.covered.forEach((cid, i) => {
    want.set(cid.toString(), {
      cid,
      take: async bytes => {
        const node = await decodeSnapshotNode(bytes, cid, sealing)
        if (node.kind !== 'covered') throw new InvalidBlockError(`snapshot covered list ${cid.toString()} is a ${node.kind}`)
        covered[i] = node.cids
      }
    })
  })
  r.heads.forEach((cid, i) => {
    want.set(cid.toString(), {
      cid,
      take: async bytes => {
        const head = await decodeBlock(bytes, cid, openedHead)
        if (trust.mayWrite !== undefined && !trust.mayWrite(head.block.writer)) throw new InvalidBlockError(`snapshot head ${cid.toString()} is by a writer not on the write list`)
        if (head.block.db !== dbId) throw new InvalidBlockError(`snapshot head ${cid.toString()} belongs to database ${head.block.db}`)
        heads[i] = head
        const chunks: EncodedChunk[] = []
        if (head.block.chunks !== undefined) head.chunks = chunks
        head.block.chunks?.forEach((chunk, n) => {
          progress.nodes++
          want.set(chunk.toString(), {
            cid: chunk,
            take: chunkBytes => {
              decodeChunk(chunkBytes, chunk, dbId, opened)
              chunks[n] = { cid: chunk, bytes: chunkBytes }
            }
          })
        })
      }
    })
  })
  progress.nodes += want.size
  onProgress({ ...progress })
  await got()

  // The whole must add up.
  const docs = (pages as SnapshotPage[]).flatMap(p => p.docs)
  if (docs.length !== r.docs) throw new InvalidBlockError(`snapshot pages hold ${docs.length} documents, its root says ${r.docs}`)
  for (let i = 1; i < docs.length; i++) {
    if (compareDocKeys(docs[i - 1], docs[i]) >= 0) throw new InvalidBlockError('snapshot pages are out of (collection, id) order')
  }
  const colls = (pages as SnapshotPage[]).flatMap(p => p.colls)
  if (new Set(colls.map(c => c.coll)).size !== colls.length) throw new InvalidBlockError('snapshot repeats a collection')
  const coveredCids = (covered as CID[][]).flat().map(c => c.toString())
  const coveredSet = new Set(coveredCids)
  if (coveredCids.length !== r.blocks || coveredSet.size !== coveredCids.length) throw new InvalidBlockError(`snapshot covers ${coveredSet.size} distinct blocks, its root says ${r.blocks}`)
  for (const head of heads as EncodedBlock[]) {
    for (const c of [head.cid, ...head.block.parents]) {
      if (!coveredSet.has(c.toString())) throw new InvalidBlockError(`snapshot does not cover ${c.toString()}, a head or a head's parent`)
    }
  }
  return { root: root.toString(), docs, colls, covered: coveredCids, heads: heads as EncodedBlock[] }
}
