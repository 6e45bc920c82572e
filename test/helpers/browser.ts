/**
 * Real headless Chromium (the Debian package, never a downloaded one) driven by playwright-core,
 * completing oidc-provider's development login and consent pages.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium, type Page } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

export interface TestBrowser {
  context: BrowserContext
  close(): Promise<void>
}

export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`)
  const profile = mkdtempSync(join(tmpdir(), 'airlock-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/**
 * Signs in as `login` on the development login page and accepts the consent page; resolves with
 * the page where the IdP sent the browser last (the CLI's loopback page, or the device-flow result).
 */
export async function signIn(page: Page, login: string): Promise<Page> {
  await page.locator('input[name=login]').fill(login)
  await page.locator('input[name=password]').fill('any password')
  await Promise.all([page.waitForLoadState('load'), page.locator('button[type=submit]').click()])
  const consent = page.locator('form input[name=prompt][value=consent] ~ button[type=submit]')
  await consent.waitFor({ timeout: 10_000 })
  await Promise.all([page.waitForLoadState('load'), consent.click()])
  return page
}

/**
 * Opens the authorization URL `airlock login --no-browser` printed, signs in as `login` and accepts
 * the consent; resolves once the CLI's loopback page said "Logged in", with the callback URL the
 * browser was sent to (so a test can try to replay it).
 */
export async function completeBrowserLogin(browser: TestBrowser, url: string, login: string): Promise<{ callback: string }> {
  await browser.context.clearCookies()
  const page = await browser.context.newPage()
  let callback = ''
  page.on('request', (request) => {
    const target = new URL(request.url())
    if (target.hostname === '127.0.0.1' && target.pathname === '/callback') callback = request.url()
  })
  try {
    await page.goto(url)
    await signIn(page, login)
    const title = await page.locator('h1').textContent()
    if (title !== 'Logged in') throw new Error(`the loopback page says ${JSON.stringify(title)}: ${await page.locator('body').textContent()}`)
    if (!/return to the terminal/.test((await page.locator('body').textContent()) ?? '')) throw new Error('the loopback page does not send the user back to the terminal')
  } finally {
    await page.close()
  }
  return { callback }
}
