/**
 * A replica's block log: creates local blocks and applies local and remote blocks to storage,
 * one at a time, each in one storage transaction (go-ds-crdt's `crdt.go` loop, minus the network).
 */
import { InvalidBlockError } from '../errors.js'
import {
  type CID, type DocState, type EncodedBlock, type Op, HybridClock,
  applyOp, decodeBlock, encodeBlock, jsonEqual, materialise, parseCid, stampOf
} from '../crdt/index.js'
import { type DocChange, type DocKey, type DocRecord, type Storage } from '../store/index.js'

/** Where a change came from. */
export type ChangeOrigin = 'local' | 'remote'

/** Listener of document changes; called after the block's transaction committed. */
export type ChangeListener = (changes: DocChange[], origin: ChangeOrigin) => void

/** Result of applying one block. */
export interface Applied {
  cid: CID
  bytes: Uint8Array
  /** false when the block was already stored */
  applied: boolean
  changes: DocChange[]
  /** the block's parents */
  parents: CID[]
}

const REPLICA_ID_KEY = 'replicaId'

/** Random hex string of `bytes` bytes from the platform CSPRNG. */
export function randomHex (bytes: number): string {
  const buf = new Uint8Array(bytes)
  globalThis.crypto.getRandomValues(buf)
  return Array.from(buf, b => b.toString(16).padStart(2, '0')).join('')
}

/** The block log of one database in one storage. */
export class Replica {
  /** manifest CID string of the database */
  readonly dbId: string
  readonly storage: Storage
  readonly clock: HybridClock
  private queue: Promise<unknown> = Promise.resolve()
  private readonly listeners = new Set<ChangeListener>()

  private constructor (storage: Storage, dbId: string, clock: HybridClock) {
    this.storage = storage
    this.dbId = dbId
    this.clock = clock
  }

  /**
   * Open the log of database `dbId` in `storage`: loads (or creates) the persistent replica id and
   * advances the clock past every head, so new local blocks order after everything stored.
   */
  static async open (storage: Storage, dbId: string): Promise<Replica> {
    let replicaId = await storage.getMeta<string>(REPLICA_ID_KEY)
    if (replicaId === undefined) {
      replicaId = randomHex(8)
      await storage.setMeta(REPLICA_ID_KEY, replicaId)
    }
    const replica = new Replica(storage, dbId, new HybridClock(replicaId))
    const heads = await storage.getHeads()
    for (const bytes of await storage.getBlocks(heads)) {
      if (bytes !== undefined) replica.clock.observe(decodeBlock(bytes).block.hlc)
    }
    return replica
  }

  /** Listen to document changes. Returns a function that removes the listener. */
  onChange (listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Write `ops` as one new local block on top of the current heads and apply it.
   * `prepare` (optional) runs first inside the write queue and may throw to abort without writing
   * (e.g. a duplicate-key check that must not race other writes). When there are no ops, nothing
   * is written and `undefined` is returned.
   */
  async commit (ops: Op[] | (() => Promise<Op[]>)): Promise<Applied | undefined> {
    return await this.enqueue(async () => {
      const list = typeof ops === 'function' ? await ops() : ops
      if (list.length === 0) return undefined
      const heads = await this.storage.getHeads()
      const encoded = encodeBlock({
        v: 1,
        db: this.dbId,
        parents: heads.map(h => parseCid(h) as CID),
        hlc: this.clock.tick(),
        ops: list
      })
      return await this.apply(encoded, 'local')
    })
  }

  /**
   * Verify and apply a block received from the network. Throws `InvalidBlockError` when the bytes
   * are not a valid block of this database (or do not hash to `expected`); nothing is written then.
   */
  async receive (bytes: Uint8Array, expected?: CID): Promise<Applied> {
    const encoded = decodeBlock(bytes, expected)
    if (encoded.block.db !== this.dbId) throw new InvalidBlockError(`block belongs to database ${encoded.block.db}, not ${this.dbId}`)
    return await this.enqueue(async () => {
      this.clock.observe(encoded.block.hlc)
      return await this.apply(encoded, 'remote')
    })
  }

  /** Current heads (CID strings, sorted). */
  async heads (): Promise<string[]> { return await this.storage.getHeads() }

  /** CIDs named as parents but not stored yet. */
  async missing (): Promise<string[]> { return await this.storage.getMissing() }

  private async enqueue<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return await run
  }

  private async apply ({ cid, bytes, block }: EncodedBlock, origin: 'local' | 'remote'): Promise<Applied> {
    const cidText = cid.toString()
    const keys: DocKey[] = []
    const index = new Map<string, number>()
    for (const op of block.ops) {
      const k = `${op.coll}\u0000${op.id}`
      if (!index.has(k)) {
        index.set(k, keys.length)
        keys.push({ coll: op.coll, id: op.id })
      }
    }
    const result = await this.storage.applyBlock({
      cid: cidText,
      bytes,
      parents: block.parents.map(p => p.toString()),
      keys,
      merge: (states: Array<DocState | undefined>): DocRecord[] => {
        const next = [...states]
        block.ops.forEach((op, i) => {
          const at = index.get(`${op.coll}\u0000${op.id}`) as number
          next[at] = applyOp(next[at], op, stampOf(block.hlc, cidText, i))
        })
        return keys.map((k, i) => ({ ...k, state: next[i] as DocState, doc: materialise(next[i]) }))
      }
    })
    const changes = result.changes.filter(c => !jsonEqual(c.before, c.after))
    if (result.applied && changes.length > 0) {
      for (const l of this.listeners) {
        try { l(changes, origin) } catch (err) { console.error('[kitedb] change listener threw', err) }
      }
    }
    return { cid, bytes, applied: result.applied, changes, parents: block.parents }
  }
}
