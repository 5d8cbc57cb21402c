/**
 * The list on screen: its name, its to-dos, live from `observe` (local and remote changes alike),
 * who is here (presence) and what each is editing, and its status (demo/status.ts). One list is
 * shown at a time; `showList` replaces the one before.
 */
import { DatabaseClosedError, type Collection, type Database } from '../src/index.js'
import { type ListEntry, type ListMeta, META_ID, findList, saveList } from './lists.js'
import { type JoinProgress, checkStorage, renderDetails, renderJoin, renderKept, renderNetwork, renderPeers } from './status.js'

/** A to-do, as the `todos` collection holds it. */
export interface Todo extends Record<string, unknown> {
  title: string
  done: boolean
  createdAt: number
}

interface Here { name?: unknown, editing?: unknown }

/** The list shown, and how to stop showing it. */
export interface Shown {
  db: Database
  entry: ListEntry
  todos: Collection<Todo>
  meta: Collection<ListMeta>
  /** the list's name and state, once known */
  info?: ListMeta
  /** stop rendering it (listeners, timers); the database stays open */
  stop: () => void
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

/** What `showList` tells the rest of the page. */
export interface ShowHooks {
  /** the list's name or state changed */
  onInfo: (shown: Shown) => void
}

/** Run `work`, ignoring that its database was closed meanwhile (the page moved to another list). */
export function quietly (work: Promise<void>): void {
  work.catch((err: unknown) => {
    if (!(err instanceof DatabaseClosedError)) console.error(err)
  })
}

let shown: Shown | undefined
/** The list shown now. */
export function current (): Shown | undefined { return shown }

/** Show `message` in the page's error line; an empty message hides it. */
export function showError (message: string): void {
  const box = $('error')
  box.hidden = message.length === 0
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

let others: Here[] = []
/** how many to-dos are shown, and whether the list is still arriving (then it is not "empty") */
let todoCount = 0
let joining = false
/** Tell the others what this page is editing (`null`: nothing). */
function setEditing (id: string | null): void {
  shown?.db.presence.set({ name: myName(), editing: id })
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
  $<HTMLUListElement>('todo-list').replaceChildren(...docs.map(doc => {
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
  todoCount = docs.length
  $('empty').hidden = todoCount > 0 || joining
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

/** The to-do input: enabled when this replica may write. */
function renderInput (db: Database): void {
  const input = $<HTMLInputElement>('new-todo')
  input.disabled = !db.canWrite
  input.placeholder = db.canWrite ? 'What needs doing? (Enter to add)' : db.encrypted === undefined ? 'Joining…' : 'Read-only list'
}

/** The list's name in the header and the "deleted" notice. */
function renderInfo (s: Shown): void {
  $('list-name').textContent = s.info?.name ?? s.entry.name
  document.title = `${s.info?.name ?? s.entry.name} — KiteDB to-do`
  $('list-deleted').hidden = s.info?.deleted !== true
}

/**
 * Put the focus in the to-do input, unless the user is typing in another field still shown (the
 * name of a new list, a rename): a list that finishes opening must not take keys meant for that
 * field (they would become a to-do, and the Enter that ends the name would add it).
 */
function focusNewTodo (): void {
  const input = $<HTMLInputElement>('new-todo')
  const active = document.activeElement
  const typing = (active instanceof HTMLInputElement || active instanceof HTMLTextAreaElement) && active !== input && active.closest('[hidden]') === null
  if (!typing) input.focus()
}

/**
 * Show the list `db` (stopping the one shown before): renders it and keeps it rendered until the
 * next `showList`. `entry` is its registry entry; a list not made here shows its join progress.
 */
export async function showList (db: Database, entry: ListEntry, hooks: ShowHooks): Promise<Shown> {
  shown?.stop()
  const todos = await db.initCollection<Todo>('todos')
  const meta = await db.initCollection<ListMeta>('meta')
  const offs: Array<() => void> = []
  const s: Shown = { db, entry, todos, meta, stop: () => { for (const off of offs.splice(0)) off() } }
  shown = s
  others = []
  todoCount = 0
  joining = !entry.own && db.encrypted === undefined
  showError('')
  $('todo-list').replaceChildren()
  renderInfo(s)
  renderInput(db)
  focusNewTodo()

  let everOnline = false
  let kept = false
  const join: JoinProgress = { progress: '', fetched: 0, known: 0 }
  const isShown = (): boolean => shown === s
  /** the join screen, and whether the list is still arriving (then it is not "empty") */
  const updateJoin = async (): Promise<void> => {
    const arriving = await renderJoin(db, join, isShown)
    if (arriving === undefined) return
    joining = arriving
    $('empty').hidden = todoCount > 0 || joining
  }
  const network = (): void => {
    if (db.networkStatus === 'online') everOnline = true
    renderPeers(db)
    renderNetwork(db, everOnline)
  }
  offs.push(
    db.on('manifest', () => { renderInput(db) }),
    db.on('error', err => { showError(err.code === 'ERR_ACCESS' ? `Cannot open this list: ${err.message}` : err.message) }),
    db.presence.on('change', peers => { others = peers.map(p => p.state as Here); renderPresence() }),
    todos.observe({}, docs => { renderTodos(todos, docs) }, { sort: { createdAt: 1, _id: 1 } }),
    meta.observe({ _id: META_ID }, docs => {
      s.info = docs[0]
      if (s.info !== undefined && typeof s.info.name === 'string' && s.info.name !== s.entry.name) {
        s.entry = { ...s.entry, name: s.info.name }
        if (findList(db.address) !== undefined) saveList(s.entry)
      }
      renderInfo(s)
      hooks.onInfo(s)
    }),
    db.on('peers', network),
    db.on('kept', k => { kept = k; renderKept(db, kept, joining) }),
    db.on('network', network)
  )
  setEditing(null)
  if (!entry.own) {
    offs.push(
      db.on('sync:progress', p => {
        join.progress = p.snapshot !== undefined && !p.snapshot.installed
          ? `snapshot: ${p.snapshot.fetched} of ${p.snapshot.nodes} parts`
          : p.missing > 0 ? `${p.fetched} of ${p.known} changes` : ''
        join.fetched = p.snapshot !== undefined && !p.snapshot.installed ? p.snapshot.fetched : p.fetched
        join.known = p.snapshot !== undefined && !p.snapshot.installed ? p.snapshot.nodes : p.known
        quietly(updateJoin())
      }),
      db.on('manifest', () => { quietly(updateJoin()) })
    )
    quietly(updateJoin())
  } else {
    $('join-status').hidden = true
  }
  quietly(checkStorage(db))
  // The countdown and the joiner's "nobody is online" need a clock as well as events.
  const timer = setInterval(() => {
    quietly(renderDetails(db, isShown))
    renderNetwork(db, everOnline)
    renderKept(db, kept, joining)
    if (!entry.own) quietly(updateJoin())
  }, 1000)
  offs.push(() => { clearInterval(timer) })
  network()
  renderKept(db, kept, joining)
  return s
}

/** Wire the page's own controls (once): adding a to-do, the presence name, the details panel. */
export function wireView (): void {
  $<HTMLFormElement>('new-todo-form').addEventListener('submit', e => {
    e.preventDefault()
    const input = $<HTMLInputElement>('new-todo')
    const title = input.value.trim()
    if (title.length === 0 || shown === undefined) return
    input.value = ''
    void shown.todos.insertOne({ title, done: false, createdAt: Date.now() })
  })
  $('presence').addEventListener('click', () => {
    const name = prompt('Your name, as the others see it', myName())?.trim()
    if (name === undefined || name.length === 0) return
    localStorage.setItem(NAME_KEY, name.slice(0, 40))
    setEditing(null)
    renderPresence()
  })
  $('details-panel').addEventListener('toggle', () => { const s = shown; if (s !== undefined) quietly(renderDetails(s.db, () => shown === s)) })
}
