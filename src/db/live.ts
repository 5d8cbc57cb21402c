/**
 * Live queries: one reactive primitive (after Dexie's `liveQuery`) usable three ways — a callback
 * (`Collection.observe(query, cb)`), an async iterator (`for await (const docs of live)`), or an
 * observable (`live.subscribe(observer)`, and RxJS `from(live)` through `Symbol.observable`).
 *
 * Each subscriber runs the query now and again after every change to the collection, coalesced
 * (changes within one microtask batch cause one run; a change during a run causes one more run),
 * and is told only when the result set actually changed.
 */
import { jsonEqual, type JsonValue } from '../crdt/index.js'
import { type Projection } from './types.js'
import { type FindOptions } from './collection.js'

/** Options of a live query: find options plus a projection. */
export interface LiveQueryOptions<T> extends FindOptions<T> {
  projection?: Projection<T>
}

/** Receives a live query's results. */
export interface Observer<V> {
  next?: (value: V) => void
  error?: (err: unknown) => void
  complete?: () => void
}

/** A running subscription. */
export interface Subscription {
  unsubscribe: () => void
  readonly closed: boolean
}

const observableSymbol: symbol = (typeof Symbol === 'function' && (Symbol as unknown as { observable?: symbol }).observable) || Symbol.for('@@observable')

/** A query whose results are pushed to subscribers whenever they change. */
export class LiveQuery<D> implements AsyncIterable<D[], undefined> {
  private readonly run: () => Promise<D[]>
  private readonly watch: (listener: () => void) => () => void

  /**
   * @param run evaluates the query
   * @param watch registers a listener called after every change that may affect it; returns unsubscribe
   */
  constructor (run: () => Promise<D[]>, watch: (listener: () => void) => () => void) {
    this.run = run
    this.watch = watch
  }

  /** Subscribe with an observer or a `next` function. The first result arrives asynchronously. */
  subscribe (observerOrNext: Observer<D[]> | ((value: D[]) => void)): Subscription {
    const observer: Observer<D[]> = typeof observerOrNext === 'function' ? { next: observerOrNext } : observerOrNext
    let closed = false
    let running = false
    let dirty = false
    let scheduled = false
    let last: D[] | undefined
    const evaluate = async (): Promise<void> => {
      if (running) { dirty = true; return }
      running = true
      try {
        do {
          dirty = false
          const docs = await this.run()
          if (closed) return
          if (last === undefined || !jsonEqual(last as unknown as JsonValue, docs as unknown as JsonValue)) {
            last = docs
            observer.next?.(docs)
          }
        } while (dirty && !closed)
      } catch (err) {
        if (!closed) observer.error?.(err)
      } finally {
        running = false
      }
    }
    const unwatch = this.watch(() => {
      if (scheduled || closed) return
      scheduled = true
      queueMicrotask(() => { scheduled = false; void evaluate() })
    })
    void evaluate()
    return {
      unsubscribe: () => {
        if (closed) return
        closed = true
        unwatch()
        observer.complete?.()
      },
      get closed () { return closed }
    }
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
