/**
 * HTTP-to-HTTPS redirects and HSTS as ingress-nginx does them: the pure decision, then a real
 * gateway answering plain HTTP with 308 for TLS hosts, and HTTPS responses with HSTS.
 */
import t from 'tap'
import { request } from 'undici'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { sslRedirectLocation } from '../../src/dataplane/ssl-redirect.js'
import type { Route } from '../../src/dataplane/route-table.js'
import type { IngressSettings } from '../../src/resources/annotations.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { backend, httpsGet, tlsSecret } from '../helpers/tls.js'
import { sendRaw } from '../helpers/raw.js'

function route (tls: boolean, settings: Partial<IngressSettings> = {}): Route {
  return {
    ingress: { namespace: 'default', name: 'x' },
    host: 'a.example.com',
    path: '/',
    pathType: 'Prefix',
    backend: { key: 'default/web:80', namespace: 'default', service: 'web', port: '80', upstreams: [] },
    settings: { useRegex: false, forceSslRedirect: false, ...settings },
    tls
  }
}

t.test('sslRedirectLocation: the decision alone', async t => {
  const facts = { scheme: 'http', host: 'a.example.com', target: '/p/q?x=1&y=2', httpsPort: 8443 }
  const cases: [string, Parameters<typeof sslRedirectLocation>[0], string | undefined][] = [
    ['TLS host over HTTP', { ...facts, route: route(true) }, 'https://a.example.com:8443/p/q?x=1&y=2'],
    ['port 443 is left out', { ...facts, route: route(true), httpsPort: 443 }, 'https://a.example.com/p/q?x=1&y=2'],
    ['ssl-redirect "false"', { ...facts, route: route(true, { sslRedirect: false }) }, undefined],
    ['ssl-redirect "true" (the default, spelled out)', { ...facts, route: route(true, { sslRedirect: true }) }, 'https://a.example.com:8443/p/q?x=1&y=2'],
    ['no TLS', { ...facts, route: route(false) }, undefined],
    ['force-ssl-redirect without TLS', { ...facts, route: route(false, { forceSslRedirect: true }) }, 'https://a.example.com:8443/p/q?x=1&y=2'],
    ['force-ssl-redirect beats ssl-redirect "false"', { ...facts, route: route(true, { forceSslRedirect: true, sslRedirect: false }) }, 'https://a.example.com:8443/p/q?x=1&y=2'],
    ['already HTTPS (X-Forwarded-Proto from a trusted proxy)', { ...facts, route: route(true), scheme: 'https' }, undefined],
    ['no route', { ...facts, route: undefined }, undefined],
    ['no HTTPS listener', { ...facts, route: route(true), httpsPort: undefined }, undefined],
    ['an IPv6 host keeps its brackets', { ...facts, route: route(true), host: '[::1]' }, 'https://[::1]:8443/p/q?x=1&y=2']
  ]
  for (const [why, input, expected] of cases) t.equal(sslRedirectLocation(input), expected, why)
})

function ingress (name: string, host: string, opts: { tls?: boolean, annotations?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...(opts.annotations === undefined ? {} : { annotations: opts.annotations }) },
    spec: {
      ...(opts.tls === true ? { tls: [{ hosts: [host], secretName: 'site' }] } : {}),
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }]
    }
  }
}

async function world (t: { teardown: (fn: () => Promise<void> | void) => void }, env: Record<string, string> = {}): Promise<TestGateway> {
  const gw = await startTestGateway(t, env)
  const origin = await startOrigin(t, 'web')
  const pem = await generateSelfSigned({ commonName: 'site', dnsNames: ['tls.example.com', 'off.example.com', 'forced.example.com', 'plain.example.com'], keyType: 'ec' })
  const res = await gw.api('POST', '/apply', [
    ...backend('web', [origin]),
    tlsSecret('site', pem),
    ingress('tls', 'tls.example.com', { tls: true }),
    ingress('off', 'off.example.com', { tls: true, annotations: { 'nginx.ingress.kubernetes.io/ssl-redirect': 'false' } }),
    ingress('forced', 'forced.example.com', { annotations: { 'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true' } }),
    ingress('plain', 'plain.example.com')
  ])
  if (res.status !== 200) throw new Error(res.text)
  return gw
}

async function get (gw: TestGateway, host: string, path: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, location: unknown, hsts: unknown, text: string }> {
  const res = await request(`${gw.http}${path}`, { method: (opts.method ?? 'GET') as 'GET', headers: { host, ...opts.headers }, body: opts.body })
  const text = await res.body.text()
  return { status: res.statusCode, location: res.headers.location, hsts: res.headers['strict-transport-security'], text }
}

t.test('plain HTTP to a TLS host is redirected with 308, keeping path and query', async t => {
  const gw = await world(t)
  const base = `:${gw.httpsPort}`
  const cases: [host: string, path: string, status: number, location: string | undefined, why: string][] = [
    ['tls.example.com', '/a/b?x=1&y=%20z', 308, `https://tls.example.com${base}/a/b?x=1&y=%20z`, 'a TLS host redirects'],
    ['TLS.Example.com:80', '/', 308, `https://tls.example.com${base}/`, 'the Location names the host without its port, lowercase'],
    ['off.example.com', '/a', 200, undefined, 'ssl-redirect "false" proxies'],
    ['forced.example.com', '/f?q', 308, `https://forced.example.com${base}/f?q`, 'force-ssl-redirect redirects a host without TLS'],
    ['plain.example.com', '/', 200, undefined, 'a host without TLS is proxied'],
    ['unknown.example.com', '/', 404, undefined, 'no route, no redirect']
  ]
  for (const [host, path, status, location, why] of cases) {
    const res = await get(gw, host, path)
    t.equal(res.status, status, `${why}: status`)
    t.equal(res.location, location, `${why}: location`)
    t.equal(res.hsts, undefined, `${why}: no HSTS over plain HTTP`)
  }
  const post = await get(gw, 'tls.example.com', '/form', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })
  t.equal(post.status, 308, '308 keeps the method, so a POST is redirected too')
  const spoofed = await get(gw, 'tls.example.com', '/', { headers: { 'x-forwarded-proto': 'https' } })
  t.equal(spoofed.status, 308, 'X-Forwarded-Proto from an untrusted peer is ignored')
  t.ok(gw.logs.some(l => l.includes('"status":308') && l.includes('"ingress":"default/tls"')), 'the access log names the ingress that redirected')
})

t.test('a WebSocket upgrade on the HTTP listener is redirected like any request', async t => {
  const gw = await world(t)
  const upgrade = (host: string, path: string): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`
  const redirected = await sendRaw(gw.httpPort, upgrade('tls.example.com', '/ws?room=1'), { waitMs: 2000 })
  t.equal(redirected.status, 308, 'a TLS host answers the upgrade with 308')
  t.ok(redirected.head.toLowerCase().includes(`\r\nlocation: https://tls.example.com:${gw.httpsPort}/ws?room=1\r\n`), 'to the same path and query on the HTTPS port (the client reconnects with wss://)')
  t.ok(redirected.closed, 'and closes the connection')
  const forced = await sendRaw(gw.httpPort, upgrade('forced.example.com', '/ws'), { waitMs: 2000 })
  t.equal(forced.status, 308, 'force-ssl-redirect applies to upgrades too')
  // Not redirected: the upgrade goes upstream (this origin does not speak WebSocket, so it answers the GET).
  const off = await sendRaw(gw.httpPort, upgrade('off.example.com', '/ws'), { waitMs: 1000 })
  t.not(off.status, 308, 'ssl-redirect "false" tunnels the upgrade')
  t.not(off.status, 0, 'and the origin answered it')
})

t.test('a trusted proxy that terminated TLS says so with X-Forwarded-Proto', async t => {
  const gw = await world(t, { INGRESSD_TRUSTED_PROXIES: '127.0.0.0/8,::1' })
  const viaHttps = await get(gw, 'tls.example.com', '/', { headers: { 'x-forwarded-proto': 'https' } })
  t.equal(viaHttps.status, 200, 'X-Forwarded-Proto: https from a trusted proxy is not redirected')
  const viaHttp = await get(gw, 'tls.example.com', '/x', { headers: { 'x-forwarded-proto': 'http', 'x-forwarded-host': 'public.example.com' } })
  t.equal(viaHttp.status, 308, 'X-Forwarded-Proto: http is')
  t.equal(viaHttp.location, `https://public.example.com:${gw.httpsPort}/x`, 'to the host the proxy was asked for')
  const none = await get(gw, 'tls.example.com', '/')
  t.equal(none.status, 308, 'without the header the connection\'s scheme counts')
})

t.test('INGRESSD_HTTPS_REDIRECT_PORT sets the port in the Location; 443 is left out', async t => {
  const mapped = await world(t, { INGRESSD_HTTPS_REDIRECT_PORT: '443' })
  t.equal((await get(mapped, 'tls.example.com', '/a?b')).location, 'https://tls.example.com/a?b')
  const other = await world(t, { INGRESSD_HTTPS_REDIRECT_PORT: '9443' })
  t.equal((await get(other, 'tls.example.com', '/a?b')).location, 'https://tls.example.com:9443/a?b')
})

t.test('HTTPS responses carry HSTS unless INGRESSD_HSTS=off', async t => {
  const gw = await world(t)
  const res = await httpsGet(gw.httpsPort, { servername: 'tls.example.com', host: 'tls.example.com' })
  t.equal(res.status, 200)
  t.equal(res.headers['strict-transport-security'], 'max-age=15724800; includeSubDomains')
  const missing = await httpsGet(gw.httpsPort, { servername: 'nope.example.com', host: 'nope.example.com' })
  t.equal(missing.status, 404)
  t.equal(missing.headers['strict-transport-security'], 'max-age=15724800; includeSubDomains', 'gateway answers carry it too')
  const off = await world(t, { INGRESSD_HSTS: 'off' })
  t.equal((await httpsGet(off.httpsPort, { servername: 'tls.example.com', host: 'tls.example.com' })).headers['strict-transport-security'], undefined)
  const custom = await world(t, { INGRESSD_HSTS: 'max-age=31536000; includeSubDomains; preload' })
  t.equal((await httpsGet(custom.httpsPort, { servername: 'tls.example.com', host: 'tls.example.com' })).headers['strict-transport-security'], 'max-age=31536000; includeSubDomains; preload')
})
