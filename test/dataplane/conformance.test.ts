/**
 * The Kubernetes SIG Network ingress conformance scenarios (host rules, path rules, default
 * backend, ingress class, load balancing), end to end: real origins as services, the real
 * gateway, HTTP over loopback. Each origin answers with its own name, so a test sees which
 * service served it and what request it received.
 */
import t from 'tap'
import { request } from 'undici'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startOrigin, type Origin } from '../helpers/origin.js'
import { apply, serviceManifests } from '../helpers/backends.js'

async function get (gw: TestGateway, host: string | undefined, path: string, method = 'GET'): Promise<{ status: number, served?: string, seen?: any, headers: Record<string, unknown> }> {
  const res = await request(`${gw.http}${path}`, { method: method as 'GET', headers: host === undefined ? {} : { host } })
  const text = await res.body.text()
  let seen: any
  try { seen = JSON.parse(text) } catch {}
  return { status: res.statusCode, served: seen?.server, seen, headers: res.headers }
}

function backend (name: string, port: { number?: number, name?: string } = { number: 8080 }): unknown {
  return { service: { name, port } }
}

async function services (t: { teardown: (fn: () => Promise<void> | void) => void }, gw: TestGateway, names: string[]): Promise<Record<string, Origin>> {
  const out: Record<string, Origin> = {}
  const manifests: unknown[] = []
  for (const name of names) {
    out[name] = await startOrigin(t, name)
    manifests.push(...serviceManifests(name, [out[name]]))
  }
  await apply(gw, manifests)
  return out
}

t.test('path rules', async t => {
  const gw = await startTestGateway(t)
  await services(t, gw, ['foo-exact', 'foo-prefix', 'aaa-slash-bbb-prefix', 'aaa-prefix', 'aaa-slash-bbb-slash-prefix', 'foo-slash-exact'])
  await apply(gw, [{
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'path-rules' },
    spec: {
      rules: [
        { host: 'exact-path-rules', http: { paths: [{ path: '/foo', pathType: 'Exact', backend: backend('foo-exact') }] } },
        {
          host: 'prefix-path-rules',
          http: {
            paths: [
              { path: '/foo', pathType: 'Prefix', backend: backend('foo-prefix') },
              { path: '/aaa/bbb', pathType: 'Prefix', backend: backend('aaa-slash-bbb-prefix') },
              { path: '/aaa', pathType: 'Prefix', backend: backend('aaa-prefix') }
            ]
          }
        },
        {
          host: 'mixed-path-rules',
          http: {
            paths: [
              { path: '/foo', pathType: 'Prefix', backend: backend('foo-prefix') },
              { path: '/foo', pathType: 'Exact', backend: backend('foo-exact') }
            ]
          }
        },
        {
          host: 'trailing-slash-path-rules',
          http: {
            paths: [
              { path: '/aaa/bbb/', pathType: 'Prefix', backend: backend('aaa-slash-bbb-slash-prefix') },
              { path: '/foo/', pathType: 'Exact', backend: backend('foo-slash-exact') }
            ]
          }
        }
      ]
    }
  }])
  const ing = await gw.api('GET', '/apis/networking.k8s.io/v1/namespaces/default/ingresses/path-rules')
  t.ok(ing.body.status.loadBalancer.ingress[0].ip, 'the Ingress status shows the IP address where it is exposed')

  const cases: [string, string, number, string?][] = [
    ['exact-path-rules', '/foo', 200, 'foo-exact'],
    ['exact-path-rules', '/foo/', 404],
    ['exact-path-rules', '/FOO', 404],
    ['exact-path-rules', '/bar', 404],
    ['prefix-path-rules', '/foo', 200, 'foo-prefix'],
    ['prefix-path-rules', '/foo/', 200, 'foo-prefix'],
    ['prefix-path-rules', '/FOO', 404],
    ['prefix-path-rules', '/aaa/bbb', 200, 'aaa-slash-bbb-prefix'],
    ['prefix-path-rules', '/aaa/bbb/ccc', 200, 'aaa-slash-bbb-prefix'],
    ['prefix-path-rules', '/aaa/ccc', 200, 'aaa-prefix'],
    ['prefix-path-rules', '/aaaccc', 404],
    ['mixed-path-rules', '/foo', 200, 'foo-exact'],
    ['trailing-slash-path-rules', '/aaa/bbb', 200, 'aaa-slash-bbb-slash-prefix'],
    ['trailing-slash-path-rules', '/aaa/bbb/', 200, 'aaa-slash-bbb-slash-prefix'],
    ['trailing-slash-path-rules', '/foo', 404]
  ]
  for (const [host, path, status, service] of cases) {
    const res = await get(gw, host, path)
    t.equal(res.status, status, `${host}${path} -> ${status}`)
    if (service !== undefined) {
      t.equal(res.served, service, `${host}${path} served by ${service}`)
      t.equal(res.seen.url, path, 'the request path reaches the backend unchanged')
    }
  }
})

t.test('host rules', async t => {
  const gw = await startTestGateway(t)
  await services(t, gw, ['wildcard-foo-com', 'foo-bar-com'])
  await apply(gw, [{
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'host-rules' },
    spec: {
      rules: [
        { host: '*.foo.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: backend('wildcard-foo-com') }] } },
        { host: 'foo.bar.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: backend('foo-bar-com', { name: 'http' }) }] } }
      ]
    }
  }])
  const cases: [string, number, string?][] = [
    ['foo.bar.com', 200, 'foo-bar-com'],
    ['FOO.Bar.com', 200, 'foo-bar-com'],
    ['foo.bar.com.', 200, 'foo-bar-com'],
    ['foo.bar.com:8080', 200, 'foo-bar-com'],
    ['subdomain.bar.com', 404],
    ['bar.foo.com', 200, 'wildcard-foo-com'],
    ['baz.bar.foo.com', 404],
    ['foo.com', 404]
  ]
  for (const [host, status, service] of cases) {
    const res = await get(gw, host, '/')
    t.equal(res.status, status, `${host} -> ${status}`)
    if (service !== undefined) {
      t.equal(res.served, service)
      t.equal(res.seen.headers.host, host, 'the original Host reaches the backend')
    }
  }
})

t.test('default backend: an ingress with no rules takes every request, every method', async t => {
  const gw = await startTestGateway(t)
  await services(t, gw, ['echo-service'])
  await apply(gw, [{ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'default-backend' }, spec: { defaultBackend: backend('echo-service') } }])
  const cases: [string, string | undefined, string][] = [
    ['GET', 'my-host', '/'],
    ['GET', 'my-host', '/sub-path'],
    ['POST', 'some-host', '/'],
    ['PUT', undefined, '/resource'],
    ['DELETE', 'some-host', '/resource'],
    ['PATCH', 'my-host', '/resource']
  ]
  for (const [method, host, path] of cases) {
    const res = await get(gw, host, path, method)
    t.equal(res.status, 200, `${method} ${host ?? '(no host header override)'}${path}`)
    t.equal(res.served, 'echo-service')
    t.equal(res.seen.method, method, 'the request method reaches the backend')
    t.equal(res.seen.url, path, 'the request path reaches the backend')
    for (const h of ['content-length', 'content-type', 'date', 'server']) t.ok(res.headers[h], `response carries ${h}`)
  }
})

t.test('ingress class: an ingress of another class is stored, not served, and has no address', async t => {
  const gw = await startTestGateway(t)
  await services(t, gw, ['ingress-class-prefix'])
  const created = await gw.api('POST', '/apis/networking.k8s.io/v1/namespaces/default/ingresses', {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'test-ingress-class' },
    spec: { ingressClassName: 'some-invalid-class-name', rules: [{ host: 'ingress-class', http: { paths: [{ path: '/', pathType: 'Prefix', backend: backend('ingress-class-prefix') }] } }] }
  })
  t.equal(created.status, 201)
  t.same(created.body.status.loadBalancer, {}, 'the Ingress status does not contain an IP address or FQDN')
  const served = created.body.status.conditions.find((c: any) => c.type === 'Served')
  t.equal(served.status, 'False')
  t.match(served.message, 'some-invalid-class-name')
  t.equal((await get(gw, 'ingress-class', '/')).status, 404)

  // The legacy annotation and the default classes (ingressd, nginx) are served.
  await apply(gw, [{
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'legacy', annotations: { 'kubernetes.io/ingress.class': 'nginx' } },
    spec: { rules: [{ host: 'legacy-class', http: { paths: [{ path: '/', pathType: 'Prefix', backend: backend('ingress-class-prefix') }] } }] }
  }])
  t.equal((await get(gw, 'legacy-class', '/')).status, 200)
})

t.test('load balancing: requests spread over all 10 endpoints', async t => {
  const gw = await startTestGateway(t)
  const first = await startOrigin(t, 'pod-1', undefined, { host: '127.0.0.2' })
  const pods = [first]
  for (let i = 2; i <= 10; i++) pods.push(await startOrigin(t, `pod-${i}`, undefined, { host: `127.0.0.${i + 1}`, port: first.port }))
  await apply(gw, [...serviceManifests('echo-service', pods), { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'load-balancing' }, spec: { defaultBackend: backend('echo-service') } }])
  const served = new Set<string>()
  for (let i = 0; i < 100; i++) {
    const res = await get(gw, 'load-balancing', '/')
    t.equal(res.status, 200)
    served.add(res.served as string)
  }
  t.equal(served.size, 10, 'the responses came from 10 different endpoints')
})
