/** The replication engine: block log, wire protocol, snapshots, replicator, and the Transport seam. */
export * from './transport.js'
export * from './wire.js'
export * from './replica.js'
export * from './snapshot/index.js'
export * from './replicator.js'
export * from './limits.js'
export * from './keep-wire.js'
export * from './keep-client.js'
