import type * as kitedb from '../../src/index.js'
declare global {
  interface Window { kitedb: typeof kitedb, todoDb?: kitedb.Database }
}
export {}
