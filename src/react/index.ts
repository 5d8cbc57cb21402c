/**
 * React bindings (`kitedb/react`): hooks that open databases and collections and follow live
 * queries, each returning `{ data, loading, error }`. They are built on `useSyncExternalStore`, so
 * a render never mixes two results of one query (no tearing), a component re-renders only when a
 * result changes (live queries compare results before telling), and everything a hook opened or
 * subscribed is released when the last component using it unmounts. React 18 or 19 is a peer
 * dependency, not bundled.
 */
import { useMemo, useSyncExternalStore } from 'react'
import { KiteDB, type OpenOptions } from '../db/kitedb.js'
import { type Database } from '../db/database.js'
import { type Collection } from '../db/collection.js'
import { type LiveQueryOptions } from '../db/live.js'
import { type AnyDoc, type Filter, type WithId } from '../db/types.js'

/** What every hook returns: the value once there (`data`), whether it is on its way, and why it failed. */
export interface HookResult<T> {
  data: T | undefined
  loading: boolean
  error: Error | undefined
}

const LOADING: HookResult<never> = Object.freeze({ data: undefined, loading: true, error: undefined })

/** A value opened asynchronously, shared by the components that use it, released when the last one unmounts. */
class Shared<T> {
  private result: HookResult<T> = LOADING
  private readonly listeners = new Set<() => void>()
  private users = 0
  private opening?: Promise<T | undefined>
  private releaseTimer?: ReturnType<typeof setTimeout>

  constructor (private readonly open: () => Promise<T>, private readonly close: (value: T) => Promise<void> | void, private readonly onIdle: () => void) {}

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener)
    this.users++
    if (this.releaseTimer !== undefined) { clearTimeout(this.releaseTimer); this.releaseTimer = undefined }
    this.opening ??= this.open().then(value => { this.set({ data: value, loading: false, error: undefined }); return value }, (err: Error) => {
      this.set({ data: undefined, loading: false, error: err })
      return undefined
    })
    return () => {
      this.listeners.delete(listener)
      if (--this.users > 0) return
      // React may unmount and mount again at once (StrictMode, a key change): release a moment later.
      this.releaseTimer = setTimeout(() => {
        if (this.users > 0) return
        this.onIdle()
        void this.opening?.then(async value => { if (value !== undefined) await this.close(value) })
      }, 0)
    }
  }

  readonly getSnapshot = (): HookResult<T> => this.result

  private set (result: HookResult<T>): void {
    this.result = result
    for (const l of this.listeners) l()
  }
}

/** A stable text for options: JSON, with every non-plain object (a storage provider, a transport) by identity. */
const identities = new WeakMap<object, number>()
let nextIdentity = 0
function keyOf (value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof RegExp) return `RegExp(${String(v)})`
    if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype) return v
    let id = identities.get(v)
    if (id === undefined) identities.set(v, id = ++nextIdentity)
    return `#${id}`
  }) ?? ''
}

const databases = new Map<string, Shared<Database>>()

/**
 * Open a database for as long as a component uses it: `KiteDB.open` for an address
 * (`/kite/<cid>`), `KiteDB.init` for a name; components passing the same name (or address) and
 * options share one `Database`, closed when the last of them unmounts. `error` is what opening
 * threw (`ValidationError`, `AccessError`, …).
 */
export function useDatabase (nameOrAddress: string, options: OpenOptions = {}): HookResult<Database> {
  const key = `${nameOrAddress}\u0000${keyOf(options)}`
  let shared = databases.get(key)
  if (shared === undefined) {
    const entry = new Shared<Database>(
      async () => nameOrAddress.startsWith('/kite/') ? await KiteDB.open(nameOrAddress, options) : await KiteDB.init(nameOrAddress, options),
      async db => { await db.close() },
      () => { if (databases.get(key) === entry) databases.delete(key) })
    databases.set(key, shared = entry)
  }
  return useSyncExternalStore(shared.subscribe, shared.getSnapshot, shared.getSnapshot)
}

const collections = new WeakMap<Database, Map<string, Shared<Collection<AnyDoc>>>>()

/**
 * Open (creating it if new, see `Database.initCollection`) the collection `name` of `db`;
 * `{ loading: true }` while `db` is undefined (e.g. straight from `useDatabase`).
 */
export function useCollection<T extends object = AnyDoc> (db: Database | undefined, name: string): HookResult<Collection<T>> {
  const shared = useMemo(() => {
    if (db === undefined) return undefined
    let byName = collections.get(db)
    if (byName === undefined) collections.set(db, byName = new Map<string, Shared<Collection<AnyDoc>>>())
    let entry = byName.get(name)
    if (entry === undefined) {
      const created = new Shared<Collection<AnyDoc>>(async () => await db.initCollection(name), () => {}, () => { if (byName?.get(name) === created) byName.delete(name) })
      byName.set(name, entry = created)
    }
    return entry
  }, [db, name])
  const result = useSyncExternalStore(shared?.subscribe ?? noSubscribe, shared?.getSnapshot ?? loading, shared?.getSnapshot ?? loading)
  return result as unknown as HookResult<Collection<T>>
}

const noSubscribe = (): (() => void) => () => {}
const loading = (): HookResult<never> => LOADING

/** The live result of one query on one collection, as an external store. */
function liveStore<T> (collection: Collection<T & object>, query: Filter<T & object>, options: LiveQueryOptions<T & object>): { subscribe: (l: () => void) => () => void, getSnapshot: () => HookResult<Array<WithId<T & object>>> } {
  let result: HookResult<Array<WithId<T & object>>> = LOADING
  return {
    subscribe: listener => {
      const sub = collection.observe(query, options).subscribe({
        next: docs => { result = { data: docs, loading: false, error: undefined }; listener() },
        error: err => { result = { data: undefined, loading: false, error: err as Error }; listener() }
      })
      return () => { sub.unsubscribe() }
    },
    getSnapshot: () => result
  }
}

/**
 * The documents matching `query` (all by default), live: `data` is the sorted, projected result
 * (see `Collection.observe`), replaced whenever a local, remote or other-tab change alters it.
 * `{ loading: true }` while `collection` is undefined or the first result is on its way. The
 * query and options are compared by value (JSON), so they may be written inline.
 */
export function useFind<T extends object = AnyDoc> (collection: Collection<T> | undefined, query: Filter<T> = {}, options: LiveQueryOptions<T> = {}): HookResult<Array<WithId<T>>> {
  const key = keyOf([query, options])
  // the query and options count by value (`key`), not by identity
  const store = useMemo(() => collection === undefined ? undefined : liveStore<T>(collection, query, options), [collection, key])
  return useSyncExternalStore(store?.subscribe ?? noSubscribe, store?.getSnapshot ?? loading, store?.getSnapshot ?? loading)
}

/** The first document matching `query` (in `options.sort` order), live; `data` is `null` when none matches. */
export function useFindOne<T extends object = AnyDoc> (collection: Collection<T> | undefined, query: Filter<T> = {}, options: Omit<LiveQueryOptions<T>, 'limit'> = {}): HookResult<WithId<T> | null> {
  const found = useFind(collection, query, { ...options, limit: 1 })
  return useMemo(() => found.data === undefined ? found as HookResult<never> : { ...found, data: found.data[0] ?? null }, [found])
}

/** The document `id`, live; `data` is `null` while it does not exist (or after it is deleted). */
export function useDocument<T extends object = AnyDoc> (collection: Collection<T> | undefined, id: string): HookResult<WithId<T> | null> {
  return useFindOne(collection, { _id: id } as unknown as Filter<T>)
}
