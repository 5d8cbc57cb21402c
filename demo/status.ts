/**
 * The status of the list shown: the network (status line and banner), the peers, whether the
 * relay keeps the list, the join screen of a list joined through a link, the storage the browser
 * keeps, and the details panel (`db.inspect()`).
 */
import { KiteDB, type Database } from '../src/index.js'

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

/** What a joiner has heard of the list's arrival (from `sync:progress`). */
export interface JoinProgress {
  /** when the network came up, ms */
  onlineSince?: number
  /** in words: "12 of 40 changes", "snapshot: 2 of 5 parts", or '' */
  progress: string
  fetched: number
  known: number
}

/** The network banner: nothing while online; "Connecting…"/"Reconnecting…"; offline with the retry countdown. */
export function renderNetwork (db: Database, everOnline: boolean): void {
  const state = db.networkState()
  $('network-status').textContent = state.status
  const banner = $('network-banner')
  if (state.status === 'online' || state.status === 'local') { banner.hidden = true; return }
  banner.hidden = false
  if (state.status === 'connecting') {
    banner.textContent = everOnline ? 'Reconnecting…' : 'Connecting…'
    return
  }
  const seconds = state.nextAttemptAt === null ? 0 : Math.max(0, Math.ceil((state.nextAttemptAt - Date.now()) / 1000))
  banner.textContent = `Offline — changes are kept on this device and sync when the network is back. Retrying in ${seconds} s `
  const retry = document.createElement('button')
  retry.type = 'button'
  retry.textContent = 'Retry now'
  retry.dataset.testid = 'retry-now'
  retry.addEventListener('click', () => { db.reconnect() })
  banner.append(retry)
}

/** The peer count and how the peers are connected. */
export function renderPeers (db: Database): void {
  const peers = db.peers()
  $('peer-count').textContent = String(peers.length)
  const kinds = [...new Set(peers.map(p => p.kind === 'direct' ? `${p.transport} (direct)` : p.kind === 'relayed' ? 'relayed' : 'via relay gossip'))]
  $('connection-type').textContent = kinds.length === 0 ? 'none' : kinds.join(', ')
}

/**
 * Whether the relay keeps this list: "saved on the relay ✓" once a keeper acknowledged everything
 * this device holds (after its commit: it survives the relay restarting), "saving…" while it has
 * something no keeper has yet, the refusal when the relay would not keep it; nothing when no relay keeps.
 */
export function renderKept (db: Database, kept: boolean, joining: boolean): void {
  const keepers = db.keepers()
  $('kept-wrap').hidden = keepers.length === 0 || joining
  const refused = keepers.find(k => k.state === 'refused')
  $('kept-status').textContent = kept ? 'saved on the relay ✓' : refused !== undefined && !keepers.some(k => k.state === 'saving') ? `not saved on the relay: ${refused.error?.message ?? 'refused'}` : 'saving…'
}

/** How long a joiner waits, online, before saying nobody holding the list was reached, ms. */
const NOBODY_AFTER_MS = 4000

/**
 * What a page that opened a link shows while the list has not arrived: progress, where it comes
 * from (a device, or the relay's keeper when no device is connected), or that nobody holding it
 * is reachable. Resolves whether the list is still arriving (`undefined` when `isShown()` turned
 * false meanwhile: nothing was rendered).
 */
export async function renderJoin (db: Database, join: JoinProgress, isShown: () => boolean): Promise<boolean | undefined> {
  const box = $('join-status')
  const state = await db.syncState()
  if (!isShown()) return undefined // another list is shown now
  if (db.networkStatus === 'online') join.onlineSince ??= Date.now()
  else delete join.onlineSince
  const arrived = db.encrypted !== undefined
  if (arrived && state.missing === 0) { box.hidden = true; return false }
  box.hidden = false
  const keepers = db.keepers().filter(k => k.state !== 'refused' && k.state !== 'unreachable')
  const waited = join.onlineSince !== undefined && Date.now() - join.onlineSince > NOBODY_AFTER_MS
  let text: string
  let moving = false // the list is on its way: a progress bar
  if (db.networkStatus === 'offline') {
    text = 'Offline: this list will arrive when the network is back.'
  } else if (state.holders > 0 && db.peers().length === 0 && keepers.length > 0) {
    text = `Fetching this list from the relay…${join.progress !== '' ? ` ${join.progress}` : ''}`
    moving = true
  } else if (state.holders === 0 && waited) {
    text = keepers.length > 0
      ? 'Waiting for a device that has this list — none is online, and the relay does not keep it. It arrives as soon as one is.'
      : 'Waiting for a device that has this list — none is online. It arrives as soon as one is.'
  } else if (db.networkStatus !== 'online') {
    text = 'Joining… connecting to the relay.'
    moving = true
  } else {
    text = join.progress !== '' ? `Joining… ${join.progress}` : 'Joining… looking for a device that has this list.'
    moving = true
  }
  const bar = document.createElement('progress')
  bar.dataset.testid = 'join-progress'
  bar.hidden = !moving
  if (join.known > 0) { bar.max = join.known; bar.value = join.fetched }
  box.replaceChildren(text, bar)
  return true
}

const short = (id: string): string => id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id

/** Storage the browser keeps: asked once per browser (`KiteDB.persist()`); the answer and the origin's usage. */
const PERSIST_ASKED = 'kitedb-demo:persist-asked'
let storageLine = 'storage: …'
export async function checkStorage (db: Database): Promise<void> {
  if (localStorage.getItem(PERSIST_ASKED) === null) {
    localStorage.setItem(PERSIST_ASKED, '1')
    await KiteDB.persist()
  }
  const e = await db.storageEstimate()
  storageLine = e === undefined
    ? 'storage: the browser does not say (insecure origin?)'
    : `storage: ${(e.usage / 1024).toFixed(0)} KB used of ${(e.quota / 2 ** 20).toFixed(0)} MB; ${e.persisted ? 'kept by the browser ✓' : 'the browser may clear it when short of space'}`
  $('storage-status').textContent = e?.persisted === true ? 'kept by the browser' : ''
}

/** The "details" panel: `db.inspect()`, in words. */
export async function renderDetails (db: Database, isShown: () => boolean): Promise<void> {
  if (!$<HTMLDetailsElement>('details-panel').open) return
  const r = await db.inspect()
  if (!isShown()) return
  const lines = [
    `database ${r.address}`,
    `heads: ${r.heads.length} (${r.heads.map(short).join(', ')})`,
    `missing: ${r.missingCount}, unavailable: ${r.unavailable}`,
    `network: ${r.network.status}${r.network.nextAttemptAt !== null ? `, next attempt in ${Math.max(0, Math.ceil((r.network.nextAttemptAt - Date.now()) / 1000))} s` : ''}`,
    ...r.network.relays.map(x => `  relay ${short(x.peer)}: ${x.state}${x.error !== null ? ` (${x.error})` : ''}`),
    `peers: ${r.peers.length}`,
    ...r.peers.map(p => `  ${short(p.id)}: ${p.kind} ${p.transport}${p.whyNotDirect !== undefined ? ` — ${p.whyNotDirect}` : ''}`),
    storageLine,
    `keepers: ${r.keepers.length}`,
    ...r.keepers.map(k => `  ${short(k.peer)}: ${k.state}`),
    `refused input (latest last): ${r.refused.length === 0 ? 'none' : ''}`,
    ...r.refused.slice(-5).map(w => `  ${new Date(w.at).toLocaleTimeString()} ${w.scope}: ${w.message}`)
  ]
  $('details').textContent = lines.join('\n')
}
