/**
 * `Transport` over libp2p: gossipsub for topics, one length-prefixed request and response per
 * stream for request/response protocols, and direct WebRTC upgrades.
 *
 * Peer discovery: every peer of a database publishes on its topic (heads, periodically). When a
 * message arrives from a peer with no direct connection, this transport dials that peer's WebRTC
 * address through each relay (`<relay>/p2p-circuit/webrtc/p2p/<peer>`). To avoid two crossing
 * dials, the peer with the smaller id dials; the other dials only if still not connected after
 * `upgradeFallbackMs`. Requests never dial WebRTC themselves (see `connect`).
 *
 * Hostile input stops here (`Limits`, enforced by a `PeerGuard`): requests over a peer's rate or
 * over `maxMessageBytes`, malformed requests, and gossip messages over their origin's rate or the
 * size limit are refused or dropped with a logged reason; a peer that keeps at it is disconnected
 * and refused for a while.
 *
 * One piece, though over 400 lines: every member of `Transport` over one libp2p node, and the
 * direct-connection upgrades that its gossip and its requests share the connection state with.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { type Connection, type PeerId, type Stream } from '@libp2p/interface'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { NetworkError, TimeoutError } from '../errors.js'
import { createLogger } from '../log.js'
import { type NetworkState, type PeerConnection, type SubscribeOptions, type Transport } from '../sync/transport.js'
import { type Limits, type LimitsOptions, resolveLimits } from '../sync/limits.js'
import { KEEP_PROTOCOL } from '../sync/keep-wire.js'
import { type PeerNode, dialWithRetry } from './node.js'
import { PeerGuard, messageValidator, refuseBanned } from './guard.js'

const log = createLogger('net')

/** Options of `Libp2pTransport`. */
export interface Libp2pTransportOptions {
  /** relay multiaddrs (each with `/p2p/<id>`) used to reach peers */
  relays: Multiaddr[]
  /** how long the peer with the larger id waits for the other's dial before dialling itself, ms
   * (default 10000: longer than a dial attempt, so the two dials do not cross) */
  upgradeFallbackMs?: number
  /** wait between upgrade attempts to one peer, ms (default 5000) */
  upgradeBackoffMs?: number
  /** false: never open direct WebRTC connections; talk to peers only through the relays (default
   * true; the node should then also have no WebRTC listener, so peers cannot open them either) */
  directConnections?: boolean
  /** per-peer rates and bans (see `Limits`; defaults `DEFAULT_LIMITS`). Throws `ValidationError` when malformed. */
  limits?: LimitsOptions
  /**
   * how long a relayed circuit to a peer stays open once a direct connection to it is, ms (default
   * 5000; see `closeCircuits`)
   */
  circuitLingerMs?: number
}

/** What `lpStream.read` throws for a length prefix over `maxDataLength` (or a malformed one). */
const OVERSIZE_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'InvalidMessageLengthError'])
/** How long an inbound direct connection counts as fresh, ms (see `openStream`). */
const FRESH_INBOUND_MS = 10_000
/** How long a stream on a fresh inbound direct connection may take to negotiate, ms (see `openStream`). */
const FRESH_NEGOTIATE_MS = 1000

/**
 * The least a relayed circuit must have left to be used for another request, bytes: below it, the
 * circuit is closed and a new one opened (a requester asks for answers that fit what is left).
 */
export const MIN_CIRCUIT_BYTES = 24 * 1024

/** Whether `conn` is a limited connection with too few bytes left for another request. */
function circuitSpent (conn: Connection): boolean {
  const left = conn.limits?.bytes
  return left !== undefined && Number(left) < MIN_CIRCUIT_BYTES
}

/**
 * Streams a relayed circuit may carry and still be closed once the peer is directly connected:
 * libp2p's own housekeeping, which the direct connection carries too.
 */
const HOUSEKEEPING_PROTOCOLS = new Set(['/ipfs/ping/1.0.0', '/ipfs/id/1.0.0', '/ipfs/id/push/1.0.0'])

/** Whether `conn` is direct (WebRTC in browsers): not a circuit through a relay. */
function isDirect (conn: Connection): boolean {
  return conn.limits == null && !conn.remoteAddr.toString().includes('/p2p-circuit/p2p/')
}

type MessageHandler = (data: Uint8Array, from: string) => void

/** Most peers each of the transport's per-peer maps remembers; the oldest entry goes first. */
const MAX_REMEMBERED_PEERS = 1024

/** Set `key` in `map` (as its newest entry), forgetting the oldest entries beyond `MAX_REMEMBERED_PEERS`. */
function remember<V> (map: Map<string, V>, key: string, value: V): void {
  map.delete(key)
  map.set(key, value)
  while (map.size > MAX_REMEMBERED_PEERS) map.delete(map.keys().next().value as string)
}

/** What a change of `NetworkState` is judged by (times of attempts in progress excluded). */
function networkKey (s: NetworkState): string {
  return JSON.stringify([s.status, s.nextAttemptAt, s.reserved, s.connectedPeers, s.error, s.relays.map(r => [r.state, r.error, r.nextAttemptAt])])
}

/** The libp2p implementation of `Transport`. */
export class Libp2pTransport implements Transport {
  readonly node: PeerNode
  readonly peerId: string
  private readonly relays: Multiaddr[]
  private readonly relayIds: Set<string>
  private readonly handlers = new Map<string, Set<MessageHandler>>()
  private readonly validators = new Map<string, Set<NonNullable<SubscribeOptions['validate']>>>()
  private readonly subscriberHandlers = new Map<string, Set<(peer: string) => void>>()
  private readonly firstHeard = new Map<string, number>()
  private readonly lastUpgradeAttempt = new Map<string, number>()
  /** per peer: why its last WebRTC upgrade failed */
  private readonly upgradeErrors = new Map<string, string>()
  private readonly upgrading = new Set<string>()
  /** peers whose identify protocols lack WebRTC signalling */
  private readonly refusesWebRTC = new Map<string, true>()
  /** peers whose identify protocols include the keep protocol */
  private readonly keeperPeers = new Set<string>()
  private readonly keeperListeners = new Set<() => void>()
  private readonly onIdentify: (evt: CustomEvent) => void
  private readonly opts: { upgradeFallbackMs: number, upgradeBackoffMs: number, directConnections: boolean, circuitLingerMs: number }
  private readonly onMessage: (evt: CustomEvent) => void
  private readonly onSubscriptionChange: (evt: CustomEvent) => void
  /** the limits this transport enforces */
  readonly limits: Limits
  private readonly guard: PeerGuard
  private readonly stopRefusingBanned: () => void
  private readonly networkListeners = new Set<(state: NetworkState) => void>()
  private lastNetworkKey = ''
  private readonly onNetworkEvent = (): void => { this.networkChanged() }
  private readonly onConnectionClose = (evt: CustomEvent<Connection>): void => { this.connectionClosed(evt.detail) }
  private readonly onConnectionOpen = (evt: CustomEvent<Connection>): void => { this.connectionOpened(evt.detail) }
  /** pending `closeCircuits` timers */
  private readonly circuitTimers = new Set<ReturnType<typeof setTimeout>>()

  constructor (node: PeerNode, options: Libp2pTransportOptions) {
    this.node = node
    this.peerId = node.peerId.toString()
    this.relays = options.relays
    this.relayIds = new Set(options.relays.map(r => r.getComponents().find(c => c.name === 'p2p')?.value ?? ''))
    this.opts = { upgradeFallbackMs: options.upgradeFallbackMs ?? 10_000, upgradeBackoffMs: options.upgradeBackoffMs ?? 5000, directConnections: options.directConnections ?? true, circuitLingerMs: options.circuitLingerMs ?? 5000 }
    this.limits = resolveLimits(options.limits)
    this.guard = new PeerGuard(this.limits, {
      exempt: peer => this.relayIds.has(peer), // never cut ourselves off from a relay
      onBan: peer => { void node.hangUp(peerIdFromString(peer)).catch(err => { log.debug(`hang up on ${peer} failed: ${(err as Error).message}`) }) }
    })
    this.stopRefusingBanned = refuseBanned(node, this.guard)
    const pubsub = node.services.pubsub
    this.onMessage = (evt) => {
      const msg = evt.detail as { type: string, topic: string, data: Uint8Array, from?: PeerId }
      if (msg.type !== 'signed' || msg.from === undefined) return // unsigned messages have no origin: ignore
      const from = msg.from.toString()
      if (from === this.peerId) return
      const set = this.handlers.get(msg.topic)
      if (set === undefined) return
      if (!this.relayIds.has(from)) this.maybeUpgrade(from)
      for (const h of set) {
        try { h(msg.data, from) } catch (err) { log.warn(`message handler for ${msg.topic} threw`, err) }
      }
    }
    this.onSubscriptionChange = (evt) => {
      const { peerId, subscriptions } = evt.detail as { peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }
      for (const { topic, subscribe } of subscriptions) {
        if (!subscribe) continue
        for (const h of this.subscriberHandlers.get(topic) ?? []) h(peerId.toString())
      }
    }
    this.onIdentify = (evt) => {
      const { peerId, protocols } = evt.detail as { peerId: PeerId, protocols: string[] }
      if (!protocols.some(p => p.startsWith('/webrtc-signaling/'))) remember(this.refusesWebRTC, peerId.toString(), true)
      else this.refusesWebRTC.delete(peerId.toString())
      this.noteKeeper(peerId.toString(), protocols.includes(KEEP_PROTOCOL))
    }
    node.addEventListener('peer:identify', this.onIdentify)
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    node.addEventListener('connection:open', this.onNetworkEvent)
    node.addEventListener('connection:open', this.onConnectionOpen)
    node.addEventListener('connection:close', this.onNetworkEvent)
    node.addEventListener('connection:close', this.onConnectionClose)
    node.services.relays?.addEventListener('change', this.onNetworkEvent)
    this.lastNetworkKey = networkKey(this.networkState())
    // Peers identified before this transport existed: their protocols are in the peer store.
    for (const conn of node.getConnections()) {
      void node.peerStore.get(conn.remotePeer).then(p => { this.noteKeeper(conn.remotePeer.toString(), p.protocols.includes(KEEP_PROTOCOL)) }, () => {})
    }
  }

  /** Peers connected now that announced the keep protocol (see `Transport.keepers`). */
  keepers (): string[] {
    return [...this.keeperPeers].filter(p => this.connection(p).kind !== 'none')
  }

  onKeepers (handler: () => void): () => void {
    this.keeperListeners.add(handler)
    return () => { this.keeperListeners.delete(handler) }
  }

  /** A peer identified itself (on each new connection): note whether it keeps, and tell the listeners when it does (it may be back). */
  private noteKeeper (peer: string, keeps: boolean): void {
    if (!keeps && !this.keeperPeers.has(peer)) return
    if (keeps) this.keeperPeers.add(peer)
    else this.keeperPeers.delete(peer)
    for (const l of this.keeperListeners) {
      try { l() } catch (err) { log.warn('keepers listener threw', err) }
    }
  }

  /**
   * `'online'` while a relay holds a reservation for this node or a peer is connected; else
   * `'connecting'` while a relay attempt is under way, `'offline'` until the next one.
   */
  networkState (): NetworkState {
    const relays = this.node.services.relays?.status() ?? []
    const reserved = relays.filter(r => r.state === 'reserved').length
    const peers = new Set<string>()
    for (const c of this.node.getConnections()) {
      const id = c.remotePeer.toString()
      if (c.status === 'open' && !this.relayIds.has(id)) peers.add(id)
    }
    const online = reserved > 0 || peers.size > 0
    const trying = relays.some(r => r.state === 'connecting' || r.state === 'connected')
    const waits = relays.map(r => r.nextAttemptAt).filter((t): t is number => t !== null)
    return {
      status: online ? 'online' : trying || relays.length === 0 ? 'connecting' : 'offline',
      nextAttemptAt: !online && !trying && waits.length > 0 ? Math.min(...waits) : null,
      reserved,
      connectedPeers: peers.size,
      relays,
      error: online ? null : relays.find(r => r.error !== null)?.error ?? null
    }
  }

  onNetworkChange (handler: (state: NetworkState) => void): () => void {
    this.networkListeners.add(handler)
    return () => { this.networkListeners.delete(handler) }
  }

  /** Retry every relay that holds no reservation now (see `RelayKeeper.retryNow`). */
  reconnect (): void {
    this.node.services.relays?.retryNow('asked to reconnect')
  }

  private networkChanged (): void {
    if (this.networkListeners.size === 0) return
    const state = this.networkState()
    const key = networkKey(state)
    if (key === this.lastNetworkKey) return
    this.lastNetworkKey = key
    for (const l of this.networkListeners) {
      try { l(state) } catch (err) { log.warn('network listener threw', err) }
    }
  }

  /**
   * A peer's last direct connection closed: forget when it was first heard and last dialled, so it
   * is found again as a new peer would be (through the relay, then upgraded, the smaller id dialling
   * first) rather than by both sides at once.
   */
  private connectionClosed (conn: Connection): void {
    const peer = conn.remotePeer.toString()
    if (this.keeperPeers.has(peer) && this.connection(peer).kind === 'none') {
      for (const l of this.keeperListeners) {
        try { l() } catch (err) { log.warn('keepers listener threw', err) }
      }
    }
    if (!isDirect(conn) || this.relayIds.has(peer) || this.connection(peer).kind === 'direct') return
    this.firstHeard.delete(peer)
    this.lastUpgradeAttempt.delete(peer)
  }

  /** A connection opened: once a peer is directly connected, its relayed circuits are let go (see `closeCircuits`). */
  private connectionOpened (conn: Connection): void {
    const peer = conn.remotePeer.toString()
    if (this.relayIds.has(peer)) return
    this.scheduleCircuitClose(peer)
  }

  private scheduleCircuitClose (peer: string): void {
    const timer = setTimeout(() => {
      this.circuitTimers.delete(timer)
      this.closeCircuits(peer)
    }, this.opts.circuitLingerMs)
    this.circuitTimers.add(timer)
  }

  /**
   * Close the relayed circuits to `peer` while a direct connection to it is open (docs/design.md,
   * "Staying connected"). A circuit left open keeps costing: libp2p's connection monitor pings it
   * every few seconds, and each ping crosses the relay encrypted twice (the circuit's Noise inside
   * the relay connection's). A circuit still carrying a request (a snapshot offer, say)
   * is looked at again `circuitLingerMs` later, for as long as it lives (the relay limits that); a
   * request that needs a circuit after the direct connection fails dials a new one (`connect`).
   */
  private closeCircuits (peer: string): void {
    if (this.node.status !== 'started' || this.connection(peer).kind !== 'direct') return
    let busy = false
    for (const c of this.node.getConnections(peerIdFromString(peer))) {
      if (isDirect(c) || c.status !== 'open') continue
      if (c.streams.some(s => !HOUSEKEEPING_PROTOCOLS.has(s.protocol ?? ''))) {
        busy = true
        continue
      }
      log.debug(`closing the relayed circuit to ${peer}: directly connected`)
      void c.close().catch(err => { c.abort(err as Error) })
    }
    if (busy) this.scheduleCircuitClose(peer)
  }

  /** Whether `peer` is one of the configured relays. */
  isRelay (peer: string): boolean { return this.relayIds.has(peer) }

  /**
   * Subscribe to `topic`. A `validate` function becomes the topic's gossipsub validator: a
   * message it refuses is neither delivered nor forwarded. Refusals are reported to gossipsub as
   * IGNORE, not REJECT: REJECT lowers the score of the peer that forwarded the message, and that
   * peer is usually the relay, so a hostile peer could otherwise get every replica to cut off
   * its relay.
   */
  subscribe (topic: string, handler: MessageHandler, options: SubscribeOptions = {}): () => void {
    let set = this.handlers.get(topic)
    if (set === undefined) {
      this.handlers.set(topic, set = new Set())
      const checks = new Set<NonNullable<SubscribeOptions['validate']>>()
      this.validators.set(topic, checks)
      const limit = messageValidator(topic, this.guard, this.limits.maxMessageBytes, this.peerId)
      // First the per-peer rate and size limits, then every subscriber's own check.
      this.node.services.pubsub.topicValidators.set(topic, async (peer, msg) => {
        const verdict = await limit(peer, msg)
        if (verdict !== TopicValidatorResult.Accept || msg.type !== 'signed' || checks.size === 0) return verdict
        const from = msg.from.toString()
        for (const check of checks) {
          let ok = false
          try { ok = await check(msg.data, from) } catch (err) { log.warn(`validator of ${topic} threw`, err) }
          if (!ok) return TopicValidatorResult.Ignore
        }
        return TopicValidatorResult.Accept
      })
      this.node.services.pubsub.subscribe(topic)
    }
    set.add(handler)
    const validate = options.validate
    if (validate !== undefined) this.validators.get(topic)?.add(validate)
    return () => {
      set.delete(handler)
      if (validate !== undefined) this.validators.get(topic)?.delete(validate)
      if (set.size === 0 && this.handlers.get(topic) === set) {
        this.handlers.delete(topic)
        this.validators.delete(topic)
        this.node.services.pubsub.topicValidators.delete(topic)
        if (this.node.status === 'started') this.node.services.pubsub.unsubscribe(topic)
      }
    }
  }

  async publish (topic: string, data: Uint8Array): Promise<void> {
    if (this.node.status !== 'started') return
    await this.node.services.pubsub.publish(topic, data)
  }

  onSubscriber (topic: string, handler: (peer: string) => void): () => void {
    let set = this.subscriberHandlers.get(topic)
    if (set === undefined) this.subscriberHandlers.set(topic, set = new Set())
    set.add(handler)
    return () => { set.delete(handler) }
  }

  subscribers (topic: string): string[] {
    return this.node.services.pubsub.getSubscribers(topic).map(p => p.toString()).filter(p => !this.relayIds.has(p))
  }

  async request (peer: string, protocol: string, data: Uint8Array, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    const timeoutMs = options.timeoutMs ?? 10_000
    const signal = AbortSignal.timeout(timeoutMs)
    let stream: Stream | undefined
    try {
      stream = await this.openStream(peer, protocol, signal)
      const lp = lpStream(stream, { maxDataLength: this.limits.maxMessageBytes })
      await lp.write(data, { signal })
      const response = await lp.read({ signal })
      void stream.close().catch(() => {})
      return response.subarray()
    } catch (err) {
      // A stream given up on is reset, not left open on both sides.
      stream?.abort(err as Error)
      if (signal.aborted) throw new TimeoutError(`request ${protocol} to ${peer} timed out after ${timeoutMs} ms`)
      throw new NetworkError(`request ${protocol} to ${peer} failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * A new stream to `peer` on `protocol`. Tries the open connections, newest direct one first, then
   * relayed ones, then dials a relayed circuit. A connection that cannot negotiate a stream within
   * `negotiateMs` is closed as dead: a WebRTC connection the other side dropped (after crossing
   * dials, say) is otherwise noticed only when the connection monitor gives up on it. A peer that
   * answers it does not speak `protocol` is alive: its connection, and the streams on it, stay.
   *
   * A direct connection the other side dialled moments ago is judged within `FRESH_NEGOTIATE_MS`:
   * that is the one left dead when the other side's dial hangs after this side already upgraded —
   * @libp2p/webrtc's initiator waiting for its `init` channel to open when it already opened and
   * was closed (patches/@libp2p+webrtc+6.0.33.patch fixes that; an app installing an unpatched
   * @libp2p/webrtc still meets it, in about a third of the joins of the catch-up bench).
   */
  private async openStream (peer: string, protocol: string, signal: AbortSignal, negotiateMs = 2000): Promise<Stream> {
    const tried = new Set<Connection>()
    const errors: string[] = []
    for (;;) {
      const conn = await this.connect(peer, signal, tried)
      tried.add(conn)
      // A direct connection the other side dialled a moment ago is the kind left dead by a hung
      // dial (see above): judge it sooner, since a new one is dialled at once (see below). On a
      // live one a stream takes two round trips.
      const direct = isDirect(conn)
      const fresh = direct && conn.direction === 'inbound' && Date.now() - conn.timeline.open < FRESH_INBOUND_MS
      try {
        return await conn.newStream(protocol, { signal: AbortSignal.any([signal, AbortSignal.timeout(fresh ? FRESH_NEGOTIATE_MS : negotiateMs)]), runOnLimitedConnection: true })
      } catch (err) {
        if (signal.aborted) throw err
        // The peer answered that it does not speak the protocol: the connection works; keep it.
        if ((err as Error).name === 'UnsupportedProtocolError') throw err
        errors.push(`${conn.remoteAddr.toString()}: ${(err as Error).message}`)
        log.debug(`closing connection to ${peer} that cannot open a stream: ${(err as Error).message}`)
        void conn.close().catch(() => { conn.abort(err as Error) }).finally(() => {
          // A dead direct connection (the other side's dial of it hung, see above): dial a new one
          // now, whichever side's turn it is, rather than wait 5–10 s for the other's retry or this
          // side's fallback.
          if (!direct) return
          remember(this.firstHeard, peer, Date.now() - this.opts.upgradeFallbackMs)
          this.lastUpgradeAttempt.delete(peer)
          this.maybeUpgrade(peer)
        })
        if (tried.size >= 4) throw new NetworkError(`no working connection to ${peer}: ${errors.join('; ')}`)
      }
    }
  }

  /**
   * As `Transport.handle`, within `limits`: a request from a banned peer, over the peer's request
   * rate, its answer budget (`answerBytesPerSecond`: refused before the handler does any work) or
   * its open streams (`streamsPerPeer`), over `maxMessageBytes`, or not sent in full within
   * `requestReadMs`, is refused (the stream is reset unanswered), and so is one the handler
   * rejects; a response the peer does not read within `responseDrainMs` is reset. Each counts
   * towards disconnecting the peer.
   */
  handle (protocol: string, handler: (data: Uint8Array, from: string) => Promise<Uint8Array>): () => void {
    void this.node.handle(protocol, async (stream, connection) => {
      const from = connection.remotePeer.toString()
      if (!this.guard.admitRequest(from, protocol) || !this.guard.admitAnswer(from, protocol) || !this.guard.openStream(from, protocol)) {
        stream.abort(new NetworkError(`${protocol} request refused: ${from} is banned, or over its request rate, answer budget or open streams`))
        return
      }
      const { maxMessageBytes, requestReadMs, responseDrainMs } = this.limits
      let draining: AbortSignal | undefined
      try {
        const lp = lpStream(stream, { maxDataLength: maxMessageBytes })
        const reading = AbortSignal.timeout(requestReadMs)
        const request = await lp.read({ signal: reading }).catch((err: Error) => {
          if (OVERSIZE_ERRORS.has(err.name)) this.guard.refuse(from, `a ${protocol} request over ${maxMessageBytes} bytes`)
          else if (reading.aborted) this.guard.refuse(from, `a ${protocol} request not sent in full within ${requestReadMs} ms`)
          throw err
        })
        const response = await handler(request.subarray(), from).catch((err: Error) => {
          this.guard.refuse(from, `a ${protocol} request its handler refused: ${err.message}`)
          throw err
        })
        this.guard.chargeAnswer(from, response.byteLength)
        draining = AbortSignal.timeout(responseDrainMs)
        await lp.write(response, { signal: draining })
        await stream.close({ signal: draining })
      } catch (err) {
        if (draining?.aborted === true) this.guard.refuse(from, `a ${protocol} response not read within ${responseDrainMs} ms`)
        log.debug(`${protocol} request from ${from} failed: ${(err as Error).message}`)
        stream.abort(err as Error)
      } finally {
        this.guard.closeStream(from)
      }
    }, { runOnLimitedConnection: true, maxInboundStreams: 64 })
    return () => { if (this.node.status === 'started') void this.node.unhandle(protocol) }
  }

  connection (peer: string): PeerConnection {
    let conns: Connection[]
    try {
      conns = this.node.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open')
    } catch {
      return { kind: 'none', transport: 'none' }
    }
    const direct = conns.find(isDirect)
    if (direct !== undefined) {
      const addr = direct.remoteAddr.toString()
      return { kind: 'direct', transport: addr.includes('/webrtc') ? 'webrtc' : addr.includes('/ws') ? 'websockets' : 'direct' }
    }
    const relayed = conns.filter(c => !circuitSpent(c)).sort((a, b) => b.timeline.open - a.timeline.open)[0]
    if (relayed !== undefined) {
      const left = relayed.limits?.bytes
      return { kind: 'relayed', transport: 'circuit-relay', whyNotDirect: this.whyNotDirect(peer), ...(left !== undefined ? { remainingBytes: Number(left) } : {}) }
    }
    return { kind: 'none', transport: 'none', whyNotDirect: this.whyNotDirect(peer) }
  }

  /** Why `peer` has no direct connection now, for diagnostics. */
  private whyNotDirect (peer: string): string {
    if (!this.opts.directConnections) return 'direct connections are turned off here'
    if (this.refusesWebRTC.has(peer)) return 'the peer does not take WebRTC connections (relay-only)'
    if (this.upgrading.has(peer)) return 'upgrading to WebRTC now'
    const failed = this.upgradeErrors.get(peer)
    if (failed !== undefined) return `the last WebRTC upgrade failed: ${failed}`
    if (!this.firstHeard.has(peer)) return 'not heard from directly yet'
    if (this.peerId > peer) return 'waiting for the peer to dial (the smaller peer id dials first)'
    return 'an upgrade is due'
  }

  onConnectionChange (handler: () => void): () => void {
    const h = (): void => { handler() }
    this.node.addEventListener('connection:open', h)
    this.node.addEventListener('connection:close', h)
    return () => {
      this.node.removeEventListener('connection:open', h)
      this.node.removeEventListener('connection:close', h)
    }
  }

  /** Stop listening to pubsub events (the node itself is stopped by its owner). */
  close (): void {
    this.stopRefusingBanned()
    for (const topic of this.handlers.keys()) this.node.services.pubsub.topicValidators.delete(topic)
    this.node.removeEventListener('peer:identify', this.onIdentify)
    this.node.removeEventListener('connection:open', this.onNetworkEvent)
    this.node.removeEventListener('connection:close', this.onNetworkEvent)
    this.node.removeEventListener('connection:close', this.onConnectionClose)
    this.node.services.relays?.removeEventListener('change', this.onNetworkEvent)
    this.networkListeners.clear()
    this.keeperListeners.clear()
    this.node.services.pubsub.removeEventListener('message', this.onMessage)
    this.node.services.pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
  }

  /**
   * An open connection to `peer`, preferring a direct one. Without one, a request goes over a
   * relayed circuit (`<relay>/p2p-circuit/p2p/<peer>`, limited by the relay) and asks for a direct
   * upgrade, which only `maybeUpgrade` dials: requests never dial WebRTC themselves, because two
   * crossing WebRTC dials leave one connection whose new streams can hang in negotiation.
   */
  private async connect (peer: string, signal: AbortSignal, exclude: Set<Connection>): Promise<Connection> {
    const id = peerIdFromString(peer)
    const open = this.node.getConnections(id).filter(c => c.status === 'open' && !exclude.has(c))
    // A relayed circuit close to its data limit is let go for a new one: the relay would reset it
    // in the middle of the next answer.
    for (const c of open) if (circuitSpent(c)) void c.close().catch(() => { c.abort(new Error('relayed circuit spent')) })
    const newestFirst = (a: Connection, b: Connection): number => b.timeline.open - a.timeline.open
    const direct = open.filter(isDirect).sort(newestFirst)
    if (direct.length === 0) this.maybeUpgrade(peer)
    const best = direct[0] ?? open.filter(c => !circuitSpent(c)).sort(newestFirst)[0]
    if (best !== undefined) return best
    const errors: string[] = []
    for (const target of this.relays.map(r => multiaddr(`${r.toString()}/p2p-circuit/p2p/${peer}`))) {
      try {
        // `force`: a new circuit even while a spent or failed one to this peer is still closing
        // (libp2p would otherwise hand that one back).
        const conn = await this.node.dial(target, { signal, force: true })
        if (!exclude.has(conn)) return conn
        errors.push(`${target.toString()}: only a connection already tried`)
      } catch (err) {
        errors.push((err as Error).message)
      }
    }
    throw new NetworkError(`cannot reach ${peer}: ${errors.join('; ')}`)
  }

  /** Open a direct WebRTC connection to a peer heard only through the relay. */
  private maybeUpgrade (peer: string): void {
    if (!this.opts.directConnections || this.node.status !== 'started' || this.upgrading.has(peer)) return
    if (this.connection(peer).kind === 'direct') return
    const now = Date.now()
    // A peer that told us (identify) its protocols and has no WebRTC signalling is relay-only.
    if (this.refusesWebRTC.has(peer)) return
    if (!this.firstHeard.has(peer)) {
      // Origins cost nothing to make: dial peers heard for the first time at a bounded rate (a
      // peer passed over now is dialled when heard again), and remember a bounded number of them.
      if (!this.guard.admitNewPeerDial()) return
      remember(this.firstHeard, peer, now)
    }
    const mine = this.peerId < peer
    if (!mine && now - (this.firstHeard.get(peer) as number) < this.opts.upgradeFallbackMs) return
    if (now - (this.lastUpgradeAttempt.get(peer) ?? 0) < this.opts.upgradeBackoffMs) return
    remember(this.lastUpgradeAttempt, peer, now)
    this.upgrading.add(peer)
    void (async () => {
      for (const target of this.relays.map(r => multiaddr(`${r.toString()}/p2p-circuit/webrtc/p2p/${peer}`))) {
        if (this.connection(peer).kind === 'direct') return // the other side's dial won
        try {
          await dialWithRetry(this.node, target, 2)
          log.debug(`direct connection to ${peer} via ${target.toString()}`)
          this.upgradeErrors.delete(peer)
          return
        } catch (err) {
          log.debug(`WebRTC upgrade to ${peer} failed: ${(err as Error).message}`)
          remember(this.upgradeErrors, peer, (err as Error).message)
        }
      }
    })().finally(() => { this.upgrading.delete(peer) })
  }
}
