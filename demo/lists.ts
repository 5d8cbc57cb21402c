/**
 * The lists of this browser: each a KiteDB database of its own (its own address, key and share
 * link), remembered in localStorage — the ones made here and the ones joined through a link —
 * with the list shown last, which the app opens when it starts without a link.
 *
 * A list's name lives in the database itself (the `meta` collection's document `list`), so a
 * rename reaches everyone who holds the list; the registry keeps a copy to show lists that are
 * not open.
 */
import { KiteDB, type Database, type ShareInfo } from '../src/index.js'
import { type DemoConfig, chooseRelays, trustedRelays } from './config.js'

/** A list this browser knows. */
export interface ListEntry {
  /** database address `/kite/<cid>` */
  address: string
  /** its name, as last seen */
  name: string
  /** made on this device (`true`) or joined through a link */
  own: boolean
  /** relays a link brought, beyond the app's, that the user accepted */
  relays?: string[]
}

/** The document of the `meta` collection that names a list. */
export interface ListMeta extends Record<string, unknown> {
  name: string
  /** set when a holder deleted the list for everyone */
  deleted?: boolean
}

/** The `_id` of the `meta` document that names a list. */
export const META_ID = 'list'
const LISTS_KEY = 'kitedb-demo:lists'
const CURRENT_KEY = 'kitedb-demo:current'
/** The name of the database the demo made before it had several lists: reopened, not lost. */
const FIRST_LIST = 'todos'

/** Every list this browser knows, in the order they were added. */
export function listEntries (): ListEntry[] {
  try {
    const list: unknown = JSON.parse(localStorage.getItem(LISTS_KEY) ?? '[]')
    if (!Array.isArray(list)) return []
    return list.filter((e: unknown): e is ListEntry => {
      if (typeof e !== 'object' || e === null) return false
      const entry = e as Record<string, unknown>
      return typeof entry.address === 'string' && typeof entry.name === 'string' && typeof entry.own === 'boolean'
    })
  } catch {
    return []
  }
}

function store (entries: ListEntry[]): void {
  localStorage.setItem(LISTS_KEY, JSON.stringify(entries))
}

/** The entry of `address`, if this browser knows that list. */
export function findList (address: string): ListEntry | undefined {
  return listEntries().find(e => e.address === address)
}

/** Add `entry`, or update the list of that address (keeping where it is in the order). */
export function saveList (entry: ListEntry): void {
  const entries = listEntries()
  const at = entries.findIndex(e => e.address === entry.address)
  if (at >= 0) entries[at] = entry
  else entries.push(entry)
  store(entries)
}

/** Forget the list of `address` (its data is dropped separately). */
export function forgetList (address: string): void {
  store(listEntries().filter(e => e.address !== address))
  if (localStorage.getItem(CURRENT_KEY) === address) localStorage.removeItem(CURRENT_KEY)
}

/** The address of the list shown last, if any. */
export function currentAddress (): string | undefined {
  return localStorage.getItem(CURRENT_KEY) ?? undefined
}

/** Remember `address` as the list to show when the app starts without a link. */
export function setCurrent (address: string): void {
  localStorage.setItem(CURRENT_KEY, address)
}

/** Options every list is opened with: the app's relays (plus `extra` the user trusts), its key, announced. */
function openOptions (config: DemoConfig, extra: string[] = [], key?: string): Parameters<typeof KiteDB.open>[1] {
  const trusted = trustedRelays()
  const relays = [...new Set([...config.relays, ...extra.filter(r => trusted.includes(r))])]
  return { ...(relays.length > 0 ? { relays } : {}), ...(key !== undefined ? { key } : {}), announce: true }
}

/**
 * Make a new list named `name`: encrypted (the default), writable by every holder of its link.
 * Without `dbName`, under a fresh database name.
 */
export async function createList (name: string, config: DemoConfig, dbName = `todos-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`): Promise<{ db: Database, entry: ListEntry }> {
  const db = await KiteDB.init(dbName, { ...openOptions(config), access: { write: ['*'] } })
  const meta = await db.initCollection<ListMeta>('meta')
  if (await meta.findById(META_ID) === undefined) await meta.insertOne({ _id: META_ID, name })
  const entry: ListEntry = { address: db.address, name: (await meta.findById(META_ID))?.name ?? name, own: true }
  saveList(entry)
  return { db, entry }
}

/** Open a list this browser knows (its key is kept with its data since it was opened first). */
export async function openList (entry: ListEntry, config: DemoConfig): Promise<Database> {
  return await KiteDB.open(entry.address, openOptions(config, entry.relays))
}

/**
 * The list to show when the app starts without a link: the one shown last, else the first known,
 * else a new one — under the database name the demo always used (`todos`), so a browser that
 * had that list before lists could be several gets it back.
 */
export async function startingList (config: DemoConfig): Promise<{ db: Database, entry: ListEntry }> {
  const entries = listEntries()
  const entry = entries.find(e => e.address === currentAddress()) ?? entries[0]
  if (entry !== undefined) return { db: await openList(entry, config), entry }
  return await createList('My list', config, FIRST_LIST)
}

/**
 * Join the list a share link names: asks about relays the app does not know (`chooseRelays`),
 * finds the address through the peer when the link names only a peer, and remembers the list.
 * Rejects as `KiteDB.open` and `KiteDB.discover` do.
 */
export async function joinList (link: ShareInfo, config: DemoConfig): Promise<{ db: Database, entry: ListEntry }> {
  const relays = await chooseRelays(config.relays, link.relays)
  const extra = relays.filter(r => !config.relays.includes(r))
  let address = link.address
  if (address === undefined) {
    const found = await KiteDB.discover(link.peer as string, { relays, ...(link.key !== undefined ? { key: link.key } : {}) })
    address = found.address
  }
  const known = findList(address)
  const entry: ListEntry = known !== undefined
    ? { ...known, ...(extra.length > 0 ? { relays: [...new Set([...(known.relays ?? []), ...extra])] } : {}) }
    : { address, name: 'Shared list', own: false, ...(extra.length > 0 ? { relays: extra } : {}) }
  const db = await KiteDB.open(address, openOptions(config, entry.relays, link.key))
  saveList(entry)
  return { db, entry }
}

/**
 * Rename the open list `db` (every holder sees the new name). Throws `ValidationError` for a
 * name the collection refuses.
 */
export async function renameList (db: Database, name: string): Promise<void> {
  const meta = await db.initCollection<ListMeta>('meta')
  await meta.updateOne({ _id: META_ID }, { $set: { name } }, { upsert: true })
  const entry = findList(db.address)
  if (entry !== undefined) saveList({ ...entry, name })
}

/** Wait (a few seconds at most) until what `db` wrote has likely reached a keeper or a peer. */
async function settle (db: Database): Promise<void> {
  if (db.keepers().length > 0) {
    await db.whenKept({ timeoutMs: 5000 }).catch(() => {})
  } else if (db.peers().length > 0) {
    await new Promise(resolve => setTimeout(resolve, 1500))
  }
}

/** Leave the list: this browser forgets it and drops its copy; everyone else keeps theirs. */
export async function leaveList (db: Database): Promise<void> {
  const address = db.address
  forgetList(address)
  await KiteDB.drop(address)
}

/**
 * Delete the list for everyone: every to-do is deleted and the list marked deleted (holders who
 * open it are told, and can leave it); resolves once that has likely reached a keeper or a peer
 * (a few seconds at most). Holders offline now learn it when they next meet a keeper or a peer
 * that has these changes. The caller then leaves the list (`leaveList`).
 */
export async function deleteForEveryone (db: Database): Promise<void> {
  const meta = await db.initCollection<ListMeta>('meta')
  await meta.updateOne({ _id: META_ID }, { $set: { deleted: true } }, { upsert: true })
  await (await db.initCollection('todos')).deleteMany({})
  await settle(db)
}
