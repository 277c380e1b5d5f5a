/**
 * Client certificates end to end: a real gateway, the CA in an Opaque Secret as
 * `kubectl create secret generic ca-secret --from-file=ca.crt` makes it, real origins behind,
 * certificates generated at test time, HTTP/1.1 and HTTP/2 clients presenting them.
 */
import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { request } from 'undici'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { backend, caSecret, issueCertificate, mtlsGet, mtlsH2Get, sClient, tlsSecret } from '../helpers/tls.js'

const INGRESSES = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'
const PREFIX = 'nginx.ingress.kubernetes.io/'

const ca = await issueCertificate({ subject: 'O=Example, CN=Example Client CA', ca: true })
const otherCa = await issueCertificate({ subject: 'CN=Other CA', ca: true })
const client = await issueCertificate({ subject: 'C=US, O=Example, CN=client', issuer: ca })
const intruder = await issueCertificate({ subject: 'CN=intruder', issuer: otherCa })
const site = await generateSelfSigned({ commonName: 'example.com', dnsNames: ['*.example.com'], keyType: 'ec' })

function ingress (name: string, host: string, annotations: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [PREFIX + k, v])) },
    spec: {
      tls: [{ hosts: [host], secretName: 'site' }],
      rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }]
    }
  }
}

async function apply (gw: TestGateway, manifests: unknown[]): Promise<void> {
  const res = await gw.api('POST', '/apply', manifests)
  if (res.status !== 200) throw new Error(`apply failed: ${res.status} ${res.text}`)
}

async function gateway (t: Parameters<typeof startTestGateway>[0], ingresses: Array<Record<string, unknown>>, secrets: unknown[] = [caSecret('client-ca', ca.cert)]): Promise<TestGateway> {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  await apply(gw, [...backend('web', [origin]), tlsSecret('site', site), ...secrets, ...ingresses])
  return gw
}

const OPENSSL = spawnSync('openssl', ['version']).status === 0

t.test('the gateway asks for a certificate only on the host with auth-tls, naming the CA of its Secret', { skip: OPENSSL ? false : 'openssl is not installed' }, async t => {
  const gw = await gateway(t, [ingress('secure', 'secure.example.com', { 'auth-tls-secret': 'client-ca' }), ingress('open', 'open.example.com')])
  const secure = await sClient(gw.httpsPort, 'secure.example.com')
  t.match(secure, /CertificateRequest/)
  t.match(secure, /Acceptable client certificate CA names\s+O = Example, CN = Example Client CA/)
  t.notMatch(await sClient(gw.httpsPort, 'open.example.com'), /CertificateRequest/, 'the open host never asks')
})

t.test('statuses: the CA Secret says which hosts it verifies; a missing one is reported on the ingress', async t => {
  const gw = await gateway(t, [ingress('secure', 'secure.example.com', { 'auth-tls-secret': 'client-ca' }), ingress('lost', 'lost.example.com', { 'auth-tls-secret': 'nowhere' })])
  const secret = (await gw.api('GET', '/api/v1/namespaces/default/secrets/client-ca')).body
  t.match(secret.status.conditions, [{ type: 'ClientCertificateAuthority', status: 'True', reason: 'InUse', message: /secure.example.com/ }])
  t.same(Object.keys(secret.data), ['ca.crt'], 'an Opaque Secret\'s keys are listed')
  t.match(Buffer.from(secret.data['ca.crt'], 'base64').toString(), /^\*+$/, 'its values are write-only: a placeholder of their size')
  const lost = (await gw.api('GET', `${INGRESSES}/lost`)).body
  t.match(lost.status.conditions.find((c: any) => c.type === 'CertificatesValid'), { status: 'False', reason: 'ClientCASecretNotFound', message: /lost.example.com: auth-tls-secret: Secret default\/nowhere does not exist/ })
  const refused = await gw.api('POST', INGRESSES, ingress('elsewhere', 'elsewhere.example.com', { 'auth-tls-secret': 'kube-system/ca' }))
  t.equal(refused.status, 422, 'another namespace\'s Secret is refused on write')
  t.match(refused.text, /auth-tls-secret/)
})

t.test('a session from before a host asked for certificates is not resumed once it does', async t => {
  const gw = await gateway(t, [ingress('late', 'late.example.com')])
  const before = await mtlsGet(gw.httpsPort, { servername: 'late.example.com', host: 'late.example.com' })
  t.ok(before.session)
  t.equal((await gw.api('PUT', `${INGRESSES}/late`, ingress('late', 'late.example.com', { 'auth-tls-secret': 'client-ca' }))).status, 200)
  const after = await mtlsGet(gw.httpsPort, { servername: 'late.example.com', host: 'late.example.com', tls: { session: before.session, ...client } })
  t.notOk(after.reused, 'new ticket keys: a full handshake, which asks for the certificate')
})

t.test('requests: verdicts, the headers the origin gets, over HTTP/1.1 and HTTP/2', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'web')
  await apply(gw, [
    ...backend('web', [origin]),
    tlsSecret('site', site),
    caSecret('client-ca', ca.cert),
    ingress('secure', 'secure.example.com', { 'auth-tls-secret': 'client-ca', 'auth-tls-pass-certificate-to-upstream': 'true' }),
    ingress('open', 'open.example.com'),
    ingress('lost', 'lost.example.com', { 'auth-tls-secret': 'nowhere' })
  ])
  const injected = { 'ssl-client-verify': 'SUCCESS', 'ssl-client-subject-dn': 'CN=admin', 'ssl-client-issuer-dn': 'CN=forged', 'ssl-client-cert': 'forged' }

  const ok = await mtlsGet(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com', headers: injected, tls: client })
  t.equal(ok.status, 200)
  t.equal(ok.json.headers['ssl-client-verify'], 'SUCCESS')
  t.equal(ok.json.headers['ssl-client-subject-dn'], 'CN=client,O=Example,C=US')
  t.equal(ok.json.headers['ssl-client-issuer-dn'], 'CN=Example Client CA,O=Example')
  t.equal(ok.json.headers['ssl-client-cert'], encodeURIComponent(new X509Certificate(client.cert).toString()))

  const none = await mtlsGet(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com' })
  t.equal(none.status, 400)
  t.match(none.text, /code: INGRESSD_ERR_CLIENT_CERTIFICATE/)
  t.equal(none.headers.connection, 'close', 'the connection closes after the 400, as nginx closes it')
  t.equal((await mtlsGet(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com', tls: intruder })).status, 400)

  const h2 = await mtlsH2Get(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com', tls: client })
  t.equal(h2.status, 200)
  t.equal(h2.json.headers['ssl-client-verify'], 'SUCCESS')
  t.equal((await mtlsH2Get(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com' })).status, 400)

  const open = await mtlsGet(gw.httpsPort, { servername: 'open.example.com', host: 'open.example.com', headers: injected })
  t.equal(open.status, 200)
  for (const name of Object.keys(injected)) t.equal(open.json.headers[name], undefined, `${name} from a client never reaches an upstream`)
  const openHttp = await request(`${gw.http}/`, { headers: { host: 'open.example.com', ...injected } })
  t.equal(openHttp.statusCode, 308, 'plain HTTP to a TLS host is redirected first')
  await openHttp.body.dump()

  const crossed = await mtlsGet(gw.httpsPort, { servername: 'open.example.com', host: 'secure.example.com', tls: client })
  t.equal(crossed.status, 421, 'a connection made for a host that asks nothing cannot be used for one that needs a certificate')

  const lost = await mtlsGet(gw.httpsPort, { servername: 'lost.example.com', host: 'lost.example.com', tls: client })
  t.equal(lost.status, 503, 'a missing CA Secret denies the host')
  t.match(lost.text, /INGRESSD_ERR_ACCESS_DENIED_CONFIG/)
})

t.test('plain HTTP to a host that needs a certificate and is not redirected: 400', async t => {
  const gw = await gateway(t, [ingress('secure', 'secure.example.com', { 'auth-tls-secret': 'client-ca', 'ssl-redirect': 'false' })])
  const res = await request(`${gw.http}/`, { headers: { host: 'secure.example.com' } })
  t.equal(res.statusCode, 400)
  t.match(await res.body.text(), /INGRESSD_ERR_CLIENT_CERTIFICATE/)
})

t.test('a session resumed across hosts is refused; one resumed on its own host goes through', async t => {
  const gw = await gateway(t, [ingress('secure', 'secure.example.com', { 'auth-tls-secret': 'client-ca' }), ingress('open', 'open.example.com')])
  const open = await mtlsGet(gw.httpsPort, { servername: 'open.example.com', host: 'open.example.com' })
  const sneaked = await mtlsGet(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com', tls: { session: open.session } })
  t.ok(sneaked.reused)
  t.equal(sneaked.status, 400)
  const verified = await mtlsGet(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com', tls: client })
  const again = await mtlsGet(gw.httpsPort, { servername: 'secure.example.com', host: 'secure.example.com', tls: { session: verified.session } })
  t.ok(again.reused)
  t.equal(again.status, 200)
  t.equal(again.json.headers['ssl-client-verify'], 'SUCCESS')
})
