/**
 * Presence (`db.presence`): each peer's ephemeral state — who is here, what they are editing — for
 * as long as they are. A peer's state travels on the database's topic (beside heads messages: see
 * `PresenceMessage`), sealed with the database key for an encrypted database, is never stored,
 * and is forgotten `PRESENCE_TTL_MS` after the peer was last heard: a peer publishes its state
 * again every `PRESENCE_HEARTBEAT_MS` while it has one, and says goodbye (`null`) when it clears it
 * or closes.
 *
 * Bounded: a state is at most `MAX_PRESENCE_BYTES` on the wire, at most `MAX_PRESENCE_PEERS` peers
 * are remembered (the least recently heard go first), and the transport's per-peer message rates
 * apply. A state that does not open (wrong key, altered, malformed) is dropped with a logged reason.
 */
import { ValidationError } from '../errors.js'
import { type JsonValue, assertJsonValue, seal, unseal } from '../crdt/index.js'
import { Coalesced, MAX_PRESENCE_BYTES, type Transport, decodePresenceMessage, encodePresenceMessage, isPresenceMessage, topicOf } from '../sync/index.js'
import { createLogger } from '../log.js'

const log = createLogger('db')

/** A peer's state is forgotten this long after it was last heard, ms. */
export const PRESENCE_TTL_MS = 6000
/** While a peer has a state it publishes it again this often, ms. */
export const PRESENCE_HEARTBEAT_MS = 2000
/** For new subscribers, this replica's state is published at most once per this long, ms. */
const SUBSCRIBER_PUBLISH_MS = 1000
/** Most peers remembered at once. */
export const MAX_PRESENCE_PEERS = 256

/** One peer's presence. */
export interface PresenceEntry {
  /** its libp2p peer id */
  peer: string
  /** the state it set */
  state: JsonValue
  /** when it was last heard, ms since the epoch */
  updatedAt: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The presence of the peers of one database; see the file's doc. */
export class Presence {
  private readonly dbId: string
  private readonly key?: Uint8Array
  private mineValue: JsonValue | null = null
  private readonly peers = new Map<string, PresenceEntry>()
  private readonly listeners = new Set<(peers: PresenceEntry[]) => void>()
  private transport?: Transport
  private detach?: () => void
  private heartbeat?: ReturnType<typeof setInterval>
  private sweep?: ReturnType<typeof setInterval>
  /** this replica's state, published for new subscriptions */
  private readonly forSubscribers = new Coalesced(SUBSCRIBER_PUBLISH_MS, () => { void this.publish() })

  /** @internal created by `Database` */
  constructor (dbId: string, key?: Uint8Array) {
    this.dbId = dbId
    if (key !== undefined) this.key = key
  }

  /** This replica's own state, or `null`. */
  get mine (): JsonValue | null { return this.mineValue }

  /**
   * Set this replica's state (any JSON value, e.g. `{name: 'Ada', editing: 'todo-7'}`), or clear it
   * with `null`. Peers see it within a moment; it is sent again every few seconds while set, and
   * dropped by peers a few seconds after this replica goes. Throws `ValidationError` for a value
   * that is not JSON-like or over 4 KiB once encoded.
   */
  set (state: JsonValue | null): void {
    if (state !== null) {
      assertJsonValue(state, 'presence')
      if (this.encode(state).byteLength > MAX_PRESENCE_BYTES) throw new ValidationError(`a presence state is at most ${MAX_PRESENCE_BYTES} bytes once encoded`)
    }
    this.mineValue = state
    void this.publish()
  }

  /** The other peers' states, least recently heard first. */
  get (): PresenceEntry[] {
    this.expire()
    return [...this.peers.values()]
  }

  /** Called with `get()` whenever a peer's state arrives, changes or goes. Returns a function that stops it. */
  on (event: 'change', listener: (peers: PresenceEntry[]) => void): () => void {
    if (event !== 'change') throw new ValidationError(`unknown presence event ${String(event)}`)
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** @internal start exchanging presence over `transport` (the database's network came up) */
  attach (transport: Transport): void {
    this.detachTransport()
    this.transport = transport
    const topic = topicOf(this.dbId)
    const off = transport.subscribe(topic, (data, from) => { this.receive(data, from) }, {
      // heads messages are the replicator's; a presence message must decode
      validate: async data => !isPresenceMessage(data) || this.opens(data)
    })
    // A peer that (re)subscribes gets this replica's state soon, once a second for all such peers
    // (a subscription is announced again whenever a gossip stream is set up again, or in a loop by
    // a hostile peer), and nothing while there is no state to give.
    const offSubscriber = transport.onSubscriber(topic, () => { if (this.mineValue !== null) this.forSubscribers.run() })
    this.heartbeat = setInterval(() => { if (this.mineValue !== null) void this.publish() }, PRESENCE_HEARTBEAT_MS)
    this.sweep = setInterval(() => { this.expire() }, 1000)
    this.detach = () => { off(); offSubscriber() }
    void this.publish()
  }

  /** @internal stop (the network went, or the database closes): say goodbye, forget every peer */
  close (): void {
    if (this.transport !== undefined && this.mineValue !== null) {
      void this.transport.publish(topicOf(this.dbId), encodePresenceMessage({ state: null })).catch(() => {})
    }
    this.detachTransport()
    if (this.peers.size > 0) {
      this.peers.clear()
      this.emit()
    }
  }

  private detachTransport (): void {
    this.detach?.()
    this.detach = undefined
    this.transport = undefined
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat)
    if (this.sweep !== undefined) clearInterval(this.sweep)
    this.forSubscribers.cancel()
  }

  private async publish (): Promise<void> {
    const t = this.transport
    if (t === undefined) return
    const state = this.mineValue === null ? null : this.encode(this.mineValue)
    try {
      await t.publish(topicOf(this.dbId), encodePresenceMessage({ state }))
    } catch (err) {
      log.debug(`presence not published: ${(err as Error).message}`)
    }
  }

  private encode (state: JsonValue): Uint8Array {
    const plain = encoder.encode(JSON.stringify(state))
    return this.key === undefined ? plain : seal(this.key, plain, this.aad())
  }

  private aad (): Uint8Array { return encoder.encode(`kitedb presence ${this.dbId}`) }

  /** The state a presence message carries, or `null` (a goodbye); throws when it does not open. */
  private open (data: Uint8Array): JsonValue | null {
    const { state } = decodePresenceMessage(data)
    if (state === null) return null
    const plain = this.key === undefined ? state : unseal(this.key, state, this.aad())
    const value = JSON.parse(decoder.decode(plain)) as JsonValue
    assertJsonValue(value, 'presence')
    return value
  }

  private opens (data: Uint8Array): boolean {
    try {
      this.open(data)
      return true
    } catch (err) {
      log.warn(`refused a presence message: ${(err as Error).message}`)
      return false
    }
  }

  private receive (data: Uint8Array, from: string): void {
    if (!isPresenceMessage(data)) return
    let state: JsonValue | null
    try {
      state = this.open(data)
    } catch {
      return // refused (and logged) by the validator
    }
    if (state === null) {
      if (this.peers.delete(from)) this.emit()
      return
    }
    const before = this.peers.get(from)
    this.peers.delete(from)
    this.peers.set(from, { peer: from, state, updatedAt: Date.now() })
    while (this.peers.size > MAX_PRESENCE_PEERS) this.peers.delete(this.peers.keys().next().value as string)
    if (before === undefined || JSON.stringify(before.state) !== JSON.stringify(state)) this.emit()
  }

  private expire (): void {
    const now = Date.now()
    let gone = false
    for (const [peer, e] of this.peers) {
      if (now - e.updatedAt <= PRESENCE_TTL_MS) continue
      this.peers.delete(peer)
      gone = true
    }
    if (gone) this.emit()
  }

  private emit (): void {
    const peers = [...this.peers.values()]
    for (const l of this.listeners) {
      try { l(peers) } catch (err) { log.warn('presence listener threw', err) }
    }
  }
}
