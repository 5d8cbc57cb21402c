/** The keeper: a replica without a key that stores and serves what peers ask it to keep (docs/keepers.md). */
export * from './limits.js'
export * from './verify.js'
export * from './store.js'
export * from './server.js'
export * from './car.js'
