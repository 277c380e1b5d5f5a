/**
 * Swagger UI in a real browser: headless Chromium opens /docs on a running gateway, authorizes
 * with the admin token, runs "Create an Ingress" from the page and sees the 201; a fresh browser
 * context that never authorized gets the 401. Skips when Chromium is not installed.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { launchChromium, skipWithoutChromium } from '../helpers/browser.js'
import { startTestGateway } from '../helpers/gateway.js'

const TOKEN = 'swagger-ui-browser-token-3b8e51'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const CREATE = '#operations-Ingress-createNetworkingV1NamespacedIngress'
const TAGS = ['Ingress', 'Service', 'Endpoints', 'Secret', 'IngressClass', 'Apply', 'Health']
/** The table Swagger UI fills in after Execute (the plain .responses-table lists the documented codes, 201 included). */
const LIVE_STATUS = '.live-responses-table tr.response .response-col_status'

function ingress (name: string): object {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name },
    spec: { rules: [{ host: `${name}.example.com`, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] }
  }
}

/** A page in its own browser context (its own localStorage, so no remembered authorization). */
async function openDocs (browser: Browser, admin: string, errors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  context.setDefaultTimeout(10_000)
  const page = await context.newPage()
  page.on('pageerror', err => { errors.push(err.message) })
  await page.goto(`${admin}/docs`)
  await page.locator(CREATE).waitFor()
  return page
}

/** Expands "Create an Ingress", fills it in, executes it and returns the live response code. */
async function createFromPage (page: Page, name: string): Promise<{ status: string, body: string, curl: string }> {
  const op = page.locator(CREATE)
  await op.locator('.opblock-summary-control').click()
  await op.locator('.try-out__btn').click()
  await op.locator('input[placeholder=namespace]').fill('default')
  await op.locator('select[aria-label="Request content type"]').selectOption('application/json')
  await op.locator('textarea.body-param__text').fill(JSON.stringify(ingress(name), null, 2))
  await op.locator('.btn.execute').click()
  const status = op.locator(LIVE_STATUS)
  await status.waitFor()
  return {
    status: (await status.innerText()).trim(),
    body: await op.locator('.live-responses-table .response-col_description .microlight').first().innerText(),
    curl: await op.locator('.curl-command').innerText()
  }
}

t.test('Swagger UI in headless Chromium', { skip: skipWithoutChromium() }, async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: TOKEN })
  const browser = await launchChromium(t)
  const errors: string[] = []

  const page = await openDocs(browser, gw.admin, errors)

  t.test('lists the tags and the operations', async t => {
    const tags = await page.locator('h3.opblock-tag').evaluateAll(els => els.map(e => e.getAttribute('data-tag')))
    for (const tag of TAGS) t.ok(tags.includes(tag), `tag ${tag} is listed`)
    t.equal((await page.locator('.info .title').innerText()).split('\n')[0]?.trim(), 'ingressd admin API')
    const create = page.locator(CREATE)
    t.equal(await create.locator('.opblock-summary-method').innerText(), 'POST')
    t.equal(await create.locator('.opblock-summary-path').getAttribute('data-path'), '/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses')
    t.equal(await create.locator('.opblock-summary-description').innerText(), 'Create an Ingress')
    for (const id of ['listNetworkingV1NamespacedIngress', 'deleteNetworkingV1NamespacedIngress']) {
      t.equal(await page.locator(`#operations-Ingress-${id}`).count(), 1, `${id} is listed`)
    }
    t.equal(await page.locator('#operations-Service-createCoreV1NamespacedService').count(), 1)
    t.equal(await page.locator('#operations-Apply-applyManifests').count(), 1)
    t.equal(await page.locator('#operations-Health-getHealth').count(), 1)
  })

  t.test('authorized with the token, "Create an Ingress" answers 201', async t => {
    const name = `from-swagger-ui-${Date.now().toString(36)}`
    await page.locator('.btn.authorize').click()
    const modal = page.locator('.modal-ux')
    await modal.locator('#auth-bearer-value').fill(TOKEN)
    await modal.locator('.auth-btn-wrapper .authorize').click()
    // Once authorized the dialog offers Logout instead of Authorize.
    await modal.locator('.auth-btn-wrapper button', { hasText: 'Logout' }).waitFor()
    await modal.locator('.btn-done').click()
    await modal.waitFor({ state: 'detached' })
    await page.locator('.btn.authorize.locked').waitFor()

    const res = await createFromPage(page, name)
    t.equal(res.status, '201', 'the live response code is 201')
    t.match(res.curl, `Authorization: Bearer ${TOKEN}`, 'the page sent the bearer token')
    t.match(JSON.parse(res.body), { kind: 'Ingress', metadata: { name, namespace: 'default' } })

    const got = await gw.api('GET', `${ING}/${name}`)
    t.equal(got.status, 200, 'the API serves the ingress the page created')
    t.match(got.body, { metadata: { name }, spec: { rules: [{ host: `${name}.example.com` }] } })

    // Kept only when SWAGGER_UI_SCREENSHOT names a file; otherwise written and checked in a temp dir.
    const keep = process.env.SWAGGER_UI_SCREENSHOT
    const dir = mkdtempSync(join(tmpdir(), 'ingressd-swagger-ui-'))
    t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
    const shot = keep !== undefined && keep !== '' ? keep : join(dir, 'swagger-ui.png')
    await page.locator(`${CREATE} .request-url`).scrollIntoViewIfNeeded()
    await page.screenshot({ path: shot })
    t.same([...readFileSync(shot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `screenshot is a PNG (${shot})`)
  })

  t.test('without authorizing, the same call answers 401', async t => {
    const name = `unauthorized-${Date.now().toString(36)}`
    const fresh = await openDocs(browser, gw.admin, errors)
    t.equal(await fresh.locator('.btn.authorize.unlocked').count(), 1, 'a fresh context is not authorized')
    const res = await createFromPage(fresh, name)
    t.equal(res.status, '401', 'the live response code is 401')
    t.notMatch(res.curl, 'Authorization', 'no token was sent')
    t.match(JSON.parse(res.body), { kind: 'Status', code: 401 })
    t.equal((await gw.api('GET', `${ING}/${name}`)).status, 404, 'nothing was created')
    await fresh.context().close()
  })

  t.test('no script errors on the page', async t => {
    t.same(errors, [])
  })
})
