/**
 * The client's pure parts: kubectl's tabwriter layout and ages, kind names, table cells, and
 * one-line errors.
 */
import t from 'tap'
import { ApiError, ConnectionError, errorLine } from '../../src/cli/client.js'
import { CLIENT_KINDS, collectionPath, itemPath, kindOfManifest, qualifiedKind, resolveKind } from '../../src/cli/kinds.js'
import { formatEndpoints, formatHosts, formatServicePorts, printerFor, secretDataKeys, servicePortEndpoints } from '../../src/cli/printers.js'
import { formatTable, humanDuration, tabulate, age } from '../../src/cli/table.js'
import { findClientCommand } from '../../src/cli/verbs.js'
import { KINDS } from '../../src/resources/kinds.js'

t.test('tabulate lays out text as Go\'s tabwriter does for kubectl describe', async t => {
  const text = [
    'Name:\tbasic',
    'Default backend:\t<default>',
    'Rules:',
    '  Host\tPath\tBackends',
    '  ----\t----\t--------',
    '  www.basic1.com\t',
    '    \t/path1 \tservice1:80 (127.0.0.1:9000)',
    '  www.basic2.com\t',
    '    \t \tservice2:80 (<none>)',
    'Annotations:\ta: b',
    ''
  ].join('\n')
  t.equal(tabulate(text), [
    'Name:             basic',
    'Default backend:  <default>',
    'Rules:',
    '  Host            Path  Backends',
    '  ----            ----  --------',
    '  www.basic1.com  ',
    '                  /path1   service1:80 (127.0.0.1:9000)',
    '  www.basic2.com  ',
    '                     service2:80 (<none>)',
    'Annotations:      a: b',
    ''
  ].join('\n'))
  t.equal(tabulate('Name:\tbasic\nDefault backend:\t<default>\n'), 'Name:             basic\nDefault backend:  <default>\n', 'a column is as wide as its widest cell plus two')
  t.equal(tabulate('a\tb\n\nlonger\tc\n'), 'a  b\n\nlonger  c\n', 'a line without cells ends the block')
  t.equal(tabulate('é\tx\nab\ty\n'), 'é   x\nab  y\n', 'widths count characters, not bytes')
})

t.test('formatTable pads as kubectl get does: three spaces, six at least', async t => {
  t.equal(formatTable(['NAME', 'AGE'], [['a', '1s']]), 'NAME   AGE\na      1s\n')
  t.equal(formatTable(['NAME', 'TYPE', 'AGE'], [['service1', 'ClusterIP', '5s'], ['x', 'ExternalName', '10d']]), [
    'NAME       TYPE           AGE',
    'service1   ClusterIP      5s',
    'x          ExternalName   10d',
    ''
  ].join('\n'))
})

t.test('ages read as kubectl\'s AGE column', async t => {
  const s = 1000
  const m = 60 * s
  const h = 60 * m
  const d = 24 * h
  const cases: [number, string][] = [
    [-5 * s, '<invalid>'], [-1500, '0s'], [0, '0s'], [5 * s, '5s'], [119 * s, '119s'], [2 * m, '2m'], [3 * m + 20 * s, '3m20s'],
    [10 * m, '10m'], [179 * m, '179m'], [3 * h, '3h'], [3 * h + 5 * m, '3h5m'], [8 * h, '8h'], [47 * h, '47h'],
    [2 * d, '2d'], [2 * d + 2 * h, '2d2h'], [8 * d, '8d'], [400 * d, '400d'], [730 * d, '2y'], [740 * d, '2y10d'], [9 * 365 * d, '9y']
  ]
  for (const [ms, text] of cases) t.equal(humanDuration(ms), text, `${ms}ms`)
  t.equal(age('2024-01-01T00:00:00Z', new Date('2024-01-01T00:03:00Z')), '3m')
  t.equal(age(undefined), '<unknown>')
})

t.test('kind names: kubectl\'s plural, singular, short and qualified names', async t => {
  const names: [string, string][] = [
    ['ingress', 'Ingress'], ['ingresses', 'Ingress'], ['ing', 'Ingress'], ['Ingress', 'Ingress'], ['ingresses.networking.k8s.io', 'Ingress'], ['ingress.extensions', 'Ingress'],
    ['service', 'Service'], ['services', 'Service'], ['svc', 'Service'],
    ['endpoints', 'Endpoints'], ['ep', 'Endpoints'],
    ['secret', 'Secret'], ['secrets', 'Secret'],
    ['ingressclass', 'IngressClass'], ['ingressclasses', 'IngressClass']
  ]
  for (const [name, kind] of names) t.equal(resolveKind(name)?.kind, kind, name)
  for (const name of ['pods', 'deploy', 'svc.networking.k8s.io', '']) t.equal(resolveKind(name), undefined, `${name} is not served`)

  const ing = resolveKind('ing')
  const svc = resolveKind('svc')
  const ic = resolveKind('ingressclass')
  if (ing === undefined || svc === undefined || ic === undefined) throw new Error('kinds missing')
  t.equal(collectionPath(ing, 'default'), '/apis/networking.k8s.io/v1/namespaces/default/ingresses')
  t.equal(collectionPath(ing, undefined), '/apis/networking.k8s.io/v1/ingresses')
  t.equal(itemPath(svc, 'team-b', 'web'), '/api/v1/namespaces/team-b/services/web')
  t.equal(itemPath(ic, 'default', 'nginx'), '/apis/networking.k8s.io/v1/ingressclasses/nginx', 'cluster-scoped')
  t.equal(itemPath(ing, 'default', 'basic', 'extensions/v1beta1'), '/apis/extensions/v1beta1/namespaces/default/ingresses/basic')
  t.equal(qualifiedKind(ing), 'ingress.networking.k8s.io')
  t.equal(qualifiedKind(ing, 'extensions/v1beta1'), 'ingress.extensions')
  t.equal(qualifiedKind(svc), 'service')
  t.equal(kindOfManifest('extensions/v1beta1', 'Ingress'), ing)
  t.equal(kindOfManifest('apps/v1', 'Deployment'), undefined)
  t.equal(kindOfManifest('apps/v1', 'Service'), undefined)
})

t.test('the client\'s kinds match the API\'s', async t => {
  t.equal(CLIENT_KINDS.length, KINDS.length)
  for (const def of KINDS) {
    const k = CLIENT_KINDS.find(c => c.kind === def.kind)
    t.same(k === undefined ? undefined : { group: k.group, plural: k.plural, namespaced: k.namespaced, apiVersion: k.apiVersion }, { group: def.group, plural: def.plural, namespaced: def.namespaced, apiVersion: def.storageVersion }, def.kind)
    for (const version of Object.keys(def.versions)) t.equal(kindOfManifest(version, def.kind)?.kind, def.kind, `${def.kind} ${version}`)
  }
})

t.test('table cells', async t => {
  const rules = ['a', 'b', 'c', 'd', 'e'].map(h => ({ host: `${h}.example.com` }))
  t.equal(formatHosts({ spec: { rules } }), 'a.example.com,b.example.com,c.example.com + 2 more...')
  t.equal(formatHosts({ spec: { rules: [{}] } }), '*')
  t.equal(formatServicePorts({ spec: { ports: [{ port: 80 }, { port: 443, nodePort: 30443, protocol: 'TCP' }] } }), '80/TCP,443:30443/TCP')
  t.equal(formatServicePorts({ spec: { type: 'ExternalName' } }), '<none>')
  const eps = { subsets: [{ addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }, { ip: 'fd00::1' }, { ip: '10.0.0.4' }], ports: [{ name: 'http', port: 8080 }] }] }
  t.equal(formatEndpoints(eps), '10.0.0.1:8080,10.0.0.2:8080,[fd00::1]:8080 + 1 more...')
  t.equal(formatEndpoints({}), '<none>')
  t.same(servicePortEndpoints({ name: 'http', port: 80, targetPort: 8080 }, eps).length, 4, 'the port of the same name')
  t.same(servicePortEndpoints({ port: 80, targetPort: 9000 }, { subsets: [{ addresses: [{ ip: '127.0.0.1' }] }] }), ['127.0.0.1:9000'], 'Endpoints without ports: the targetPort')
  t.same(servicePortEndpoints({ name: 'grpc', port: 81 }, eps), [], 'no port of that name')
  t.same(secretDataKeys({ data: { 'tls.crt': Buffer.from('12345').toString('base64') }, status: { keyBytes: 1704 } }), [{ key: 'tls.crt', bytes: 5 }, { key: 'tls.key', bytes: 1704 }])
  t.same(secretDataKeys({ type: 'Opaque', data: {}, status: { data: { user: { bytes: 7 }, auth: { bytes: 45 } } } }), [{ key: 'auth', bytes: 45 }, { key: 'user', bytes: 7 }], 'write-only values: sizes from status.data')
  t.same(secretDataKeys({ data: { 'ca.crt': Buffer.from('123').toString('base64'), 'tls.crt': Buffer.from('12345').toString('base64') }, status: { keyBytes: 9 } }).map(k => k.key), ['ca.crt', 'tls.crt', 'tls.key'])
  const svc = resolveKind('svc')
  if (svc === undefined) throw new Error('no svc')
  t.same(printerFor(svc).headers(true), ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE', 'SELECTOR'])
})

t.test('errors print on one line, in kubectl\'s style', async t => {
  const invalid = new ApiError(422, 'Invalid', 'Ingress.networking.k8s.io "x" is invalid: spec.rules[0].host: Invalid value: "A"', { errorCode: 'INGRESSD_ERR_INVALID', causes: [{ field: 'spec.rules[0].host', message: 'Invalid value' }] })
  t.equal(errorLine(invalid), 'Error from server (Invalid): Ingress.networking.k8s.io "x" is invalid: spec.rules[0].host: Invalid value: "A" [INGRESSD_ERR_INVALID]')
  const terse = new ApiError(400, 'BadRequest', 'bad query\nsecond line', { errorCode: 'INGRESSD_ERR_BAD_REQUEST', causes: [{ field: 'query.limit' }] })
  t.equal(errorLine(terse), 'Error from server (BadRequest): bad query second line (field query.limit) [INGRESSD_ERR_BAD_REQUEST]', 'the first cause\'s field is always named')
  t.equal(errorLine(new ApiError(401, 'Unauthorized', 'Unauthorized: the bearer token is wrong', { errorCode: 'INGRESSD_ERR_UNAUTHORIZED' })), 'Error from server (Unauthorized): the bearer token is wrong [INGRESSD_ERR_UNAUTHORIZED]')
  t.equal(errorLine(new ConnectionError('http://127.0.0.1:8001', 'cannot reach the admin API at http://127.0.0.1:8001 (is ingressd serving?)', undefined)), 'error: cannot reach the admin API at http://127.0.0.1:8001 (is ingressd serving?)')
})

t.test('client flags may come before the verb', async t => {
  t.same(findClientCommand(['get', 'ing']), { verb: 'get', args: ['ing'] })
  t.same(findClientCommand(['-n', 'team', '--server', 'http://x', '-A', 'get', 'ing']), { verb: 'get', args: ['-n', 'team', '--server', 'http://x', '-A', 'ing'] })
  t.same(findClientCommand(['--namespace=team', 'describe', 'ing', 'x']), { verb: 'describe', args: ['--namespace=team', 'ing', 'x'] })
  t.same(findClientCommand(['-n', 'team', 'frob']), { unknown: 'frob' })
  t.equal(findClientCommand(['serve', '--db', 'x']), undefined)
  t.equal(findClientCommand(['--help']), undefined)
  t.equal(findClientCommand([]), undefined)
})
