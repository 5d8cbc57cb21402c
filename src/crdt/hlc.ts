/**
 * Hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks and Consistent
 * Snapshots in Globally Distributed Databases", 2014).
 *
 * A timestamp is `(t, c, r)`: `t` wall-clock milliseconds since the Unix epoch (the largest one
 * this replica has seen), `c` a counter that orders events within the same millisecond, `r` the
 * replica id that breaks the remaining ties. Timestamps are totally ordered and stay close to
 * real time.
 */
export interface Hlc {
  /** Wall-clock time in milliseconds since the Unix epoch. */
  readonly t: number
  /** Logical counter within `t`, ≥ 0. */
  readonly c: number
  /** Replica id (non-empty string). */
  readonly r: string
}

/** Total order on HLC timestamps: negative if `a < b`, 0 if equal, positive if `a > b`. */
export function compareHlc (a: Hlc, b: Hlc): number {
  if (a.t !== b.t) return a.t < b.t ? -1 : 1
  if (a.c !== b.c) return a.c < b.c ? -1 : 1
  return a.r < b.r ? -1 : a.r > b.r ? 1 : 0
}

/**
 * A replica's clock. `tick()` stamps a local event; `observe()` merges a remote timestamp so that
 * every later local event orders after everything this replica has seen.
 */
export class HybridClock {
  private t = 0
  private c = 0
  readonly replicaId: string
  private readonly now: () => number

  /**
   * @param replicaId non-empty id of this replica, the tie breaker of equal `(t, c)`.
   * @param now wall clock in ms (injectable for tests).
   */
  constructor (replicaId: string, now: () => number = Date.now) {
    if (typeof replicaId !== 'string' || replicaId.length === 0) throw new TypeError('replicaId must be a non-empty string')
    this.replicaId = replicaId
    this.now = now
  }

  /** A new timestamp, strictly greater than every timestamp this clock has issued or observed. */
  tick (): Hlc {
    const wall = this.now()
    if (wall > this.t) {
      this.t = wall
      this.c = 0
    } else {
      this.c++
    }
    return { t: this.t, c: this.c, r: this.replicaId }
  }

  /** Merge a timestamp seen in a remote block, so later `tick()`s order after it. */
  observe (remote: Hlc): void {
    if (remote.t > this.t) {
      this.t = remote.t
      this.c = remote.c
    } else if (remote.t === this.t && remote.c > this.c) {
      this.c = remote.c
    }
  }
}
