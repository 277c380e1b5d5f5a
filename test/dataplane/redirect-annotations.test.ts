/**
 * Redirect and upstream-header annotations, end to end: the real gateway, real origins, real
 * sockets. The scenarios follow ingress-nginx's test/e2e/annotations (redirect: standard and
 * custom codes; approot: "should redirect to /foo"; upstreamvhost; xforwardedprefix: the value
 * with rewrite-target, nothing when empty), plus what ingress-nginx's code says beyond them.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { sendRaw } from '../helpers/raw.js'
import { parseIngressAnnotations } from '../../src/resources/annotations.js'

const P = 'nginx.ingress.kubernetes.io/'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

interface PathSpec { path: string, pathType?: string, service?: string }

function ingress (name: string, host: string, annotations: Record<string, string>, paths: PathSpec[] = [{ path: '/' }]): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: 'default', annotations },
    spec: {
      rules: [{
        host,
        http: { paths: paths.map(p => ({ path: p.path, pathType: p.pathType ?? 'Prefix', backend: { service: { name: p.service ?? 'echo', port: { number: 8080 } } } })) }
      }]
    }
  }
}

interface Answer { status: number, text: string, headers: Record<string, string | string[] | undefined> }

async function send (gw: TestGateway, host: string, path: string, method = 'GET'): Promise<Answer> {
  const res = await request(`${gw.http}${path}`, { method: method as 'GET', headers: { host } })
  return { status: res.statusCode, text: await res.body.text(), headers: res.headers }
}

async function setup (t: Test): Promise<{ gw: TestGateway, origin: Origin }> {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, serviceManifests('echo', [origin]))
  return { gw, origin }
}

t.test('permanent-redirect and temporal-redirect: codes, a literal Location, temporal wins', async t => {
  const { gw, origin } = await setup(t)
  const target = 'https://redirect.example.com/landing?from=old'
  const cases: Array<[string, Record<string, string>, number]> = [
    ['permanent', { [`${P}permanent-redirect`]: target }, 301],
    ['permanent-308', { [`${P}permanent-redirect`]: target, [`${P}permanent-redirect-code`]: '308' }, 308],
    ['permanent-302', { [`${P}permanent-redirect`]: target, [`${P}permanent-redirect-code`]: '302' }, 302],
    ['temporal', { [`${P}temporal-redirect`]: target }, 302],
    ['temporal-307', { [`${P}temporal-redirect`]: target, [`${P}temporal-redirect-code`]: '307' }, 307],
    ['temporal-wins', { [`${P}permanent-redirect`]: 'https://permanent.example.com/', [`${P}permanent-redirect-code`]: '308', [`${P}temporal-redirect`]: target }, 302]
  ]
  await apply(gw, cases.map(([name, annotations]) => ingress(name, `${name}.example.com`, annotations)))
  for (const [name, , status] of cases) {
    for (const path of ['/', '/something', '/a/b?x=1']) {
      const res = await send(gw, `${name}.example.com`, path)
      t.equal(res.status, status, `${name} ${path}: ${status}`)
      t.equal(res.headers.location, target, `${name} ${path}: the target as written, nothing appended`)
    }
  }
  const post = await send(gw, 'permanent.example.com', '/form', 'POST')
  t.equal(post.status, 301, 'every method gets the redirect')
  t.equal(origin.seen.length, 0, 'nothing went upstream')
  const res = await gw.api('GET', `${ING}/permanent`)
  t.notOk(res.body.status.conditions.some((c: any) => c.type === 'AnnotationsIgnored'), 'the keys are not reported as ignored')
})

t.test('a code nginx does not send as a redirect (300, 304, 305, 306): the URL is the body and there is no Location, as nginx\'s return does', async t => {
  const { gw } = await setup(t)
  await apply(gw, [ingress('choices', 'choices.example.com', { [`${P}permanent-redirect`]: 'https://x.example.com/', [`${P}permanent-redirect-code`]: '300' })])
  const res = await send(gw, 'choices.example.com', '/')
  t.equal(res.status, 300)
  t.equal(res.headers.location, undefined)
  t.equal(res.text, 'https://x.example.com/')
})

t.test('a redirect needs no endpoints: a missing Service and a Service without endpoints still redirect', async t => {
  const { gw } = await setup(t)
  await apply(gw, [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 8080 }] } },
    ingress('missing', 'missing.example.com', { [`${P}permanent-redirect`]: 'https://elsewhere.example.com/' }, [{ path: '/', service: 'does-not-exist' }]),
    ingress('empty', 'empty.example.com', { [`${P}temporal-redirect`]: 'https://elsewhere.example.com/' }, [{ path: '/', service: 'empty' }]),
    ingress('root-empty', 'root-empty.example.com', { [`${P}app-root`]: '/app' }, [{ path: '/', service: 'empty' }])
  ])
  t.equal((await send(gw, 'missing.example.com', '/x')).status, 301)
  t.equal((await send(gw, 'empty.example.com', '/x')).status, 302)
  const root = await send(gw, 'root-empty.example.com', '/')
  t.equal(root.status, 302, 'app-root on a route without endpoints')
  t.equal(root.headers.location, 'http://root-empty.example.com/app')
  t.equal((await send(gw, 'root-empty.example.com', '/app')).status, 503, 'other paths still need an endpoint')
})

t.test('the redirect is answered before the route\'s access checks, as nginx\'s return (rewrite phase) is', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [ingress('guarded', 'guarded.example.com', { [`${P}permanent-redirect`]: 'https://public.example.com/', [`${P}whitelist-source-range`]: '10.0.0.0/8' })])
  const res = await send(gw, 'guarded.example.com', '/')
  t.equal(res.status, 301, 'the allowlist would refuse 127.0.0.1; the redirect comes first')
  t.equal(origin.seen.length, 0)
})

t.test('app-root: only exactly / redirects, 302 to the same scheme and Host (port kept), the query dropped', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [ingress('approot', 'approot.bar.com', { [`${P}app-root`]: '/foo' })])
  const cases: Array<[string, string, number, string | undefined]> = [
    ['approot.bar.com', '/', 302, 'http://approot.bar.com/foo'],
    ['approot.bar.com:8080', '/', 302, 'http://approot.bar.com:8080/foo'],
    ['APPROOT.bar.com', '/?a=1', 302, 'http://APPROOT.bar.com/foo'],
    ['approot.bar.com', '//', 302, 'http://approot.bar.com/foo'],
    ['approot.bar.com', '/foo', 200, undefined],
    ['approot.bar.com', '/index.html', 200, undefined],
    ['approot.bar.com', '/foo/', 200, undefined]
  ]
  for (const [host, path, status, location] of cases) {
    const res = await send(gw, host, path)
    t.equal(res.status, status, `${host} ${path}: ${status}`)
    t.equal(res.headers.location, location, `${host} ${path}: Location`)
  }
  t.same(origin.seen.map(s => s.url), ['/foo', '/index.html', '/foo/'], 'only the other paths went upstream')
})

t.test('app-root holds for the whole host: the paths of another ingress, and a host where no path matches /', async t => {
  const { gw, origin } = await setup(t)
  const other = await startOrigin(t, 'other')
  await apply(gw, [
    ...serviceManifests('other', [other]),
    ingress('app', 'shared.example.com', { [`${P}app-root`]: '/app' }, [{ path: '/app' }]),
    ingress('site', 'shared.example.com', {}, [{ path: '/', service: 'other' }]),
    ingress('only-app', 'only.example.com', { [`${P}app-root`]: '/app/' }, [{ path: '/app' }]),
    // Two values on one host: ingress-nginx's first server-level `if` is the longest path's.
    ingress('short', 'two.example.com', { [`${P}app-root`]: '/short' }, [{ path: '/' }]),
    ingress('long', 'two.example.com', { [`${P}app-root`]: '/long' }, [{ path: '/longer/path' }])
  ])
  t.equal((await send(gw, 'two.example.com', '/')).headers.location, 'http://two.example.com/long', 'the longest path\'s ingress wins')
  const shared = await send(gw, 'shared.example.com', '/')
  t.equal(shared.status, 302, 'another ingress\'s / redirects too')
  t.equal(shared.headers.location, 'http://shared.example.com/app')
  t.equal((await send(gw, 'shared.example.com', '/page')).status, 200)
  t.same(other.seen.map(s => s.url), ['/page'], 'the other ingress keeps its other paths')
  const only = await send(gw, 'only.example.com', '/')
  t.equal(only.status, 302, 'no path matches /: the app-root\'s ingress answers it')
  t.equal(only.headers.location, 'http://only.example.com/app/')
  t.equal((await send(gw, 'only.example.com', '/elsewhere')).status, 404, 'nothing else is added to the host')
  t.equal((await send(gw, 'only.example.com', '/app/x')).status, 200)
  t.same(origin.seen.map(s => s.url), ['/app/x'])
})

t.test('redirects answer WebSocket upgrades too', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [ingress('ws', 'ws.example.com', { [`${P}permanent-redirect`]: 'https://ws2.example.com/' })])
  const res = await sendRaw(gw.httpPort, 'GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  t.equal(res.status, 301)
  t.match(res.head, /\r\nlocation: https:\/\/ws2\.example\.com\/\r\n/i)
  t.equal(origin.seen.length, 0)
})

t.test('upstream-vhost: the Host the origin receives; X-Forwarded-Host keeps the client\'s', async t => {
  const { gw, origin } = await setup(t)
  const cases: Array<[string, string, string]> = [
    ['literal', 'upstreamvhost.bar.com', 'upstreamvhost.bar.com'],
    ['port', 'backend.internal:8443', 'backend.internal:8443'],
    ['variables', '$service_name.$namespace.svc.cluster.local:8084', 'echo.default.svc.cluster.local:8084'],
    ['braces', '$' + '{ingress_name}-upstream.internal', 'braces-upstream.internal'],
    ['request', '$host', 'request.example.com']
  ]
  await apply(gw, cases.map(([name, value]) => ingress(name, `${name}.example.com`, { [`${P}upstream-vhost`]: value })))
  for (const [name, , expected] of cases) {
    const res = await send(gw, `${name}.example.com`, '/x')
    t.equal(res.status, 200, name)
    const seen = JSON.parse(res.text)
    t.equal(seen.headers.host, expected, `${name}: Host`)
    t.equal(seen.headers['x-forwarded-host'], `${name}.example.com`, `${name}: X-Forwarded-Host`)
  }
  t.equal(origin.seen.length, cases.length)
})

t.test('x-forwarded-prefix: sent only with a rewrite-target that differs from the path', async t => {
  const { gw } = await setup(t)
  const cases: Array<[string, Record<string, string>, PathSpec, string, string | undefined, string]> = [
    // ingress-nginx's e2e: "should set the X-Forwarded-Prefix to the annotation value"
    ['xfp', { [`${P}x-forwarded-prefix`]: '/test/value', [`${P}rewrite-target`]: '/foo' }, { path: '/' }, '/', '/test/value', '/foo'],
    // "should not add X-Forwarded-Prefix if the annotation value is empty"
    ['noxfp', { [`${P}x-forwarded-prefix`]: '', [`${P}rewrite-target`]: '/foo' }, { path: '/' }, '/', undefined, '/foo'],
    ['no-rewrite', { [`${P}x-forwarded-prefix`]: '/test/value' }, { path: '/' }, '/a', undefined, '/a'],
    ['same-as-path', { [`${P}x-forwarded-prefix`]: '/api', [`${P}rewrite-target`]: '/api' }, { path: '/api' }, '/api/x', undefined, '/api/x'],
    ['captures', { [`${P}x-forwarded-prefix`]: '/$1', [`${P}rewrite-target`]: '/$2' }, { path: '/(svc-[a-z]+)/(.*)', pathType: 'ImplementationSpecific' }, '/svc-a/items?id=1', '/svc-a', '/items?id=1']
  ]
  await apply(gw, cases.map(([name, annotations, path]) => ingress(name, `${name}.example.com`, annotations, [path])))
  for (const [name, , , path, prefix, upstreamUrl] of cases) {
    const res = await send(gw, `${name}.example.com`, path)
    t.equal(res.status, 200, name)
    const seen = JSON.parse(res.text)
    t.equal(seen.headers['x-forwarded-prefix'], prefix, `${name}: X-Forwarded-Prefix`)
    t.equal(seen.url, upstreamUrl, `${name}: the rewritten URI`)
  }
})

t.test('service-upstream is accepted with no effect and listed so', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [ingress('svcup', 'svcup.example.com', { [`${P}service-upstream`]: 'true' })])
  t.equal((await send(gw, 'svcup.example.com', '/')).status, 200)
  t.equal(origin.seen.length, 1)
  const res = await gw.api('GET', `${ING}/svcup`)
  const noEffect = res.body.status.conditions.find((c: any) => c.type === 'AnnotationsNoEffect')
  t.match(noEffect?.message, `${P}service-upstream`)
})

t.test('malformed values are refused on write with 422 naming the key; nothing is stored', async t => {
  const gw = await startTestGateway(t)
  const cases: Array<[string, string, string]> = [
    ['permanent-redirect-code', '200', 'a redirect code of 200'],
    ['permanent-redirect-code', '309', 'above 308'],
    ['permanent-redirect-code', 'abc', 'not a number'],
    ['permanent-redirect-code', '', 'empty'],
    ['temporal-redirect-code', '308', 'above 307'],
    ['temporal-redirect-code', '3O2', 'not a number'],
    ['permanent-redirect', 'ftp://files.example.com/', 'not http(s)'],
    ['permanent-redirect', '/relative', 'no scheme'],
    ['permanent-redirect', 'https://new.example.com$request_uri', 'a variable'],
    ['permanent-redirect', 'https://new.example.com/a b', 'a space'],
    ['permanent-redirect', 'http://', 'no host'],
    ['temporal-redirect', 'javascript:alert(1)', 'not http(s)'],
    ['app-root', 'foo', 'not absolute'],
    ['app-root', 'https://example.com/foo', 'a URL'],
    ['app-root', '/', 'a loop'],
    ['app-root', '/./?x', 'a loop'],
    ['app-root', '/$host', 'a variable'],
    ['upstream-vhost', 'bad host', 'a space'],
    ['upstream-vhost', 'backend.internal/path', 'a path'],
    ['upstream-vhost', 'backend.internal:99999', 'a bad port'],
    ['upstream-vhost', '$request_uri.internal', 'an unknown variable'],
    ['x-forwarded-prefix', '/has space', 'a space'],
    ['x-forwarded-prefix', '/$host', 'a variable other than $N'],
    ['service-upstream', 'yes', 'not a boolean']
  ]
  let n = 0
  for (const [key, value, why] of cases) {
    const name = `bad-${n++}`
    const annotations: Record<string, string> = { [P + key]: value }
    if (key.endsWith('-code')) annotations[P + key.replace(/-code$/, '')] = 'https://x.example.com/'
    const res = await gw.api('POST', ING, ingress(name, `${name}.example.com`, annotations))
    t.equal(res.status, 422, `${key}: ${JSON.stringify(value)} (${why}) is refused`)
    t.equal(res.body.details?.causes?.[0]?.field, `metadata.annotations[${P}${key}]`, `${key}: the key is named`)
    t.equal((await gw.api('GET', `${ING}/${name}`)).status, 404, `${key}: nothing stored`)
  }
})

t.test('parsing: the specs the proxy reads, and nothing for an ingress without these keys', async t => {
  const parse = (values: Record<string, string>): ReturnType<typeof parseIngressAnnotations> =>
    parseIngressAnnotations(Object.fromEntries(Object.entries(values).map(([k, v]) => [P + k, v])), { namespace: 'default', name: 'x' })
  const plain = parse({ 'proxy-read-timeout': '5' })
  t.equal(plain.settings.redirect, undefined, 'no redirect spec')
  t.equal(plain.settings.upstreamHeaders, undefined, 'no upstream header spec')
  t.equal(parse({ 'permanent-redirect-code': '308' }).settings.redirect, undefined, 'a code alone does nothing')
  t.equal(parse({ 'x-forwarded-prefix': '/api' }).settings.upstreamHeaders, undefined, 'a prefix without rewrite-target does nothing')
  t.equal(parse({ 'permanent-redirect': '' }).settings.redirect, undefined, 'an empty URL is no redirect')
  const both = parse({ 'permanent-redirect': 'https://p.example.com/', 'temporal-redirect': 'https://t.example.com/', 'temporal-redirect-code': '303' })
  t.equal(both.settings.redirect?.always?.status, 303)
  t.equal(both.settings.redirect?.always?.headers?.location, 'https://t.example.com/')
  t.same(parse({ 'permanent-redirect': 'HTTPS://Upper.example.com/Path' }).problems, [], 'the scheme is case-insensitive')
})
