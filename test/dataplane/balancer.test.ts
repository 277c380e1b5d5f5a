/**
 * The balancers without sockets: the consistent-hash ring (stability, ~1/N movement), the
 * per-endpoint-set state surviving new Backend objects, EWMA, hashing, cookie affinity, and the
 * parsing of their annotations.
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { HashRing, hashString, subsetGroups } from '../../src/dataplane/hash-ring.js'
import { Balancers, parseBalancingAnnotations, putAffinityCookie, selectBalancer, type BalancerSpec, type Choice } from '../../src/dataplane/balancer.js'
import { affinitySetCookie, defaultCookiePath, readCookie, sameSiteNoneCompatible, type AffinitySpec } from '../../src/dataplane/policies/affinity.js'
import type { VariableRequest } from '../../src/dataplane/policies/nginx-variables.js'
import type { Backend, Upstream } from '../../src/dataplane/route-table.js'

const P = 'nginx.ingress.kubernetes.io/'

function ids (n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => `10.0.${Math.floor((i + from) / 250)}.${((i + from) % 250) + 1}:8080`)
}

function backend (hosts: string[], key = 'default/web:80'): Backend {
  const [namespace, rest] = key.split('/') as [string, string]
  const [service, port] = rest.split(':') as [string, string]
  return Object.freeze({ key, namespace, service, port, upstreams: Object.freeze(hosts.map(h => Object.freeze({ host: h, port: 8080 }))) })
}

function request (over: { headers?: Record<string, string>, url?: string, client?: string, proto?: 'http' | 'https' } = {}): VariableRequest {
  const url = over.url ?? '/'
  const q = url.indexOf('?')
  return {
    req: { headers: over.headers ?? {}, url, socket: {} } as unknown as IncomingMessage,
    method: 'GET',
    host: 'app.example.com',
    path: q === -1 ? url : url.slice(0, q),
    query: q === -1 ? '' : url.slice(q),
    proto: over.proto ?? 'http',
    client: over.client ?? '192.0.2.1',
    requestId: '0'
  }
}

const healthy = { isAvailable: () => true }
const noRoundRobin = (): Upstream | undefined => { throw new Error('not round robin') }

function spec (annotations: Record<string, string>, path = '/'): BalancerSpec {
  const parsed = parseBalancingAnnotations(name => annotations[name])
  if (parsed.problems.length > 0) throw new Error(JSON.stringify(parsed.problems))
  const loadBalance = annotations['load-balance'] as 'round_robin' | 'ewma' | undefined
  return selectBalancer({ ...parsed, ...(loadBalance !== undefined ? { loadBalance } : {}) }, path, false) as BalancerSpec
}

t.test('hashString is stable and spreads keys evenly', async t => {
  t.equal(hashString('/a'), hashString('/a'))
  t.not(hashString('/a'), hashString('/b'))
  t.equal(hashString(''), hashString(''))
  const buckets = new Array<number>(16).fill(0)
  for (let i = 0; i < 16000; i++) {
    const b = hashString(`/item/${i}`) >>> 28
    buckets[b] = (buckets[b] as number) + 1
  }
  for (const count of buckets) t.ok(count > 800 && count < 1200, `bucket holds ${count} of 16000`)
})

t.test('the ring: each of 10 endpoints owns about a tenth of the keys, whatever the order of the ids', async t => {
  const nodes = ids(10)
  const ring = new HashRing(nodes)
  const shuffled = [...nodes].reverse()
  const other = new HashRing(shuffled)
  let same = 0
  for (let i = 0; i < 1000; i++) {
    const h = hashString(`key-${i}`)
    if (shuffled[other.find(h)] === nodes[ring.find(h)]) same++
  }
  t.equal(same, 1000, 'a ring built from the ids in another order gives every key the same owner')
  const counts = new Map<string, number>()
  for (let i = 0; i < 10000; i++) {
    const owner = nodes[ring.find(hashString(`key-${i}`))] as string
    counts.set(owner, (counts.get(owner) ?? 0) + 1)
  }
  t.equal(counts.size, 10)
  for (const [node, count] of counts) t.ok(count > 500 && count < 1500, `${node} owns ${count} of 10000`)
})

t.test('removing one of N=10 endpoints moves between 5% and 15% of 10,000 keys, and only its own', async t => {
  const nodes = ids(10)
  const before = new HashRing(nodes)
  const removed = nodes[3] as string
  const remaining = nodes.filter(n => n !== removed)
  const after = new HashRing(remaining)
  let moved = 0
  let movedFromOthers = 0
  for (let i = 0; i < 10000; i++) {
    const h = hashString(`/user/${i}`)
    const was = nodes[before.find(h)] as string
    const is = remaining[after.find(h)] as string
    if (was !== is) {
      moved++
      if (was !== removed) movedFromOthers++
    }
  }
  t.ok(moved >= 500 && moved <= 1500, `${moved} of 10000 keys moved (${(moved / 100).toFixed(1)}%)`)
  t.equal(movedFromOthers, 0, 'keys of the endpoints that stayed did not move')
})

t.test('adding an 11th endpoint moves about 1/11 of the keys, all to the new one', async t => {
  const nodes = ids(10)
  const grown = [...nodes, ...ids(1, 10)]
  const before = new HashRing(nodes)
  const after = new HashRing(grown)
  let moved = 0
  let elsewhere = 0
  for (let i = 0; i < 10000; i++) {
    const h = hashString(`/user/${i}`)
    const was = nodes[before.find(h)]
    const is = grown[after.find(h)]
    if (was !== is) {
      moved++
      if (is !== grown[10]) elsewhere++
    }
  }
  t.ok(moved >= 450 && moved <= 1400, `${moved} of 10000 keys moved`)
  t.equal(elsewhere, 0, 'every moved key went to the new endpoint')
})

t.test('walk skips nodes clockwise; an empty ring finds nothing', async t => {
  const nodes = ids(5)
  const ring = new HashRing(nodes)
  const h = hashString('k')
  const owner = ring.find(h)
  t.equal(ring.walk(h, () => true), owner, 'the owner first')
  const next = ring.walk(h, n => n !== owner)
  t.not(next, owner)
  t.ok(next >= 0)
  t.equal(ring.walk(h, () => false), -1)
  t.equal(new HashRing([]).find(h), -1)
})

t.test('subsetGroups groups as chashsubset.lua does, filling the last group from the start', async t => {
  t.same(subsetGroups(6, 3), [[0, 1, 2], [3, 4, 5]])
  t.same(subsetGroups(7, 3), [[0, 1, 2], [3, 4, 5], [6, 0, 1]])
  t.same(subsetGroups(2, 3), [[0, 1, 0]])
  t.same(subsetGroups(0, 3), [])
})

t.test('balancing state lives with the endpoint set: a new Backend object with the same addresses keeps it', async t => {
  const balancers = new Balancers(healthy, noRoundRobin)
  const a = backend(['10.0.0.1', '10.0.0.2', '10.0.0.3'])
  const b = backend(['10.0.0.1', '10.0.0.2', '10.0.0.3'])
  const c = backend(['10.0.0.1', '10.0.0.2', '10.0.0.4'])
  const other = backend(['10.0.0.1', '10.0.0.2', '10.0.0.3'], 'default/other:80')
  const set = balancers.endpointSet(a)
  t.equal(balancers.endpointSet(b), set, 'same key, same addresses: the same state')
  t.not(balancers.endpointSet(c), set, 'an address changed: new state')
  t.not(balancers.endpointSet(other), balancers.endpointSet(c), 'another service: its own state')
})

t.test('upstream-hash-by: the same key reaches the same endpoint across Backend objects; tried and unavailable endpoints pass it on', async t => {
  const hashed = spec({ 'upstream-hash-by': '$request_uri' })
  t.equal(hashed.kind, 'hash')
  const down = new Set<string>()
  const balancers = new Balancers({ isAvailable: u => !down.has(u.host) }, noRoundRobin)
  const hosts = Array.from({ length: 6 }, (_, i) => `10.0.1.${i + 1}`)
  const first = backend(hosts)
  const again = backend(hosts)
  const seen = new Set<string>()
  for (let i = 0; i < 200; i++) {
    const r = request({ url: `/item/${i}` })
    const one = balancers.choose(hashed, first, r, false)?.upstream.host
    const two = balancers.choose(hashed, again, r, false)?.upstream.host
    t.equal(one, two)
    seen.add(one as string)
  }
  t.equal(seen.size, 6, 'keys spread over every endpoint')
  const r = request({ url: '/item/7' })
  const owner = balancers.choose(hashed, first, r, false) as Choice
  const retry = balancers.choose(hashed, first, r, false, new Set([owner.upstream]), owner)
  t.not(retry?.upstream, owner.upstream, 'a retry goes to the next endpoint on the ring')
  down.add(owner.upstream.host)
  t.not(balancers.choose(hashed, first, r, false)?.upstream, owner.upstream, 'an endpoint out of rotation hands its keys on')
  down.clear()
  t.equal(balancers.choose(hashed, first, r, false)?.upstream, owner.upstream, 'and gets them back')
  t.equal(balancers.choose(hashed, first, r, false, new Set(first.upstreams)), undefined, 'every endpoint tried: nothing left')
})

t.test('upstream-hash-by variables and literal text', async t => {
  const balancers = new Balancers(healthy, noRoundRobin)
  const b = backend(Array.from({ length: 8 }, (_, i) => `10.0.2.${i + 1}`))
  const byUser = spec({ 'upstream-hash-by': 'user-$http_x_user' })
  const byArg = spec({ 'upstream-hash-by': '$arg_tenant' })
  const byCookie = spec({ 'upstream-hash-by': '$cookie_session' })
  const byClient = spec({ 'upstream-hash-by': '$remote_addr' })
  for (let i = 0; i < 20; i++) {
    t.equal(balancers.choose(byUser, b, request({ url: `/a${i}`, headers: { 'x-user': 'alice' } }), false)?.upstream, balancers.choose(byUser, b, request({ url: '/z', headers: { 'x-user': 'alice' } }), false)?.upstream, 'header')
    t.equal(balancers.choose(byArg, b, request({ url: `/p${i}?tenant=acme&x=${i}` }), false)?.upstream, balancers.choose(byArg, b, request({ url: '/q?tenant=acme' }), false)?.upstream, 'argument')
    t.equal(balancers.choose(byCookie, b, request({ url: `/c${i}`, headers: { cookie: 'a=1; session=s-42' } }), false)?.upstream, balancers.choose(byCookie, b, request({ headers: { cookie: 'session=s-42' } }), false)?.upstream, 'cookie')
    t.equal(balancers.choose(byClient, b, request({ url: `/r${i}`, client: '198.51.100.7' }), false)?.upstream, balancers.choose(byClient, b, request({ client: '198.51.100.7' }), false)?.upstream, 'client address')
  }
  const users = new Set(Array.from({ length: 100 }, (_, i) => balancers.choose(byUser, b, request({ headers: { 'x-user': `u${i}` } }), false)?.upstream.host))
  t.ok(users.size >= 6, `100 users spread over ${users.size} endpoints`)
})

t.test('upstream-hash-by-subset: a key reaches the members of one group of subset-size endpoints', async t => {
  const subset = spec({ 'upstream-hash-by': '$request_uri', 'upstream-hash-by-subset': 'true', 'upstream-hash-by-subset-size': '3' })
  t.same({ kind: subset.kind, size: subset.kind === 'hash' ? subset.subsetSize : 0 }, { kind: 'hash', size: 3 })
  const balancers = new Balancers(healthy, noRoundRobin)
  const b = backend(Array.from({ length: 6 }, (_, i) => `10.0.3.${i + 1}`))
  const members = new Set<string>()
  for (let i = 0; i < 200; i++) members.add(balancers.choose(subset, b, request({ url: '/same' }), false)?.upstream.host as string)
  t.equal(members.size, 3, 'one key: the three members of its group')
  const defaultSize = spec({ 'upstream-hash-by': '$request_uri', 'upstream-hash-by-subset': 'true' })
  t.equal(defaultSize.kind === 'hash' ? defaultSize.subsetSize : 0, 3, 'default size 3')
})

t.test('ewma: the endpoint with the lower decayed response time wins the pair', async t => {
  const ewma = spec({ 'load-balance': 'ewma' })
  t.equal(ewma.kind, 'ewma')
  const balancers = new Balancers(healthy, noRoundRobin)
  const b = backend(['10.0.4.1', '10.0.4.2'])
  const [fast, slow] = b.upstreams as [Upstream, Upstream]
  balancers.choose(ewma, b, request(), false)
  for (let i = 0; i < 5; i++) {
    balancers.observe(ewma, b, fast, 2)
    balancers.observe(ewma, b, slow, 400)
  }
  let toFast = 0
  for (let i = 0; i < 100; i++) if (balancers.choose(ewma, b, request(), false)?.upstream === fast) toFast++
  t.equal(toFast, 100, 'with two endpoints both are compared: the fast one always wins')
  // A new endpoint starts at the average of the others' scores; the old ones keep theirs.
  const grown = backend(['10.0.4.1', '10.0.4.2', '10.0.4.3'])
  const state = balancers.endpointSet(grown).ewma
  t.ok(state !== undefined, 'scores carried to the new set')
  t.ok((state?.score[0] as number) < 50 && (state?.score[1] as number) > 200, 'the endpoints that stayed keep their score')
  t.ok(Math.abs((state?.score[2] as number) - ((state?.score[0] as number) + (state?.score[1] as number)) / 2) < 1, 'the new one starts at the average')
  const tried = balancers.choose(ewma, b, request(), false, new Set([fast]))
  t.equal(tried?.upstream, slow, 'a retry skips what was tried')
})

t.test('explicit round_robin uses the proxy\'s round robin', async t => {
  const b = backend(['10.0.5.1'])
  const balancers = new Balancers(healthy, () => b.upstreams[0])
  t.equal(balancers.choose(spec({ 'load-balance': 'round_robin' }), b, request(), false)?.upstream, b.upstreams[0])
})

function sticky (extra: Record<string, string> = {}, path = '/shop'): Extract<BalancerSpec, { kind: 'sticky' }> {
  return spec({ affinity: 'cookie', ...extra }, path) as Extract<BalancerSpec, { kind: 'sticky' }>
}

function cookieValue (setCookie: string | undefined): string {
  return (setCookie ?? '').split(';')[0]?.split('=').slice(1).join('=') ?? ''
}

t.test('persistent affinity: the cookie names the endpoint by ingress-nginx\'s md5 key, kept while the endpoint exists', async t => {
  const persistent = sticky({ 'affinity-mode': 'persistent' })
  const balancers = new Balancers(healthy, noRoundRobin)
  const b = backend(['10.0.6.1', '10.0.6.2', '10.0.6.3'], 'shop/web:80')
  const first = balancers.choose(persistent, b, request(), false) as Choice
  t.equal(first.pinned, false)
  const value = cookieValue(first.cookie)
  const md5 = (s: string): string => createHash('md5').update(s).digest('hex')
  const name = 'shop-web-80'
  t.equal(value, `${md5(name + `${first.upstream.host}:8080`)}|${md5(md5(name) + name)}`, 'md5(upstream name + address:port) | md5(md5(name) + name)')
  for (let i = 0; i < 20; i++) {
    const next = balancers.choose(persistent, backend(['10.0.6.1', '10.0.6.2', '10.0.6.3', `10.0.7.${i + 1}`], 'shop/web:80'), request({ headers: { cookie: `INGRESSCOOKIE=${value}` } }), false)
    t.equal(next?.upstream.host, first.upstream.host, 'endpoints added: the session stays')
    t.equal(next?.cookie, undefined, 'no new cookie')
  }
  const without = backend(['10.0.6.1', '10.0.6.2', '10.0.6.3'].filter(h => h !== first.upstream.host), 'shop/web:80')
  const moved = balancers.choose(persistent, without, request({ headers: { cookie: `INGRESSCOOKIE=${value}` } }), false)
  t.not(moved?.upstream.host, first.upstream.host, 'its endpoint gone: another one')
  t.ok(moved?.cookie?.startsWith('INGRESSCOOKIE='), 'and a new cookie')
  t.not(cookieValue(moved?.cookie), value)
})

t.test('balanced affinity: a random key on the ring; the same cookie reaches the same endpoint, and spreads when endpoints go', async t => {
  const balanced = sticky()
  const balancers = new Balancers(healthy, noRoundRobin)
  const hosts = Array.from({ length: 5 }, (_, i) => `10.0.8.${i + 1}`)
  const sessions: Array<{ value: string, host: string }> = []
  for (let i = 0; i < 200; i++) {
    const c = balancers.choose(balanced, backend(hosts), request(), false) as Choice
    sessions.push({ value: cookieValue(c.cookie), host: c.upstream.host })
  }
  t.ok(new Set(sessions.map(s => s.host)).size === 5, 'new sessions spread over every endpoint')
  for (const s of sessions.slice(0, 50)) {
    const again = balancers.choose(balanced, backend(hosts), request({ headers: { cookie: `other=1; INGRESSCOOKIE=${s.value}` } }), false)
    t.equal(again?.upstream.host, s.host)
    t.equal(again?.pinned, true)
    t.equal(again?.cookie, undefined)
  }
  const gone = sessions[0]?.host as string
  const fewer = backend(hosts.filter(h => h !== gone))
  let stayed = 0
  let others = 0
  for (const s of sessions) {
    const now = balancers.choose(balanced, fewer, request({ headers: { cookie: `INGRESSCOOKIE=${s.value}` } }), false)
    t.not(now?.upstream.host, gone)
    t.equal(now?.cookie, undefined, 'the key stays valid: no new cookie')
    if (s.host !== gone) {
      others++
      if (now?.upstream.host === s.host) stayed++
    }
  }
  t.equal(stayed, others, 'sessions of the endpoints that stayed did not move')
})

t.test('sticky retries: the pinned endpoint again, unless change-on-failure', async t => {
  const b = backend(['10.0.9.1', '10.0.9.2', '10.0.9.3'])
  const balancers = new Balancers(healthy, noRoundRobin)
  const plain = sticky({ 'affinity-mode': 'persistent' })
  const first = balancers.choose(plain, b, request(), false) as Choice
  const cookie = { cookie: `INGRESSCOOKIE=${cookieValue(first.cookie)}` }
  const pinned = balancers.choose(plain, b, request({ headers: cookie }), false) as Choice
  t.equal(balancers.choose(plain, b, request({ headers: cookie }), false, new Set([pinned.upstream]), pinned), pinned, 'without change-on-failure: the same endpoint')
  const changing = sticky({ 'affinity-mode': 'persistent', 'session-cookie-change-on-failure': 'true' })
  const pinned2 = balancers.choose(changing, b, request({ headers: cookie }), false) as Choice
  const retry = balancers.choose(changing, b, request({ headers: cookie }), false, new Set([pinned2.upstream]), pinned2)
  t.not(retry?.upstream, pinned2.upstream, 'with it: another endpoint')
  t.ok(retry?.cookie, 'and a new cookie')
  const down = new Balancers({ isAvailable: u => u !== pinned2.upstream }, noRoundRobin)
  t.not(down.choose(changing, b, request({ headers: cookie }), false)?.upstream, pinned2.upstream, 'change-on-failure also leaves an endpoint out of rotation')
  t.equal(down.choose(plain, b, request({ headers: cookie }), false)?.upstream, pinned2.upstream, 'without it the session stays pinned')
})

t.test('the affinity cookie\'s attributes', async t => {
  const base = sticky().affinity
  const at = Date.UTC(2026, 11, 8, 12, 0, 0)
  t.equal(affinitySetCookie(base, 'k|b', '/shop', false, undefined, at), 'INGRESSCOOKIE=k|b; Path=/shop; HttpOnly')
  t.equal(affinitySetCookie(base, 'k|b', '/shop', true, undefined, at), 'INGRESSCOOKIE=k|b; Path=/shop; Secure; HttpOnly', 'Secure over HTTPS')
  const full = sticky({ 'session-cookie-name': 'SERVERID', 'session-cookie-path': '/app', 'session-cookie-domain': '.example.com', 'session-cookie-max-age': '259200', 'session-cookie-expires': '172800', 'session-cookie-samesite': 'lax', 'session-cookie-secure': 'true' }).affinity
  t.equal(affinitySetCookie(full, 'k|b', '/ignored', false, undefined, at), 'SERVERID=k|b; Path=/app; Domain=.example.com; Expires=Thu, 10 Dec 2026 12:00:00 GMT; Max-Age=259200; Secure; HttpOnly; SameSite=Lax')
  const none = sticky({ 'session-cookie-samesite': 'None', 'session-cookie-conditional-samesite-none': 'true' }).affinity
  const old = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/59.0.3071.115 Safari/537.36'
  const current = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36'
  t.notMatch(affinitySetCookie(none, 'k', '/', true, old), /SameSite/, 'SameSite=None left out for Chrome 59')
  t.match(affinitySetCookie(none, 'k', '/', true, current), /; SameSite=None$/)
  t.equal(sameSiteNoneCompatible('Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X)'), false)
  t.equal(sameSiteNoneCompatible('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1 Safari/605.1.15'), false)
  t.equal(sameSiteNoneCompatible(undefined), true)
})

t.test('readCookie, defaultCookiePath and putAffinityCookie', async t => {
  t.equal(readCookie('a=1; INGRESSCOOKIE=x|y; b=2', 'INGRESSCOOKIE'), 'x|y')
  t.equal(readCookie('XINGRESSCOOKIE=no; INGRESSCOOKIE=yes', 'INGRESSCOOKIE'), 'yes', 'a name that ends like ours is not ours')
  t.equal(readCookie('INGRESSCOOKIEX=no', 'INGRESSCOOKIE'), undefined)
  t.equal(readCookie(undefined, 'INGRESSCOOKIE'), undefined)
  t.equal(readCookie('ingresscookie=x', 'INGRESSCOOKIE'), undefined, 'names are case-sensitive')
  t.equal(defaultCookiePath('/shop', false), '/shop')
  t.equal(defaultCookiePath('', false), '/')
  t.equal(defaultCookiePath('/foo/.*', true), '/foo/')
  t.equal(defaultCookiePath('/api/v[0-9]+/users', true), '/api/')
  t.equal(defaultCookiePath('/(a|b)', true), '/')
  t.equal(defaultCookiePath('/plain', true), '/plain')
  const ctx: { responseHeaders?: Record<string, string | string[]> } = { responseHeaders: { 'set-cookie': 'auth=1' } }
  putAffinityCookie(ctx, 'S=1')
  t.same(ctx.responseHeaders?.['set-cookie'], ['auth=1', 'S=1'])
  putAffinityCookie(ctx, 'S=2', 'S=1')
  t.same(ctx.responseHeaders?.['set-cookie'], ['auth=1', 'S=2'], 'a retry\'s cookie replaces the first')
})

t.test('precedence: affinity, then the hash, then load-balance', async t => {
  t.equal(spec({ affinity: 'cookie', 'upstream-hash-by': '$request_uri', 'load-balance': 'ewma' }).kind, 'sticky')
  t.equal(spec({ 'upstream-hash-by': '$request_uri', 'load-balance': 'ewma' }).kind, 'hash')
  t.equal(spec({ 'load-balance': 'ewma' }).kind, 'ewma')
  t.equal(selectBalancer({}, '/', false), undefined, 'nothing: the gateway default')
  t.equal(spec({ affinity: 'cookie' }, '/shop').kind === 'sticky' && (spec({ affinity: 'cookie' }, '/shop') as { cookiePath: string }).cookiePath, '/shop')
  t.equal((spec({ affinity: 'cookie', 'session-cookie-path': '/x' }, '/shop') as { cookiePath: string }).cookiePath, '/x')
})

t.test('malformed values are problems naming the key; nothing is made of them', async t => {
  const cases: Array<[string, string, RegExp]> = [
    ['affinity', 'ip', /"cookie"/],
    ['affinity-mode', 'sticky', /"balanced" or "persistent"/],
    ['session-cookie-name', 'my cookie', /cookie name/],
    ['session-cookie-path', 'shop', /cookie path: "\/" and then/],
    ['session-cookie-domain', 'exa mple.com', /domain name/],
    ['session-cookie-max-age', 'two days', /whole number of seconds/],
    ['session-cookie-max-age', '1.5', /whole number of seconds/],
    ['session-cookie-expires', '1h', /whole number of seconds/],
    ['session-cookie-samesite', 'Sometimes', /"None", "Lax" or "Strict"/],
    ['session-cookie-secure', 'yes', /"true" or "false"/],
    ['session-cookie-change-on-failure', '1', /"true" or "false"/],
    ['session-cookie-conditional-samesite-none', 'True', /"true" or "false"/],
    ['upstream-hash-by', '$request_uri$nope', /unknown nginx variable "\$nope"/],
    ['upstream-hash-by', '', /nginx variable expression/],
    ['upstream-hash-by', '$', /variable name/],
    ['upstream-hash-by-subset', 'yes', /"true" or "false"/],
    ['upstream-hash-by-subset-size', 'three', /whole number of endpoints/],
    ['upstream-hash-by-subset-size', '-1', /whole number of endpoints/]
  ]
  for (const [key, value, message] of cases) {
    const out = parseBalancingAnnotations(name => name === key ? value : name === 'affinity' && key.startsWith('session-') ? 'cookie' : undefined)
    t.equal(out.problems.length, 1, `${key}=${value}: one problem`)
    t.equal(out.problems[0]?.key, P + key)
    t.match(out.problems[0]?.message, message, `${key}=${value}`)
    t.match(out.problems[0]?.message, `got ${JSON.stringify(value)}`)
    t.equal(out.affinity, undefined, `${key}=${value}: no affinity spec`)
    if (key.startsWith('upstream-hash-by') && key !== 'upstream-hash-by-subset' && key !== 'upstream-hash-by-subset-size') t.equal(out.upstreamHash, undefined)
  }
  const ok = parseBalancingAnnotations(name => ({ affinity: 'cookie', 'session-cookie-max-age': '0', 'session-cookie-expires': '-1', 'session-cookie-samesite': 'STRICT' } as Record<string, string>)[name])
  t.same(ok.problems, [])
  t.same(ok.affinity, { mode: 'balanced', name: 'INGRESSCOOKIE', conditionalSameSiteNone: false, secure: false, changeOnFailure: false, maxAge: 0, expires: -1, sameSite: 'Strict' } satisfies AffinitySpec)
  t.same(parseBalancingAnnotations(name => name === 'session-cookie-name' ? 'X' : undefined), { problems: [] }, 'session-cookie-* without affinity: checked, no effect')
})
