/**
 * A real relay for a test file: started before its tests, stopped (with every database the tests
 * registered) after them.
 */
import { afterAll, beforeAll } from 'vitest'
import { createRelayNode, type PeerNode } from '../../src/net/index.js'
import { type Database } from '../../src/index.js'

export interface RelayFixture {
  /** the relay's multiaddr (valid once the file's tests run) */
  readonly addr: string
  readonly node: PeerNode
  /** close this database when the file's tests are done; returns it */
  track: (db: Database) => Database
}

/** Start a relay on a free port for this test file. */
export function useRelay (): RelayFixture {
  let node: PeerNode | undefined
  const open: Database[] = []
  beforeAll(async () => { node = await createRelayNode({ port: 0 }) })
  afterAll(async () => {
    await Promise.all(open.map(async db => { await db.close() }))
    await node?.stop()
  })
  return {
    get addr () { return node?.getMultiaddrs()[0]?.toString() as string },
    get node () { return node as PeerNode },
    track: db => { open.push(db); return db }
  }
}
