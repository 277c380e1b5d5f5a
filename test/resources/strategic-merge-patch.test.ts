import t, { type Test } from 'tap'
import { IngressdError } from '../../src/errors.js'
import { applyStrategicMergePatch } from '../../src/resources/strategic-merge-patch.js'

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'

/** Fails when a `$` directive survived into a result. */
function directivesIn (value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => directivesIn(v, `${path}[${i}]`))
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([k, v]) => [...(k.startsWith('$') ? [`${path}.${k}`] : []), ...directivesIn(v, `${path}.${k}`)])
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

function badRequest (t: Test, fn: () => unknown, mentions: string[], name: string): void {
  try {
    fn()
    t.fail(`${name}: no error`)
  } catch (err) {
    t.ok(err instanceof IngressdError, `${name}: an IngressdError`)
    t.equal((err as IngressdError).code, 'INGRESSD_ERR_BAD_REQUEST', `${name}: BAD_REQUEST`)
    for (const m of mentions) t.match((err as Error).message, m, `${name}: mentions ${m}`)
  }
}

// What kubectl 1.33 (`kubectl apply -f ingress-basic.yaml`, the tutorial's manifest, as
// extensions/v1beta1) stored as last-applied-configuration on create, and the exact body of the
// PATCH it sent (application/strategic-merge-patch+json) when the manifest was applied again with
// /path2's backend changed from service2 to service3. Recorded from the real binary.
const APPLIED_BEFORE = '{"apiVersion":"extensions/v1beta1","kind":"Ingress","metadata":{"annotations":{"nginx.ingress.kubernetes.io/rewrite-target":"/"},"name":"basic","namespace":"default"},"spec":{"rules":[{"host":"www.basic1.com","http":{"paths":[{"backend":{"serviceName":"service1","servicePort":80},"path":"/path1"},{"backend":{"serviceName":"service2","servicePort":80},"path":"/path2"}]}},{"host":"www.basic2.com","http":{"paths":[{"backend":{"serviceName":"service2","servicePort":80}}]}}]}}\n'
const KUBECTL_133_APPLY_PATCH = '{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\\"apiVersion\\":\\"extensions/v1beta1\\",\\"kind\\":\\"Ingress\\",\\"metadata\\":{\\"annotations\\":{\\"nginx.ingress.kubernetes.io/rewrite-target\\":\\"/\\"},\\"name\\":\\"basic\\",\\"namespace\\":\\"default\\"},\\"spec\\":{\\"rules\\":[{\\"host\\":\\"www.basic1.com\\",\\"http\\":{\\"paths\\":[{\\"backend\\":{\\"serviceName\\":\\"service1\\",\\"servicePort\\":80},\\"path\\":\\"/path1\\"},{\\"backend\\":{\\"serviceName\\":\\"service3\\",\\"servicePort\\":80},\\"path\\":\\"/path2\\"}]}},{\\"host\\":\\"www.basic2.com\\",\\"http\\":{\\"paths\\":[{\\"backend\\":{\\"serviceName\\":\\"service2\\",\\"servicePort\\":80}}]}}]}}\\n"}},"spec":{"rules":[{"host":"www.basic1.com","http":{"paths":[{"backend":{"serviceName":"service1","servicePort":80},"path":"/path1"},{"backend":{"serviceName":"service3","servicePort":80},"path":"/path2"}]}},{"host":"www.basic2.com","http":{"paths":[{"backend":{"serviceName":"service2","servicePort":80}}]}}]}}'

/** The tutorial's Ingress as ingressd serves it at extensions/v1beta1 after the first apply. */
function servedBasicIngress (): Record<string, unknown> {
  return {
    apiVersion: 'extensions/v1beta1',
    kind: 'Ingress',
    metadata: {
      name: 'basic',
      namespace: 'default',
      annotations: { [LAST_APPLIED]: APPLIED_BEFORE, 'nginx.ingress.kubernetes.io/rewrite-target': '/' },
      uid: '0b6f7a1e-4a53-4d8e-9e1f-2f7c1d3a9b10',
      resourceVersion: '7',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z'
    },
    spec: {
      rules: [
        {
          host: 'www.basic1.com',
          http: {
            paths: [
              { path: '/path1', backend: { serviceName: 'service1', servicePort: 80 } },
              { path: '/path2', backend: { serviceName: 'service2', servicePort: 80 } }
            ]
          }
        },
        { host: 'www.basic2.com', http: { paths: [{ backend: { serviceName: 'service2', servicePort: 80 } }] } }
      ]
    },
    status: { loadBalancer: {} }
  }
}

t.test('kubectl 1.33 client-side apply of the tutorial Ingress with a changed backend', async t => {
  const live = servedBasicIngress()
  const patch = JSON.parse(KUBECTL_133_APPLY_PATCH) as { metadata: { annotations: Record<string, string> }, spec: { rules: unknown } }
  const out = applyStrategicMergePatch('Ingress', live, patch)
  const meta = out.metadata as Record<string, unknown>
  t.same(meta.annotations, {
    [LAST_APPLIED]: patch.metadata.annotations[LAST_APPLIED],
    'nginx.ingress.kubernetes.io/rewrite-target': '/'
  }, 'last-applied-configuration replaced, the other annotation kept')
  t.match(meta.annotations, { [LAST_APPLIED]: /service3/ })
  t.same(out.spec, { rules: patch.spec.rules }, 'rules is atomic: the whole list is the patch\'s')
  t.same((out.spec as { rules: { http: { paths: { backend: unknown }[] } }[] }).rules[0]?.http.paths[1]?.backend, { serviceName: 'service3', servicePort: 80 })
  t.same(out.status, { loadBalancer: {} }, 'status untouched')
  t.same({ ...meta, annotations: undefined }, { ...(live.metadata as object), annotations: undefined }, 'server-managed metadata untouched')
  t.same(live, servedBasicIngress(), 'the live object is not modified')
  t.same(directivesIn(out), [])
})

t.test('labels and annotations (kubectl label / annotate bodies, also what kubectl patch -p sends)', async t => {
  const live = servedBasicIngress()
  const labelled = applyStrategicMergePatch('Ingress', live, { metadata: { labels: { tier: 'web' } } })
  t.same((labelled.metadata as Record<string, unknown>).labels, { tier: 'web' }, 'kubectl label ingress basic tier=web adds metadata.labels')
  const relabelled = applyStrategicMergePatch('Ingress', labelled, { metadata: { labels: { tier: 'api', app: 'shop' } } })
  t.same((relabelled.metadata as Record<string, unknown>).labels, { tier: 'api', app: 'shop' }, 'overwrite and add')
  const unlabelled = applyStrategicMergePatch('Ingress', relabelled, { metadata: { labels: { tier: null } } })
  t.same((unlabelled.metadata as Record<string, unknown>).labels, { app: 'shop' }, 'kubectl label ingress basic tier- removes the key')
  const noop = applyStrategicMergePatch('Ingress', live, { metadata: { labels: { absent: null } } })
  t.same((noop.metadata as Record<string, unknown>).labels ?? {}, {}, 'removing a label from an object without labels stores no null')
  const annotated = applyStrategicMergePatch('Ingress', live, { metadata: { annotations: { owner: 'team-a' } } })
  t.same((annotated.metadata as { annotations: Record<string, string> }).annotations.owner, 'team-a')
  t.equal((annotated.metadata as { annotations: Record<string, string> }).annotations['nginx.ingress.kubernetes.io/rewrite-target'], '/')
  const cleared = applyStrategicMergePatch('Ingress', live, { spec: { ingressClassName: null }, status: null })
  t.notOk(Object.hasOwn(cleared, 'status'), 'null deletes a key')
})

// What kubectl 1.33 sent (recorded from the real binary) when a Service manifest went from ports
// 80 (http) + 443 (https) and finalizers example.com/a, example.com/b to ports 80 + 8443 (alt)
// and finalizers example.com/b, example.com/c.
const KUBECTL_133_SERVICE_PATCH = '{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a"],"$setElementOrder/finalizers":["example.com/b","example.com/c"],"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\\"apiVersion\\":\\"v1\\",\\"kind\\":\\"Service\\",\\"metadata\\":{\\"annotations\\":{},\\"finalizers\\":[\\"example.com/b\\",\\"example.com/c\\"],\\"name\\":\\"service1\\",\\"namespace\\":\\"default\\"},\\"spec\\":{\\"ports\\":[{\\"name\\":\\"http\\",\\"port\\":80,\\"targetPort\\":8080},{\\"name\\":\\"alt\\",\\"port\\":8443,\\"targetPort\\":8443}],\\"selector\\":{\\"app\\":\\"web\\"}}}\\n"},"finalizers":["example.com/c"]},"spec":{"$setElementOrder/ports":[{"port":80},{"port":8443}],"ports":[{"name":"alt","port":8443,"targetPort":8443},{"$patch":"delete","port":443}]}}'

function servedService (): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'service1', namespace: 'default', finalizers: ['example.com/a', 'example.com/b'], annotations: { [LAST_APPLIED]: '{}\n' }, uid: 'u-svc', resourceVersion: '3', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      type: 'ClusterIP',
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
        { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' }
      ]
    }
  }
}

t.test('kubectl 1.33 client-side apply of a Service: ports merged by port, finalizers as a set', async t => {
  const out = applyStrategicMergePatch('Service', servedService(), JSON.parse(KUBECTL_133_SERVICE_PATCH))
  t.same((out.spec as Record<string, unknown>).ports, [
    { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
    { name: 'alt', port: 8443, targetPort: 8443 }
  ], 'port 80 kept as stored (protocol too), 443 deleted by $patch: delete, 8443 added, in $setElementOrder order')
  t.same((out.metadata as Record<string, unknown>).finalizers, ['example.com/b', 'example.com/c'], '$deleteFromPrimitiveList removes a, c is added, in order')
  t.same((out.spec as Record<string, unknown>).selector, { app: 'web' })
  t.same(directivesIn(out), [], 'no directive is stored')
})

t.test('merge-keyed lists: ports', async t => {
  const ports = (o: Record<string, unknown>): unknown => (o.spec as Record<string, unknown>).ports
  t.same(ports(applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ port: 443, targetPort: 9443 }] } })), [
    { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
    { name: 'https', port: 443, targetPort: 9443, protocol: 'TCP' }
  ], 'an item matched by port merges into the stored one, in place')
  t.same(ports(applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ name: 'alt', port: 8443 }] } })), [
    { name: 'alt', port: 8443 },
    { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' },
    { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' }
  ], 'a new item without $setElementOrder goes before the stored ones, as Kubernetes orders it')
  t.same(ports(applyStrategicMergePatch('Service', servedService(), { spec: { '$setElementOrder/ports': [{ port: 443 }, { port: 80 }] } })), [
    { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
    { name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }
  ], '$setElementOrder alone reorders')
  t.same(ports(applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ port: 80, $patch: 'delete' }] } })), [
    { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' }
  ], '$patch: delete removes the item with that port')
  t.same(ports(applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ $patch: 'replace' }, { name: 'x', port: 9000 }] } })), [
    { name: 'x', port: 9000 }
  ], '$patch: replace in a list makes it exactly the other items')
  const bare = servedService()
  delete (bare.spec as Record<string, unknown>).ports
  t.same(ports(applyStrategicMergePatch('Service', bare, { spec: { '$setElementOrder/ports': [{ port: 81 }, { port: 80 }], ports: [{ port: 81 }, { port: 80 }, { port: 82, $patch: 'delete' }] } })), [
    { port: 81 },
    { port: 80 }
  ], 'a list the object lacks is taken from the patch, its directives consumed')
  t.same(applyStrategicMergePatch('Service', bare, { spec: { '$setElementOrder/ports': [] } }).spec, bare.spec, 'an order for a list neither side has does nothing')
  t.same(ports(applyStrategicMergePatch('Service', bare, { spec: { '$setElementOrder/ports': [], ports: [] } })), [], 'empty lists stay empty')
  t.same(ports(applyStrategicMergePatch('Service', servedService(), { spec: { '$setElementOrder/ports': [{ port: 9000 }], ports: [{ $patch: 'replace' }, { port: 9000 }] } })), [{ port: 9000 }], '$patch: replace alongside an order')
})

t.test('merge-keyed lists: ownerReferences by uid, finalizers by value', async t => {
  const owned = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: {
      name: 'service1',
      ownerReferences: [
        { apiVersion: 'v1', kind: 'Service', name: 'service1', uid: 'u1' },
        { apiVersion: 'v1', kind: 'Service', name: 'other', uid: 'u2' }
      ]
    },
    subsets: []
  }
  const out = applyStrategicMergePatch('Endpoints', owned, { metadata: { ownerReferences: [{ uid: 'u2', controller: true }, { apiVersion: 'v1', kind: 'Service', name: 'third', uid: 'u3' }] } })
  t.same((out.metadata as Record<string, unknown>).ownerReferences, [
    { apiVersion: 'v1', kind: 'Service', name: 'service1', uid: 'u1' },
    { apiVersion: 'v1', kind: 'Service', name: 'other', uid: 'u2', controller: true },
    { apiVersion: 'v1', kind: 'Service', name: 'third', uid: 'u3' }
  ])
  const fin = applyStrategicMergePatch('Service', servedService(), { metadata: { finalizers: ['example.com/c', 'example.com/a'] } })
  t.same((fin.metadata as Record<string, unknown>).finalizers, ['example.com/c', 'example.com/a', 'example.com/b'], 'a set: no duplicate; patch values first, as Kubernetes orders them without $setElementOrder')
  const del = applyStrategicMergePatch('Service', servedService(), { metadata: { '$deleteFromPrimitiveList/finalizers': ['example.com/a', 'example.com/z'] } })
  t.same((del.metadata as Record<string, unknown>).finalizers, ['example.com/b'], '$deleteFromPrimitiveList removes what is there, ignores what is not')
  const none = servedService()
  delete (none.metadata as Record<string, unknown>).finalizers
  const still = applyStrategicMergePatch('Service', none, { metadata: { '$deleteFromPrimitiveList/finalizers': ['example.com/a'] } })
  t.notOk(Object.hasOwn(still.metadata as object, 'finalizers'), 'deleting from a list the object lacks creates nothing')
})

t.test('atomic lists: Ingress rules, tls, hosts; Endpoints subsets', async t => {
  const live = servedBasicIngress()
  const out = applyStrategicMergePatch('Ingress', live, { spec: { '$setElementOrder/rules': [{ host: 'a.example.com' }], rules: [{ host: 'a.example.com' }], tls: [{ hosts: ['a.example.com'], secretName: 'a' }] } })
  t.same(out.spec, { rules: [{ host: 'a.example.com' }], tls: [{ hosts: ['a.example.com'], secretName: 'a' }] }, 'replaced whole; $setElementOrder on an atomic list is ignored')
  const tls = applyStrategicMergePatch('Ingress', out, { spec: { tls: [{ hosts: ['b.example.com'] }] } })
  t.same((tls.spec as Record<string, unknown>).tls, [{ hosts: ['b.example.com'] }], 'tls items are not merged (no merge key)')
  const eps = { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 's' }, subsets: [{ addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }], ports: [{ port: 80 }] }] }
  const newEps = applyStrategicMergePatch('Endpoints', eps, { subsets: [{ addresses: [{ ip: '10.0.0.9' }], ports: [{ port: 8080 }] }] })
  t.same(newEps.subsets, [{ addresses: [{ ip: '10.0.0.9' }], ports: [{ port: 8080 }] }], 'subsets, addresses and ports are atomic')
  t.same(directivesIn(out), [])
})

t.test('map directives', async t => {
  const labelled = { ...servedBasicIngress(), metadata: { name: 'basic', labels: { x: '1', y: '2' } } }
  const replaced = applyStrategicMergePatch('Ingress', labelled, { metadata: { labels: { $patch: 'replace', a: '1' } } })
  t.same((replaced.metadata as Record<string, unknown>).labels, { a: '1' }, '$patch: replace')
  const deleted = applyStrategicMergePatch('Service', servedService(), { spec: { selector: { $patch: 'delete' } } })
  t.same((deleted.spec as Record<string, unknown>).selector, {}, '$patch: delete empties the map (Kubernetes keeps it as {})')
  const fresh = applyStrategicMergePatch('Ingress', servedBasicIngress(), { metadata: { labels: { $patch: 'delete' } } })
  t.notOk(Object.hasOwn(fresh.metadata as object, 'labels'), '$patch: delete on a map the object lacks adds nothing')
  const freshReplace = applyStrategicMergePatch('Ingress', servedBasicIngress(), { metadata: { labels: { $patch: 'replace', a: '1', b: null } } })
  t.same((freshReplace.metadata as Record<string, unknown>).labels, { a: '1' }, '$patch: replace on a map the object lacks sets its other keys')
  const nested = applyStrategicMergePatch('Ingress', servedBasicIngress(), { spec: { defaultBackend: { serviceName: 'x', resource: null, extra: { $patch: 'delete' } } } })
  t.same((nested.spec as Record<string, unknown>).defaultBackend, { serviceName: 'x' }, 'a new value has its nulls and directives consumed')
})

t.test('$retainKeys', async t => {
  const out = applyStrategicMergePatch('Service', servedService(), { spec: { $retainKeys: ['externalName', 'type'], type: 'ExternalName', externalName: 'db.example.com' } })
  t.same(out.spec, { type: 'ExternalName', externalName: 'db.example.com' }, 'keys not listed are cleared, the listed ones merged')
  const keep = applyStrategicMergePatch('Service', servedService(), { spec: { $retainKeys: ['ports', 'selector', 'type'], clusterIP: null } })
  t.same(Object.keys(keep.spec as object).sort(), ['ports', 'selector', 'type'])
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { $retainKeys: ['type'], externalName: 'x' } }), ['retainKeys', 'externalName', 'spec'], 'a key set but not retained')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { $retainKeys: 'type' } }), ['retainKeys'], '$retainKeys not a list')
})

t.test('refused patches', async t => {
  for (const patch of [[], 'x', null, 42, true]) badRequest(t, () => applyStrategicMergePatch('Ingress', servedBasicIngress(), patch), ['must be a JSON object'], `patch ${JSON.stringify(patch)}`)
  badRequest(t, () => applyStrategicMergePatch('Ingress', servedBasicIngress(), { metadata: { labels: { $patch: 'bogus' } } }), ['unknown patch type', 'bogus', 'metadata.labels'], '$patch: bogus in a map')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { selector: { $patch: 'bogus' } } }), ['unknown patch type', 'bogus', 'spec.selector'], '$patch: bogus in a stored map')
  badRequest(t, () => applyStrategicMergePatch('Ingress', servedBasicIngress(), { metadata: { labels: { $patch: 'merge' } } }), ['unknown patch type', 'merge', 'metadata.labels'], '$patch: merge in a map (Kubernetes refuses it too)')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ port: 80, $patch: 'bogus' }] } }), ['unknown patch type', 'bogus', 'spec.ports[0]'], '$patch: bogus in a list')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ $patch: 'merge' }] } }), ['merging lists cannot yet be specified', 'spec.ports[0]'], '$patch: merge in a list')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ name: 'x' }] } }), ['merge key: port', 'spec.ports[0]'], 'an item without its merge key')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { ports: [{ $patch: 'delete', name: 'http' }] } }), ['merge key: port'], 'a delete without the merge key')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { $bogus: 1 } }), ['unknown directive', '$bogus'], 'an unknown $ key')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { metadata: { '$deleteFromPrimitiveList/finalizers': 'example.com/a' } }), ['primitive list', 'metadata.finalizers'], 'a deletion list that is not a list')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { '$setElementOrder/ports': { port: 80 } } }), ['setElementOrder', 'spec.ports'], 'an order that is not a list')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { $setElementOrder: [] } }), ['setElementOrder'], 'an order directive without a list name')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { spec: { '$setElementOrder/ports': [{ port: 80 }], ports: [{ port: 443 }] } }), ["doesn't match the $setElementOrder list"], 'a patch list item missing from the order')
  badRequest(t, () => applyStrategicMergePatch('Service', servedService(), { metadata: { finalizers: [['a']] } }), ['lists of lists'], 'a list of lists')
})

t.test('pure: neither argument changes, the result shares nothing with them', async t => {
  const live = deepFreeze(servedService())
  const patch = deepFreeze(JSON.parse(KUBECTL_133_SERVICE_PATCH) as Record<string, unknown>)
  const out = applyStrategicMergePatch('Service', live, patch)
  t.same(live, servedService())
  t.same(patch, JSON.parse(KUBECTL_133_SERVICE_PATCH))
  ;((out.spec as Record<string, unknown[]>).ports as Record<string, unknown>[]).forEach(p => { p.name = 'changed' })
  ;(out.metadata as Record<string, unknown>).labels = { a: 'b' }
  t.same(live, servedService(), 'changing the result does not reach the target')
  const again = applyStrategicMergePatch('Service', live, { spec: { ports: [{ port: 9000, name: 'n' }] } })
  t.not((again.spec as Record<string, unknown>).ports, (live.spec as Record<string, unknown>).ports)
})

t.test('a __proto__ key is a field like any other, never the prototype', async t => {
  const secret = JSON.parse('{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"__proto__":"eA=="}}') as Record<string, unknown>
  const out = applyStrategicMergePatch('Secret', secret, JSON.parse('{"metadata":{"__proto__":{"polluted":"yes"}},"data":{"__proto__":"eQ=="}}'))
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  t.same(Object.getOwnPropertyDescriptor(out.data, '__proto__')?.value, 'eQ==', 'a Secret data key named __proto__ is merged as data')
  t.same(Object.getOwnPropertyDescriptor(out.metadata, '__proto__')?.value, { polluted: 'yes' }, 'kept as an own field, for validation to judge')
  t.equal(Object.getPrototypeOf(out.metadata), Object.prototype)
})
