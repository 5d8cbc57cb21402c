// A local-only app: what it loads at start is what `npm run size` reports.
import { KiteDB } from '../../src/index.js'

const db = await KiteDB.init('todos', { storage: 'indexeddb' })
const todos = await db.initCollection('todos')
await todos.insertOne({ title: 'measure the core', done: false })
todos.observe({ done: false }, docs => { document.body.textContent = `${docs.length} open` })
