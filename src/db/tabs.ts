/**
 * Tabs in step (docs/design.md, "Tabs"). Every tab of an origin that opens a database in IndexedDB
 * opens the same storage, but each has its own replica object, live queries and network node: a
 * block one tab applies (written there, or received from the network) is in the storage, yet the
 * other tabs' observers never hear of it, and a block the others receive too is already stored
 * there, so it changes nothing they would report. A `TabChannel` tells them: after each applied
 * block, the changed documents' keys go out on a BroadcastChannel named after the storage and the
 * database; a tab receiving them reads those documents from the shared storage and reports them as
 * its own changes. Reading rather than trusting the message keeps a tab's view equal to its
 * storage even if a message names documents its storage does not hold.
 */
import { createLogger } from '../log.js'
import { type DocKey } from '../store/index.js'
import { type ChangeOrigin } from '../sync/index.js'

const log = createLogger('db')

/** What one tab tells the others after applying a block. */
export interface TabMessage {
  v: 1
  /** documents whose materialised value changed */
  keys: DocKey[]
  /** collections that came into existence or were dropped */
  collections: string[]
  /** where the change came from in the tab that applied it */
  origin: ChangeOrigin
}

/** Most document keys one message carries; a bigger change is sent in several. */
const KEYS_PER_MESSAGE = 5000

function isTabMessage (data: unknown): data is TabMessage {
  const m = data as Partial<TabMessage> | null
  return typeof m === 'object' && m !== null && m.v === 1 && Array.isArray(m.keys) && Array.isArray(m.collections) &&
    (m.origin === 'local' || m.origin === 'remote') &&
    m.keys.every(k => typeof k?.coll === 'string' && typeof k.id === 'string') && m.collections.every(c => typeof c === 'string')
}

/** The channel between the tabs that share one database's storage. */
export class TabChannel {
  private readonly channel: BroadcastChannel

  /**
   * @param name the storage's channel name (`StorageProvider.channel`) and the database id make the
   *   BroadcastChannel's name
   * @param onMessage called with each well-formed message from another tab (malformed ones are logged and dropped)
   */
  constructor (name: string, dbId: string, onMessage: (msg: TabMessage) => void) {
    this.channel = new BroadcastChannel(`kitedb/${name}/${dbId}`)
    this.channel.onmessage = evt => {
      if (!isTabMessage(evt.data)) { log.warn('dropped a malformed message from another tab'); return }
      onMessage(evt.data)
    }
  }

  /** Tell the other tabs which documents and collections a block changed. */
  post (keys: DocKey[], collections: string[], origin: ChangeOrigin): void {
    for (let i = 0; i === 0 || i < keys.length; i += KEYS_PER_MESSAGE) {
      const msg: TabMessage = { v: 1, keys: keys.slice(i, i + KEYS_PER_MESSAGE).map(k => ({ coll: k.coll, id: k.id })), collections: i === 0 ? collections : [], origin }
      try { this.channel.postMessage(msg) } catch (err) { log.warn('cannot tell the other tabs of a change', err) }
    }
  }

  close (): void { this.channel.close() }

  /** Whether the platform has BroadcastChannel. */
  static get supported (): boolean { return typeof globalThis.BroadcastChannel === 'function' }
}
