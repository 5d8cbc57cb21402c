/**
 * Per-peer rate limits and bans (the rates of `Limits`): one token bucket per peer for stream
 * requests, one per peer and topic for gossip messages, and one per peer for the bytes answered
 * to it; a count of each peer's open streams. What goes over a rate or a count is refused; so are
 * oversized, malformed and too slow input, reported with `refuse`. A peer refused `maxRefusals`
 * times within `refusalWindowMs` is banned for `banMs` and handed to `onBan` (which disconnects
 * it). Each peer is logged at most once per window, not once per refused message.
 *
 * The answer budget is charged after the fact (a response's size is known only once made) and
 * may go below zero: a peer whose budget is spent has its next requests refused before any work
 * is done for them, until it refills. So the bytes answered to a peer over any time `T` are at
 * most `answerBurstBytes + T × answerBytesPerSecond` plus one response.
 *
 * State is bounded by the peers recently heard from: idle buckets, old windows and expired bans
 * are swept lazily (at most once per window), with no timer to stop; stream counts by the
 * streams open.
 */
import { TopicValidatorResult, type Message, type TopicValidatorFn } from '@libp2p/gossipsub'
import { type Connection } from '@libp2p/interface'
import { type Libp2p } from 'libp2p'
import { type Limits } from '../sync/limits.js'
import { createLogger } from '../log.js'

const log = createLogger('net')

interface Bucket { tokens: number, at: number }
interface Window { start: number, count: number }

/** Options of `PeerGuard`. */
export interface PeerGuardOptions {
  /** called once when a peer is banned, with why: disconnect it here */
  onBan?: (peer: string, reason: string) => void
  /** peers never banned (the relays this node depends on); their excess is still refused */
  exempt?: (peer: string) => boolean
  /** clock, ms (default `Date.now`; tests pass their own) */
  now?: () => number
}

/** Enforces `Limits`' per-peer rates; see the module comment. */
export class PeerGuard {
  private readonly limits: Limits
  private readonly opts: PeerGuardOptions
  private readonly now: () => number
  private readonly buckets = new Map<string, Bucket>()
  private readonly windows = new Map<string, Window>()
  private readonly bans = new Map<string, number>()
  /** per peer: its streams open now */
  private readonly streams = new Map<string, number>()
  private lastSweep: number

  constructor (limits: Limits, options: PeerGuardOptions = {}) {
    this.limits = limits
    this.opts = options
    this.now = options.now ?? Date.now
    this.lastSweep = this.now()
  }

  /** Whether `peer` may make one more stream request now (takes a token). False when banned or over the rate. */
  admitRequest (peer: string, protocol: string): boolean {
    if (this.isBanned(peer)) return false
    if (this.take(`r ${peer}`, this.limits.requestsPerSecond, this.limits.requestBurst)) return true
    this.refuse(peer, `over ${this.limits.requestsPerSecond} requests/s (${protocol})`)
    return false
  }

  /**
   * Whether the connection of `forwarder` may deliver one more gossip message now, whatever its
   * origin (takes a token of `forwardedPerSecond`, burst twice that). Refusals count against the
   * forwarder: a peer that floods messages under fresh origins is the one disconnected.
   */
  admitForwarded (forwarder: string): boolean {
    if (this.isBanned(forwarder)) return false
    if (this.take(`f ${forwarder}`, this.limits.forwardedPerSecond, 2 * this.limits.forwardedPerSecond)) return true
    this.refuse(forwarder, `delivering over ${this.limits.forwardedPerSecond} gossip messages/s`)
    return false
  }

  /** Whether a direct connection to a peer heard for the first time may be dialled now (takes a token of `newPeerDialsPerSecond`, burst 8). */
  admitNewPeerDial (): boolean {
    return this.take('d', this.limits.newPeerDialsPerSecond, 8)
  }

  /** Whether a message `peer` published on `topic` may be delivered now (takes a token). False when banned or over the rate. */
  admitMessage (peer: string, topic: string): boolean {
    if (this.isBanned(peer)) return false
    if (this.take(`m ${peer} ${topic}`, this.limits.messagesPerSecond, this.limits.messageBurst)) return true
    this.refuse(peer, `over ${this.limits.messagesPerSecond} messages/s on ${topic}`)
    return false
  }

  /**
   * Whether `peer` may open one more stream now (fewer than `streamsPerPeer` open); counts it
   * when so: call `closeStream` when it ends. False (a refusal) when not.
   */
  openStream (peer: string, protocol: string): boolean {
    const open = this.streams.get(peer) ?? 0
    if (open >= this.limits.streamsPerPeer) {
      this.refuse(peer, `over ${this.limits.streamsPerPeer} streams open at once (${protocol})`)
      return false
    }
    this.streams.set(peer, open + 1)
    return true
  }

  /** One stream `openStream` admitted has ended. */
  closeStream (peer: string): void {
    const open = (this.streams.get(peer) ?? 1) - 1
    if (open > 0) this.streams.set(peer, open)
    else this.streams.delete(peer)
  }

  /** Streams `peer` has open now (as counted by `openStream`). */
  openStreams (peer: string): number { return this.streams.get(peer) ?? 0 }

  /** Whether `peer`'s answer budget is not spent, so a request of it may be answered. False (a refusal) when it is. */
  admitAnswer (peer: string, protocol: string): boolean {
    if (this.answerTokens(peer) > 0) return true
    this.refuse(peer, `over ${this.limits.answerBytesPerSecond} bytes answered per second (${protocol})`)
    return false
  }

  /** Charge `bytes` answered to `peer` against its answer budget (which may go below zero). */
  chargeAnswer (peer: string, bytes: number): void {
    this.answerTokens(peer)
    const b = this.buckets.get(`a ${peer}`) as Bucket
    b.tokens -= bytes
  }

  /** `peer`'s answer budget now, bytes (refilled at `answerBytesPerSecond` up to `answerBurstBytes`). */
  private answerTokens (peer: string): number {
    const now = this.now()
    this.sweep(now)
    const key = `a ${peer}`
    let b = this.buckets.get(key)
    if (b === undefined) this.buckets.set(key, b = { tokens: this.limits.answerBurstBytes, at: now })
    b.tokens = Math.min(this.limits.answerBurstBytes, b.tokens + (now - b.at) * this.limits.answerBytesPerSecond / 1000)
    b.at = now
    return b.tokens
  }

  /** Count one refusal of `peer`'s input, for `reason`; bans the peer when it reaches `maxRefusals` in the window. */
  refuse (peer: string, reason: string): void {
    if (this.isBanned(peer)) return
    const now = this.now()
    this.sweep(now)
    let w = this.windows.get(peer)
    if (w === undefined || now - w.start >= this.limits.refusalWindowMs) {
      this.windows.set(peer, w = { start: now, count: 0 })
      log.warn(`refusing input from ${peer}: ${reason} (more refusals in the next ${this.limits.refusalWindowMs} ms are not logged)`)
    }
    w.count++
    if (w.count < this.limits.maxRefusals) return
    this.windows.delete(peer)
    if (this.opts.exempt?.(peer) === true) return
    this.bans.set(peer, now + this.limits.banMs)
    const why = `${w.count} refusals within ${this.limits.refusalWindowMs} ms, the last: ${reason}`
    log.warn(`disconnecting ${peer} and refusing it for ${this.limits.banMs} ms: ${why}`)
    this.opts.onBan?.(peer, why)
  }

  /** Whether `peer` is banned right now. */
  isBanned (peer: string): boolean {
    const until = this.bans.get(peer)
    if (until === undefined) return false
    if (this.now() < until) return true
    this.bans.delete(peer)
    return false
  }

  private take (key: string, rate: number, burst: number): boolean {
    const now = this.now()
    this.sweep(now)
    let b = this.buckets.get(key)
    if (b === undefined) this.buckets.set(key, b = { tokens: burst, at: now })
    b.tokens = Math.min(burst, b.tokens + (now - b.at) * rate / 1000)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens--
    return true
  }

  /** Forget full buckets, closed windows and expired bans (at most once per window). */
  private sweep (now: number): void {
    if (now - this.lastSweep < this.limits.refusalWindowMs) return
    this.lastSweep = now
    const fullAfterMs = 1000 * Math.max(
      this.limits.requestBurst / this.limits.requestsPerSecond,
      this.limits.messageBurst / this.limits.messagesPerSecond,
      2, // forwarded messages: a burst of two seconds' worth
      8 / this.limits.newPeerDialsPerSecond,
      // a budget in debt by up to one response refills from there
      (this.limits.answerBurstBytes + this.limits.maxMessageBytes) / this.limits.answerBytesPerSecond
    )
    for (const [k, b] of this.buckets) if (now - b.at >= fullAfterMs) this.buckets.delete(k)
    for (const [k, w] of this.windows) if (now - w.start >= this.limits.refusalWindowMs) this.windows.delete(k)
    for (const [k, until] of this.bans) if (now >= until) this.bans.delete(k)
  }
}

/**
 * A gossipsub topic validator enforcing `guard` and `maxMessageBytes` on `topic`: a message over
 * the size, over its delivering connection's rate (`admitForwarded`) or its origin's, or from a
 * banned origin or forwarder, is neither delivered nor forwarded (`Ignore`, not `Reject`: gossipsub
 * would lower the forwarder's score, and it is often the relay). Messages without an origin
 * (unsigned) are ignored; this node's own are accepted.
 */
export function messageValidator (topic: string, guard: PeerGuard, maxMessageBytes: number, self: string): TopicValidatorFn {
  return (forwarder, msg: Message) => {
    if (msg.type !== 'signed') return TopicValidatorResult.Ignore
    const from = msg.from.toString()
    if (from === self) return TopicValidatorResult.Accept
    if (!guard.admitForwarded(forwarder.toString())) return TopicValidatorResult.Ignore
    if (msg.data.byteLength > maxMessageBytes) {
      guard.refuse(from, `a message of ${msg.data.byteLength} bytes on ${topic}, over ${maxMessageBytes}`)
      return TopicValidatorResult.Ignore
    }
    return guard.admitMessage(from, topic) ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
  }
}

/**
 * Close every connection a banned peer opens to or from `node` while the ban lasts. Returns a
 * function that stops doing so.
 */
export function refuseBanned (node: Libp2p, guard: PeerGuard): () => void {
  const onOpen = (evt: CustomEvent<Connection>): void => {
    const conn = evt.detail
    if (!guard.isBanned(conn.remotePeer.toString())) return
    log.debug(`closing a new connection of banned peer ${conn.remotePeer.toString()}`)
    void conn.close().catch(err => { conn.abort(err as Error) })
  }
  node.addEventListener('connection:open', onOpen)
  return () => { node.removeEventListener('connection:open', onOpen) }
}
