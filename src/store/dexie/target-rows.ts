/**
 * The documents rows a write's own query just read (`Storage.read` with `forWrite`: an update or
 * delete finds its targets, then writes them), kept so the write's fast path (write.ts) takes
 * their states from them instead of reading each again inside its transaction. It is what lets
 * the write cache stay small (docs/design.md, "Storage"): an `updateMany` over more documents than
 * the cache holds reads them once, not twice.
 *
 * Rows are valid for a write only if no write of this storage began between the start of the read
 * that returned them and that write (`seq` moves at every write's start and end). The fast path's
 * own check of the stored generation covers every other writer (another tab), as it does for the
 * cache: rows read after this storage's last write describe the generation that write left.
 * Rows are dropped when the next write begins, so they live from a query to the write after it.
 */
import { Dexie } from 'dexie'
import { docKey } from '../storage.js'
import { type DocRow } from './schema.js'

/** Most rows kept at once (a larger write reads the rest in its transaction, as before). */
const MAX_ROWS = 2000

/** A read's rows, noted until its transaction ends (see `TargetRows.reading`). */
interface Capture { seq: number, rows: DocRow[] }

/** The rows of the last `forWrite` read (see the module comment). One per `DexieStorage`. */
export class TargetRows {
  /** moves at every write's start and end */
  private seq = 0
  /** writes in flight */
  private writing = 0

  /** A mark that moves at every write's start and end: a read made at one mark is current while it stays. */
  get mark (): number { return this.seq }
  /** rows read since the last write ended, by `docKey` */
  private rows = new Map<string, DocRow>()
  /** the `forWrite` reads in flight, by their Dexie transaction */
  private readonly captures = new WeakMap<object, Capture>()

  /**
   * Inside the Dexie transaction of a `forWrite` read, before its first request: note the rows it
   * reads (`saw`) from now on. Returns what to call once the read's function resolved: the rows
   * are kept then, unless a write began since the read did.
   */
  reading (): () => void {
    const tx = Dexie.currentTransaction
    if (tx === null || this.writing > 0) return () => {}
    const capture: Capture = { seq: this.seq, rows: [] }
    this.captures.set(tx, capture)
    return () => {
      this.captures.delete(tx)
      if (capture.seq !== this.seq) return
      for (const r of capture.rows) {
        if (this.rows.size >= MAX_ROWS) break
        this.rows.set(docKey(r.c, r.i), r)
      }
    }
  }

  /** Rows a read returned: noted if the read is a `forWrite` one (in its transaction's zone). */
  saw (rows: Iterable<DocRow | undefined>): void {
    const tx = Dexie.currentTransaction
    const capture = tx === null ? undefined : this.captures.get(tx)
    if (capture === undefined) return
    for (const r of rows) if (r !== undefined) capture.rows.push(r)
  }

  /**
   * A write of this storage begins: returns the rows kept for it (by `docKey`; read since the last
   * write ended) and forgets them. Call `writeEnds` when it ends, however it ends.
   */
  writeBegins (): Map<string, DocRow> {
    const rows = this.rows
    this.rows = new Map()
    this.writing++
    this.seq++
    return rows
  }

  /** The write `writeBegins` announced has ended (committed or not). */
  writeEnds (): void {
    this.writing--
    this.seq++
  }
}
