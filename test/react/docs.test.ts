// @vitest-environment happy-dom
/** docs/react.md's example renders, follows a change, and is the file the docs show, verbatim. */
import 'fake-indexeddb/auto' // IndexedDB, as in a browser: the component and this test share it, as two tabs do
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createElement } from 'react'
import { act, cleanup, render, screen, waitFor } from '@testing-library/react'
import { OpenTodos } from '../../docs/examples/react-todos.js'
import { KiteDB } from '../../src/index.js'

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true
afterEach(() => { cleanup() })

describe('docs/react.md', () => {
  it('shows the example file verbatim', () => {
    const root = join(import.meta.dirname, '..', '..')
    expect(readFileSync(join(root, 'docs', 'react.md'), 'utf8')).toContain(readFileSync(join(root, 'docs', 'examples', 'react-todos.tsx'), 'utf8'))
  })

  it('its component lists the open todos, live, and checking one hides it', async () => {
    render(createElement(OpenTodos))
    await waitFor(() => { expect(screen.queryByText('Loading…')).toBeNull() })
    const db = await KiteDB.init('todos') // the same IndexedDB database the component opened; it hears this one as another tab
    const todos = await db.initCollection<{ title: string, done: boolean }>('todos')
    await act(async () => { await todos.insert([{ title: 'write docs', done: false }, { title: 'ship', done: true }]) })
    await waitFor(() => { expect(screen.getAllByRole('listitem').map(li => li.textContent)).toEqual(['write docs']) })
    await act(async () => { screen.getByRole('checkbox').click() })
    await waitFor(() => { expect(screen.queryAllByRole('listitem')).toEqual([]) })
    await db.close()
  })
})
