import { readFileSync } from 'node:fs'
import t from 'tap'
import Type from 'typebox'
import { parseAllDocuments } from 'yaml'
import { ingressSpecFromBeta } from '../../src/resources/ingress.js'
import { kindDefinition } from '../../src/resources/kinds.js'
import { findUnknownFields, pruneUnknownFields, strictDecodingMessage, unknownFieldWarnings } from '../../src/resources/unknown-fields.js'
import type { KindName } from '../../src/resources/stored.js'

/** The input schema a kind is validated with in an apiVersion. */
function inputSchema (kind: KindName, apiVersion: string): Parameters<typeof findUnknownFields>[0] {
  const version = kindDefinition(kind).versions[apiVersion]
  if (version === undefined) throw new Error(`${kind} has no version ${apiVersion}`)
  return version.input
}

// The tutorial's manifests (the seed: a Korean blog post on Ingress), verbatim in examples/.
const EXAMPLES = new URL('../../examples/', import.meta.url)
const TUTORIAL = ['ingress-basic.yaml', 'ingress-ssl.yaml'].map(f => readFileSync(new URL(f, EXAMPLES), 'utf8')).join('---\n')

const manifests = parseAllDocuments(TUTORIAL).map(d => d.toJS() as Record<string, unknown>)

t.test('the tutorial\'s manifests have no unknown fields, in every Ingress version', async t => {
  t.equal(manifests.length, 2)
  for (const manifest of manifests) {
    const name = (manifest.metadata as { name: string }).name
    for (const apiVersion of ['extensions/v1beta1', 'networking.k8s.io/v1beta1']) {
      const beta = { ...manifest, apiVersion }
      t.same(findUnknownFields(inputSchema('Ingress', apiVersion), beta), [], `${name} as ${apiVersion}`)
      t.same(pruneUnknownFields(inputSchema('Ingress', apiVersion), beta), beta, `${name} as ${apiVersion}: nothing pruned`)
    }
    const v1 = { ...manifest, apiVersion: 'networking.k8s.io/v1', spec: ingressSpecFromBeta(manifest.spec as Parameters<typeof ingressSpecFromBeta>[0]) }
    t.same(findUnknownFields(inputSchema('Ingress', 'networking.k8s.io/v1'), v1), [], `${name} converted to networking.k8s.io/v1`)
  }
})

/** The v1 form of ingress-basic.yaml, with unknown fields at several depths, inside list items too. */
function withUnknownFields (): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    foo: 'top level',
    metadata: { name: 'basic', annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/' } },
    spec: {
      foo: 1,
      tls: [{ hosts: ['www.basic1.com'], secretName: 'my-https', extra: true }],
      rules: [
        {
          host: 'www.basic1.com',
          http: {
            foo: { nested: 'whole subtree' },
            paths: [
              { path: '/path1', pathType: 'Prefix', backend: { service: { name: 'service1', port: { number: 80 } } } },
              { path: '/path2', pathType: 'Prefix', backend: { service: { name: 'service2', port: { number: 80, bogus: 'x' } }, servicePort: 80 } }
            ]
          }
        },
        { host: 'www.basic2.com', hostname: 'typo', http: { paths: [{ pathType: 'Prefix', path: '/', backend: { service: { name: 'service2', port: { number: 80 } } } }] } }
      ]
    }
  }
}

t.test('unknown fields at several depths, in document order', async t => {
  const schema = inputSchema('Ingress', 'networking.k8s.io/v1')
  const manifest = withUnknownFields()
  const unknown = findUnknownFields(schema, manifest)
  t.same(unknown, [
    '.foo',
    '.spec.foo',
    '.spec.tls[0].extra',
    '.spec.rules[0].http.foo',
    '.spec.rules[0].http.paths[1].backend.service.port.bogus',
    '.spec.rules[0].http.paths[1].backend.servicePort',
    '.spec.rules[1].hostname'
  ])
  const pruned = pruneUnknownFields(schema, manifest) as Record<string, unknown>
  const expected = withUnknownFields() as Record<string, any>
  delete expected.foo
  delete expected.spec.foo
  delete expected.spec.tls[0].extra
  delete expected.spec.rules[0].http.foo
  delete expected.spec.rules[0].http.paths[1].backend.service.port.bogus
  delete expected.spec.rules[0].http.paths[1].backend.servicePort
  delete expected.spec.rules[1].hostname
  t.same(pruned, expected, 'pruned: exactly those fields are gone')
  t.same(findUnknownFields(schema, pruned), [], 'nothing unknown is left')
  t.same(manifest, withUnknownFields(), 'the input is not modified')
  t.not((pruned.metadata as object), manifest.metadata, 'the pruned copy shares nothing with the input')
  t.same(findUnknownFields(inputSchema('Ingress', 'extensions/v1beta1'), { ...manifests[0], spec: { ...(manifests[0]?.spec as object), backend: { serviceName: 's', servicePort: 80, service: { name: 's' } } } }), ['.spec.backend.service'], 'a v1 field in a v1beta1 object is unknown there')
})

t.test('what Kubernetes clients send back counts as known', async t => {
  // Server-managed metadata, and what a manifest exported from a cluster (kubectl get -o yaml) carries.
  const metadata = {
    name: 'basic',
    generateName: 'basic-',
    namespace: 'default',
    selfLink: '/apis/networking.k8s.io/v1/namespaces/default/ingresses/basic',
    uid: '0b6f7a1e-4a53-4d8e-9e1f-2f7c1d3a9b10',
    resourceVersion: '7',
    generation: 2,
    creationTimestamp: '2026-01-01T00:00:00Z',
    deletionTimestamp: '2026-01-02T00:00:00Z',
    deletionGracePeriodSeconds: 0,
    labels: { app: 'shop' },
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}\n' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'service1', uid: 'u1', controller: true, blockOwnerDeletion: true }],
    finalizers: ['example.com/cleanup'],
    managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'networking.k8s.io/v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:rules': {} } } }]
  }
  const ingress = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata,
    spec: { rules: [{ host: 'www.basic1.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'service1', port: { number: 80 } } } }] } }] },
    status: { loadBalancer: { ingress: [{ ip: '127.0.0.1' }] }, conditions: [{ type: 'Served', status: 'True', reason: 'Compiled', message: '' }] }
  }
  t.same(findUnknownFields(inputSchema('Ingress', 'networking.k8s.io/v1'), ingress), [], 'Ingress (networking.k8s.io/v1) read back')
  t.same(findUnknownFields(inputSchema('Ingress', 'extensions/v1beta1'), { ...ingress, apiVersion: 'extensions/v1beta1', spec: manifests[0]?.spec }), [], 'Ingress (extensions/v1beta1) read back')
  t.same(findUnknownFields(inputSchema('Service', 'v1'), {
    apiVersion: 'v1',
    kind: 'Service',
    metadata,
    spec: { type: 'ClusterIP', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], clusterIP: '10.0.0.1', clusterIPs: ['10.0.0.1'], sessionAffinity: 'None', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' },
    status: { loadBalancer: {} }
  }), [], 'Service read back')
  t.same(findUnknownFields(inputSchema('Endpoints', 'v1'), {
    apiVersion: 'v1', kind: 'Endpoints', metadata, subsets: [{ addresses: [{ ip: '127.0.0.1', targetRef: { kind: 'Pod', name: 'p' } }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }]
  }), [], 'Endpoints read back')
  t.same(findUnknownFields(inputSchema('IngressClass', 'networking.k8s.io/v1'), {
    apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata, spec: { controller: 'k8s.io/ingress-nginx' }
  }), [], 'IngressClass read back')
  t.same(findUnknownFields(inputSchema('Secret', 'v1'), {
    apiVersion: 'v1', kind: 'Secret', metadata, type: 'kubernetes.io/tls', data: { 'tls.crt': 'LS0t' }, immutable: false
  }), [], 'Secret read back, without status')
})

t.test('a Secret read back with the status ingressd serves it with has no unknown fields', async t => {
  t.same(findUnknownFields(inputSchema('Secret', 'v1'), {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'my-https' }, type: 'kubernetes.io/tls', data: {}, status: { keyBytes: 1704 }
  }), [])
})

t.test('metadata is open: fields a manifest exported from a cluster carries are accepted and dropped, never refused', async t => {
  // A deliberate difference from Kubernetes' strict decoding: ObjectMetaInput keeps additionalProperties, so exports
  // with managedFields, selfLink or fields of older releases (clusterName) apply as they are.
  t.same(findUnknownFields(inputSchema('Ingress', 'networking.k8s.io/v1'), { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', spec: { rules: [] }, metadata: { name: 'basic', bogus: 1, clusterName: 'x', managedFields: [] } }), [])
})

t.test('the strict decoding message and the warnings', async t => {
  t.equal(strictDecodingMessage('Ingress', 'v1', ['.spec.foo', '.metadata.bogus']),
    'Ingress in version "v1" cannot be handled as a Ingress: strict decoding error: unknown field "spec.foo", unknown field "metadata.bogus"')
  t.equal(strictDecodingMessage('Ingress', 'networking.k8s.io/v1', ['.spec.rules[0].http.foo']),
    'Ingress in version "v1" cannot be handled as a Ingress: strict decoding error: unknown field "spec.rules[0].http.foo"', 'an apiVersion is cut to its version')
  t.equal(strictDecodingMessage('Ingress', 'extensions/v1beta1', ['.foo']),
    'Ingress in version "v1beta1" cannot be handled as a Ingress: strict decoding error: unknown field "foo"')
  t.equal(strictDecodingMessage('Secret', 'v1', ['.data2']), 'Secret in version "v1" cannot be handled as a Secret: strict decoding error: unknown field "data2"', 'a core kind')
  t.equal(strictDecodingMessage('Service', 'v1', ['.spec.we"ird\nkey']), 'Service in version "v1" cannot be handled as a Service: strict decoding error: unknown field "spec.we\\"ird\\nkey"', 'quoted as Go quotes')
  const many = Array.from({ length: 150 }, (_, i) => `.f${i}`)
  t.equal(strictDecodingMessage('Ingress', 'v1', many).split('unknown field').length - 1, 100, 'at most 100 errors, as the strict decoder keeps')
  t.same(unknownFieldWarnings(['.spec.foo', '.metadata.bogus']), ['unknown field "spec.foo"', 'unknown field "metadata.bogus"'])
})

t.test('schema shapes', async t => {
  const Port = Type.Object({ number: Type.Integer() }, { $id: 'Port', additionalProperties: false })
  const refSchema = Type.Object({ port: Type.Ref('Port'), ports: Type.Array(Type.Ref('Port')) }, { additionalProperties: false })
  t.same(findUnknownFields(refSchema, { port: { number: 1, x: 1 }, ports: [{ number: 2 }, { y: 2 }] }, [Port]), ['.port.x', '.ports[1].y'], 'Type.Ref to a schema given by $id')
  t.same(findUnknownFields(refSchema, { port: { number: 1, x: 1 } }), [], 'an unresolvable $ref accepts anything')
  const Tree = Type.Cyclic({ Node: Type.Object({ name: Type.String(), children: Type.Optional(Type.Array(Type.Ref('Node'))) }, { additionalProperties: false }) }, 'Node')
  t.same(findUnknownFields(Tree, { name: 'a', children: [{ name: 'b', children: [{ name: 'c', extra: 1 }] }] }), ['.children[0].children[0].extra'], 'Type.Cyclic ($defs)')
  const union = Type.Object({
    backend: Type.Union([
      Type.Object({ kind: Type.Literal('service'), name: Type.String(), port: Type.Integer() }, { additionalProperties: false }),
      Type.Object({ kind: Type.Literal('resource'), name: Type.String(), apiGroup: Type.Optional(Type.String()) }, { additionalProperties: false }),
      Type.String()
    ])
  }, { additionalProperties: false })
  t.same(findUnknownFields(union, { backend: { kind: 'resource', name: 'b', apiGroup: 'x', port: 1 } }), ['.backend.port'], 'the union branch that fits best')
  t.same(findUnknownFields(union, { backend: { kind: 'service', name: 'b', bogus: 1 } }), ['.backend.bogus'], 'a tie broken by the const discriminator')
  t.same(findUnknownFields(union, { backend: 'svc' }), [], 'a primitive branch')
  t.same(findUnknownFields(union, { backend: [1] }), [], 'no branch fits: the type check reports it, not this')
  const record = Type.Object({ labels: Type.Record(Type.String(), Type.String()), byName: Type.Record(Type.String(), Type.Object({ a: Type.String() }, { additionalProperties: false })) }, { additionalProperties: false })
  t.same(findUnknownFields(record, { labels: { anything: 'x', 'a/b.c': 'y' }, byName: { k: { a: 'x', b: 'y' } } }), ['.byName.k.b'], 'Type.Record: every key known, values checked')
  const open = Type.Object({ spec: Type.Object({ a: Type.Optional(Type.String()) }, { additionalProperties: true }), raw: Type.Unknown(), loose: Type.Object({ a: Type.Optional(Type.Object({ b: Type.String() }, { additionalProperties: false })) }) }, { additionalProperties: false })
  t.same(findUnknownFields(open, { spec: { b: { c: 1 } }, raw: { anything: [1] }, loose: { z: 1, a: { b: 'x', c: 1 } } }), ['.loose.a.c'], 'open objects and Type.Unknown accept anything below them; their declared fields are still checked')
  const unsafe = Type.Object({ u: Type.Unsafe<{ a: string }>({ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false }) }, { additionalProperties: false })
  t.same(findUnknownFields(unsafe, { u: { a: 'x', b: 1 } }), ['.u.b'], 'Type.Unsafe')
  const both = Type.Intersect([Type.Object({ a: Type.String() }), Type.Object({ b: Type.String() })], { unevaluatedProperties: false })
  t.same(findUnknownFields(both, { a: 'x', b: 'y', c: 'z' }), ['.c'], 'Type.Intersect closed with unevaluatedProperties')
  const nullable = Type.Object({ t: Type.Union([Type.Object({ a: Type.String() }, { additionalProperties: false }), Type.Null()]) }, { additionalProperties: false })
  t.same(findUnknownFields(nullable, { t: null }), [])
  t.same(findUnknownFields(nullable, { t: { a: 'x', z: 1 } }), ['.t.z'])
  t.same(findUnknownFields(refSchema, 'not an object'), [], 'a value of the wrong type: nothing to report here')
  t.same(pruneUnknownFields(union, { backend: { kind: 'service', name: 'b', port: 1, bogus: 1 } }), { backend: { kind: 'service', name: 'b', port: 1 } })
})

t.test('a __proto__ key is a field like any other, never the prototype', async t => {
  const secret = JSON.parse('{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"__proto__":"eA=="},"__proto__":{"polluted":"yes"}}') as unknown
  t.same(findUnknownFields(inputSchema('Secret', 'v1'), secret), ['.__proto__'], 'unknown at the top, known as a data key')
  const pruned = pruneUnknownFields(inputSchema('Secret', 'v1'), secret) as Record<string, Record<string, unknown>>
  t.equal(Object.getOwnPropertyDescriptor(pruned.data, '__proto__')?.value, 'eA==')
  t.equal(Object.getPrototypeOf(pruned), Object.prototype)
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})
