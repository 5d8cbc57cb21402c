/**
 * Live queries: one reactive primitive (after Dexie's `liveQuery`) usable three ways — a callback
 * (`Collection.observe(query, cb)`), an async iterator (`for await (const docs of live)`), or an
 * observable (`live.subscribe(observer)`, and RxJS `from(live)` through `Symbol.observable`).
 *
 * Each subscriber evaluates the query now and again after every change to the collection,
 * coalesced (changes within one microtask batch cause one evaluation; changes during one cause one
 * more), and is told only when the result set actually changed. An evaluator that can apply the
 * changed documents to its last result (`Evaluator.apply`) does so instead of reading again.
 */
import { jsonEqual, type JsonValue } from '../crdt/index.js'
import { type DocChange } from '../store/index.js'
import { type Projection } from './types.js'
import { type FindOptions } from './types.js'

/** Options of a live query: find options plus a projection. */
export interface LiveQueryOptions<T> extends FindOptions<T> {
  projection?: Projection<T>
  /**
   * What a new subscriber is called with at once, synchronously, while no result is known yet
   * (e.g. `[]`). Svelte's store contract wants that first synchronous call; without `initial`, the
   * first call comes with the first result, asynchronously. Once a result is known, every new
   * subscriber is called with the latest one at once, whether or not `initial` is set.
   */
  initial?: unknown[]
}

/** Receives a live query's results. */
export interface Observer<V> {
  next?: (value: V) => void
  error?: (err: unknown) => void
  complete?: () => void
}

/** A running subscription. */
/**
 * A running subscription: `unsubscribe()` stops it (RxJS's shape); the subscription is also
 * itself a function that stops it (Svelte's store contract wants a function back from `subscribe`).
 */
export interface Subscription {
  (): void
  unsubscribe: () => void
  readonly closed: boolean
}

const observableSymbol: symbol = (typeof Symbol === 'function' && (Symbol as unknown as { observable?: symbol }).observable) || Symbol.for('@@observable')

/** How one subscription evaluates its query. */
export interface Evaluator<D> {
  /** evaluate from storage */
  full: () => Promise<D[]>
  /**
   * Apply changed documents to the last result: the new result, `null` when it cannot have
   * changed, `undefined` when a full evaluation is needed.
   */
  apply?: (changes: DocChange[]) => D[] | null | undefined
}

/** A query whose results are pushed to subscribers whenever they change. */
export class LiveQuery<D> implements AsyncIterable<D[], undefined> {
  private readonly evaluator: () => Evaluator<D>
  private readonly watch: (listener: (changes: DocChange[]) => void) => () => void
  /** the latest result any subscription delivered, handed at once to new subscribers */
  private latest?: D[]

  /**
   * @param evaluator makes one subscription's evaluator
   * @param watch registers a listener called after every change that may affect the query, with
   *   the changed documents (all of them: see `CollectionHost.watch`); returns unsubscribe
   * @param initial see `LiveQueryOptions.initial`
   */
  constructor (evaluator: () => Evaluator<D>, watch: (listener: (changes: DocChange[]) => void) => () => void, initial?: D[]) {
    this.evaluator = evaluator
    this.watch = watch
    if (initial !== undefined) this.latest = initial
  }

  /**
   * Subscribe with an observer or a `next` function. A subscriber is called at once with the
   * latest result known (or `initial`), if any, then with every changed result (the first from
   * storage arrives asynchronously). Returns a `Subscription`; as a Svelte store, its
   * `unsubscribe` is what Svelte calls.
   */
  subscribe (observerOrNext: Observer<D[]> | ((value: D[]) => void)): Subscription {
    const observer: Observer<D[]> = typeof observerOrNext === 'function' ? { next: observerOrNext } : observerOrNext
    let closed = false
    let running = false
    let scheduled = false
    let last: D[] | undefined = this.latest
    if (last !== undefined) observer.next?.(last)
    const evaluator = this.evaluator()
    // Changes not evaluated yet, in commit order; `full` set: read everything again.
    let queued: DocChange[] = []
    let full = true
    const evaluate = async (): Promise<void> => {
      if (running) return
      running = true
      try {
        while ((full || queued.length > 0) && !closed) {
          let docs: D[] | null | undefined
          if (!full && evaluator.apply !== undefined) {
            const changes = queued
            queued = []
            docs = evaluator.apply(changes)
          }
          if (docs === undefined) {
            // Changes committed during the read may or may not be in it: they stay queued and are
            // applied again afterwards, which is harmless (each sets a document to its latest value).
            full = false
            docs = await evaluator.full()
          }
          if (closed) return
          if (docs !== null && (last === undefined || !jsonEqual(last as unknown as JsonValue, docs as unknown as JsonValue))) {
            last = docs
            this.latest = docs
            observer.next?.(docs)
          }
        }
      } catch (err) {
        if (!closed) observer.error?.(err)
      } finally {
        running = false
      }
    }
    const unwatch = this.watch(changes => {
      if (closed) return
      if (evaluator.apply === undefined) full = true
      else queued.push(...changes)
      if (scheduled) return
      scheduled = true
      queueMicrotask(() => { scheduled = false; void evaluate() })
    })
    void evaluate()
    const unsubscribe = (): void => {
      if (closed) return
      closed = true
      unwatch()
      observer.complete?.()
    }
    return Object.defineProperties(() => { unsubscribe() }, {
      unsubscribe: { value: unsubscribe },
      closed: { get: () => closed }
    }) as Subscription
  }

  /** Iterate over result sets: the current one, then each changed one (intermediate ones may be skipped). */
  [Symbol.asyncIterator] (): AsyncIterator<D[], undefined> {
    let latest: D[] | undefined
    let failure: { err: unknown } | undefined
    let wake: (() => void) | undefined
    const sub = this.subscribe({
      next: v => { latest = v; wake?.() },
      error: err => { failure = { err }; wake?.() }
    })
    return {
      next: async (): Promise<IteratorResult<D[], undefined>> => {
        while (latest === undefined && failure === undefined && !sub.closed) await new Promise<void>(resolve => { wake = resolve })
        wake = undefined
        if (failure !== undefined) { sub.unsubscribe(); throw failure.err }
        if (latest === undefined) return { done: true, value: undefined }
        const value = latest
        latest = undefined
        return { done: false, value }
      },
      return: async (): Promise<IteratorResult<D[], undefined>> => {
        sub.unsubscribe()
        wake?.()
        return { done: true, value: undefined }
      }
    }
  }

  /** Interop with RxJS and other observable libraries (`from(liveQuery)`). */
  [observableSymbol] (): this { return this }
}
