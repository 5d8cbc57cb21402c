/**
 * The share panel, opened on demand: the list's short link (docs/design.md, "Share links") as a
 * QR code to scan from another device, a button that copies the link, and one that hands it to
 * the system's share sheet (Web Share API) where the browser has one.
 */
import { renderQrSvg, type Database } from '../src/index.js'
import { type DemoConfig } from './config.js'

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

let link = ''
let title = ''
let drawn = ''

/** The share link of `db`: its short form, relays named by their index in the app's config. */
export function linkOf (db: Database, config: DemoConfig): string {
  return db.shareLink(config.shareBase ?? location.origin + location.pathname, { short: true, appRelays: config.relays })
}

/** Update the panel for the list `db` named `name` (its link may change as relays are added). */
export async function updateShare (db: Database, name: string, config: DemoConfig): Promise<void> {
  const next = linkOf(db, config)
  title = name
  $('share-name').textContent = name
  $('address').textContent = db.address
  if (next === link) return
  link = next
  const a = $<HTMLAnchorElement>('share-link')
  a.href = link
  a.textContent = link
  if (!$('share-panel').hidden) await drawQr()
}

/** Draw the QR code of the current link, once per link. */
async function drawQr (): Promise<void> {
  if (drawn === link) return
  const text = link
  const svg = await renderQrSvg(text, 280)
  if (text !== link) return
  drawn = text
  $('qr').innerHTML = svg
}

/** Open the panel (drawing the code) or close it. */
export async function toggleShare (open: boolean): Promise<void> {
  $('share-panel').hidden = !open
  $('share-button').setAttribute('aria-expanded', String(open))
  $('copy-status').textContent = ''
  if (open) await drawQr()
}

/** Copy the link: the Clipboard API, else the old way through a selected text field. */
async function copyLink (): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(link)
    return true
  } catch {
    const field = document.createElement('textarea')
    field.value = link
    field.setAttribute('readonly', '')
    field.style.position = 'fixed'
    field.style.opacity = '0'
    document.body.append(field)
    field.select()
    const ok = document.execCommand('copy')
    field.remove()
    return ok
  }
}

/** Wire the panel's buttons (once). */
export function wireShare (): void {
  $('share-button').addEventListener('click', () => { void toggleShare($('share-panel').hidden) })
  $('share-close').addEventListener('click', () => { void toggleShare(false) })
  $('copy-link').addEventListener('click', () => {
    void copyLink().then(ok => { $('copy-status').textContent = ok ? 'Link copied ✓' : 'Could not copy: select the link below' })
  })
  const share = $<HTMLButtonElement>('web-share')
  share.hidden = typeof navigator.share !== 'function'
  share.addEventListener('click', () => {
    navigator.share({ title: `To-do list: ${title}`, text: `Join my to-do list “${title}”`, url: link }).catch((err: Error) => {
      if (err.name !== 'AbortError') $('copy-status').textContent = `Could not share: ${err.message}`
    })
  })
}
