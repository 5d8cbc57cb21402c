/**
 * Limits on what a replica accepts from the network, in one place (`DEFAULT_LIMITS`).
 *
 * The three size limits are protocol constants: every replica must accept exactly the same blocks
 * and messages, or a block one replica applied could be refused forever by another and the two
 * would never converge. They are listed here so the whole policy reads in one table, and they are
 * not options. The per-peer rates are local policy and are options (`LimitsOptions`): the libp2p
 * transport (`src/net`) enforces them, so the replication engine stays transport-agnostic.
 */
import { ValidationError } from '../errors.js'
import { MAX_BLOCK_BYTES } from '../crdt/index.js'
import { MAX_MESSAGE_BYTES, MAX_REQUEST_CIDS } from './wire.js'

/** Every limit a replica applies to network input. */
export interface Limits {
  /** largest encoded block or chunk accepted, bytes (1 MiB; protocol constant) */
  readonly maxBlockBytes: number
  /** largest gossip message or stream request/response accepted, bytes (4 MiB; protocol constant) */
  readonly maxMessageBytes: number
  /** most CIDs in one `/kitedb/1/blocks` request (1000; protocol constant) */
  readonly maxRequestCids: number
  /** stream requests one peer may make to this node, per second, all protocols together (default 50) */
  requestsPerSecond: number
  /** requests one peer may make at once before `requestsPerSecond` applies (default 100) */
  requestBurst: number
  /** gossip messages one peer (their origin) may publish on one topic, per second (default 100) */
  messagesPerSecond: number
  /** messages one peer may publish on one topic at once before `messagesPerSecond` applies (default 200) */
  messageBurst: number
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
}

/** The local-policy part of `Limits`: what `KiteDB.init({limits})` may change. */
export type LimitsOptions = Partial<Omit<Limits, 'maxBlockBytes' | 'maxMessageBytes' | 'maxRequestCids'>>

/** The limits applied when no option is given. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxBlockBytes: MAX_BLOCK_BYTES,
  maxMessageBytes: MAX_MESSAGE_BYTES,
  maxRequestCids: MAX_REQUEST_CIDS,
  requestsPerSecond: 50,
  requestBurst: 100,
  messagesPerSecond: 100,
  messageBurst: 200,
  maxRefusals: 100,
  refusalWindowMs: 10_000,
  banMs: 60_000
})

const OPTION_KEYS = ['requestsPerSecond', 'requestBurst', 'messagesPerSecond', 'messageBurst', 'maxRefusals', 'refusalWindowMs', 'banMs'] as const

/**
 * `DEFAULT_LIMITS` with `options` applied. Throws `ValidationError` for an unknown key (including
 * the three protocol constants) or a value that is not a positive finite number.
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
