/**
 * TLS contexts are built lazily, with real handshakes: a certificate's context is built by the
 * first handshake that asks for one of its names, reused by later handshakes and by recompiles
 * that leave its Secret alone, rebuilt when the Secret changes, bounded by an LRU, and a
 * certificate OpenSSL will not load is answered with the default certificate.
 */
import { X509Certificate } from 'node:crypto'
import { createServer, type Server } from 'node:tls'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import type { Ingress } from '../../src/resources/ingress.js'
import type { Secret } from '../../src/resources/secret.js'
import { FAKE_CERTIFICATE_CN } from '../../src/dataplane/default-certificate.js'
import { CertificateCompiler } from '../../src/dataplane/compile-certificates.js'
import { httpsServerOptions } from '../../src/dataplane/https.js'
import type { SniTable } from '../../src/dataplane/sni-table.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { backend, handshake, tlsSecret } from '../helpers/tls.js'
import { sha1SignedLeaf } from '../helpers/weak-certificate.js'
import { connect } from 'node:tls'

const INGRESSES = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const SECRETS = '/api/v1/namespaces/default/secrets'

function ingress (name: string, host: string, secretName: string): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name },
    spec: {
      tls: [{ hosts: [host], secretName }],
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }]
    }
  }
}

async function apply (gw: TestGateway, manifests: unknown[]): Promise<void> {
  const res = await gw.api('POST', '/apply', manifests)
  if (res.status !== 200) throw new Error(`apply failed: ${res.status} ${res.text}`)
}

async function ec (host: string): Promise<{ cert: string, key: string }> {
  return await generateSelfSigned({ commonName: host, dnsNames: [host], keyType: 'ec' })
}

/** Fingerprint and serial number the client saw. */
async function peer (port: number, servername: string): Promise<{ fingerprint: string, serial: string, cn: string | undefined }> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const cert = socket.getPeerCertificate()
      const cn = cert.subject?.CN
      resolve({ fingerprint: cert.fingerprint256, serial: cert.serialNumber, cn: Array.isArray(cn) ? cn.join(',') : cn })
      socket.end()
    })
    socket.on('error', reject)
  })
}

function sniOf (gw: TestGateway): SniTable {
  const table = gw.gateway.reloader.sni
  if (table === undefined) throw new Error('no SNI table')
  return table
}

t.test('a context is built by the first handshake for its name, reused after, and rebuilt when its Secret changes', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  const a = await ec('a.example.com')
  const b = await ec('b.example.com')
  await apply(gw, [...backend('web', [origin]), tlsSecret('a', a), tlsSecret('b', b), ingress('a', 'a.example.com', 'a'), ingress('b', 'b.example.com', 'b')])
  const contexts = sniOf(gw).contexts
  const built = contexts.built
  t.equal(contexts.size, 0, 'the compile built no context for the two Secrets')

  const first = await peer(gw.httpsPort, 'a.example.com')
  t.equal(first.fingerprint, new X509Certificate(a.cert).fingerprint256, 'a.example.com gets its certificate')
  t.equal(contexts.built, built + 1, 'whose context the handshake built')
  t.equal(contexts.size, 1)
  t.notOk(contexts.has('default/b@' + String((await gw.api('GET', `${SECRETS}/b`)).body.metadata.resourceVersion)), 'b\'s is not built: no one asked for b')

  t.equal((await peer(gw.httpsPort, 'A.EXAMPLE.COM')).fingerprint, first.fingerprint)
  await handshake(gw.httpsPort, 'a.example.com', { ALPNProtocols: ['http/1.1'] })
  t.equal(contexts.built, built + 1, 'later handshakes reuse it')
  t.equal((await handshake(gw.httpsPort, 'a.example.com')).alpn, 'h2', 'HTTP/2 is still negotiated through ALPN on the lazily built context')

  // A change that does not touch Secret a: a recompile, the same context.
  const compiles = gw.gateway.reloader.compiles
  const generation = sniOf(gw).generation
  await apply(gw, [ingress('c', 'c.example.com', 'b')])
  t.ok(gw.gateway.reloader.compiles > compiles && sniOf(gw).generation > generation, 'the tables were recompiled')
  t.equal(sniOf(gw).contexts, contexts, 'the new table shares the cache')
  t.equal((await peer(gw.httpsPort, 'a.example.com')).fingerprint, first.fingerprint)
  t.equal(contexts.built, built + 1, 'the recompile kept a\'s context')

  // Secret a replaced: the new certificate, from a new context.
  const oldVersion = `default/a@${String((await gw.api('GET', `${SECRETS}/a`)).body.metadata.resourceVersion)}`
  t.ok(contexts.has(oldVersion))
  const a2 = await ec('a.example.com')
  t.equal((await gw.api('PUT', `${SECRETS}/a`, tlsSecret('a', a2))).status, 200)
  t.notOk(contexts.has(oldVersion), 'the old version\'s context was dropped by the compile')
  const after = await peer(gw.httpsPort, 'a.example.com')
  const expected = new X509Certificate(a2.cert)
  t.equal(after.fingerprint, expected.fingerprint256, 'the new certificate is served')
  t.equal(after.serial, expected.serialNumber, 'its serial number too')
  t.not(after.serial, first.serial)
  t.equal(contexts.built, built + 2, 'built by that handshake')

  // Secret a deleted: the default certificate, and no context left for a.
  t.equal((await gw.api('DELETE', `${SECRETS}/a`)).status, 200)
  t.equal((await peer(gw.httpsPort, 'a.example.com')).cn, FAKE_CERTIFICATE_CN)
  t.equal(contexts.size, 0, 'a deleted Secret\'s context goes')
})

t.test('a certificate OpenSSL refuses: the default certificate, a warning, the process and other names unaffected', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  const weak = await sha1SignedLeaf('weak.example.com')
  const good = await ec('good.example.com')
  await apply(gw, [...backend('web', [origin]), tlsSecret('weak', weak), tlsSecret('good', good), ingress('weak', 'weak.example.com', 'weak'), ingress('good', 'good.example.com', 'good')])

  const seen = await peer(gw.httpsPort, 'weak.example.com')
  t.equal(seen.cn, FAKE_CERTIFICATE_CN, 'the handshake completes, with the default certificate')
  t.equal((await peer(gw.httpsPort, 'good.example.com')).fingerprint, new X509Certificate(good.cert).fingerprint256, 'another name gets its own')
  t.equal((await peer(gw.httpsPort, 'weak.example.com')).cn, FAKE_CERTIFICATE_CN, 'again')
  const warnings = gw.logs.filter(l => l.includes('could not be loaded into a TLS context'))
  t.equal(warnings.length, 1, 'one warning per Secret version')
  t.match(warnings[0], /default\/weak/)
  t.notMatch(gw.logs.join('\n'), /PRIVATE KEY/, 'no key material in the logs')

  // The next compile (any change) reports it on the ingress.
  await apply(gw, [ingress('other', 'other.example.com', 'good')])
  const status = (await gw.api('GET', `${INGRESSES}/weak`)).body.status
  t.match(status.conditions.find((c: any) => c.type === 'CertificatesValid'), { status: 'False', reason: 'SecretUnusable', message: /OpenSSL refused the certificate or key/ })
  t.equal((await peer(gw.httpsPort, 'weak.example.com')).cn, FAKE_CERTIFICATE_CN)
})

t.test('the cache bound, over real handshakes: the least recently used context is evicted, and served again when asked for', async t => {
  const generated = await generateSelfSigned({ commonName: 'generated', keyType: 'ec' })
  const pems = await Promise.all([0, 1, 2].map(async i => await ec(`h${i}.example.com`)))
  const secrets = pems.map((pem, i) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: `s${i}`, namespace: 'default', resourceVersion: '1' }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(pem.cert).toString('base64') } }) as unknown as Secret)
  const ingresses = pems.map((_pem, i) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: `i${i}`, namespace: 'default', creationTimestamp: '2024-01-01T00:00:00Z' }, spec: { tls: [{ hosts: [`h${i}.example.com`], secretName: `s${i}` }] } }) as unknown as Ingress)
  const compiler = new CertificateCompiler({ generated, contextCacheSize: 2 })
  const reports = ingresses.map(i => ({ namespace: 'default', name: i.metadata.name, served: true, conflicts: [], annotationProblems: [], ignoredAnnotations: [], noEffectAnnotations: [], accessDenials: [], backendProblems: [], pathProblems: [] }))
  const { table } = compiler.compile({ ingresses, secrets, privateKeys: new Map(pems.map((pem, i) => [`default/s${i}`, pem.key])) }, reports, 1)
  const server: Server = createServer(httpsServerOptions({ sni: table }, generated, 5000))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  const port = (server.address() as AddressInfo).port
  const expect = async (i: number): Promise<void> => {
    t.equal((await peer(port, `h${i}.example.com`)).fingerprint, new X509Certificate((pems[i] as { cert: string }).cert).fingerprint256, `h${i} gets its certificate`)
  }
  await expect(0)
  await expect(1)
  await expect(2)
  const cache = compiler.contexts
  t.equal(cache.size, 2, 'two contexts held at most')
  t.equal(cache.evicted, 1)
  t.notOk(cache.has('default/s0@1'), 'the least recently used went')
  await expect(0)
  t.equal(cache.built, 4, 'and is rebuilt when asked for again')
  t.notOk(cache.has('default/s1@1'))
})
