/**
 * The KiteDB peer-to-peer to-do demo: several lists, each a database of its own with its own
 * share link and QR code, rendered live from `observe`. An installable web app: a service worker
 * (vite-plugin-pwa) keeps the app, so a list opened once opens again offline.
 *
 * A URL fragment that is a share link — short (`#<BASE32>`) or long
 * (`#db=/kite/<cid>&key=…&relay=<multiaddr>[&peer=<id>]`) — joins that list and remembers it;
 * without one, the list shown last (else a new one) opens.
 */
import { registerSW } from 'virtual:pwa-register'
import * as kitedb from '../src/index.js'
import { parseShareLink, type Database } from '../src/index.js'
import { type DemoConfig, loadConfig } from './config.js'
import { type ListEntry, createList, deleteForEveryone, findList, joinList, leaveList, listEntries, openList, renameList, setCurrent, startingList } from './lists.js'
import { toggleShare, updateShare, wireShare } from './share.js'
import { current, quietly, showError, showList, type Shown, wireView } from './view.js'

declare global {
  interface Window { kitedb: typeof kitedb, todoDb?: Database }
}
window.kitedb = kitedb

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T
let config: DemoConfig = { relays: [] }

/**
 * List changes run one at a time, in the order asked for; a failure is shown, and the next runs.
 * The first is the app's start (its configuration, then the list it opens), queued before any
 * control can be used: what the user asks for meanwhile runs after it, so the list asked for last
 * is the one shown, and no list is opened without the app's relays.
 */
let queue = Promise.resolve()
function serially (work: () => Promise<void>): Promise<void> {
  queue = queue.then(work).catch((err: Error) => {
    console.error(err)
    showError(err.message)
  })
  return queue
}

const nameOf = (s: Shown): string => s.info?.name ?? s.entry.name

/** Show the open list `db`, remember it as the one to open next time, and close the one before. */
async function present (db: Database, entry: ListEntry): Promise<void> {
  const before = current()
  window.todoDb = db
  setCurrent(entry.address)
  const s = await showList(db, entry, { onInfo: shown => { renderLists(); quietly(updateShare(shown.db, nameOf(shown), config)) } })
  if (before !== undefined && before.db !== db) await before.db.close()
  renderLists()
  await updateShare(db, nameOf(s), config)
}

/** Open the list at `address` (one this browser knows) unless it is the one shown. */
async function switchTo (address: string): Promise<void> {
  togglePanel(false)
  const entry = findList(address)
  if (entry === undefined || current()?.db.address === address) return
  await present(await openList(entry, config), entry)
}

/** After a list was left or deleted: the next one, or a new one. */
async function showNext (): Promise<void> {
  const { db, entry } = await startingList(config)
  await present(db, entry)
}

function clearLink (): void {
  if (location.hash !== '') history.replaceState(null, '', location.pathname + location.search)
}

/**
 * Join the list the URL's fragment names, if it names one; the fragment is then cleared (the list
 * is remembered, key included). Resolves whether a list was opened; rejects when the link is
 * damaged or the list cannot be opened.
 */
async function openLink (): Promise<boolean> {
  let link
  try {
    link = parseShareLink(location.hash, { relays: config.relays })
  } catch (err) {
    clearLink()
    throw new Error(`it is damaged (${(err as Error).message})`, { cause: err })
  }
  if (link === undefined) return false
  if (link.address !== undefined && current()?.db.address === link.address) {
    clearLink()
    return true
  }
  const { db, entry } = await joinList(link, config)
  await present(db, entry)
  clearLink()
  return true
}

/** The lists panel: every list of this browser, the one shown marked; its rename, leave and delete. */
function renderLists (): void {
  const here = current()
  $('lists').replaceChildren(...listEntries().map(e => {
    const li = document.createElement('li')
    li.dataset.testid = 'list-entry'
    li.dataset.address = e.address
    li.dataset.own = String(e.own)
    li.classList.toggle('current', e.address === here?.db.address)
    const open = document.createElement('button')
    open.type = 'button'
    open.dataset.testid = 'list-open'
    open.textContent = e.address === here?.db.address ? nameOf(here) : e.name
    open.addEventListener('click', () => { void serially(async () => { await switchTo(e.address) }) })
    li.append(open)
    if (!e.own) {
      const tag = document.createElement('span')
      tag.className = 'tag'
      tag.textContent = 'shared with you'
      li.append(tag)
    }
    return li
  }))
  if (here !== undefined) {
    const rename = $<HTMLInputElement>('rename-input')
    if (document.activeElement !== rename) rename.value = nameOf(here)
    $<HTMLButtonElement>('delete-list').disabled = !here.db.canWrite
    $('current-name').textContent = nameOf(here)
  }
}

/** Open (or close) the lists panel; the share panel closes. */
function togglePanel (open: boolean): void {
  $('lists-panel').hidden = !open
  $('lists-button').setAttribute('aria-expanded', String(open))
  if (open) { void toggleShare(false); renderLists() }
}

function wireLists (): void {
  $('lists-button').addEventListener('click', () => { togglePanel($('lists-panel').hidden) })
  $('lists-close').addEventListener('click', () => { togglePanel(false) })
  $('share-button').addEventListener('click', () => { togglePanel(false) })
  document.addEventListener('keydown', e => {
    if (e.key === 'Escape') { togglePanel(false); void toggleShare(false) }
  })
  $<HTMLFormElement>('new-list-form').addEventListener('submit', e => {
    e.preventDefault()
    const input = $<HTMLInputElement>('new-list-name')
    const name = input.value.trim().slice(0, 80)
    if (name.length === 0) return
    input.value = ''
    void serially(async () => {
      const { db, entry } = await createList(name, config)
      togglePanel(false)
      await present(db, entry)
    })
  })
  $<HTMLFormElement>('rename-form').addEventListener('submit', e => {
    e.preventDefault()
    const name = $<HTMLInputElement>('rename-input').value.trim().slice(0, 80)
    const here = current()
    if (name.length === 0 || here === undefined) return
    void serially(async () => { await renameList(here.db, name); $<HTMLInputElement>('rename-input').blur(); renderLists() })
  })
  const leave = (ask: boolean): void => {
    const here = current()
    if (here === undefined) return
    if (ask && !confirm(`Leave “${nameOf(here)}”? This device forgets it; the others keep their copies.`)) return
    void serially(async () => {
      togglePanel(false)
      here.stop()
      await leaveList(here.db)
      await showNext()
    })
  }
  $('leave-list').addEventListener('click', () => { leave(true) })
  $('list-deleted-leave').addEventListener('click', () => { leave(false) })
  $('delete-list').addEventListener('click', () => {
    const here = current()
    if (here === undefined || !confirm(`Delete “${nameOf(here)}” for everyone? Its to-dos are deleted on every device that has it.`)) return
    void serially(async () => {
      togglePanel(false)
      await deleteForEveryone(here.db)
      here.stop()
      await leaveList(here.db)
      await showNext()
    })
  })
}

async function main (): Promise<void> {
  registerSW({ immediate: true })
  wireView()
  wireShare()
  wireLists()
  await serially(async () => {
    config = await loadConfig()
    let opened = false
    let problem = ''
    try {
      opened = await openLink()
    } catch (err) {
      problem = `Could not open the link: ${(err as Error).message}`
      clearLink()
    }
    if (!opened) await showNext()
    if (problem !== '') showError(problem)
  })
  window.addEventListener('hashchange', () => {
    void serially(async () => {
      try {
        await openLink()
      } catch (err) {
        showError(`Could not open the link: ${(err as Error).message}`)
      }
    })
  })
}

main().catch((err: Error) => {
  console.error(err)
  showError(`KiteDB could not start: ${err.message}`)
})
