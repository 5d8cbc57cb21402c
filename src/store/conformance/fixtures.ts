/**
 * What the storage conformance cases share: blocks with real CIDs, the merges a replica would pass
 * (built from the CRDT rules of `crdt/`, not from the replication engine), and a storage opened
 * on a fresh database of the provider under test that is closed and destroyed afterwards.
 */
import {
  type Block, type CollState, type DocState, type Op, Fold, applyBlockOps, cidOf, compareDocKeys, encode, joinSnapshotStates, touchedBy
} from '../../crdt/index.js'
import { type KeyRange, RANK, compareKeys, inRange, indexKeys } from '../keys.js'
import {
  type ApplyBlockInput, type DocKey, type IndexEntry, type InstallSnapshotInput, type MergeInput, type MergeOutput, type Storage, type StorageProvider, type StoredNode, docKey, fillBefore
} from '../storage.js'

/** Options of `storageConformance`. */
export interface StorageConformanceOptions {
  /**
   * Documents the index-build cases write before declaring an index (default 1100, more than
   * one build batch of the bundled implementations)
   */
  buildDocs?: number
}

/** What every case gets. */
export interface SuiteContext {
  makeProvider: () => StorageProvider | Promise<StorageProvider>
  options: Required<StorageConformanceOptions>
}

/** Every key of an index: a range over all of them. */
export const ALL: KeyRange = { lower: [], upper: [[RANK.max]] }

/** A content-addressed node: dag-cbor bytes and their CID string. */
export type TestNode = StoredNode

/** A node whose bytes encode `label` (distinct labels, distinct CIDs). */
export function testNode (label: string): TestNode {
  const bytes = encode({ conformance: label })
  return { cid: cidOf(bytes).toString(), bytes }
}

/** A fresh database id (a CID string, as manifest CIDs are), so cases never share data. */
export function freshDbId (): string {
  return testNode(`db ${Date.now()} ${Math.random()}`).cid
}

/** A block of the suite: its node, its parents' CID strings, its ops and the wall time of its stamps. */
export interface TestBlock extends TestNode {
  parents: string[]
  ops: Op[]
  t: number
}

let clock = 0

/** A block with `ops` on `parents`; its stamps come after those of every block made before it. */
export function testBlock (label: string, parents: Array<string | TestNode>, ops: Op[]): TestBlock {
  return { ...testNode(label), parents: parents.map(p => typeof p === 'string' ? p : p.cid), ops, t: ++clock }
}

/** The HLC and ops of a test block: its stamps are `[t, 0, 'conformance', cid, opIndex]`. */
function blockOf (b: TestBlock): Pick<Block, 'hlc' | 'ops'> {
  return { hlc: { t: b.t, c: 0, r: 'conformance' }, ops: b.ops }
}

/** Options of `applyInput`. */
export interface ApplyOptions {
  nodes?: StoredNode[]
  local?: boolean
  expectAbsent?: boolean
  /** sees the merge input before the merge uses it */
  seen?: (input: MergeInput) => void
  /** the merge throws this once it has filled `before` (as a failed check of a local write does) */
  fail?: Error
}

/**
 * The `applyBlock` input of a block: its documents and collections, and a merge that applies its
 * ops to the states given, as a replica's does (filling `before`, which the storage reads).
 */
export function applyInput (b: TestBlock, options: ApplyOptions = {}): ApplyBlockInput {
  return {
    cid: b.cid,
    bytes: b.bytes,
    parents: b.parents,
    ...touchedBy(b.ops),
    ...(options.nodes !== undefined ? { nodes: options.nodes } : {}),
    ...(options.local !== undefined ? { local: options.local } : {}),
    ...(options.expectAbsent !== undefined ? { expectAbsent: options.expectAbsent } : {}),
    merge: (input: MergeInput): MergeOutput => {
      options.seen?.(input)
      fillBefore(input)
      if (options.fail !== undefined) throw options.fail
      return applyBlockOps(input.docs, input.colls, blockOf(b), b.cid)
    }
  }
}

/** The states a replica holds after applying `blocks` (in any order): documents in (collection, id) order, collections by name. */
export function fold (blocks: TestBlock[]): { docs: Array<DocKey & { state: DocState }>, colls: Array<{ coll: string, state: CollState }> } {
  const states = new Fold()
  for (const b of blocks) states.add(b.cid, blockOf(b))
  return {
    docs: states.docList().sort(compareDocKeys),
    colls: states.collList().sort((a, b) => a.coll < b.coll ? -1 : a.coll > b.coll ? 1 : 0)
  }
}

/** Options of `installInput`. */
export interface InstallOptions {
  docs: Array<DocKey & { state: DocState }>
  colls?: Array<{ coll: string, state: CollState }>
  covered?: string[]
  heads?: TestNode[]
  nodes?: StoredNode[]
  /** `'join'` (default): join the given states into the local ones, as a snapshot install; `'replace'`: write them as they are, as a repair */
  mode?: 'join' | 'replace'
  seen?: (input: MergeInput) => void
  fail?: Error
}

/** The `installSnapshot` input of states, covered CIDs and head blocks, with a merge as a replica's. */
export function installInput (o: InstallOptions): InstallSnapshotInput {
  const mode = o.mode ?? 'join'
  const nextDocs = new Map(o.docs.map(d => [docKey(d.coll, d.id), d.state]))
  const nextColls = new Map((o.colls ?? []).map(c => [c.coll, c.state]))
  return {
    keys: o.docs.map(d => ({ coll: d.coll, id: d.id })),
    colls: [...new Set([...nextColls.keys(), ...o.docs.map(d => d.coll)])],
    dropped: (o.colls ?? []).filter(c => mode === 'replace' || c.state.dropped !== undefined).map(c => c.coll),
    covered: o.covered ?? [],
    heads: (o.heads ?? []).map(h => ({ cid: h.cid, bytes: h.bytes })),
    ...(o.nodes !== undefined ? { nodes: o.nodes } : {}),
    merge: (input: MergeInput): MergeOutput => {
      o.seen?.(input)
      fillBefore(input)
      if (o.fail !== undefined) throw o.fail
      return joinSnapshotStates(input.docs, input.colls, nextDocs, nextColls, mode)
    }
  }
}

/** Every entry an index over `paths` must hold within `range`, from the documents themselves, in (key, id) order. */
export async function expectedEntries (storage: Storage, coll: string, paths: string[], range: KeyRange = ALL): Promise<IndexEntry[]> {
  const out: IndexEntry[] = []
  for (const d of await storage.getDocs(coll)) for (const key of indexKeys(d, paths)) if (inRange(key, range)) out.push({ key, id: d._id })
  return out.sort(compareEntries)
}

/** (key, id) order of index entries. */
export function compareEntries (a: IndexEntry, b: IndexEntry): number {
  return compareKeys(a.key, b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** A storage on a fresh database of a fresh provider, and what a case needs around it. */
export class StorageEnv {
  readonly provider: StorageProvider
  readonly dbId: string
  storage!: Storage
  private readonly opened: Storage[] = []
  private readonly dbIds = new Set<string>()

  private constructor (provider: StorageProvider, dbId: string) {
    this.provider = provider
    this.dbId = dbId
  }

  /** Open a storage of database `dbId` (remembered, to be closed and destroyed by `dispose`). */
  async open (dbId: string): Promise<Storage> {
    this.dbIds.add(dbId)
    const storage = await this.provider.open(dbId)
    this.opened.push(storage)
    return storage
  }

  /** Close the storage and open the same database again. */
  async reopen (): Promise<Storage> {
    await this.storage.close()
    this.storage = await this.open(this.dbId)
    return this.storage
  }

  /** Close every storage opened and destroy every database (errors ignored: the case's own checks have run). */
  async dispose (): Promise<void> {
    for (const s of this.opened) await s.close().catch(() => {})
    for (const id of this.dbIds) await this.provider.destroy(id).catch(() => {})
  }

  /** Run `fn` with a storage on a fresh database, then dispose. */
  static async run (ctx: SuiteContext, fn: (env: StorageEnv) => Promise<void>): Promise<void> {
    const env = new StorageEnv(await ctx.makeProvider(), freshDbId())
    try {
      env.storage = await env.open(env.dbId)
      await fn(env)
    } finally {
      await env.dispose()
    }
  }
}

/** Apply `b` (with `options`) and return the result. */
export async function apply (storage: Storage, b: TestBlock, options?: ApplyOptions): ReturnType<Storage['applyBlock']> {
  return await storage.applyBlock(applyInput(b, options))
}

/** `cids` sorted, as storages return CID lists. */
export function sorted (cids: Array<string | TestNode>): string[] {
  return cids.map(c => typeof c === 'string' ? c : c.cid).sort()
}

/** Everything a storage shows, with the documents and indexes of `colls`: what a failed write must leave as it was. */
export async function everything (storage: Storage, colls: string[]): Promise<unknown> {
  const out: Record<string, unknown> = {
    heads: await storage.getHeads(),
    missing: await storage.getMissing(),
    countBlocks: await storage.countBlocks(),
    collections: await storage.getCollections(),
    source: await storage.readSnapshotSource()
  }
  for (const coll of colls) {
    const indexes = await storage.listIndexes(coll)
    out[coll] = {
      docs: await storage.getDocs(coll),
      count: await storage.countDocs(coll),
      indexes,
      entries: await Promise.all(indexes.map(async i => await storage.scanIndex(coll, i.name, ALL)))
    }
  }
  return out
}
