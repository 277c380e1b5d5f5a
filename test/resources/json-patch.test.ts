import t, { type Test } from 'tap'
import { IngressdError, type ErrorCode } from '../../src/errors.js'
import { applyJsonPatch, MAX_JSON_PATCH_OPERATIONS } from '../../src/resources/json-patch.js'

/** The tutorial's Ingress as ingressd serves it at networking.k8s.io/v1. */
function servedIngress (): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      name: 'basic',
      namespace: 'default',
      annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/' },
      uid: '0b6f7a1e-4a53-4d8e-9e1f-2f7c1d3a9b10',
      resourceVersion: '7',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z'
    },
    spec: {
      rules: [{
        host: 'www.basic1.com',
        http: {
          paths: [
            { path: '/path1', pathType: 'ImplementationSpecific', backend: { service: { name: 'service1', port: { number: 80 } } } },
            { path: '/path2', pathType: 'ImplementationSpecific', backend: { service: { name: 'service2', port: { number: 80 } } } }
          ]
        }
      }]
    }
  }
}

function refused (t: Test, fn: () => unknown, code: ErrorCode, message: string | RegExp, name: string): void {
  try {
    fn()
    t.fail(`${name}: no error`)
  } catch (err) {
    t.ok(err instanceof IngressdError, `${name}: an IngressdError`)
    t.equal((err as IngressdError).code, code, `${name}: ${code}`)
    t.match((err as Error).message, message, `${name}: message`)
  }
}

const labels = (o: Record<string, unknown>): unknown => (o.metadata as Record<string, unknown>).labels
const annotations = (o: Record<string, unknown>): Record<string, string> => (o.metadata as { annotations: Record<string, string> }).annotations

t.test('kubectl patch --type=json: labels', async t => {
  const live = { ...servedIngress(), metadata: { ...(servedIngress().metadata as object), labels: { app: 'shop' } } }
  const added = applyJsonPatch(live, [{ op: 'add', path: '/metadata/labels/tier', value: 'web' }])
  t.same(labels(added), { app: 'shop', tier: 'web' }, 'add /metadata/labels/tier')
  const removed = applyJsonPatch(added, [{ op: 'remove', path: '/metadata/labels/tier' }])
  t.same(labels(removed), { app: 'shop' }, 'remove /metadata/labels/tier')
  const created = applyJsonPatch(servedIngress(), [{ op: 'add', path: '/metadata/labels', value: { tier: 'web' } }])
  t.same(labels(created), { tier: 'web' }, 'add the whole map when there is none')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'add', path: '/metadata/labels/tier', value: 'web' }]), 'INGRESSD_ERR_BAD_REQUEST',
    'add operation does not apply: doc is missing path: "/metadata/labels/tier": missing value', 'add below a missing map')
  refused(t, () => applyJsonPatch(live, [{ op: 'remove', path: '/metadata/labels/tier' }]), 'INGRESSD_ERR_BAD_REQUEST',
    "error in remove for path: '/metadata/labels/tier': Unable to remove nonexistent key: tier: missing value", 'remove a missing key')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'remove', path: '/metadata/labels/tier' }]), 'INGRESSD_ERR_BAD_REQUEST',
    'remove operation does not apply: doc is missing path: "/metadata/labels/tier": missing value', 'remove below a missing map')
})

t.test('replace a backend service name deep in a list', async t => {
  const out = applyJsonPatch(servedIngress(), [{ op: 'replace', path: '/spec/rules/0/http/paths/0/backend/service/name', value: 'service3' }])
  const paths = (out.spec as { rules: { http: { paths: { backend: { service: { name: string } } }[] } }[] }).rules[0]?.http.paths
  t.equal(paths?.[0]?.backend.service.name, 'service3')
  t.equal(paths?.[1]?.backend.service.name, 'service2', 'the other path untouched')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'replace', path: '/spec/ingressClassName', value: 'nginx' }]), 'INGRESSD_ERR_BAD_REQUEST',
    'replace operation does not apply: doc is missing key: /spec/ingressClassName: missing value', 'replace a missing key')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'replace', path: '/spec/rules/5/host', value: 'x' }]), 'INGRESSD_ERR_BAD_REQUEST',
    /replace operation does not apply: doc is missing path: \/spec\/rules\/5\/host/, 'replace below a missing index')
  const appended = applyJsonPatch(servedIngress(), [{ op: 'add', path: '/spec/rules/-', value: { host: 'www.basic2.com' } }])
  t.equal((appended.spec as { rules: unknown[] }).rules.length, 2, 'add at /- appends')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'add', path: '/spec/rules/3', value: {} }]), 'INGRESSD_ERR_BAD_REQUEST',
    /Unable to access invalid index: 3/, 'add past the end')
})

t.test('escaped pointers: ~1 for / and ~0 for ~ in annotation keys', async t => {
  const out = applyJsonPatch(servedIngress(), [
    { op: 'replace', path: '/metadata/annotations/nginx.ingress.kubernetes.io~1rewrite-target', value: '/$1' },
    { op: 'add', path: '/metadata/annotations/example.com~1a~0b', value: 'x' }
  ])
  t.same(annotations(out), { 'nginx.ingress.kubernetes.io/rewrite-target': '/$1', 'example.com/a~b': 'x' })
  const removed = applyJsonPatch(out, [{ op: 'remove', path: '/metadata/annotations/nginx.ingress.kubernetes.io~1rewrite-target' }])
  t.same(annotations(removed), { 'example.com/a~b': 'x' })
})

t.test('test operations', async t => {
  const out = applyJsonPatch(servedIngress(), [
    { op: 'test', path: '/metadata/resourceVersion', value: '7' },
    { op: 'replace', path: '/spec/rules/0/host', value: 'www.example.com' }
  ])
  t.equal((out.spec as { rules: { host: string }[] }).rules[0]?.host, 'www.example.com', 'a passing test lets the rest apply')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'test', path: '/metadata/resourceVersion', value: '6' }, { op: 'replace', path: '/spec/rules/0/host', value: 'x' }]),
    'INGRESSD_ERR_INVALID', 'the server rejected our request due to an error in our request: testing value /metadata/resourceVersion failed: test failed', 'a failing test')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'test', path: '/spec/x', value: 1 }]), 'INGRESSD_ERR_INVALID', 'testing value /spec/x failed', 'a test of a missing value')
})

t.test('move and copy', async t => {
  const out = applyJsonPatch(servedIngress(), [
    { op: 'copy', from: '/spec/rules/0', path: '/spec/rules/-' },
    { op: 'replace', path: '/spec/rules/1/host', value: 'www.basic2.com' },
    { op: 'move', from: '/metadata/annotations', path: '/metadata/labels' }
  ])
  t.same((out.spec as { rules: { host: string }[] }).rules.map(r => r.host), ['www.basic1.com', 'www.basic2.com'])
  t.same(labels(out), { 'nginx.ingress.kubernetes.io/rewrite-target': '/' })
  t.notOk(Object.hasOwn(out.metadata as object, 'annotations'))
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'move', from: '/spec/nothing', path: '/spec/x' }]), 'INGRESSD_ERR_BAD_REQUEST',
    'move operation does not apply: doc is missing from path: /spec/nothing: missing value', 'move from a missing path')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'copy', path: '/spec/x' }]), 'INGRESSD_ERR_BAD_REQUEST', /missing from field/, 'copy without from')
})

t.test('refused patches', async t => {
  for (const patch of [{}, 'x', null, 1, { op: 'add', path: '/a', value: 1 }]) {
    refused(t, () => applyJsonPatch(servedIngress(), patch), 'INGRESSD_ERR_BAD_REQUEST', 'must be a JSON array of operations', `patch ${JSON.stringify(patch)}`)
  }
  refused(t, () => applyJsonPatch(servedIngress(), ['add']), 'INGRESSD_ERR_BAD_REQUEST', 'operation 0 must be an object', 'an operation that is not an object')
  for (const op of ['bogus', '_get', undefined, 'ADD']) {
    refused(t, () => applyJsonPatch(servedIngress(), [{ op, path: '/spec' }]), 'INGRESSD_ERR_BAD_REQUEST', `Unexpected kind: ${String(op)}`, `op ${String(op)}`)
  }
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'add', path: '/spec/x' }]), 'INGRESSD_ERR_BAD_REQUEST', /missing value field/, 'add without value')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'add', path: 'spec/x', value: 1 }]), 'INGRESSD_ERR_BAD_REQUEST', /failed to decode path/, 'a path that is not a pointer')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'add', path: '/spec/rules/one', value: 1 }]), 'INGRESSD_ERR_BAD_REQUEST', /not a proper array index/, 'a word for an index')
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'add', path: '/__proto__/polluted', value: 1 }]), 'INGRESSD_ERR_BAD_REQUEST', /__proto__/, 'prototype pollution')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  refused(t, () => applyJsonPatch(servedIngress(), [{ op: 'replace', path: '', value: [1] }]), 'INGRESSD_ERR_BAD_REQUEST', 'must be a JSON object, not an array', 'the whole document replaced by an array')
  refused(t, () => applyJsonPatch(servedIngress(), Array.from({ length: MAX_JSON_PATCH_OPERATIONS + 1 }, () => ({ op: 'test', path: '/kind', value: 'Ingress' }))),
    'INGRESSD_ERR_BODY_TOO_LARGE', `The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${MAX_JSON_PATCH_OPERATIONS + 1}`, 'too many operations')
  const whole = applyJsonPatch(servedIngress(), [{ op: 'replace', path: '', value: { kind: 'Ingress' } }])
  t.same(whole, { kind: 'Ingress' }, 'the whole document may be replaced by an object')
  t.same(applyJsonPatch(servedIngress(), []), servedIngress(), 'an empty patch changes nothing')
})

t.test('all or nothing, and pure', async t => {
  const live = servedIngress()
  const patch = [
    { op: 'add', path: '/metadata/labels', value: { tier: 'web' } },
    { op: 'remove', path: '/spec/nothing' }
  ]
  refused(t, () => applyJsonPatch(live, patch), 'INGRESSD_ERR_BAD_REQUEST', /Unable to remove nonexistent key: nothing/, 'the second operation fails')
  t.same(live, servedIngress(), 'the first operation did not reach the target')
  const value = { tier: 'web' }
  const out = applyJsonPatch(live, [{ op: 'add', path: '/metadata/labels', value }])
  value.tier = 'changed'
  t.same(labels(out), { tier: 'web' }, 'the result does not share the operation\'s value')
  ;(out.spec as Record<string, unknown>).ingressClassName = 'x'
  t.same(live, servedIngress(), 'nor the target')
})
