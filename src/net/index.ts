/** libp2p: peer and relay node factories and the `Transport` implementation. */
export * from './node.js'
export * from './transport.js'
export * from './guard.js'
export { ensureRuntime } from './runtime.js'
export * from './pool.js'
export * from './identity.js'
