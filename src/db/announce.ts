/**
 * Address announcements (the AvionDB to-do demo's pattern), opt-in per database (`announce: true`
 * when it is opened): a replica publishes `{address, collections, relays}` on
 * `/kitedb/1/announce/<its-peer-id>`, so someone who knows its peer id (and a relay) can learn the
 * address with `KiteDB.discover`.
 *
 * Peer ids are public (the relay sees them all), so an announcement is readable by anyone who asks
 * — unless it is sealed. An encrypted database's announcement is always sealed with its key
 * (XChaCha20-Poly1305, bound to the announcer's peer id): only holders of the key (of a link)
 * learn its address, collections and relays; anyone else sees that the peer announces something,
 * and its size. A plain database's announcement is in the clear (it is public anyway).
 *
 * Wire format (dag-cbor): `{v: 1, address, collections, relays}`, or `{v: 1, box}` with `box` the
 * sealed dag-cbor of the former's fields.
 */
import { InvalidMessageError } from '../errors.js'
import { decode, encode, isPlainObject, parseAddress, formatAddress, seal, unseal } from '../crdt/index.js'
import { type Transport } from '../sync/index.js'

/** What a replica announces about a database it shares. */
export interface Announcement {
  /** database address `/kite/<cid>` */
  address: string
  /** names of its collections */
  collections: string[]
  /** relay multiaddrs the announcer is reachable through */
  relays: string[]
}

/** How an announcement is sealed or opened: the database key, and the announcer's peer id. */
export interface AnnouncementSeal {
  /** the 32-byte key of the encrypted database */
  key: Uint8Array
  /** the announcer's libp2p peer id (the announcement is bound to it) */
  peerId: string
}

/** The announce topic of a peer. */
export function announceTopic (peerId: string): string {
  return `/kitedb/1/announce/${peerId}`
}

function aadOf (peerId: string): Uint8Array {
  return new TextEncoder().encode(`kitedb-announce:${peerId}`)
}

/** Encode an announcement: in the clear, or sealed with `sealWith` (an encrypted database's key). */
export function encodeAnnouncement (a: Announcement, sealWith?: AnnouncementSeal): Uint8Array {
  const fields = { address: a.address, collections: a.collections, relays: a.relays }
  if (sealWith === undefined) return encode({ v: 1, ...fields })
  return encode({ v: 1, box: seal(sealWith.key, encode(fields), aadOf(sealWith.peerId)) })
}

/** Whether announcement bytes are sealed (their contents need the database key). Never throws. */
export function isSealedAnnouncement (bytes: Uint8Array): boolean {
  try {
    const raw = decode(bytes)
    return isPlainObject(raw) && raw.v === 1 && raw.box instanceof Uint8Array
  } catch {
    return false
  }
}

/**
 * Total decoder: returns a valid announcement or throws `InvalidMessageError`. A sealed one opens
 * only with `openWith` holding the right key and the announcer's peer id; without it, or with the
 * wrong key, it throws `InvalidMessageError`.
 */
export function decodeAnnouncement (bytes: Uint8Array, openWith?: AnnouncementSeal): Announcement {
  let raw = decodeMap(bytes, 'announcement')
  if (raw.v !== 1) throw new InvalidMessageError('not an announcement')
  if (raw.box !== undefined) {
    if (!(raw.box instanceof Uint8Array) || Object.keys(raw).length !== 2) throw new InvalidMessageError('not a sealed announcement')
    if (openWith === undefined) throw new InvalidMessageError('the announcement is sealed: it opens only with its database key')
    let plain: Uint8Array
    try {
      plain = unseal(openWith.key, raw.box, aadOf(openWith.peerId))
    } catch (err) {
      throw new InvalidMessageError('the announcement does not open with this key (another database, or another peer)', { cause: err })
    }
    raw = decodeMap(plain, 'sealed announcement')
  }
  const strings = (v: unknown, max: number): v is string[] => Array.isArray(v) && v.length <= max && v.every(x => typeof x === 'string' && x.length <= 1024)
  if (!strings(raw.collections, 1024) || !strings(raw.relays, 32)) throw new InvalidMessageError('announcement lists are malformed')
  let address: string
  try {
    address = formatAddress(parseAddress(raw.address))
  } catch (err) {
    throw new InvalidMessageError('announcement address is malformed', { cause: err })
  }
  return { address, collections: raw.collections, relays: raw.relays }
}

function decodeMap (bytes: Uint8Array, what: string): Record<string, unknown> {
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new InvalidMessageError(`${what} is not dag-cbor`, { cause: err })
  }
  if (!isPlainObject(raw)) throw new InvalidMessageError(`not an ${what}`)
  return raw
}

/**
 * Announce on this transport's own announce topic: now, to every new subscriber, and every
 * `intervalMs`. `get` supplies the current announcement; with `key` (an encrypted database's),
 * it is sealed. Returns a function that stops.
 */
export function startAnnouncing (transport: Transport, get: () => Promise<Announcement>, key?: Uint8Array, intervalMs = 3000): () => void {
  const topic = announceTopic(transport.peerId)
  let stopped = false
  const publish = async (): Promise<void> => {
    if (stopped) return
    try {
      await transport.publish(topic, encodeAnnouncement(await get(), key === undefined ? undefined : { key, peerId: transport.peerId }))
    } catch { /* not published (no peer yet, the transport stopping): the next round tries again */ }
  }
  const off = transport.onSubscriber(topic, () => { void publish() })
  const timer = setInterval(() => { void publish() }, intervalMs)
  void publish()
  return () => { stopped = true; off(); clearInterval(timer) }
}
