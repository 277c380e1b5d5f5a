/**
 * `ingressd create secret generic`, as a user follows ingress-nginx's basic-auth example: an
 * htpasswd file turned into a Secret with --from-file, an ingress naming it, and the values never
 * printed back by get or describe.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { request } from 'undici'
import { startTestGateway } from '../helpers/gateway.js'
import { startOrigin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'
import { run } from './run.js'

const HASH = '$apr1$abcdefgh$M2T3erDstkD7SsE2QQnfH0'

t.test('create secret generic --from-file=auth, then basic auth works and no value is ever printed', async t => {
  const gw = await startTestGateway(t)
  const origin = await startOrigin(t, 'echo')
  const ingressd = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await run([...args, '--server', gw.admin])
  writeFileSync(join(gw.dir, 'auth'), `admin:${HASH}\n`)
  t.same(await ingressd('create', 'secret', 'generic', 'basic-auth', `--from-file=${join(gw.dir, 'auth')}`, '--from-literal=note=hello'), { code: 0, stdout: 'secret/basic-auth created\n', stderr: '' })
  await apply(gw, [...serviceManifests('echo', [origin]), {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'private', annotations: { 'nginx.ingress.kubernetes.io/auth-type': 'basic', 'nginx.ingress.kubernetes.io/auth-secret': 'basic-auth' } },
    spec: { rules: [{ host: 'private.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'echo', port: { number: 8080 } } } }] } }] }
  }])
  const denied = await request(`${gw.http}/`, { headers: { host: 'private.example.com' } })
  await denied.body.text()
  t.equal(denied.statusCode, 401)
  const allowed = await request(`${gw.http}/`, { headers: { host: 'private.example.com', authorization: `Basic ${Buffer.from('admin:s3cret').toString('base64')}` } })
  await allowed.body.text()
  t.equal(allowed.statusCode, 200)

  const outputs = [await ingressd('get', 'secret', 'basic-auth', '-o', 'yaml'), await ingressd('get', 'secret', 'basic-auth', '-o', 'json'), await ingressd('describe', 'secret', 'basic-auth'), await ingressd('get', 'secrets')]
  for (const out of outputs) {
    t.equal(out.code, 0)
    for (const secret of [HASH, Buffer.from(`admin:${HASH}\n`).toString('base64'), 'hello', Buffer.from('hello').toString('base64')]) t.notOk(out.stdout.includes(secret), 'no value is printed')
  }
  t.match(outputs[2]?.stdout, /auth:\s+44 bytes/, 'describe shows the size')
  t.match(outputs[2]?.stdout, /note:\s+5 bytes/)
  t.match((await ingressd('create', 'secret', 'generic', 'x', '--from-file=/does/not/exist')).stderr, /--from-file: cannot read "\/does\/not\/exist"/)
})
