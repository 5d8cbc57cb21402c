/**
 * The hand-over from a snapshot's fetch to its install (docs/snapshots.md, "Joining"): pages go
 * in as they are verified, then the whole snapshot or the failure; the install takes them out in
 * the order they went in (a `SnapshotStream` for `Replica.installSnapshot`).
 */
import { type SnapshotContent, type SnapshotStream } from '../replica.js'
import { type SnapshotPage } from './format.js'

type Item = Awaited<ReturnType<SnapshotStream['next']>>

/**
 * A first-in first-out queue of a snapshot's pages that ends with the snapshot (`end`) or an error
 * (`fail`). It holds every page not yet taken: the install takes a page while the fetch brings
 * the next, so it holds a few pages at most unless the storage falls behind the network.
 */
export class SnapshotPageQueue implements SnapshotStream {
  private readonly items: Item[] = []
  private failure: { err: unknown } | undefined
  private waiter: { resolve: (item: Item) => void, reject: (err: unknown) => void } | undefined

  /** A page, verified against its CID. */
  page (page: SnapshotPage): void {
    this.put({ page: { docs: page.docs, colls: page.colls } })
  }

  /** The snapshot, checked whole (its pages all given before). */
  end (content: SnapshotContent): void {
    this.put({ end: content })
  }

  /** The fetch failed: the install's next `next` rejects with `err` (the pages not taken are dropped). */
  fail (err: unknown): void {
    this.failure ??= { err }
    this.items.length = 0
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(err)
  }

  async next (): Promise<Item> {
    if (this.failure !== undefined) throw this.failure.err
    const item = this.items.shift()
    if (item !== undefined) return item
    if (this.waiter !== undefined) throw new Error('SnapshotPageQueue.next called again before the last call resolved')
    return await new Promise<Item>((resolve, reject) => { this.waiter = { resolve, reject } })
  }

  private put (item: Item): void {
    if (this.failure !== undefined) return
    const waiter = this.waiter
    this.waiter = undefined
    if (waiter !== undefined) waiter.resolve(item)
    else this.items.push(item)
  }
}
