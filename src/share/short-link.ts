/**
 * Short share links: what a join needs, as bytes, in one fragment of uppercase base32 (RFC 4648,
 * no padding), so that a QR code encodes it in alphanumeric mode (5.5 bits a character instead of
 * 8) and stays small enough to scan from a screen:
 *
 *   `<base>#<BASE32>`
 *
 * The bytes, in order:
 * - a header byte: the format version (1) in its top three bits, and which parts follow in the
 *   others — `0x01` the address as a SHA2-256 digest, `0x02` the address as a whole CID, `0x04`
 *   the key, `0x08` a peer id, `0x10` relays;
 * - the address: the 32-byte digest of a CIDv1 dag-cbor SHA2-256 (what every KiteDB address is),
 *   or a length byte and the CID's bytes;
 * - the key (32 bytes);
 * - the peer id: a length byte and its multihash bytes;
 * - the relays: a count byte, then per relay either one byte below `0x80`, an index into the
 *   relays of the app that opens the link, or `0x80`, a length byte and the multiaddr's text.
 *   Without this part, the link names the app's own relays.
 */
import { base32upper } from 'multiformats/bases/base32'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { InvalidAddressError } from '../errors.js'
import { formatAddress, parseAddress } from '../crdt/manifest.js'
import { formatKey, parseKey } from '../crdt/seal.js'
import { type ShareInfo } from './info.js'

const VERSION = 1
const HAS_DIGEST = 0x01
const HAS_CID = 0x02
const HAS_KEY = 0x04
const HAS_PEER = 0x08
const HAS_RELAYS = 0x10
const DAG_CBOR = 0x71
const SHA2_256 = 0x12
const RELAY_TEXT = 0x80
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{32,128}$/

/** Options of `formatShortLink` and `parseShortFragment`. */
export interface ShortLinkOptions {
  /**
   * The relays of the app that makes or opens the link (its configuration): a short link names
   * one of them by its index, and names none when it would name them all, in order.
   */
  relays?: string[]
}

/**
 * Build a short share link on `baseUrl` (its own fragment is replaced): the address, the key and
 * the peer id of `info`, and its relays as indices into `options.relays` where they are there
 * (none at all when they are exactly those), as text otherwise. Throws `InvalidAddressError` for
 * a bad address, key or peer id, or a relay over 255 bytes.
 */
export function formatShortLink (baseUrl: string, info: ShareInfo, options: ShortLinkOptions = {}): string {
  const parts: Uint8Array[] = []
  let header = VERSION << 5
  if (info.address !== undefined) {
    const cid = parseAddress(info.address)
    if (cid.version === 1 && cid.code === DAG_CBOR && cid.multihash.code === SHA2_256 && cid.multihash.digest.length === 32) {
      header |= HAS_DIGEST
      parts.push(cid.multihash.digest)
    } else {
      header |= HAS_CID
      parts.push(withLength(cid.bytes, 'address'))
    }
  }
  if (info.key !== undefined) {
    header |= HAS_KEY
    parts.push(keyBytes(info.key))
  }
  if (info.peer !== undefined) {
    if (!PEER_ID.test(info.peer)) throw new InvalidAddressError(`"${info.peer}" is not a peer id`)
    header |= HAS_PEER
    parts.push(withLength(base58btc.baseDecode(info.peer), 'peer id'))
  }
  const known = options.relays ?? []
  const sameAsApp = info.relays.length === known.length && info.relays.every((r, i) => r === known[i])
  if (info.relays.length > 0 && !sameAsApp) {
    if (info.relays.length > 255) throw new InvalidAddressError('a short link names at most 255 relays')
    header |= HAS_RELAYS
    parts.push(Uint8Array.of(info.relays.length))
    for (const relay of info.relays) {
      const index = known.indexOf(relay)
      parts.push(index >= 0 && index < RELAY_TEXT ? Uint8Array.of(index) : Uint8Array.of(RELAY_TEXT, ...withLength(new TextEncoder().encode(relay), 'relay')))
    }
  }
  const bytes = new Uint8Array(1 + parts.reduce((n, p) => n + p.length, 0))
  bytes[0] = header
  let at = 1
  for (const p of parts) { bytes.set(p, at); at += p.length }
  return `${baseUrl.split('#')[0]}#${base32upper.baseEncode(bytes)}`
}

/** Whether a fragment (without `#`) has the shape of a short link's. */
export function isShortFragment (fragment: string): boolean {
  return /^[A-Za-z2-7]{40,}$/.test(fragment)
}

/**
 * Read a short link's fragment (without `#`; either case). Relay indices are expanded with
 * `options.relays` (an index it does not have is dropped); without relays in the link, `relays`
 * are `options.relays`. Throws `InvalidAddressError` when it is malformed or of another version.
 */
export function parseShortFragment (fragment: string, options: ShortLinkOptions = {}): ShareInfo {
  let bytes: Uint8Array
  try {
    bytes = base32upper.baseDecode(fragment.toUpperCase())
  } catch {
    throw new InvalidAddressError('the link is malformed: not base32')
  }
  const reader = new Reader(bytes)
  const header = reader.byte()
  if (header >> 5 !== VERSION) throw new InvalidAddressError(`the link is of format ${header >> 5}, this app reads format ${VERSION}`)
  if ((header & HAS_DIGEST) !== 0 && (header & HAS_CID) !== 0) throw new InvalidAddressError('the link is malformed: two addresses')
  const info: ShareInfo = { relays: [] }
  if ((header & HAS_DIGEST) !== 0) info.address = formatAddress(CID.create(1, DAG_CBOR, Digest.create(SHA2_256, reader.take(32))))
  if ((header & HAS_CID) !== 0) {
    let cid: CID
    try { cid = CID.decode(reader.take(reader.byte())) } catch (err) {
      if (err instanceof InvalidAddressError) throw err
      throw new InvalidAddressError('the link is malformed: a bad address')
    }
    info.address = formatAddress(cid)
  }
  if ((header & HAS_KEY) !== 0) info.key = formatKey(reader.take(32))
  if ((header & HAS_PEER) !== 0) {
    const peer = base58btc.baseEncode(reader.take(reader.byte()))
    if (!PEER_ID.test(peer)) throw new InvalidAddressError('the link is malformed: a bad peer id')
    info.peer = peer
  }
  if (info.address === undefined && info.peer === undefined) throw new InvalidAddressError('the link names no database')
  const known = options.relays ?? []
  if ((header & HAS_RELAYS) !== 0) {
    for (let n = reader.byte(); n > 0; n--) {
      const tag = reader.byte()
      if (tag < RELAY_TEXT) {
        const relay = known[tag]
        if (relay !== undefined) info.relays.push(relay)
      } else if (tag === RELAY_TEXT) {
        const text = new TextDecoder('utf-8', { fatal: false }).decode(reader.take(reader.byte()))
        if (text.length > 0) info.relays.push(text)
      } else {
        throw new InvalidAddressError('the link is malformed: a bad relay')
      }
    }
  } else {
    info.relays = [...known]
  }
  if (!reader.done()) throw new InvalidAddressError('the link is malformed: bytes left over')
  return info
}

/** A key's 32 bytes; throws `InvalidAddressError` when malformed. */
function keyBytes (text: string): Uint8Array {
  try {
    return parseKey(text)
  } catch (err) {
    throw new InvalidAddressError(`the link's key is malformed: ${(err as Error).message}`)
  }
}

/** `bytes` after a length byte; throws `InvalidAddressError` over 255 bytes. */
function withLength (bytes: Uint8Array, what: string): Uint8Array {
  if (bytes.length > 255 || bytes.length === 0) throw new InvalidAddressError(`a short link's ${what} takes 1 to 255 bytes`)
  return Uint8Array.of(bytes.length, ...bytes)
}

/** Reads a short link's bytes in order; running out throws `InvalidAddressError`. */
class Reader {
  private at = 0
  constructor (private readonly bytes: Uint8Array) {}

  byte (): number {
    return this.take(1)[0]
  }

  take (n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw new InvalidAddressError('the link is malformed: cut short')
    const out = this.bytes.slice(this.at, this.at + n)
    this.at += n
    return out
  }

  done (): boolean {
    return this.at === this.bytes.length
  }
}
