// @vitest-environment happy-dom
/**
 * The React bindings with @testing-library/react: a list follows local and remote changes while
 * mounted, re-renders only when its result changes, and releases what it opened on unmount.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createElement, StrictMode, type ReactElement } from 'react'
import { act, cleanup, render, screen, waitFor } from '@testing-library/react'
import { useCollection, useDatabase, useDocument, useFind, useFindOne } from '../../src/react/index.js'
import { KiteDB, MemoryStorageProvider, type Database } from '../../src/index.js'
import { MemoryHub } from '../helpers/memory-transport.js'

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true
afterEach(() => { cleanup() })

interface Todo { title: string, done: boolean }

function TodoList ({ name, options, onRender }: { name: string, options: Parameters<typeof useDatabase>[1], onRender?: () => void }): ReactElement {
  const db = useDatabase(name, options)
  const todos = useCollection<Todo>(db.data, 'todos')
  const open = useFind(todos.data, { done: false }, { sort: { title: 1 } })
  onRender?.()
  if (db.error !== undefined) return createElement('p', null, `error: ${db.error.message}`)
  if (open.loading) return createElement('p', null, 'loading')
  return createElement('ul', null, ...(open.data ?? []).map(t => createElement('li', { key: t._id }, t.title)))
}

const items = (): string[] => screen.queryAllByRole('listitem').map(li => li.textContent ?? '')

describe('React hooks', () => {
  it('a list shows the database, follows a remote change while mounted, and re-renders only when its result changes', async () => {
    const hub = new MemoryHub()
    const storage = new MemoryStorageProvider()
    const remote = await KiteDB.init('shared', { storage: new MemoryStorageProvider(), transport: hub.join('remote'), encrypt: false, access: { write: ['*'] } })
    await (await remote.initCollection<Todo>('todos')).insertOne({ _id: 'a', title: 'from the remote', done: false })
    let renders = 0
    const options = { storage, transport: hub.join('local') }
    render(createElement(StrictMode, null, createElement(TodoList, { name: remote.address, options, onRender: () => { renders++ } })))
    await waitFor(() => { expect(items()).toEqual(['from the remote']) }, { timeout: 10_000 })

    const theirs = await remote.initCollection<Todo>('todos')
    await act(async () => { await theirs.insertOne({ _id: 'b', title: 'arrives while mounted', done: false }) })
    await waitFor(() => { expect(items()).toEqual(['arrives while mounted', 'from the remote']) }, { timeout: 10_000 })

    // A change outside the query's result (a done todo) re-renders nothing.
    await new Promise(resolve => setTimeout(resolve, 300))
    const before = renders
    await act(async () => { await theirs.insertOne({ _id: 'c', title: 'done already', done: true }) })
    await new Promise(resolve => setTimeout(resolve, 500))
    expect(items()).toEqual(['arrives while mounted', 'from the remote'])
    expect(renders).toBe(before)
    await remote.close()
  })

  it('unmounting the last user closes the database; a remount opens it again', async () => {
    const storage = new MemoryStorageProvider()
    let opened: Database | undefined
    function Probe (): ReactElement {
      const db = useDatabase('probe', { storage })
      opened = db.data
      return createElement('p', null, db.loading ? 'loading' : 'open')
    }
    const first = render(createElement(Probe))
    await waitFor(() => { expect(screen.getByText('open')).toBeTruthy() })
    const db = opened as Database
    first.unmount()
    await waitFor(() => { expect(db.isClosed).toBe(true) })
    render(createElement(Probe))
    await waitFor(() => { expect(screen.getByText('open')).toBeTruthy() })
    expect(opened?.isClosed).toBe(false)
    expect(opened).not.toBe(db)
  })

  it('useFindOne and useDocument follow one document, null while it does not exist', async () => {
    const storage = new MemoryStorageProvider()
    const db = await KiteDB.init('one', { storage })
    const todos = await db.initCollection<Todo>('todos')
    function One (): ReactElement {
      const first = useFindOne(todos, {}, { sort: { title: 1 } })
      const doc = useDocument(todos, 'x')
      return createElement('p', null, `${first.data?.title ?? 'none'} / ${doc.loading ? 'loading' : doc.data === null ? 'absent' : doc.data?.title}`)
    }
    render(createElement(One))
    await waitFor(() => { expect(screen.getByText('none / absent')).toBeTruthy() })
    await act(async () => { await todos.insertOne({ _id: 'x', title: 'b', done: false }) })
    await waitFor(() => { expect(screen.getByText('b / b')).toBeTruthy() })
    await act(async () => { await todos.insertOne({ _id: 'y', title: 'a', done: false }) })
    await waitFor(() => { expect(screen.getByText('a / b')).toBeTruthy() })
    await act(async () => { await todos.deleteOne({ _id: 'x' }) })
    await waitFor(() => { expect(screen.getByText('a / absent')).toBeTruthy() })
    await db.close()
  })

  it('an invalid database option is the hook\'s error', async () => {
    render(createElement(TodoList, { name: '', options: { storage: new MemoryStorageProvider() } }))
    await waitFor(() => { expect(screen.getByText(/^error: .*database name/)).toBeTruthy() })
  })
})
