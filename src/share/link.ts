/**
 * Share links: a URL that opens a database in an app. Everything KiteDB-specific travels in the
 * fragment (`#…`), which browsers never send to the web server:
 *
 *   `<base>#db=<address>[&key=<key>]&relay=<multiaddr>[&relay=…][&peer=<peer-id>]`
 *
 * `key` (encrypted databases only) is the database key, 43 characters of base64url: whoever holds
 * the link can read the database (and write, unless it has a write list).
 * `db` is the database address `/kite/<cid>`; `relay` the relay multiaddr(s) to reach peers;
 * `peer` (optional) the peer id of a replica that shares it, enough on its own with `relay` to
 * learn the address through `KiteDB.discover`.
 *
 * `parseShareLink` also reads the short form of `formatShortLink` (short-link.ts).
 */
import { InvalidAddressError } from '../errors.js'
import { formatAddress, parseAddress } from '../crdt/manifest.js'
import { formatKey, parseKey } from '../crdt/seal.js'
import { type ShareInfo } from './info.js'
import { type ShortLinkOptions, isShortFragment, parseShortFragment } from './short-link.js'

export { type ShareInfo } from './info.js'

/** Build a share link on `baseUrl` (its own fragment is replaced). Throws `InvalidAddressError` for a bad address. */
export function formatShareLink (baseUrl: string, info: ShareInfo): string {
  const params: Array<[string, string]> = []
  if (info.address !== undefined) params.push(['db', formatAddress(parseAddress(info.address))])
  if (info.key !== undefined) params.push(['key', formatKey(parseKeyText(info.key))])
  for (const r of info.relays) params.push(['relay', r])
  if (info.peer !== undefined) params.push(['peer', info.peer])
  const base = baseUrl.split('#')[0]
  return `${base}#${params.map(([k, v]) => `${k}=${escapeValue(v)}`).join('&')}`
}

/** A key from a link; throws `InvalidAddressError` when malformed. */
function parseKeyText (text: string): Uint8Array {
  try {
    return parseKey(text)
  } catch (err) {
    throw new InvalidAddressError(`the link's key is malformed: ${(err as Error).message}`)
  }
}

/** Percent-encode a fragment value, leaving `/` and `:` (legal in fragments) readable. */
function escapeValue (value: string): string {
  return encodeURIComponent(value).replace(/%2F/gi, '/').replace(/%3A/gi, ':')
}

/**
 * Read a share link (a full URL or just its fragment), long (`formatShareLink`) or short
 * (`formatShortLink`, whose relay indices are expanded with `options.relays`). Returns
 * `undefined` when it carries neither a database address nor a peer id; throws
 * `InvalidAddressError` when the address or key is malformed.
 */
export function parseShareLink (url: string, options: ShortLinkOptions = {}): ShareInfo | undefined {
  const hashAt = url.indexOf('#')
  const fragment = hashAt >= 0 ? url.slice(hashAt + 1) : url
  if (isShortFragment(fragment)) return parseShortFragment(fragment, options)
  const params = new URLSearchParams(fragment)
  const db = params.get('db')
  const peer = params.get('peer')
  if (db === null && peer === null) return undefined
  const info: ShareInfo = { relays: params.getAll('relay').filter(r => r.length > 0) }
  if (db !== null) info.address = formatAddress(parseAddress(db))
  const key = params.get('key')
  if (key !== null) info.key = formatKey(parseKeyText(key))
  if (peer !== null) {
    if (!/^[1-9A-HJ-NP-Za-km-z]{32,128}$/.test(peer)) throw new InvalidAddressError(`"${peer}" is not a peer id`)
    info.peer = peer
  }
  return info
}
