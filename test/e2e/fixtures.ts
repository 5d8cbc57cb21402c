/**
 * Playwright's `test`, extended: every page of every context the test opens through `browser`
 * (and the default `page`) is watched, and an uncaught page error fails the test.
 */
import { test as base, expect, type BrowserContext } from '@playwright/test'

export const test = base.extend<{ failOnPageErrors: undefined }>({
  failOnPageErrors: [async ({ browser }, use, testInfo) => {
    const errors: string[] = []
    const watch = (context: BrowserContext): void => {
      const onPage = (page: import('@playwright/test').Page): void => {
        page.on('pageerror', err => { errors.push(`${page.url()}: ${err.message}`) })
      }
      for (const page of context.pages()) onPage(page)
      context.on('page', onPage)
    }
    for (const context of browser.contexts()) watch(context)
    const newContext = browser.newContext.bind(browser)
    browser.newContext = async (...args) => {
      const context = await newContext(...args)
      watch(context)
      return context
    }
    try {
      await use(undefined)
    } finally {
      browser.newContext = newContext
    }
    if (errors.length > 0) testInfo.annotations.push({ type: 'page errors', description: errors.join('\n') })
    expect(errors, 'uncaught page errors').toEqual([])
  }, { auto: true }]
})

export { expect }
