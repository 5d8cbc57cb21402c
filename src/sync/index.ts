/** The replication engine: block log, wire protocol, replicator, and the Transport seam. */
export * from './transport.js'
export * from './wire.js'
export * from './replica.js'
export * from './replicator.js'
export * from './limits.js'
