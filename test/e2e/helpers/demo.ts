/** Steps through the to-do demo's page, shared by the browser tests. */
import { type Page } from '@playwright/test'
import { expect } from '../fixtures.js'

/** Add a to-do and wait until it is shown. */
export async function addTodo (page: Page, title: string): Promise<void> {
  await page.getByTestId('new-todo').fill(title)
  await page.getByTestId('new-todo').press('Enter')
  await expect(page.getByTestId('todo-title').filter({ hasText: title })).toHaveCount(1)
}

/** The titles of the to-dos shown, in order. */
export async function titles (page: Page): Promise<string[]> {
  return await page.getByTestId('todo-title').allTextContents()
}

/** Open the share panel and read the link it shows (the short form: its fragment is uppercase base32). */
export async function openShare (page: Page): Promise<string> {
  if (await page.getByTestId('share-panel').isHidden()) await page.getByTestId('share-button').click()
  await expect(page.getByTestId('qr').locator('svg')).toBeVisible()
  const link = page.getByTestId('share-link')
  await expect(link).toHaveAttribute('href', /#E[A-Z2-7]{100,}$/)
  return await link.getAttribute('href') as string
}

/** Close the share panel. */
export async function closeShare (page: Page): Promise<void> {
  await page.getByTestId('share-close').click()
  await expect(page.getByTestId('share-panel')).toBeHidden()
}

/** Make a new list named `name` from the lists panel; resolves once it is shown. */
export async function newList (page: Page, name: string): Promise<void> {
  await page.getByTestId('lists-button').click()
  await page.getByTestId('new-list-name').fill(name)
  await page.getByTestId('new-list-name').press('Enter')
  await expect(page.getByTestId('list-name')).toHaveText(name)
  await expect(page.getByTestId('lists-panel')).toBeHidden()
  await expect(page.getByTestId('new-todo')).toBeEnabled()
}

/** Show the list named `name` from the lists panel. */
export async function switchList (page: Page, name: string): Promise<void> {
  await page.getByTestId('lists-button').click()
  await page.getByTestId('list-open').filter({ hasText: name }).click()
  await expect(page.getByTestId('list-name')).toHaveText(name)
  await expect(page.getByTestId('lists-panel')).toBeHidden()
}

/**
 * Decode the page's QR code from its rendered pixels: a screenshot of the code, drawn on a canvas
 * in the page and read by jsQR (loaded into the page). Null when it does not decode.
 */
export async function decodeQr (page: Page): Promise<string | null> {
  if (await page.evaluate(() => !('jsQR' in window))) await page.addScriptTag({ path: 'node_modules/jsqr/dist/jsQR.js' })
  const png = await page.getByTestId('qr').locator('svg').screenshot()
  return await page.evaluate(async (b64) => {
    const img = new Image()
    img.src = `data:image/png;base64,${b64}`
    await img.decode()
    const canvas = document.createElement('canvas')
    canvas.width = img.width
    canvas.height = img.height
    const ctx = canvas.getContext('2d') as CanvasRenderingContext2D
    ctx.drawImage(img, 0, 0)
    const { data, width, height } = ctx.getImageData(0, 0, img.width, img.height)
    const jsQR = (window as unknown as { jsQR: (d: Uint8ClampedArray, w: number, h: number) => { data: string } | null }).jsQR
    return jsQR(data, width, height)?.data ?? null
  }, png.toString('base64'))
}
