import { type ReactElement } from 'react'
import { useCollection, useDatabase, useFind } from 'kitedb/react'

interface Todo { title: string, done: boolean }

/** The open todos of the device's `todos` list, live: local edits, other tabs and other devices alike. */
export function OpenTodos ({ relays }: { relays?: string[] }): ReactElement {
  const db = useDatabase('todos', { relays })
  const todos = useCollection<Todo>(db.data, 'todos')
  const open = useFind(todos.data, { done: false }, { sort: { title: 1 } })
  if (db.error !== undefined) return <p>Cannot open the list: {db.error.message}</p>
  if (open.loading) return <p>Loading…</p>
  return (
    <ul>
      {open.data?.map(todo => (
        <li key={todo._id}>
          <input type='checkbox' onChange={() => { void todos.data?.updateOne({ _id: todo._id }, { $set: { done: true } }) }} />
          {todo.title}
        </li>
      ))}
    </ul>
  )
}
