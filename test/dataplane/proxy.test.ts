/**
 * Proxying as users expect it from nginx: forwarded headers, request ids, hop-by-hop headers,
 * rewrite-target, streaming bodies, and upstream failures answered as 502/503/504.
 */
import { createServer as createNetServer, connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'

function ingress (name: string, host: string, service: string, opts: { path?: string, pathType?: string, annotations?: Record<string, string> } = {}): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...(opts.annotations === undefined ? {} : { annotations: opts.annotations }) },
    spec: { rules: [{ host, http: { paths: [{ path: opts.path ?? '/', pathType: opts.pathType ?? 'Prefix', backend: { service: { name: service, port: { number: 8080 } } } }] } }] }
  }
}

/** Sends raw request lines and returns the whole raw response (the request asks the server to close). */
async function rawRequest (port: number, lines: string[]): Promise<string> {
  const sock = connect(port, '127.0.0.1')
  sock.write(lines.join('\r\n') + '\r\n\r\n')
  const chunks: Buffer[] = []
  for await (const c of sock) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

async function send (gw: TestGateway, host: string, path: string, opts: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, text: string, json: any, headers: Record<string, string | string[] | undefined> }> {
  const res = await request(`${gw.http}${path}`, { method: (opts.method ?? 'GET') as 'GET', headers: { host, ...opts.headers }, body: opts.body })
  const text = await res.body.text()
  let json: any
  try { json = JSON.parse(text) } catch {}
  return { status: res.statusCode, text, json, headers: res.headers }
}

t.test('forwarded headers, request ids and hop-by-hop headers', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), ingress('fw', 'fw.example.com', 'echo')])

  const plain = await send(gw, 'fw.example.com', '/a?b=1')
  const h = plain.json.headers
  t.equal(h.host, 'fw.example.com', 'the original Host reaches the upstream')
  t.equal(h['x-forwarded-for'], '127.0.0.1')
  t.equal(h['x-real-ip'], '127.0.0.1')
  t.equal(h['x-forwarded-proto'], 'http')
  t.equal(h['x-forwarded-host'], 'fw.example.com')
  t.equal(h['x-forwarded-port'], String(gw.httpPort))
  t.match(h['x-request-id'], /^[0-9a-f]{32}$/, 'a request id is generated')
  t.equal(plain.headers['x-request-id'], h['x-request-id'], 'and returned to the client')
  t.equal(plain.headers.server, 'ingressd')
  t.equal(plain.json.url, '/a?b=1', 'path and query reach the upstream as sent')

  // Raw bytes: undici (rightly) refuses to send some of these hop-by-hop headers itself.
  const spoofed = await rawRequest(gw.httpPort, [
    'GET / HTTP/1.1',
    'Host: fw.example.com',
    'X-Forwarded-For: 6.6.6.6',
    'X-Real-IP: 6.6.6.6',
    'X-Forwarded-Proto: https',
    'X-Forwarded-Host: evil.example',
    'X-Request-ID: client-chosen-id',
    'Connection: close, x-forwarded-for, x-request-id, x-custom',
    'X-Custom: hop',
    'Keep-Alive: timeout=5',
    'TE: trailers'
  ])
  const s = JSON.parse(spoofed.slice(spoofed.indexOf('\r\n\r\n') + 4)).headers
  t.equal(s['x-forwarded-for'], '127.0.0.1', 'an untrusted client cannot spoof X-Forwarded-For')
  t.equal(s['x-real-ip'], '127.0.0.1')
  t.equal(s['x-forwarded-proto'], 'http')
  t.equal(s['x-forwarded-host'], 'fw.example.com')
  t.equal(s['x-request-id'], 'client-chosen-id', 'a client request id is kept, as ingress-nginx keeps it')
  t.equal(s['x-custom'], undefined, 'headers named in Connection are not forwarded')
  t.equal(s['keep-alive'], undefined)
  t.equal(s.te, undefined)
})

t.test('trusted proxies keep and extend forwarded headers', async t => {
  const gw = await startTestGateway(t, { INGRESSD_TRUSTED_PROXIES: '127.0.0.0/8' })
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), ingress('fw', 'fw.example.com', 'echo')])
  const res = await send(gw, 'fw.example.com', '/', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-real-ip': '203.0.113.7' } })
  t.equal(res.json.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1')
  t.equal(res.json.headers['x-forwarded-proto'], 'https')
  t.equal(res.json.headers['x-real-ip'], '203.0.113.7')
})

t.test('rewrite-target as in the seed, and with capture groups', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [
    ...serviceManifests('echo', [origin]),
    { apiVersion: 'extensions/v1beta1', kind: 'Ingress', metadata: { name: 'basic', annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/' } }, spec: { rules: [{ host: 'www.basic1.com', http: { paths: [{ path: '/path1', backend: { serviceName: 'echo', servicePort: 8080 } }] } }] } },
    ingress('groups', 'groups.example.com', 'echo', { path: '/something(/|$)(.*)', pathType: 'ImplementationSpecific', annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/$2' } })
  ])
  t.equal((await send(gw, 'www.basic1.com', '/path1')).json.url, '/')
  t.equal((await send(gw, 'www.basic1.com', '/path1?q=1')).json.url, '/?q=1', 'the query string is kept')
  t.equal((await send(gw, 'groups.example.com', '/something/new')).json.url, '/new')
  t.equal((await send(gw, 'groups.example.com', '/something')).json.url, '/')
  t.equal((await send(gw, 'groups.example.com', '/SOMETHING/x?y=2')).json.url, '/x?y=2', 'regex paths are case-insensitive, as nginx ~*')
})

t.test('bodies stream through in both directions, with their framing', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  await apply(gw, [...serviceManifests('echo', [origin]), ingress('body', 'body.example.com', 'echo', { annotations: { 'nginx.ingress.kubernetes.io/proxy-body-size': '8m' } })])
  const big = 'x'.repeat(3 * 1024 * 1024)
  const posted = await send(gw, 'body.example.com', '/upload', { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } })
  t.equal(posted.status, 200)
  t.equal(posted.json.body.length, big.length, 'a 3 MiB body arrives whole')
  t.equal(posted.json.headers['content-length'], String(big.length))
  t.equal(posted.headers['content-length'], String(Buffer.byteLength(posted.text)), 'the response keeps its Content-Length')

  // A chunked upload (no Content-Length) streams as chunked.
  const chunks = async function * (): AsyncGenerator<string> { for (let i = 0; i < 5; i++) yield `chunk-${i};` }
  const res = await request(`${gw.http}/chunked`, { method: 'PUT', headers: { host: 'body.example.com' }, body: Readable.from(chunks()) })
  const json = await res.body.json() as any
  t.equal(json.body, 'chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;')
  t.equal(json.method, 'PUT')
})

t.test('upstream failures: 502, 503, 504, never 500, never the upstream address', async t => {
  const gw = await startTestGateway(t)
  const slow = await startOrigin(t, 'slow', (_req, res) => { setTimeout(() => { res.end('late') }, 3000) })
  const failing = await startOrigin(t, 'failing', (_req, res) => { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('origin says 500') })
  // A port with nothing listening: bind and close to find one.
  const probe = createNetServer()
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
  const deadPort = (probe.address() as AddressInfo).port
  await new Promise<void>(resolve => probe.close(() => resolve()))
  // An upstream that resets the connection as soon as the request arrives.
  const resetter = createNetServer(sock => { sock.once('data', () => sock.resetAndDestroy()) })
  await new Promise<void>(resolve => resetter.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { resetter.close() })
  const resetPort = (resetter.address() as AddressInfo).port
  // An upstream that answers garbage.
  const garbage = createNetServer(sock => { sock.once('data', () => sock.end('NOT HTTP AT ALL\r\n\r\n')) })
  await new Promise<void>(resolve => garbage.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { garbage.close() })
  const garbagePort = (garbage.address() as AddressInfo).port

  const endpoints = (name: string, port: number): unknown[] => serviceManifests(name, [{ name, host: '127.0.0.1', port } as any])
  await apply(gw, [
    ...endpoints('dead', deadPort),
    ...endpoints('reset', resetPort),
    ...endpoints('garbage', garbagePort),
    ...serviceManifests('slow', [slow]),
    ...serviceManifests('failing', [failing]),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty' }, spec: { ports: [{ name: 'http', port: 8080 }] } },
    ingress('dead', 'dead.example.com', 'dead'),
    ingress('reset', 'reset.example.com', 'reset'),
    ingress('garbage', 'garbage.example.com', 'garbage'),
    ingress('slow', 'slow.example.com', 'slow', { annotations: { 'nginx.ingress.kubernetes.io/proxy-read-timeout': '1' } }),
    ingress('failing', 'failing.example.com', 'failing'),
    ingress('empty', 'empty.example.com', 'empty'),
    ingress('missing', 'missing.example.com', 'no-such-service')
  ])
  const cases: [string, number, string][] = [
    ['dead.example.com', 502, 'INGRESSD_ERR_UPSTREAM_UNREACHABLE'],
    ['reset.example.com', 502, 'INGRESSD_ERR_UPSTREAM_RESET'],
    ['garbage.example.com', 502, 'INGRESSD_ERR_UPSTREAM_BAD_RESPONSE'],
    ['slow.example.com', 504, 'INGRESSD_ERR_UPSTREAM_TIMEOUT'],
    ['empty.example.com', 503, 'INGRESSD_ERR_NO_ENDPOINTS'],
    ['missing.example.com', 503, 'INGRESSD_ERR_NO_ENDPOINTS']
  ]
  for (const [host, status, code] of cases) {
    const res = await send(gw, host, '/')
    t.equal(res.status, status, `${host} -> ${status}`)
    t.match(res.text, code)
    t.ok(res.headers['x-request-id'], 'the error carries a request id')
    t.notMatch(res.text, /127\.0\.0\.1|:\d{4,5}\b/, 'the body does not show the upstream address')
  }
  const passthrough = await send(gw, 'failing.example.com', '/')
  t.equal(passthrough.status, 500, 'an upstream\'s own 500 passes through')
  t.equal(passthrough.text, 'origin says 500')
  t.equal((await send(gw, 'dead.example.com', '/')).status, 502, 'the gateway is still up after all that')
})

t.test('a client that goes away mid-request does not hurt the gateway', async t => {
  const gw = await startTestGateway(t)
  const slow = await startOrigin(t, 'slow', (_req, res) => { setTimeout(() => { res.end('late') }, 500) })
  await apply(gw, [...serviceManifests('slow', [slow]), ingress('slow', 'slow.example.com', 'slow')])
  for (let i = 0; i < 5; i++) {
    const sock = connect(gw.httpPort, '127.0.0.1')
    await new Promise<void>(resolve => sock.once('connect', resolve))
    sock.write('GET / HTTP/1.1\r\nHost: slow.example.com\r\n\r\n')
    await new Promise(resolve => setTimeout(resolve, 50))
    sock.destroy()
  }
  const res = await send(gw, 'slow.example.com', '/')
  t.equal(res.status, 200)
  t.equal(res.text, 'late')
})

t.test('ExternalName services resolve by DNS; the built-in default backend answers 404 and its health path', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'named')
  await apply(gw, [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'by-name' }, spec: { type: 'ExternalName', externalName: 'localhost', ports: [{ name: 'http', port: 8080, targetPort: origin.port }] } },
    ingress('ext', 'ext.example.com', 'by-name')
  ])
  const res = await send(gw, 'ext.example.com', '/via-dns')
  t.equal(res.status, 200)
  t.equal(res.json.server, 'named')
  t.equal(res.json.url, '/via-dns')
  const miss = await send(gw, 'nobody.example.com', '/')
  t.equal(miss.status, 404)
  t.match(miss.text, 'INGRESSD_ERR_NO_ROUTE')
  const health = await send(gw, 'nobody.example.com', '/healthz')
  t.equal(health.status, 200)
})

t.test('the upstream receives exactly the path that was routed: dot segments cannot leave the rule', async t => {
  const gw = await startTestGateway(t)
  const api = await startOrigin(t, 'api')
  const admin = await startOrigin(t, 'admin')
  await apply(gw, [
    ...serviceManifests('api', [api]),
    ...serviceManifests('admin', [admin]),
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'split' },
      spec: { rules: [{ host: 'split.example.com', http: { paths: [{ path: '/api', pathType: 'Prefix', backend: { service: { name: 'api', port: { number: 8080 } } } }, { path: '/admin', pathType: 'Prefix', backend: { service: { name: 'admin', port: { number: 8080 } } } }] } }] }
    }
  ])
  const escaped = JSON.parse((await rawRequest(gw.httpPort, ['GET /api/../admin/users HTTP/1.1', 'Host: split.example.com', 'Connection: close'])).split('\r\n\r\n')[1] ?? '{}')
  t.equal(escaped.server, 'admin', '/api/../admin is routed as /admin')
  t.equal(escaped.url, '/admin/users', 'and sent upstream as /admin/users')
  const encoded = JSON.parse((await rawRequest(gw.httpPort, ['GET /api/%2e%2e/admin HTTP/1.1', 'Host: split.example.com', 'Connection: close'])).split('\r\n\r\n')[1] ?? '{}')
  t.equal(encoded.server, 'admin')
  t.equal(encoded.url, '/admin')
  const merged = JSON.parse((await rawRequest(gw.httpPort, ['GET //api//v1 HTTP/1.1', 'Host: split.example.com', 'Connection: close'])).split('\r\n\r\n')[1] ?? '{}')
  t.equal(merged.url, '/api/v1')
  const above = await rawRequest(gw.httpPort, ['GET /../etc/passwd HTTP/1.1', 'Host: split.example.com', 'Connection: close'])
  t.match(above, /^HTTP\/1\.1 400/)
  t.match(above, 'INGRESSD_ERR_BAD_PATH')
})
