/**
 * A call folded with the calls that follow it, for answers a peer can trigger at any pace: each
 * trigger costs at most one call per interval, whatever their rate.
 */

/**
 * `run()` calls `fn` at once, or, when it last called it less than `intervalMs` (ms) ago, once that
 * long has passed; a `run()` while a call is pending is that call. `cancel()` drops the pending call.
 * Used for the heads a replica publishes to new peers and new subscriptions (replicator.ts), and
 * for the presence state it publishes to new subscriptions (db/presence.ts).
 */
export class Coalesced {
  private readonly intervalMs: number
  private readonly fn: () => void
  private timer?: ReturnType<typeof setTimeout>
  private last = -Infinity

  constructor (intervalMs: number, fn: () => void) {
    this.intervalMs = intervalMs
    this.fn = fn
  }

  run (): void {
    if (this.timer !== undefined) return
    const wait = Math.max(0, this.last + this.intervalMs - Date.now())
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.last = Date.now()
      this.fn()
    }, wait)
  }

  cancel (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }
}
