/**
 * Type-level tests, checked by `tsc` (the typecheck step of `npm test`). Lines marked
 * `@ts-expect-error` must NOT compile: if one ever does, tsc reports the unused directive.
 * This file is never run.
 */
import { KiteDB, type Collection, type WithId } from '../../src/index.js'

interface Todo {
  title: string
  done: boolean
  priority: number
  tags: string[]
  owner?: { name: string }
}

export async function typedUsage (): Promise<void> {
  const db = await KiteDB.init('types', { storage: 'memory' })
  const todos: Collection<Todo> = await db.initCollection<Todo>('todos', { indexes: ['priority', ['done', 'priority']] })

  // Inserts take the shape, with an optional _id; they return it with _id.
  const one: WithId<Todo> = await todos.insertOne({ title: 'a', done: false, priority: 1, tags: [] })
  const id: string = one._id
  await todos.insert([{ _id: 'x', title: 'b', done: true, priority: 2, tags: ['t'] }])
  // @ts-expect-error a field of the wrong type
  await todos.insertOne({ title: 5, done: false, priority: 1, tags: [] })
  // @ts-expect-error a required field is missing
  await todos.insertOne({ title: 'no done', priority: 1, tags: [] })

  // Queries: declared fields with values or operators of their type; dotted paths allowed.
  const found: Array<WithId<Todo>> = await todos.find({ done: false, priority: { $gte: 1, $in: [1, 2] }, tags: 't' })
  await todos.find({ title: /^a/, 'owner.name': 'ann', $or: [{ done: true }, { priority: { $lt: 0 } }] }, { title: 1 }, { sort: { priority: -1 }, limit: 5 })
  // @ts-expect-error a misspelt field
  await todos.find({ titel: 'a' })
  // @ts-expect-error a value of the wrong type
  await todos.find({ priority: 'high' })
  // @ts-expect-error an operator value of the wrong type
  await todos.find({ priority: { $gt: 'x' } })
  // @ts-expect-error sort must be 1 or -1
  await todos.find({}, undefined, { sort: { priority: 'desc' } })

  // Updates: operators check the types of declared fields.
  const updated: WithId<Todo> | null = await todos.updateOne({ _id: id }, { $set: { done: true }, $inc: { priority: 1 }, $push: { tags: 'new' } })
  await todos.updateMany({ done: true }, { $unset: { owner: '' }, $set: { 'owner.name': 'x' } })
  // @ts-expect-error $inc on a string field
  await todos.updateOne({ _id: id }, { $inc: { title: 1 } })
  // @ts-expect-error $set with a value of the wrong type
  await todos.updateOne({ _id: id }, { $set: { done: 'yes' } })
  // @ts-expect-error $push on a non-array field
  await todos.updateOne({ _id: id }, { $push: { title: 'x' } })
  // @ts-expect-error a replacement document is not an update
  await todos.updateOne({ _id: id }, { title: 'replaced' })

  // Return shapes as AvionDB's.
  const byId: WithId<Todo> | undefined = await todos.findById(id)
  const deleted: WithId<Todo> | null = await todos.deleteOne({ _id: id })
  const many: Array<WithId<Todo>> = await todos.deleteMany({ done: true })
  const n: number = await todos.countDocuments({ done: false })
  // @ts-expect-error findById returns undefined, not null, when absent
  const wrong: WithId<Todo> | null = await todos.findById(id)

  // Live queries: a callback, or an async iterable / observable of typed result sets.
  const stop: () => void = todos.observe({ done: false }, (docs: Array<WithId<Todo>>) => { void docs }, { sort: { priority: 1 } })
  stop()
  for await (const docs of todos.observe({ done: false })) {
    const first: WithId<Todo> | undefined = docs[0]
    void first
    break
  }

  // Untyped collections take any document and query.
  const loose = await db.initCollection('loose')
  await loose.insertOne({ anything: [1, { deep: true }] })
  await loose.find({ anything: { $elemMatch: { deep: true } } })

  void found; void updated; void byId; void deleted; void many; void n; void wrong
}
