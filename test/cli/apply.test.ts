/**
 * `apply`, `get` and `delete` against a real gateway: directories and stdin, all or nothing,
 * YAML that round-trips, namespaces, and errors on one line.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { client, run, spawnCli } from './run.js'

const service = (name: string, targetPort = 8080): string => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  ports:
  - port: 80
    targetPort: ${targetPort}
`

const ingress = (name: string, host: string, svc = 'web'): string => `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
spec:
  rules:
  - host: ${host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: ${svc}
            port:
              number: 80
`

t.test('apply -f DIR applies every manifest file in it, sorted by name, in one request', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const dir = join(gw.dir, 'manifests')
  mkdirSync(join(dir, 'nested'), { recursive: true })
  writeFileSync(join(dir, '30-ingress.yml'), ingress('web', 'web.example.com'))
  writeFileSync(join(dir, '10-service.yaml'), service('web'))
  writeFileSync(join(dir, '20-endpoints.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ port: 8080 }] }] }, null, '\t'))
  writeFileSync(join(dir, 'README.md'), '# not a manifest\n')
  writeFileSync(join(dir, 'nested', '40-other.yaml'), service('other'))

  const res = await ingressd('apply', '-f', dir)
  t.same(res, { code: 0, stdout: 'service/web created\nendpoints/web created\ningress.networking.k8s.io/web created\n', stderr: '' })
  t.equal((await gw.api('GET', '/api/v1/namespaces/default/services/other')).status, 404, 'subdirectories are not read')

  const again = await ingressd('apply', '-f', join(dir, '10-service.yaml'), '-f', join(dir, '30-ingress.yml'))
  t.same(again.stdout, 'service/web unchanged\ningress.networking.k8s.io/web unchanged\n', 'several -f in one apply')

  const changed = await ingressd('apply', '-f', '-', '-n', 'default')
  t.equal(changed.code, 1, 'an empty stdin is no manifest')
  t.equal(changed.stderr, 'error: no objects passed to apply\n')

  const missing = await ingressd('apply', '-f', join(dir, 'nope.yaml'))
  t.same(missing, { code: 1, stdout: '', stderr: `error: the path "${join(dir, 'nope.yaml')}" does not exist\n` })
})

t.test('apply -f - reads stdin', async t => {
  const gw = await startTestGateway(t)
  const child = await spawnCli(['apply', '-f', '-', '--server', gw.admin], { stdin: `${service('web')}---\n${ingress('web', 'web.example.com')}` })
  t.same(child, { code: 0, stdout: 'service/web created\ningress.networking.k8s.io/web created\n', stderr: '' }, 'a real process, stdin piped in')

  const inProcess = await run(['apply', '-f', '-', '--server', gw.admin], { stdin: service('web', 9090) })
  t.same(inProcess, { code: 0, stdout: 'service/web configured\n', stderr: '' })

  const failed = await spawnCli(['apply', '-f', '-', '--server', gw.admin], { stdin: 'kind: [\n' })
  t.equal(failed.code, 1)
  t.match(failed.stderr, /^error: error parsing STDIN: document 1: .+\n$/)
})

t.test('get -o yaml round-trips through apply as unchanged', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const { cert, key } = await generateSelfSigned({ commonName: 'web.example.com', dnsNames: ['web.example.com'] })
  writeFileSync(join(gw.dir, 'tls.crt'), cert)
  writeFileSync(join(gw.dir, 'tls.key'), key)
  t.equal((await ingressd('apply', '-f', '-')).code, 1)
  t.equal((await run(['apply', '-f', '-', '--server', gw.admin], { stdin: `${service('web')}---\n${ingress('web', 'web.example.com')}` })).code, 0)
  t.equal((await ingressd('create', 'secret', 'tls', 'web-tls', '--cert', join(gw.dir, 'tls.crt'), '--key', join(gw.dir, 'tls.key'))).code, 0)

  const one = await ingressd('get', 'ing', 'web', '-o', 'yaml')
  t.equal(one.code, 0)
  const obj = parse(one.stdout) as { kind: string, metadata: { name: string }, status: { loadBalancer: unknown } }
  t.equal(obj.kind, 'Ingress', 'one object by name is the object itself')
  t.equal(obj.metadata.name, 'web')
  t.ok(obj.status.loadBalancer, 'as the API returned it, status included')
  const file = join(gw.dir, 'web.yaml')
  writeFileSync(file, one.stdout)
  t.same(await ingressd('apply', '-f', file), { code: 0, stdout: 'ingress.networking.k8s.io/web unchanged\n', stderr: '' })

  const many = await ingressd('get', 'svc,ing,secret', '-o', 'yaml')
  const list = parse(many.stdout) as { kind: string, items: { kind: string }[] }
  t.equal(list.kind, 'List', 'several objects are a List')
  t.same(list.items.map(i => i.kind), ['Service', 'Ingress', 'Secret'])
  const back = await run(['apply', '-f', '-', '--server', gw.admin], { stdin: many.stdout })
  t.same(back, { code: 0, stdout: 'service/web unchanged\ningress.networking.k8s.io/web unchanged\nsecret/web-tls unchanged\n', stderr: '' }, 'the key stays stored though reads never return it')

  const json = await ingressd('get', 'service', 'web', '-o', 'json')
  t.equal((JSON.parse(json.stdout) as { spec: { ports: { targetPort: number }[] } }).spec.ports[0]?.targetPort, 8080)
  t.match(json.stdout, /^\{\n {4}"apiVersion": "v1",\n/, 'indented as kubectl indents JSON')
  t.same(await ingressd('get', 'svc,ing', '-o', 'name'), { code: 0, stdout: 'service/web\ningress.networking.k8s.io/web\n', stderr: '' })
})

t.test('namespaces: -n writes and reads one, -A lists every one with a NAMESPACE column', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  t.equal((await run(['apply', '-f', '-', '--server', gw.admin], { stdin: ingress('web', 'web.example.com') })).code, 0)
  const teamB = await run(['apply', '-f', '-', '-n', 'team-b', '--server', gw.admin], { stdin: ingress('shop', 'shop.example.com') })
  t.same(teamB, { code: 0, stdout: 'ingress.networking.k8s.io/shop created\n', stderr: '' })

  const all = await ingressd('get', 'ingresses', '-A')
  t.equal(all.stdout.replace(/ \d+s\n/g, ' 1s\n'), [
    'NAMESPACE   NAME   CLASS    HOSTS              ADDRESS     PORTS   AGE',
    'default     web    <none>   web.example.com    127.0.0.1   80      1s',
    'team-b      shop   <none>   shop.example.com   127.0.0.1   80      1s',
    ''
  ].join('\n'))

  t.match((await ingressd('get', 'ing')).stdout, /^NAME +CLASS.*\nweb +<none> +web\.example\.com .*\n$/, 'default namespace only')
  t.match((await ingressd('get', 'ing', '-n', 'team-b')).stdout, /\nshop +<none>/)
  t.same(await ingressd('get', 'ing', '-n', 'nothing-here'), { code: 0, stdout: '', stderr: 'No resources found in nothing-here namespace.\n' })
  t.same(await ingressd('get', 'svc', '-A'), { code: 0, stdout: '', stderr: 'No resources found\n' })
  t.same(await ingressd('get', 'ingressclass'), { code: 0, stdout: '', stderr: 'No resources found\n' })

  const byName = await ingressd('get', 'ing', 'web', '-A')
  t.equal(byName.code, 1)
  t.match(byName.stderr, /^error: a resource cannot be retrieved by name across all namespaces\n/)

  const mismatch = await run(['apply', '-f', '-', '-n', 'other', '--server', gw.admin], { stdin: ingress('x', 'x.example.com').replace('name: x', 'name: x\n  namespace: team-b') })
  t.equal(mismatch.code, 1)
  t.match(mismatch.stderr, /^error: the namespace from the provided object "team-b" does not match the namespace "other"/)

  t.same(await ingressd('delete', 'ing', '--all', '-A'), { code: 0, stdout: 'ingress.networking.k8s.io "web" deleted\ningress.networking.k8s.io "shop" deleted\n', stderr: '' })
})

t.test('an invalid manifest: one line naming the field, exit 1, and nothing stored', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const file = join(gw.dir, 'bundle.yaml')
  writeFileSync(file, `${service('web')}---\n${ingress('bad', 'Bad_Host.example.com')}`)
  const res = await ingressd('apply', '-f', file)
  t.equal(res.code, 1)
  t.equal(res.stdout, '')
  const lines = res.stderr.split('\n')
  t.equal(lines.length, 2, 'one line')
  t.match(lines[0], /^Error from server \(Invalid\): error when applying ".*bundle\.yaml": Ingress\.networking\.k8s\.io "bad" is invalid: spec\.rules\[0\]\.host: .+ \[INGRESSD_ERR_INVALID\]$/)
  t.equal((await gw.api('GET', '/api/v1/namespaces/default/services')).body.items.length, 0, 'the valid service in the same bundle is not stored either')
  t.same(await ingressd('get', 'svc'), { code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' })

  const unknownKind = await run(['apply', '-f', '-', '--server', gw.admin], { stdin: 'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\n' })
  t.equal(unknownKind.code, 1)
  t.match(unknownKind.stderr, /^Error from server \(BadRequest\): error when applying "STDIN": no kind "Pod" is registered for version "v1".* \[INGRESSD_ERR_UNKNOWN_KIND\]\n$/)

  const badTls = await run(['create', 'secret', 'tls', 'broken', '--cert', file, '--key', file, '--server', gw.admin])
  t.equal(badTls.code, 1)
  t.match(badTls.stderr, /^Error from server \(Invalid\): Secret "broken" is invalid: data\[tls\.crt\]: .* \[INGRESSD_ERR_TLS_INVALID\]\n$/)
})

t.test('delete -f deletes what the manifests name, and reports what it could not', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const file = join(gw.dir, 'app.yaml')
  writeFileSync(file, `${service('web')}---\n${ingress('web', 'web.example.com')}`)
  t.equal((await ingressd('apply', '-f', file)).code, 0)
  t.same(await ingressd('delete', '-f', file), { code: 0, stdout: 'service "web" deleted\ningress.networking.k8s.io "web" deleted\n', stderr: '' })
  const again = await ingressd('delete', '-f', file)
  t.equal(again.code, 1)
  t.equal(again.stderr.split('\n').filter(l => l.startsWith('Error from server (NotFound)')).length, 2, 'each missing object is reported, and the rest still tried')
})

t.test('apply -f URL fetches the manifest; get -l filters by label', async t => {
  const gw = await startTestGateway(t)
  const ingressd = client(gw.admin)
  const labelled = service('web').replace('name: web', 'name: web\n  labels:\n    app: web')
  const origin = await startOrigin(t, 'manifests', (req, res) => {
    if (req.url === '/web.yaml') {
      res.writeHead(200, { 'content-type': 'application/yaml' })
      res.end(`${labelled}---\n${service('db')}`)
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  const url = `http://127.0.0.1:${origin.port}`
  t.same(await ingressd('apply', '-f', `${url}/web.yaml`), { code: 0, stdout: 'service/web created\nservice/db created\n', stderr: '' })
  const missing = await ingressd('apply', '-f', `${url}/nope.yaml`)
  t.same(missing, { code: 1, stdout: '', stderr: `error: unable to read URL "${url}/nope.yaml", server reported status code 404\n` })
  t.match((await ingressd('get', 'svc', '-l', 'app=web', '-o', 'name')).stdout, /^service\/web\n$/)
  t.same(await ingressd('get', 'svc', '-l', 'app=nothing'), { code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' })
})
