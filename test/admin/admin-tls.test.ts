/**
 * The admin API over HTTPS (INGRESSD_ADMIN_TLS, src/admin/admin-tls.ts): the `auto` CA kept in the
 * store and the certificate it issues, `file` pairs, GET /ca.crt, the token over TLS, both process
 * models, and no private key in any log line.
 */
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type ConnectionOptions } from 'node:tls'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { adminCertificateNames, ensureAdminCertificate } from '../../src/admin/admin-tls.js'
import { loadConfig } from '../../src/config/config.js'
import { IngressdError } from '../../src/errors.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { openDatabase } from '../../src/store/database.js'
import { GatewayState } from '../../src/store/gateway-state.js'
import { runCli, startChildGateway } from '../helpers/child-gateway.js'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'

const TOKEN = 'admin-tls-test-token-8c2e41'
const SERVICES = '/api/v1/namespaces/default/services'
const DAY = 86_400_000

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-admin-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A GET as a client that trusts nothing yet (how `ingressd kubeconfig` and curl -k fetch /ca.crt). */
async function getUnverified (url: string, headers: Record<string, string> = {}): Promise<{ status: number, type: string, text: string }> {
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } })
  try {
    const res = await request(url, { headers, dispatcher })
    return { status: res.statusCode, type: String(res.headers['content-type']), text: await res.body.text() }
  } finally {
    await dispatcher.close()
  }
}

/** One TLS handshake verified with `ca`: resolves with the presented leaf, rejects with the verification error. */
async function verifiedHandshake (port: number, ca: string, opts: ConnectionOptions = {}): Promise<X509Certificate> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, ...opts }, () => {
      const leaf = new X509Certificate(socket.getPeerCertificate().raw)
      socket.end()
      resolve(leaf)
    })
    socket.on('error', reject)
  })
}

/** The CA an unverified client fetches from the gateway's /ca.crt. */
async function fetchCa (t: Test, gw: TestGateway): Promise<string> {
  const res = await getUnverified(`${gw.admin}/ca.crt`)
  t.equal(res.status, 200, '/ca.crt answers without a token')
  t.match(res.type, /^text\/plain/)
  return res.text
}

function startupLine (gw: TestGateway): Record<string, unknown> {
  const line = gw.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => typeof l.msg === 'string' && l.msg.startsWith('ingressd serving'))
  return line ?? {}
}

/** Every log line and output of this file, checked for keys by the last test. */
const outputs: string[] = []

t.test('auto: TLS that verifies with /ca.crt for 127.0.0.1, localhost, ::1 and the host name', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_LOG_LEVEL: 'trace' })
  t.match(gw.admin, /^https:\/\/127\.0\.0\.1:\d+$/)
  const caPem = await fetchCa(t, gw)
  const ca = new X509Certificate(caPem)
  t.ok(ca.ca, 'a CA certificate')
  t.match(ca.subject, /ingressd admin CA/)
  t.notMatch(caPem, /PRIVATE KEY/, 'the certificate only')
  t.equal(caPem, gw.adminCa, 'the CA the gateway reports')

  const port = gw.gateway.addresses.admin.port
  const byAddress = await verifiedHandshake(port, caPem)
  t.ok(byAddress.checkIssued(ca), 'issued by the CA')
  const byName = await verifiedHandshake(port, caPem, { servername: 'localhost' })
  t.equal(byName.fingerprint256, byAddress.fingerprint256)
  t.equal(byAddress.checkIP('127.0.0.1'), '127.0.0.1')
  t.equal(byAddress.checkIP('::1'), '::1')
  t.equal(byAddress.checkHost('localhost'), 'localhost')
  t.equal(byAddress.checkHost(hostname().toLowerCase()), hostname().toLowerCase(), 'the machine\'s host name')
  t.notOk(byAddress.ca, 'the serving certificate is no CA')
  await t.rejects(verifiedHandshake(port, caPem, { servername: 'elsewhere.example' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'a name it was not issued for is refused')
  await t.rejects(request(`${gw.admin}/healthz`), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }, 'the system\'s CAs do not trust it')

  const health = await gw.api('GET', '/healthz')
  t.equal(health.status, 200, 'the helper verifies with the CA')
  t.same(health.body, { status: 'ok' })
  t.equal((await gw.api('GET', SERVICES)).status, 200)

  const line = startupLine(gw)
  t.match(String(line.msg), new RegExp(`admin https://127\\.0\\.0\\.1:${port} \\(CA SHA-256 ${ca.fingerprint256}\\)`), 'the start-up line says https:// and shows the CA')
  t.equal(line.adminCa, ca.fingerprint256)
  t.equal(line.adminUrl, gw.admin)
  t.equal(line.adminTls, 'auto')
  outputs.push(...gw.logs)
})

t.test('auto: a restart on the same store keeps the CA and the certificate; new names reissue the certificate only', async t => {
  const dir = tempDir(t)
  const first = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto' }, { dir })
  const ca = await fetchCa(t, first)
  const leaf = await verifiedHandshake(first.gateway.addresses.admin.port, ca)
  outputs.push(...first.logs)
  await first.close()

  const second = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto' }, { dir })
  t.equal(await fetchCa(t, second), ca, 'the same CA after a restart')
  t.equal((await verifiedHandshake(second.gateway.addresses.admin.port, ca)).fingerprint256, leaf.fingerprint256, 'and the same certificate')
  t.notOk(second.logs.some(l => l.includes('generated a CA')), 'nothing generated')
  outputs.push(...second.logs)
  await second.close()

  const third = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_ALLOWED_HOSTS: 'admin.example.test,10.9.8.7' }, { dir })
  t.equal(await fetchCa(t, third), ca, 'the CA stays when the names change')
  const renamed = await verifiedHandshake(third.gateway.addresses.admin.port, ca, { servername: 'admin.example.test' })
  t.not(renamed.fingerprint256, leaf.fingerprint256, 'a new certificate')
  t.equal(renamed.checkIP('10.9.8.7'), '10.9.8.7', 'an allowed host that is an address is an IP name')
  t.ok(third.logs.some(l => l.includes('issued the admin API')), 'the reissue is logged')
  outputs.push(...third.logs)
})

t.test('auto: renewed at start-up 30 days before the end; a renewed CA reissues the certificate', async t => {
  const db = openDatabase(':memory:')
  t.teardown(() => db.close())
  const state = new GatewayState(db)
  const names = { dns: ['localhost'], ip: ['127.0.0.1', '::1'] }
  const start = new Date('2030-01-01T00:00:00Z')
  const a = await ensureAdminCertificate(state, names, start)
  const b = await ensureAdminCertificate(state, names, new Date(start.getTime() + 700 * DAY))
  t.equal(b.serverOptions.cert, a.serverOptions.cert, 'kept while more than 30 days are left')
  const c = await ensureAdminCertificate(state, names, new Date(start.getTime() + 800 * DAY))
  t.not(c.serverOptions.cert, a.serverOptions.cert, 'renewed within 30 days of its end')
  t.equal(c.caPem, a.caPem, 'by the same CA')
  const d = await ensureAdminCertificate(state, names, new Date(start.getTime() + 3630 * DAY))
  t.not(d.caPem, a.caPem, 'the CA itself is renewed within 30 days of its end')
  t.ok(new X509Certificate(d.serverOptions.cert).checkIssued(new X509Certificate(d.caPem as string)), 'and the certificate reissued by it')
  t.ok(Date.parse(new X509Certificate(c.serverOptions.cert).validTo) <= Date.parse(new X509Certificate(a.caPem as string).validTo), 'a certificate never outlives its CA')
  t.same(JSON.parse(JSON.stringify(d)), { mode: 'auto', caFingerprint: d.caFingerprint }, 'serialized (as a logger would), it shows no key')
})

t.test('adminCertificateNames: the listen address, every interface when it listens on all, allowed hosts', async t => {
  const nics = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }, { address: '::1', family: 'IPv6', internal: true }],
    eth0: [{ address: '192.0.2.10', family: 'IPv4', internal: false }, { address: 'fe80::1', family: 'IPv6', internal: false }, { address: '2001:db8:0:0:0:0:0:5', family: 'IPv6', internal: false }]
  } as unknown as Parameters<typeof adminCertificateNames>[2]
  const config = (env: Record<string, string>): ReturnType<typeof loadConfig> => loadConfig({}, { INGRESSD_ADMIN_TOKEN: TOKEN, ...env })
  t.same(adminCertificateNames(config({}), 'Gateway-1', nics), { dns: ['gateway-1', 'localhost'], ip: ['127.0.0.1', '::1'] }, 'the default loopback address')
  t.same(adminCertificateNames(config({ INGRESSD_ADMIN_ADDR: '0.0.0.0:8001' }), 'gw', nics), { dns: ['gw', 'localhost'], ip: ['127.0.0.1', '192.0.2.10', '2001:db8::5', '::1'] }, 'all interfaces: each address, not link-local ones')
  t.same(adminCertificateNames(config({ INGRESSD_ADMIN_ADDR: '[2001:db8::7]:8001', INGRESSD_ADMIN_ALLOWED_HOSTS: 'Admin.Example.com.,[::ffff:a00:1],bad_name!' }), 'gw', nics), { dns: ['admin.example.com', 'gw', 'localhost'], ip: ['127.0.0.1', '2001:db8::7', '::1', '::ffff:a00:1'] })
})

t.test('the token is still required over TLS; /ca.crt and the probes are not', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_TOKEN: TOKEN })
  const ca = await fetchCa(t, gw)
  const dispatcher = new Agent({ connect: { ca } })
  t.teardown(() => dispatcher.close())
  const get = async (path: string, headers: Record<string, string> = {}): Promise<number> => {
    const res = await request(`${gw.admin}${path}`, { headers, dispatcher })
    await res.body.dump()
    return res.statusCode
  }
  t.equal(await get(SERVICES), 401, 'no token: 401, TLS or not')
  t.equal(await get(SERVICES, { authorization: 'Bearer a-wrong-token-123456' }), 401)
  t.equal(await get(SERVICES, { authorization: `Bearer ${TOKEN}` }), 200)
  t.equal(await get('/ca.crt'), 200)
  t.equal(await get('/healthz'), 200)
  t.equal(await get('/readyz'), 200)
  outputs.push(...gw.logs)
})

t.test('off: plain HTTP, and /ca.crt is a 404 Status', async t => {
  const gw = await startTestGateway(t)
  t.match(gw.admin, /^http:\/\//)
  const res = await gw.api('GET', '/ca.crt')
  t.equal(res.status, 404)
  t.equal(res.body?.kind, 'Status')
  t.equal(res.body?.details?.errorCode, 'INGRESSD_ERR_NOT_FOUND')
  t.match(startupLine(gw).msg, /admin http:\/\/127\.0\.0\.1:\d+, http/)
  t.notOk('adminCa' in startupLine(gw))
})

t.test('file: serves the pair and publishes the top of its chain, or no CA for a lone leaf', async t => {
  const dir = tempDir(t)
  const ca = await generateSelfSigned({ commonName: 'Test Admin Root', isCA: true, keyType: 'ec' })
  const leaf = await generateSelfSigned({ commonName: 'admin.test', keyType: 'ec', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], issuer: ca })
  writeFileSync(join(dir, 'chain.pem'), leaf.cert + ca.cert)
  writeFileSync(join(dir, 'leaf.pem'), leaf.cert)
  writeFileSync(join(dir, 'key.pem'), leaf.key, { mode: 0o600 })

  const chained = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: join(dir, 'chain.pem'), INGRESSD_ADMIN_TLS_KEY: join(dir, 'key.pem') })
  const published = await fetchCa(t, chained)
  t.equal(new X509Certificate(published).fingerprint256, new X509Certificate(ca.cert).fingerprint256, 'the chain\'s last certificate')
  const presented = await verifiedHandshake(chained.gateway.addresses.admin.port, published, { servername: 'localhost' })
  t.equal(presented.fingerprint256, new X509Certificate(leaf.cert).fingerprint256, 'the configured certificate')
  t.equal(startupLine(chained).adminTls, 'file')
  outputs.push(...chained.logs)

  const lone = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: join(dir, 'leaf.pem'), INGRESSD_ADMIN_TLS_KEY: join(dir, 'key.pem') })
  const res = await getUnverified(`${lone.admin}/ca.crt`)
  t.equal(res.status, 404, 'a lone leaf from another issuer: no CA to publish')
  t.match(res.text, /publishes no CA/)
  t.equal((await verifiedHandshake(lone.gateway.addresses.admin.port, ca.cert)).fingerprint256, presented.fingerprint256, 'it still verifies with its issuer')
  outputs.push(...lone.logs)
})

t.test('file: a bad pair stops start-up with INGRESSD_ERR_CONFIG naming the setting', async t => {
  const dir = tempDir(t)
  const one = await generateSelfSigned({ commonName: 'one', keyType: 'ec', ipAddresses: ['127.0.0.1'] })
  const other = await generateSelfSigned({ commonName: 'other', keyType: 'ec' })
  writeFileSync(join(dir, 'cert.pem'), one.cert)
  writeFileSync(join(dir, 'other-key.pem'), other.key)
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n')
  const env = (cert: string, key: string): Record<string, string> => ({ INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: join(dir, cert), INGRESSD_ADMIN_TLS_KEY: join(dir, key) })
  const cases: [Record<string, string>, RegExp][] = [
    [env('cert.pem', 'other-key.pem'), /INGRESSD_ADMIN_TLS_KEY=.*other-key\.pem cannot serve the admin API: the key file does not match the certificate/],
    [env('garbage.pem', 'other-key.pem'), /INGRESSD_ADMIN_TLS_CERT=.*garbage\.pem cannot serve the admin API/],
    [env('missing.pem', 'other-key.pem'), /INGRESSD_ADMIN_TLS_CERT=.*missing\.pem cannot be read \(ENOENT\)/],
    [env('cert.pem', 'missing-key.pem'), /INGRESSD_ADMIN_TLS_KEY=.*missing-key\.pem cannot be read \(ENOENT\)/]
  ]
  for (const [settings, message] of cases) {
    const err = await startTestGateway(t, settings).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof IngressdError, `refused: ${JSON.stringify(settings)}`)
    t.equal((err as IngressdError).code, 'INGRESSD_ERR_CONFIG')
    t.match((err as Error).message, message)
    t.notMatch((err as Error).message, /PRIVATE KEY/, 'the message quotes no key')
  }

  // The real command: exit 2 with the setting named, before anything listens.
  const run = runCli(['serve'], { ...env('cert.pem', 'other-key.pem'), INGRESSD_DB: join(dir, 'cli.db'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0' })
  t.equal((await run.exited).code, 2)
  t.match(run.stderr(), /INGRESSD_ADMIN_TLS_KEY=.* \(INGRESSD_ERR_CONFIG\)/)
  t.notOk(run.lines.some(l => l.includes('ingressd serving')), 'nothing served')
})

t.test('workers: the cluster primary serves the admin API over TLS too', async t => {
  const dir = tempDir(t)
  const gw = await startChildGateway({ INGRESSD_WORKERS: '2', INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_TOKEN: TOKEN, INGRESSD_LOG_LEVEL: 'debug', INGRESSD_DB: join(dir, 'db.sqlite'), INGRESSD_ADMIN_ADDR: '127.0.0.1:0', INGRESSD_HTTP_ADDR: '127.0.0.1:0', INGRESSD_HTTPS_ADDR: '127.0.0.1:0', INGRESSD_SHUTDOWN_GRACE: '2s' })
  t.teardown(() => { if (gw.child.exitCode === null) gw.child.kill('SIGKILL') })
  t.match(gw.admin, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.match(String(gw.started.msg), /admin https:\/\/.*\(CA SHA-256 [0-9A-F:]+\), .*2 data-plane workers/)
  const ca = (await getUnverified(`${gw.admin}/ca.crt`)).text
  t.equal(new X509Certificate(ca).fingerprint256, gw.started.adminCa)
  const dispatcher = new Agent({ connect: { ca } })
  t.teardown(() => dispatcher.close())
  const ready = await request(`${gw.admin}/readyz`, { dispatcher })
  t.equal(ready.statusCode, 200)
  t.equal((await ready.body.json() as { workers?: number }).workers, 2)
  const list = await request(`${gw.admin}${SERVICES}`, { dispatcher, headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(list.statusCode, 200)
  await list.body.dump()
  gw.child.kill('SIGTERM')
  t.equal((await gw.exited).code, 0)
  outputs.push(...gw.lines, gw.stderr())
})

t.test('no private key in any log line or output of this file', async t => {
  t.ok(outputs.length > 20, `${outputs.length} lines gathered`)
  t.notOk(outputs.some(l => l.includes('PRIVATE KEY')), 'no PEM private key')
  t.notOk(outputs.some(l => l.includes(TOKEN)), 'nor the token')
})
