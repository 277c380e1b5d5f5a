/**
 * load-balance, upstream-hash-by and cookie affinity end to end: a real gateway, several real
 * origins behind one Service's Endpoints, requests over sockets. Scenarios after ingress-nginx's
 * e2e suites (test/e2e/annotations/{affinity,affinitymode,upstreamhashby}.go, test/e2e/loadbalance/),
 * written for ingressd.
 */
import t from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { httpsGet } from '../helpers/tls.js'

type Teardown = Parameters<typeof startOrigin>[0]

const P = 'nginx.ingress.kubernetes.io/'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

interface PathSpec { path: string, pathType?: string }

function ingress (name: string, host: string, service: string, annotations: Record<string, string> = {}, paths: Array<string | PathSpec> = ['/']): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [P + k, v])) },
    spec: {
      rules: [{
        host,
        http: {
          paths: paths.map(p => {
            const { path, pathType } = typeof p === 'string' ? { path: p, pathType: 'Prefix' } : p
            return { path, pathType: pathType ?? 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }
          })
        }
      }]
    }
  }
}

interface Answer { status: number, origin: string, setCookie: string[] }

async function get (gw: TestGateway, host: string, path = '/', headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${gw.http}${path}`, { headers: { host, ...headers } })
  const text = await res.body.text()
  let origin = ''
  try { origin = (JSON.parse(text) as { server: string }).server } catch {}
  const raw = res.headers['set-cookie']
  return { status: res.statusCode, origin, setCookie: raw === undefined ? [] : [raw].flat() }
}

async function origins (t: Teardown, count: number, prefix = 'o'): Promise<Origin[]> {
  const list: Origin[] = []
  for (let i = 0; i < count; i++) list.push(await startOrigin(t, `${prefix}${i}`))
  return list
}

/** A slow origin: answers like the echo origin, `ms` later. */
async function slowOrigin (t: Teardown, name: string, ms: number): Promise<Origin> {
  return await startOrigin(t, name, (req, res) => {
    setTimeout(() => {
      const text = JSON.stringify({ server: name, url: req.url })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    }, ms)
  })
}

function count (answers: Answer[]): Map<string, number> {
  const counts = new Map<string, number>()
  for (const a of answers) counts.set(a.origin, (counts.get(a.origin) ?? 0) + 1)
  return counts
}

/** The `name=value` of an affinity Set-Cookie, to send back. */
function cookiePair (setCookie: string | undefined): string {
  return (setCookie ?? '').split(';')[0] ?? ''
}

function attributes (setCookie: string): Map<string, string> {
  const parts = setCookie.split(';').map(p => p.trim())
  return new Map(parts.slice(1).map(p => {
    const eq = p.indexOf('=')
    return eq === -1 ? [p.toLowerCase(), ''] : [p.slice(0, eq).toLowerCase(), p.slice(eq + 1)]
  }))
}

t.test('round robin (the default, and load-balance: round_robin) shares 300 requests evenly over three endpoints', async t => {
  const gw = await startTestGateway(t)
  const os = await origins(t, 3)
  await apply(gw, [...serviceManifests('web', os), ingress('plain', 'plain.example.com', 'web'), ingress('rr', 'rr.example.com', 'web', { 'load-balance': 'round_robin' })])
  for (const host of ['plain.example.com', 'rr.example.com']) {
    const answers: Answer[] = []
    for (let i = 0; i < 300; i++) answers.push(await get(gw, host, `/r${i}`))
    t.ok(answers.every(a => a.status === 200), `${host}: every request answered`)
    t.same([...count(answers).values()], [100, 100, 100], `${host}: 100 each`)
  }
})

t.test('load-balance: ewma sends almost nothing to a slow endpoint, and fails no request', async t => {
  const gw = await startTestGateway(t)
  const fast = await origins(t, 2, 'fast')
  const slow = await slowOrigin(t, 'slow', 80)
  await apply(gw, [...serviceManifests('mixed', [...fast, slow]), ingress('ewma', 'ewma.example.com', 'mixed', { 'load-balance': 'ewma' })])
  const answers: Answer[] = []
  for (let i = 0; i < 60; i++) answers.push(await get(gw, 'ewma.example.com', `/e${i}`))
  t.ok(answers.every(a => a.status === 200), 'every request answered')
  const toSlow = count(answers).get('slow') ?? 0
  t.ok(toSlow <= 3, `the slow endpoint got ${toSlow} of 60 (once its response time is known it loses every pair)`)
  t.ok((count(answers).get('fast0') ?? 0) > 10 && (count(answers).get('fast1') ?? 0) > 10, 'the fast ones share the rest')
})

t.test('INGRESSD_LOAD_BALANCE=ewma applies to routes without annotations; load-balance: round_robin opts out', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOAD_BALANCE: 'ewma' })
  const fast = await startOrigin(t, 'fast')
  const slow = await slowOrigin(t, 'slow', 80)
  await apply(gw, [...serviceManifests('mixed', [fast, slow]), ingress('default', 'default.example.com', 'mixed'), ingress('rr', 'rr.example.com', 'mixed', { 'load-balance': 'round_robin' })])
  const byDefault: Answer[] = []
  for (let i = 0; i < 40; i++) byDefault.push(await get(gw, 'default.example.com', `/d${i}`))
  t.ok((count(byDefault).get('slow') ?? 0) <= 2, `ewma by default: the slow endpoint got ${count(byDefault).get('slow') ?? 0} of 40`)
  const rr: Answer[] = []
  for (let i = 0; i < 40; i++) rr.push(await get(gw, 'rr.example.com', `/r${i}`))
  t.same([...count(rr).values()], [20, 20], 'round_robin: 20 each')
})

t.test('upstream-hash-by: the same key always reaches the same endpoint; different keys spread', async t => {
  const gw = await startTestGateway(t)
  const os = await origins(t, 6)
  const cases: Array<{ expression: string, same: (i: number) => [string, Record<string, string>], differ: (i: number) => [string, Record<string, string>] }> = [
    { expression: '$request_uri', same: i => ['/page?id=7', { 'x-n': String(i) }], differ: i => [`/page?id=${i}`, {}] },
    { expression: '$uri', same: i => [`/doc?v=${i}`, {}], differ: i => [`/doc/${i}`, {}] },
    { expression: '$http_x_user', same: i => [`/u${i}`, { 'x-user': 'alice' }], differ: i => ['/u', { 'x-user': `user-${i}` }] },
    { expression: '$cookie_session', same: i => [`/c${i}`, { cookie: 'theme=dark; session=s-42' }], differ: i => ['/c', { cookie: `session=s-${i}` }] },
    { expression: '$arg_tenant', same: i => [`/t${i}?tenant=acme&x=${i}`, {}], differ: i => [`/t?tenant=t${i}`, {}] },
    { expression: 'tenant-$host$request_uri', same: i => ['/h', { 'x-n': String(i) }], differ: i => [`/h${i}`, {}] }
  ]
  const manifests: unknown[] = [...serviceManifests('hashed', os)]
  cases.forEach((c, i) => manifests.push(ingress(`hash${i}`, `hash${i}.example.com`, 'hashed', { 'upstream-hash-by': c.expression })))
  await apply(gw, manifests)
  for (const [i, c] of cases.entries()) {
    const host = `hash${i}.example.com`
    const same = new Set<string>()
    for (let n = 0; n < 20; n++) {
      const [path, headers] = c.same(n)
      const a = await get(gw, host, path, headers)
      t.equal(a.status, 200)
      same.add(a.origin)
    }
    t.equal(same.size, 1, `${c.expression}: one key, one endpoint`)
    const spread = new Set<string>()
    for (let n = 0; n < 60; n++) {
      const [path, headers] = c.differ(n)
      spread.add((await get(gw, host, path, headers)).origin)
    }
    t.ok(spread.size >= 4, `${c.expression}: 60 keys over ${spread.size} of 6 endpoints`)
  }
  // Every request comes from 127.0.0.1: $remote_addr is one key.
  await apply(gw, [ingress('by-client', 'client.example.com', 'hashed', { 'upstream-hash-by': '$remote_addr' })])
  const clients = new Set<string>()
  for (let n = 0; n < 20; n++) clients.add((await get(gw, 'client.example.com', `/x${n}`)).origin)
  t.equal(clients.size, 1, '$remote_addr: one client, one endpoint')
})

t.test('upstream-hash-by: removing one of ten endpoints moves about a tenth of the keys, and only its own', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOG_LEVEL: 'warn' })
  const os = await origins(t, 10)
  await apply(gw, [...serviceManifests('ten', os), ingress('ten', 'ten.example.com', 'ten', { 'upstream-hash-by': '$request_uri' })])
  const keys = Array.from({ length: 1000 }, (_, i) => `/object/${i}`)
  const mapAll = async (): Promise<string[]> => {
    const out: string[] = []
    for (let i = 0; i < keys.length; i += 25) {
      const batch = await Promise.all(keys.slice(i, i + 25).map(k => get(gw, 'ten.example.com', k)))
      for (const a of batch) {
        if (a.status !== 200) throw new Error(`status ${a.status}`)
        out.push(a.origin)
      }
    }
    return out
  }
  const before = await mapAll()
  t.same(await mapAll(), before, 'the same keys map the same way twice')
  const removed = 'o4'
  await apply(gw, serviceManifests('ten', os.filter(o => o.name !== removed)))
  const after = await mapAll()
  let moved = 0
  let movedFromOthers = 0
  before.forEach((was, i) => {
    if (after[i] !== was) {
      moved++
      if (was !== removed) movedFromOthers++
    }
  })
  t.ok(moved >= 50 && moved <= 150, `${moved} of 1000 keys moved (${moved / 10}%), expected about 10%`)
  t.equal(movedFromOthers, 0, 'keys of the nine endpoints that stayed did not move')
  t.notOk(after.includes(removed), 'nothing goes to the removed endpoint')
})

t.test('upstream-hash-by-subset: one key reaches exactly the three endpoints of its group', async t => {
  const gw = await startTestGateway(t)
  const os = await origins(t, 6)
  await apply(gw, [...serviceManifests('subset', os), ingress('subset', 'subset.example.com', 'subset', { 'upstream-hash-by': '$request_uri', 'upstream-hash-by-subset': 'true', 'upstream-hash-by-subset-size': '3' })])
  const seen = new Set<string>()
  for (let i = 0; i < 100; i++) seen.add((await get(gw, 'subset.example.com', '/same')).origin)
  t.equal(seen.size, 3)
})

t.test('affinity cookie attributes: name, Path, Max-Age, Expires, SameSite, Domain, HttpOnly; Secure only over HTTPS or when asked', async t => {
  const gw = await startTestGateway(t)
  const os = await origins(t, 2)
  await apply(gw, [
    ...serviceManifests('web', os),
    ingress('defaults', 'defaults.example.com', 'web', { affinity: 'cookie' }, ['/shop']),
    ingress('full', 'full.example.com', 'web', {
      affinity: 'cookie',
      'session-cookie-name': 'SERVERID',
      'session-cookie-max-age': '259200',
      'session-cookie-expires': '172800',
      'session-cookie-samesite': 'Lax',
      'session-cookie-domain': '.example.com'
    }, ['/app']),
    ingress('secure', 'secure.example.com', 'web', { affinity: 'cookie', 'session-cookie-secure': 'true' }),
    ingress('not-secure', 'notsecure.example.com', 'web', { affinity: 'cookie', 'session-cookie-secure': 'false' })
  ])

  const plain = await get(gw, 'defaults.example.com', '/shop/cart')
  t.equal(plain.status, 200)
  t.equal(plain.setCookie.length, 1)
  const cookie = plain.setCookie[0] as string
  t.match(cookie, /^INGRESSCOOKIE=[0-9a-f]+\|[0-9a-f]{32};/, 'the default name, and a key|backend value')
  const a = attributes(cookie)
  t.equal(a.get('path'), '/shop', 'Path: the ingress path as written')
  t.ok(a.has('httponly'), 'HttpOnly')
  t.notOk(a.has('secure'), 'no Secure over plain HTTP')
  t.notOk(a.has('max-age') || a.has('expires') || a.has('samesite') || a.has('domain'), 'nothing else unless asked')

  const full = await get(gw, 'full.example.com', '/app')
  const f = attributes(full.setCookie[0] as string)
  t.match(full.setCookie[0], /^SERVERID=/)
  t.equal(f.get('path'), '/app')
  t.equal(f.get('max-age'), '259200')
  t.equal(f.get('samesite'), 'Lax')
  t.equal(f.get('domain'), '.example.com')
  const expires = Date.parse(f.get('expires') ?? '')
  t.ok(Math.abs(expires - (Date.now() + 172800 * 1000)) < 10_000, `Expires ${f.get('expires')} is now + 48 h`)
  await new Promise(resolve => setTimeout(resolve, 1100))
  const later = attributes((await get(gw, 'full.example.com', '/app')).setCookie[0] as string)
  t.ok(Date.parse(later.get('expires') ?? '') > expires, 'Expires is computed for each response, not once')

  t.ok(attributes((await get(gw, 'secure.example.com')).setCookie[0] as string).has('secure'), 'session-cookie-secure: "true" sets Secure on plain HTTP')
  t.notOk(attributes((await get(gw, 'notsecure.example.com')).setCookie[0] as string).has('secure'))
  for (const host of ['defaults.example.com', 'notsecure.example.com']) {
    const res = await httpsGet(gw.httpsPort, { servername: host, host, path: host.startsWith('defaults') ? '/shop' : '/' })
    t.equal(res.status, 200)
    const set = [res.headers['set-cookie'] ?? []].flat()[0] as string
    t.ok(attributes(set).has('secure'), `${host} over HTTPS: Secure (session-cookie-secure: "false" does not take it away)`)
    t.ok(attributes(set).has('httponly'))
  }
})

t.test('affinity behind a trusted proxy: X-Forwarded-Proto https makes the cookie Secure', async t => {
  const gw = await startTestGateway(t, { INGRESSD_TRUSTED_PROXIES: '127.0.0.1/32' })
  const os = await origins(t, 2)
  await apply(gw, [...serviceManifests('web', os), ingress('sticky', 'sticky.example.com', 'web', { affinity: 'cookie' })])
  t.ok(attributes((await get(gw, 'sticky.example.com', '/', { 'x-forwarded-proto': 'https' })).setCookie[0] as string).has('secure'))
  t.notOk(attributes((await get(gw, 'sticky.example.com', '/')).setCookie[0] as string).has('secure'))
})

for (const mode of ['balanced', 'persistent']) {
  t.test(`affinity-mode ${mode}: a sticky client stays on its endpoint, with no new cookie, across a table swap`, async t => {
    const gw = await startTestGateway(t)
    const os = await origins(t, 5)
    const other = await startOrigin(t, 'other')
    await apply(gw, [...serviceManifests('web', os), ...serviceManifests('other', [other]), ingress('sticky', 'sticky.example.com', 'web', { affinity: 'cookie', 'affinity-mode': mode })])
    const sessions: Array<{ cookie: string, origin: string }> = []
    for (let i = 0; i < 10; i++) {
      const first = await get(gw, 'sticky.example.com', '/')
      t.equal(first.setCookie.length, 1, 'a new client gets a cookie')
      sessions.push({ cookie: cookiePair(first.setCookie[0]), origin: first.origin })
    }
    t.ok(new Set(sessions.map(s => s.origin)).size >= 2, 'new sessions spread over the endpoints')
    const check = async (when: string): Promise<void> => {
      for (const s of sessions) {
        for (let i = 0; i < 3; i++) {
          const a = await get(gw, 'sticky.example.com', `/p${i}`, { cookie: `theme=dark; ${s.cookie}` })
          t.equal(a.origin, s.origin, `${when}: the same endpoint`)
          t.same(a.setCookie, [], `${when}: no new cookie`)
        }
      }
    }
    await check('before')
    const res = await gw.api('POST', ING, ingress('unrelated', 'unrelated.example.com', 'other'))
    t.equal(res.status, 201)
    t.equal((await get(gw, 'unrelated.example.com')).origin, 'other', 'the new table is live')
    await check('after an unrelated ingress was written')
    if (mode === 'persistent') {
      await apply(gw, serviceManifests('web', [...os, await startOrigin(t, 'o5'), await startOrigin(t, 'o6')]))
      await check('after two endpoints were added')
    }
  })
}

t.test('affinity: when its endpoint is removed the client moves; persistent issues a new cookie that sticks', async t => {
  const gw = await startTestGateway(t)
  const os = await origins(t, 4)
  await apply(gw, [
    ...serviceManifests('web', os),
    ingress('persistent', 'persistent.example.com', 'web', { affinity: 'cookie', 'affinity-mode': 'persistent' }),
    ingress('balanced', 'balanced.example.com', 'web', { affinity: 'cookie', 'session-cookie-name': 'BAL' })
  ])
  const p = await get(gw, 'persistent.example.com')
  const b = await get(gw, 'balanced.example.com')
  const pCookie = cookiePair(p.setCookie[0])
  const bCookie = cookiePair(b.setCookie[0])
  // Take away both sessions' endpoints (the same one when they share it).
  await apply(gw, serviceManifests('web', os.filter(o => o.name !== p.origin && o.name !== b.origin)))

  const moved = await get(gw, 'persistent.example.com', '/', { cookie: pCookie })
  t.equal(moved.status, 200)
  t.not(moved.origin, p.origin, 'persistent: another endpoint')
  t.equal(moved.setCookie.length, 1, 'persistent: a new cookie')
  const renewed = cookiePair(moved.setCookie[0])
  t.not(renewed, pCookie)
  for (let i = 0; i < 5; i++) {
    const a = await get(gw, 'persistent.example.com', '/', { cookie: renewed })
    t.equal(a.origin, moved.origin, 'the new cookie sticks')
    t.same(a.setCookie, [])
  }

  const rebalanced = await get(gw, 'balanced.example.com', '/', { cookie: bCookie })
  t.equal(rebalanced.status, 200)
  t.not(rebalanced.origin, b.origin, 'balanced: the key lands on another endpoint')
  for (let i = 0; i < 5; i++) t.equal((await get(gw, 'balanced.example.com', '/', { cookie: bCookie })).origin, rebalanced.origin, 'and stays there')
})

t.test('the cookie is set only on the paths of the annotated ingress, each with its own Path', async t => {
  const gw = await startTestGateway(t)
  const os = await origins(t, 2)
  await apply(gw, [
    ...serviceManifests('web', os),
    ingress('sticky', 'paths.example.com', 'web', { affinity: 'cookie', 'session-cookie-name': 'SERVERID' }, ['/something', '/somewhereelse']),
    ingress('plain', 'paths.example.com', 'web', {}, ['/foo']),
    ingress('regex-path', 'regex.example.com', 'web', { affinity: 'cookie', 'use-regex': 'true', 'session-cookie-path': '/foo/bar' }, [{ path: '/foo/.*', pathType: 'ImplementationSpecific' }]),
    ingress('regex-nopath', 'regex2.example.com', 'web', { affinity: 'cookie', 'use-regex': 'true' }, [{ path: '/foo/.*', pathType: 'ImplementationSpecific' }])
  ])
  t.equal(attributes((await get(gw, 'paths.example.com', '/something')).setCookie[0] as string).get('path'), '/something')
  t.equal(attributes((await get(gw, 'paths.example.com', '/somewhereelse/x')).setCookie[0] as string).get('path'), '/somewhereelse')
  const plain = await get(gw, 'paths.example.com', '/foo')
  t.equal(plain.status, 200)
  t.same(plain.setCookie, [], 'another ingress on the same host and Service: no cookie')
  t.equal(attributes((await get(gw, 'regex.example.com', '/foo/bar')).setCookie[0] as string).get('path'), '/foo/bar', 'use-regex with session-cookie-path')
  t.equal(attributes((await get(gw, 'regex2.example.com', '/foo/bar')).setCookie[0] as string).get('path'), '/foo/', 'use-regex without: the literal start of the expression')
})

t.test('session-cookie-change-on-failure: a dead pinned endpoint is left for another, with a new cookie; without it the request fails', async t => {
  const gw = await startTestGateway(t, { INGRESSD_LOG_LEVEL: 'error' })
  const os = await origins(t, 2)
  await apply(gw, [
    ...serviceManifests('web', os),
    ingress('change', 'change.example.com', 'web', { affinity: 'cookie', 'affinity-mode': 'persistent', 'session-cookie-change-on-failure': 'true' }),
    ingress('keep', 'keep.example.com', 'web', { affinity: 'cookie', 'affinity-mode': 'persistent' })
  ])
  const first = await get(gw, 'change.example.com')
  const cookie = cookiePair(first.setCookie[0])
  t.equal((await get(gw, 'keep.example.com', '/', { cookie })).origin, first.origin, 'the same key names the same endpoint on both ingresses of the Service')
  const dead = os.find(o => o.name === first.origin) as Origin
  dead.server.closeAllConnections()
  await new Promise(resolve => dead.server.close(resolve))

  const kept = await get(gw, 'keep.example.com', '/', { cookie })
  t.equal(kept.status, 502, 'without change-on-failure the retries go to the pinned endpoint, as in ingress-nginx')
  const changed = await get(gw, 'change.example.com', '/', { cookie })
  t.equal(changed.status, 200)
  t.not(changed.origin, first.origin, 'with it: the other endpoint')
  t.equal(changed.setCookie.length, 1, 'and a new cookie')
  t.equal((await get(gw, 'change.example.com', '/', { cookie: cookiePair(changed.setCookie[0]) })).origin, changed.origin, 'which sticks')
})

t.test('malformed balancing values are refused with 422 naming the key, and nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const cases: Array<[string, Record<string, string>, string]> = [
    ['lb', { 'load-balance': 'least_conn' }, 'load-balance'],
    ['affinity', { affinity: 'ip' }, 'affinity'],
    ['mode', { affinity: 'cookie', 'affinity-mode': 'sticky' }, 'affinity-mode'],
    ['max-age', { affinity: 'cookie', 'session-cookie-max-age': 'two days' }, 'session-cookie-max-age'],
    ['expires', { affinity: 'cookie', 'session-cookie-expires': '1h' }, 'session-cookie-expires'],
    ['samesite', { affinity: 'cookie', 'session-cookie-samesite': 'Sometimes' }, 'session-cookie-samesite'],
    ['name', { affinity: 'cookie', 'session-cookie-name': 'my cookie' }, 'session-cookie-name'],
    ['hash', { 'upstream-hash-by': '$request_uri$no_such_thing' }, 'upstream-hash-by'],
    ['subset-size', { 'upstream-hash-by': '$request_uri', 'upstream-hash-by-subset': 'true', 'upstream-hash-by-subset-size': 'three' }, 'upstream-hash-by-subset-size']
  ]
  for (const [name, annotations, key] of cases) {
    const res = await gw.api('POST', ING, ingress(name, `${name}.example.com`, 'web', annotations))
    t.equal(res.status, 422, `${name}: refused`)
    t.equal(res.body.details.causes[0].field, `metadata.annotations[${P}${key}]`, `${name}: names ${key}`)
    if (key === 'upstream-hash-by') t.match(res.body.details.causes[0].message, /unknown nginx variable "\$no_such_thing"/)
    t.equal((await gw.api('GET', `${ING}/${name}`)).status, 404, `${name}: nothing stored`)
  }
  const ok = await gw.api('POST', ING, ingress('fine', 'fine.example.com', 'web', { affinity: 'cookie', 'session-cookie-samesite': 'none', 'upstream-hash-by': '$host$request_uri', 'load-balance': 'ewma' }))
  t.equal(ok.status, 201, 'well-formed values are stored')
  const conditions = ok.body.status.conditions as Array<{ type: string, message: string }>
  t.notOk(conditions.some(c => (c.type === 'AnnotationsIgnored' || c.type === 'AnnotationsNoEffect') && /load-balance|affinity|hash/.test(c.message)), 'and not reported as ignored or without effect')
})
