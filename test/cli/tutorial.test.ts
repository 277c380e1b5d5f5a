/**
 * The seed tutorial, kubectl line for kubectl line, with the `ingressd` command against a real
 * gateway and a real origin: apply ingress-basic.yaml, expose the service, describe and get the
 * ingress, create the TLS secret and describe it, apply ingress-ssl.yaml, get svc, apply again
 * (unchanged), delete.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { generateSelfSigned } from '../../src/resources/tls-material.js'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { client, run } from './run.js'

const INGRESS_BASIC = `apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: basic
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  rules:
  - host: www.basic1.com
    http:
      paths:
      - path: /path1
        backend:
          serviceName: service1
          servicePort: 80
      - path: /path2
        backend:
          serviceName: service2
          servicePort: 80
  - host: www.basic2.com
    http:
      paths:
      - backend:
          serviceName: service2
          servicePort: 80
`

const INGRESS_SSL = `apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: ingress-ssl
spec:
  tls:
  - hosts:
    - www.basic-ssl.com
    secretName: my-https
  rules:
  - host: www.basic-ssl.com
    http:
      paths:
      - path: /
        backend:
          serviceName: service1
          servicePort: 80
`

/** Lines of a PEM key's body and its base64: what a leaked key would show. */
function keyMarkers (keyPem: string): string[] {
  const body = keyPem.split('\n').filter(l => l.length >= 32 && !l.startsWith('-----'))
  const b64 = Buffer.from(keyPem, 'utf8').toString('base64')
  return [...body, b64.slice(100, 160), keyPem.replace(/-----[^-]+-----|\s/g, '').slice(200, 260)]
}

t.test('the seed tutorial, with ingressd in place of kubectl', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'nginx')
  const ingressd = client(gw.admin)
  const basicFile = join(gw.dir, 'ingress-basic.yaml')
  const sslFile = join(gw.dir, 'ingress-ssl.yaml')
  writeFileSync(basicFile, INGRESS_BASIC)
  writeFileSync(sslFile, INGRESS_SSL)

  // kubectl apply -f ingress-basic.yaml
  const applied = await ingressd('apply', '-f', basicFile)
  t.same(applied, { code: 0, stdout: 'ingress.extensions/basic created\n', stderr: '' })

  // kubectl expose deploy deployment-nginx --name service1
  const exposed = await ingressd('expose', 'deploy', 'deployment-nginx', '--name', 'service1', '--to', `127.0.0.1:${origin.port}`)
  t.same(exposed, { code: 0, stdout: 'service/service1 exposed\n', stderr: '' })

  await t.test('the route works through the gateway', async t => {
    const res = await request(`${gw.http}/path1`, { headers: { host: 'www.basic1.com' } })
    t.equal(res.statusCode, 200)
    t.equal((await res.body.json() as { url: string }).url, '/', 'rewrite-target: /')
  })

  await t.test('kubectl describe ingress basic', async t => {
    const res = await ingressd('describe', 'ingress', 'basic')
    t.equal(res.code, 0)
    t.equal(res.stderr, '')
    const missing = '(<error: endpoints "service2" not found>)'
    const expected = [
      'Name:             basic',
      'Labels:           <none>',
      'Namespace:        default',
      'Address:          127.0.0.1',
      'Ingress Class:    <none>',
      'Default backend:  <default>',
      'Rules:',
      '  Host            Path  Backends',
      '  ----            ----  --------',
      '  www.basic1.com  ',
      `                  /path1   service1:80 (127.0.0.1:${origin.port})`,
      `                  /path2   service2:80 ${missing}`,
      '  www.basic2.com  ',
      `                     service2:80 ${missing}`,
      'Annotations:      nginx.ingress.kubernetes.io/rewrite-target: /',
      'Conditions:'
    ].join('\n')
    t.equal(res.stdout.slice(0, expected.length), expected, 'kubectl\'s layout, with the endpoint of service1')
    const rest = res.stdout.slice(expected.length).split('\n')
    t.match(rest[1], /^ {2}Type\s+Status\s+Reason\s+Message$/)
    t.ok(rest.some(l => /^ {2}Served\s+True\s+Serving\s+routes are live/.test(l)), 'one line per condition')
    t.ok(rest.some(l => /^ {2}ReferencesResolved\s+False\s+ReferenceNotFound\s+not found: service default\/service2$/.test(l)))
    t.match(rest.at(-2), /^Events:\s+<none>$/)
    t.equal(rest.at(-1), '', 'ends with a newline')
  })

  await t.test('kubectl get ing shows the address', async t => {
    const res = await ingressd('get', 'ing')
    t.equal(res.code, 0)
    const [header, row, end] = res.stdout.split('\n')
    t.equal(header, 'NAME    CLASS    HOSTS                           ADDRESS     PORTS   AGE')
    t.match(row, /^basic {3}<none> {3}www\.basic1\.com,www\.basic2\.com {3}127\.0\.0\.1 {3}80 {6}\d+s$/)
    t.equal(end, '')
    t.equal(header?.indexOf('ADDRESS'), row?.indexOf('127.0.0.1'), 'columns line up')
  })

  // kubectl create secret tls my-https --key tls.key --cert tls.crt
  const { cert, key } = await generateSelfSigned({ commonName: 'www.basic-ssl.com', dnsNames: ['www.basic-ssl.com'] })
  writeFileSync(join(gw.dir, 'tls.crt'), cert)
  writeFileSync(join(gw.dir, 'tls.key'), key)
  const created = await ingressd('create', 'secret', 'tls', 'my-https', '--key', join(gw.dir, 'tls.key'), '--cert', join(gw.dir, 'tls.crt'))
  t.same(created, { code: 0, stdout: 'secret/my-https created\n', stderr: '' })

  await t.test('kubectl describe secret my-https: sizes, the certificate, never the key', async t => {
    const res = await ingressd('describe', 'secret', 'my-https')
    t.equal(res.code, 0)
    const head = [
      'Name:         my-https',
      'Namespace:    default',
      'Labels:       <none>',
      'Annotations:  <none>',
      '',
      'Type:  kubernetes.io/tls',
      '',
      'Data',
      '====',
      `tls.crt:  ${Buffer.byteLength(cert)} bytes`,
      `tls.key:  ${Buffer.byteLength(key)} bytes`,
      ''
    ].join('\n')
    t.equal(res.stdout.slice(0, head.length), head)
    t.match(res.stdout, /\nCertificate\n===========\nSubject: +CN=www\.basic-ssl\.com\n/)
    t.match(res.stdout, /\nDNS names: +www\.basic-ssl\.com\n/)
    t.match(res.stdout, /\nNot after: +\d{4}-\d\d-\d\dT/)
    t.match(res.stdout, /\nExpired: +false\n/)
    for (const output of [res.stdout, (await ingressd('get', 'secret', 'my-https', '-o', 'yaml')).stdout, (await ingressd('get', 'secrets', '-o', 'json')).stdout]) {
      const leaked = keyMarkers(key).filter(m => output.includes(m))
      t.same(leaked, [], 'no key text in the output')
    }
    const table = await ingressd('get', 'secret')
    t.match(table.stdout, /^NAME {7}TYPE {16}DATA {3}AGE\nmy-https {3}kubernetes\.io\/tls {3}2 {6}\d+s\n$/)
  })

  await t.test('kubectl apply -f ingress-ssl.yaml', async t => {
    t.same(await ingressd('apply', '-f', sslFile), { code: 0, stdout: 'ingress.extensions/ingress-ssl created\n', stderr: '' })
    const described = await ingressd('describe', 'ing', 'ingress-ssl')
    t.match(described.stdout, /\nTLS:\n {2}my-https terminates www\.basic-ssl\.com\nRules:\n/)
    t.match(described.stdout, new RegExp(`\\n {4,}/ {3}service1:80 \\(127\\.0\\.0\\.1:${origin.port}\\)\\n`))
    const listed = await ingressd('get', 'ingress')
    t.match(listed.stdout, /\ningress-ssl +<none> +www\.basic-ssl\.com +127\.0\.0\.1 +80, 443 +\d+s\n/)
  })

  await t.test('kubectl get svc', async t => {
    const res = await ingressd('get', 'svc')
    t.equal(res.code, 0)
    t.match(res.stdout, /^NAME {7}TYPE {8}CLUSTER-IP {3}EXTERNAL-IP {3}PORT\(S\) {3}AGE\nservice1 {3}ClusterIP {3}<none> {7}<none> {8}80\/TCP {4}\d+s\n$/)
    const eps = await ingressd('get', 'ep')
    t.match(eps.stdout, new RegExp(`^NAME +ENDPOINTS +AGE\\nservice1 +127\\.0\\.0\\.1:${origin.port} +\\d+s\\n$`))
  })

  await t.test('applying the same file again changes nothing', async t => {
    t.same(await ingressd('apply', '-f', basicFile), { code: 0, stdout: 'ingress.extensions/basic unchanged\n', stderr: '' })
    t.same(await ingressd('expose', 'service1', '--to', `127.0.0.1:${origin.port}`), { code: 0, stdout: 'service/service1 exposed\n', stderr: '' })
  })

  await t.test('delete, in kubectl\'s words', async t => {
    t.same(await ingressd('delete', 'ingress', 'basic'), { code: 0, stdout: 'ingress.networking.k8s.io "basic" deleted\n', stderr: '' })
    t.same(await ingressd('delete', '-f', sslFile), { code: 0, stdout: 'ingress.extensions "ingress-ssl" deleted\n', stderr: '' })
    t.same(await ingressd('delete', 'svc', 'service1'), { code: 0, stdout: 'service "service1" deleted\n', stderr: '' })
    t.same(await ingressd('delete', 'ep/service1', 'secret/my-https'), { code: 0, stdout: 'endpoints "service1" deleted\nsecret "my-https" deleted\n', stderr: '' })
    const gone = await ingressd('get', 'ing', 'basic')
    t.equal(gone.code, 1)
    t.equal(gone.stdout, '')
    t.equal(gone.stderr, 'Error from server (NotFound): ingresses.networking.k8s.io "basic" not found [INGRESSD_ERR_NOT_FOUND]\n')
    const again = await ingressd('delete', 'ing', 'basic')
    t.equal(again.code, 1)
    t.match(again.stderr, /^Error from server \(NotFound\): .*"basic" not found \[INGRESSD_ERR_NOT_FOUND\]\n$/)
    t.same(await ingressd('delete', 'ing', 'basic', '--ignore-not-found'), { code: 0, stdout: '', stderr: '' })
    const empty = await ingressd('get', 'ing')
    t.same(empty, { code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' })
  })

  await t.test('client flags may come before the verb, and the server from the environment', async t => {
    const res = await run(['-n', 'default', 'get', 'svc'], { env: { INGRESSD_SERVER: gw.admin } })
    t.same(res, { code: 0, stdout: '', stderr: 'No resources found in default namespace.\n' })
  })
})
