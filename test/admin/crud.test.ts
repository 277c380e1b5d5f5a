import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'

const ING = '/apis/networking.k8s.io/v1/namespaces/default/ingresses'

function ingress (name: string, host = `${name}.example.com`, labels?: Record<string, string>): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, ...(labels === undefined ? {} : { labels }) },
    spec: { rules: [{ host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] }
  }
}

t.test('create, read, replace, patch and delete an ingress', async t => {
  const gw = await startTestGateway(t)
  const created = await gw.api('POST', ING, ingress('shop'))
  t.equal(created.status, 201)
  const meta = created.body.metadata
  t.equal(meta.namespace, 'default', 'namespace defaults to the path')
  t.match(meta.uid, /^[0-9a-f-]{36}$/)
  t.equal(meta.generation, 1)
  t.match(meta.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  t.ok(Number(meta.resourceVersion) > 0)

  const read = await gw.api('GET', `${ING}/shop`)
  t.equal(read.status, 200)
  t.same(read.body.spec, created.body.spec, 'the spec round-trips unchanged')

  const again = await gw.api('POST', ING, ingress('shop'))
  t.equal(again.status, 409)
  t.equal(again.body.reason, 'AlreadyExists')

  // Replace with the resourceVersion read: accepted, generation and resourceVersion move on.
  const next = ingress('shop', 'shop.example.org')
  ;(next.metadata as Record<string, unknown>).resourceVersion = meta.resourceVersion
  const replaced = await gw.api('PUT', `${ING}/shop`, next)
  t.equal(replaced.status, 200)
  t.equal(replaced.body.metadata.generation, 2)
  t.ok(Number(replaced.body.metadata.resourceVersion) > Number(meta.resourceVersion))
  t.equal(replaced.body.metadata.uid, meta.uid, 'uid survives a replace')

  // The same resourceVersion again is stale now.
  const stale = await gw.api('PUT', `${ING}/shop`, next)
  t.equal(stale.status, 409)
  t.equal(stale.body.reason, 'Conflict')
  t.equal(stale.body.details.errorCode, 'INGRESSD_ERR_CONFLICT')

  // A label-only merge patch keeps generation (spec unchanged) but bumps resourceVersion.
  const patched = await gw.api('PATCH', `${ING}/shop`, { metadata: { labels: { tier: 'web' } } })
  t.equal(patched.status, 200)
  t.same(patched.body.metadata.labels, { tier: 'web' })
  t.equal(patched.body.metadata.generation, 2)
  t.equal(patched.body.spec.rules[0].host, 'shop.example.org')

  const unpatch = await gw.api('PATCH', `${ING}/shop`, { metadata: { labels: { tier: null } } })
  t.equal(unpatch.body.metadata.labels, undefined, 'null removes a key')

  const deleted = await gw.api('DELETE', `${ING}/shop`)
  t.equal(deleted.status, 200)
  t.equal(deleted.body.kind, 'Ingress')
  t.equal(deleted.body.metadata.name, 'shop')
  const gone = await gw.api('GET', `${ING}/shop`)
  t.equal(gone.status, 404)
  t.equal(gone.body.kind, 'Status')
  t.equal(gone.body.reason, 'NotFound')
  const deleteAgain = await gw.api('DELETE', `${ING}/shop`)
  t.equal(deleteAgain.status, 404)
})

t.test('resourceVersion increases on every write across the store', async t => {
  const gw = await startTestGateway(t)
  const versions: number[] = []
  for (const name of ['a', 'b', 'c']) versions.push(Number((await gw.api('POST', ING, ingress(name))).body.metadata.resourceVersion))
  const svc = await gw.api('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } })
  versions.push(Number(svc.body.metadata.resourceVersion))
  t.same([...versions].sort((a, b) => a - b), versions)
  t.equal(new Set(versions).size, versions.length)
  const list = await gw.api('GET', '/apis/networking.k8s.io/v1/ingresses')
  t.equal(list.body.metadata.resourceVersion, String(versions.at(-1)))
})

t.test('an unchanged replace does not write', async t => {
  const gw = await startTestGateway(t)
  const created = await gw.api('POST', ING, ingress('same'))
  const replaced = await gw.api('PUT', `${ING}/same`, ingress('same'))
  t.equal(replaced.body.metadata.resourceVersion, created.body.metadata.resourceVersion)
})

t.test('lists: one namespace, all namespaces, label selectors, pages', async t => {
  const gw = await startTestGateway(t)
  for (let i = 0; i < 5; i++) await gw.api('POST', ING, ingress(`app-${i}`, undefined, { app: i % 2 === 0 ? 'even' : 'odd', idx: String(i) }))
  await gw.api('POST', '/apis/networking.k8s.io/v1/namespaces/team-b/ingresses', ingress('other', 'other.example.com', { app: 'even' }))

  const ns = await gw.api('GET', ING)
  t.equal(ns.body.kind, 'IngressList')
  t.equal(ns.body.items.length, 5)
  const all = await gw.api('GET', '/apis/networking.k8s.io/v1/ingresses')
  t.equal(all.body.items.length, 6)
  t.same(all.body.items.map((i: any) => `${i.metadata.namespace}/${i.metadata.name}`), ['default/app-0', 'default/app-1', 'default/app-2', 'default/app-3', 'default/app-4', 'team-b/other'])

  const even = await gw.api('GET', `/apis/networking.k8s.io/v1/ingresses?labelSelector=${encodeURIComponent('app=even')}`)
  t.same(even.body.items.map((i: any) => i.metadata.name), ['app-0', 'app-2', 'app-4', 'other'])
  const setBased = await gw.api('GET', `${ING}?labelSelector=${encodeURIComponent('idx in (1,3),app!=even')}`)
  t.same(setBased.body.items.map((i: any) => i.metadata.name), ['app-1', 'app-3'])
  const bad = await gw.api('GET', `${ING}?labelSelector=${encodeURIComponent('app=(')}`)
  t.equal(bad.status, 400)
  t.equal(bad.body.details.causes[0].field, 'labelSelector')

  const names: string[] = []
  let cont: string | undefined
  let pages = 0
  do {
    const page = await gw.api('GET', `/apis/networking.k8s.io/v1/ingresses?limit=2${cont === undefined ? '' : `&continue=${cont}`}`)
    t.ok(page.body.items.length <= 2)
    names.push(...page.body.items.map((i: any) => i.metadata.name))
    cont = page.body.metadata.continue
    pages++
  } while (cont !== undefined)
  t.equal(pages, 3)
  t.same(names, ['app-0', 'app-1', 'app-2', 'app-3', 'app-4', 'other'])
  const badToken = await gw.api('GET', `${ING}?limit=2&continue=garbage`)
  t.equal(badToken.status, 400)
})

t.test('older ingress shapes are stored as v1 and served back in the version asked for', async t => {
  const gw = await startTestGateway(t)
  const yaml = `apiVersion: extensions/v1beta1
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
    - host: www.basic2.com
      http:
        paths:
          - backend:
              serviceName: service2
              servicePort: http
`
  const created = await gw.api('POST', '/apis/extensions/v1beta1/namespaces/default/ingresses', yaml, { 'content-type': 'application/yaml' })
  t.equal(created.status, 201)
  t.equal(created.body.apiVersion, 'extensions/v1beta1')
  t.same(created.body.spec.rules[0].http.paths[0].backend, { serviceName: 'service1', servicePort: 80 })

  const v1 = await gw.api('GET', `${ING}/basic`)
  t.equal(v1.body.apiVersion, 'networking.k8s.io/v1')
  t.same(v1.body.spec.rules[0].http.paths[0], { path: '/path1', pathType: 'ImplementationSpecific', backend: { service: { name: 'service1', port: { number: 80 } } } })
  t.same(v1.body.spec.rules[1].http.paths[0].backend.service.port, { name: 'http' })
  t.equal(v1.body.spec.rules[1].http.paths[0].path, undefined, 'a missing path stays missing')

  const beta = await gw.api('GET', '/apis/networking.k8s.io/v1beta1/namespaces/default/ingresses/basic')
  t.equal(beta.body.apiVersion, 'networking.k8s.io/v1beta1')
  t.same(beta.body.spec.rules[1].http.paths[0].backend, { serviceName: 'service2', servicePort: 'http' })

  const sent = await gw.api('POST', '/apis/extensions/v1beta1/namespaces/default/ingresses', { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'x' }, spec: { defaultBackend: { service: { name: 'a', port: { number: 1 } } } } })
  t.equal(sent.status, 201, 'any served version may be posted to any version\'s path; the reply uses the path\'s version')
  t.equal(sent.body.apiVersion, 'extensions/v1beta1')
  t.same(sent.body.spec.backend, { serviceName: 'a', servicePort: 1 })
})

t.test('services, endpoints and ingress classes', async t => {
  const gw = await startTestGateway(t)
  const svc = await gw.api('POST', '/api/v1/namespaces/default/services', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: service1\nspec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: 8080\n', { 'content-type': 'application/yaml' })
  t.equal(svc.status, 201)
  t.same(svc.body.spec.ports, [{ name: 'http', port: 80, targetPort: 8080 }])
  const ext = await gw.api('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext' }, spec: { type: 'ExternalName', externalName: 'backend.example.com' } })
  t.equal(ext.status, 201)
  const ep = await gw.api('POST', '/api/v1/namespaces/default/endpoints', { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'service1' }, subsets: [{ addresses: [{ ip: '127.0.0.1' }, { ip: '::1' }], ports: [{ name: 'http', port: 8080 }] }] })
  t.equal(ep.status, 201)
  t.equal((await gw.api('GET', '/api/v1/endpoints')).body.items.length, 1)
  t.equal((await gw.api('GET', '/api/v1/services')).body.items.length, 2)
  const cls = await gw.api('POST', '/apis/networking.k8s.io/v1/ingressclasses', { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { name: 'nginx' }, spec: { controller: 'k8s.io/ingress-nginx' } })
  t.equal(cls.status, 201)
  t.equal(cls.body.metadata.namespace, undefined, 'IngressClass is cluster-scoped')
  t.equal((await gw.api('GET', '/apis/networking.k8s.io/v1/ingressclasses/nginx')).status, 200)
})

t.test('ingress status reports references that do not exist yet', async t => {
  const gw = await startTestGateway(t)
  const created = await gw.api('POST', ING, { ...ingress('refs'), spec: { tls: [{ hosts: ['refs.example.com'], secretName: 'missing-cert' }], rules: (ingress('refs').spec as any).rules } })
  t.equal(created.status, 201, 'accepted, as Kubernetes accepts it')
  const cond = created.body.status.conditions.find((c: any) => c.type === 'ReferencesResolved')
  t.equal(cond.status, 'False')
  t.match(cond.message, 'service default/web')
  t.match(cond.message, 'secret default/missing-cert')
  await gw.api('POST', '/api/v1/namespaces/default/services', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { ports: [{ port: 80 }] } })
  const after = await gw.api('GET', `${ING}/refs`)
  const cond2 = after.body.status.conditions.find((c: any) => c.type === 'ReferencesResolved')
  t.notMatch(cond2.message, 'service default/web')
})

t.test('health, readiness, docs and the OpenAPI document', async t => {
  const gw = await startTestGateway(t, { INGRESSD_ADMIN_TOKEN: 'a-token-of-sixteen-chars' })
  t.equal((await gw.api('GET', '/healthz', undefined, { authorization: '' })).status, 200)
  const ready = await gw.api('GET', '/readyz', undefined, { authorization: '' })
  t.equal(ready.status, 200)
  t.equal(ready.body.status, 'ok')
  const docs = await gw.api('GET', '/docs/', undefined, { authorization: '' })
  t.equal(docs.status, 200)
  t.match(docs.text, /swagger/i)
  const spec = await gw.api('GET', '/openapi.json', undefined, { authorization: '' })
  t.equal(spec.status, 200)
  t.ok(spec.body.paths['/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses'])
  t.ok(spec.body.paths['/apply'])
})
