/** The pure CRDT layer: values, HLC, blocks, merge rules, manifests. No I/O. */
export * from './json.js'
export * from './hlc.js'
export * from './codec.js'
export * from './seal.js'
export * from './block.js'
export * from './merge.js'
export * from './manifest.js'
export * from './link.js'
