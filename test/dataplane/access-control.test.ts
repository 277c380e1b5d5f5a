/**
 * Access control from ingress-nginx annotations, end to end: the real gateway, real origins, real
 * sockets. Scenario names follow ingress-nginx's test/e2e/annotations (ipallowlist, ipdenylist,
 * auth, cors, satisfy) and the first report: an Ingress with basic auth and a source range
 * that was answered 200 from the backend.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { connect } from 'node:net'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'

const P = 'nginx.ingress.kubernetes.io/'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
/** `s3cret` for user `admin`, as `openssl passwd -apr1` and `htpasswd -m` write it. */
const HTPASSWD = 'admin:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\n'
const GOOD = `Basic ${Buffer.from('admin:s3cret').toString('base64')}`

function ingress (name: string, host: string, annotations: Record<string, string>, path = '/', namespace = 'default'): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace, annotations },
    spec: { rules: [{ host, http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] }
  }
}

function opaque (name: string, data: Record<string, string>, namespace = 'default'): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', stringData: data }
}

interface Answer { status: number, text: string, json: any, headers: Record<string, string | string[] | undefined> }

async function send (gw: TestGateway, host: string, path: string, opts: { method?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await request(`${gw.http}${path}`, { method: (opts.method ?? 'GET') as 'GET', headers: { host, ...opts.headers } })
  const text = await res.body.text()
  let json: any
  try { json = JSON.parse(text) } catch {}
  return { status: res.statusCode, text, json, headers: res.headers }
}

async function setup (t: Test, env: Record<string, string> = {}): Promise<{ gw: TestGateway, origin: Origin }> {
  const gw = await startTestGateway(t, env)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, serviceManifests('echo', [origin]))
  return { gw, origin }
}

async function condition (gw: TestGateway, name: string, type: string): Promise<any> {
  const res = await gw.api('GET', `${ING}/${name}`)
  return res.body.status.conditions.find((c: any) => c.type === type)
}

t.test('the first report: basic auth and a source range that does not include the client deny; nothing reaches the backend', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [opaque('basic-auth', { auth: HTPASSWD }), ingress('admin', 'admin.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth', [`${P}whitelist-source-range`]: '10.0.0.0/8' })])
  const res = await send(gw, 'admin.example.com', '/')
  t.equal(res.status, 403, 'the source range refuses 127.0.0.1')
  t.match(res.text, 'INGRESSD_ERR_SOURCE_FORBIDDEN')
  t.equal((await send(gw, 'admin.example.com', '/', { headers: { authorization: GOOD } })).status, 403, 'credentials do not open a range (satisfy: all)')
  t.equal(origin.seen.length, 0, 'the backend saw nothing')
  const ready = await condition(gw, 'admin', 'AccessControlReady')
  t.equal(ready.status, 'True')
  t.match(ready.message, 'source ranges, basic auth')
})

t.test('source ranges: allowlist, denylist first, aliases, IPv6 entries, 403', async t => {
  const { gw, origin } = await setup(t)
  const cases: Array<[string, Record<string, string>, number]> = [
    ['allow-loopback', { [`${P}whitelist-source-range`]: '127.0.0.1/32' }, 200],
    ['allow-alias', { [`${P}allowlist-source-range`]: '10.0.0.0/8, 127.0.0.0/8' }, 200],
    ['allow-other', { [`${P}whitelist-source-range`]: '10.0.0.0/8,192.168.0.1' }, 403],
    ['allow-v6-only', { [`${P}whitelist-source-range`]: '::1/128, 2001:db8::/32' }, 403],
    ['deny-first', { [`${P}whitelist-source-range`]: '127.0.0.0/8', [`${P}denylist-source-range`]: '127.0.0.1' }, 403],
    ['deny-other', { [`${P}denylist-source-range`]: '10.0.0.0/8' }, 200],
    ['deny-loopback', { [`${P}denylist-source-range`]: '127.0.0.0/8' }, 403]
  ]
  await apply(gw, cases.map(([name, annotations]) => ingress(name, `${name}.example.com`, annotations)))
  for (const [name, , status] of cases) {
    const res = await send(gw, `${name}.example.com`, '/x')
    t.equal(res.status, status, name)
    if (status === 403) t.match(res.text, 'INGRESSD_ERR_SOURCE_FORBIDDEN', `${name}: the code is named`)
  }
  t.equal(origin.seen.length, cases.filter(c => c[2] === 200).length, 'only allowed requests reached the backend')
})

t.test('source ranges: the client address comes from X-Forwarded-For only behind a trusted proxy', async t => {
  const annotations = { [`${P}whitelist-source-range`]: '10.0.0.0/8', [`${P}denylist-source-range`]: '10.6.6.6' }
  await t.test('untrusted peer: forged headers change nothing', async t => {
    const { gw } = await setup(t)
    await apply(gw, [ingress('r', 'r.example.com', annotations)])
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-forwarded-for': '10.1.2.3' } })).status, 403)
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-real-ip': '10.1.2.3' } })).status, 403)
  })
  await t.test('trusted peer: the right-most untrusted hop is the client', async t => {
    const { gw, origin } = await setup(t, { INGRESSD_TRUSTED_PROXIES: '127.0.0.1/32' })
    await apply(gw, [ingress('r', 'r.example.com', annotations)])
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-forwarded-for': '10.1.2.3' } })).status, 200)
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-forwarded-for': '10.1.2.3, 127.0.0.1' } })).status, 200, 'trusted hops are skipped')
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-forwarded-for': '10.1.2.3, 192.168.1.1' } })).status, 403, 'a spoofed left-most entry is not the client')
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-forwarded-for': '10.6.6.6' } })).status, 403, 'the denylist sees the forwarded client')
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-real-ip': '10.1.2.3' } })).status, 200, 'X-Real-IP when there is no X-Forwarded-For')
    t.equal((await send(gw, 'r.example.com', '/', { headers: { 'x-forwarded-for': 'not-an-ip' } })).status, 403, 'garbage falls back to the peer')
    t.equal((await send(gw, 'r.example.com', '/')).status, 403, 'the trusted proxy itself is not in the range')
    t.ok(origin.seen.length >= 3)
  })
})

t.test('INGRESSD_DENYLIST_SOURCE_RANGE refuses a client on every route, WebSocket upgrades included', async t => {
  const { gw, origin } = await setup(t, { INGRESSD_DENYLIST_SOURCE_RANGE: '10.0.0.0/8,127.0.0.1' })
  await apply(gw, [ingress('plain', 'plain.example.com', {})])
  const res = await send(gw, 'plain.example.com', '/')
  t.equal(res.status, 403)
  t.match(res.text, 'INGRESSD_ERR_SOURCE_FORBIDDEN')
  const upgrade = await rawExchange(gw.httpPort, 'GET / HTTP/1.1\r\nHost: plain.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  t.match(upgrade, /^HTTP\/1\.1 403 /)
  t.equal(origin.seen.length, 0)
})

/** Writes raw bytes and reads until the gateway closes (or 2 s pass). */
async function rawExchange (port: number, raw: string): Promise<string> {
  const sock = connect(port, '127.0.0.1')
  sock.on('error', () => {})
  const chunks: Buffer[] = []
  sock.on('data', (c: Buffer) => chunks.push(c))
  sock.write(raw)
  await new Promise<void>(resolve => {
    const timer = setTimeout(() => { sock.destroy(); resolve() }, 2000)
    sock.once('close', () => { clearTimeout(timer); resolve() })
  })
  return Buffer.concat(chunks).toString('latin1')
}

t.test('basic auth: 401 with the realm, good credentials pass, the backend never sees Authorization', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [
    opaque('basic-auth', { auth: HTPASSWD }),
    opaque('auth-map', { admin: '$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0' }),
    ingress('file', 'file.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth', [`${P}auth-realm`]: 'Staff only' }),
    ingress('map', 'map.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'default/auth-map', [`${P}auth-secret-type`]: 'auth-map' })
  ])
  const cases: Array<[string, string | undefined, number]> = [
    ['no credentials', undefined, 401],
    ['wrong password', `Basic ${Buffer.from('admin:nope').toString('base64')}`, 401],
    ['unknown user', `Basic ${Buffer.from('root:s3cret').toString('base64')}`, 401],
    ['not base64', 'Basic !!!', 401],
    ['no colon', `Basic ${Buffer.from('admins3cret').toString('base64')}`, 401],
    ['bearer', 'Bearer abc', 401],
    ['good', GOOD, 200],
    ['scheme in lower case', `basic ${Buffer.from('admin:s3cret').toString('base64')}`, 200],
    ['scheme in upper case', `BASIC ${Buffer.from('admin:s3cret').toString('base64')}`, 200]
  ]
  for (const host of ['file.example.com', 'map.example.com']) {
    for (const [name, authorization, status] of cases) {
      const res = await send(gw, host, '/p', authorization === undefined ? {} : { headers: { authorization } })
      t.equal(res.status, status, `${host}: ${name}`)
      if (status === 401) {
        t.equal(res.headers['www-authenticate'], host.startsWith('file') ? 'Basic realm="Staff only"' : 'Basic realm=""', `${host}: ${name}: the realm`)
        t.match(res.text, 'INGRESSD_ERR_AUTH_REQUIRED')
      } else {
        t.equal(res.json.headers.authorization, undefined, `${host}: ${name}: Authorization does not reach the backend`)
      }
    }
  }
  t.equal(origin.seen.length, 6)
  t.notOk(gw.logs.join('').includes('s3cret'), 'no password in the log')
  t.notOk(gw.logs.join('').includes('M2T3erDstkD7SsE2QQnfH0'), 'no hash in the log')
  t.ok(gw.logs.some(l => l.includes('basic auth failed') && l.includes('"user":"root"')), 'a failed attempt is logged with the user name')
})

t.test('fail closed: a missing or malformed secret denies its paths with 503; other ingresses keep serving', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [
    opaque('broken', { auth: 'admin:$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0\nthis line is not htpasswd\n' }),
    opaque('no-auth-key', { other: HTPASSWD }),
    ingress('missing', 'missing.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'does-not-exist' }),
    ingress('malformed', 'malformed.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'broken' }),
    ingress('nokey', 'nokey.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'no-auth-key' }),
    ingress('digest', 'digest.example.com', { [`${P}auth-type`]: 'digest', [`${P}auth-secret`]: 'broken' }),
    ingress('modsec', 'modsec.example.com', { [`${P}enable-modsecurity`]: 'true' }),
    ingress('proxyset', 'proxyset.example.com', { [`${P}auth-url`]: 'http://127.0.0.1:1/auth', [`${P}auth-proxy-set-headers`]: 'default/headers' }),
    ingress('open', 'open.example.com', { [`${P}enable-modsecurity`]: 'false' })
  ])
  for (const name of ['missing', 'malformed', 'nokey', 'digest', 'modsec', 'proxyset']) {
    const res = await send(gw, `${name}.example.com`, '/', { headers: { authorization: GOOD } })
    t.equal(res.status, 503, `${name}: denied`)
    t.match(res.text, 'INGRESSD_ERR_ACCESS_DENIED_CONFIG', `${name}: the code is named`)
    const c = await condition(gw, name, 'AccessControlReady')
    t.equal(c?.status, 'False', `${name}: the status says so`)
    t.equal(c?.reason, 'AccessDenied')
  }
  t.match((await condition(gw, 'missing', 'AccessControlReady')).message, /auth-secret: .*does-not-exist/)
  t.match((await condition(gw, 'modsec', 'AccessControlReady')).message, 'enable-modsecurity')
  t.notMatch((await condition(gw, 'malformed', 'AccessControlReady')).message, 'M2T3erDstkD7SsE2QQnfH0', 'the status never shows a hash')
  t.equal((await send(gw, 'open.example.com', '/')).status, 200, 'a switch that restricts nothing serves')
  t.equal(origin.seen.length, 1, 'no denied request reached the backend')

  // The secret arrives: the paths open without touching the ingress.
  await apply(gw, [opaque('does-not-exist', { auth: HTPASSWD })])
  t.equal((await send(gw, 'missing.example.com', '/', { headers: { authorization: GOOD } })).status, 200, 'a secret created later is picked up')
  t.equal((await send(gw, 'missing.example.com', '/')).status, 401)
  t.equal((await condition(gw, 'missing', 'AccessControlReady')).status, 'True')
  // And leaves again: denied, never open.
  t.equal((await gw.api('DELETE', '/api/v1/namespaces/default/secrets/does-not-exist')).status, 200)
  t.equal((await send(gw, 'missing.example.com', '/', { headers: { authorization: GOOD } })).status, 503, 'a deleted secret denies again')
})

t.test('refused on write (422 naming the key, nothing stored)', async t => {
  const { gw } = await setup(t)
  const cases: Array<[string, Record<string, string>, string, string]> = [
    ['bad-cidr', { [`${P}whitelist-source-range`]: '10.0.0.0/33' }, 'whitelist-source-range', 'default'],
    ['bad-ip', { [`${P}denylist-source-range`]: '10.0.0.x' }, 'denylist-source-range', 'default'],
    ['empty-range', { [`${P}allowlist-source-range`]: ' , ' }, 'allowlist-source-range', 'default'],
    ['unknown-type', { [`${P}auth-type`]: 'kerberos', [`${P}auth-secret`]: 's' }, 'auth-type', 'default'],
    ['no-secret', { [`${P}auth-type`]: 'basic' }, 'auth-secret', 'default'],
    ['cross-ns', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'other/basic-auth' }, 'auth-secret', 'default'],
    ['secret-type', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 's', [`${P}auth-secret-type`]: 'ldap' }, 'auth-secret-type', 'default'],
    ['bad-url', { [`${P}auth-url`]: 'ftp://auth.example.com/check' }, 'auth-url', 'default'],
    ['bad-url-2', { [`${P}auth-url`]: 'not a url' }, 'auth-url', 'default'],
    ['auth-snippet', { [`${P}auth-snippet`]: 'proxy_set_header X 1;' }, 'auth-snippet', 'default'],
    ['satisfy', { [`${P}satisfy`]: 'some' }, 'satisfy', 'default'],
    ['modsec', { [`${P}enable-modsecurity`]: 'yes' }, 'enable-modsecurity', 'default'],
    ['rps', { [`${P}limit-rps`]: 'ten' }, 'limit-rps', 'default'],
    ['limit-allow', { [`${P}limit-rps`]: '5', [`${P}limit-whitelist`]: '10.0.0.0/99' }, 'limit-whitelist', 'default'],
    ['cors-origin', { [`${P}enable-cors`]: 'true', [`${P}cors-allow-origin`]: 'https://example.com/path' }, 'cors-allow-origin', 'default'],
    ['cors-age', { [`${P}enable-cors`]: 'true', [`${P}cors-max-age`]: 'forever' }, 'cors-max-age', 'default']
  ]
  for (const [name, annotations, key, namespace] of cases) {
    const res = await gw.api('POST', `/apis/networking.k8s.io/v1/namespaces/${namespace}/ingresses`, ingress(name, `${name}.example.com`, annotations))
    t.equal(res.status, 422, `${name} is refused`)
    t.ok(res.body.details.causes.some((c: any) => c.field === `metadata.annotations[${P}${key}]`), `${name}: the cause names ${key}`)
    t.equal((await gw.api('GET', `${ING}/${name}`)).status, 404, `${name}: nothing stored`)
  }
})

t.test('CORS as ingress-nginx answers it: every response, preflights answered here, origin lists', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [
    opaque('basic-auth', { auth: HTPASSWD }),
    ingress('any', 'any.example.com', { [`${P}enable-cors`]: 'true' }),
    ingress('list', 'list.example.com', { [`${P}enable-cors`]: 'true', [`${P}cors-allow-origin`]: 'https://app.example.com, https://*.trusted.org', [`${P}cors-allow-credentials`]: 'false', [`${P}cors-expose-headers`]: 'X-Total', [`${P}cors-max-age`]: '600', [`${P}cors-allow-methods`]: 'GET, POST' }),
    ingress('authed', 'authed.example.com', { [`${P}enable-cors`]: 'true', [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth' }),
    ingress('off', 'off.example.com', { [`${P}enable-cors`]: 'false', [`${P}cors-allow-origin`]: 'https://x.example.com' })
  ])
  const get = await send(gw, 'any.example.com', '/', { headers: { origin: 'https://whoever.example' } })
  t.equal(get.status, 200)
  t.equal(get.headers['access-control-allow-origin'], '*')
  t.equal(get.headers['access-control-allow-credentials'], 'true', 'ingress-nginx\'s default')
  t.equal(get.headers['access-control-allow-methods'], 'GET, PUT, POST, DELETE, PATCH, OPTIONS')
  t.equal(get.headers['access-control-allow-headers'], 'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization')
  t.equal(get.headers['access-control-max-age'], '1728000')
  t.equal((await send(gw, 'any.example.com', '/')).headers['access-control-allow-origin'], '*', 'even without an Origin header')

  const seen = origin.seen.length
  const preflight = await send(gw, 'any.example.com', '/api', { method: 'OPTIONS', headers: { origin: 'https://whoever.example', 'access-control-request-method': 'PUT' } })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers['access-control-allow-origin'], '*')
  t.equal(preflight.text, '', 'no body (and no Content-Length: RFC 9110 forbids it on a 204, which ingress-nginx sends)')
  t.equal(origin.seen.length, seen, 'a preflight never reaches the backend')

  const allowed = await send(gw, 'list.example.com', '/', { headers: { origin: 'https://app.example.com' } })
  t.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com', 'the matching origin is echoed')
  t.equal(allowed.headers['access-control-allow-credentials'], undefined)
  t.equal(allowed.headers['access-control-expose-headers'], 'X-Total')
  t.equal(allowed.headers['access-control-max-age'], '600')
  t.equal(allowed.headers['access-control-allow-methods'], 'GET, POST')
  t.equal(allowed.headers.vary, 'Origin')
  t.equal((await send(gw, 'list.example.com', '/', { headers: { origin: 'https://API.trusted.org' } })).headers['access-control-allow-origin'], 'https://API.trusted.org', 'a one-label wildcard, case-insensitive')
  for (const o of ['https://evil.example.com', 'https://a.b.trusted.org', 'https://app.example.com.evil.net', 'http://app.example.com']) {
    const res = await send(gw, 'list.example.com', '/', { headers: { origin: o } })
    t.equal(res.headers['access-control-allow-origin'], undefined, `${o}: no CORS headers`)
    t.equal(res.headers['access-control-allow-methods'], undefined, `${o}: none at all`)
  }
  const before = origin.seen.length
  const otherPreflight = await send(gw, 'list.example.com', '/', { method: 'OPTIONS', headers: { origin: 'https://evil.example.com' } })
  t.equal(otherPreflight.headers['access-control-allow-origin'], undefined)
  t.equal(origin.seen.length, before + 1, 'a preflight from a disallowed origin goes to the backend, as in ingress-nginx')

  const denied = await send(gw, 'authed.example.com', '/', { headers: { origin: 'https://x.example' } })
  t.equal(denied.status, 401)
  t.equal(denied.headers['access-control-allow-origin'], '*', 'a 401 keeps the CORS headers (ingress-nginx e2e: "should return status code 401 and cors headers")')
  const authedPreflight = await send(gw, 'authed.example.com', '/', { method: 'OPTIONS', headers: { origin: 'https://x.example' } })
  t.equal(authedPreflight.status, 204, 'a preflight needs no credentials')
  t.equal((await send(gw, 'off.example.com', '/', { headers: { origin: 'https://x.example.com' } })).headers['access-control-allow-origin'], undefined, 'enable-cors: "false" sends none')
})

t.test('satisfy: any lets either the source range or the credentials in', async t => {
  const { gw } = await setup(t)
  await apply(gw, [
    opaque('basic-auth', { auth: HTPASSWD }),
    ingress('any-in', 'any-in.example.com', { [`${P}satisfy`]: 'any', [`${P}whitelist-source-range`]: '127.0.0.1', [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth' }),
    ingress('any-out', 'any-out.example.com', { [`${P}satisfy`]: 'any', [`${P}whitelist-source-range`]: '10.0.0.0/8', [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth' })
  ])
  const inRange = await send(gw, 'any-in.example.com', '/', { headers: { authorization: GOOD } })
  t.equal(inRange.status, 200, 'in range: no credentials needed')
  t.equal(inRange.json.headers.authorization, undefined, 'and still no Authorization upstream')
  const outNoCreds = await send(gw, 'any-out.example.com', '/')
  t.equal(outNoCreds.status, 401, 'out of range without credentials: 401 (nginx prefers it to the 403), so a browser prompts')
  t.equal(outNoCreds.headers['www-authenticate'], 'Basic realm=""')
  t.equal((await send(gw, 'any-out.example.com', '/', { headers: { authorization: GOOD } })).status, 200, 'out of range with credentials')
})

t.test('a WebSocket upgrade passes the same chain: no way around basic auth', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [opaque('basic-auth', { auth: HTPASSWD }), ingress('ws', 'ws.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth' })])
  const head = 'GET /socket HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
  const refused = await rawExchange(gw.httpPort, head + '\r\n')
  t.match(refused, /^HTTP\/1\.1 401 /)
  t.match(refused, /www-authenticate: Basic realm=""/i)
  t.equal(origin.seen.length, 0, 'the upgrade did not reach the backend')
})

t.test('path-scoped: /admin protected, /public open, on one host', async t => {
  const { gw, origin } = await setup(t)
  await apply(gw, [
    opaque('basic-auth', { auth: HTPASSWD }),
    ingress('admin-part', 'site.example.com', { [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'basic-auth' }, '/admin'),
    ingress('public-part', 'site.example.com', {}, '/public')
  ])
  t.equal((await send(gw, 'site.example.com', '/public/page')).status, 200)
  t.equal((await send(gw, 'site.example.com', '/admin/page')).status, 401)
  t.equal((await send(gw, 'site.example.com', '/public/../admin/page')).status, 401, 'dot segments are resolved before routing')
  t.equal((await send(gw, 'site.example.com', '/public/%2e%2e/admin')).status, 401, 'encoded dots too')
  t.equal((await send(gw, 'site.example.com', '/admin/page', { headers: { authorization: GOOD } })).status, 200)
  t.equal(origin.seen.filter(s => s.url.startsWith('/admin')).length, 1, 'only the authenticated /admin request reached the backend')
})

t.test('external auth: an oauth2-proxy flow through the gateway (sign in, cookie, headers copied, forgeries removed)', async t => {
  const { gw, origin } = await setup(t)
  // The auth service: /oauth2/auth checks the cookie, /oauth2/start sets it and sends the browser back.
  const auth = await startOrigin(t, 'oauth2-proxy', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/oauth2/auth') {
      if (/(^|;\s*)_oauth2=alice(;|$)/.test(String(req.headers.cookie ?? ''))) {
        res.writeHead(202, { 'x-auth-request-user': 'alice', 'x-auth-request-email': 'alice@example.com' })
      } else res.writeHead(401, { 'www-authenticate': 'Bearer' })
      return res.end()
    }
    if (url.pathname === '/oauth2/start') {
      res.writeHead(302, { location: url.searchParams.get('rd') ?? '/', 'set-cookie': '_oauth2=alice; Path=/; HttpOnly' })
      return res.end()
    }
    if (url.pathname === '/forbidden') { res.writeHead(403); return res.end() }
    if (url.pathname === '/broken') { res.writeHead(502); return res.end() }
    res.writeHead(404)
    res.end()
  })
  await apply(gw, [
    ...serviceManifests('oauth2-proxy', [auth]),
    { ...ingress('oauth2', 'app.example.com', {}, '/oauth2'), spec: { rules: [{ host: 'app.example.com', http: { paths: [{ path: '/oauth2', pathType: 'Prefix', backend: { service: { name: 'oauth2-proxy', port: { number: 8080 } } } }] } }] } },
    ingress('app', 'app.example.com', {
      [`${P}auth-url`]: `http://127.0.0.1:${auth.port}/oauth2/auth`,
      [`${P}auth-signin`]: 'http://$host/oauth2/start?rd=$escaped_request_uri',
      [`${P}auth-response-headers`]: 'X-Auth-Request-User, X-Auth-Request-Email, X-Auth-Request-Groups'
    }),
    ingress('forbidden', 'forbidden.example.com', { [`${P}auth-url`]: `http://127.0.0.1:${auth.port}/forbidden` }),
    ingress('broken', 'broken.example.com', { [`${P}auth-url`]: `http://127.0.0.1:${auth.port}/broken` }),
    ingress('down', 'down.example.com', { [`${P}auth-url`]: 'http://127.0.0.1:1/auth' })
  ])

  const first = await send(gw, 'app.example.com', '/dashboard?tab=1', { headers: { 'x-auth-request-groups': 'admins' } })
  t.equal(first.status, 302, 'no session: sent to sign in')
  const location = String(first.headers.location)
  t.equal(location, 'http://app.example.com/oauth2/start?rd=%2Fdashboard%3Ftab%3D1', 'the sign-in URL with the original request')
  t.equal(origin.seen.length, 0, 'the application saw nothing')
  const sent = auth.seen.find(s => s.url === '/oauth2/auth')
  t.equal(sent?.method, 'GET', 'the sub-request is a GET')
  t.equal(sent?.body, '', 'without a body')
  t.equal(sent?.headers['x-original-url'], 'http://app.example.com/dashboard?tab=1')
  t.equal(sent?.headers['x-original-method'], 'GET')
  t.equal(sent?.headers['x-auth-request-groups'], 'admins', 'the client\'s headers go to the auth service')

  const start = new URL(location)
  const signIn = await send(gw, start.host, start.pathname + start.search)
  t.equal(signIn.status, 302)
  const cookie = String(signIn.headers['set-cookie']).split(';')[0] as string
  t.equal(cookie, '_oauth2=alice')
  t.equal(signIn.headers.location, '/dashboard?tab=1')

  const back = await send(gw, 'app.example.com', String(signIn.headers.location), { headers: { cookie, 'x-auth-request-user': 'mallory', 'x-auth-request-groups': 'admins' } })
  t.equal(back.status, 200, 'signed in')
  t.equal(back.json.url, '/dashboard?tab=1')
  t.equal(back.json.headers['x-auth-request-user'], 'alice', 'the auth service\'s answer replaces the client\'s header')
  t.equal(back.json.headers['x-auth-request-email'], 'alice@example.com')
  t.equal(back.json.headers['x-auth-request-groups'], undefined, 'a listed header the auth service did not send is removed: the client cannot forge it')

  const forbidden = await send(gw, 'forbidden.example.com', '/')
  t.equal(forbidden.status, 403)
  t.match(forbidden.text, 'INGRESSD_ERR_AUTH_FORBIDDEN')
  const broken = await send(gw, 'broken.example.com', '/')
  t.equal(broken.status, 500, 'any other answer from the auth service: 500')
  t.match(broken.text, 'INGRESSD_ERR_AUTH_SERVICE')
  const down = await send(gw, 'down.example.com', '/')
  t.equal(down.status, 500, 'an unreachable auth service: 500, never let through')
  t.equal(origin.seen.length, 1, 'only the signed-in request reached the application')
  t.equal((await send(gw, 'app.example.com', '/oauth2/start?rd=/')).status, 302, 'other routes of the host keep serving')
})

t.test('an IPv4-mapped IPv6 peer matches IPv4 ranges (a dual-stack listener)', async t => {
  const { gw, origin } = await setup(t, { INGRESSD_HTTP_ADDR: '[::]:0' })
  await apply(gw, [
    ingress('v4-allowed', 'v4-allowed.example.com', { [`${P}whitelist-source-range`]: '127.0.0.1/32' }),
    ingress('v4-denied', 'v4-denied.example.com', { [`${P}denylist-source-range`]: '127.0.0.0/8' })
  ])
  const allowed = await send(gw, 'v4-allowed.example.com', '/')
  t.equal(allowed.status, 200, '::ffff:127.0.0.1 is in 127.0.0.1/32')
  t.equal(allowed.json.headers['x-real-ip'], '::ffff:127.0.0.1', 'the listener did see a mapped peer')
  t.equal((await send(gw, 'v4-denied.example.com', '/')).status, 403, 'and in a denylisted IPv4 range')
  t.equal(origin.seen.length, 1)
})
