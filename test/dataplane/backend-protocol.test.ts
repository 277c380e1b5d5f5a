/**
 * backend-protocol HTTPS, AUTO_HTTP and H2C against real origins (HTTPS with certificates issued
 * at test time, h2c), and the proxy-ssl-* annotations (ingress-nginx's e2e backendprotocol.go and
 * proxyssl.go as a checklist).
 */
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createH2cServer } from 'node:http2'
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { apply, serviceManifests, annotatedIngress, loopbackEndpoint } from '../helpers/backends.js'
import { startOrigin } from '../helpers/origin.js'
import { httpsGet, type IssuedCertificate } from '../helpers/tls.js'
import { issueServerCertificate as issue } from '../helpers/server-certificate.js'
import { parseIngressAnnotations } from '../../src/resources/annotations.js'

const P = 'nginx.ingress.kubernetes.io/'
const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

type Closable = { teardown: (fn: () => Promise<void> | void) => void }

interface SeenTls { host: string | undefined, servername: string | false, protocol: string | null, url: string, clientCert: string | undefined }

/** An HTTPS origin answering JSON with what it saw of the TLS connection and request. */
async function startHttpsOrigin (t: Closable, pem: IssuedCertificate, opts: { ca?: string, requestCert?: boolean } = {}): Promise<{ port: number, seen: SeenTls[] }> {
  const seen: SeenTls[] = []
  const server = createHttpsServer({ cert: pem.cert, key: pem.key, ...(opts.ca === undefined ? {} : { ca: opts.ca }), requestCert: opts.requestCert === true, rejectUnauthorized: false }, (req, res) => {
    const socket = req.socket as TLSSocket
    const peer = socket.getPeerCertificate()
    const entry: SeenTls = { host: req.headers.host, servername: (socket as TLSSocket & { servername: string | false }).servername, protocol: socket.getProtocol(), url: req.url ?? '', clientCert: socket.authorized ? String(peer.subject?.CN ?? '') : undefined }
    seen.push(entry)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(entry))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { port: (server.address() as AddressInfo).port, seen }
}

const ingress = annotatedIngress
const at = loopbackEndpoint

async function get (gw: TestGateway, host: string, path = '/'): Promise<{ status: number, text: string, json: any }> {
  const res = await request(`${gw.http}${path}`, { headers: { host } })
  const text = await res.body.text()
  let json: any
  try { json = JSON.parse(text) } catch {}
  return { status: res.statusCode, text, json }
}

t.test('HTTPS: TLS to the upstream, not verified and without SNI by default, as ingress-nginx', async t => {
  const gw = await startTestGateway(t)
  const ca = await issue({ subject: 'CN=Upstream CA', ca: true })
  const origin = await startHttpsOrigin(t, await issue({ subject: 'CN=origin.internal', issuer: ca, names: ['origin.internal'] }))
  await apply(gw, [...serviceManifests('secure', [at(origin.port)]), ingress('https', 'https.example.com', 'secure', { [P + 'backend-protocol']: 'HTTPS' })])
  const res = await get(gw, 'https.example.com', '/a?b=1')
  t.equal(res.status, 200)
  t.equal(res.json.host, 'https.example.com', 'the client\'s Host goes upstream')
  t.equal(res.json.url, '/a?b=1')
  t.equal(res.json.servername, false, 'no SNI')
  t.match(res.json.protocol, /^TLSv1\.[23]$/)
  const plain = await startOrigin(t, 'plain')
  await apply(gw, [...serviceManifests('plain', [plain]), ingress('mismatch', 'mismatch.example.com', 'plain', { [P + 'backend-protocol']: 'HTTPS' })])
  const mismatch = await get(gw, 'mismatch.example.com')
  t.equal(mismatch.status, 502, 'HTTPS to a plain-HTTP upstream: 502')
  t.notMatch(mismatch.text, /127\.0\.0\.1/)
})

t.test('proxy-ssl-server-name, proxy-ssl-name, proxy-ssl-protocols, proxy-ssl-verify', async t => {
  const gw = await startTestGateway(t)
  const ca = await issue({ subject: 'CN=Upstream CA', ca: true })
  const origin = await startHttpsOrigin(t, await issue({ subject: 'CN=origin.internal', issuer: ca, names: ['origin.internal'] }))
  await apply(gw, [
    ...serviceManifests('secure', [at(origin.port)]),
    ingress('sni', 'sni.example.com', 'secure', { [P + 'backend-protocol']: 'HTTPS', [P + 'proxy-ssl-server-name']: 'on' }),
    ingress('named', 'named.example.com', 'secure', { [P + 'backend-protocol']: 'HTTPS', [P + 'proxy-ssl-server-name']: 'on', [P + 'proxy-ssl-name']: 'origin.internal' }),
    ingress('tls12', 'tls12.example.com', 'secure', { [P + 'backend-protocol']: 'HTTPS', [P + 'proxy-ssl-protocols']: 'TLSv1.2' }),
    ingress('verify', 'verify.example.com', 'secure', { [P + 'backend-protocol']: 'HTTPS', [P + 'proxy-ssl-verify']: 'on', [P + 'proxy-ssl-name']: 'origin.internal' })
  ])
  t.equal((await get(gw, 'sni.example.com')).json.servername, 'sni.example.com', 'server-name on: the Host sent upstream is the SNI')
  t.equal((await get(gw, 'named.example.com')).json.servername, 'origin.internal', 'proxy-ssl-name: that name')
  t.equal((await get(gw, 'tls12.example.com')).json.protocol, 'TLSv1.2', 'proxy-ssl-protocols: TLSv1.2 only')
  const unverified = await get(gw, 'verify.example.com')
  t.equal(unverified.status, 502, 'verify on, a CA the gateway does not trust: 502, never proxied')
})

t.test('proxy-ssl-secret: ca.crt verifies the upstream, tls.crt and tls.key are the gateway\'s client certificate', async t => {
  const gw = await startTestGateway(t)
  const ca = await issue({ subject: 'CN=Upstream CA', ca: true })
  const otherCa = await issue({ subject: 'CN=Other CA', ca: true })
  const clientCa = await issue({ subject: 'CN=Client CA', ca: true })
  const origin = await startHttpsOrigin(t, await issue({ subject: 'CN=origin.internal', issuer: ca, names: ['origin.internal'] }), { ca: clientCa.cert, requestCert: true })
  const client = await issue({ subject: 'CN=gateway-client', issuer: clientCa })
  const tls = { [P + 'backend-protocol']: 'HTTPS', [P + 'proxy-ssl-verify']: 'on', [P + 'proxy-ssl-name']: 'origin.internal' }
  await apply(gw, [
    ...serviceManifests('secure', [at(origin.port)]),
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'upstream-ca', namespace: 'default' }, type: 'Opaque', stringData: { 'ca.crt': ca.cert } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other-ca', namespace: 'default' }, type: 'Opaque', stringData: { 'ca.crt': otherCa.cert } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'upstream-mtls', namespace: 'default' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': client.cert, 'tls.key': client.key, 'ca.crt': ca.cert } },
    ingress('ca', 'ca.example.com', 'secure', { ...tls, [P + 'proxy-ssl-secret']: 'default/upstream-ca' }),
    ingress('other', 'other.example.com', 'secure', { ...tls, [P + 'proxy-ssl-secret']: 'other-ca' }),
    ingress('mtls', 'mtls.example.com', 'secure', { ...tls, [P + 'proxy-ssl-secret']: 'upstream-mtls' }),
    ingress('missing', 'missing.example.com', 'secure', { ...tls, [P + 'proxy-ssl-secret']: 'nope' }),
    ingress('wrongname', 'wrongname.example.com', 'secure', { ...tls, [P + 'proxy-ssl-secret']: 'upstream-ca', [P + 'proxy-ssl-name']: 'someone.else' })
  ])
  const verified = await get(gw, 'ca.example.com')
  t.equal(verified.status, 200, 'verify on with the upstream\'s CA: proxied')
  t.equal(verified.json.clientCert, undefined, 'no client certificate from a Secret without tls.crt')
  t.equal((await get(gw, 'other.example.com')).status, 502, 'another CA: 502')
  t.equal((await get(gw, 'wrongname.example.com')).status, 502, 'a name the certificate does not have: 502')
  const mtls = await get(gw, 'mtls.example.com')
  t.equal(mtls.status, 200)
  t.equal(mtls.json.clientCert, 'gateway-client', 'the upstream verified the gateway\'s client certificate')
  const missing = await get(gw, 'missing.example.com')
  t.equal(missing.status, 502, 'a missing Secret: 502')
  t.match(missing.text, /INGRESSD_ERR_UPSTREAM_TLS_SECRET/)
  const cross = await gw.api('POST', ING, ingress('cross', 'cross.example.com', 'secure', { ...tls, [P + 'proxy-ssl-secret']: 'kube-system/ca' }))
  t.equal(cross.status, 422, 'another namespace\'s Secret is refused')
  t.equal(cross.body.details?.causes?.[0]?.field, `metadata.annotations[${P}proxy-ssl-secret]`)
})

t.test('AUTO_HTTP: HTTPS upstream for HTTPS clients, HTTP for HTTP clients', async t => {
  const gw = await startTestGateway(t)
  const ca = await issue({ subject: 'CN=Upstream CA', ca: true })
  const pem = await issue({ subject: 'CN=origin.internal', issuer: ca, names: ['origin.internal'] })
  // One port that speaks both: the first byte says whether a TLS handshake starts.
  const tlsOrigin = await startHttpsOrigin(t, pem)
  const plainOrigin = await startOrigin(t, 'plain')
  const sockets = new Set<import('node:net').Socket>()
  const mux = createNetServer(socket => {
    sockets.add(socket)
    socket.once('data', (first: Buffer) => {
      const port = first[0] === 0x16 ? tlsOrigin.port : plainOrigin.port
      const up = netConnect(port, '127.0.0.1', () => { up.write(first); socket.pipe(up); up.pipe(socket) })
      up.on('error', () => socket.destroy())
      socket.on('error', () => up.destroy())
    })
  })
  await new Promise<void>(resolve => mux.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { for (const s of sockets) s.destroy(); mux.close(() => resolve()) }))
  await apply(gw, [...serviceManifests('auto', [at((mux.address() as AddressInfo).port)]), ingress('auto', 'auto.example.com', 'auto', { [P + 'backend-protocol']: 'AUTO_HTTP' })])
  const overHttp = await get(gw, 'auto.example.com', '/x')
  t.equal(overHttp.status, 200)
  t.equal(overHttp.json.server, 'plain', 'an HTTP client: plain HTTP upstream')
  const overHttps = await httpsGet(gw.httpsPort, { servername: 'auto.example.com', host: 'auto.example.com', path: '/y' })
  t.equal(overHttps.status, 200)
  t.match(overHttps.json.protocol, /^TLSv1/, 'an HTTPS client: TLS upstream')
  t.equal(overHttps.json.url, '/y')
})

t.test('H2C: HTTP/2 without TLS to the upstream for any traffic', async t => {
  const gw = await startTestGateway(t)
  const seen: Array<{ version: string, authority: string | undefined, body: string }> = []
  const server = createH2cServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      seen.push({ version: req.httpVersion, authority: req.headers[':authority'], body })
      res.setHeader('content-type', 'text/plain')
      res.setHeader('x-origin', 'h2c')
      res.end(`h2c says hi to ${req.method} ${req.url}`)
    })
  })
  const sessions = new Set<import('node:http2').ServerHttp2Session>()
  server.on('session', session => sessions.add(session))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { for (const session of sessions) session.destroy(); server.close(() => resolve()) }))
  await apply(gw, [...serviceManifests('h2c', [at((server.address() as AddressInfo).port)]), ingress('h2c', 'h2c.example.com', 'h2c', { [P + 'backend-protocol']: 'H2C' })])
  const res = await get(gw, 'h2c.example.com', '/hello?x=1')
  t.equal(res.status, 200)
  t.equal(res.text, 'h2c says hi to GET /hello?x=1')
  const post = await request(`${gw.http}/form`, { method: 'POST', headers: { host: 'h2c.example.com', 'content-type': 'text/plain' }, body: 'a body' })
  t.equal(post.statusCode, 200)
  t.equal(post.headers['x-origin'], 'h2c')
  await post.body.text()
  t.equal(seen.length, 2)
  t.equal(seen[0]?.version, '2.0', 'the upstream spoke HTTP/2')
  t.equal(seen[0]?.authority, 'h2c.example.com', 'the Host as :authority')
  t.equal(seen[1]?.body, 'a body', 'the body went up')
})

t.test('proxy-ssl-* values are checked on write (422 naming the key)', async t => {
  const gw = await startTestGateway(t)
  const cases: Array<[string, string]> = [
    ['proxy-ssl-verify', 'yes'],
    ['proxy-ssl-server-name', 'true'],
    ['proxy-ssl-verify-depth', '0'],
    ['proxy-ssl-verify-depth', 'two'],
    ['proxy-ssl-name', 'not a name'],
    ['proxy-ssl-protocols', 'SSLv3'],
    ['proxy-ssl-protocols', ''],
    ['proxy-ssl-ciphers', 'NOT-A-CIPHER'],
    ['proxy-ssl-secret', 'Bad_Name']
  ]
  let n = 0
  for (const [key, value] of cases) {
    const name = `bad-${n++}`
    const res = await gw.api('POST', ING, ingress(name, `${name}.example.com`, 'x', { [P + 'backend-protocol']: 'HTTPS', [P + key]: value }))
    t.equal(res.status, 422, `${key}: ${JSON.stringify(value)} is refused`)
    t.equal(res.body.details?.causes?.[0]?.field, `metadata.annotations[${P}${key}]`, `${key}: the key is named`)
  }
  const parsed = parseIngressAnnotations({ [P + 'backend-protocol']: 'HTTPS', [P + 'proxy-ssl-verify']: 'on', [P + 'proxy-ssl-verify-depth']: '2', [P + 'proxy-ssl-protocols']: 'TLSv1.3 TLSv1.2' })
  t.match(parsed.settings.upstreamTls, { verify: true, verifyDepth: 2, serverName: false, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' })
  t.equal(parseIngressAnnotations({}).settings.upstreamTls, undefined, 'nothing for an ingress without these keys')
})

t.test('a rotated proxy-ssl-secret retires the older version\'s options and agent, so rotations do not accumulate them', async t => {
  const { UpstreamTlsConnections, DEFAULT_UPSTREAM_TLS } = await import('../../src/dataplane/upstream-tls.js')
  const ca = await issue({ subject: 'Rotation CA', ca: true })
  let material = { type: 'Opaque', data: { 'ca.crt': ca.cert } }
  const connections = new UpstreamTlsConnections(() => (namespace, name) => namespace === 'default' && name === 'rotating' ? material : undefined)
  const spec = { ...DEFAULT_UPSTREAM_TLS, key: 'rotating', secret: { namespace: 'default', name: 'rotating' } }
  t.teardown(async () => await connections.close())
  const first = connections.settingsFor(spec, 'upstream.example.com')
  t.ok(first, 'options for the first version')
  const firstAgent = connections.agentFor(5000, first as NonNullable<typeof first>)
  t.equal(connections.agentFor(5000, first as NonNullable<typeof first>), firstAgent, 'reused while the Secret is unchanged')
  for (let i = 0; i < 5; i++) {
    material = { type: 'Opaque', data: { 'ca.crt': ca.cert } }
    const bound = connections.settingsFor(spec, 'upstream.example.com')
    connections.agentFor(5000, bound as NonNullable<typeof bound>)
  }
  t.equal(connections.agentCount, 1, 'one agent after five rotations')
  t.ok(firstAgent.closed, 'the first version\'s agent is closed')
})
