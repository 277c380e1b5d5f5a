/**
 * Table output as kubectl asks for it: the Accept negotiation, each kind's columns and cells as
 * Kubernetes' printers make them, ages as duration.HumanDuration writes them, and what rows
 * carry for each includeObject.
 */
import t from 'tap'
import { IngressdError } from '../../src/errors.js'
import { parseIncludeObject, tableColumns, tableFromObject, toTable, wantsTable } from '../../src/admin/kube/table.js'

const KUBECTL_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'
const CREATED = '2024-05-01T10:00:00Z'
const NOW = new Date(CREATED)

function meta (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, namespace: 'default', uid: '6f1c0b9e-0000-4000-8000-000000000001', resourceVersion: '7', generation: 1, creationTimestamp: CREATED, ...extra }
}

function cells (table: Record<string, unknown>): unknown[][] {
  return (table.rows as { cells: unknown[] }[]).map(r => r.cells)
}

const opts = { includeObject: 'Metadata' as const, listMeta: { resourceVersion: '42' }, tableVersion: 'v1' as const, now: NOW }

t.test('wantsTable negotiates the Accept list in order of preference', async t => {
  t.equal(wantsTable(KUBECTL_ACCEPT), 'v1', 'what kubectl get sends')
  t.equal(wantsTable('application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json'), 'v1', 'with spaces')
  t.equal(wantsTable('application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'), 'v1beta1', 'an older kubectl')
  t.equal(wantsTable('application/json, application/json;as=Table;v=v1;g=meta.k8s.io'), undefined, 'plain JSON first: no Table')
  t.equal(wantsTable('application/json'), undefined)
  t.equal(wantsTable('*/*'), undefined)
  t.equal(wantsTable(undefined), undefined)
  t.equal(wantsTable(''), undefined)
  t.equal(wantsTable('application/yaml;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io'), 'v1beta1', 'a Table in YAML is passed over')
  t.equal(wantsTable('application/json;as=Table;v=v2;g=meta.k8s.io,application/json'), undefined, 'an unknown Table version is passed over')
  t.equal(wantsTable('application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io'), 'v1', 'a transform ingressd does not make is passed over')
  t.equal(wantsTable('application/json;q=0.5,application/json;as=Table;v=v1;g=meta.k8s.io'), 'v1', 'q-values order the clauses')
  t.equal(wantsTable('Application/JSON;as=Table;v=v1;g=meta.k8s.io'), 'v1', 'media types are case-insensitive')
})

t.test('AGE is duration.HumanDuration of the time since creationTimestamp, at its boundaries', async t => {
  const S = 1000
  const M = 60 * S
  const H = 60 * M
  const D = 24 * H
  const Y = 365 * D
  // k8s.io/apimachinery pkg/util/duration/duration_test.go: TestHumanDuration and TestHumanDurationBoundaries.
  const cases: [number, string][] = [
    [S, '1s'], [70 * S, '70s'], [190 * S, '3m10s'], [70 * M, '70m'], [47 * H, '47h'], [49 * H, '2d1h'],
    [(8 * 24 + 2) * H, '8d'], [367 * D, '367d'], [(365 * 2 * 24 + 25) * H, '2y1d'], [(365 * 8 * 24 + 2) * H, '8y'],
    [-2 * S, '<invalid>'], [-2 * S + 1, '0s'], [0, '0s'], [S - 1, '0s'], [2 * M - 1, '119s'], [2 * M, '2m'],
    [2 * M + S, '2m1s'], [10 * M - 1, '9m59s'], [10 * M, '10m'], [10 * M + S, '10m'], [3 * H - 1, '179m'],
    [3 * H, '3h'], [3 * H + M, '3h1m'], [8 * H - 1, '7h59m'], [8 * H, '8h'], [8 * H + 59 * M, '8h'],
    [2 * D - 1, '47h'], [2 * D, '2d'], [2 * D + H, '2d1h'], [8 * D - 1, '7d23h'], [8 * D, '8d'], [8 * D + 23 * H, '8d'],
    [2 * Y - 1, '729d'], [2 * Y, '2y'], [2 * Y + 23 * H + 59 * M, '2y'], [2 * Y + D - 1, '2y'], [2 * Y + D, '2y1d'],
    [3 * Y, '3y'], [7 * Y, '7y'], [8 * Y - 1, '7y364d'], [8 * Y, '8y'], [8 * Y + 364 * D, '8y'], [9 * Y, '9y']
  ]
  for (const [ms, want] of cases) {
    const table = toTable('Endpoints', 'v1', [{ apiVersion: 'v1', kind: 'Endpoints', metadata: meta('e') }], { ...opts, now: new Date(NOW.getTime() + ms) })
    t.equal(cells(table)[0]?.[2], want, `${ms} ms`)
  }
  const unknown = toTable('Endpoints', 'v1', [{ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'e' } }], opts)
  t.equal(cells(unknown)[0]?.[2], '<unknown>', 'no creationTimestamp')
})

t.test('Ingress: NAME, CLASS, HOSTS, ADDRESS, PORTS, AGE as Kubernetes prints them', async t => {
  const rule = (host?: string): Record<string, unknown> => ({ ...(host === undefined ? {} : { host }), http: { paths: [] } })
  const items = [
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta('plain'), spec: { rules: [rule()] } },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: meta('shop'),
      spec: { ingressClassName: 'ingressd', tls: [{ hosts: ['a.example.com'], secretName: 's' }], rules: [rule('a.example.com'), rule('b.example.com')] },
      status: { loadBalancer: { ingress: [{ ip: '10.0.0.9' }, { hostname: 'lb.example.com' }, { ip: '10.0.0.10' }, { ip: '10.0.0.9' }, { ip: '10.0.0.11', hostname: 'ignored.example.com' }] } }
    },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta('many'), spec: { rules: ['a', 'b', 'c', 'd', 'e'].map(h => rule(`${h}.example.com`)) } }
  ]
  const table = toTable('Ingress', 'networking.k8s.io/v1', items, opts)
  t.same((table.columnDefinitions as { name: string }[]).map(c => c.name), ['Name', 'Class', 'Hosts', 'Address', 'Ports', 'Age'])
  t.same(cells(table), [
    ['plain', '<none>', '*', '', '80', '0s'],
    // The server prints wide: every address, each once, sorted (kubectl does not clip a server-printed cell).
    ['shop', 'ingressd', 'a.example.com,b.example.com', '10.0.0.10,10.0.0.11,10.0.0.9,lb.example.com', '80, 443', '0s'],
    ['many', '<none>', 'a.example.com,b.example.com,c.example.com + 2 more...', '', '80', '0s']
  ])
  const name = (table.columnDefinitions as { name: string, format: string, type: string, priority: number }[])[0]
  t.match(name, { name: 'Name', type: 'string', format: 'name', priority: 0 })
})

t.test('Service: TYPE defaults to ClusterIP; CLUSTER-IP, EXTERNAL-IP and PORT(S) as getServiceExternalIP and makePortString; SELECTOR is -o wide', async t => {
  const svc = (name: string, spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Service', metadata: meta(name), spec })
  const table = toTable('Service', 'v1', [
    svc('web', { clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 8080 }, { port: 443, protocol: 'TCP', nodePort: 30443 }], selector: { tier: 'front', app: 'web' } }),
    svc('dual', { clusterIPs: ['10.96.0.11', 'fd00::11'], clusterIP: '10.96.0.11', type: 'NodePort', ports: [{ port: 53, protocol: 'UDP' }] }),
    svc('lb', { type: 'LoadBalancer', ports: [{ port: 80 }] }),
    svc('ext', { type: 'ExternalName', externalName: 'backend.example.com' }),
    svc('bare', {})
  ], opts)
  const columns = table.columnDefinitions as { name: string, priority: number }[]
  t.same(columns.map(c => `${c.name}:${c.priority}`), ['Name:0', 'Type:0', 'Cluster-IP:0', 'External-IP:0', 'Port(s):0', 'Age:0', 'Selector:1'], 'every column is sent; kubectl shows priority 1 with -o wide')
  t.same(cells(table), [
    ['web', 'ClusterIP', '10.96.0.10', '<none>', '80/TCP,443:30443/TCP', '0s', 'app=web,tier=front'],
    ['dual', 'NodePort', '10.96.0.11', '<none>', '53/UDP', '0s', '<none>'],
    ['lb', 'LoadBalancer', '<none>', '<pending>', '80/TCP', '0s', '<none>'],
    ['ext', 'ExternalName', '<none>', 'backend.example.com', '<none>', '0s', '<none>'],
    ['bare', 'ClusterIP', '<none>', '<none>', '<none>', '0s', '<none>']
  ])
})

t.test('Endpoints: every ip:port, capped at three; <none> without addresses', async t => {
  const ep = (name: string, subsets?: unknown[]): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Endpoints', metadata: meta(name), ...(subsets === undefined ? {} : { subsets }) })
  const table = toTable('Endpoints', 'v1', [
    ep('web', [{ addresses: [{ ip: '10.1.0.1' }, { ip: '10.1.0.2' }], ports: [{ port: 8080 }] }]),
    ep('many', [{ addresses: [{ ip: '10.1.0.1' }, { ip: '10.1.0.2' }, { ip: 'fd00::3' }], ports: [{ name: 'http', port: 80 }, { name: 'https', port: 443 }] }]),
    ep('headless', [{ addresses: [{ ip: '10.1.0.7' }] }]),
    ep('empty'),
    ep('not-ready', [{ notReadyAddresses: [{ ip: '10.1.0.8' }], ports: [{ port: 80 }] }])
  ], opts)
  t.same(cells(table), [
    ['web', '10.1.0.1:8080,10.1.0.2:8080', '0s'],
    ['many', '10.1.0.1:80,10.1.0.2:80,[fd00::3]:80 + 3 more...', '0s'],
    ['headless', '10.1.0.7', '0s'],
    ['empty', '<none>', '0s'],
    ['not-ready', '<none>', '0s']
  ])
})

t.test('Secret: DATA counts every key, the write-only ones included, as a number', async t => {
  const table = toTable('Secret', 'v1', [
    { apiVersion: 'v1', kind: 'Secret', metadata: meta('tls'), type: 'kubernetes.io/tls', data: { 'tls.crt': 'Y2VydA==' }, status: { keyBytes: 241 } },
    { apiVersion: 'v1', kind: 'Secret', metadata: meta('tls-ca'), type: 'kubernetes.io/tls', data: { 'tls.crt': 'Y2VydA==', 'ca.crt': 'Y2E=' }, status: { keyBytes: 241 } },
    { apiVersion: 'v1', kind: 'Secret', metadata: meta('auth'), type: 'Opaque', data: {}, status: { data: { auth: { bytes: 45 }, realm: { bytes: 3 }, extra: { bytes: 1 } } } },
    { apiVersion: 'v1', kind: 'Secret', metadata: meta('empty'), type: 'Opaque', data: {} }
  ], opts)
  t.same(cells(table), [
    ['tls', 'kubernetes.io/tls', 2, '0s'],
    ['tls-ca', 'kubernetes.io/tls', 3, '0s'],
    ['auth', 'Opaque', 3, '0s'],
    ['empty', 'Opaque', 0, '0s']
  ])
  t.same(tableColumns('Secret').map(c => c.name), ['Name', 'Type', 'Data', 'Age'])
})

t.test('IngressClass: CONTROLLER and PARAMETERS (Kind.apiGroup/name)', async t => {
  const ic = (name: string, spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass', metadata: { ...meta(name), namespace: undefined }, spec })
  const table = toTable('IngressClass', 'networking.k8s.io/v1', [
    ic('ingressd', { controller: 'ingressd.io/controller' }),
    ic('with-params', { controller: 'example.com/c', parameters: { apiGroup: 'k8s.example.com', kind: 'IngressParameters', name: 'external-lb' } }),
    ic('core-params', { controller: 'example.com/c', parameters: { kind: 'ConfigMap', name: 'cm' } })
  ], opts)
  t.same(cells(table), [
    ['ingressd', 'ingressd.io/controller', '<none>', '0s'],
    ['with-params', 'example.com/c', 'IngressParameters.k8s.example.com/external-lb', '0s'],
    ['core-params', 'example.com/c', 'ConfigMap/cm', '0s']
  ])
})

t.test('rows carry PartialObjectMetadata by default, the object, or nothing; the Table carries the list metadata', async t => {
  const ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta('shop', { labels: { app: 'shop' } }), spec: {}, status: { loadBalancer: {} } }
  const table = toTable('Ingress', 'networking.k8s.io/v1', [ingress], { ...opts, listMeta: { resourceVersion: '42', continue: 'abc' } })
  t.match(table, { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: '42', continue: 'abc' } })
  const row = (table.rows as { object: unknown }[])[0]
  t.same(row?.object, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: ingress.metadata }, 'kubectl reads namespace (-A) and labels (--show-labels) from it')

  const beta = toTable('Ingress', 'networking.k8s.io/v1', [ingress], { ...opts, tableVersion: 'v1beta1' })
  t.equal(beta.apiVersion, 'meta.k8s.io/v1beta1')
  t.equal((beta.rows as { object: { apiVersion: string } }[])[0]?.object.apiVersion, 'meta.k8s.io/v1beta1')

  const full = toTable('Ingress', 'networking.k8s.io/v1', [ingress], { ...opts, includeObject: 'Object' })
  t.same((full.rows as { object: unknown }[])[0]?.object, ingress, 'the whole object, as served (kubectl --sort-by asks for it)')

  const none = toTable('Ingress', 'networking.k8s.io/v1', [ingress], { ...opts, includeObject: 'None' })
  t.equal((none.rows as { object: unknown }[])[0]?.object, null, 'null, as Kubernetes encodes an empty RawExtension')

  const empty = toTable('Ingress', 'networking.k8s.io/v1', [], opts)
  t.same(empty.rows, [], 'an empty list has rows: [] and its columns')
  t.equal((empty.columnDefinitions as unknown[]).length, 6)

  const noHeaders = toTable('Ingress', 'networking.k8s.io/v1', [ingress], { ...opts, noHeaders: true })
  t.equal(noHeaders.columnDefinitions, null, 'watch events after the first')
  t.same(JSON.parse(JSON.stringify(noHeaders)).columnDefinitions, null)
})

t.test('tableFromObject: one object, the Table at its resourceVersion', async t => {
  const ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta('shop', { resourceVersion: '17' }), spec: {} }
  const table = tableFromObject('Ingress', 'networking.k8s.io/v1', ingress, { includeObject: 'Metadata', tableVersion: 'v1', now: NOW })
  t.same(table.metadata, { resourceVersion: '17' })
  t.equal(cells(table)[0]?.[0], 'shop')
})

t.test('parseIncludeObject: Metadata by default; an unknown value is a 400 as Kubernetes words it', async t => {
  t.equal(parseIncludeObject(undefined), 'Metadata')
  t.equal(parseIncludeObject(''), 'Metadata')
  t.equal(parseIncludeObject('Object'), 'Object')
  t.equal(parseIncludeObject('None'), 'None')
  const err = t.throws(() => parseIncludeObject('Everything')) as IngressdError
  t.ok(err instanceof IngressdError)
  t.equal(err.status, 400)
  t.match(err.message, /^Unable to convert to Table as requested: includeObject: Unsupported value: "Everything": supported values: "Metadata", "None", "Object"$/)
})
