/**
 * `ingressd kubeconfig` and the client over HTTPS: the kubeconfig it prints drives the real
 * kubectl (every version installed) against a gateway with INGRESSD_ADMIN_TLS=auto, and the
 * ingressd client verbs keep working when the admin API serves TLS.
 */
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { kubeconfigDocument, verificationProblem } from '../../src/cli/kubeconfig.js'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway } from '../helpers/gateway.js'
import { kubectlBinaries, kubectlFor, noKubectlReason } from '../helpers/kubectl.js'
import { run } from './run.js'

const TOKEN = 'kubeconfig-test-token-3b9f27'
const KUBECTLS = kubectlBinaries()
const SERVICES = '/api/v1/namespaces/default/services'
/** Subtests that run kubectl skip, saying why, when none is installed. */
const NEEDS_KUBECTL = { skip: noKubectlReason(KUBECTLS) ?? false }

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingressd-kubeconfig-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Every output of this file, checked for keys by the last test. */
const outputs: string[] = []

t.test('kubeconfig: the CA from /ca.crt, the token, one context; the real kubectl uses it', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_TOKEN: TOKEN })
  t.equal((await gw.api('POST', '/apply', [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } }])).status, 200)
  const out = await run(['kubeconfig', '--server', gw.admin, '--token', TOKEN])
  t.equal(out.code, 0, out.stderr)
  const fingerprint = new X509Certificate(gw.adminCa as string).fingerprint256
  t.match(out.stderr, `CA SHA-256 fingerprint: ${fingerprint}`, 'the fingerprint, to compare with the start-up line')
  t.match(gw.logs.join(''), fingerprint, 'which shows the same one')
  const config = parse(out.stdout)
  t.same(config, {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'ingressd', cluster: { server: gw.admin, 'certificate-authority-data': Buffer.from(gw.adminCa as string).toString('base64') } }],
    users: [{ name: 'ingressd', user: { token: TOKEN } }],
    contexts: [{ name: 'ingressd', context: { cluster: 'ingressd', user: 'ingressd', namespace: 'default' } }],
    'current-context': 'ingressd',
    preferences: {}
  })
  outputs.push(out.stdout, out.stderr)

  await t.test('every kubectl installed reads /healthz and lists services with it', NEEDS_KUBECTL, async t => {
    for (const binary of KUBECTLS) {
      const { version } = binary
      // Each run in a folder of its own: its kubeconfig, HOME and KUBECACHEDIR.
      const kubectl = kubectlFor(t, binary, gw.admin, { kubeconfig: out.stdout })
      const wrong = kubectlFor(t, binary, gw.admin, { kubeconfig: out.stdout.replace(TOKEN, 'a-wrong-token-0123456789') })
      const health = await kubectl.run(['get', '--raw', '/healthz'])
      t.equal(health.code, 0, `kubectl ${version} get --raw /healthz: ${health.stderr}`)
      t.same(JSON.parse(health.stdout || '{}'), { status: 'ok' }, `kubectl ${version}: /healthz`)
      const services = await kubectl.run(['get', '--raw', SERVICES])
      t.equal(services.code, 0, `kubectl ${version} get --raw ${SERVICES}: ${services.stderr}`)
      const list = JSON.parse(services.stdout || '{}') as { kind?: string, items?: Array<{ metadata: { name: string } }> }
      t.equal(list.kind, 'ServiceList', `kubectl ${version}: the list, with the token accepted`)
      t.same(list.items?.map(i => i.metadata.name), ['web'])
      const refused = await wrong.run(['get', '--raw', SERVICES])
      t.not(refused.code, 0, `kubectl ${version}: a wrong token is refused`)
      t.match(refused.stderr, /Unauthorized/)
      outputs.push(health.stdout, health.stderr, services.stderr, refused.stderr)
    }
  })
  outputs.push(...gw.logs)
})

t.test('kubeconfig without a token (loopback only): a user name alone, so that kubectl does not prompt for one', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto' })
  const out = await run(['kubeconfig', '--server', gw.admin, '--name', 'edge'], { env: {} })
  t.equal(out.code, 0, out.stderr)
  const config = parse(out.stdout)
  t.same(config.users, [{ name: 'edge', user: { username: 'edge' } }])
  t.equal(config['current-context'], 'edge')
  await t.test('every kubectl installed lists services with it, without prompting', NEEDS_KUBECTL, async t => {
    for (const binary of KUBECTLS) {
      // No input: a kubectl that stopped to prompt would fail at once on the closed stdin.
      const services = await kubectlFor(t, binary, gw.admin, { kubeconfig: out.stdout }).run(['get', '--raw', SERVICES], { input: '' })
      t.equal(services.code, 0, `kubectl ${binary.version}: ${services.stderr}`)
      t.equal(JSON.parse(services.stdout || '{}').kind, 'ServiceList')
    }
  })
  outputs.push(out.stdout, out.stderr, ...gw.logs)
})

t.test('kubeconfig: --certificate-authority embeds the file without asking; --insecure-skip-tls-verify embeds none', async t => {
  const dir = tempDir(t)
  const ca = await generateSelfSigned({ commonName: 'elsewhere CA', isCA: true, keyType: 'ec' })
  writeFileSync(join(dir, 'ca.pem'), ca.cert)
  // Port 9 on 127.0.0.1 answers nothing: no request is made.
  const withCa = await run(['kubeconfig', '--server', 'https://127.0.0.1:9', '--certificate-authority', join(dir, 'ca.pem')], { env: { INGRESSD_ADMIN_TOKEN: TOKEN } })
  t.equal(withCa.code, 0, withCa.stderr)
  const config = parse(withCa.stdout)
  t.equal(Buffer.from(config.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), ca.cert)
  t.same(config.users[0].user, { token: TOKEN }, 'the token from INGRESSD_ADMIN_TOKEN')
  const fromEnv = await run(['kubeconfig'], { env: { INGRESSD_SERVER: 'https://127.0.0.1:9', INGRESSD_ADMIN_CA: join(dir, 'ca.pem') } })
  t.equal(fromEnv.code, 0, fromEnv.stderr)
  t.equal(parse(fromEnv.stdout).clusters[0].cluster.server, 'https://127.0.0.1:9', 'INGRESSD_SERVER')

  const insecure = await run(['kubeconfig', '--server', 'https://127.0.0.1:9', '--insecure-skip-tls-verify'], { env: {} })
  t.equal(insecure.code, 0, insecure.stderr)
  t.same(parse(insecure.stdout).clusters[0].cluster, { server: 'https://127.0.0.1:9', 'insecure-skip-tls-verify': true })

  const both = await run(['kubeconfig', '--server', 'https://127.0.0.1:9', '--insecure-skip-tls-verify', '--certificate-authority', join(dir, 'ca.pem')], { env: {} })
  t.equal(both.code, 1)
  t.match(both.stderr, /contradict/)
  const missing = await run(['kubeconfig', '--certificate-authority', join(dir, 'nope.pem')], { env: {} })
  t.equal(missing.code, 1)
  t.match(missing.stderr, /--certificate-authority=.*nope\.pem cannot be read \(ENOENT\)/)
  const unreachable = await run(['kubeconfig', '--server', 'https://127.0.0.1:9'], { env: {} })
  t.equal(unreachable.code, 1)
  t.match(unreachable.stderr, /cannot reach the admin API at https:\/\/127\.0\.0\.1:9/)
})

t.test('kubeconfig against plain HTTP warns that kubectl would not send the token', async t => {
  const gw = await startTestGateway(t)
  const out = await run(['kubeconfig', '--server', gw.admin, '--token', TOKEN], { env: {} })
  t.equal(out.code, 0, out.stderr)
  t.match(out.stderr, /kubectl sends no token to an http:\/\/ server/)
  t.same(parse(out.stdout).clusters[0].cluster, { server: gw.admin })
  const help = await run(['kubeconfig', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: ingressd kubeconfig/)
  t.match((await run(['--help'])).stdout, /kubeconfig +print a kubeconfig/)
})

t.test('kubeconfig against a file certificate: its chain\'s CA, or a note when it publishes none', async t => {
  const dir = tempDir(t)
  const ca = await generateSelfSigned({ commonName: 'Files Root', isCA: true, keyType: 'ec' })
  const leaf = await generateSelfSigned({ commonName: 'admin', keyType: 'ec', ipAddresses: ['127.0.0.1'], issuer: ca })
  writeFileSync(join(dir, 'chain.pem'), leaf.cert + ca.cert)
  writeFileSync(join(dir, 'leaf.pem'), leaf.cert)
  writeFileSync(join(dir, 'key.pem'), leaf.key)
  const chained = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: join(dir, 'chain.pem'), INGRESSD_ADMIN_TLS_KEY: join(dir, 'key.pem') })
  const out = await run(['kubeconfig', '--server', chained.admin], { env: {} })
  t.equal(out.code, 0, out.stderr)
  t.equal(Buffer.from(parse(out.stdout).clusters[0].cluster['certificate-authority-data'], 'base64').toString().trim(), ca.cert.trim())
  const lone = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'file', INGRESSD_ADMIN_TLS_CERT: join(dir, 'leaf.pem'), INGRESSD_ADMIN_TLS_KEY: join(dir, 'key.pem') })
  const none = await run(['kubeconfig', '--server', lone.admin], { env: {} })
  t.equal(none.code, 0, none.stderr)
  t.match(none.stderr, /publishes no CA at \/ca\.crt.*pass --certificate-authority FILE/)
  t.same(parse(none.stdout).clusters[0].cluster, { server: lone.admin }, 'the system\'s CAs then')
  outputs.push(out.stdout, out.stderr, none.stdout, none.stderr, ...chained.logs, ...lone.logs)
})

t.test('verificationProblem: what kubectl would refuse, said before it does', async t => {
  const ca = await generateSelfSigned({ commonName: 'CA', isCA: true, keyType: 'ec' })
  const other = await generateSelfSigned({ commonName: 'Other CA', isCA: true, keyType: 'ec' })
  const leaf = new X509Certificate((await generateSelfSigned({ commonName: 'admin', keyType: 'ec', dnsNames: ['admin.example'], ipAddresses: ['127.0.0.1'], issuer: ca })).cert)
  t.equal(verificationProblem([leaf], new X509Certificate(ca.cert), '127.0.0.1'), undefined)
  t.equal(verificationProblem([leaf], new X509Certificate(ca.cert), 'admin.example'), undefined)
  t.match(verificationProblem([leaf], new X509Certificate(ca.cert), 'gw.example') ?? '', /does not name gw\.example .*INGRESSD_ADMIN_ALLOWED_HOSTS/)
  t.match(verificationProblem([leaf], new X509Certificate(other.cert), '127.0.0.1') ?? '', /did not issue the certificate the admin API presents/)
  t.same(kubeconfigDocument({ name: 'x', server: 'https://h:1', insecure: true }).clusters, [{ name: 'x', cluster: { server: 'https://h:1', 'insecure-skip-tls-verify': true } }])
})

t.test('the client verbs over HTTPS: with the CA, with INGRESSD_ADMIN_INSECURE, and the hints when neither', async t => {
  const dir = tempDir(t)
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TLS: 'auto', INGRESSD_ADMIN_TOKEN: TOKEN })
  await gw.api('POST', '/apply', [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } }])
  writeFileSync(join(dir, 'ca.pem'), gw.adminCa as string)
  const get = async (args: string[], env: Record<string, string> = {}): ReturnType<typeof run> => {
    const result = await run(['get', 'svc', ...args], { env: { INGRESSD_SERVER: gw.admin, INGRESSD_ADMIN_TOKEN: TOKEN, ...env } })
    outputs.push(result.stdout, result.stderr)
    return result
  }
  const untrusted = await get([])
  t.equal(untrusted.code, 1)
  t.match(untrusted.stderr, /cannot reach the admin API at https:.*its certificate is not trusted: UNABLE_TO_VERIFY_LEAF_SIGNATURE; pass --certificate-authority FILE or set INGRESSD_ADMIN_CA/)
  const withFlag = await get(['--certificate-authority', join(dir, 'ca.pem')])
  t.equal(withFlag.code, 0, withFlag.stderr)
  t.match(withFlag.stdout, /^NAME +TYPE/)
  t.match(withFlag.stdout, /\nweb +ClusterIP/)
  t.equal((await get([], { INGRESSD_ADMIN_CA: join(dir, 'ca.pem') })).code, 0, 'INGRESSD_ADMIN_CA')
  t.equal((await get([], { INGRESSD_ADMIN_INSECURE: '1' })).code, 0, 'INGRESSD_ADMIN_INSECURE=1')
  t.equal((await get(['--insecure-skip-tls-verify'])).code, 0, '--insecure-skip-tls-verify')
  const before = await run(['--certificate-authority', join(dir, 'ca.pem'), 'get', 'svc', 'web', '-o', 'name'], { env: { INGRESSD_SERVER: gw.admin, INGRESSD_ADMIN_TOKEN: TOKEN } })
  t.equal(before.code, 0, `client flags before the verb: ${before.stderr}`)
  t.equal(before.stdout, 'service/web\n')
  const plain = await get(['--server', gw.admin.replace('https:', 'http:')])
  t.equal(plain.code, 1)
  t.match(plain.stderr, /if the admin API serves HTTPS \(INGRESSD_ADMIN_TLS\), use --server https:\/\//)
  writeFileSync(join(dir, 'junk.pem'), 'junk')
  const junk = await get(['--certificate-authority', join(dir, 'junk.pem')])
  t.equal(junk.code, 1)
  t.match(junk.stderr, /holds no PEM certificate/)
  outputs.push(...gw.logs)
})

t.test('no private key in any output or log line of this file', async t => {
  t.ok(outputs.length > 10)
  t.notOk(outputs.some(o => o.includes('PRIVATE KEY')))
})
