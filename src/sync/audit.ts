/**
 * The audit of a snapshot join (docs/snapshots.md, "Audit"): a replica that joined from a
 * snapshot checks, in the background, that its states are what the history gives, and repairs
 * them when they are not.
 *
 * A snapshot is signed by a listed writer, and its root's CID commits to every node; but nothing
 * in it proves that its states are the fold of the blocks it covers: a writer can serve states it
 * invented (another writer's field rewritten, a write left out, a document added) while naming the
 * real heads, and a joiner would keep them for good, with the same heads as everyone else. So the
 * joiner, after the join (which stays as fast as before), fetches the covered blocks from its
 * peers, verifies each as any received block, folds them, together with every block it stores,
 * into fresh states, and compares those with its own:
 * - equal: the snapshot was honest (`'verified'`);
 * - different: the states of the documents and collections that differ are replaced by the
 *   history's, in one transaction, listeners see the change, and the mismatch is reported (a
 *   logged warning and `SnapshotMismatchError`, naming the producer's key) (`'repaired'`);
 * - covered blocks that no peer serves (only snapshot-joined peers around, or the producer
 *   withholds them): nothing is compared; the audit stays `'pending'`, says how many blocks it
 *   lacks, and is tried again later.
 *
 * Since a state is a function of the set of ops behind it (docs/snapshots.md, "Why it is
 * correct"), the fold of every block this replica has — covered or stored — is exactly what its
 * states must be. A covered CID that is not below the snapshot's heads (one listed to hide a real
 * block, which this replica would then never fetch) is folded like the others, so its effects end
 * up in the states, as its being covered claims.
 *
 * A covered block's parent that is neither covered, stored nor missing was left out of the
 * snapshot: an honest producer lacked it (a writer withheld it, so it was unavailable there), or a
 * dishonest one hid it. Either way the snapshot's states do not claim its effects, so it takes
 * no part in the comparison; it is fetched (with its own such ancestors) when some peer serves
 * it, its states joined in and it counted as covered (`Replica.coverBlocks`), as a replica that
 * replayed would apply it once served. Those not served yet are kept in the record
 * (`uncovered`) and asked for again by later runs.
 *
 * The record (`SnapshotAuditState`) is kept in storage meta, so an audit interrupted by a reload
 * is run again.
 */
import { InvalidBlockError, SnapshotMismatchError } from '../errors.js'
import {
  type Block, type CollState, type DocState, Fold, assembleOps, cidOf, decodeBlock, decodeChunk, docKey, parseCid, sameCollState, sameDocState
} from '../crdt/index.js'
import { createLogger } from '../log.js'
import { type Replica } from './replica.js'

const log = createLogger('audit')

/** Storage meta key of the audit record. */
const AUDIT_KEY = 'snapshotAudit'
/** CIDs asked for in one request by the audit. */
const AUDIT_BATCH = 256

/** Where the audit of the snapshot this replica joined from stands. */
export interface SnapshotAuditState {
  /** CID string of the snapshot's root */
  root: string
  /** `'pending'`: not done yet (or blocks are lacking); `'verified'`: the states were the history's; `'repaired'`: they were not, and now are */
  status: 'pending' | 'verified' | 'repaired'
  /** the producer's writer key (as `formatPublicKey` writes it), which signed the root */
  producer: string
  /** the peer that served the snapshot */
  peer: string
  /** blocks no peer served at the last attempt: covered ones while pending, else those of `uncovered` */
  lacking: number
  /** when repaired: documents and collections whose state differed */
  differences: number
  /**
   * ancestors of covered blocks that the snapshot did not cover and no peer served yet (an
   * honest producer lacked them too: withheld by their writer, say); asked for again later
   */
  uncovered: string[]
}

/** What `SnapshotAudit.walk` fetched and folded. */
interface Walk {
  fold: Fold
  /** CIDs folded */
  blocks: string[]
  /** parents of folded blocks outside the walk (not known, not among the start) */
  uncovered: string[]
  /** CIDs no peer served */
  lacking: string[]
}

/**
 * Asks peers for blocks by CID string: resolves with what they served (verified or not; possibly
 * more than asked, possibly nothing). Never rejects for a network failure: what failed is absent.
 */
export type BlockFetcher = (cids: string[]) => Promise<Map<string, Uint8Array>>

/** Audits the snapshot join of one replica; see the module comment. */
export class SnapshotAudit {
  readonly replica: Replica

  constructor (replica: Replica) {
    this.replica = replica
  }

  /** Record that this replica joined from snapshot `root`, produced by writer `producer` and served by `peer`: an audit is pending. */
  async begin (root: string, producer: string, peer: string): Promise<void> {
    const record: SnapshotAuditState = { root, status: 'pending', producer, peer, lacking: 0, differences: 0, uncovered: [] }
    await this.replica.storage.setMeta(AUDIT_KEY, record)
  }

  /** The audit record, or undefined when this replica never joined from a snapshot (or joined before audits existed). */
  async state (): Promise<SnapshotAuditState | undefined> {
    return await this.replica.storage.getMeta<SnapshotAuditState>(AUDIT_KEY)
  }

  /**
   * Run a pending audit once, fetching with `fetch`: resolves with the record after it (unchanged
   * when there is nothing to do). A repair is reported by resolving with status `'repaired'` and
   * by `onMismatch`. Covered blocks that could not be fetched leave it pending; ancestors of
   * covered blocks that were not covered and could not be fetched leave it with `lacking` set,
   * and are fetched by a later run (see the module comment).
   */
  async run (fetch: BlockFetcher, onMismatch?: (err: SnapshotMismatchError) => void): Promise<SnapshotAuditState | undefined> {
    const record = await this.state()
    if (record === undefined || (record.status !== 'pending' && record.uncovered.length === 0)) return record
    const known = new Set(await this.replica.missing())
    const covered = new Fold()
    let extra: Walk
    let status = record.status
    let differences = record.differences
    if (record.status === 'pending') {
      const source = await this.replica.storage.readSnapshotSource()
      const stored = await this.replica.storage.getBlocks(source.blocks)
      for (const c of source.blocks) known.add(c)
      const walk = await this.walk(source.blocks.filter((_, i) => stored[i] === undefined), known, fetch, covered)
      if (walk.lacking.length > 0) {
        const next: SnapshotAuditState = { ...record, lacking: walk.lacking.length }
        await this.replica.storage.setMeta(AUDIT_KEY, next)
        log.warn(`audit of snapshot ${record.root}: ${walk.lacking.length} covered blocks no peer served yet; trying again later`)
        return next
      }
      // Ancestors of covered blocks that the snapshot did not cover: fetched as far as peers serve them.
      extra = await this.walk(walk.uncovered, known, fetch)
      const outcome = await this.replica.exclusive(async () => await this.compare(record, covered))
      if (outcome === undefined) return await this.state()
      differences = outcome
      status = differences > 0 ? 'repaired' : 'verified'
    } else {
      for (const c of (await this.replica.storage.readSnapshotSource()).blocks) known.add(c)
      extra = await this.walk(record.uncovered.filter(c => !known.has(c)), known, fetch)
    }
    // Blocks below the snapshot it did not cover (withheld by their writer, say, when it was made):
    // their effects join the states, and they count as covered from now on.
    if (extra.blocks.length > 0) {
      await this.replica.coverBlocks(extra.fold.docList(), extra.fold.collList(), extra.blocks)
      log.warn(`audit of snapshot ${record.root}: ${extra.blocks.length} blocks below it that it did not cover arrived and were folded in`)
    }
    const next: SnapshotAuditState = { ...record, status, differences, lacking: extra.lacking.length, uncovered: extra.lacking }
    await this.replica.storage.setMeta(AUDIT_KEY, next)
    if (extra.lacking.length > 0) log.warn(`audit of snapshot ${record.root}: ${extra.lacking.length} blocks below it, not covered by it, no peer served yet; asked for again later`)
    if (status === 'repaired' && record.status === 'pending') {
      const err = new SnapshotMismatchError(record.root, record.producer, record.peer, differences)
      log.warn(err.message)
      onMismatch?.(err)
    } else if (status === 'verified' && record.status === 'pending') {
      log.debug(`audit of snapshot ${record.root}: its states are the history's`)
    }
    return next
  }

  /**
   * Inside `exclusive`: fold every stored block into `fold` (which holds the covered ones), compare
   * with the states, and replace those that differ. Resolves with how many differed, or undefined
   * when the audit is no longer the one pending (another join replaced it).
   */
  private async compare (record: SnapshotAuditState, fold: Fold): Promise<number | undefined> {
    const current = await this.state()
    if (current?.root !== record.root || current.status !== 'pending') return undefined
    const source = await this.replica.storage.readSnapshotSource()
    const bytes = await this.replica.storage.getBlocks(source.blocks)
    for (const [i, cid] of source.blocks.entries()) {
      const b = bytes[i]
      if (b !== undefined && !fold.has(cid)) fold.add(cid, await this.storedBlock(b, cid))
    }
    const docs: Array<{ coll: string, id: string, state: DocState }> = []
    const seen = new Set<string>()
    for (const d of source.docs) {
      const k = docKey(d.coll, d.id)
      seen.add(k)
      const want = fold.docs.get(k)
      if (!sameDocState(want, d.state)) docs.push({ coll: d.coll, id: d.id, state: want ?? { f: {} } })
    }
    for (const d of fold.docList()) if (!seen.has(docKey(d.coll, d.id))) docs.push(d)
    const local = new Map(source.colls.map(c => [c.coll, c.state]))
    const colls: Array<{ coll: string, state: CollState }> = []
    for (const coll of new Set([...local.keys(), ...fold.colls.keys()])) {
      const want = fold.colls.get(coll)
      if (!sameCollState(want, local.get(coll))) colls.push({ coll, state: want ?? {} })
    }
    if (docs.length + colls.length > 0) await this.replica.rewriteStates(docs, colls)
    return docs.length + colls.length
  }

  /**
   * Fetch, verify and fold (into `fold`) the blocks `start`, then every parent of theirs not in
   * `known` (which grows with what is walked). Resolves with the CIDs folded, the parents of
   * folded blocks that are not in `known` nor walked (when `fold` is given: the walk stays within
   * `start` and reports them as `uncovered`), and what no peer served.
   */
  private async walk (start: string[], known: Set<string>, fetch: BlockFetcher, into?: Fold): Promise<Walk> {
    const fold = into ?? new Fold()
    const need = new Set(start)
    for (const c of start) known.add(c)
    const blocks: string[] = []
    const uncovered = new Set<string>()
    const lacking: string[] = []
    while (need.size > 0) {
      const batch = [...need].slice(0, AUDIT_BATCH)
      const got = await fetch(batch)
      let progress = false
      for (const cid of [...need]) {
        const bytes = got.get(cid)
        if (bytes === undefined) continue
        const block = await this.fetchedBlock(bytes, cid, got, fetch)
        if (block === undefined) continue
        need.delete(cid)
        progress = true
        fold.add(cid, block)
        blocks.push(cid)
        for (const p of block.parents) {
          const c = p.toString()
          if (known.has(c)) continue
          if (into !== undefined) {
            uncovered.add(c)
            continue
          }
          known.add(c)
          need.add(c)
        }
      }
      if (!progress) {
        for (const c of batch) {
          need.delete(c)
          lacking.push(c)
        }
      }
    }
    return { fold, blocks, uncovered: [...uncovered], lacking }
  }

  /** A fetched block verified as any received block (and its chunks, from `got` or fetched), or undefined (logged) when it is not valid or its chunks cannot be had. */
  private async fetchedBlock (bytes: Uint8Array, cid: string, got: Map<string, Uint8Array>, fetch: BlockFetcher): Promise<Block | undefined> {
    try {
      const encoded = await this.replica.verify(bytes, parseCid(cid))
      const chunks = encoded.block.chunks ?? []
      if (chunks.length === 0) return encoded.block
      const absent = chunks.map(c => c.toString()).filter(c => !got.has(c))
      const more = absent.length > 0 ? await fetch(absent) : new Map<string, Uint8Array>()
      const opened = this.replica.key !== undefined ? { key: this.replica.key } : {}
      const ops = chunks.map(c => {
        const chunk = got.get(c.toString()) ?? more.get(c.toString())
        if (chunk === undefined) throw new InvalidBlockError(`chunk ${c.toString()} not served`)
        return decodeChunk(chunk, c, this.replica.dbId, opened)
      })
      return { ...encoded.block, ops: assembleOps(encoded.block, ops) }
    } catch (err) {
      if (!(err instanceof InvalidBlockError)) throw err
      log.warn(`audit: covered block ${cid} not taken: ${err.message}`)
      return undefined
    }
  }

  /** A stored block (verified when it was stored) with its chunks' ops assembled. */
  private async storedBlock (bytes: Uint8Array, cid: string): Promise<Block> {
    const opened = this.replica.key !== undefined ? { key: this.replica.key } : {}
    const encoded = await decodeBlock(bytes, cidOf(bytes), opened)
    const chunks = encoded.block.chunks ?? []
    if (chunks.length === 0) return encoded.block
    const stored = await this.replica.storage.getBlocks(chunks.map(c => c.toString()))
    const ops = chunks.map((c, i) => {
      const chunk = stored[i]
      if (chunk === undefined) throw new InvalidBlockError(`stored block ${cid} lacks its chunk ${c.toString()}`)
      return decodeChunk(chunk, c, this.replica.dbId, opened)
    })
    return { ...encoded.block, ops: assembleOps(encoded.block, ops) }
  }
}
