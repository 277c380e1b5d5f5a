/**
 * TLS termination end to end: real handshakes against the HTTPS listener, certificates generated
 * at test time, real origins behind. Which certificate each name gets, rotation and deletion
 * without a restart, the seed's HTTPS walkthrough, HTTP/2 through ALPN, protocol limits, and
 * what the statuses say about certificates that are served but wrong.
 */
import { X509Certificate } from 'node:crypto'
import { createServer } from 'node:http'
import { connect as h2connect } from 'node:http2'
import { Agent } from 'node:https'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import t from 'tap'
import { request } from 'undici'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { FAKE_CERTIFICATE_CN } from '../../src/dataplane/default-certificate.js'
import { TLS_CIPHERS } from '../../src/dataplane/tls-options.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { backend, handshake, httpsGet, tlsSecret } from '../helpers/tls.js'

const INGRESSES = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const SECRETS = '/api/v1/namespaces/default/secrets'

interface IngressOptions {
  rules: [host: string, service: string][]
  tls?: { hosts: string[], secretName?: string }[]
  annotations?: Record<string, string>
}

function ingress (name: string, opts: IngressOptions): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...(opts.annotations === undefined ? {} : { annotations: opts.annotations }) },
    spec: {
      ...(opts.tls === undefined ? {} : { tls: opts.tls }),
      rules: opts.rules.map(([host, service]) => ({ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: service, port: { number: 80 } } } }] } }))
    }
  }
}

async function apply (gw: TestGateway, manifests: unknown[]): Promise<void> {
  const res = await gw.api('POST', '/apply', manifests)
  if (res.status !== 200) throw new Error(`apply failed: ${res.status} ${res.text}`)
}

function fingerprint (pem: string): string {
  return new X509Certificate(pem).fingerprint256
}

async function ec (commonName: string, dnsNames: string[], extra: { notBefore?: Date, notAfter?: Date } = {}): Promise<{ cert: string, key: string }> {
  return await generateSelfSigned({ commonName, dnsNames, keyType: 'ec', ...extra })
}

t.test('the certificate is chosen by SNI: exact name, one-label wildcard, then the default', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  const exact = await ec('foo.com', ['foo.com'])
  const wild = await ec('*.foo.com', ['*.foo.com'])
  const other = await ec('other.org', ['other.org'])
  await apply(gw, [
    ...backend('web', [origin]),
    tlsSecret('exact', exact),
    tlsSecret('wild', wild),
    tlsSecret('other', other),
    ingress('foo', { rules: [['foo.com', 'web'], ['*.foo.com', 'web']], tls: [{ hosts: ['foo.com'], secretName: 'exact' }, { hosts: ['*.foo.com'], secretName: 'wild' }] }),
    ingress('other', { rules: [['other.org', 'web']], tls: [{ hosts: ['other.org'], secretName: 'other' }] })
  ])
  const fallback = await handshake(gw.httpsPort)
  t.equal(fallback.cn, FAKE_CERTIFICATE_CN, 'the generated default certificate is ingress-nginx\'s fake one')

  const cases: [sni: string | undefined, expected: string, why: string][] = [
    ['foo.com', fingerprint(exact.cert), 'exact name'],
    ['FOO.COM', fingerprint(exact.cert), 'SNI is case-insensitive'],
    ['a.foo.com', fingerprint(wild.cert), 'wildcard covers one label'],
    ['Www.Foo.Com', fingerprint(wild.cert), 'uppercase wildcard match'],
    ['a.b.foo.com', fallback.fingerprint, 'a wildcard covers exactly one label: two get the default'],
    ['other.org', fingerprint(other.cert), 'a second ingress\'s certificate'],
    ['unknown.example', fallback.fingerprint, 'an unknown name gets the default'],
    [undefined, fallback.fingerprint, 'no SNI gets the default']
  ]
  for (const [sni, expected, why] of cases) {
    const seen = await handshake(gw.httpsPort, sni)
    t.equal(seen.fingerprint, expected, `${sni ?? '(no SNI)'}: ${why}`)
  }

  const peer = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gw.httpsPort, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate() as unknown as Record<string, unknown>)
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(peer.subjectaltname, undefined, 'the default certificate names no host, so it leaks none')
})

t.test('routing follows Host, not SNI; the HTTPS port sets the forwarded headers', async t => {
  const gw = await startTestGateway(t)
  const a = await startOrigin(t, 'a')
  const b = await startOrigin(t, 'b')
  const cert = await ec('a.example.com', ['a.example.com'])
  await apply(gw, [
    ...backend('a', [a]),
    ...backend('b', [b]),
    tlsSecret('a-tls', cert),
    ingress('a', { rules: [['a.example.com', 'a']], tls: [{ hosts: ['a.example.com'], secretName: 'a-tls' }] }),
    ingress('b', { rules: [['b.example.com', 'b']] })
  ])
  const viaA = await httpsGet(gw.httpsPort, { servername: 'a.example.com', host: 'a.example.com', path: '/x?y=1' })
  t.equal(viaA.status, 200)
  t.equal(viaA.json.server, 'a')
  t.equal(viaA.json.url, '/x?y=1')
  t.equal(viaA.json.headers['x-forwarded-proto'], 'https')
  t.equal(viaA.json.headers['x-forwarded-port'], String(gw.httpsPort))
  t.equal(viaA.json.headers.host, 'a.example.com')
  t.equal(viaA.certificate.fingerprint, fingerprint(cert.cert))

  const crossed = await httpsGet(gw.httpsPort, { servername: 'a.example.com', host: 'b.example.com' })
  t.equal(crossed.status, 200)
  t.equal(crossed.json.server, 'b', 'Host picks the route even when SNI names another host')
  t.equal(crossed.certificate.fingerprint, fingerprint(cert.cert), 'SNI picked the certificate')

  const noSni = await httpsGet(gw.httpsPort, { servername: '', host: 'a.example.com' })
  t.equal(noSni.status, 200, 'a client without SNI is still routed by Host')
  t.equal(noSni.certificate.cn, FAKE_CERTIFICATE_CN)

  const unknown = await httpsGet(gw.httpsPort, { servername: 'nope.example.com', host: 'nope.example.com' })
  t.equal(unknown.status, 404, 'an unknown host gets the built-in 404 over TLS, as over HTTP')
})

t.test('rotating a certificate with one PUT: open connections keep theirs, new ones get the new one', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  const v1 = await ec('v1', ['rotate.example.com'])
  const v2 = await ec('v2', ['rotate.example.com'])
  await apply(gw, [...backend('web', [origin]), tlsSecret('rotate', v1), ingress('rotate', { rules: [['rotate.example.com', 'web']], tls: [{ hosts: ['rotate.example.com'], secretName: 'rotate' }] })])

  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const first = await httpsGet(gw.httpsPort, { servername: 'rotate.example.com', host: 'rotate.example.com', agent })
  t.equal(first.status, 200)
  t.equal(first.certificate.fingerprint, fingerprint(v1.cert))
  // A session to resume later, from before the rotation.
  const session = await new Promise<Buffer>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gw.httpsPort, servername: 'rotate.example.com', rejectUnauthorized: false })
    socket.once('session', s => { resolve(s); socket.end() })
    socket.on('data', () => {})
    socket.on('error', reject)
  })

  const listenLines = gw.logs.filter(l => /listening|closing/i.test(l)).length
  const put = await gw.api('PUT', `${SECRETS}/rotate`, tlsSecret('rotate', v2))
  t.equal(put.status, 200, 'the new certificate is accepted')

  const again = await httpsGet(gw.httpsPort, { servername: 'rotate.example.com', host: 'rotate.example.com', agent })
  t.equal(again.status, 200, 'the open connection still serves requests')
  t.ok(again.reused, 'over the same connection')
  t.equal(again.socket, first.socket)
  t.equal(again.certificate.fingerprint, fingerprint(v1.cert), 'which keeps the certificate it was opened with')

  const fresh = await httpsGet(gw.httpsPort, { servername: 'rotate.example.com', host: 'rotate.example.com' })
  t.equal(fresh.status, 200)
  t.equal(fresh.certificate.fingerprint, fingerprint(v2.cert), 'a new connection sees the new certificate at once')

  const resumed = await new Promise<{ reused: boolean, fingerprint: string }>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gw.httpsPort, servername: 'rotate.example.com', rejectUnauthorized: false, session }, () => {
      resolve({ reused: socket.isSessionReused(), fingerprint: socket.getPeerCertificate().fingerprint256 })
      socket.end()
    })
    socket.on('error', reject)
  })
  t.notOk(resumed.reused, 'a session from before the rotation is not resumed')
  t.equal(resumed.fingerprint, fingerprint(v2.cert), 'so that client too sees the new certificate')
  t.equal(gw.logs.filter(l => /listening|closing/i.test(l)).length, listenLines, 'the listener did not restart')
})

t.test('deleting the Secret falls back to the default certificate; changing the ingress tls applies at once', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  const cert = await ec('gone', ['gone.example.com', 'moved.example.com'])
  await apply(gw, [...backend('web', [origin]), tlsSecret('gone', cert), ingress('gone', { rules: [['gone.example.com', 'web'], ['moved.example.com', 'web']], tls: [{ hosts: ['gone.example.com'], secretName: 'gone' }] })])
  t.equal((await handshake(gw.httpsPort, 'gone.example.com')).fingerprint, fingerprint(cert.cert))
  t.equal((await handshake(gw.httpsPort, 'moved.example.com')).cn, FAKE_CERTIFICATE_CN, 'a rule host without a TLS entry gets the default')

  // The ingress's tls now lists the other host.
  const changed = ingress('gone', { rules: [['gone.example.com', 'web'], ['moved.example.com', 'web']], tls: [{ hosts: ['moved.example.com'], secretName: 'gone' }] })
  t.equal((await gw.api('PUT', `${INGRESSES}/gone`, changed)).status, 200)
  t.equal((await handshake(gw.httpsPort, 'moved.example.com')).fingerprint, fingerprint(cert.cert), 'the new tls host gets the certificate')
  t.equal((await handshake(gw.httpsPort, 'gone.example.com')).cn, FAKE_CERTIFICATE_CN, 'the dropped one the default')

  t.equal((await gw.api('DELETE', `${SECRETS}/gone`)).status, 200)
  t.equal((await handshake(gw.httpsPort, 'moved.example.com')).cn, FAKE_CERTIFICATE_CN, 'without its Secret the host gets the default certificate')
  const served = await httpsGet(gw.httpsPort, { servername: 'moved.example.com', host: 'moved.example.com' })
  t.equal(served.status, 200, 'and is still served')
  const status = (await gw.api('GET', `${INGRESSES}/gone`)).body.status
  const condition = status.conditions.find((c: any) => c.type === 'CertificatesValid')
  t.equal(condition?.status, 'False')
  t.equal(condition?.reason, 'SecretNotFound')
  t.match(condition?.message, /secret default\/gone not found: moved.example.com served with the default certificate/)
})

t.test('the seed walkthrough over HTTPS: secret my-https, ingress basic-ssl (extensions/v1beta1)', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 's1', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<h1>Welcome to nginx!</h1>')
  })
  // openssl req -x509 -nodes -days 365 -newkey rsa:2048 -keyout tls.key -out tls.crt -subj "/CN=my-ssl"
  const pem = await generateSelfSigned({ commonName: 'my-ssl', days: 365, keyType: 'rsa' })
  // kubectl create secret tls my-https --key tls.key --cert tls.crt
  const secret = await gw.api('POST', SECRETS, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'my-https' }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(pem.cert).toString('base64'), 'tls.key': Buffer.from(pem.key).toString('base64') } })
  t.equal(secret.status, 201)
  await apply(gw, backend('s1', [origin]))
  const created = await gw.api('POST', '/apis/extensions/v1beta1/namespaces/default/ingresses', {
    apiVersion: 'extensions/v1beta1',
    kind: 'Ingress',
    metadata: { name: 'basic-ssl' },
    spec: {
      tls: [{ hosts: ['www.basic-ssl.com'], secretName: 'my-https' }],
      rules: [{ host: 'www.basic-ssl.com', http: { paths: [{ path: '/', backend: { serviceName: 's1', servicePort: 80 } }] } }]
    }
  })
  t.equal(created.status, 201)

  // curl -vk --resolve www.basic-ssl.com:PORT:127.0.0.1 https://www.basic-ssl.com:PORT/
  const res = await httpsGet(gw.httpsPort, { servername: 'www.basic-ssl.com', host: `www.basic-ssl.com:${gw.httpsPort}` })
  t.equal(res.status, 200)
  t.equal(res.text, '<h1>Welcome to nginx!</h1>', 'the backend\'s page, over TLS')
  t.equal(res.certificate.cn, 'my-ssl', 'with the uploaded certificate')
  t.equal(res.certificate.fingerprint, fingerprint(pem.cert))
  t.equal(res.headers['strict-transport-security'], 'max-age=15724800; includeSubDomains')
  t.equal(origin.seen[0]?.headers.host, `www.basic-ssl.com:${gw.httpsPort}`)
  t.equal(origin.seen[0]?.headers['x-forwarded-proto'], 'https')

  // Plain HTTP to the TLS host is redirected, as ingress-nginx does.
  const plain = await request(`${gw.http}/`, { headers: { host: 'www.basic-ssl.com' } })
  await plain.body.dump()
  t.equal(plain.statusCode, 308)
  t.equal(plain.headers.location, `https://www.basic-ssl.com:${gw.httpsPort}/`)

  // CN=my-ssl does not name www.basic-ssl.com: served anyway (curl -k), and said so.
  const ing = (await gw.api('GET', '/apis/extensions/v1beta1/namespaces/default/ingresses/basic-ssl')).body
  const condition = ing.status.conditions.find((c: any) => c.type === 'CertificatesValid')
  t.equal(condition?.reason, 'HostNotCovered')
  t.match(condition?.message, /secret default\/my-https \(CN=my-ssl\) does not cover www\.basic-ssl\.com \(it names my-ssl\)/)
  const read = (await gw.api('GET', `${SECRETS}/my-https`)).body
  t.equal(read.status.certificate.subject, 'CN=my-ssl')
  const covered = read.status.conditions.find((c: any) => c.type === 'HostsCovered')
  t.equal(covered?.status, 'False')
  t.match(covered?.message, /does not cover www\.basic-ssl\.com \(ingress default\/basic-ssl\)/)
})

t.test('HTTP/2 through ALPN, and HTTP/1.1 for clients that offer only that', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'h2')
  const cert = await ec('h2.example.com', ['h2.example.com'])
  await apply(gw, [...backend('h2', [origin]), tlsSecret('h2', cert), ingress('h2', { rules: [['h2.example.com', 'h2']], tls: [{ hosts: ['h2.example.com'], secretName: 'h2' }] })])

  t.equal((await handshake(gw.httpsPort, 'h2.example.com')).alpn, 'h2', 'h2 is preferred when offered')
  const client = h2connect(gw.https, { servername: 'h2.example.com', rejectUnauthorized: false })
  t.teardown(() => { client.close() })
  const exchange = async (headers: Record<string, string>, body?: string): Promise<{ headers: Record<string, unknown>, text: string }> => {
    return await new Promise((resolve, reject) => {
      const stream = client.request(headers, { endStream: body === undefined })
      let responseHeaders: Record<string, unknown> = {}
      let text = ''
      stream.on('response', h => { responseHeaders = h })
      stream.setEncoding('utf8')
      stream.on('data', (c: string) => { text += c })
      stream.on('end', () => resolve({ headers: responseHeaders, text }))
      stream.on('error', reject)
      if (body !== undefined) stream.end(body)
    })
  }
  const got = await exchange({ ':method': 'GET', ':path': '/over-h2?q=1', ':authority': 'h2.example.com' })
  t.equal(got.headers[':status'], 200)
  t.equal(got.headers['strict-transport-security'], 'max-age=15724800; includeSubDomains')
  const seen = JSON.parse(got.text)
  t.equal(seen.url, '/over-h2?q=1')
  t.equal(seen.method, 'GET')
  t.equal(seen.headers.host, 'h2.example.com', 'Host comes from :authority')
  t.same(Object.keys(seen.headers).filter((h: string) => h.startsWith(':')), [], 'no pseudo-header reaches the origin')
  t.equal(seen.headers['x-forwarded-proto'], 'https')

  // An HTTP/2 body need not have a Content-Length.
  const posted = await exchange({ ':method': 'POST', ':path': '/upload', ':authority': 'h2.example.com' }, 'streamed body')
  t.equal(posted.headers[':status'], 200)
  t.equal(JSON.parse(posted.text).body, 'streamed body', 'the body reaches the origin')

  const h1 = await httpsGet(gw.httpsPort, { servername: 'h2.example.com', host: 'h2.example.com', path: '/over-h1' })
  t.equal(h1.status, 200)
  t.equal(h1.certificate.alpn, false, 'node:https offers no ALPN: plain HTTP/1.1')
  t.equal(h1.json.url, '/over-h1')
  const onlyH1 = await handshake(gw.httpsPort, 'h2.example.com', { ALPNProtocols: ['http/1.1'] })
  t.equal(onlyH1.alpn, 'http/1.1', 'a client offering only http/1.1 gets it')
})

t.test('TLS 1.2 and 1.3 only; wrong protocols on either port fail cleanly and the gateway keeps serving', async t => {
  const gw = await startTestGateway(t, { INGRESSD_TLS_HANDSHAKE_TIMEOUT: '300ms' })
  const origin = await startOrigin(t, 'web')
  const cert = await ec('p.example.com', ['p.example.com'])
  await apply(gw, [...backend('web', [origin]), tlsSecret('p', cert), ingress('p', { rules: [['p.example.com', 'web']], tls: [{ hosts: ['p.example.com'], secretName: 'p' }] })])

  const v13 = await handshake(gw.httpsPort, 'p.example.com')
  t.equal(v13.protocol, 'TLSv1.3')
  const v12 = await new Promise<{ protocol: string | null, cipher: string }>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gw.httpsPort, servername: 'p.example.com', rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name })
      socket.end()
    })
    socket.on('error', reject)
  })
  t.equal(v12.protocol, 'TLSv1.2')
  t.ok(TLS_CIPHERS.split(':').includes(v12.cipher), `TLS 1.2 uses a listed cipher (${v12.cipher})`)
  const weakCipher = await handshake(gw.httpsPort, 'p.example.com', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' }).then(() => 'accepted', (err: Error) => err.message)
  t.match(weakCipher, /handshake failure|no shared cipher/i, 'a CBC-only TLS 1.2 client is refused')

  const old = await handshake(gw.httpsPort, 'p.example.com', { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }).then(() => 'accepted', (err: Error) => err.message)
  t.match(old, /protocol version|unsupported protocol/i, 'a TLS 1.1 client is refused')

  // Plain HTTP to the HTTPS port: no HTTP answer, the connection is closed.
  const plain = await new Promise<string>((resolve) => {
    const socket = netConnect(gw.httpsPort, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: p.example.com\r\n\r\n'))
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (c: string) => { data += c })
    socket.on('error', () => {})
    socket.on('close', () => resolve(data))
  })
  t.notMatch(plain, /^HTTP\/1\.1 200/, 'plain HTTP on the HTTPS port gets no page')

  // A TLS ClientHello to the HTTP port: the client's handshake fails ("wrong version number" in curl).
  const tlsToHttp = await handshake(gw.httpPort, 'p.example.com').then(() => 'accepted', (err: Error & { code?: string }) => `${err.code ?? ''} ${err.message}`)
  t.match(tlsToHttp, /wrong version number|ECONNRESET|EPROTO|socket disconnected/i, 'TLS to the HTTP port fails')

  // A client that connects and never sends a ClientHello is cut off after the handshake timeout.
  const started = Date.now()
  await new Promise<void>((resolve) => {
    const socket = netConnect(gw.httpsPort, '127.0.0.1')
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
  const waited = Date.now() - started
  t.ok(waited >= 250 && waited < 3000, `the silent connection was closed after ${waited} ms (timeout 300ms)`)

  const after = await httpsGet(gw.httpsPort, { servername: 'p.example.com', host: 'p.example.com' })
  t.equal(after.status, 200, 'HTTPS still serves')
  const overHttp = await request(`${gw.http}/`, { headers: { host: 'p.example.com' } })
  await overHttp.body.dump()
  t.equal(overHttp.statusCode, 308, 'and so does HTTP')
})

t.test('statuses report expired and non-covering certificates, which are still served', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  const expired = await ec('old.example.com', ['old.example.com'], { notBefore: new Date(Date.now() - 20 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })
  const narrow = await ec('narrow', ['one.example.com'])
  const good = await ec('good', ['good.example.com', '*.good.example.com'])
  await apply(gw, [
    ...backend('web', [origin]),
    tlsSecret('expired', expired),
    tlsSecret('narrow', narrow),
    tlsSecret('good', good),
    ingress('old', { rules: [['old.example.com', 'web']], tls: [{ hosts: ['old.example.com'], secretName: 'expired' }] }),
    ingress('narrow', { rules: [['one.example.com', 'web'], ['two.example.com', 'web']], tls: [{ hosts: ['one.example.com', 'two.example.com'], secretName: 'narrow' }] }),
    ingress('good', { rules: [['good.example.com', 'web']], tls: [{ hosts: ['good.example.com', '*.good.example.com'], secretName: 'good' }] })
  ])
  const conditionOf = async (name: string, type: string): Promise<any> => (await gw.api('GET', `${INGRESSES}/${name}`)).body.status.conditions.find((c: any) => c.type === type)

  const old = await conditionOf('old', 'CertificatesValid')
  t.equal(old?.status, 'False')
  t.equal(old?.reason, 'CertificateExpired')
  t.match(old?.message, /the certificate of secret default\/expired expired at .*; it is served anyway/)
  t.equal((await handshake(gw.httpsPort, 'old.example.com')).fingerprint, fingerprint(expired.cert), 'the expired certificate is served')
  const expiredSecret = (await gw.api('GET', `${SECRETS}/expired`)).body.status.conditions
  t.match(expiredSecret.find((c: any) => c.type === 'CertificateValid'), { status: 'False', reason: 'Expired' })

  const narrowCondition = await conditionOf('narrow', 'CertificatesValid')
  t.equal(narrowCondition?.reason, 'HostNotCovered')
  t.match(narrowCondition?.message, /does not cover two\.example\.com \(it names one\.example\.com\)/)
  t.notMatch(narrowCondition?.message, /does not cover one\.example\.com/)
  t.equal((await handshake(gw.httpsPort, 'two.example.com')).fingerprint, fingerprint(narrow.cert), 'served for the host it does not cover')
  const narrowSecret = (await gw.api('GET', `${SECRETS}/narrow`)).body.status.conditions
  t.match(narrowSecret.find((c: any) => c.type === 'HostsCovered'), { status: 'False', reason: 'HostNotCovered', message: /two\.example\.com \(ingress default\/narrow\)/ })

  t.equal(await conditionOf('good', 'CertificatesValid'), undefined, 'a good certificate adds no condition')
  const goodSecret = (await gw.api('GET', `${SECRETS}/good`)).body.status.conditions
  t.match(goodSecret.find((c: any) => c.type === 'HostsCovered'), { status: 'True', reason: 'AllHostsCovered' })

  // Fixing the certificate clears both reports.
  const wide = await ec('narrow', ['one.example.com', 'two.example.com'])
  t.equal((await gw.api('PUT', `${SECRETS}/narrow`, tlsSecret('narrow', wide))).status, 200)
  t.equal(await conditionOf('narrow', 'CertificatesValid'), undefined)
  const fixed = (await gw.api('GET', `${SECRETS}/narrow`)).body.status.conditions
  t.match(fixed.find((c: any) => c.type === 'HostsCovered'), { status: 'True' })
})

t.test('INGRESSD_DEFAULT_CERT names the default certificate; without it the generated one survives restarts', async t => {
  const gw = await startTestGateway(t, { INGRESSD_DEFAULT_CERT: 'default/fallback' })
  const generated = await handshake(gw.httpsPort)
  t.equal(generated.cn, FAKE_CERTIFICATE_CN, 'until the named Secret exists, the generated certificate')
  t.ok(gw.logs.some(l => l.includes('INGRESSD_DEFAULT_CERT names a Secret that cannot be served')), 'and a warning says why')

  const own = await ec('my default', ['fallback.example.com'])
  t.equal((await gw.api('POST', SECRETS, tlsSecret('fallback', own))).status, 201)
  t.equal((await handshake(gw.httpsPort)).fingerprint, fingerprint(own.cert), 'clients without SNI get the configured certificate')
  t.equal((await handshake(gw.httpsPort, 'unknown.example.com')).fingerprint, fingerprint(own.cert), 'and so do unknown names')
  const status = (await gw.api('GET', `${SECRETS}/fallback`)).body.status.conditions
  t.match(status.find((c: any) => c.type === 'DefaultCertificate'), { status: 'True', reason: 'Configured' })

  const replaced = await ec('my default v2', ['fallback.example.com'])
  t.equal((await gw.api('PUT', `${SECRETS}/fallback`, tlsSecret('fallback', replaced))).status, 200)
  t.equal((await handshake(gw.httpsPort)).fingerprint, fingerprint(replaced.cert), 'replacing it applies to the next handshake')
  t.equal((await gw.api('DELETE', `${SECRETS}/fallback`)).status, 200)
  t.equal((await handshake(gw.httpsPort)).fingerprint, generated.fingerprint, 'deleting it brings back the generated one')

  // The generated certificate is kept in the store: a restart serves the same one.
  const first = await startTestGateway(t, {})
  const before = await handshake(first.httpsPort)
  await first.close()
  const again = await startTestGateway(t, {}, { dir: first.dir })
  t.equal((await handshake(again.httpsPort)).fingerprint, before.fingerprint, 'the same default certificate after a restart')
})

t.test('a certificate of another key type than the default one is still the one served (nodejs/node#54235)', async t => {
  const gw = await startTestGateway(t, { INGRESSD_DEFAULT_CERT: 'default/rsa-default' })
  const origin = await startOrigin(t, 'web')
  const rsaDefault = await generateSelfSigned({ commonName: 'rsa default', keyType: 'rsa' })
  const rsaUser = await generateSelfSigned({ commonName: 'rsa user', dnsNames: ['rsa.example.com'], keyType: 'rsa' })
  const ecUser = await ec('ec user', ['ec.example.com'])
  await apply(gw, [
    ...backend('web', [origin]),
    tlsSecret('rsa-default', rsaDefault),
    tlsSecret('rsa-user', rsaUser),
    tlsSecret('ec-user', ecUser),
    ingress('mixed', { rules: [['rsa.example.com', 'web'], ['ec.example.com', 'web']], tls: [{ hosts: ['rsa.example.com'], secretName: 'rsa-user' }, { hosts: ['ec.example.com'], secretName: 'ec-user' }] })
  ])
  const clients: [string, Record<string, string>][] = [
    ['TLS 1.3', {}],
    ['TLS 1.2', { maxVersion: 'TLSv1.2' }],
    ['TLS 1.3 preferring ECDSA', { sigalgs: 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256:rsa_pkcs1_sha256' }],
    ['TLS 1.3 preferring RSA', { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256:ecdsa_secp256r1_sha256' }]
  ]
  const check = async (defaultFingerprint: string, label: string): Promise<void> => {
    for (const [name, opts] of clients) {
      t.equal((await handshake(gw.httpsPort, 'ec.example.com', opts)).fingerprint, fingerprint(ecUser.cert), `${label}, ${name}: EC certificate for its host`)
      t.equal((await handshake(gw.httpsPort, 'rsa.example.com', opts)).fingerprint, fingerprint(rsaUser.cert), `${label}, ${name}: RSA certificate for its host`)
      t.equal((await handshake(gw.httpsPort, undefined, opts)).fingerprint, defaultFingerprint, `${label}, ${name}: the default without SNI`)
    }
  }
  await check(fingerprint(rsaDefault.cert), 'RSA default')
  t.equal((await gw.api('DELETE', `${SECRETS}/rsa-default`)).status, 200)
  const generated = await handshake(gw.httpsPort)
  t.equal(generated.cn, FAKE_CERTIFICATE_CN)
  await check(generated.fingerprint, 'EC (generated) default')
})

t.test('a WebSocket upgrade works over TLS (HTTP/1.1 on the HTTPS port)', async t => {
  const gw = await startTestGateway(t)
  const upstream = createServer((_req, res) => { res.end('not an upgrade') })
  upstream.on('upgrade', (req, socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-seen-proto: ${String(req.headers['x-forwarded-proto'])}\r\n\r\n`)
    socket.pipe(socket)
  })
  await new Promise<void>(resolve => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { upstream.closeAllConnections(); upstream.close(() => resolve()) }))
  const cert = await ec('ws.example.com', ['ws.example.com'])
  await apply(gw, [...backend('ws', [{ port: (upstream.address() as AddressInfo).port } as Origin]), tlsSecret('ws', cert), ingress('ws', { rules: [['ws.example.com', 'ws']], tls: [{ hosts: ['ws.example.com'], secretName: 'ws' }] })])

  const socket = tlsConnect({ host: '127.0.0.1', port: gw.httpsPort, servername: 'ws.example.com', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
  t.teardown(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  socket.setEncoding('utf8')
  let received = ''
  socket.on('data', (c: string) => { received += c })
  socket.write('GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  const until = async (pattern: RegExp): Promise<void> => { for (let i = 0; i < 100 && !pattern.test(received); i++) await new Promise(resolve => setTimeout(resolve, 20)) }
  await until(/\r\n\r\n/)
  t.match(received, /^HTTP\/1\.1 101 /, 'the upgrade is answered')
  t.match(received, /x-seen-proto: https/i, 'the upstream was told the client came over HTTPS')
  socket.write('ping over tls')
  await until(/ping over tls/)
  t.match(received, /ping over tls/, 'bytes flow both ways through the tunnel')
})
