/**
 * The KiteDB peer-to-peer to-do demo. Opens (or creates) a to-do database, shows it with a share
 * link and QR code, and renders the list live from `observe` — local and remote changes alike.
 *
 * URL fragment (a share link): `#db=/kite/<cid>&relay=<multiaddr>[&peer=<id>]` joins that database;
 * without one, the device's own `todos` database is created or reopened.
 */
import * as kitedb from '../src/index.js'
import { KiteDB, parseShareLink, renderQrSvg, type Collection, type Database } from '../src/index.js'

interface Todo extends Record<string, unknown> {
  title: string
  done: boolean
  createdAt: number
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

declare global {
  interface Window { kitedb: typeof kitedb, todoDb?: Database }
}
window.kitedb = kitedb

interface DemoConfig {
  /** relay multiaddrs */
  relays: string[]
  /** base URL of share links, when the page's own URL is not reachable from other devices */
  shareBase?: string
}

async function loadConfig (): Promise<DemoConfig> {
  try {
    const res = await fetch('/kitedb-config.json', { cache: 'no-store' })
    if (res.ok) return { relays: [], ...((await res.json()) as Partial<DemoConfig>) }
  } catch { /* no config served (a static build): no relays */ }
  return { relays: [] }
}

/** Relay addresses a link may bring: WebSockets (ws or wss) to an IP address or DNS name, with the relay's peer id. */
const DIALABLE_RELAY = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d{1,5}\/(ws|wss|tls\/ws)\/p2p\/[1-9A-HJ-NP-Za-km-z]{32,128}$/
const TRUSTED_KEY = 'kitedb-demo:trusted-relays'

function trustedRelays (): string[] {
  try { return JSON.parse(localStorage.getItem(TRUSTED_KEY) ?? '[]') as string[] } catch { return [] }
}

/**
 * The relays to use: the app's own (its config), plus those a link names that the user chose to
 * trust — asked once per relay, and only for WebSocket addresses (a link could otherwise make the
 * page dial anything, or route it through a stranger's relay).
 */
async function chooseRelays (configured: string[], fromLink: string[]): Promise<string[]> {
  const trusted = trustedRelays()
  const unknown = fromLink.filter(r => !configured.includes(r) && !trusted.includes(r))
  const askable = unknown.filter(r => DIALABLE_RELAY.test(r))
  for (const r of unknown) if (!askable.includes(r)) console.warn(`ignoring relay ${r} from the link: only ws/wss addresses with a peer id are dialled`)
  let accepted: string[] = []
  if (askable.length > 0) {
    const box = $('relay-confirm')
    $('relay-confirm-list').textContent = askable.join(', ')
    box.hidden = false
    accepted = await new Promise<string[]>(resolve => {
      $('relay-confirm-yes').addEventListener('click', () => { resolve(askable) }, { once: true })
      $('relay-confirm-no').addEventListener('click', () => { resolve([]) }, { once: true })
    })
    box.hidden = true
    if (accepted.length > 0) localStorage.setItem(TRUSTED_KEY, JSON.stringify([...trusted, ...accepted]))
  }
  const usable = fromLink.filter(r => configured.includes(r) || trusted.includes(r) || accepted.includes(r))
  return [...new Set([...configured, ...usable])]
}

/**
 * The list this page shows: the one a share link names (its key, in the fragment, opens it), or
 * this device's own list, encrypted (the default) and writable by every holder of its link. The
 * page announces the list it shows — sealed with the list's key, so only link holders can read the
 * announcement — because its share links carry its peer id: a link with only the peer id (and the
 * key) is enough to find the list.
 */
async function openDatabase (config: DemoConfig): Promise<{ db: Database, joined: boolean }> {
  const link = parseShareLink(location.hash)
  const relays = await chooseRelays(config.relays, link?.relays ?? [])
  const options = { ...(relays.length > 0 ? { relays } : {}), ...(link?.key !== undefined ? { key: link.key } : {}), announce: true }
  if (link?.address !== undefined) return { db: await KiteDB.open(link.address, options), joined: true }
  if (link?.peer !== undefined) {
    const found = await KiteDB.discover(link.peer, { relays, ...(link.key !== undefined ? { key: link.key } : {}) })
    return { db: await KiteDB.open(found.address, options), joined: true }
  }
  return { db: await KiteDB.init('todos', { ...options, access: { write: ['*'] } }), joined: false }
}

let everOnline = false
/** The network banner: nothing while online; "Connecting…"/"Reconnecting…"; offline with the retry countdown. */
function renderNetwork (db: Database): void {
  const state = db.networkState()
  $('network-status').textContent = state.status
  if (state.status === 'online') everOnline = true
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

/** How long a joiner waits, online, before saying nobody holding the list was reached, ms. */
const NOBODY_AFTER_MS = 4000
let onlineSince: number | undefined
let joinProgress = ''
/** What a page that opened a link shows while the list has not arrived. */
async function renderJoin (db: Database): Promise<void> {
  const box = $('join-status')
  const state = await db.syncState()
  if (db.networkStatus === 'online') onlineSince ??= Date.now()
  else onlineSince = undefined
  const arrived = db.encrypted !== undefined
  if (arrived && state.missing === 0) { box.hidden = true; return }
  box.hidden = false
  if (db.networkStatus !== 'online') {
    box.textContent = 'Offline: this list will arrive when the network is back.'
  } else if (state.holders === 0 && onlineSince !== undefined && Date.now() - onlineSince > NOBODY_AFTER_MS) {
    box.textContent = 'Waiting for a device that has this list — none is online. It arrives as soon as one is.'
  } else {
    box.textContent = joinProgress !== '' ? `Joining… ${joinProgress}` : 'Joining… looking for a device that has this list.'
  }
}

function showError (message: string): void {
  const box = $('error')
  box.hidden = false
  box.textContent = message
}

/** This page's name for presence: chosen once per browser, editable by a click. */
const NAME_KEY = 'kitedb-demo:name'
function myName (): string {
  let name = localStorage.getItem(NAME_KEY)
  if (name === null || name.length === 0) {
    const birds = ['Kestrel', 'Heron', 'Wren', 'Swift', 'Plover', 'Tern', 'Merlin', 'Avocet']
    name = `${birds[Math.floor(Math.random() * birds.length)]} ${Math.floor(Math.random() * 90) + 10}`
    localStorage.setItem(NAME_KEY, name)
  }
  return name
}

interface Here { name?: unknown, editing?: unknown }
/** Who else is here (presence), and what each is editing. */
let others: Here[] = []
let presenceDb: Database | undefined

/** Tell the others what this page is editing (`null`: nothing). */
function setEditing (id: string | null): void {
  presenceDb?.presence.set({ name: myName(), editing: id })
}

function renderPresence (): void {
  const names = others.map(h => typeof h.name === 'string' ? h.name : 'someone')
  $('presence').textContent = `${myName()} (you)${names.length > 0 ? `, ${names.join(', ')}` : ''}`
  for (const li of document.querySelectorAll<HTMLLIElement>('#todo-list li')) {
    const editors = others.filter(h => h.editing === li.dataset.id).map(h => typeof h.name === 'string' ? h.name : 'someone')
    let badge = li.querySelector<HTMLSpanElement>('.editing')
    if (editors.length === 0) { badge?.remove(); continue }
    if (badge === null) {
      badge = document.createElement('span')
      badge.className = 'editing'
      badge.dataset.testid = 'todo-editor'
      li.insertBefore(badge, li.lastChild)
    }
    badge.textContent = `${editors.join(', ')} editing`
  }
}

function renderTodos (todos: Collection<Todo>, docs: Array<Todo & { _id: string }>): void {
  const list = $<HTMLUListElement>('todo-list')
  list.replaceChildren(...docs.map(doc => {
    const li = document.createElement('li')
    li.dataset.testid = 'todo-item'
    li.dataset.id = doc._id
    li.classList.toggle('done', doc.done)

    const toggle = document.createElement('input')
    toggle.type = 'checkbox'
    toggle.checked = doc.done
    toggle.dataset.testid = 'todo-toggle'
    toggle.setAttribute('aria-label', `done: ${doc.title}`)
    toggle.addEventListener('change', () => { void todos.updateOne({ _id: doc._id }, { $set: { done: toggle.checked } }) })

    const title = document.createElement('span')
    title.dataset.testid = 'todo-title'
    title.textContent = doc.title
    title.title = 'double-click to edit'
    title.addEventListener('dblclick', () => { editTitle(todos, title, doc) })

    const del = document.createElement('button')
    del.type = 'button'
    del.dataset.testid = 'todo-delete'
    del.textContent = '✕'
    del.setAttribute('aria-label', `delete ${doc.title}`)
    del.addEventListener('click', () => { void todos.deleteOne({ _id: doc._id }) })

    li.append(toggle, title, del)
    return li
  }))
  $('empty').hidden = docs.length > 0
  renderPresence()
}

function editTitle (todos: Collection<Todo>, title: HTMLSpanElement, doc: Todo & { _id: string }): void {
  const input = document.createElement('input')
  input.className = 'edit'
  input.dataset.testid = 'todo-edit'
  input.value = doc.title
  let done = false
  const finish = (save: boolean): void => {
    if (done) return
    done = true
    const text = input.value.trim()
    if (save && text.length > 0 && text !== doc.title) void todos.updateOne({ _id: doc._id }, { $set: { title: text } })
    input.replaceWith(title)
    setEditing(null)
  }
  input.addEventListener('keydown', e => {
    if (e.key === 'Enter') finish(true)
    if (e.key === 'Escape') finish(false)
  })
  input.addEventListener('blur', () => { finish(true) })
  title.replaceWith(input)
  input.focus()
  setEditing(doc._id)
}

/**
 * Whether the relay keeps this list: "saved on the relay ✓" once a keeper acknowledged everything
 * this device holds (after its commit: it survives the relay restarting), "saving…" while it has
 * something no keeper has yet, the refusal when the relay would not keep it; nothing when no relay keeps.
 */
function renderKept (db: Database, kept: boolean): void {
  const keepers = db.keepers()
  $('kept-wrap').hidden = keepers.length === 0
  const refused = keepers.find(k => k.state === 'refused')
  const text = kept ? 'saved on the relay ✓' : refused !== undefined && !keepers.some(k => k.state === 'saving') ? `not saved on the relay: ${refused.error?.message ?? 'refused'}` : 'saving…'
  $('kept-status').textContent = text
}

function renderPeers (db: Database): void {
  const peers = db.peers()
  $('peer-count').textContent = String(peers.length)
  const kinds = [...new Set(peers.map(p => p.kind === 'direct' ? `${p.transport} (direct)` : p.kind === 'relayed' ? 'relayed' : 'via relay gossip'))]
  $('connection-type').textContent = kinds.length === 0 ? 'none' : kinds.join(', ')
  renderNetwork(db)
}

let lastLink = ''
async function renderShare (db: Database, config: DemoConfig): Promise<void> {
  const link = db.shareLink(config.shareBase ?? location.origin + location.pathname)
  if (link === lastLink) return
  lastLink = link
  const a = $<HTMLAnchorElement>('share-link')
  a.href = link
  a.textContent = link
  $('qr').innerHTML = await renderQrSvg(link)
  $('address').textContent = db.address
}

const short = (id: string): string => id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id

/**
 * Storage the browser keeps: ask once per browser (`KiteDB.persist()`), then show the answer and
 * the origin's usage in the details.
 */
const PERSIST_ASKED = 'kitedb-demo:persist-asked'
let storageLine = 'storage: …'
async function checkStorage (db: Database): Promise<void> {
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
async function renderDetails (db: Database): Promise<void> {
  const panel = $<HTMLDetailsElement>('details-panel')
  if (!panel.open) return
  const r = await db.inspect()
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

async function main (): Promise<void> {
  const config = await loadConfig()
  const { db, joined } = await openDatabase(config)
  window.todoDb = db
  const todos = await db.initCollection<Todo>('todos')

  $<HTMLFormElement>('new-todo-form').addEventListener('submit', e => {
    e.preventDefault()
    const input = $<HTMLInputElement>('new-todo')
    const title = input.value.trim()
    if (title.length === 0) return
    input.value = ''
    void todos.insertOne({ title, done: false, createdAt: Date.now() })
  })

  const input = $<HTMLInputElement>('new-todo')
  const enableInput = (): void => {
    input.disabled = !db.canWrite
    input.placeholder = db.canWrite ? 'What needs doing? (Enter to add)' : db.encrypted === undefined ? 'Joining…' : 'Read-only list'
  }
  enableInput()
  input.focus()
  db.on('manifest', enableInput)
  db.on('error', err => { showError(err.code === 'ERR_ACCESS' ? `Cannot open this list: ${err.message}` : err.message) })

  presenceDb = db
  db.presence.on('change', peers => { others = peers.map(p => p.state as Here); renderPresence() })
  setEditing(null)
  $('presence').addEventListener('click', () => {
    const name = prompt('Your name, as the others see it', myName())?.trim()
    if (name === undefined || name.length === 0) return
    localStorage.setItem(NAME_KEY, name.slice(0, 40))
    setEditing(null)
    renderPresence()
  })
  todos.observe({}, docs => { renderTodos(todos, docs) }, { sort: { createdAt: 1, _id: 1 } })
  db.on('peers', () => { renderPeers(db) })
  let kept = false
  db.on('kept', k => { kept = k; renderKept(db, kept) })
  db.on('network', () => { renderPeers(db); void renderShare(db, config) })
  if (joined) {
    db.on('sync:progress', p => {
      joinProgress = p.snapshot !== undefined && !p.snapshot.installed
        ? `snapshot: ${p.snapshot.fetched} of ${p.snapshot.nodes} parts`
        : p.missing > 0 ? `${p.fetched} of ${p.known} changes` : ''
      void renderJoin(db)
    })
    db.on('manifest', () => { void renderJoin(db) })
    void renderJoin(db)
  }
  $('details-panel').addEventListener('toggle', () => { void renderDetails(db) })
  void checkStorage(db)
  // The countdown and the joiner's "nobody is online" need a clock as well as events.
  setInterval(() => {
    void renderDetails(db)
    renderNetwork(db)
    renderKept(db, kept)
    if (joined) void renderJoin(db)
  }, 1000)
  renderPeers(db)
  await renderShare(db, config)
}

main().catch((err: Error) => {
  console.error(err)
  showError(`KiteDB could not start: ${err.message}`)
})
