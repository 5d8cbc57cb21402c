/**
 * The demo's configuration (`/kitedb-config.json`, served with the demo by `npm start`) and the
 * relays a page uses. The last configuration read is remembered, so a page opened with no server
 * and no network (the service worker serves the app) still knows its relays and syncs once they
 * are back.
 */
const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

/** What `/kitedb-config.json` says. */
export interface DemoConfig {
  /** relay multiaddrs */
  relays: string[]
  /** base URL of share links, when the page's own URL is not reachable from other devices */
  shareBase?: string
}

const CONFIG_KEY = 'kitedb-demo:config'
/** How long to wait for the server before using the remembered configuration, ms. */
const CONFIG_TIMEOUT_MS = 3000

/** Whether `value` has the shape of a `DemoConfig`. */
function isConfig (value: unknown): value is DemoConfig {
  const v = value as Partial<DemoConfig> | null
  return typeof v === 'object' && v !== null && Array.isArray(v.relays) && v.relays.every(r => typeof r === 'string') &&
    (v.shareBase === undefined || typeof v.shareBase === 'string')
}

/**
 * The configuration from the server, remembered for later; when the server cannot be reached (or
 * answers nonsense), the one remembered last, else no relays (the lists stay on this device).
 */
export async function loadConfig (): Promise<DemoConfig> {
  try {
    const res = await fetch('/kitedb-config.json', { cache: 'no-store', signal: AbortSignal.timeout(CONFIG_TIMEOUT_MS) })
    const config: unknown = res.ok ? { relays: [], ...(await res.json() as object) } : undefined
    if (isConfig(config)) {
      localStorage.setItem(CONFIG_KEY, JSON.stringify(config))
      return config
    }
  } catch {
    // the server is out of reach (offline): the config remembered below serves
  }
  try {
    const remembered: unknown = JSON.parse(localStorage.getItem(CONFIG_KEY) ?? 'null')
    if (isConfig(remembered)) return remembered
  } catch {
    // nothing usable remembered: no relays, the lists work locally
  }
  return { relays: [] }
}

/** Relay addresses a link may bring: WebSockets (ws or wss) to an IP address or DNS name, with the relay's peer id. */
const DIALABLE_RELAY = /^\/(ip4|ip6|dns|dns4|dns6)\/[^/]+\/tcp\/\d{1,5}\/(ws|wss|tls\/ws)\/p2p\/[1-9A-HJ-NP-Za-km-z]{32,128}$/
const TRUSTED_KEY = 'kitedb-demo:trusted-relays'

/** Relays the user accepted from links, on this browser. */
export function trustedRelays (): string[] {
  try {
    const list: unknown = JSON.parse(localStorage.getItem(TRUSTED_KEY) ?? '[]')
    return Array.isArray(list) ? list.filter((r): r is string => typeof r === 'string') : []
  } catch {
    return []
  }
}

/**
 * The relays to use: the app's own (its config), plus those a link names that the user chose to
 * trust — asked once per relay, and only for WebSocket addresses (a link could otherwise make the
 * page dial anything, or route it through a stranger's relay).
 */
export async function chooseRelays (configured: string[], fromLink: string[]): Promise<string[]> {
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
