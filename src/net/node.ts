/**
 * libp2p node factories (docs/design.md, "Staying connected"):
 * browsers (and Node peers) reach a circuit-relay-v2 relay over WebSockets, reserve a slot, become
 * dialable at `<relay>/p2p-circuit/webrtc/p2p/<peer>`, and upgrade to direct WebRTC.
 *
 * One piece, though over 400 lines: the peer node and the relay node share their services and
 * their settings (gossipsub's limits, message id and mesh, the guard), which must agree for the
 * two to talk; splitting them would put one setting in two files.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { webSockets } from '@libp2p/websockets'
import { webRTC } from '@libp2p/webrtc'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { TopicValidatorResult, gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { WebRTC } from '@multiformats/multiaddr-matcher'
import { type AbortOptions, type Connection, type PrivateKey, type Stream, type StreamMessageEvent } from '@libp2p/interface'
import { peerIdFromMultihash, peerIdFromString } from '@libp2p/peer-id'
import * as Digest from 'multiformats/hashes/digest'
import { NetworkError, TimeoutError, ValidationError } from '../errors.js'
import { createLogger } from '../log.js'
import { type LimitsOptions, resolveLimits } from '../sync/limits.js'
import { MAX_MESSAGE_BYTES, TOPIC_PREFIX } from '../sync/wire.js'
import { PeerGuard, messageValidator, refuseBanned } from './guard.js'
import { ensureRuntime } from './runtime.js'
import { type RelayKeeper, type RelayKeeperInit, relayKeeper } from './relays.js'

const log = createLogger('net')

/** Services every KiteDB peer runs. */
export type PeerServices = {
  pubsub: GossipSub
  ping: Ping
  identify: unknown
  /** the relay keeper (peer nodes only; absent on a relay node) */
  relays: RelayKeeper
  [name: string]: unknown
}

/** A KiteDB libp2p peer node. */
export type PeerNode = Libp2p<PeerServices>

/**
 * Dialling any multiaddr is allowed: the browser's default gater refuses ws:// and loopback
 * addresses, which is exactly what a local relay uses. Restrict this for a deployment.
 */
const openGater = { denyDialMultiaddr: async () => false }

/** Room for gossipsub's envelope (topic, origin, sequence number, key, signature) around a message, bytes. */
const RPC_ENVELOPE_BYTES = 64 * 1024

/**
 * Gossipsub settings shared by peers and relays. IP-colocation scoring is off: every browser
 * behind one NAT (an office, a home, or 127.0.0.1 in tests) shares an IP, and with gossipsub's
 * default (−5 per peer beyond 10 per IP, scores kept for an hour after disconnect) the relay soon
 * refuses every new peer's GRAFT, so nothing is forwarded between peers that are not yet directly
 * connected. An inbound RPC over the message limit plus its envelope is dropped before decoding;
 * `maxOutboundBufferSize` bounds what is queued for one slow peer (its stream is reset beyond it).
 */
function pubsubService (maxOutboundBufferSize?: number, mesh?: typeof PEER_MESH): ReturnType<typeof gossipsub> {
  return gossipsub({
    ...mesh,
    allowPublishToZeroTopicPeers: true,
    emitSelf: false,
    fastMsgIdFn: fastMessageId,
    scoreParams: { IPColocationFactorWeight: 0 },
    maxInboundDataLength: MAX_MESSAGE_BYTES + RPC_ENVELOPE_BYTES,
    ...(maxOutboundBufferSize !== undefined ? { maxOutboundBufferSize } : {})
  })
}

/**
 * A peer's gossipsub mesh: smaller than gossipsub's default (D 6, 4–12, 6 told of what it has).
 * A peer floods what it publishes to every subscriber it is connected to (gossipsub's
 * `floodPublish`), and in a room the peers end up connected to each other directly, so every copy
 * a mesh forwards is a duplicate: in a room of ten, most of the gossip each update cost. Three
 * mesh peers (one of them dialled by this peer, against eclipsing) still pass a message on to
 * peers the publisher has no connection to; gossip about the rest (IHAVE) and the heads'
 * republication catch what a thin mesh misses. The relay keeps the default: peers reached only
 * through it get everything from its mesh (docs/design.md, "Replication").
 */
const PEER_MESH = { D: 3, Dlo: 2, Dhi: 6, Dout: 1, Dscore: 2, Dlazy: 3 }

/**
 * Gossipsub's fast message id: the origin's peer id and sequence number, as sent. Without one,
 * gossipsub verifies a message's signature (re-encoding the message to do so) before it looks the
 * message up among those seen, so every copy a mesh peer forwards costs a verification: in a room
 * of ten pages, most of the relay's CPU per update and a good part of each page's (docs/design.md,
 * "Replication"). It names what gossipsub's own id (origin key and sequence number) names, and
 * gossipsub remembers it only for messages that passed validation, so a forged copy seen first
 * cannot shadow the real message. Bytes as char codes: cheap, and never compared to anything but
 * another fast id. A malformed message (no origin or sequence number, or either of the wrong size)
 * gets an id no valid one has.
 */
export function fastMessageId (msg: { from?: Uint8Array | null, seqno?: Uint8Array | null }): string {
  // a valid origin is a peer id (at most 42 bytes: an inlined Ed25519 or secp256k1 key), a valid sequence number 8 bytes
  if (msg.from == null || msg.seqno == null || msg.from.byteLength > 64 || msg.seqno.byteLength !== 8) return ''
  return String.fromCharCode(...msg.seqno, ...msg.from)
}

/** Options of `createPeerNode`. */
export interface PeerNodeOptions {
  /** relay multiaddrs, each ending in `/p2p/<relay-peer-id>` (at least one); a reservation is kept on each */
  relays: string[]
  /** the node's identity; a new Ed25519 key when omitted */
  privateKey?: PrivateKey
  /**
   * true (default): resolve once a relay reservation and a dialable address exist, waiting up to
   * `readyTimeoutMs`; false: resolve once the node runs (relays are reached in the background,
   * see `RelayKeeper`)
   */
  waitForRelay?: boolean
  /** how long to wait for a relay reservation and a dialable WebRTC address, ms (default 15000) */
  readyTimeoutMs?: number
  /** false: no WebRTC listener (peers reach this node only through the relays); default true */
  webrtc?: boolean
  /**
   * STUN/TURN servers for WebRTC (`RTCIceServer`s), for peers behind NATs that host candidates
   * cannot cross, e.g. `[{ urls: 'stun:stun.example.org:3478' }, { urls: 'turn:turn.example.org:3478',
   * username: 'u', credential: 'p' }]`. Default none: direct connections within one network.
   */
  iceServers?: RTCIceServer[]
  /** relay reconnection tuning (see `RelayKeeperInit`) */
  relayKeeper?: Omit<RelayKeeperInit, 'relays'>
}

/** Parse relay multiaddr strings; throws `ValidationError` naming the bad one. */
export function parseRelays (relays: unknown): Multiaddr[] {
  const list = typeof relays === 'string' ? [relays] : relays
  if (!Array.isArray(list) || list.length === 0) throw new ValidationError('relays must be a non-empty list of multiaddrs ending in /p2p/<peer-id>')
  return list.map(r => {
    try {
      const ma = multiaddr(String(r))
      if (ma.getComponents().find(c => c.name === 'p2p') === undefined) throw new Error('no /p2p/<peer-id>')
      return ma
    } catch (err) {
      throw new ValidationError(`bad relay multiaddr "${String(r)}": ${(err as Error).message}`, { cause: err })
    }
  })
}

/**
 * How often libp2p's connection monitor pings every connection, and how long a ping may take
 * before the connection is closed as dead, ms. A relay or peer that vanished without closing (a
 * network cut) is noticed within about `PING_INTERVAL_MS + PING_TIMEOUT_MS`; the timeout adapts to
 * the measured round trips between its bounds.
 */
const PING_INTERVAL_MS = 5000
const PING_TIMEOUT_MS = { minTimeout: 4000, maxTimeout: 8000 }

/**
 * Start a peer node that keeps a reservation on every relay (`RelayKeeper`, the `relays`
 * service). With `waitForRelay` (the default), resolves once one relay holds a reservation and a
 * dialable address exists, else rejects with `NetworkError` (no relay reachable within
 * `readyTimeoutMs`) or `TimeoutError` (no WebRTC address); without it, resolves once the node runs.
 * Throws `ValidationError` for a bad relay multiaddr.
 */
export async function createPeerNode (options: PeerNodeOptions): Promise<PeerNode> {
  await ensureRuntime()
  const relays = parseRelays(options.relays)
  const webrtcEnabled = options.webrtc !== false
  const node = await createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    // Circuit addresses are listened on by the relay keeper, one relay at a time, as each is reached.
    addresses: { listen: webrtcEnabled ? ['/webrtc'] : [] },
    // A relay-only node has no WebRTC transport at all: it neither dials nor accepts direct connections.
    transports: webrtcEnabled
      ? [webSockets(), circuitRelayTransport(), webRTC({ rtcConfiguration: { iceServers: options.iceServers ?? [] } })]
      : [webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: openGater,
    connectionMonitor: { pingInterval: PING_INTERVAL_MS, pingTimeout: PING_TIMEOUT_MS },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: pubsubService(undefined, PEER_MESH),
      relays: relayKeeper({ ...options.relayKeeper, relays })
    }
  }) as unknown as PeerNode
  if (options.waitForRelay === false) return node
  try {
    const timeoutMs = options.readyTimeoutMs ?? 15_000
    try {
      await node.services.relays.whenReserved(timeoutMs)
    } catch (err) {
      throw new NetworkError(`cannot reach any relay (${(err as Error).message})`, { cause: err })
    }
    const ready = !webrtcEnabled
      ? () => node.getMultiaddrs().some(ma => ma.toString().includes('/p2p-circuit'))
      : () => node.getMultiaddrs().some(ma => WebRTC.exactMatch(ma))
    await waitFor(ready, timeoutMs, 'no relay reservation with a dialable address')
    return node
  } catch (err) {
    await node.stop()
    throw err
  }
}

/** One application payload the relay forwarded, as handed to `RelayNodeOptions.record`. */
export interface RelayRecord {
  /** when the relay handled it, ms since the epoch */
  time: number
  /** `'gossip'`: a gossipsub message; `'circuit'`: bytes piped through a relayed connection (end-to-end encrypted by the two peers) */
  kind: 'gossip' | 'circuit'
  /** the gossip topic (gossip only) */
  topic?: string
  /** peer id of the sender: the message's origin, or the circuit end that sent these bytes */
  from: string
  /** the peer that handed the relay a gossip message (may differ from `from`; gossip only) */
  via?: string
  /** the circuit end the bytes go to (circuit only) */
  to?: string
  /** the payload; valid only during the call (copy it to keep it) */
  data: Uint8Array
}

/** Options of `createRelayNode`. Every limit has a default meant for a public relay. */
export interface RelayNodeOptions {
  /** interface to listen on (default 127.0.0.1) */
  host?: string
  /** TCP port of the WebSocket listener (default 9091; 0 picks a free one) */
  port?: number
  /**
   * Listen for secure WebSockets (`/tls/ws`, `wss://`) with this certificate (PEM, its chain after
   * it) and private key (PEM) instead of plain ones: what pages served over HTTPS need.
   */
  tls?: { cert: string, key: string }
  /** the relay's identity, so its multiaddr survives restarts */
  privateKey?: PrivateKey
  /** most concurrent relay reservations; further peers are refused a slot (default 1024) */
  maxReservations?: number
  /** how long a reservation lasts before the peer must renew it, ms (default 3600000, one hour) */
  reservationTtlMs?: number
  /**
   * bytes one relayed connection may carry, both directions together, before the relay closes it
   * (default 131072, 128 KiB: WebRTC signalling needs a few KiB; bulk data belongs on the direct
   * connection)
   */
  relayedDataLimit?: number
  /** how long one relayed connection may stay open, ms (default 120000) */
  relayedDurationMs?: number
  /** most open connections; beyond it libp2p prunes the least useful (default 1024) */
  maxConnections?: number
  /**
   * most new connections per second from one IP address (default 50; libp2p's own default of 5
   * turns away a burst of browsers behind one NAT)
   */
  maxConnectionsPerSecondPerHost?: number
  /** most connections still being set up (encryption, muxing) at once; more are refused (default 64) */
  maxPendingConnections?: number
  /** most streams one connection may have open towards the relay at once (default 256) */
  maxStreamsPerConnection?: number
  /** bytes of gossip queued for one slow peer before its stream is reset (default 16 MiB) */
  maxGossipQueueBytes?: number
  /**
   * per-peer gossip limits: `messagesPerSecond`, `messageBurst`, `maxRefusals`, `refusalWindowMs`,
   * `banMs` as in `Limits` (defaults `DEFAULT_LIMITS`). A message over a rate or over 4 MiB is not
   * forwarded; a peer that keeps sending them is disconnected and refused for `banMs`.
   * Throws `ValidationError` when malformed.
   */
  limits?: LimitsOptions
  /**
   * Debug hook: called with every gossip message the relay accepts (and so forwards) and every
   * chunk of bytes it pipes through a relayed connection. Must not throw or keep `data`.
   */
  record?: (entry: RelayRecord) => void
  /**
   * A further check of gossip on `/kitedb/1/…` topics, after the per-peer limits: a message it
   * resolves false for is neither delivered nor forwarded (a keeper checks the inline blocks of
   * the databases it keeps: see `Keeper.checkGossip`). Must not throw.
   */
  gossipCheck?: (topic: string, data: Uint8Array, from: string) => Promise<boolean>
}

/**
 * Start a relay: WebSockets listener, circuit-relay-v2 server, gossipsub that joins every
 * `/kitedb/1/…` topic a peer subscribes to, so peers without a direct connection still hear each
 * other. The relay never needs a database key and stores nothing. It protects itself with the
 * limits of `RelayNodeOptions`: reservations, connections, streams, relayed bytes and time,
 * gossip queues, and per-peer gossip rates. Throws `ValidationError` for bad `limits`.
 */
export async function createRelayNode (options: RelayNodeOptions = {}): Promise<PeerNode> {
  await ensureRuntime()
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 9091
  const limits = resolveLimits(options.limits)
  const node = await createLibp2p({
    ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
    addresses: { listen: [`/ip4/${host}/tcp/${port}/${options.tls !== undefined ? 'tls/ws' : 'ws'}`] },
    transports: [webSockets(options.tls !== undefined ? { https: { cert: options.tls.cert, key: options.tls.key } } : {})],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: options.maxStreamsPerConnection ?? 256 })],
    connectionGater: openGater,
    connectionManager: {
      maxConnections: options.maxConnections ?? 1024,
      inboundConnectionThreshold: options.maxConnectionsPerSecondPerHost ?? 50,
      maxIncomingPendingConnections: options.maxPendingConnections ?? 64
    },
    services: {
      identify: identify(),
      ping: ping(),
      relay: circuitRelayServer({
        reservations: {
          maxReservations: options.maxReservations ?? 1024,
          reservationTtl: options.reservationTtlMs ?? 60 * 60_000,
          defaultDataLimit: BigInt(options.relayedDataLimit ?? 128 * 1024),
          defaultDurationLimit: options.relayedDurationMs ?? 120_000
        }
      }),
      pubsub: pubsubService(options.maxGossipQueueBytes ?? 16 * 1024 * 1024)
    }
  }) as unknown as PeerNode
  const self = node.peerId.toString()
  const guard = new PeerGuard(limits, {
    onBan: peer => { void node.hangUp(peerIdFromString(peer)).catch(err => { log.debug(`hang up on ${peer} failed: ${(err as Error).message}`) }) }
  })
  const stopRefusing = refuseBanned(node, guard)
  const pubsub = node.services.pubsub
  pubsub.addEventListener('subscription-change', evt => {
    for (const { topic, subscribe } of evt.detail.subscriptions) {
      if (subscribe && topic.startsWith(TOPIC_PREFIX) && !pubsub.getTopics().includes(topic)) {
        log.debug(`relay joins ${topic}`)
        const limit = messageValidator(topic, guard, limits.maxMessageBytes, self)
        const check = options.gossipCheck
        pubsub.topicValidators.set(topic, check === undefined ? limit : async (peer, msg) => {
          const verdict = await limit(peer, msg)
          if (verdict !== TopicValidatorResult.Accept || msg.type !== 'signed' || msg.from.toString() === self) return verdict
          return await check(topic, msg.data, msg.from.toString()) ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
        })
        pubsub.subscribe(topic)
      }
    }
  })
  const record = options.record
  if (record !== undefined) {
    pubsub.addEventListener('gossipsub:message', evt => {
      const { msg, propagationSource } = evt.detail
      record({ time: Date.now(), kind: 'gossip', topic: msg.topic, from: msg.type === 'signed' ? msg.from.toString() : 'unsigned', via: propagationSource.toString(), data: msg.data })
    })
    recordCircuits(node.services.relay, record)
  }
  // Leave topics nobody subscribes to any more, so the relay's state stays bounded.
  const prune = setInterval(() => {
    for (const topic of pubsub.getTopics()) {
      if (pubsub.getSubscribers(topic).length > 0) continue
      pubsub.unsubscribe(topic)
      pubsub.topicValidators.delete(topic)
    }
  }, 30_000)
  node.addEventListener('stop', () => { clearInterval(prune); stopRefusing() })
  return node
}

/** The part of the circuit-relay-v2 server (`CircuitRelayServer.stopHop`, public in 4.2) the record hook wraps. */
interface StopHop {
  stopHop: (args: { connection: Connection, request: { peer?: { id: Uint8Array } } }, options: AbortOptions) => Promise<Stream | undefined>
}

/**
 * Record the bytes of every relayed connection. `stopHop` opens the stream to the target peer
 * that the server then pipes to the dialer's stream; wrapping that stream's `send` (dialer →
 * target) and its `message` dispatch (target → dialer) sees both directions without adding a
 * reader, so the pipe's flow control is untouched.
 */
function recordCircuits (service: unknown, record: (entry: RelayRecord) => void): void {
  const server = service as StopHop
  const stopHop = server.stopHop.bind(server)
  server.stopHop = async (args, options) => {
    const dst = await stopHop(args, options)
    if (dst === undefined || args.request.peer === undefined) return dst
    const target = args.connection.remotePeer.toString()
    let dialer = 'unknown'
    try { dialer = peerIdFromMultihash(Digest.decode(args.request.peer.id)).toString() } catch { /* not a peer id: recorded as unknown */ }
    const send = dst.send.bind(dst)
    dst.send = data => {
      record({ time: Date.now(), kind: 'circuit', from: dialer, to: target, data: data.subarray() })
      return send(data)
    }
    const dispatch = dst.dispatchEvent.bind(dst)
    dst.dispatchEvent = evt => {
      if (evt.type === 'message') record({ time: Date.now(), kind: 'circuit', from: target, to: dialer, data: (evt as StreamMessageEvent).data.subarray() })
      return dispatch(evt)
    }
    return dst
  }
}

/** Dial with retries: a first WebRTC dial sometimes times out (ICE), and a second one succeeds. */
export async function dialWithRetry (node: PeerNode, target: Multiaddr, attempts: number, timeoutMs = 8000): Promise<void> {
  let last: unknown
  for (let i = 0; i < attempts; i++) {
    try {
      await node.dial(target, { signal: AbortSignal.timeout(timeoutMs) })
      return
    } catch (err) {
      last = err
      log.debug(`dial ${target.toString()} failed (attempt ${i + 1}/${attempts}): ${(err as Error).message}`)
    }
  }
  throw new NetworkError(`cannot dial ${target.toString()}: ${(last as Error)?.message ?? 'unknown error'}`, { cause: last })
}

async function waitFor (cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new TimeoutError(`${what} after ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
