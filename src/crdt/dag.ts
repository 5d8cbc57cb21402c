/**
 * The DAG bookkeeping of a replica's storage: how the heads and `missing` (the CIDs stored blocks
 * name as parents that are not stored) move when a block is added (`dagUpdate`) or a snapshot is
 * installed (`snapshotDagUpdate`). Pure: a storage reads what they ask, and writes what they
 * return in the same transaction. Invariant: every CID a stored block names as a parent is stored,
 * covered by an installed snapshot, or in `missing` (docs/design.md, "Blocks"; docs/snapshots.md).
 */

/**
 * Heads and missing-set bookkeeping for adding one block to the DAG (go-ds-crdt `heads.go` does
 * the same job). Invariant: every CID a stored block names as a parent is either stored or in
 * `missing`. So a block arriving while it is in `missing` is referenced by a stored block and is
 * not a head; otherwise nothing stored points to it and it becomes a head.
 */
export function dagUpdate (cid: string, parents: string[], isStored: (cid: string) => boolean, wasMissing: boolean): {
  addHead: boolean, removeHeads: string[], addMissing: string[]
} {
  return {
    addHead: !wasMissing,
    removeHeads: parents,
    addMissing: parents.filter(p => p !== cid && !isStored(p))
  }
}

/** What `snapshotDagUpdate` reads of a storage, and the snapshot's DAG. */
export interface SnapshotDagInput {
  /** the current heads */
  heads: readonly string[]
  /** CID strings of the snapshot's head blocks */
  snapshotHeads: readonly string[]
  /** CID strings of every block at or below the snapshot's heads, heads included */
  covered: readonly string[]
  /** whether a CID is stored already (it is then neither stored nor recorded as covered again) */
  isStored: (cid: string) => boolean
  /** whether a CID is in `missing` */
  isMissing: (cid: string) => boolean
}

/** What installing a snapshot does to the DAG. */
export interface SnapshotDagUpdate {
  /** the heads after the install, sorted */
  heads: string[]
  /** snapshot heads not stored yet: stored as blocks */
  store: string[]
  /** covered CIDs neither stored nor a snapshot head: recorded as covered (present for the DAG, never fetched) */
  cover: string[]
  /** covered CIDs in `missing`: they leave it */
  found: string[]
}

/**
 * The DAG update of a snapshot install: heads below the snapshot (covered, and not its heads) stop
 * being heads; a snapshot head not stored before becomes one, unless a stored block names it (it
 * is in `missing`); covered CIDs leave `missing` for good.
 */
export function snapshotDagUpdate (input: SnapshotDagInput): SnapshotDagUpdate {
  const snapshotHeads = new Set(input.snapshotHeads)
  const covered = new Set(input.covered)
  const store = input.snapshotHeads.filter(h => !input.isStored(h))
  const heads = new Set(input.heads.filter(h => !covered.has(h) || snapshotHeads.has(h)))
  for (const h of store) if (!input.isMissing(h)) heads.add(h)
  return {
    heads: [...heads].sort(),
    store,
    cover: input.covered.filter(c => !input.isStored(c) && !snapshotHeads.has(c)),
    found: input.covered.filter(c => input.isMissing(c))
  }
}
