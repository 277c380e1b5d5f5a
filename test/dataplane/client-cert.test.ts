/**
 * Client certificates (auth-tls-*), everything short of the proxy: the annotations, the per-host
 * settings the SNI compile makes of them, the DN strings, and real handshakes against a listener
 * built from the gateway's own httpsServerOptions, whose request handler runs the client
 * certificate step the way the proxy does. That is where Node's behaviour is pinned down: a
 * certificate is asked for only on the hosts that want one, naming their CAs, and verified
 * against those alone; the verdict is readable afterwards; resumed sessions do not skip the
 * check; HTTP/1.1 and HTTP/2 alike.
 */
import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { createSecureServer, type Http2SecureServer } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t from 'tap'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import type { Ingress } from '../../src/resources/ingress.js'
import type { Secret } from '../../src/resources/secret.js'
import { CertificateCompiler, type TlsSnapshot } from '../../src/dataplane/compile-certificates.js'
import { httpsServerOptions } from '../../src/dataplane/https.js'
import { normalizeHost } from '../../src/dataplane/host.js'
import { requestHost } from '../../src/dataplane/http2-compat.js'
import { clientAuthFor, type SniTable } from '../../src/dataplane/sni-table.js'
import {
  CLIENT_CERT_HEADERS, CLIENT_CERT_KEYS, checkClientCertificate, clientCertificateStep, parseClientCa, parseClientCert,
  peerCertificates, rfc2253, settleClientCertificate, tlsWrapOf, type ClientCertSpec
} from '../../src/dataplane/policies/client-cert.js'
import type { PolicyContext } from '../../src/dataplane/policies/policy.js'
import { issueCertificate, sClient, mtlsGet, mtlsH2Get, type IssuedCertificate } from '../helpers/tls.js'

const PREFIX = 'nginx.ingress.kubernetes.io/'

function reader (annotations: Record<string, string>): (name: string) => string | undefined {
  return name => Object.hasOwn(annotations, name) ? annotations[name] : undefined
}

// One PKI for the whole file: Example's CA with two intermediates below it, another CA, and leaves.
const ca = await issueCertificate({ subject: 'O=Example, CN=Example Client CA', ca: true })
const inter = await issueCertificate({ subject: 'O=Example, CN=Example Intermediate', ca: true, issuer: ca })
const inter2 = await issueCertificate({ subject: 'O=Example, CN=Example Second Intermediate', ca: true, issuer: inter })
const otherCa = await issueCertificate({ subject: 'CN=Other CA', ca: true })
const client = await issueCertificate({ subject: 'C=US, O=Example, CN=client', issuer: ca })
const admin = await issueCertificate({ subject: 'O=Example, CN=admin', issuer: ca })
const viaInter = await issueCertificate({ subject: 'CN=via-one', issuer: inter })
const viaInter2 = await issueCertificate({ subject: 'CN=via-two', issuer: inter2 })
const intruder = await issueCertificate({ subject: 'CN=intruder', issuer: otherCa })
const selfSigned = await issueCertificate({ subject: 'CN=self' })
const expired = await issueCertificate({ subject: 'CN=expired', issuer: ca, notBefore: new Date(Date.now() - 10 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })
const serverPem = await generateSelfSigned({ commonName: 'example.com', dnsNames: ['example.com', '*.example.com'], keyType: 'ec' })
const generated = await generateSelfSigned({ commonName: 'default', keyType: 'ec' })

const b64 = (text: string): string => Buffer.from(text).toString('base64')
const as = (pem: IssuedCertificate, chain: IssuedCertificate[] = []): { cert: string, key: string } => ({ cert: pem.cert + chain.map(c => c.cert).join(''), key: pem.key })

interface IngressOptions { hosts: string[], annotations?: Record<string, string>, created?: string, namespace?: string, tls?: boolean }

function ingress (name: string, opts: IngressOptions): Ingress {
  const annotations = Object.fromEntries(Object.entries(opts.annotations ?? {}).map(([k, v]) => [PREFIX + k, v]))
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: opts.namespace ?? 'default', creationTimestamp: opts.created ?? '2024-01-01T00:00:00Z', annotations },
    spec: {
      ...(opts.tls === false ? {} : { tls: [{ hosts: opts.hosts.filter(h => h !== ''), secretName: 'site' }] }),
      rules: opts.hosts.map(host => ({ ...(host === '' ? {} : { host }), http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }))
    }
  } as unknown as Ingress
}

/** A snapshot: the site's TLS Secret, Opaque Secrets holding `cas` under ca.crt, and the ingresses. */
function snapshot (ingresses: Ingress[], cas: Record<string, string> = {}, extra: Secret[] = []): TlsSnapshot {
  const secrets = [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'site', namespace: 'default', resourceVersion: '1' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(serverPem.cert) } } as unknown as Secret,
    ...Object.keys(cas).map(name => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: 'default', resourceVersion: '1' }, type: 'Opaque', data: {} }) as unknown as Secret),
    ...extra
  ]
  const secretValues = new Map(Object.entries(cas).map(([name, pem]) => [`default/${name}`, JSON.stringify({ 'ca.crt': b64(pem) })]))
  return { ingresses, secrets, privateKeys: new Map([['default/site', serverPem.key]]), secretValues }
}

t.test('the annotation and header names', async t => {
  t.same([...CLIENT_CERT_KEYS].sort(), ['auth-tls-error-page', 'auth-tls-match-cn', 'auth-tls-pass-certificate-to-upstream', 'auth-tls-secret', 'auth-tls-verify-client', 'auth-tls-verify-depth'])
  t.same([...CLIENT_CERT_HEADERS], ['ssl-client-verify', 'ssl-client-subject-dn', 'ssl-client-issuer-dn', 'ssl-client-cert'])
})

t.test('parseClientCert: the rules, table-driven', async t => {
  const ok = (extra: Partial<ClientCertSpec> = {}): ClientCertSpec => ({ secret: { namespace: 'shop', name: 'ca' }, verify: 'on', depth: 1, passCertificate: false, ...extra })
  const cases: Array<[string, Record<string, string>, ClientCertSpec | undefined, Array<[string, RegExp]>]> = [
    ['nothing', {}, undefined, []],
    ['a name: the ingress\'s namespace', { 'auth-tls-secret': 'ca' }, ok(), []],
    ['own namespace spelled out', { 'auth-tls-secret': 'shop/ca' }, ok(), []],
    ['every key', { 'auth-tls-secret': 'ca', 'auth-tls-verify-client': 'optional_no_ca', 'auth-tls-verify-depth': '3', 'auth-tls-pass-certificate-to-upstream': 'true', 'auth-tls-error-page': 'https://example.com/cert-help?x=1', 'auth-tls-match-cn': 'CN=(client|admin)$' },
      ok({ verify: 'optional_no_ca', depth: 3, passCertificate: true, errorPage: 'https://example.com/cert-help?x=1', matchCn: 'CN=(client|admin)$' }), []],
    ['off', { 'auth-tls-secret': 'ca', 'auth-tls-verify-client': 'off' }, ok({ verify: 'off' }), []],
    ['optional', { 'auth-tls-secret': 'ca', 'auth-tls-verify-client': 'optional' }, ok({ verify: 'optional' }), []],
    ['depth 0 is ingress-nginx\'s default, 1', { 'auth-tls-secret': 'ca', 'auth-tls-verify-depth': '0' }, ok(), []],
    ['pass-certificate false', { 'auth-tls-secret': 'ca', 'auth-tls-pass-certificate-to-upstream': 'false' }, ok(), []],
    ['an http error page', { 'auth-tls-secret': 'ca', 'auth-tls-error-page': 'http://errors.example.com/495' }, ok({ errorPage: 'http://errors.example.com/495' }), []],
    ['another namespace', { 'auth-tls-secret': 'kube-system/ca' }, undefined, [['auth-tls-secret', /namespace "kube-system".*own namespace \("shop"\).*allow-cross-namespace-resources/]]],
    ['empty secret', { 'auth-tls-secret': '' }, undefined, [['auth-tls-secret', /"name" or "namespace\/name"/]]],
    ['uppercase secret', { 'auth-tls-secret': 'CA' }, undefined, [['auth-tls-secret', /DNS-1123/]]],
    ['three parts', { 'auth-tls-secret': 'a/b/c' }, undefined, [['auth-tls-secret', /"name" or "namespace\/name"/]]],
    ['unknown verify mode', { 'auth-tls-secret': 'ca', 'auth-tls-verify-client': 'required' }, undefined, [['auth-tls-verify-client', /"on", "off", "optional" or "optional_no_ca", got "required"/]]],
    ['verify mode is case-sensitive', { 'auth-tls-secret': 'ca', 'auth-tls-verify-client': 'On' }, undefined, [['auth-tls-verify-client', /got "On"/]]],
    ['depth not an integer', { 'auth-tls-secret': 'ca', 'auth-tls-verify-depth': 'two' }, undefined, [['auth-tls-verify-depth', /positive integer.*got "two"/]]],
    ['negative depth', { 'auth-tls-secret': 'ca', 'auth-tls-verify-depth': '-1' }, undefined, [['auth-tls-verify-depth', /positive integer/]]],
    ['fractional depth', { 'auth-tls-secret': 'ca', 'auth-tls-verify-depth': '1.5' }, undefined, [['auth-tls-verify-depth', /positive integer/]]],
    ['pass-certificate not a boolean', { 'auth-tls-secret': 'ca', 'auth-tls-pass-certificate-to-upstream': 'yes' }, undefined, [['auth-tls-pass-certificate-to-upstream', /"true" or "false", got "yes"/]]],
    ['error page not a URL', { 'auth-tls-secret': 'ca', 'auth-tls-error-page': '/errors/495' }, undefined, [['auth-tls-error-page', /absolute http or https URL/]]],
    ['error page not http(s)', { 'auth-tls-secret': 'ca', 'auth-tls-error-page': 'ftp://example.com/x' }, undefined, [['auth-tls-error-page', /http or https URL/]]],
    ['error page with a space', { 'auth-tls-secret': 'ca', 'auth-tls-error-page': 'https://example.com/a b' }, undefined, [['auth-tls-error-page', /printable ASCII/]]],
    ['match-cn without CN=', { 'auth-tls-secret': 'ca', 'auth-tls-match-cn': 'client' }, undefined, [['auth-tls-match-cn', /starting with "CN="/]]],
    ['match-cn not a regex', { 'auth-tls-secret': 'ca', 'auth-tls-match-cn': 'CN=(client' }, undefined, [['auth-tls-match-cn', /not a valid regular expression/]]],
    ['match-cn unsafe', { 'auth-tls-secret': 'ca', 'auth-tls-match-cn': 'CN=(a+)+$' }, undefined, [['auth-tls-match-cn', /backtrack catastrophically/]]],
    ['malformed values are refused even without a secret', { 'auth-tls-verify-client': 'sometimes' }, undefined, [['auth-tls-verify-client', /got "sometimes"/]]]
  ]
  for (const [name, annotations, spec, problems] of cases) {
    const parsed = parseClientCert(reader(annotations), 'shop')
    t.same(parsed.spec, spec, `${name}: spec`)
    t.equal(parsed.problems.length, problems.length, `${name}: problem count ${JSON.stringify(parsed.problems)}`)
    for (const [i, [key, message]] of problems.entries()) {
      t.equal(parsed.problems[i]?.key, PREFIX + key, `${name}: key`)
      t.match(parsed.problems[i]?.message, message, `${name}: message`)
    }
    t.same(parsed.denials, [], `${name}: nothing denied at parse time`)
  }
})

t.test('rfc2253: nginx\'s $ssl_client_s_dn from Node\'s subject', async t => {
  // Expected values are `openssl x509 -noout -subject -nameopt RFC2253` of certificates with these names.
  t.equal(rfc2253('C=US\nO=Example\nCN=client'), 'CN=client,O=Example,C=US')
  t.equal(rfc2253('C=US\nO=Ex\\"q\\, Inc.\nCN=a + OU=R&D\nemailAddress=a@b.c\nCN=\\ lead'), 'CN=\\ lead,emailAddress=a@b.c,OU=R&D+CN=a,O=Ex\\"q\\, Inc.,C=US')
  t.equal(rfc2253('O=a\\+b=c\nCN=José #1 \\;\\<x\\>\nOU=\\#hash\nOU=trail\\ '), 'OU=trail\\ ,OU=\\#hash,CN=Jos\\C3\\A9 #1 \\;\\<x\\>,O=a\\+b=c')
  t.equal(rfc2253(new X509Certificate(client.cert).subject), 'CN=client,O=Example,C=US')
  t.equal(rfc2253(new X509Certificate(client.cert).issuer), 'CN=Example Client CA,O=Example')
})

t.test('parseClientCa: every certificate of the bundle, or why not', async t => {
  const parsed = parseClientCa(`# the client CAs\n${ca.cert}${inter.cert}`)
  if (!('ca' in parsed)) throw new Error(parsed.problem)
  t.equal(parsed.ca.certificates.length, 2)
  t.equal(parsed.ca.notSelfSigned, 1, 'the intermediate')
  t.notMatch(parsed.ca.pem, /the client CAs/, 'only the certificate blocks are kept')
  t.equal((parseClientCa(ca.cert + inter.cert) as { ca: { digest: string } }).ca.digest, parsed.ca.digest, 'text around the blocks does not change the digest')
  t.match(parseClientCa('not a certificate'), { problem: /no PEM certificate/ })
  t.match(parseClientCa('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), { problem: /certificate 0 is not a valid/ })
})

t.test('the SNI compile: per host, the oldest ingress with auth-tls-secret wins; what cannot be honoured is denied and reported', async t => {
  const compiler = new CertificateCompiler({ generated })
  const ingresses = [
    ingress('newer', { hosts: ['a.example.com', 'b.example.com'], annotations: { 'auth-tls-secret': 'other-ca' }, created: '2024-02-01T00:00:00Z' }),
    ingress('older', { hosts: ['a.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'optional', 'auth-tls-verify-depth': '2' }, created: '2024-01-01T00:00:00Z' }),
    ingress('missing', { hosts: ['m.example.com'], annotations: { 'auth-tls-secret': 'nope' } }),
    ingress('no-ca', { hosts: ['n.example.com'], annotations: { 'auth-tls-secret': 'site' } }),
    ingress('broken', { hosts: ['x.example.com'], annotations: { 'auth-tls-secret': 'garbage' } }),
    ingress('malformed', { hosts: ['y.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'sometimes' } }),
    ingress('open', { hosts: ['open.example.com'] })
  ]
  const result = compiler.compile(snapshot(ingresses, { 'client-ca': ca.cert, 'other-ca': otherCa.cert, garbage: 'no certificate here' }), [], 1)
  const { table } = result
  const a = clientAuthFor(table, 'a.example.com')
  t.equal(a?.ingress, 'default/older', 'the oldest ingress wins the host')
  t.equal(a?.mode, 'optional')
  t.equal(a?.depth, 2)
  t.equal(a?.ca?.certificates[0]?.subject, new X509Certificate(ca.cert).subject, 'its CA')
  t.equal(clientAuthFor(table, 'A.Example.COM.')?.ingress, 'default/older', 'names are normalized')
  t.equal(clientAuthFor(table, 'b.example.com')?.secret, 'default/other-ca', 'the newer one keeps the host it alone names')
  t.equal(clientAuthFor(table, 'open.example.com'), undefined, 'a host without auth-tls has none')
  t.equal(clientAuthFor(table, 'unknown.example.com'), undefined)
  t.match(clientAuthFor(table, 'm.example.com'), { ca: undefined, denied: /Secret default\/nope does not exist; every request to its hosts answers 503/ })
  t.match(clientAuthFor(table, 'n.example.com'), { denied: /Secret default\/site has no key "ca.crt"/ })
  t.match(clientAuthFor(table, 'x.example.com'), { denied: /ca.crt holds no PEM certificate/ })
  t.match(clientAuthFor(table, 'y.example.com'), { denied: /auth-tls-verify-client: expected "on", "off"/ })

  const problems = (id: string): unknown[] => [...(result.ingressProblems.get(id) ?? [])]
  t.match(problems('default/newer'), [{ host: 'a.example.com', reason: 'ClientAuthClaimedByOlderIngress', message: /a.example.com: ingress default\/older already sets the client-certificate settings/ }])
  t.same(problems('default/older'), [])
  t.match(problems('default/missing'), [{ reason: 'ClientCASecretNotFound', secret: 'default/nope', message: /^m.example.com: auth-tls-secret: Secret default\/nope does not exist/ }])
  t.match(problems('default/no-ca'), [{ reason: 'ClientCAUnusable' }])
  t.match(problems('default/broken'), [{ reason: 'ClientCAUnusable' }])
  t.match(problems('default/malformed'), [{ reason: 'ClientAuthInvalid' }])
  const caStatus = result.secretStatuses.find(s => s.name === 'client-ca')?.status as { conditions: unknown[] }
  t.match(caStatus.conditions, [{ type: 'ClientCertificateAuthority', status: 'True', reason: 'InUse', message: /for: a.example.com/ }])
  const garbageStatus = result.secretStatuses.find(s => s.name === 'garbage')?.status as { conditions: unknown[] }
  t.match(garbageStatus.conditions, [{ type: 'ClientCertificateAuthority', status: 'False', reason: 'Unusable' }])

  // Same settings again: the epoch stands. A changed CA, a changed mode: new epoch, new ticket keys.
  const epoch = table.certificateEpoch
  t.equal(compiler.compile(snapshot(ingresses, { 'client-ca': ca.cert, 'other-ca': otherCa.cert, garbage: 'x' }), [], 2).table.certificateEpoch, epoch)
  const changedCa = compiler.compile(snapshot(ingresses, { 'client-ca': otherCa.cert, 'other-ca': otherCa.cert, garbage: 'x' }), [], 3).table
  t.ok(changedCa.certificateEpoch > epoch, 'a new CA for a host renews the epoch')
  const withoutAuth = compiler.compile(snapshot([ingress('open', { hosts: ['open.example.com'] })]), [], 4).table
  t.equal(withoutAuth.clientAuth, undefined, 'no host with client certificates: nothing to look up')
  t.ok(withoutAuth.certificateEpoch > changedCa.certificateEpoch, 'and dropping them renews it too')
})

t.test('the SNI compile: wildcard and host-less rules, exact hosts first; ingresses not served take no part', async t => {
  const compiler = new CertificateCompiler({ generated })
  const ingresses = [
    ingress('wild', { hosts: ['*.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('catch-all', { hosts: [''], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'optional' } }),
    ingress('plain', { hosts: ['plain.example.com', 'open.org'] }),
    ingress('other-class', { hosts: ['other.example.com'], annotations: { 'auth-tls-secret': 'missing' } })
  ]
  const reports = ingresses.map(i => ({ reason: i.metadata.name === 'other-class' ? 'IngressClassNotServed' : undefined })) as never
  const { table } = compiler.compile(snapshot(ingresses, { 'client-ca': ca.cert }), reports, 1)
  t.equal(clientAuthFor(table, 'a.example.com')?.ingress, 'default/wild')
  t.equal(clientAuthFor(table, 'plain.example.com'), undefined, 'an exact host with rules of its own is not the wildcard\'s')
  t.equal(clientAuthFor(table, 'open.org'), undefined, 'nor the host-less rules\'')
  t.equal(clientAuthFor(table, 'a.b.example.com')?.ingress, 'default/catch-all', 'a wildcard covers one label; the rest falls to the host-less rules')
  t.equal(clientAuthFor(table, 'unknown.net')?.ingress, 'default/catch-all')
  t.equal(clientAuthFor(table, 'other.example.com')?.ingress, 'default/wild', 'an ingress of another class claims nothing')
})

t.test('Node\'s private TLSWrap calls this relies on are there, and their absence is loud', async t => {
  t.throws(() => tlsWrapOf({ _handle: {} } as unknown as TLSSocket), /no longer has TLSWrap setVerifyMode\(\)\/verifyError\(\)/)
  t.throws(() => tlsWrapOf({ _handle: null } as unknown as TLSSocket), /no handle/)
  const seen: unknown[] = []
  const { createServer } = await import('node:tls')
  const server = createServer({ cert: serverPem.cert, key: serverPem.key, ca: ca.cert, requestCert: true, rejectUnauthorized: false }, socket => {
    const wrap = tlsWrapOf(socket)
    seen.push({ setVerifyMode: typeof wrap.setVerifyMode, verifyError: wrap.verifyError()?.code ?? null, authorized: socket.authorized, peer: peerCertificates(socket).leaf?.subject })
    socket.end()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const port = (server.address() as AddressInfo).port
  const connectWith = async (pem?: IssuedCertificate): Promise<void> => await new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(pem === undefined ? {} : { cert: pem.cert, key: pem.key }) })
    socket.on('data', () => {})
    socket.on('close', () => resolve())
    socket.on('error', reject)
  })
  await connectWith(client)
  await connectWith(intruder)
  await connectWith()
  t.same(seen, [
    { setVerifyMode: 'function', verifyError: null, authorized: true, peer: 'C=US\nO=Example\nCN=client' },
    { setVerifyMode: 'function', verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', authorized: false, peer: 'CN=intruder' },
    { setVerifyMode: 'function', verifyError: 'UNABLE_TO_GET_ISSUER_CERT', authorized: false, peer: undefined }
  ], 'verifyError() is the verdict Node reports as socket.authorized on requestCert servers')
})

// --- Real handshakes against the gateway's listener options, the step run as the proxy runs it ---

interface Listener {
  port: number
  server: Http2SecureServer
  use: (ingresses: Ingress[], cas?: Record<string, string>) => SniTable
}

/** The HTTPS listener as the gateway builds it, over a table the test sets; each request runs the step and echoes the ssl-client-* headers it would send. */
async function listener (t: { teardown: (fn: () => Promise<void> | void) => void }): Promise<Listener> {
  const compiler = new CertificateCompiler({ generated })
  let table: SniTable | undefined
  let generation = 0
  const source = { get sni () { return table } }
  const step = clientCertificateStep(source)
  const server = createSecureServer(httpsServerOptions(source, generated, 5000), async (req, res) => {
    const host = normalizeHost(requestHost(req.headers)) ?? ''
    const ctx: PolicyContext = { req: req as never, method: req.method, host, path: req.url, query: '', proto: 'https', client: '127.0.0.1', requestId: 'test-request' }
    const answer = await step(ctx)
    if (answer !== undefined) {
      res.writeHead(answer.status, { ...answer.headers, 'x-error-code': answer.code ?? '' })
      res.end(answer.body ?? `${answer.code ?? ''}\n`)
      return
    }
    const headers = Object.fromEntries(CLIENT_CERT_HEADERS.map(h => [h, ctx.upstreamHeaders?.[h] ?? req.headers[h]]))
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ headers, edits: ctx.upstreamHeaders ?? null }))
  })
  server.on('secureConnection', settleClientCertificate)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => { server.close(() => resolve()) }))
  return {
    port: (server.address() as AddressInfo).port,
    server,
    use (ingresses, cas = {}) {
      table = compiler.compile(snapshot(ingresses, cas), [], ++generation).table
      return table
    }
  }
}

/** What the server received and the client saw of one handshake: whether a certificate was asked for, and which certificate reached the server. */
async function handshakeWith (l: Listener, servername: string, pem?: { cert: string, key: string }): Promise<{ receivedBy: string | undefined }> {
  // The server completes its side after the client (TLS 1.3): wait for it, not for the client.
  const received = new Promise<string | undefined>(resolve => {
    l.server.once('secureConnection', (socket: TLSSocket) => { resolve(peerCertificates(socket).leaf?.subject) })
  })
  await new Promise<void>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: l.port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...pem }, () => { socket.end(); resolve() })
    socket.on('error', reject)
  })
  return { receivedBy: await received }
}

const OPENSSL = spawnSync('openssl', ['version']).status === 0

t.test('a certificate is asked for only on the hosts that want one, naming their CAs', async t => {
  const l = await listener(t)
  l.use([
    ingress('secure', { hosts: ['secure.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('open', { hosts: ['open.example.com'] }),
    ingress('off', { hosts: ['off.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'off' } }),
    ingress('denied', { hosts: ['denied.example.com'], annotations: { 'auth-tls-secret': 'missing' } })
  ], { 'client-ca': ca.cert + otherCa.cert })
  t.equal((await handshakeWith(l, 'secure.example.com', client)).receivedBy, 'C=US\nO=Example\nCN=client', 'the host with auth-tls asks, and gets the certificate')
  t.equal((await handshakeWith(l, 'open.example.com', client)).receivedBy, undefined, 'a host without auth-tls never asks: the certificate the client holds is not sent')
  t.equal((await handshakeWith(l, 'unknown.example.com', client)).receivedBy, undefined, 'nor does an unknown name')
  t.equal((await handshakeWith(l, 'off.example.com', client)).receivedBy, undefined, 'nor a host with auth-tls-verify-client off')
  t.equal((await handshakeWith(l, 'denied.example.com', client)).receivedBy, undefined, 'nor a host denied for a missing CA')
  t.equal((await handshakeWith(l, '', client)).receivedBy, undefined, 'nor a client without SNI')

  if (!OPENSSL) {
    t.comment('openssl not installed: the CertificateRequest\'s CA names are not checked')
    return
  }
  const secure = await sClient(l.port, 'secure.example.com')
  t.match(secure, /CertificateRequest/, 'openssl sees a CertificateRequest')
  t.match(secure, /Acceptable client certificate CA names\s+O = Example, CN = Example Client CA\s+CN = Other CA/, 'naming the CAs of the host\'s ca.crt')
  const open = await sClient(l.port, 'open.example.com')
  t.match(open, /ServerHello/, 'the open host\'s handshake went through')
  t.notMatch(open, /CertificateRequest/, 'and had no CertificateRequest')
})

t.test('verification against the host\'s CA alone, by verify mode (HTTP/1.1)', async t => {
  const l = await listener(t)
  l.use([
    ingress('on', { hosts: ['on.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('optional', { hosts: ['optional.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'optional' } }),
    ingress('no-ca', { hosts: ['no-ca.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'optional_no_ca' } }),
    ingress('off', { hosts: ['off.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'off' } }),
    ingress('other', { hosts: ['other.example.com'], annotations: { 'auth-tls-secret': 'other-ca' } }),
    ingress('bare', { hosts: ['bare.example.org'], annotations: { 'auth-tls-secret': 'client-ca' }, tls: false })
  ], { 'client-ca': ca.cert, 'other-ca': otherCa.cert })
  const get = async (host: string, pem?: { cert: string, key: string }): Promise<{ status: number, verify: unknown, code: unknown, text: string }> => {
    const res = await mtlsGet(l.port, { servername: host, host, ...(pem === undefined ? {} : { tls: pem }) })
    return { status: res.status, verify: res.json?.headers?.['ssl-client-verify'], code: res.headers['x-error-code'], text: res.text }
  }
  const cases: Array<[string, { cert: string, key: string } | undefined, number, string | undefined]> = [
    ['on.example.com', client, 200, 'SUCCESS'],
    ['on.example.com', undefined, 400, undefined],
    ['on.example.com', intruder, 400, undefined],
    ['on.example.com', selfSigned, 400, undefined],
    ['on.example.com', expired, 400, undefined],
    ['optional.example.com', undefined, 200, 'NONE'],
    ['optional.example.com', client, 200, 'SUCCESS'],
    ['optional.example.com', intruder, 400, undefined],
    ['no-ca.example.com', undefined, 200, 'NONE'],
    ['no-ca.example.com', client, 200, 'SUCCESS'],
    ['no-ca.example.com', intruder, 200, 'FAILED:unable to verify the first certificate'],
    ['no-ca.example.com', selfSigned, 200, 'FAILED:self-signed certificate'],
    ['no-ca.example.com', expired, 400, undefined],
    ['off.example.com', client, 200, 'NONE'],
    ['other.example.com', intruder, 200, 'SUCCESS'],
    ['other.example.com', client, 400, undefined],
    ['bare.example.org', client, 200, 'SUCCESS'],
    ['bare.example.org', intruder, 400, undefined],
    ['bare.example.org', undefined, 400, undefined]
  ]
  for (const [host, pem, status, verify] of cases) {
    const who = pem === undefined ? 'no certificate' : new X509Certificate(pem.cert).subject.split('\n').pop() as string
    const got = await get(host, pem)
    t.equal(got.status, status, `${host}, ${who}: ${status}`)
    if (status === 200) t.equal(got.verify, verify, `${host}, ${who}: ssl-client-verify ${String(verify)}`)
    else t.equal(got.code, 'INGRESSD_ERR_CLIENT_CERTIFICATE', `${host}, ${who}: the client-certificate error`)
  }
})

t.test('depth, match-cn, the error page and the headers the upstream gets', async t => {
  const l = await listener(t)
  l.use([
    ingress('depth1', { hosts: ['depth1.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('depth2', { hosts: ['depth2.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-depth': '2' } }),
    ingress('bundle', { hosts: ['bundle.example.com'], annotations: { 'auth-tls-secret': 'bundle-ca' } }),
    ingress('cn', { hosts: ['cn.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-match-cn': 'CN=client' } }),
    ingress('cn-optional', { hosts: ['cn-optional.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'optional', 'auth-tls-match-cn': 'CN=(client|admin),' } }),
    ingress('page', { hosts: ['page.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-error-page': 'https://help.example.com/certificates' } }),
    ingress('pass', { hosts: ['pass.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-pass-certificate-to-upstream': 'true' } })
  ], { 'client-ca': ca.cert, 'bundle-ca': ca.cert + inter.cert })
  const get = async (host: string, pem?: { cert: string, key: string }, headers?: Record<string, string>): Promise<Awaited<ReturnType<typeof mtlsGet>>> =>
    await mtlsGet(l.port, { servername: host, host, ...(headers === undefined ? {} : { headers }), ...(pem === undefined ? {} : { tls: pem }) })

  t.equal((await get('depth1.example.com', as(viaInter, [inter]))).status, 200, 'depth 1: one intermediate, sent by the client, is allowed (OpenSSL\'s semantics)')
  const tooDeep = await get('depth1.example.com', as(viaInter2, [inter2, inter]))
  t.equal(tooDeep.status, 400, 'two intermediates are too many for depth 1')
  t.equal((await get('depth2.example.com', as(viaInter2, [inter2, inter]))).status, 200, 'and fine for depth 2')
  t.equal((await get('depth1.example.com', viaInter)).status, 400, 'an intermediate the client does not send and the CA bundle lacks: refused')
  t.equal((await get('bundle.example.com', viaInter)).json?.headers['ssl-client-verify'], 'SUCCESS', 'one in the bundle completes the chain')

  t.equal((await get('cn.example.com', client)).status, 200, 'match-cn matches CN=client,O=Example,C=US')
  const forbidden = await get('cn.example.com', admin)
  t.equal(forbidden.status, 403, 'another CN of the same CA: 403')
  t.equal(forbidden.headers['x-error-code'], 'INGRESSD_ERR_AUTH_FORBIDDEN')
  t.equal((await get('cn-optional.example.com', admin)).status, 200)
  t.equal((await get('cn-optional.example.com')).status, 403, 'no certificate is an empty DN, which does not match (as nginx\'s if)')

  const redirected = await get('page.example.com')
  t.equal(redirected.status, 302, 'the error page instead of the 400')
  t.equal(redirected.headers.location, 'https://help.example.com/certificates')
  t.equal((await get('page.example.com', intruder)).status, 302, 'for a refused certificate too')

  const injected = { 'ssl-client-verify': 'SUCCESS', 'ssl-client-subject-dn': 'CN=admin', 'ssl-client-issuer-dn': 'CN=forged', 'ssl-client-cert': 'forged' }
  const passed = await get('pass.example.com', client, injected)
  t.equal(passed.status, 200)
  t.same(passed.json.edits, {
    'ssl-client-verify': 'SUCCESS',
    'ssl-client-subject-dn': 'CN=client,O=Example,C=US',
    'ssl-client-issuer-dn': 'CN=Example Client CA,O=Example',
    'ssl-client-cert': encodeURIComponent(new X509Certificate(client.cert).toString())
  }, 'every ssl-client-* header is the gateway\'s, whatever the client sent')
  t.equal(decodeURIComponent(passed.json.edits['ssl-client-cert']).replace(/\s/g, ''), client.cert.replace(/\s/g, ''), 'ssl-client-cert is the URL-encoded PEM')
  const withoutPass = await get('cn-optional.example.com', undefined, injected)
  t.equal(withoutPass.status, 403)
  const none = await get('depth2.example.com', client, injected)
  t.same(none.json.edits, { 'ssl-client-verify': 'SUCCESS', 'ssl-client-subject-dn': 'CN=client,O=Example,C=US', 'ssl-client-issuer-dn': 'CN=Example Client CA,O=Example', 'ssl-client-cert': null }, 'without pass-certificate, ssl-client-cert is removed')
})

t.test('HTTP/2: the same verdicts over the session\'s socket', async t => {
  const l = await listener(t)
  l.use([ingress('h2', { hosts: ['h2.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-match-cn': 'CN=client' } })], { 'client-ca': ca.cert })
  const ok = await mtlsH2Get(l.port, { servername: 'h2.example.com', host: 'h2.example.com', tls: client })
  t.equal(ok.status, 200)
  t.equal(ok.json.headers['ssl-client-verify'], 'SUCCESS')
  t.equal(ok.json.headers['ssl-client-subject-dn'], 'CN=client,O=Example,C=US')
  const missing = await mtlsH2Get(l.port, { servername: 'h2.example.com', host: 'h2.example.com' })
  t.equal(missing.status, 400)
  t.equal(missing.headers['x-error-code'], 'INGRESSD_ERR_CLIENT_CERTIFICATE')
  t.equal(missing.headers.connection, undefined, 'no Connection header on HTTP/2')
  t.equal((await mtlsH2Get(l.port, { servername: 'h2.example.com', host: 'h2.example.com', tls: intruder })).status, 400)
  t.equal((await mtlsH2Get(l.port, { servername: 'h2.example.com', host: 'h2.example.com', tls: admin })).status, 403)
})

t.test('a request for a host whose settings its connection was not made with: 421, as nginx', async t => {
  const l = await listener(t)
  l.use([
    ingress('a', { hosts: ['a.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('b', { hosts: ['b.example.com'], annotations: { 'auth-tls-secret': 'other-ca' } }),
    ingress('open', { hosts: ['open.example.com'] })
  ], { 'client-ca': ca.cert, 'other-ca': otherCa.cert })
  const crossed = await mtlsGet(l.port, { servername: 'open.example.com', host: 'a.example.com', tls: client })
  t.equal(crossed.status, 421, 'SNI of a host that asks for nothing, Host of one that needs a certificate')
  t.match(crossed.text, /not opened for a.example.com.*open a new connection/)
  t.equal((await mtlsGet(l.port, { servername: 'b.example.com', host: 'a.example.com', tls: client })).status, 421, 'SNI of a host with another CA')
  t.equal((await mtlsGet(l.port, { servername: 'a.example.com', host: 'open.example.com', tls: client })).status, 200, 'a host without client certificates may be reached over any connection')
  t.equal((await mtlsGet(l.port, { servername: '', host: 'a.example.com', tls: client })).status, 400, 'without SNI no certificate can be asked for: 400')
})

t.test('a host whose CA cannot be used answers 503; tables swap under open connections', async t => {
  const l = await listener(t)
  l.use([ingress('a', { hosts: ['a.example.com'], annotations: { 'auth-tls-secret': 'gone' } })])
  const denied = await mtlsGet(l.port, { servername: 'a.example.com', host: 'a.example.com', tls: client })
  t.equal(denied.status, 503)
  t.equal(denied.headers['x-error-code'], 'INGRESSD_ERR_ACCESS_DENIED_CONFIG')
  l.use([ingress('a', { hosts: ['a.example.com'], annotations: { 'auth-tls-secret': 'gone' } })], { gone: ca.cert })
  t.equal((await mtlsGet(l.port, { servername: 'a.example.com', host: 'a.example.com', tls: client })).status, 200, 'once the Secret exists, the next connection is checked and let through')
})

t.test('a resumed TLS session never skips the certificate check', async t => {
  const l = await listener(t)
  l.use([
    ingress('secure', { hosts: ['secure.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('other', { hosts: ['other.example.com'], annotations: { 'auth-tls-secret': 'other-ca' } }),
    ingress('open', { hosts: ['open.example.com'] })
  ], { 'client-ca': ca.cert, 'other-ca': otherCa.cert })
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    const v = { maxVersion: version }
    const open = await mtlsGet(l.port, { servername: 'open.example.com', host: 'open.example.com', tls: v })
    t.ok(open.session, `${version}: a session from the open host`)
    const sneaked = await mtlsGet(l.port, { servername: 'secure.example.com', host: 'secure.example.com', tls: { ...v, session: open.session } })
    t.ok(sneaked.reused, `${version}: resumed on the secure host (OpenSSL allows it; the SNICallback does not run)`)
    t.equal(sneaked.status, 400, `${version}: but the request is refused: no certificate was ever presented`)

    const verified = await mtlsGet(l.port, { servername: 'secure.example.com', host: 'secure.example.com', tls: { ...v, ...client } })
    t.equal(verified.status, 200)
    const again = await mtlsGet(l.port, { servername: 'secure.example.com', host: 'secure.example.com', tls: { ...v, session: verified.session } })
    t.ok(again.reused, `${version}: the verified session resumes`)
    t.equal(again.status, 200, `${version}: and is let through: its certificate was verified against this CA in a full handshake`)
    t.equal(again.json.headers['ssl-client-subject-dn'], 'CN=client,O=Example,C=US')

    const crossCa = await mtlsGet(l.port, { servername: 'other.example.com', host: 'other.example.com', tls: { ...v, session: verified.session } })
    t.ok(crossCa.reused, `${version}: resumed on a host with another CA`)
    t.equal(crossCa.status, 400, `${version}: refused: the certificate was never verified against that CA`)

    const intruded = await mtlsGet(l.port, { servername: 'secure.example.com', host: 'secure.example.com', tls: { ...v, ...intruder } })
    t.equal(intruded.status, 400)
    const intrudedAgain = await mtlsGet(l.port, { servername: 'secure.example.com', host: 'secure.example.com', tls: { ...v, session: intruded.session } })
    t.equal(intrudedAgain.status, 400, `${version}: a refused certificate stays refused on resumption`)

    const toOpen = await mtlsGet(l.port, { servername: 'open.example.com', host: 'open.example.com', tls: { ...v, session: verified.session } })
    t.equal(toOpen.status, 200, `${version}: a secure host's session on the open host is just a connection`)

    // A handshake that carried no request: its verdict was kept when it completed.
    const admin2 = await issueCertificate({ subject: `CN=quiet ${version}`, issuer: ca })
    const quiet = await new Promise<Buffer>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: l.port, servername: 'secure.example.com', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...v, ...admin2 })
      socket.once('session', (session: Buffer) => { socket.end(); resolve(session) })
      socket.on('data', () => {})
      socket.on('error', reject)
    })
    const later = await mtlsGet(l.port, { servername: 'secure.example.com', host: 'secure.example.com', tls: { ...v, session: quiet } })
    t.ok(later.reused)
    t.equal(later.status, 200, `${version}: a session from a handshake without a request is judged by that handshake's verdict`)
    t.equal(later.json.headers['ssl-client-subject-dn'], `CN=quiet ${version}`)
  }
})

t.test('plain HTTP: fail closed under "on", no headers otherwise; a denied host is denied on both listeners', async t => {
  const compiler = new CertificateCompiler({ generated })
  const { table } = compiler.compile(snapshot([
    ingress('on', { hosts: ['on.example.com'], annotations: { 'auth-tls-secret': 'client-ca' } }),
    ingress('optional', { hosts: ['optional.example.com'], annotations: { 'auth-tls-secret': 'client-ca', 'auth-tls-verify-client': 'optional' } }),
    ingress('denied', { hosts: ['denied.example.com'], annotations: { 'auth-tls-secret': 'missing' } })
  ], { 'client-ca': ca.cert }), [], 1)
  const ctx = (host: string): PolicyContext => ({ req: { httpVersionMajor: 1, headers: {} } as never, method: 'GET', host, path: '/', query: '', proto: 'http', client: '10.0.0.1', requestId: 'r' })
  const on = ctx('on.example.com')
  t.match(checkClientCertificate(clientAuthFor(table, 'on.example.com') as never, on), { status: 400, code: 'INGRESSD_ERR_CLIENT_CERTIFICATE', headers: { connection: 'close' } })
  const optional = ctx('optional.example.com')
  t.equal(checkClientCertificate(clientAuthFor(table, 'optional.example.com') as never, optional), undefined)
  t.same(optional.upstreamHeaders, { 'ssl-client-verify': null, 'ssl-client-subject-dn': null, 'ssl-client-issuer-dn': null, 'ssl-client-cert': null }, 'whatever the client sent is removed')
  t.match(checkClientCertificate(clientAuthFor(table, 'denied.example.com') as never, ctx('denied.example.com')), { status: 503, code: 'INGRESSD_ERR_ACCESS_DENIED_CONFIG' })
  const step = clientCertificateStep({ sni: table })
  t.equal(step(ctx('elsewhere.example.com')), undefined, 'a host without client certificates: nothing')
  t.equal(clientCertificateStep({ sni: undefined })(ctx('on.example.com')), undefined, 'no table yet: nothing')
})
