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
  } catch {}
  return { relays: [] }
}

/**
 * The list this page shows: the one a share link names (its key, in the fragment, opens it), or
 * this device's own list, encrypted (the default) and writable by every holder of its link. The
 * page announces the list it shows — sealed with the list's key, so only link holders can read the
 * announcement — because its share links carry its peer id: a link with only the peer id (and the
 * key) is enough to find the list.
 */
async function openDatabase (config: DemoConfig): Promise<Database> {
  const configured = config.relays
  const link = parseShareLink(location.hash)
  const relays = link !== undefined && link.relays.length > 0 ? link.relays : configured
  const options = { ...(relays.length > 0 ? { relays } : {}), ...(link?.key !== undefined ? { key: link.key } : {}), announce: true }
  if (link?.address !== undefined) return await KiteDB.open(link.address, options)
  if (link?.peer !== undefined) {
    const found = await KiteDB.discover(link.peer, { relays, ...(link.key !== undefined ? { key: link.key } : {}) })
    return await KiteDB.open(found.address, options)
  }
  return await KiteDB.init('todos', { ...options, access: { write: ['*'] } })
}

function showError (message: string): void {
  const box = $('error')
  box.hidden = false
  box.textContent = message
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
  }
  input.addEventListener('keydown', e => {
    if (e.key === 'Enter') finish(true)
    if (e.key === 'Escape') finish(false)
  })
  input.addEventListener('blur', () => { finish(true) })
  title.replaceWith(input)
  input.focus()
}

function renderPeers (db: Database): void {
  const peers = db.peers()
  $('peer-count').textContent = String(peers.length)
  const kinds = [...new Set(peers.map(p => p.kind === 'direct' ? `${p.transport} (direct)` : p.kind === 'relayed' ? 'relayed' : 'via relay gossip'))]
  $('connection-type').textContent = kinds.length === 0 ? 'none' : kinds.join(', ')
  $('network-status').textContent = db.networkStatus
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

async function main (): Promise<void> {
  const config = await loadConfig()
  const db = await openDatabase(config)
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

  todos.observe({}, docs => { renderTodos(todos, docs) }, { sort: { createdAt: 1, _id: 1 } })
  db.on('peers', () => { renderPeers(db) })
  db.on('network', () => { renderPeers(db); void renderShare(db, config) })
  renderPeers(db)
  await renderShare(db, config)
}

main().catch((err: Error) => {
  console.error(err)
  showError(`KiteDB could not start: ${err.message}`)
})
