/** Share links: what one carries, in either form (link.ts, short-link.ts). */

/** What a share link carries. */
export interface ShareInfo {
  /** database address (`/kite/<cid>`), absent in a peer-only link */
  address?: string
  /** relay multiaddrs */
  relays: string[]
  /** peer id of a replica sharing the database */
  peer?: string
  /** the key of an encrypted database (base64url) */
  key?: string
}
