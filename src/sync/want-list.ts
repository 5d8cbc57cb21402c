/**
 * The want list of the replication engine: the blocks a replica wants and does not store, with
 * who can serve each, bounded so that no peer's gossip can make it keep, ask for or wait on more
 * than a share, and ordered so that such junk never delays real work.
 *
 * What is wanted, and how much it is trusted:
 * - **announced** (`announce`): a head a peer named in a heads message. Naming one needs no key
 *   and no write right, so an announced want is counted against each peer that announced it
 *   (at most `maxPerPeer` each) and against all peers together (at most `maxTotal`), and is asked
 *   of its announcers only. An announcer that answers a request for it completely without it
 *   cannot serve it and stops being a source; a want left without sources is forgotten (a head
 *   announced again later is wanted again). A full list makes room for a trusted peer's want,
 *   or for a peer holding fewer wants than another, by evicting the newest want of the untrusted
 *   peer holding the most (a fair share: one flooding peer cannot lock the others out).
 * - **open** (`wantOpen`): a chunk that a verified block is held for, or a block or headset the
 *   app asked for (`Replicator.want`). Any peer may be asked for it, and it counts against no one:
 *   a chunk is named by a signed block of a listed writer, and the app bounds its own asks.
 * - **missing parents**: named by stored (verified) blocks; the storage keeps them (`missing`),
 *   the want list only tracks whether anyone can serve them (`syncMissing`, `answered`,
 *   `endRound`). One that no peer could serve — `UNAVAILABLE_ROUNDS` rounds running in which at
 *   least one peer answered completely without it and none had it, over at least
 *   `unavailableAfterMs` — is **unavailable**: it stops blocking sync checks (`unavailable`), is
 *   asked for again every `retryMs`, and at once when a new peer appears (`retryUnavailable`).
 *
 * Order of asking one peer (`forPeer`): chunks and the app's asks first, then missing parents
 * (least recently asked first) alternating with the peer's own announced wants, then
 * unavailable parents due for a retry. Peers that served real blocks (`trust`) are asked before
 * the others, and among those the peers holding the fewest wants first (the replicator orders
 * candidates by `isTrusted`, then `wantsOf`), so a peer that only announces junk is asked last,
 * and only for its own junk.
 *
 * After Bitswap's per-peer want lists and ledgers (IPFS: who asked for what, who served what).
 * All state is in memory; its size is bounded by `maxTotal`, the open wants, the storage's
 * missing set and `MAX_TRUSTED`.
 */

/** Why a block is wanted: an announced or asked-for head, a head hash that may name a headset, a chunk of a held block. */
export type WantKind = 'head' | 'headset' | 'chunk'

/** Bounds and timing of a `WantList`. */
export interface WantListOptions {
  /** announced wants one peer may hold (`Limits.maxWantsPerPeer`) */
  maxPerPeer: number
  /** announced wants of all peers together (`Limits.maxWants`) */
  maxTotal: number
  /** least time from the first round that missed a missing parent to calling it unavailable, ms */
  unavailableAfterMs: number
  /** time between asks for an unavailable missing parent, ms */
  retryMs: number
  /** clock, ms (default `Date.now`) */
  now?: () => number
}

interface Want {
  kind: WantKind
  /** any peer may be asked for it, and it counts against no one */
  open: boolean
  /** announcers that have not shown they cannot serve it, in order of announcement */
  sources: Set<string>
  /** rounds in which every peer asked for this open want answered completely without it */
  misses: number
}

interface ParentTrack {
  /** rounds that missed it */
  misses: number
  /** ms of the first round that missed it */
  firstMiss: number
  /** ms it was last asked for (0: never) */
  lastAsked: number
  unavailable: boolean
  /** ms from which an unavailable parent is asked for again */
  nextTry: number
}

/** Rounds that must miss a missing parent before it is unavailable. */
export const UNAVAILABLE_ROUNDS = 3
/** Rounds that must miss an open want before it is forgotten (the app asks again; a held block's chunk is wanted again when the block is). */
const OPEN_MISS_ROUNDS = 3
/** Peers remembered as having served real blocks (the least recent is forgotten first). */
const MAX_TRUSTED = 1024

/** What `announce` did. */
export type AnnounceOutcome = 'wanted' | 'refused'

/** Bounded, attributed want list; see the module comment. */
export class WantList {
  private readonly opts: Required<WantListOptions>
  private readonly wants = new Map<string, Want>()
  /** per peer: the announced (not open) wants it is a source of, oldest first */
  private readonly byPeer = new Map<string, Set<string>>()
  /** announced wants (each counted once, however many sources) */
  private announced = 0
  /** peers that served a real block, by the ms they last did (oldest first) */
  private readonly trusted = new Map<string, number>()
  /** the storage's missing parents as of the last `syncMissing` */
  private missing = new Set<string>()
  private readonly parents = new Map<string, ParentTrack>()
  /** this round: what was asked of a peer that answered completely without it, and what arrived */
  private roundMissed = new Set<string>()
  private roundAsked = new Set<string>()
  private roundGot = new Set<string>()

  constructor (options: WantListOptions) {
    this.opts = { now: Date.now, ...options }
  }

  /** Wants held (announced and open; missing parents are the storage's). */
  get size (): number { return this.wants.size }

  /** Announced wants held, counted once each: at most `maxTotal`. */
  get announcedCount (): number { return this.announced }

  /** CIDs wanted (announced and open). */
  cids (): string[] { return [...this.wants.keys()] }

  /** Whether `cid` is wanted (announced or open). */
  has (cid: string): boolean { return this.wants.has(cid) }

  /** Whether `cid` was wanted as a head hash that may name a headset (asked for by the app). */
  isHeadset (cid: string): boolean { return this.wants.get(cid)?.kind === 'headset' }

  /** Announced wants `peer` is a source of. */
  wantsOf (peer: string): number { return this.byPeer.get(peer)?.size ?? 0 }

  /** Peers that are the source of at least one announced want. */
  sources (): string[] { return [...this.byPeer.keys()] }

  /**
   * `peer` announced `cid` as one of its heads: want it from `peer`. `'refused'` when that would
   * take `peer` over `maxPerPeer`, or the list over `maxTotal` with no want to evict for it.
   */
  announce (cid: string, peer: string): AnnounceOutcome {
    const want = this.wants.get(cid)
    if (want !== undefined && (want.open || want.sources.has(peer))) return 'wanted'
    if (this.wantsOf(peer) >= this.opts.maxPerPeer) return 'refused'
    if (want !== undefined) {
      want.sources.add(peer)
      this.index(peer).add(cid)
      return 'wanted'
    }
    if (this.announced >= this.opts.maxTotal && !this.evictFor(peer)) return 'refused'
    this.wants.set(cid, { kind: 'head', open: false, sources: new Set([peer]), misses: 0 })
    this.index(peer).add(cid)
    this.announced++
    return 'wanted'
  }

  /**
   * Want `cid` from any peer: a chunk a verified block is held for (`'chunk'`), or a block or
   * headset the app asked for (`'head'`, `'headset'`). Never refused; an announced want of the
   * same CID becomes open (and stops counting against its announcers).
   */
  wantOpen (cid: string, kind: WantKind): void {
    const want = this.wants.get(cid)
    if (want === undefined) {
      this.wants.set(cid, { kind, open: true, sources: new Set(), misses: 0 })
      return
    }
    if (kind === 'headset' || want.kind === 'head') want.kind = kind
    want.misses = 0
    if (want.open) return
    for (const p of want.sources) this.unindex(p, cid)
    want.sources.clear()
    want.open = true
    this.announced--
  }

  /** Forget `cid` (stored, covered, or no longer wanted): its want and its tracking as a missing parent. */
  delete (cid: string): void {
    const want = this.wants.get(cid)
    if (want !== undefined) {
      this.wants.delete(cid)
      if (!want.open) {
        for (const p of want.sources) this.unindex(p, cid)
        this.announced--
      }
    }
    this.parents.delete(cid)
  }

  /** `peer` served a real block (verified and stored): it is asked before untrusted peers, and its wants are kept over theirs. */
  trust (peer: string): void {
    this.trusted.delete(peer)
    this.trusted.set(peer, this.opts.now())
    if (this.trusted.size > MAX_TRUSTED) this.trusted.delete(this.trusted.keys().next().value as string)
  }

  /** Whether `peer` served a real block (among the last `MAX_TRUSTED` peers that did). */
  isTrusted (peer: string): boolean { return this.trusted.has(peer) }

  /** `peer` is gone or keeps failing: it is no longer the source of anything (wants left without a source are forgotten). */
  dropPeer (peer: string): void {
    for (const cid of [...this.byPeer.get(peer) ?? []]) this.removeSource(cid, peer)
  }

  /**
   * The storage's missing parents now: start of a round. Tracking of parents no longer missing
   * is dropped; returns those of them that were unavailable (they arrived after all).
   */
  syncMissing (missing: readonly string[]): string[] {
    this.missing = new Set(missing)
    const arrived: string[] = []
    for (const [cid, t] of this.parents) {
      if (this.missing.has(cid)) continue
      if (t.unavailable) arrived.push(cid)
      this.parents.delete(cid)
    }
    this.roundMissed = new Set()
    this.roundAsked = new Set()
    this.roundGot = new Set()
    return arrived
  }

  /**
   * The CIDs to ask `peer` for in this round, most urgent first, at most `max`, none already
   * received in this round: chunks and open wants, then missing parents that are not
   * unavailable (least recently asked first) alternating with `peer`'s announced wants, then
   * unavailable parents due for a retry.
   */
  forPeer (peer: string, max: number): string[] {
    const now = this.opts.now()
    const out: string[] = []
    const taken = new Set<string>()
    const take = (cid: string): boolean => {
      if (out.length >= max) return false
      if (taken.has(cid) || this.roundGot.has(cid)) return true
      taken.add(cid)
      out.push(cid)
      return true
    }
    for (const [cid, w] of this.wants) if (w.open && w.kind === 'chunk' && !take(cid)) return out
    for (const [cid, w] of this.wants) if (w.open && w.kind !== 'chunk' && !take(cid)) return out
    const available: string[] = []
    const due: string[] = []
    for (const cid of this.missing) {
      const t = this.parents.get(cid)
      if (t === undefined || !t.unavailable) available.push(cid)
      else if (t.nextTry <= now) due.push(cid)
    }
    const lastAsked = (cid: string): number => this.parents.get(cid)?.lastAsked ?? 0
    available.sort((a, b) => lastAsked(a) - lastAsked(b))
    const own = [...this.byPeer.get(peer) ?? []]
    for (let i = 0; i < Math.max(available.length, own.length); i++) {
      if (i < available.length && !take(available[i])) return out
      if (i < own.length && !take(own[i])) return out
    }
    due.sort((a, b) => (this.parents.get(a)?.nextTry ?? 0) - (this.parents.get(b)?.nextTry ?? 0))
    for (const cid of due) if (!take(cid)) return out
    return out
  }

  /**
   * `peer` answered a request for `asked` with `got` (CIDs received and stored). When the answer
   * was `complete` (not cut short by the message budget), what it lacks `peer` cannot serve: it
   * stops being a source of those announced wants, and the round counts a miss for the others.
   */
  answered (peer: string, asked: readonly string[], got: ReadonlySet<string>, complete: boolean): void {
    for (const cid of asked) {
      this.roundAsked.add(cid)
      if (got.has(cid)) {
        this.roundGot.add(cid)
        continue
      }
      if (!complete) continue
      this.roundMissed.add(cid)
      const want = this.wants.get(cid)
      if (want !== undefined && !want.open) this.removeSource(cid, peer)
    }
    for (const cid of got) this.roundGot.add(cid)
  }

  /**
   * End of a round: open wants and missing parents that some peer answered completely without
   * and none had count a miss; returns the missing parents that just became unavailable.
   */
  endRound (): string[] {
    const now = this.opts.now()
    const unavailable: string[] = []
    for (const cid of this.roundAsked) {
      if (this.roundGot.has(cid)) continue
      const missed = this.roundMissed.has(cid)
      const want = this.wants.get(cid)
      if (want?.open === true) {
        if (missed && ++want.misses >= OPEN_MISS_ROUNDS) this.delete(cid)
        continue
      }
      if (!this.missing.has(cid)) continue
      let t = this.parents.get(cid)
      if (t === undefined) this.parents.set(cid, t = { misses: 0, firstMiss: now, lastAsked: 0, unavailable: false, nextTry: 0 })
      t.lastAsked = now
      if (!missed) continue
      if (t.misses === 0) t.firstMiss = now
      t.misses++
      if (!t.unavailable && t.misses >= UNAVAILABLE_ROUNDS && now - t.firstMiss >= this.opts.unavailableAfterMs) {
        t.unavailable = true
        unavailable.push(cid)
      }
      if (t.unavailable) t.nextTry = now + this.opts.retryMs
    }
    this.roundMissed = new Set()
    this.roundAsked = new Set()
    return unavailable
  }

  /** Whether missing parent `cid` is unavailable: no peer could serve it (see the module comment). */
  isUnavailable (cid: string): boolean { return this.parents.get(cid)?.unavailable === true }

  /** Missing parents (as of the last `syncMissing`) that are unavailable. */
  unavailable (): string[] {
    const out: string[] = []
    for (const [cid, t] of this.parents) if (t.unavailable && this.missing.has(cid)) out.push(cid)
    return out
  }

  /** Ask for every unavailable parent again in the next round (a new peer may have them). */
  retryUnavailable (): void {
    for (const t of this.parents.values()) if (t.unavailable) t.nextTry = 0
  }

  /** Whether some unavailable parent is due for a retry now. */
  retryDue (): boolean {
    const now = this.opts.now()
    for (const [cid, t] of this.parents) if (t.unavailable && t.nextTry <= now && this.missing.has(cid)) return true
    return false
  }

  private index (peer: string): Set<string> {
    let set = this.byPeer.get(peer)
    if (set === undefined) this.byPeer.set(peer, set = new Set())
    return set
  }

  private unindex (peer: string, cid: string): void {
    const set = this.byPeer.get(peer)
    if (set === undefined) return
    set.delete(cid)
    if (set.size === 0) this.byPeer.delete(peer)
  }

  private removeSource (cid: string, peer: string): void {
    const want = this.wants.get(cid)
    if (want === undefined || want.open || !want.sources.delete(peer)) return
    this.unindex(peer, cid)
    if (want.sources.size === 0) this.delete(cid)
  }

  /**
   * Make room for a want of `peer` in a full list: evict the newest want held by the untrusted
   * peer with the most wants alone (not announced by anyone else too), provided `peer` is
   * trusted, or that peer holds more than one want more than `peer` does. False when none may go.
   */
  private evictFor (peer: string): boolean {
    const trusted = this.isTrusted(peer)
    const mine = this.wantsOf(peer)
    let victim: string | undefined
    let most = 0
    for (const [p, set] of this.byPeer) {
      if (p === peer || this.isTrusted(p)) continue
      if (set.size > most && (trusted || set.size > mine + 1)) {
        victim = p
        most = set.size
      }
    }
    if (victim === undefined) return false
    const held = [...this.byPeer.get(victim) ?? []]
    for (let i = held.length - 1; i >= 0; i--) {
      const cid = held[i]
      if (this.wants.get(cid)?.sources.size === 1) {
        this.delete(cid)
        return true
      }
    }
    return false
  }
}
