/**
 * Address announcements (the AvionDB to-do demo's pattern): a replica sharing a database publishes
 * `{address, collections, relays}` on `/kitedb/1/announce/<its-peer-id>`, so someone who knows only
 * its peer id (and a relay) can learn the address with `KiteDB.discover`.
 */
import { InvalidMessageError } from '../errors.js'
import { decode, encode, isPlainObject, parseAddress, formatAddress } from '../crdt/index.js'
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

/** The announce topic of a peer. */
export function announceTopic (peerId: string): string {
  return `/kitedb/1/announce/${peerId}`
}

export function encodeAnnouncement (a: Announcement): Uint8Array {
  return encode({ v: 1, address: a.address, collections: a.collections, relays: a.relays })
}

/** Total decoder: returns a valid announcement or throws `InvalidMessageError`. */
export function decodeAnnouncement (bytes: Uint8Array): Announcement {
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    throw new InvalidMessageError('announcement is not dag-cbor', { cause: err })
  }
  if (!isPlainObject(raw) || raw.v !== 1) throw new InvalidMessageError('not an announcement')
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

/**
 * Announce on this transport's own announce topic: now, to every new subscriber, and every
 * `intervalMs`. `get` supplies the current announcement. Returns a function that stops.
 */
export function startAnnouncing (transport: Transport, get: () => Promise<Announcement>, intervalMs = 3000): () => void {
  const topic = announceTopic(transport.peerId)
  let stopped = false
  const publish = async (): Promise<void> => {
    if (stopped) return
    try {
      await transport.publish(topic, encodeAnnouncement(await get()))
    } catch {}
  }
  const off = transport.onSubscriber(topic, () => { void publish() })
  const timer = setInterval(() => { void publish() }, intervalMs)
  void publish()
  return () => { stopped = true; off(); clearInterval(timer) }
}
