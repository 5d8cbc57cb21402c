/**
 * Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent
 * Snapshots in Globally Distributed Databases", 2014).
 *
 * A timestamp is `(t, c, r)`: `t` wall-clock milliseconds since the Unix epoch (the largest one
 * this replica has seen), `c` a counter that orders events within the same millisecond, `r` the
 * replica id that breaks the remaining ties. Timestamps are totally ordered and stay close to
 * real time.
 *
 * Bounds, so that no timestamp a peer sends can disable this replica's clock:
 * - `t` is at most `MAX_HLC_TIME` and `c` at most `MAX_HLC_COUNTER` (checked when a block is
 *   decoded, the same on every replica). `tick` never leaves them: when the counter is full it
 *   carries into `t` (one millisecond later) instead of overflowing.
 * - a remote timestamp further ahead of this replica's wall clock than `maxAheadMs` (default
 *   `MAX_CLOCK_AHEAD_MS`) is not adopted by `observe` beyond that bound. The replica refuses such
 *   blocks for now (see `Replica.verify`); the clamp covers what is already stored (a reopen) and
 *   snapshots. So a replica's HLC never runs more than `maxAheadMs` ahead of its own wall clock
 *   because of a peer, and its own blocks stay acceptable to peers whose clocks are right.
 */
export interface Hlc {
  /** Wall-clock time in milliseconds since the Unix epoch. */
  readonly t: number
  /** Logical counter within `t`, ≥ 0. */
  readonly c: number
  /** Replica id (non-empty string). */
  readonly r: string
}

/** Largest HLC wall time, ms since the epoch: the largest time a JavaScript `Date` holds (year 275760). */
export const MAX_HLC_TIME = 8.64e15

/**
 * Largest HLC counter (2^32 − 1). The counter only counts events within one millisecond of HLC
 * time (or while a replica's HLC is ahead of its wall clock), so it is never near this; the bound
 * keeps `c + 1` exact and lets `tick` carry into `t` instead of overflowing.
 */
export const MAX_HLC_COUNTER = 0xffff_ffff

/**
 * How far ahead of a replica's wall clock a remote block's HLC may be, ms: 24 hours.
 *
 * Why a day: it is wider than any time-zone or daylight-saving mistake (a device whose clock
 * runs on local time but believes it is UTC is off by at most 14 hours) and than the drift of a
 * device that never synchronises its clock, so honest devices with wrong clocks still replicate at
 * once. What it bounds: how long one writer's future timestamp can keep the HLCs of every replica
 * ahead of real time (each write meanwhile only bumps the counter), and so how long its writes
 * win over writes made concurrently, before they saw them. A block further ahead is not lost: it
 * is refused for now and fetched again later (heads are republished every few seconds, missing
 * parents are asked for again), and accepted once the receiver's clock is within the bound, so
 * every replica still converges on it.
 */
export const MAX_CLOCK_AHEAD_MS = 24 * 60 * 60 * 1000

/** Whether `(t, c)` lies within the HLC's bounds (non-negative integers up to `MAX_HLC_TIME`, `MAX_HLC_COUNTER`). */
export function isValidHlcTime (t: unknown, c: unknown): boolean {
  return Number.isSafeInteger(t) && (t as number) >= 0 && (t as number) <= MAX_HLC_TIME &&
    Number.isSafeInteger(c) && (c as number) >= 0 && (c as number) <= MAX_HLC_COUNTER
}

/** Total order on HLC timestamps: negative if `a < b`, 0 if equal, positive if `a > b`. */
export function compareHlc (a: Hlc, b: Hlc): number {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1
  if (a.c !== b.c) return a.c < b.c ? -1 : 1
  return a.r < b.r ? -1 : a.r > b.r ? 1 : 0
}

/**
 * A replica's clock. `tick()` stamps a local event; `observe()` merges a remote timestamp so that
 * every later local event orders after everything this replica has seen (within the bound above).
 */
export class HybridClock {
  private t = 0
  private c = 0
  readonly replicaId: string
  /** how far ahead of the wall clock `observe` follows a remote timestamp, ms */
  readonly maxAheadMs: number
  private readonly now: () => number

  /**
   * @param replicaId non-empty id of this replica, the tie breaker of equal `(t, c)`.
   * @param now wall clock in ms since the epoch (injectable for tests); a reading that is not a
   *   finite number counts as 0, one beyond `MAX_HLC_TIME` as `MAX_HLC_TIME`.
   * @param maxAheadMs how far ahead of `now()` a remote timestamp is followed, ms (default a day).
   * Throws `TypeError` for an empty replica id or a negative `maxAheadMs`.
   */
  constructor (replicaId: string, now: () => number = Date.now, maxAheadMs = MAX_CLOCK_AHEAD_MS) {
    if (typeof replicaId !== 'string' || replicaId.length === 0) throw new TypeError('replicaId must be a non-empty string')
    if (!(maxAheadMs >= 0)) throw new TypeError('maxAheadMs must be a non-negative number of ms')
    this.replicaId = replicaId
    this.now = now
    this.maxAheadMs = maxAheadMs
  }

  /** The wall clock, ms since the epoch, as an integer within `[0, MAX_HLC_TIME]`. */
  wallTime (): number {
    const w = this.now()
    return Number.isFinite(w) ? Math.min(Math.max(Math.floor(w), 0), MAX_HLC_TIME) : 0
  }

  /** How many ms `remote` is ahead of this replica's wall clock (negative when behind). */
  aheadOfWall (remote: Hlc): number {
    return remote.t - this.wallTime()
  }

  /**
   * A new timestamp, strictly greater than every timestamp this clock has issued or observed
   * (observed ones as clamped by `observe`). Never throws in practice: it would only at
   * `(MAX_HLC_TIME, MAX_HLC_COUNTER)`, which needs a wall clock in the year 275760.
   */
  tick (): Hlc {
    const wall = this.wallTime()
    if (wall > this.t) {
      this.t = wall
      this.c = 0
    } else if (this.c < MAX_HLC_COUNTER) {
      this.c++
    } else {
      // The counter is full: carry into the wall time rather than overflow.
      if (this.t >= MAX_HLC_TIME) throw new RangeError('the HLC has reached its largest value')
      this.t++
      this.c = 0
    }
    return { t: this.t, c: this.c, r: this.replicaId }
  }

  /**
   * Merge a timestamp seen in a remote block, so later `tick()`s order after it. A timestamp
   * further ahead of the wall clock than `maxAheadMs` is followed only up to that bound, and one
   * outside the HLC's bounds (a malformed or hostile value) as far as the bounds allow; a later
   * `tick()` is then not greater than it, which only a block that should not have been accepted
   * can cause.
   */
  observe (remote: Hlc): void {
    if (!Number.isFinite(remote.t) || !Number.isFinite(remote.c)) return
    const ceiling = Math.min(this.wallTime() + this.maxAheadMs, MAX_HLC_TIME)
    const clamped = remote.t > ceiling
    const t = clamped ? ceiling : Math.max(0, Math.floor(remote.t))
    const c = clamped ? 0 : Math.min(Math.max(0, Math.floor(remote.c)), MAX_HLC_COUNTER)
    if (t > this.t) {
      this.t = t
      this.c = c
    } else if (t === this.t && c > this.c) {
      this.c = c
    }
  }
}
