/**
 * Canary annotations end to end: a real gateway, a main and a canary origin behind two Services,
 * requests over sockets, counted per origin. Scenarios after ingress-nginx's e2e suite
 * (test/e2e/annotations/canary.go), written for ingressd.
 */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import { Agent, request } from 'undici'
import { parseIngressAnnotations } from '../../src/resources/annotations.js'
import { compileCanary, routeToCanary } from '../../src/dataplane/policies/canary.js'
import type { Route } from '../../src/dataplane/route-table.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'

type Teardown = Parameters<typeof startOrigin>[0]

const P = 'nginx.ingress.kubernetes.io/'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

function ingress (name: string, host: string, service: string, annotations: Record<string, string> = {}, path = '/'): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [P + k, v])) },
    spec: { rules: [{ host, http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

function canary (name: string, host: string, annotations: Record<string, string>, path = '/'): Record<string, unknown> {
  return ingress(name, host, 'canary', { canary: 'true', ...annotations }, path)
}

interface Answer { status: number, origin: string, setCookie: string[] }

async function get (gw: TestGateway, host: string, headers: Record<string, string> = {}, path = '/'): Promise<Answer> {
  const res = await request(`${gw.http}${path}`, { headers: { host, ...headers } })
  const text = await res.body.text()
  let origin = ''
  try { origin = (JSON.parse(text) as { server: string }).server } catch {}
  const raw = res.headers['set-cookie']
  return { status: res.statusCode, origin, setCookie: raw === undefined ? [] : [raw].flat() }
}

/** A gateway with a `main` and a `canary` Service, each one echo origin of that name. */
async function setup (t: Teardown): Promise<TestGateway> {
  const gw = await startTestGateway(t)
  const main = await startOrigin(t, 'main')
  const other = await startOrigin(t, 'canary')
  await apply(gw, [...serviceManifests('main', [main]), ...serviceManifests('canary', [other])])
  return gw
}

async function conditions (gw: TestGateway, name: string): Promise<Record<string, { status: string, message: string }>> {
  const res = await gw.api('GET', `${ING}/${name}`)
  return Object.fromEntries((res.body?.status?.conditions ?? []).map((c: { type: string }) => [c.type, c]))
}

t.test('header, cookie and weight decide in ingress-nginx\'s order', async t => {
  const gw = await setup(t)
  const hosts: Array<[string, Record<string, string>]> = [
    ['header', { 'canary-by-header': 'X-Canary' }],
    ['header-weight', { 'canary-by-header': 'X-Canary', 'canary-weight': '100' }],
    ['value', { 'canary-by-header': 'X-Canary', 'canary-by-header-value': 'yes' }],
    ['pattern', { 'canary-by-header': 'X-Canary', 'canary-by-header-pattern': 'lab|^v[12]$' }],
    ['cookie', { 'canary-by-cookie': 'beta' }],
    ['cookie-weight', { 'canary-by-cookie': 'beta', 'canary-weight': '100' }],
    ['both', { 'canary-by-header': 'X-Canary', 'canary-by-cookie': 'beta' }],
    ['total', { 'canary-weight': '1000', 'canary-weight-total': '1000' }]
  ]
  const manifests: unknown[] = []
  for (const [name, annotations] of hosts) {
    manifests.push(ingress(`${name}-main`, `${name}.example.com`, 'main'), canary(`${name}-canary`, `${name}.example.com`, annotations))
  }
  await apply(gw, manifests)
  const cases: Array<[string, Record<string, string>, string, string]> = [
    ['header', {}, 'main', 'no header, weight 0'],
    ['header', { 'x-canary': 'always' }, 'canary', 'always'],
    ['header', { 'x-canary': 'never' }, 'main', 'never'],
    ['header', { 'x-canary': 'Always' }, 'main', 'values are case-sensitive: falls through to weight 0'],
    ['header-weight', { 'x-canary': 'never' }, 'main', 'never wins over a weight of 100'],
    ['header-weight', { 'x-canary': 'other' }, 'canary', 'another value falls through to the weight'],
    ['value', { 'x-canary': 'yes' }, 'canary', 'the value'],
    ['value', { 'x-canary': 'always' }, 'main', 'always means nothing with a value'],
    ['value', { 'x-canary': 'YES' }, 'main', 'exact, case-sensitive'],
    ['pattern', { 'x-canary': 'v1' }, 'canary', 'matches the pattern'],
    ['pattern', { 'x-canary': 'collaborate' }, 'canary', 'unanchored, as ngx.re.match'],
    ['pattern', { 'x-canary': 'v3' }, 'main', 'no match'],
    ['pattern', { 'x-canary': 'always' }, 'main', 'always means nothing with a pattern'],
    ['cookie', { cookie: 'beta=always' }, 'canary', 'cookie always'],
    ['cookie', { cookie: 'x=1; beta=never' }, 'main', 'cookie never'],
    ['cookie', { cookie: 'beta=yes' }, 'main', 'another value falls through to weight 0'],
    ['cookie-weight', { cookie: 'beta=never' }, 'main', 'cookie never wins over a weight of 100'],
    ['cookie-weight', {}, 'canary', 'no cookie: weight 100'],
    ['both', { 'x-canary': 'never', cookie: 'beta=always' }, 'main', 'the header comes before the cookie'],
    ['both', { 'x-canary': 'always', cookie: 'beta=never' }, 'canary', 'the header comes before the cookie'],
    ['both', { 'x-canary': 'maybe', cookie: 'beta=always' }, 'canary', 'an undecided header leaves it to the cookie'],
    ['total', {}, 'canary', '1000 out of 1000']
  ]
  for (const [host, headers, expected, why] of cases) {
    const answer = await get(gw, `${host}.example.com`, headers)
    t.equal(answer.status, 200, `${host} ${JSON.stringify(headers)}: answered`)
    t.equal(answer.origin, expected, `${host} ${JSON.stringify(headers)}: ${expected} (${why})`)
  }
  const res = await gw.api('GET', `${ING}/header-canary`)
  const byType = Object.fromEntries(res.body.status.conditions.map((c: { type: string }) => [c.type, c]))
  t.equal(byType.Served?.status, 'True', 'the canary is served')
  t.equal(byType.AnnotationsIgnored, undefined, 'no canary key is reported as ignored')
  t.equal((await conditions(gw, 'header-main')).Conflicted, undefined, 'the main ingress reports no conflict')
})

t.test('a canary splits its host and path only, keeps the main route\'s location settings, and needs endpoints', async t => {
  const gw = await setup(t)
  await apply(gw, [
    ingress('shop', 'shop.example.com', 'main', { 'rewrite-target': '/rewritten' }, '/app'),
    ingress('shop-other', 'shop.example.com', 'main', {}, '/other'),
    ingress('elsewhere', 'elsewhere.example.com', 'main', {}, '/app'),
    canary('shop-canary', 'shop.example.com', { 'canary-by-header': 'X-Canary' }, '/app'),
    ingress('empty-main', 'empty.example.com', 'main'),
    ingress('empty-canary', 'empty.example.com', 'nothing', { canary: 'true', 'canary-weight': '100' })
  ])
  const res = await request(`${gw.http}/app/x`, { headers: { host: 'shop.example.com', 'x-canary': 'always' } })
  const seen = await res.body.json() as { server: string, url: string }
  t.equal(seen.server, 'canary')
  t.equal(seen.url, '/rewritten', 'the main ingress\'s rewrite-target applies to the canary')
  t.equal((await get(gw, 'shop.example.com', { 'x-canary': 'always' }, '/other')).origin, 'main', 'another path of the host is not split')
  t.equal((await get(gw, 'elsewhere.example.com', { 'x-canary': 'always' }, '/app')).origin, 'main', 'another host with the same Service is not split (ingress-nginx would split it)')
  t.equal((await get(gw, 'empty.example.com')).origin, 'main', 'a canary without endpoints takes nothing')
})

t.test('canary-weight holds within 2% over 10,000 requests', async t => {
  const gw = await setup(t)
  await apply(gw, [
    ingress('w-main', 'weight.example.com', 'main'),
    canary('w-canary', 'weight.example.com', { 'canary-weight': '30' }),
    ingress('t-main', 'total.example.com', 'main'),
    canary('t-canary', 'total.example.com', { 'canary-weight': '125', 'canary-weight-total': '1000' })
  ])
  const dispatcher = new Agent({ connections: 32, pipelining: 1 })
  t.teardown(() => dispatcher.close())
  const run = async (host: string, total: number): Promise<Map<string, number>> => {
    const counts = new Map<string, number>()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < total) {
        next++
        const res = await request(`${gw.http}/`, { headers: { host }, dispatcher })
        const seen = await res.body.json() as { server: string }
        counts.set(seen.server, (counts.get(seen.server) ?? 0) + 1)
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))
    return counts
  }
  for (const [host, expected] of [['weight.example.com', 0.3], ['total.example.com', 0.125]] as const) {
    const counts = await run(host, 10_000)
    const toCanary = counts.get('canary') ?? 0
    const toMain = counts.get('main') ?? 0
    t.equal(toCanary + toMain, 10_000, `${host}: every request answered by one of the two`)
    t.ok(Math.abs(toCanary / 10_000 - expected) <= 0.02, `${host}: ${toCanary} of 10,000 to the canary (expected ${expected * 100}% ± 2%)`)
  }
})

t.test('affinity-canary-behavior: sticky keeps a client on the backend its cookie names; legacy gives the canary no affinity', async t => {
  const gw = await setup(t)
  await apply(gw, [
    ingress('s-main', 'sticky.example.com', 'main', { affinity: 'cookie' }),
    canary('s-canary', 'sticky.example.com', { 'canary-by-header': 'X-Canary' }),
    ingress('l-main', 'legacy.example.com', 'main', { affinity: 'cookie' }),
    canary('l-canary', 'legacy.example.com', { 'canary-by-header': 'X-Canary', 'affinity-canary-behavior': 'legacy' })
  ])
  const toMain = await get(gw, 'sticky.example.com', { 'x-canary': 'never' })
  t.equal(toMain.origin, 'main')
  const mainCookie = (toMain.setCookie[0] ?? '').split(';')[0] as string
  t.match(mainCookie, /^INGRESSCOOKIE=/, 'the main backend pins the client')
  t.equal((await get(gw, 'sticky.example.com', { 'x-canary': 'always', cookie: mainCookie })).origin, 'main', 'pinned to the main backend: the header is not even looked at')

  const toCanary = await get(gw, 'sticky.example.com', { 'x-canary': 'always' })
  t.equal(toCanary.origin, 'canary')
  const canaryCookie = (toCanary.setCookie[0] ?? '').split(';')[0] as string
  t.match(canaryCookie, /^INGRESSCOOKIE=/, 'the canary pins the client with the main route\'s affinity')
  t.not(canaryCookie, mainCookie)
  const again = await get(gw, 'sticky.example.com', { 'x-canary': 'never', cookie: canaryCookie })
  t.equal(again.origin, 'canary', 'pinned to the canary: it stays there, whatever the header says')
  t.same(again.setCookie, [], 'no new cookie for a pinned client')

  const legacy = await get(gw, 'legacy.example.com', { 'x-canary': 'always' })
  t.equal(legacy.origin, 'canary')
  t.same(legacy.setCookie, [], 'legacy: the canary has no affinity of its own')
})

t.test('a canary without a main ingress, and a second canary, are reported; deleting the canary gives all traffic back', async t => {
  const gw = await setup(t)
  await apply(gw, [canary('alone', 'alone.example.com', { 'canary-weight': '100' })])
  const alone = await conditions(gw, 'alone')
  t.equal(alone.PathsCompiled?.status, 'False')
  t.match(alone.PathsCompiled?.message, /alone\.example\.com \/: canary: no main ingress serves this host, path and pathType/)
  t.equal(alone.Served?.status, 'False', 'not served')
  t.equal((alone.Served as unknown as { reason: string }).reason, 'NoMainIngress')
  t.equal((await get(gw, 'alone.example.com')).status, 404, 'nothing is served for it')

  // The catch-all still answers a host only a canary names: a canary is never a server of its own.
  await apply(gw, [{ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'catch-all' }, spec: { defaultBackend: { service: { name: 'main', port: { number: 8080 } } } } }])
  t.equal((await get(gw, 'alone.example.com')).origin, 'main', 'the catch-all answers')

  await apply(gw, [ingress('main', 'split.example.com', 'main'), canary('first', 'split.example.com', { 'canary-weight': '100' })])
  // Created later (in the same second the names decide, and default/first sorts first).
  const second = await gw.api('POST', ING, ingress('second', 'split.example.com', 'main', { canary: 'true', 'canary-by-header': 'X-Second' }))
  t.equal(second.status, 201)
  const lost = await conditions(gw, 'second')
  t.equal(lost.Served?.status, 'False')
  t.match(lost.Conflicted?.message, /served by default\/first/, 'the second canary names the one that counts')
  t.equal((await conditions(gw, 'first')).Served?.status, 'True')
  t.equal((await conditions(gw, 'main')).Conflicted, undefined, 'the main ingress reports nothing')
  t.equal((await get(gw, 'split.example.com', { 'x-second': 'never' })).origin, 'canary', 'the first canary decides (weight 100)')

  t.equal((await gw.api('DELETE', `${ING}/first`)).status, 200)
  t.equal((await conditions(gw, 'second')).Served?.status, 'True', 'the second canary now counts')
  t.equal((await gw.api('DELETE', `${ING}/second`)).status, 200)
  for (let i = 0; i < 50; i++) {
    const answer = await get(gw, 'split.example.com', { 'x-second': 'always' })
    if (answer.origin !== 'main') {
      t.fail(`request ${i} went to ${answer.origin}`)
      break
    }
  }
  t.pass('with the canaries deleted, every request goes to the main backend')
})

t.test('malformed canary values are refused on write with 422 naming the key; nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const cases: Array<[string, Record<string, string>, string]> = [
    ['canary-weight', { 'canary-weight': '150' }, 'above the default total of 100'],
    ['canary-weight', { 'canary-weight': '10.5' }, 'not a whole number'],
    ['canary-weight', { 'canary-weight': '-1' }, 'negative'],
    ['canary-weight', { 'canary-weight': 'ten' }, 'not a number'],
    ['canary-weight', { 'canary-weight': '300', 'canary-weight-total': '200' }, 'above the total'],
    ['canary-weight-total', { 'canary-weight-total': '0' }, 'a total below 1'],
    ['canary-weight-total', { 'canary-weight-total': 'x' }, 'not a number'],
    ['canary-by-header-pattern', { 'canary-by-header': 'X-C', 'canary-by-header-pattern': '(a+)+$' }, 'could backtrack catastrophically'],
    ['canary-by-header-pattern', { 'canary-by-header': 'X-C', 'canary-by-header-pattern': '([a' }, 'not a regular expression'],
    ['canary-by-header-value', { 'canary-by-header-value': 'yes' }, 'without canary-by-header'],
    ['canary-by-header-pattern', { 'canary-by-header-pattern': 'v1' }, 'without canary-by-header'],
    ['canary-by-header', { 'canary-by-header': 'X Canary' }, 'not a header name'],
    ['canary-by-cookie', { 'canary-by-cookie': 'a;b' }, 'not a cookie name'],
    ['canary', { canary: 'yes' }, 'not a boolean'],
    ['affinity-canary-behavior', { 'affinity-canary-behavior': 'always' }, 'neither sticky nor legacy']
  ]
  let i = 0
  for (const [key, annotations, why] of cases) {
    const name = `bad-${i++}`
    const res = await gw.api('POST', ING, canary(name, `${name}.example.com`, annotations))
    t.equal(res.status, 422, `${key}: ${JSON.stringify(annotations)} (${why}) is refused`)
    t.equal(res.body.details?.causes?.[0]?.field, `metadata.annotations[${P}${key}]`, `${key}: the key is named`)
    t.equal((await gw.api('GET', `${ING}/${name}`)).status, 404, `${key}: nothing stored`)
  }
  const ok = await gw.api('POST', ING, canary('fine', 'fine.example.com', { 'canary-weight': '150', 'canary-weight-total': '1000', 'canary-by-header': 'X-C', 'canary-by-header-pattern': '^v[0-9]+$' }))
  t.equal(ok.status, 201, 'a weight under its total and a safe pattern are stored')
})

t.test('parsing and the per-request decision, without sockets', async t => {
  const parse = (values: Record<string, string>): ReturnType<typeof parseIngressAnnotations> =>
    parseIngressAnnotations(Object.fromEntries(Object.entries(values).map(([k, v]) => [P + k, v])), { namespace: 'default', name: 'x' })
  t.equal(parse({ 'proxy-read-timeout': '5' }).settings.canary, undefined, 'no canary spec on a plain ingress')
  t.equal(parse({ 'canary-weight': '10' }).settings.canary, undefined, 'canary keys without canary: "true" do nothing')
  t.equal(parse({ canary: 'false', 'canary-weight': '10' }).settings.canary, undefined)
  const spec = parse({ canary: 'true', 'canary-by-header': 'X-Canary', 'canary-by-header-value': 'yes', 'canary-by-header-pattern': 'v1' }).settings.canary
  t.equal(spec?.header, 'x-canary', 'the header name is matched lowercase')
  t.equal(spec?.headerValue, 'yes')
  t.equal(spec?.headerPattern, undefined, 'a value wins over a pattern, as in balancer.lua')
  t.equal(spec?.weightTotal, 100)
  t.equal(spec?.affinityBehavior, 'sticky')

  const route = { backend: { upstreams: [{ host: '127.0.0.1', port: 1 }] }, settings: {} } as unknown as Route
  const decide = (s: Record<string, string>, headers: Record<string, string>, random: number): boolean => {
    const c = parse({ canary: 'true', ...s }).settings.canary
    if (c === undefined) throw new Error('no spec')
    return routeToCanary(compileCanary(c, route, route.backend, undefined), { headers } as unknown as IncomingMessage, () => random)
  }
  t.equal(decide({ 'canary-weight': '0' }, {}, 0), false, 'weight 0: never')
  t.equal(decide({ 'canary-weight': '100' }, {}, 0.999999), true, 'weight = total: always')
  t.equal(decide({ 'canary-weight': '30' }, {}, 0.29), true)
  t.equal(decide({ 'canary-weight': '30' }, {}, 0.3), false)
  t.equal(decide({ 'canary-weight': '1', 'canary-weight-total': '1000' }, {}, 0.0009), true)
  t.equal(decide({ 'canary-weight': '1', 'canary-weight-total': '1000' }, {}, 0.001), false)
  t.equal(decide({ 'canary-by-header': 'X-Canary', 'canary-weight': '100' }, { 'x-canary': 'never' }, 0), false)
  t.equal(decide({ 'canary-by-cookie': 'c', 'canary-weight': '0' }, { cookie: 'a=b; c=always' }, 0), true)
})
