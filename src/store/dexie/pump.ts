/**
 * Writing rows that are produced over time into one native IndexedDB transaction: the parts of a
 * snapshot install whose pages arrive from the network (docs/snapshots.md, "Joining").
 *
 * A transaction accepts requests only while it is active: in the task that opened it and in its
 * requests' event handlers. It commits once no request is pending. So the pump issues a part's
 * rows all at once (IndexedDB works fastest with many requests queued: letting only a few hundred
 * be pending at a time halved its rate in Chromium), has every 64th of them call it back, stages
 * the next part in the first callback after it arrives — while the rows before it are still being
 * written, not after them — and, with nothing to write, keeps the transaction open by reading one
 * absent key again and again (what `Dexie.waitFor` does, but its read queues behind every pending
 * write, so a part arriving would wait for all of them).
 */

/** One row write: a put of `value`, or a delete of `key`, in object store `store`. */
export type NativeWrite = [store: string, value: unknown, key?: IDBValidKey]

/** Issue one write as a request of `tx`. */
export function issueWrite (tx: IDBTransaction, [store, value, key]: NativeWrite): IDBRequest {
  return key === undefined ? tx.objectStore(store).put(value) : tx.objectStore(store).delete(key)
}

/** Every how many requests one calls the pump back: a part that arrives waits for at most this many writes before it is staged. */
const CALLBACK_EVERY = 64

/** What `pumpParts` needs besides its transaction. */
export interface PumpOptions<P> {
  /** resolves the next part, or undefined after the last; a rejection fails the pump */
  next: () => Promise<P | undefined>
  /** stages a part (synchronously, in an active window of the transaction): its rows, in order */
  take: (part: P) => NativeWrite[]
  /** an object store of the transaction to read from while waiting (the key read is absent) */
  idleStore: string
  /** ms to wait for one part before failing with `timeout()`'s error */
  waitMs: number
  /** the error a part that does not come within `waitMs` fails the pump with */
  timeout: () => Error
}

/**
 * Take parts from `opts.next` as they come and write their rows (`opts.take`) in `tx`, in order.
 * Call it while `tx` is active. Resolves once the last part's rows are all written; rejects with
 * the first failure (`next` rejected, `take` threw, a request failed, a part did not come in time),
 * after which nothing more is issued (the caller aborts the transaction).
 */
export async function pumpParts<P> (tx: IDBTransaction, opts: PumpOptions<P>): Promise<void> {
  return await new Promise<void>((resolve, reject) => {
    const ready: P[] = []
    let ended = false
    let failed = false
    let inFlight = 0
    let idle = false
    let waitingSince = Date.now()

    const fail = (err: unknown): void => {
      if (failed) return
      failed = true
      reject(err instanceof Error ? err : new Error(String(err)))
    }
    // Ask for parts one after another, as soon as each arrives (outside any active window: only queued here).
    const ask = (): void => {
      opts.next().then(part => {
        if (failed) return
        if (part === undefined) ended = true
        else {
          ready.push(part)
          ask()
        }
      }, fail)
    }
    const pump = (): void => {
      if (failed) return
      try {
        for (let part = ready.shift(); part !== undefined; part = ready.shift()) {
          const rows = opts.take(part)
          waitingSince = Date.now()
          // Every CALLBACK_EVERY-th request and the last call back: a part arriving meanwhile is taken then.
          rows.forEach((row, i) => {
            const request = issueWrite(tx, row)
            if (i % CALLBACK_EVERY !== CALLBACK_EVERY - 1 && i !== rows.length - 1) return
            inFlight++
            request.onsuccess = () => { inFlight--; pump() }
            request.onerror = () => { fail(request.error ?? new DOMException('write failed', 'AbortError')) }
          })
        }
      } catch (err) {
        fail(err)
        return
      }
      if (inFlight > 0 || idle) return
      if (ended && ready.length === 0) {
        resolve()
        return
      }
      if (Date.now() - waitingSince > opts.waitMs) {
        fail(opts.timeout())
        return
      }
      idle = true
      const request = tx.objectStore(opts.idleStore).get([])
      request.onsuccess = () => { idle = false; pump() }
      request.onerror = () => { fail(request.error ?? new DOMException('read failed', 'AbortError')) }
    }
    ask()
    pump()
  })
}
