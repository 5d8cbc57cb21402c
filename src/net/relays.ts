/**
 * Relay reservations kept for as long as a peer node runs (docs/design.md, "Staying connected").
 *
 * A browser is reachable only through a circuit-relay-v2 reservation: its WebRTC address is
 * `<relay>/p2p-circuit/webrtc/p2p/<self>`, and gossip between peers without a direct connection
 * flows through the relays. @libp2p/circuit-relay-v2 makes a reservation on a configured relay
 * once and never again after the relay connection closes (js-libp2p#3601), and a relay
 * down at start makes the listen fail for good. `RelayKeeper` owns that lifecycle instead, per
 * relay:
 *
 * - dial the relay, then reserve a slot on it (through the circuit relay transport's own listener
 *   and reservation store, so inbound circuits and the WebRTC addresses work as libp2p expects);
 * - notice a lost connection (libp2p's connection monitor pings every connection; `createPeerNode`
 *   tunes it so a dead relay is noticed within about 10 s) and a lost reservation (an audit every
 *   `auditMs`), and start over;
 * - between attempts, wait with capped exponential backoff and jitter (`retryDelay`); retry at
 *   once when the browser comes back online or a hidden tab becomes visible (`retryNow`).
 *
 * It is a libp2p service (a factory taking `components`, as js-libp2p's own services are).
 */
import { type Connection, type Logger, type PeerId, type ComponentLogger } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { createScalableCuckooFilter } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { type RelayStatus } from '../sync/transport.js'

/** Options of `relayKeeper`. */
export interface RelayKeeperInit {
  /** relay multiaddrs, each ending in `/p2p/<relay-peer-id>` */
  relays: Multiaddr[]
  /** how long one dial of a relay may take, ms (default 6000) */
  dialTimeoutMs?: number
  /** how often each relay's connection and reservation are checked, ms (default 2000) */
  auditMs?: number
  /** the backoff policy; see `retryDelay` (defaults `DEFAULT_BACKOFF`) */
  backoff?: Partial<Backoff>
}

/** Capped exponential backoff with jitter, ms. */
export interface Backoff {
  /** the delay before the first retry is drawn from [firstMs/2, firstMs] (default 500) */
  firstMs: number
  /** the largest delay after failures that took time (a timeout, an unreachable network): default 10000 */
  maxMs: number
  /**
   * the largest delay after failures that came at once (a refused connection: the host is up, the
   * relay process is not, the signature of a restart). Default 1500: such an attempt costs both
   * sides almost nothing, and a restarted relay is found within about 2 s.
   */
  maxFastMs: number
  /** a failure within this many ms counts as immediate (default 1000) */
  fastFailureMs: number
}

/** The wait before asking again a relay that refused a reservation is drawn from [this, twice this], ms. */
const REFUSED_RETRY_MS = 30_000

export const DEFAULT_BACKOFF: Backoff = { firstMs: 500, maxMs: 10_000, maxFastMs: 1500, fastFailureMs: 1000 }

/**
 * The wait before retry number `attempt` (0 for the first retry), ms: the exponential
 * `firstMs · 2^attempt` capped at `maxMs` (or `maxFastMs` after an immediate failure), then
 * "equal jitter": a uniform draw from its upper half, so retries of many clients spread out but
 * never come sooner than half the step (Brooker, "Exponential Backoff And Jitter", AWS
 * Architecture Blog, 2015). `random` returns a number in [0, 1).
 */
export function retryDelay (attempt: number, fast: boolean, policy: Backoff = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const cap = fast ? Math.min(policy.maxFastMs, policy.maxMs) : policy.maxMs
  const step = Math.min(cap, policy.firstMs * 2 ** Math.min(attempt, 30))
  return Math.round(step / 2 + random() * step / 2)
}

type RelayState = RelayStatus['state']

/** The part of the circuit relay transport's reservation store this keeper uses. */
interface ReservationStore {
  hasReservation (peer: PeerId): boolean
  addRelay (peer: PeerId, type: 'configured'): Promise<unknown>
  relayFilter?: unknown
}

/** What `RelayKeeper` needs of the node (a subset of libp2p's `Components`). */
export interface RelayKeeperComponents {
  peerId: PeerId
  logger: ComponentLogger
  events: EventTarget
  connectionManager: {
    openConnection: (peer: Multiaddr, options: { signal: AbortSignal }) => Promise<Connection>
    getConnections: (peer?: PeerId) => Connection[]
  }
  transportManager: {
    listen: (addrs: Multiaddr[]) => Promise<void>
    getTransports: () => unknown[]
  }
  addressManager: {
    getAddresses: () => Multiaddr[]
  }
}

interface Relay {
  addr: Multiaddr
  peer: PeerId
  status: RelayStatus
  /** whether the transport has a listener bound to this relay (made by its first successful reservation) */
  bound: boolean
  timer?: ReturnType<typeof setTimeout>
  attempt?: AbortController
}

/** Keeps a reservation on every configured relay; see the file's doc. */
export class RelayKeeper extends EventTarget {
  private readonly components: RelayKeeperComponents
  private readonly relays: Relay[]
  private readonly dialTimeoutMs: number
  private readonly auditMs: number
  private readonly backoff: Backoff
  private readonly log: Logger
  private running = false
  private audit?: ReturnType<typeof setInterval>
  /** reservations are made one at a time (see `reserve`) */
  private reserving: Promise<unknown> = Promise.resolve()
  private readonly onClose = (evt: Event): void => { this.connectionClosed((evt as CustomEvent<Connection>).detail) }
  private readonly onOnline = (): void => { this.retryNow('the browser is back online') }
  private readonly onVisible = (): void => {
    if ((globalThis as { document?: { visibilityState?: string } }).document?.visibilityState === 'visible') this.retryNow('the tab became visible')
  }

  constructor (components: RelayKeeperComponents, init: RelayKeeperInit) {
    super()
    this.components = components
    this.log = components.logger.forComponent('kitedb:relays')
    this.dialTimeoutMs = init.dialTimeoutMs ?? 6000
    this.auditMs = init.auditMs ?? 2000
    this.backoff = { ...DEFAULT_BACKOFF, ...init.backoff }
    const now = Date.now()
    this.relays = init.relays.map(addr => {
      const id = addr.getComponents().findLast(c => c.name === 'p2p')?.value
      if (id === undefined) throw new Error(`relay multiaddr ${addr.toString()} has no /p2p/<peer-id>`)
      const peer = peerIdFromString(id)
      return { addr, peer, bound: false, status: { addr: addr.toString(), peer: id, state: 'waiting', failures: 0, nextAttemptAt: now, error: null, since: now } }
    })
  }

  readonly [Symbol.toStringTag] = 'kitedb/relay-keeper'

  start (): void {
    this.running = true
    this.components.events.addEventListener('connection:close', this.onClose)
    const g = globalThis as { addEventListener?: (type: string, fn: () => void) => void, document?: EventTarget }
    g.addEventListener?.('online', this.onOnline)
    g.document?.addEventListener('visibilitychange', this.onVisible)
  }

  /** Called by libp2p once every service has started: the first attempt on every relay. */
  afterStart (): void {
    for (const r of this.relays) void this.connect(r)
    this.audit = setInterval(() => { this.check() }, this.auditMs)
  }

  stop (): void {
    this.running = false
    if (this.audit !== undefined) clearInterval(this.audit)
    this.components.events.removeEventListener('connection:close', this.onClose)
    const g = globalThis as { removeEventListener?: (type: string, fn: () => void) => void, document?: EventTarget }
    g.removeEventListener?.('online', this.onOnline)
    g.document?.removeEventListener('visibilitychange', this.onVisible)
    for (const r of this.relays) {
      if (r.timer !== undefined) clearTimeout(r.timer)
      r.attempt?.abort()
    }
  }

  /** Every relay's status, in the configured order. */
  status (): RelayStatus[] {
    return this.relays.map(r => ({ ...r.status }))
  }

  /** How many relays hold a reservation for this node now. */
  get reserved (): number {
    return this.relays.filter(r => r.status.state === 'reserved').length
  }

  /**
   * Try every relay that is not reserved now, without waiting for its backoff (the network came
   * back, say): waiting relays start an attempt, and an attempt under way for longer than a second
   * (likely hanging on a network that was down when it began) is abandoned and started again.
   */
  retryNow (reason: string): void {
    if (!this.running) return
    for (const r of this.relays) {
      const s = r.status
      if (s.state === 'reserved') continue
      if (s.state === 'connecting' && Date.now() - s.since < 1000) continue
      this.log('retrying %s now: %s', s.addr, reason)
      r.status.failures = 0
      r.attempt?.abort()
      void this.connect(r)
    }
  }

  /** Resolves once any relay holds a reservation; rejects with the relays' errors after `timeoutMs`. */
  async whenReserved (timeoutMs: number): Promise<void> {
    if (this.reserved > 0) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.removeEventListener('change', onChange)
        reject(new Error(this.relays.map(r => `${r.status.addr}: ${r.status.error ?? r.status.state}`).join('; ')))
      }, timeoutMs)
      const onChange = (): void => {
        if (this.reserved === 0) return
        clearTimeout(timer)
        this.removeEventListener('change', onChange)
        resolve()
      }
      this.addEventListener('change', onChange)
    })
  }

  private set (r: Relay, state: RelayState, patch: Partial<RelayStatus> = {}): void {
    const before = r.status
    const next: RelayStatus = { ...before, ...patch, state, since: before.state === state ? before.since : Date.now() }
    if (state !== 'waiting') next.nextAttemptAt = null
    r.status = next
    if (before.state !== next.state || before.error !== next.error || before.nextAttemptAt !== next.nextAttemptAt) {
      this.dispatchEvent(new CustomEvent('change', { detail: this.status() }))
    }
  }

  /** One attempt: dial (unless connected), then reserve (unless reserved). */
  private async connect (r: Relay): Promise<void> {
    if (!this.running) return
    if (r.timer !== undefined) { clearTimeout(r.timer); r.timer = undefined }
    const controller = new AbortController()
    r.attempt = controller
    const started = Date.now()
    this.set(r, 'connecting')
    try {
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(this.dialTimeoutMs)])
      if (this.connection(r) === undefined) await this.components.connectionManager.openConnection(r.addr, { signal })
      if (controller.signal.aborted) return
      this.set(r, 'connected')
      // One reservation at a time: the reservation store drops the jobs queued behind one that
      // succeeds (it clears its queue once it has "enough relays"), leaving their callers waiting.
      const turn = this.reserving.then(async () => { await this.reserve(r, signal) })
      this.reserving = turn.catch(() => {})
      await turn
      if (controller.signal.aborted || !this.running) return
      this.log('reserved a slot on %s', r.status.addr)
      this.set(r, 'reserved', { failures: 0, error: null })
    } catch (err) {
      if (controller.signal.aborted || !this.running) return
      const message = describe(err, r)
      // Only a connection refused at once is "fast" (the relay process is down, its host is up):
      // a relay with another identity or without room is retried at the ordinary pace.
      const fast = Date.now() - started < this.backoff.fastFailureMs && !/timed? ?out|abort|another peer id|refused a reservation/i.test(message)
      // A relay without room for this node is asked again much later: it frees slots only as
      // reservations expire, and its connection (gossip) stays up meanwhile.
      const delay = /refused a reservation/.test(message) ? REFUSED_RETRY_MS * (1 + Math.random()) : retryDelay(r.status.failures, fast, this.backoff)
      this.log('relay %s: %s (retrying in %d ms)', r.status.addr, message, delay)
      this.set(r, this.connection(r) !== undefined ? 'connected' : 'waiting', { failures: r.status.failures + 1, error: message, nextAttemptAt: Date.now() + delay })
      if (r.status.state === 'connected') r.status.nextAttemptAt = Date.now() + delay
      r.timer = setTimeout(() => { r.timer = undefined; void this.connect(r) }, delay)
    } finally {
      if (r.attempt === controller) r.attempt = undefined
    }
  }

  /**
   * Reserve a slot on a connected relay. The first time, through the transport manager, which
   * binds a circuit listener to this relay (its addresses, and the WebRTC addresses built on
   * them, then follow that relay's reservations); after that, through the reservation store, whose
   * new reservation the bound listener takes up.
   */
  private async reserve (r: Relay, signal: AbortSignal): Promise<void> {
    const store = this.reservationStore()
    if (store.hasReservation(r.peer) && this.advertised(r)) return
    signal.throwIfAborted()
    if (!r.bound) {
      await withSignal(this.components.transportManager.listen([multiaddr(`${r.addr.toString()}/p2p-circuit`)]), signal)
      r.bound = true
    } else {
      await withSignal(store.addRelay(r.peer, 'configured').catch(async (err: Error) => {
        // The store refuses, for good, a relay whose earlier reservation dial failed (it treats
        // such relays as invalid); the keeper judges relays itself: forget that verdict once.
        if (err.name !== 'ListenError' || !/previously invalid/.test(err.message) || store.relayFilter === undefined) throw err
        store.relayFilter = createScalableCuckooFilter(100)
        return await store.addRelay(r.peer, 'configured')
      }), signal)
    }
    if (!this.advertised(r)) {
      // The reservation is there but no listener advertises it (another path made it first):
      // bind a listener now.
      await withSignal(this.components.transportManager.listen([multiaddr(`${r.addr.toString()}/p2p-circuit`)]), signal)
    }
    if (!store.hasReservation(r.peer)) throw new Error('the relay did not grant a reservation')
  }

  /** A connection closed: a relay's, with no other open to it, means starting over. */
  private connectionClosed (conn: Connection): void {
    if (!this.running) return
    const r = this.relays.find(x => x.peer.equals(conn.remotePeer))
    if (r === undefined || this.connection(r) !== undefined) return
    if (r.status.state !== 'reserved' && r.status.state !== 'connected') return
    this.log('connection to relay %s closed', r.status.addr)
    this.set(r, 'waiting', { error: 'the connection closed', failures: 0 })
    const delay = retryDelay(0, true, this.backoff)
    r.status.nextAttemptAt = Date.now() + delay
    if (r.timer !== undefined) clearTimeout(r.timer)
    r.timer = setTimeout(() => { r.timer = undefined; void this.connect(r) }, delay)
  }

  /** The periodic audit: a reserved relay that lost its connection or its reservation starts over. */
  private check (): void {
    for (const r of this.relays) {
      if (r.status.state !== 'reserved') continue
      const conn = this.connection(r)
      if (conn !== undefined && this.reservationStore().hasReservation(r.peer) && this.advertised(r)) continue
      this.log('relay %s lost its %s', r.status.addr, conn === undefined ? 'connection' : 'reservation')
      this.set(r, conn === undefined ? 'waiting' : 'connected', { error: conn === undefined ? 'the connection closed' : 'the reservation was lost' })
      void this.connect(r)
    }
  }

  private connection (r: Relay): Connection | undefined {
    return this.components.connectionManager.getConnections(r.peer).find(c => c.status === 'open' && c.limits == null)
  }

  /** Whether this node advertises a circuit address through `r`. */
  private advertised (r: Relay): boolean {
    const marker = `/p2p/${r.status.peer}/p2p-circuit`
    return this.components.addressManager.getAddresses().some(a => a.toString().includes(marker))
  }

  private reservationStore (): ReservationStore {
    for (const t of this.components.transportManager.getTransports()) {
      const store = (t as { reservationStore?: ReservationStore }).reservationStore
      if (store !== undefined) return store
    }
    throw new Error('the node has no circuit relay transport')
  }
}

/** A libp2p service factory: `services: { relays: relayKeeper({ relays }) }`. */
export function relayKeeper (init: RelayKeeperInit): (components: RelayKeeperComponents) => RelayKeeper {
  return components => new RelayKeeper(components, init)
}

/** A readable reason for a failed attempt on `r`. */
function describe (err: unknown, r: Relay): string {
  const e = err as Error
  const message = e?.message ?? String(err)
  if (e?.name === 'UnexpectedPeerError' || /unexpected peer|expected (remote|peer)|does not match expected/i.test(message)) {
    return `the relay at ${r.status.addr} has another peer id than the link names (${message})`
  }
  if (/RESERVATION_REFUSED|status 200/.test(message)) return `the relay refused a reservation (it may be full): ${message}`
  return message
}

async function withSignal<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(new Error('timed out')) }
    if (signal.aborted) { onAbort(); return }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}
