/**
 * Several lists: each its own database with its own link. Two lists shared with two other
 * browsers stay separate; a joined list is shown beside the browser's own and is the one the app
 * opens next; a rename reaches every holder; leaving forgets a list on one browser only; deleting
 * empties it everywhere and says so. What the user asks for while the app is still starting is
 * done after the list it opens first, and wins: typing keeps its field, the list asked for last
 * is the one shown.
 */
import { type Page, type Route } from '@playwright/test'
import { test, expect } from './fixtures.js'
import { addTodo, closeShare, newList, openShare, switchList, titles } from './helpers/demo.js'

async function listNames (page: Page): Promise<Array<{ name: string, own: string | null }>> {
  await page.getByTestId('lists-button').click()
  await expect(page.getByTestId('lists-panel')).toBeVisible()
  const entries = await page.getByTestId('list-entry').all()
  const names = await Promise.all(entries.map(async e => ({ name: await e.getByTestId('list-open').innerText(), own: await e.getAttribute('data-own') })))
  await page.getByTestId('lists-close').click()
  return names
}

/**
 * Hold back the page's `/kitedb-config.json` until the returned function is called: the app opens
 * its first list only once it has its configuration, so this holds that opening back.
 */
async function holdConfig (page: Page): Promise<() => void> {
  let answer = (): void => {}
  const held = new Promise<void>(resolve => { answer = resolve })
  await page.route('**/kitedb-config.json', async (route: Route) => { await held; await route.continue() })
  return answer
}

/** `page`'s registry of lists, and the name of the one shown last, as the app keeps them. */
async function registry (page: Page): Promise<{ lists: Array<{ name: string, own: boolean }>, current: string | undefined }> {
  return await page.evaluate(() => {
    const lists = JSON.parse(localStorage.getItem('kitedb-demo:lists') ?? '[]') as Array<{ address: string, name: string, own: boolean }>
    const current = localStorage.getItem('kitedb-demo:current')
    return { lists: lists.map(l => ({ name: l.name, own: l.own })), current: lists.find(l => l.address === current)?.name }
  })
}

test('two lists shared with two other browsers stay separate, and a joined list is remembered', async ({ browser }) => {
  const [ctxA, ctxB, ctxC] = await Promise.all([browser.newContext(), browser.newContext(), browser.newContext()])
  const a = await ctxA.newPage()
  await a.goto('/')
  await expect(a.getByTestId('list-name')).toHaveText('My list')
  await newList(a, 'Groceries')
  for (const t of ['oat milk', 'bread']) await addTodo(a, t)
  const groceries = await openShare(a)
  await closeShare(a)
  await newList(a, 'Work')
  await addTodo(a, 'write report')
  const work = await openShare(a)
  await closeShare(a)
  expect(groceries).not.toBe(work)
  expect(await listNames(a)).toEqual([{ name: 'My list', own: 'true' }, { name: 'Groceries', own: 'true' }, { name: 'Work', own: 'true' }])

  // B gets one list, C the other: each sees that list only, under its name.
  const b = await ctxB.newPage()
  await b.goto(groceries)
  await expect(b.getByTestId('list-name')).toHaveText('Groceries')
  await expect(b.getByTestId('todo-title')).toHaveText(['oat milk', 'bread'])
  const c = await ctxC.newPage()
  await c.goto(work)
  await expect(c.getByTestId('list-name')).toHaveText('Work')
  await expect(c.getByTestId('todo-title')).toHaveText(['write report'])

  // Their writes land in that list only.
  await addTodo(b, 'from B')
  await addTodo(c, 'from C')
  await expect(a.getByTestId('todo-title')).toHaveText(['write report', 'from C'])
  await switchList(a, 'Groceries')
  await expect(a.getByTestId('todo-title')).toHaveText(['oat milk', 'bread', 'from B'])
  await expect(b.getByTestId('todo-title')).toHaveText(['oat milk', 'bread', 'from B'])
  await expect(c.getByTestId('todo-title')).toHaveText(['write report', 'from C'])
  await switchList(a, 'My list')
  expect(await titles(a)).toEqual([])

  // The joined list is beside B's own, and is what B's app opens next, without the link.
  expect(b.url()).not.toContain('#')
  expect(await listNames(b)).toEqual([{ name: 'Groceries', own: 'false' }])
  await b.goto('/')
  await expect(b.getByTestId('list-name')).toHaveText('Groceries')
  await expect(b.getByTestId('todo-title')).toHaveText(['oat milk', 'bread', 'from B'])
  await newList(b, 'Mine')
  expect(await listNames(b)).toEqual([{ name: 'Groceries', own: 'false' }, { name: 'Mine', own: 'true' }])
  await switchList(b, 'Groceries')
  await expect(b.getByTestId('todo-title')).toHaveText(['oat milk', 'bread', 'from B'])

  for (const ctx of [ctxA, ctxB, ctxC]) await ctx.close()
})

test('a rename reaches every holder; leaving forgets a list here only; deleting empties it everywhere', async ({ browser }) => {
  const [ctxA, ctxB, ctxC] = await Promise.all([browser.newContext(), browser.newContext(), browser.newContext()])
  const a = await ctxA.newPage()
  await a.goto('/')
  await newList(a, 'Trip')
  await addTodo(a, 'passport')
  const link = await openShare(a)
  await closeShare(a)
  const b = await ctxB.newPage()
  await b.goto(link)
  const c = await ctxC.newPage()
  await c.goto(link)
  for (const page of [b, c]) await expect(page.getByTestId('todo-title')).toHaveText(['passport'])

  // B renames it: A and C see the new name.
  await b.getByTestId('lists-button').click()
  await b.getByTestId('rename-input').fill('Trip to Lisbon')
  await b.getByTestId('rename-input').press('Enter')
  await b.getByTestId('lists-close').click()
  for (const page of [a, b, c]) await expect(page.getByTestId('list-name')).toHaveText('Trip to Lisbon')
  await expect(a.locator('#share-name')).toHaveText('Trip to Lisbon')

  // C leaves: C forgets it (and opens a list of its own); A and B keep it.
  await c.getByTestId('lists-button').click()
  c.once('dialog', d => { void d.accept() })
  await c.getByTestId('leave-list').click()
  await expect(c.getByTestId('list-name')).toHaveText('My list')
  expect(await listNames(c)).toEqual([{ name: 'My list', own: 'true' }])
  await addTodo(b, 'sunscreen')
  await expect(a.getByTestId('todo-title')).toHaveText(['passport', 'sunscreen'])

  // A deletes it for everyone: B sees it emptied and marked deleted, and removes it.
  await a.getByTestId('lists-button').click()
  a.once('dialog', d => { void d.accept() })
  await a.getByTestId('delete-list').click()
  await expect(a.getByTestId('list-name')).toHaveText('My list')
  expect((await listNames(a)).map(l => l.name)).toEqual(['My list'])
  await expect(b.getByTestId('list-deleted')).toBeVisible()
  await expect(b.getByTestId('todo-item')).toHaveCount(0)
  await b.getByTestId('list-deleted-leave').click()
  await expect(b.getByTestId('list-name')).toHaveText('My list')
  expect(await listNames(b)).toEqual([{ name: 'My list', own: 'true' }])

  for (const ctx of [ctxA, ctxB, ctxC]) await ctx.close()
})

test('a new list named while the first list opens: the keys stay in the name field, and that list is shown', async ({ browser }) => {
  const ctx = await browser.newContext()
  const a = await ctx.newPage()
  const answer = await holdConfig(a)
  await a.goto('/')
  await a.getByTestId('lists-button').click()
  await a.getByTestId('new-list-name').click()
  await a.keyboard.type('Tr')
  // The first list opens (and is shown) while the name is being typed.
  answer()
  await expect(a.getByTestId('list-name')).toHaveText('My list')
  await a.keyboard.type('ip')
  await a.keyboard.press('Enter')
  await expect(a.getByTestId('list-name')).toHaveText('Trip')
  await expect(a.getByTestId('lists-panel')).toBeHidden()
  expect(await titles(a)).toEqual([])
  await switchList(a, 'My list')
  expect(await titles(a)).toEqual([])
  await ctx.close()
})

test('a list made before the app has opened its link is shown after the linked list, not hidden by it', async ({ browser }) => {
  const [ctxS, ctxA] = await Promise.all([browser.newContext(), browser.newContext()])
  const s = await ctxS.newPage()
  await s.goto('/')
  await expect(s.getByTestId('list-name')).toHaveText('My list')
  await newList(s, 'Camping')
  const link = await openShare(s)

  // A opens the link and makes a list of its own before the app has even started opening the link.
  const a = await ctxA.newPage()
  const answer = await holdConfig(a)
  await a.goto(link)
  await a.getByTestId('lists-button').click()
  await a.getByTestId('new-list-name').fill('Trip')
  await a.getByTestId('new-list-name').press('Enter')
  answer()
  // The linked list is opened first, then Trip is made: Trip, asked for last, is the one shown.
  const after = { lists: [{ name: expect.any(String) as unknown, own: false }, { name: 'Trip', own: true }], current: 'Trip' }
  await expect.poll(async () => await registry(a)).toEqual(after)
  await expect(a.getByTestId('list-name')).toHaveText('Trip')
  await expect(a.getByTestId('new-todo')).toBeEnabled()
  await addTodo(a, 'tent')
  expect(await registry(a)).toEqual(after)
  await expect(a.getByTestId('list-name')).toHaveText('Trip')

  for (const ctx of [ctxS, ctxA]) await ctx.close()
})
