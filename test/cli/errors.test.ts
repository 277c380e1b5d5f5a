/**
 * How the client verbs fail: a wrong or missing token, a server that is not there, usage
 * mistakes; and --help on every verb.
 */
import { createServer } from 'node:net'
import t from 'tap'
import { CLIENT_VERBS, VERB_USAGE } from '../../src/cli/verbs.js'
import { startTestGateway } from '../helpers/gateway.js'
import { client, run, spawnCli } from './run.js'

const TOKEN = 'cli-test-token-0123456789'

/** A loopback port nothing listens on. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

t.test('the admin token: wrong, missing, and given by flag or environment', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: TOKEN })
  const wrong = await client(gw.admin, 'not-the-token-at-all')('get', 'ing')
  t.same(wrong, { code: 1, stdout: '', stderr: 'Error from server (Unauthorized): the bearer token is wrong [INGRESSD_ERR_UNAUTHORIZED]\n' })

  const missing = await client(gw.admin)('apply', '-f', '-')
  t.equal(missing.code, 1, 'nothing to apply is found before the server is asked')
  const none = await client(gw.admin)('get', 'svc')
  t.equal(none.code, 1)
  t.match(none.stderr, /^Error from server \(Unauthorized\): .+ \(pass --token or set INGRESSD_ADMIN_TOKEN\) \[INGRESSD_ERR_UNAUTHORIZED\]\n$/)

  t.same(await client(gw.admin, TOKEN)('get', 'svc'), { code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' })
  const fromEnv = await run(['expose', 'web', '--to', '127.0.0.1:8080'], { env: { INGRESSD_SERVER: gw.admin, INGRESSD_ADMIN_TOKEN: TOKEN } })
  t.same(fromEnv, { code: 0, stdout: 'service/web exposed\n', stderr: '' })
})

t.test('a server that is not there', async t => {
  const port = await closedPort()
  const server = `http://127.0.0.1:${port}`
  const expected = `error: cannot reach the admin API at ${server} (is ingressd serving?)\n`
  t.same(await run(['get', 'ing', '--server', server]), { code: 1, stdout: '', stderr: expected })
  t.same(await run(['describe', 'ing', 'basic'], { env: { INGRESSD_SERVER: server } }), { code: 1, stdout: '', stderr: expected }, 'INGRESSD_SERVER')
  const child = await spawnCli(['delete', 'svc', 'web'], { env: { INGRESSD_SERVER: `${server}/` } })
  t.same(child, { code: 1, stdout: '', stderr: expected }, 'a real process exits 1 with the one line')
  const bad = await run(['get', 'ing', '--server', 'localhost:8001'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^error: --server must be an http:\/\/ or https:\/\/ URL, not "localhost:8001"\n/)
})

t.test('--help on every verb prints its usage and exits 0', async t => {
  for (const verb of CLIENT_VERBS) {
    for (const flag of ['--help', '-h']) {
      const res = await run([verb, flag])
      t.same(res, { code: 0, stdout: VERB_USAGE[verb], stderr: '' }, `${verb} ${flag}`)
    }
    t.match(VERB_USAGE[verb], new RegExp(`\\nUsage: ingressd ${verb} `), `${verb}'s usage names the verb`)
    t.match(VERB_USAGE[verb], /--server URL/, `${verb}'s usage lists the client flags`)
  }
  const top = await run(['--help'])
  t.equal(top.code, 0)
  for (const verb of CLIENT_VERBS) t.match(top.stdout, new RegExp(`\\n {2}${verb} +\\S`), `ingressd --help lists ${verb}`)
})

t.test('usage mistakes: one error line, a pointer to --help, exit 1', async t => {
  const cases: [string[], RegExp][] = [
    [['get', 'pods'], /^error: the server doesn't have a resource type "pods" \(ingressd serves ingresses \(ing\), services \(svc\), endpoints \(ep\), secrets, ingressclasses\)\nSee 'ingressd get --help' for usage\.\n$/],
    [['describe', 'deployment', 'x'], /^error: the server doesn't have a resource type "deployment"/],
    [['get'], /^error: you must specify the type of resource to get/],
    [['get', 'ing', '-o', 'xml'], /^error: unable to match a printer suitable for the output format "xml", allowed formats are: json,name,wide,yaml\n/],
    [['get', 'ing', '--bogus'], /^error: unknown flag: --bogus\nSee 'ingressd get --help' for usage\.\n$/],
    [['get', 'ing', '-n'], /^error: flag needs an argument: -n/],
    [['apply'], /^error: must specify -f FILE, -f DIR or -f - \(stdin\)\nSee 'ingressd apply --help'/],
    [['delete', 'svc'], /^error: resource\(s\) were provided, but no name was specified/],
    [['create', 'secret', 'docker-registry', 'x'], /^error: ingressd creates secrets of type tls or generic/],
    [['create', 'secret', 'generic', 'x', '--from-literal', 'novalue'], /^error: --from-literal must be KEY=VALUE/],
    [['create', 'secret', 'tls', 'x', '--cert', 'a.crt'], /^error: --cert and --key are both required/],
    [['create', 'deployment', 'x'], /^error: ingressd cannot create "deployment" here/],
    [['expose', 'web'], /^error: --to HOST:PORT is required/],
    [['expose', 'web', '--to', '127.0.0.1:99999'], /^error: --to's port must be a port number from 1 to 65535, not "99999"/],
    [['expose', 'web', '--to', '127.0.0.1:80', '--port', 'http'], /^error: --port must be a port number/]
  ]
  for (const [args, stderr] of cases) {
    const res = await run([...args, '--server', 'http://127.0.0.1:9'])
    t.equal(res.code, 1, args.join(' '))
    t.equal(res.stdout, '')
    t.match(res.stderr, stderr)
  }
  const unknownVerb = await run(['-n', 'team', 'frobnicate'])
  t.equal(unknownVerb.code, 1)
  t.match(unknownVerb.stderr, /^ingressd: unknown command "frobnicate"\n\nUsage: ingressd <command>/)
  const unknownTop = await run(['frobnicate'])
  t.equal(unknownTop.code, 1)
  t.match(unknownTop.stderr, /^ingressd: unknown command "frobnicate"/)
})

t.test('expose: IP addresses get Endpoints, DNS names an ExternalName service', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  t.same(await ingressd('expose', 'api', '--to', '[::1]:9443', '--port', '443'), { code: 0, stdout: 'service/api exposed\n', stderr: '' })
  const svc = (await gw.api('GET', '/api/v1/namespaces/default/services/api')).body
  t.same(svc.spec.ports, [{ port: 443, targetPort: 9443, protocol: 'TCP' }])
  const eps = (await gw.api('GET', '/api/v1/namespaces/default/endpoints/api')).body
  t.same(eps.subsets, [{ addresses: [{ ip: '::1' }], ports: [{ port: 9443, protocol: 'TCP' }] }])
  t.match((await ingressd('get', 'ep', 'api')).stdout, /\napi +\[::1\]:9443 +\d+s\n$/)

  t.same(await ingressd('expose', 'ext', '--to', 'Backend.Example.com', '--target-port', '8443'), { code: 0, stdout: 'service/ext exposed\n', stderr: '' })
  const ext = (await gw.api('GET', '/api/v1/namespaces/default/services/ext')).body
  t.same(ext.spec, { type: 'ExternalName', externalName: 'backend.example.com', ports: [{ port: 80, targetPort: 8443, protocol: 'TCP' }] })
  t.equal((await gw.api('GET', '/api/v1/namespaces/default/endpoints/ext')).status, 404, 'no Endpoints for a DNS name')
  t.match((await ingressd('get', 'svc', 'ext')).stdout, /\next +ExternalName +<none> +backend\.example\.com +80\/TCP +\d+s\n$/)
  const described = await ingressd('describe', 'svc', 'ext')
  t.match(described.stdout, /\nExternal Name: +backend\.example\.com\n/)
  t.match(described.stdout, /\nEndpoints: +backend\.example\.com:8443\n/)

  const invalid = await ingressd('expose', 'Bad_Name', '--to', '127.0.0.1:80')
  t.equal(invalid.code, 1)
  t.match(invalid.stderr, /^Error from server \(Invalid\): .*metadata\.name.* \[INGRESSD_ERR_INVALID\]\n$/)
})
