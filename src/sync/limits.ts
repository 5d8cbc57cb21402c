/**
 * Limits on what a replica accepts from the network, in one place (`DEFAULT_LIMITS`).
 *
 * The three size limits are protocol constants: every replica must accept exactly the same blocks
 * and messages, or a block one replica applied could be refused forever by another and the two
 * would never converge. They are listed here so the whole policy reads in one table, and they are
 * not options. The rest is local policy and is options (`LimitsOptions`): the per-peer rates,
 * stream bounds and answer budget are enforced by the libp2p transport (`src/net`), so the
 * replication engine stays transport-agnostic; the want-list and snapshot-build bounds by the
 * replication engine (`src/sync`), which reads them from its transport (`Transport.limits`).
 */
import { ValidationError } from '../errors.js'
import { MAX_BLOCK_BYTES, MAX_PARENTS } from '../crdt/index.js'
import { MAX_HEADS, MAX_MESSAGE_BYTES, MAX_REQUEST_CIDS } from './wire.js'

/** Every limit a replica applies to network input. */
export interface Limits {
  /** largest encoded block or chunk accepted, bytes (1 MiB; protocol constant) */
  readonly maxBlockBytes: number
  /** largest gossip message or stream request/response accepted, bytes (4 MiB; protocol constant) */
  readonly maxMessageBytes: number
  /** most CIDs in one `/kitedb/1/blocks` request (1000; protocol constant) */
  readonly maxRequestCids: number
  /** most parents one block may name (64; protocol constant, see `MAX_PARENTS`) */
  readonly maxParents: number
  /** stream requests one peer may make to this node, per second, all protocols together (default 50) */
  requestsPerSecond: number
  /** requests one peer may make at once before `requestsPerSecond` applies (default 100) */
  requestBurst: number
  /** gossip messages one peer (their origin) may publish on one topic, per second (default 100) */
  messagesPerSecond: number
  /** messages one peer may publish on one topic at once before `messagesPerSecond` applies (default 200) */
  messageBurst: number
  /**
   * gossip messages one connection may deliver per second, whatever their origins and topics
   * (default 1000, burst twice that): origins are free to make (a fresh key per message), the
   * connection that delivers them is not. A relay delivers every peer's messages, so this is ten
   * times one origin's rate
   */
  forwardedPerSecond: number
  /**
   * new peers (origins heard for the first time) this replica dials a direct connection to per
   * second, all together (default 1, burst 8); peers heard again later are dialled then
   */
  newPeerDialsPerSecond: number
  /**
   * A peer that has this many requests refused or messages dropped (over a rate, over a size, or
   * a malformed request) within `refusalWindowMs` is disconnected and refused for `banMs`
   * (default 100)
   */
  maxRefusals: number
  /** the window in which refusals are counted, ms (default 10000) */
  refusalWindowMs: number
  /** how long a disconnected peer stays refused: its requests, messages and connections, ms (default 60000) */
  banMs: number
  /**
   * time a peer has, once it opened a stream, to send its whole request, ms (default 5000; an
   * honest request is at most about 40 KB, sent at once)
   */
  requestReadMs: number
  /**
   * time a response may take to drain to a peer (the peer must read it), ms (default 30000, the
   * longest a KiteDB requester waits); then the stream is reset
   */
  responseDrainMs: number
  /** streams one peer may have open to this node at once, all protocols together; the excess is reset (default 16) */
  streamsPerPeer: number
  /**
   * bytes of responses this node sends one peer per second on average (default 2 MiB/s); a peer
   * whose budget is spent has its requests reset unanswered, before any work, until it refills
   */
  answerBytesPerSecond: number
  /** bytes of responses one peer may get at once before `answerBytesPerSecond` applies (default 32 MiB) */
  answerBurstBytes: number
  /**
   * blocks one peer's gossip can make this replica want at once (heads it announced that are
   * not stored; default 1024, a heads message's most: `MAX_HEADS`); further announcements are ignored
   */
  maxWantsPerPeer: number
  /** blocks this replica wants at once from announcements of all peers together (default 16384) */
  maxWants: number
  /**
   * a peer may make this replica build a new snapshot at most once per this long, ms (default
   * 30000); meanwhile it is offered the latest one built (any snapshot is correct to join from)
   */
  snapshotBuildPerPeerMs: number
}

/** The local-policy part of `Limits`: what `KiteDB.init({limits})` may change. */
export type LimitsOptions = Partial<Omit<Limits, 'maxBlockBytes' | 'maxMessageBytes' | 'maxRequestCids' | 'maxParents'>>

/** The limits applied when no option is given. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxBlockBytes: MAX_BLOCK_BYTES,
  maxMessageBytes: MAX_MESSAGE_BYTES,
  maxRequestCids: MAX_REQUEST_CIDS,
  maxParents: MAX_PARENTS,
  requestsPerSecond: 50,
  requestBurst: 100,
  messagesPerSecond: 100,
  messageBurst: 200,
  forwardedPerSecond: 1000,
  newPeerDialsPerSecond: 1,
  maxRefusals: 100,
  refusalWindowMs: 10_000,
  banMs: 60_000,
  requestReadMs: 5000,
  responseDrainMs: 30_000,
  streamsPerPeer: 16,
  answerBytesPerSecond: 2 * 1024 * 1024,
  answerBurstBytes: 32 * 1024 * 1024,
  maxWantsPerPeer: MAX_HEADS,
  maxWants: 16_384,
  snapshotBuildPerPeerMs: 30_000
})

const OPTION_KEYS = [
  'requestsPerSecond', 'requestBurst', 'messagesPerSecond', 'messageBurst', 'forwardedPerSecond', 'newPeerDialsPerSecond', 'maxRefusals', 'refusalWindowMs', 'banMs',
  'requestReadMs', 'responseDrainMs', 'streamsPerPeer', 'answerBytesPerSecond', 'answerBurstBytes', 'maxWantsPerPeer', 'maxWants',
  'snapshotBuildPerPeerMs'
] as const

/**
 * `DEFAULT_LIMITS` with `options` applied. Throws `ValidationError` for an unknown key (including
 * the four protocol constants) or a value that is not a positive finite number.
 */
export function resolveLimits (options: LimitsOptions = {}): Limits {
  if (typeof options !== 'object' || options === null) throw new ValidationError('limits must be an object')
  const out: Limits = { ...DEFAULT_LIMITS }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      throw new ValidationError(`unknown limit "${key}"${key in DEFAULT_LIMITS ? ' (a protocol constant, the same on every replica)' : ''}; options: ${OPTION_KEYS.join(', ')}`)
    }
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new ValidationError(`limit ${key} must be a positive number, not ${String(value)}`)
    out[key as typeof OPTION_KEYS[number]] = value
  }
  return out
}
