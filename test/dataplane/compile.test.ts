import t, { type Test } from 'tap'
import { compileRouteTable, type IngressReport, type RouteSnapshot } from '../../src/dataplane/compile.js'
import type { RouteTable } from '../../src/dataplane/route-table.js'
import type { Endpoints } from '../../src/resources/endpoints.js'
import { ingressServiceNames, type Ingress, type IngressSpecType } from '../../src/resources/ingress.js'
import type { Service, ServiceSpec } from '../../src/resources/service.js'

// ---------------------------------------------------------------------------------------------
// Fixtures: every object gets a uid, resourceVersion and a creationTimestamp one second after the
// previous one, so the order fixtures are made in is their age order.

const BASE = Date.parse('2024-01-01T00:00:00Z')
let seq = 0
function meta (name: string, namespace: string, extra: { annotations?: Record<string, string>, created?: string } = {}): Ingress['metadata'] {
  seq++
  return {
    name,
    namespace,
    uid: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    resourceVersion: String(seq),
    generation: 1,
    creationTimestamp: extra.created ?? new Date(BASE + seq * 1000).toISOString(),
    ...(extra.annotations !== undefined ? { annotations: extra.annotations } : {})
  }
}

type PathType = 'Exact' | 'Prefix' | 'ImplementationSpecific'
type HttpPath = NonNullable<NonNullable<NonNullable<IngressSpecType['rules']>[number]['http']>['paths']>[number]
type Rule = NonNullable<IngressSpecType['rules']>[number]

function backend (service: string, port: number | string = 8080): NonNullable<IngressSpecType['defaultBackend']> {
  return { service: { name: service, port: typeof port === 'number' ? { number: port } : { name: port } } }
}
function path (p: string | undefined, pathType: PathType, service: string, port: number | string = 8080): HttpPath {
  return { ...(p !== undefined ? { path: p } : {}), pathType, backend: backend(service, port) }
}
function rule (host: string | undefined, ...paths: HttpPath[]): Rule {
  return { ...(host !== undefined ? { host } : {}), http: { paths } }
}
function ingress (name: string, spec: IngressSpecType, opts: { namespace?: string, annotations?: Record<string, string>, created?: string } = {}): Ingress {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta(name, opts.namespace ?? 'default', opts), spec }
}
function service (name: string, spec: ServiceSpec = { ports: [{ name: 'http', port: 8080 }] }, namespace = 'default'): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: meta(name, namespace), spec }
}
type Subset = NonNullable<Endpoints['subsets']>[number]
/** A subset of ready addresses; ports default to 8080 named http, null for none. */
function subset (ips: string[], ports: Subset['ports'] | null = [{ name: 'http', port: 8080 }], notReady: string[] = []): Subset {
  return {
    addresses: ips.map(ip => ({ ip })),
    ...(notReady.length > 0 ? { notReadyAddresses: notReady.map(ip => ({ ip })) } : {}),
    ...(ports !== null ? { ports } : {})
  }
}
function endpoints (name: string, subsets: Subset[], namespace = 'default'): Endpoints {
  return { apiVersion: 'v1', kind: 'Endpoints', metadata: meta(name, namespace), subsets }
}

let ipSeq = 0
/** A snapshot where every service the ingresses name exists (port 8080 named http) with one address, unless given. */
function world (ingresses: Ingress[], given: { services?: Service[], endpoints?: Endpoints[] } = {}): RouteSnapshot {
  const services = [...(given.services ?? [])]
  const eps = [...(given.endpoints ?? [])]
  const haveService = new Set(services.map(s => `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`))
  const haveEndpoints = new Set(eps.map(e => `${e.metadata.namespace ?? 'default'}/${e.metadata.name}`))
  for (const ing of ingresses) {
    const ns = ing.metadata.namespace ?? 'default'
    for (const name of ingressServiceNames(ing.spec)) {
      const id = `${ns}/${name}`
      if (!haveService.has(id)) {
        haveService.add(id)
        services.push(service(name, undefined, ns))
      }
      if (!haveEndpoints.has(id)) {
        haveEndpoints.add(id)
        ipSeq++
        eps.push(endpoints(name, [subset([`10.${(ipSeq >> 16) & 255}.${(ipSeq >> 8) & 255}.${ipSeq & 255}`])], ns))
      }
    }
  }
  return { ingresses, services, endpoints: eps }
}

const CLASSES = { ingressClasses: ['ingressd', 'nginx'] }

function compile (ingresses: Ingress[], given?: { services?: Service[], endpoints?: Endpoints[] }): { table: RouteTable, reports: IngressReport[], report: (name: string) => IngressReport } {
  const { table, reports } = compileRouteTable(world(ingresses, given), CLASSES)
  return {
    table,
    reports,
    report: (name: string) => {
      const r = reports.find(r => r.name === name)
      if (r === undefined) throw new Error(`no report for ${name}`)
      return r
    }
  }
}

/** Which service answers host + path: the service name, or undefined for no match (404). */
function serviceFor (table: RouteTable, host: string, p: string): string | undefined {
  return table.find(host, p)?.route.backend.service
}

type Expect = [host: string, path: string, service: string | undefined]
function expectRoutes (t: Pick<Test, 'equal'>, table: RouteTable, cases: Expect[]): void {
  for (const [host, p, svc] of cases) t.equal(serviceFor(table, host, p), svc, `${host}${p} -> ${svc ?? '404'}`)
}

// ---------------------------------------------------------------------------------------------
// The conformance features (kubernetes-sigs/ingress-controller-conformance), as compile + find.

t.test('conformance: host_rules.feature', async t => {
  const { table, report } = compile([ingress('host-rules', {
    tls: [{ hosts: ['foo.bar.com'], secretName: 'conformance-tls' }],
    rules: [
      rule('*.foo.com', path('/', 'Prefix', 'wildcard-foo-com', 8080)),
      rule('foo.bar.com', path('/', 'Prefix', 'foo-bar-com', 'http'))
    ]
  })])
  t.ok(report('host-rules').served)
  expectRoutes(t, table, [
    ['foo.bar.com', '/', 'foo-bar-com'], // both the TLS and the plain scenario: Host picks the route
    ['subdomain.bar.com', '/', undefined],
    ['bar.foo.com', '/', 'wildcard-foo-com'],
    ['baz.bar.foo.com', '/', undefined],
    ['foo.com', '/', undefined]
  ])
  t.equal(table.find('foo.bar.com', '/')?.route.tls, true, 'the TLS host is flagged')
  t.equal(table.find('bar.foo.com', '/')?.route.tls, false, 'the wildcard host has no TLS')
})

t.test('conformance: path_rules.feature', async t => {
  const { table, report } = compile([ingress('path-rules', {
    rules: [
      rule('exact-path-rules', path('/foo', 'Exact', 'foo-exact')),
      rule('prefix-path-rules',
        path('/foo', 'Prefix', 'foo-prefix'),
        path('/aaa/bbb', 'Prefix', 'aaa-slash-bbb-prefix'),
        path('/aaa', 'Prefix', 'aaa-prefix')),
      rule('mixed-path-rules',
        path('/foo', 'Prefix', 'foo-prefix'),
        path('/foo', 'Exact', 'foo-exact')),
      rule('trailing-slash-path-rules',
        path('/aaa/bbb/', 'Prefix', 'aaa-slash-bbb-slash-prefix'),
        path('/foo/', 'Exact', 'foo-slash-exact'))
    ]
  })])
  t.ok(report('path-rules').served)
  t.same(report('path-rules').conflicts, [])
  expectRoutes(t, table, [
    ['exact-path-rules', '/foo', 'foo-exact'],
    ['exact-path-rules', '/foo/', undefined],
    ['exact-path-rules', '/FOO', undefined],
    ['exact-path-rules', '/bar', undefined],
    ['prefix-path-rules', '/foo', 'foo-prefix'],
    ['prefix-path-rules', '/foo/', 'foo-prefix'],
    ['prefix-path-rules', '/FOO', undefined],
    ['prefix-path-rules', '/aaa/bbb', 'aaa-slash-bbb-prefix'],
    ['prefix-path-rules', '/aaa/bbb/ccc', 'aaa-slash-bbb-prefix'],
    ['prefix-path-rules', '/aaa/ccc', 'aaa-prefix'],
    ['prefix-path-rules', '/aaaccc', undefined],
    ['mixed-path-rules', '/foo', 'foo-exact'],
    ['mixed-path-rules', '/foo/', 'foo-prefix'],
    ['trailing-slash-path-rules', '/aaa/bbb', 'aaa-slash-bbb-slash-prefix'],
    ['trailing-slash-path-rules', '/aaa/bbb/', 'aaa-slash-bbb-slash-prefix'],
    ['trailing-slash-path-rules', '/foo', undefined],
    ['trailing-slash-path-rules', '/foo/', 'foo-slash-exact']
  ])
})

t.test('conformance: default_backend.feature', async t => {
  const { table, report } = compile([ingress('default-backend', { defaultBackend: backend('echo-service', 8080) })])
  t.ok(report('default-backend').served)
  expectRoutes(t, table, [
    ['my-host', '/', 'echo-service'],
    ['my-host', '', 'echo-service'],
    ['my-host', '/sub-path', 'echo-service'],
    ['some-host', '/', 'echo-service'],
    ['', '/resource', 'echo-service'],
    ['some-host', '/resource', 'echo-service'],
    ['my-host', '/resource', 'echo-service']
  ])
  const match = table.find('my-host', '/sub-path')
  t.equal(match?.route.defaultBackend, true)
  t.equal(match?.route.settings.rewriteTarget, undefined)
  t.equal(match?.captures, undefined, 'the original path goes upstream: nothing to rewrite')
})

t.test('conformance: ingress_class.feature', async t => {
  const { table, report } = compile([ingress('test-ingress-class', {
    ingressClassName: 'some-invalid-class-name',
    rules: [rule('ingress-class', path('/', 'Prefix', 'ingress-class-prefix'))]
  })])
  const r = report('test-ingress-class')
  t.equal(r.served, false)
  t.equal(r.reason, 'IngressClassNotServed')
  t.match(r.message, /"some-invalid-class-name".*"ingressd", "nginx"/)
  t.equal(table.find('ingress-class', '/'), undefined)
  t.equal(table.routeCount, 0)
})

t.test('conformance: load_balancing.feature', async t => {
  const ips = Array.from({ length: 10 }, (_, i) => `10.1.0.${i + 1}`)
  const { table } = compile([ingress('load-balancing', { defaultBackend: backend('echo-service', 8080) })], {
    endpoints: [endpoints('echo-service', [subset(ips)])]
  })
  const upstreams = table.find('load-balancing', '/')?.route.backend.upstreams
  t.equal(upstreams?.length, 10)
  t.same(upstreams?.map(u => u.host), ips)
  t.ok(upstreams?.every(u => u.port === 8080))
})

// ---------------------------------------------------------------------------------------------
// ingress-semantics.md and the rules of the brief.

/** Exact paths no test request hits: enough of them turn a host from a scanned list into maps. */
function fillers (n: number): HttpPath[] {
  return Array.from({ length: n }, (_, i) => path(`/~filler-${i}`, 'Exact', 'filler'))
}

for (const filler of [0, 12]) {
  const mode = filler === 0 ? 'small hosts (sorted list)' : 'large hosts (maps)'
  t.test(`paths: longest match, Exact > Prefix > ImplementationSpecific: ${mode}`, async t => {
    const withFillers = (r: Rule): Rule => ({ ...r, http: { paths: [...(r.http?.paths ?? []), ...fillers(filler)] } })
    const { table } = compile([
      ingress('a', {
        rules: [
          rule('p.test', path('/', 'Prefix', 'root'), path('/aaa', 'Prefix', 'aaa'), path('/aaa/bbb', 'Prefix', 'aaa-bbb')),
          rule('is.test', path('/foo', 'ImplementationSpecific', 'is-foo'), path(undefined, 'ImplementationSpecific', 'is-empty')),
          rule('tie.test', path('/x', 'ImplementationSpecific', 'is-x'), path('/x', 'Prefix', 'prefix-x'), path('/x', 'Exact', 'exact-x'), path('/', 'ImplementationSpecific', 'is-root'), path('/', 'Prefix', 'prefix-root')),
          rule('slash.test', path('/foo', 'Exact', 'exact-foo'), path('/foo/', 'Prefix', 'prefix-foo-slash')),
          rule('mix.test', path('/api', 'Prefix', 'prefix-api'), path('/api/v', 'ImplementationSpecific', 'is-api-v'), path('/ap', 'ImplementationSpecific', 'is-ap'))
        ].map(withFillers)
      })
    ])
    expectRoutes(t, table, [
      // ingress-semantics.md rule 4
      ['p.test', '/aaa/bbb', 'aaa-bbb'],
      ['p.test', '/aaa/ccc', 'aaa'],
      ['p.test', '/ccc', 'root'],
      ['p.test', '/aaaccc', 'root'],
      ['p.test', '/', 'root'],
      ['p.test', '', 'root'],
      ['p.test', '//', 'root'],
      ['p.test', '/aaa//bbb', 'aaa'],
      // ImplementationSpecific: nginx plain string prefix; an empty path is '/'
      ['is.test', '/foo', 'is-foo'],
      ['is.test', '/foobar', 'is-foo'],
      ['is.test', '/FOO', 'is-empty'],
      ['is.test', '/other', 'is-empty'],
      // equal paths: Exact, then Prefix, then ImplementationSpecific
      ['tie.test', '/x', 'exact-x'],
      ['tie.test', '/x/y', 'prefix-x'],
      ['tie.test', '/xy', 'is-x'],
      ['tie.test', '/z', 'prefix-root'],
      // a Prefix's trailing slash does not make it longer than the Exact path it equals
      ['slash.test', '/foo', 'exact-foo'],
      ['slash.test', '/foo/', 'prefix-foo-slash'],
      ['slash.test', '/foo/a', 'prefix-foo-slash'],
      // the longest match wins across types
      ['mix.test', '/api/v1', 'is-api-v'],
      ['mix.test', '/api/x', 'prefix-api'],
      ['mix.test', '/api', 'prefix-api'],
      ['mix.test', '/apx', 'is-ap']
    ])
  })
}

t.test('paths: the sorted list (small hosts) and the maps (large hosts) agree on random rules', async t => {
  // A seeded generator, so a failure reproduces.
  let state = 12345
  const random = (n: number): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return state % n
  }
  const segments = ['a', 'ab', 'b', '']
  const randomPath = (): string => {
    let p = ''
    const depth = 1 + random(3)
    for (let i = 0; i < depth; i++) p += '/' + (segments[random(segments.length)] ?? '')
    return random(4) === 0 ? p + '/' : p
  }
  const types: PathType[] = ['Exact', 'Prefix', 'ImplementationSpecific']
  let compared = 0
  for (let round = 0; round < 60; round++) {
    const paths = Array.from({ length: 1 + random(8) }, (_, i) => {
      const pathType = types[random(3)] ?? 'Prefix'
      let p = randomPath()
      if (pathType !== 'ImplementationSpecific' && p.includes('//')) p = p.replaceAll('//', '/')
      return path(p, pathType, `svc-${i}`)
    })
    const small = compile([ingress(`small-${round}`, { rules: [rule('d.test', ...paths)] })]).table
    const large = compile([ingress(`large-${round}`, { rules: [rule('d.test', ...paths, ...fillers(12))] })]).table
    for (let q = 0; q < 40; q++) {
      const request = randomPath()
      const a = small.find('d.test', request)?.route
      const b = large.find('d.test', request)?.route
      if (a?.path !== b?.path || a?.pathType !== b?.pathType) {
        t.fail(`round ${round}: ${request} -> list ${a?.pathType} ${a?.path}, maps ${b?.pathType} ${b?.path}`, { paths: paths.map(p => `${p.pathType} ${p.path ?? ''}`) })
      }
      compared++
    }
  }
  t.equal(compared, 2400)
})

t.test('hosts: exact, then one-label wildcard, then host-less; named hosts never fall through', async t => {
  const { table } = compile([
    ingress('hosts', {
      rules: [
        rule('foo.com', path('/app', 'Prefix', 'foo-app')),
        rule('*.foo.com', path('/', 'Prefix', 'wild-foo')),
        rule('exact.foo.com', path('/only', 'Prefix', 'exact-foo')),
        rule('*.bar.com', path('/app', 'Prefix', 'wild-bar')),
        rule('Upper.Example.COM.', path('/', 'Prefix', 'upper')),
        rule(undefined, path('/', 'Prefix', 'hostless'))
      ]
    })
  ])
  expectRoutes(t, table, [
    ['foo.com', '/app/x', 'foo-app'],
    ['foo.com', '/', undefined], // named host, no path matches: no host-less fallback
    ['a.foo.com', '/anything', 'wild-foo'],
    ['exact.foo.com', '/only', 'exact-foo'],
    ['exact.foo.com', '/', undefined], // the exact host wins, even when the wildcard would match the path
    ['a.b.foo.com', '/', 'hostless'], // the wildcard covers one label only
    ['x.bar.com', '/app', 'wild-bar'],
    ['x.bar.com', '/', undefined], // wildcard host named: no host-less fallback
    ['bar.com', '/', 'hostless'],
    ['upper.example.com', '/', 'upper'],
    ['other.test', '/', 'hostless'],
    ['', '/', 'hostless'],
    ['[::1]', '/', 'hostless'],
    ['10.0.0.1', '/', 'hostless']
  ])
  t.equal(table.find('a.foo.com', '/')?.route.host, '*.foo.com')
  t.equal(table.find('other.test', '/')?.route.host, '')
})

t.test('regex mode: a host with use-regex or a $N rewrite-target matches every path by ~* regex', async t => {
  const { table, report } = compile([
    ingress('rewrite', {
      rules: [rule('rx.test', path('/something(/|$)(.*)', 'ImplementationSpecific', 'something'))]
    }, { annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/$2' } }),
    // Another ingress on the same host, without any regex annotation: its paths become regexes too.
    ingress('plain', {
      rules: [rule('rx.test',
        path('/app', 'Prefix', 'app-prefix'),
        path('/exact', 'Exact', 'exact'),
        path('/a.c', 'ImplementationSpecific', 'dot'),
        path('/', 'Prefix', 'root'))]
    }),
    ingress('use-regex', {
      rules: [rule('ur.test', path('/v[0-9]+/items', 'Prefix', 'items'), path('/v1', 'Prefix', 'v1'))]
    }, { annotations: { 'nginx.ingress.kubernetes.io/use-regex': 'true' } }),
    // A host no regex ingress touches stays literal.
    ingress('literal', { rules: [rule('lit.test', path('/a.c', 'ImplementationSpecific', 'literal-dot'))] }),
    // A large regex host keeps its Exact paths in maps: still exact, still first.
    ingress('big-regex', {
      rules: [rule('rxbig.test', path('/exact', 'Exact', 'big-exact'), path('/(.*)', 'ImplementationSpecific', 'big-any'), ...fillers(12))]
    }, { annotations: { 'nginx.ingress.kubernetes.io/use-regex': 'true' } })
  ])
  t.ok(report('plain').served)
  const m = table.find('rx.test', '/something/new')
  t.equal(m?.route.backend.service, 'something')
  t.same(m?.captures, ['/', 'new'])
  t.equal(m?.route.settings.rewriteTarget, '/$2')
  t.same(table.find('rx.test', '/something')?.captures, ['', ''])
  t.same(table.find('rx.test', '/SOMETHING/Else')?.captures, ['/', 'Else'], 'case-insensitive, groups keep the request case')
  t.ok(table.find('rx.test', '/something/new')?.route.regex instanceof RegExp)
  expectRoutes(t, table, [
    ['rx.test', '/application', 'app-prefix'], // Prefix became the regex ^/app: no element-wise match in regex mode
    ['rx.test', '/APP', 'app-prefix'],
    ['rx.test', '/exact', 'exact'], // Exact stays exact and case-sensitive
    ['rx.test', '/EXACT', 'root'],
    ['rx.test', '/exact/x', 'root'],
    ['rx.test', '/abc', 'dot'],
    ['rx.test', '/zzz', 'root'],
    ['ur.test', '/v2/items/7', 'items'],
    ['ur.test', '/v1/items', 'items'], // longer regex first
    ['ur.test', '/v1/other', 'v1'],
    ['ur.test', '/v', undefined],
    ['lit.test', '/a.c', 'literal-dot'],
    ['lit.test', '/abc', undefined],
    ['rxbig.test', '/exact', 'big-exact'],
    ['rxbig.test', '/EXACT', 'big-any'],
    ['rxbig.test', '/~filler-3', 'filler']
  ])
  t.same(table.find('rxbig.test', '/EXACT')?.captures, ['EXACT'])
  t.equal(table.find('lit.test', '/a.c')?.captures, undefined)
  t.equal(table.find('rx.test', '/exact')?.route.regex, undefined)
})

t.test('regex mode: a path that is no usable regex is dropped and reported, the rest still serve', async t => {
  const { table, report } = compile([
    ingress('regex', { rules: [rule('rx.test', path('/ok/(.*)', 'ImplementationSpecific', 'ok'))] }, { annotations: { 'nginx.ingress.kubernetes.io/use-regex': 'true' } }),
    ingress('broken', { rules: [rule('rx.test', path('/bad(', 'ImplementationSpecific', 'bad'), path('/(a+)+$', 'ImplementationSpecific', 'redos'), path('/fine', 'Prefix', 'fine'))] })
  ])
  const r = report('broken')
  t.ok(r.served)
  t.same(r.pathProblems.map(p => p.path).sort(), ['/(a+)+$', '/bad('])
  t.match(r.pathProblems.find(p => p.path === '/bad(')?.message, /regex mode.*not a valid regular expression/)
  t.match(r.pathProblems.find(p => p.path === '/(a+)+$')?.message, /backtrack/)
  expectRoutes(t, table, [
    ['rx.test', '/ok/1', 'ok'],
    ['rx.test', '/fine', 'fine'],
    ['rx.test', '/bad(', undefined]
  ])
  const only = compile([
    ingress('regex2', { rules: [rule('rx2.test', path('/[', 'ImplementationSpecific', 'x'))] }, { annotations: { 'nginx.ingress.kubernetes.io/use-regex': 'true' } })
  ])
  t.equal(only.report('regex2').served, false)
  t.equal(only.report('regex2').reason, 'NoRoutes')
})

t.test('merge and conflicts: oldest ingress keeps a host + path + pathType', async t => {
  const { table, report } = compile([
    ingress('old', { rules: [rule('m.test', path('/a', 'Prefix', 'old-a'), path('/shared', 'Prefix', 'old-shared'))] }),
    ingress('new', { rules: [rule('m.test', path('/b', 'Prefix', 'new-b'), path('/shared', 'Prefix', 'new-shared'), path('/shared', 'Exact', 'new-shared-exact'))] }),
    ingress('loser', { rules: [rule('m.test', path('/a', 'Prefix', 'loser-a'))] }),
    // Prefix /b/ is the same claim as /b once the trailing slash is ignored: shadowed.
    ingress('shadow', { rules: [rule('m.test', path('/b/', 'Prefix', 'shadow-b'))] })
  ])
  expectRoutes(t, table, [
    ['m.test', '/a', 'old-a'],
    ['m.test', '/b/x', 'new-b'],
    ['m.test', '/shared/x', 'old-shared'],
    ['m.test', '/shared', 'new-shared-exact']
  ])
  t.ok(report('old').served)
  t.same(report('old').conflicts, [])
  t.ok(report('new').served)
  t.same(report('new').conflicts, [{ host: 'm.test', path: '/shared', pathType: 'Prefix', winner: 'default/old' }])
  t.equal(report('loser').served, false)
  t.equal(report('loser').reason, 'Conflict')
  t.match(report('loser').message, /default\/old/)
  t.same(report('loser').conflicts, [{ host: 'm.test', path: '/a', pathType: 'Prefix', winner: 'default/old' }])
  t.equal(report('shadow').served, false)
  t.same(report('shadow').conflicts, [{ host: 'm.test', path: '/b/', pathType: 'Prefix', winner: 'default/new' }])
})

t.test('merge: equal timestamps fall back to namespace/name; snapshot order does not matter', async t => {
  const created = '2024-06-01T00:00:00Z'
  const z = ingress('z', { rules: [rule('t.test', path('/', 'Prefix', 'from-z'))] }, { namespace: 'a', created })
  const b = ingress('b', { rules: [rule('t.test', path('/', 'Prefix', 'from-b'))] }, { namespace: 'b', created })
  const a = ingress('a', { rules: [rule('t.test', path('/', 'Prefix', 'from-a'))] }, { namespace: 'b', created })
  for (const order of [[z, b, a], [a, b, z], [b, z, a]]) {
    const { table, reports } = compile(order)
    t.equal(serviceFor(table, 't.test', '/'), 'from-z', 'a/z is first by namespace/name')
    t.same(reports.map(r => r.name), order.map(i => i.metadata.name), 'reports follow the snapshot order')
  }
  // An unparseable timestamp sorts last.
  const bad = ingress('bad-time', { rules: [rule('u.test', path('/', 'Prefix', 'bad'))] }, { created: 'yesterday' })
  const good = ingress('good-time', { rules: [rule('u.test', path('/', 'Prefix', 'good'))] })
  t.equal(serviceFor(compile([bad, good]).table, 'u.test', '/'), 'good')
})

t.test('default backends', async t => {
  const { table, report } = compile([
    ingress('catch-all', { defaultBackend: backend('catch-all-svc') }),
    ingress('catch-all-2', { defaultBackend: backend('catch-all-2-svc') }),
    ingress('with-rules', {
      defaultBackend: backend('own-default'),
      rules: [rule('own.test', path('/api', 'Prefix', 'api')), rule('*.wild.test', path('/w', 'Exact', 'w'))]
    }),
    ingress('later-default', {
      defaultBackend: backend('later-default-svc'),
      rules: [rule('own.test', path('/later', 'Prefix', 'later'))]
    }),
    ingress('no-default', { rules: [rule('plain.test', path('/p', 'Prefix', 'p'))] }),
    ingress('hostless', { rules: [rule(undefined, path('/hl', 'Prefix', 'hl'))] })
  ])
  expectRoutes(t, table, [
    ['own.test', '/api/1', 'api'],
    ['own.test', '/later', 'later'],
    ['own.test', '/elsewhere', 'own-default'], // the oldest ingress's default backend for its hosts
    ['x.wild.test', '/other', 'own-default'],
    ['plain.test', '/p', 'p'],
    ['plain.test', '/q', undefined], // a named host without a default backend: 404, not the catch-all
    ['unknown.test', '/hl', 'hl'],
    ['unknown.test', '/q', 'catch-all-svc'], // host-less rules, then the catch-all
    ['', '/', 'catch-all-svc']
  ])
  t.ok(report('catch-all').served)
  t.equal(report('catch-all-2').served, false)
  t.same(report('catch-all-2').conflicts, [{ host: '*', path: '*', pathType: 'DefaultBackend', winner: 'default/catch-all' }])
  t.ok(report('later-default').served)
  t.same(report('later-default').conflicts, [{ host: 'own.test', path: '*', pathType: 'DefaultBackend', winner: 'default/with-rules' }])
  const fallback = table.find('own.test', '/elsewhere')?.route
  t.equal(fallback?.defaultBackend, true)
  t.equal(fallback?.host, 'own.test')
  t.equal(table.find('x.wild.test', '/other')?.route.host, '*.wild.test')

  // Host-less rules with their own default backend use it before the catch-all.
  const two = compile([
    ingress('ca', { defaultBackend: backend('ca') }),
    ingress('hl', { defaultBackend: backend('hl-default'), rules: [rule(undefined, path('/x', 'Exact', 'x'))] })
  ])
  expectRoutes(t, two.table, [['any.test', '/x', 'x'], ['any.test', '/y', 'hl-default']])

  // No catch-all, no match: undefined (the caller answers 404).
  const none = compile([ingress('only', { rules: [rule('only.test', path('/', 'Exact', 'only'))] })])
  t.equal(none.table.find('other.test', '/'), undefined)
  t.equal(none.table.find('only.test', '/x'), undefined)
})

t.test('default backend routes carry settings but never a rewrite', async t => {
  const { table } = compile([ingress('rw', {
    defaultBackend: backend('dflt'),
    rules: [rule('rw.test', path('/(.*)', 'ImplementationSpecific', 'x'))]
  }, { annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/$1', 'nginx.ingress.kubernetes.io/proxy-read-timeout': '7' } })])
  const route = table.find('other.test', '/')
  t.equal(route, undefined)
  const x = table.find('rw.test', '/abc')
  t.equal(x?.route.backend.service, 'x')
  t.same(x?.captures, ['abc'])
  const { table: t2 } = compile([ingress('rw2', {
    defaultBackend: backend('dflt'),
    rules: [rule('rw2.test', path('/only', 'Exact', 'x'))]
  }, { annotations: { 'nginx.ingress.kubernetes.io/rewrite-target': '/$1', 'nginx.ingress.kubernetes.io/proxy-read-timeout': '7' } })])
  const d = t2.find('rw2.test', '/nope')?.route
  t.equal(d?.backend.service, 'dflt')
  t.equal(d?.settings.rewriteTarget, undefined)
  t.equal(d?.settings.useRegex, false)
  t.equal(d?.settings.readTimeoutMs, 7000)
})

t.test('ingress class filtering', async t => {
  const cases: { name: string, className?: string, annotation?: string, served: boolean }[] = [
    { name: 'no-class', served: true },
    { name: 'field-ingressd', className: 'ingressd', served: true },
    { name: 'field-nginx', className: 'nginx', served: true },
    { name: 'field-other', className: 'traefik', served: false },
    { name: 'legacy-nginx', annotation: 'nginx', served: true },
    { name: 'legacy-other', annotation: 'traefik', served: false },
    { name: 'field-wins', className: 'ingressd', annotation: 'traefik', served: true },
    { name: 'field-wins-2', className: 'traefik', annotation: 'nginx', served: false }
  ]
  const ingresses = cases.map(c => ingress(c.name, {
    ...(c.className !== undefined ? { ingressClassName: c.className } : {}),
    rules: [rule(`${c.name}.test`, path('/', 'Prefix', c.name))]
  }, c.annotation !== undefined ? { annotations: { 'kubernetes.io/ingress.class': c.annotation } } : {}))
  const { table, report } = compile(ingresses)
  for (const c of cases) {
    t.equal(report(c.name).served, c.served, `${c.name} served`)
    t.equal(serviceFor(table, `${c.name}.test`, '/'), c.served ? c.name : undefined, `${c.name} routed`)
    if (!c.served) t.equal(report(c.name).reason, 'IngressClassNotServed')
  }
  // A class that is not ours loses no conflict and wins none.
  const other = compile([
    ingress('theirs', { ingressClassName: 'traefik', rules: [rule('c.test', path('/', 'Prefix', 'theirs'))], tls: [{ hosts: ['c.test'] }] }),
    ingress('ours', { rules: [rule('c.test', path('/', 'Prefix', 'ours'))] })
  ])
  t.equal(serviceFor(other.table, 'c.test', '/'), 'ours')
  t.same(other.report('ours').conflicts, [])
  t.equal(other.table.find('c.test', '/')?.route.tls, false, 'TLS of an ingress we do not serve does not count')
  const none = compileRouteTable(world([ingress('x', { ingressClassName: 'a', rules: [rule('x.test', path('/', 'Prefix', 'x'))] })]), { ingressClasses: [] })
  t.match(none.reports[0]?.message, /served classes: none/)
})

t.test('TLS flag', async t => {
  const { table } = compile([
    ingress('a', {
      tls: [{ hosts: ['a.test', '*.wild.test'], secretName: 's' }],
      rules: [rule('a.test', path('/', 'Prefix', 'a')), rule('x.wild.test', path('/', 'Prefix', 'x')), rule('y.z.wild.test', path('/', 'Prefix', 'yz'))]
    }),
    // TLS declared in another served ingress counts for this one's host.
    ingress('b', { tls: [{ hosts: ['B.test'] }] }),
    ingress('c', { rules: [rule('b.test', path('/', 'Prefix', 'b')), rule('c.test', path('/', 'Prefix', 'c')), rule(undefined, path('/', 'Prefix', 'hl'))] })
  ])
  const tlsOf = (host: string): boolean | undefined => table.find(host, '/')?.route.tls
  t.equal(tlsOf('a.test'), true)
  t.equal(tlsOf('x.wild.test'), true)
  t.equal(tlsOf('y.z.wild.test'), false, 'a wildcard TLS host covers one label')
  t.equal(tlsOf('b.test'), true)
  t.equal(tlsOf('c.test'), false)
  t.equal(tlsOf('other.test'), false, 'host-less routes are never flagged')
})

t.test('backends: resolution through Services and Endpoints', async t => {
  const ing = ingress('be', {
    rules: [rule('be.test',
      path('/by-number', 'Prefix', 'web', 80),
      path('/by-name', 'Prefix', 'web', 'http'),
      path('/target-name', 'Prefix', 'named-target', 'web'),
      path('/unnamed', 'Prefix', 'single', 80),
      path('/no-ports-num', 'Prefix', 'bare-num', 80),
      path('/no-ports', 'Prefix', 'bare', 80),
      path('/multi', 'Prefix', 'multi', 'http'),
      path('/external', 'Prefix', 'ext', 443),
      path('/external-named', 'Prefix', 'ext', 'https-named'),
      path('/external-noports', 'Prefix', 'ext-noports', 8443),
      path('/missing-svc', 'Prefix', 'nope', 80),
      path('/missing-port', 'Prefix', 'web', 81),
      path('/missing-port-name', 'Prefix', 'web', 'grpc'),
      path('/no-endpoints', 'Prefix', 'lonely', 80),
      path('/not-ready', 'Prefix', 'warming', 80),
      path('/nodeport', 'Prefix', 'np', 80))]
  })
  const services = [
    service('web', { type: 'ClusterIP', ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'metrics', port: 9090 }] }),
    service('named-target', { ports: [{ name: 'web', port: 80, targetPort: 'http-alt' }] }),
    service('single', { ports: [{ port: 80, targetPort: 8080 }] }),
    service('bare-num', { ports: [{ port: 80, targetPort: 3000 }] }),
    service('bare', { ports: [{ port: 80 }] }),
    service('multi', { ports: [{ name: 'http', port: 80 }] }),
    service('ext', { type: 'ExternalName', externalName: 'Backend.Example.com.', ports: [{ name: 'https', port: 443, targetPort: 8443 }, { name: 'https-named', port: 444, targetPort: 'https' }] }),
    service('ext-noports', { type: 'ExternalName', externalName: 'api.example.net' }),
    service('lonely', { ports: [{ port: 80 }] }),
    service('warming', { ports: [{ port: 80 }] }),
    service('np', { type: 'NodePort', ports: [{ port: 80, targetPort: 8080, nodePort: 30080 }] })
  ]
  const eps = [
    endpoints('web', [subset(['10.0.0.1', '10.0.0.2'], [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }])]),
    endpoints('named-target', [subset(['10.0.1.1'], [{ name: 'metrics', port: 9100 }, { name: 'http-alt', port: 9000 }])]),
    endpoints('single', [subset(['10.0.2.1'], [{ port: 8081 }])]),
    endpoints('bare-num', [subset(['10.0.3.1'], null)]),
    endpoints('bare', [subset(['10.0.4.1'], null)]),
    endpoints('multi', [
      subset(['10.0.5.1', '10.0.5.2'], [{ name: 'http', port: 8080 }]),
      subset(['10.0.5.2', '10.0.5.3'], [{ name: 'http', port: 8080 }]),
      subset(['10.0.5.9'], [{ name: 'other', port: 1 }, { name: 'another', port: 2 }]),
      subset([], [{ name: 'http', port: 8080 }], ['10.0.5.8'])
    ]),
    endpoints('warming', [subset([], [{ port: 80 }], ['10.0.6.1'])]),
    endpoints('np', [subset(['10.0.7.1'], [{ port: 8080 }])])
  ]
  const { table, reports } = compileRouteTable({ ingresses: [ing], services, endpoints: eps }, CLASSES)
  const of = (p: string): { upstreams: string[], problem: string | undefined, key: string | undefined } => {
    const b = table.find('be.test', p)?.route.backend
    return { upstreams: (b?.upstreams ?? []).map(u => `${u.host}:${u.port}`), problem: b?.problem, key: b?.key }
  }
  const cases: [string, string[], string | undefined, string][] = [
    ['/by-number', ['10.0.0.1:8080', '10.0.0.2:8080'], undefined, 'default/web:80'],
    ['/by-name', ['10.0.0.1:8080', '10.0.0.2:8080'], undefined, 'default/web:http'],
    ['/target-name', ['10.0.1.1:9000'], undefined, 'default/named-target:web'],
    ['/unnamed', ['10.0.2.1:8081'], undefined, 'default/single:80'],
    ['/no-ports-num', ['10.0.3.1:3000'], undefined, 'default/bare-num:80'],
    ['/no-ports', ['10.0.4.1:80'], undefined, 'default/bare:80'],
    ['/multi', ['10.0.5.1:8080', '10.0.5.2:8080', '10.0.5.3:8080'], undefined, 'default/multi:http'],
    ['/external', ['backend.example.com:8443'], undefined, 'default/ext:443'],
    ['/external-named', ['backend.example.com:444'], undefined, 'default/ext:https-named'],
    ['/external-noports', ['api.example.net:8443'], undefined, 'default/ext-noports:8443'],
    ['/missing-svc', [], 'ServiceNotFound', 'default/nope:80'],
    ['/missing-port', [], 'PortNotFound', 'default/web:81'],
    ['/missing-port-name', [], 'PortNotFound', 'default/web:grpc'],
    ['/no-endpoints', [], 'NoEndpoints', 'default/lonely:80'],
    ['/not-ready', [], 'NoEndpoints', 'default/warming:80'],
    ['/nodeport', ['10.0.7.1:8080'], undefined, 'default/np:80']
  ]
  for (const [p, upstreams, problem, key] of cases) {
    t.same(of(p), { upstreams, problem, key }, p)
  }
  t.ok(reports[0]?.served, 'an ingress whose backends are broken is still served (503s)')
  t.same([...reports[0]?.backendProblems ?? []].sort((a, b) => a.service < b.service ? -1 : 1), [
    { service: 'lonely', problem: 'NoEndpoints' },
    { service: 'nope', problem: 'ServiceNotFound' },
    { service: 'warming', problem: 'NoEndpoints' },
    { service: 'web', problem: 'PortNotFound' }
  ])
})

t.test('backends: one Backend object per key, shared across routes and ingresses; namespaces are separate', async t => {
  const { table } = compile([
    ingress('one', { rules: [rule('one.test', path('/', 'Prefix', 'shared'), path('/x', 'Exact', 'shared'))] }),
    ingress('two', { rules: [rule('two.test', path('/', 'Prefix', 'shared'))] }),
    ingress('three', { rules: [rule('three.test', path('/', 'Prefix', 'shared'))] }, { namespace: 'other' })
  ])
  const a = table.find('one.test', '/')?.route.backend
  t.ok(a)
  t.equal(table.find('one.test', '/x')?.route.backend, a)
  t.equal(table.find('two.test', '/')?.route.backend, a)
  const other = table.find('three.test', '/')?.route.backend
  t.not(other, a)
  t.equal(other?.key, 'other/shared:8080')
  t.equal(other?.namespace, 'other')
})

t.test('annotation problems and ignored keys reach the report', async t => {
  const { table, report } = compile([ingress('anns', { rules: [rule('a.test', path('/', 'Prefix', 'a'))] }, {
    annotations: {
      'nginx.ingress.kubernetes.io/configuration-snippet': 'return 200;',
      'nginx.ingress.kubernetes.io/proxy-body-size': 'huge',
      'nginx.ingress.kubernetes.io/enable-opentelemetry': 'true',
      'nginx.ingress.kubernetes.io/proxy-connect-timeout': '3'
    }
  })])
  const r = report('anns')
  t.ok(r.served)
  t.same(r.annotationProblems.map(p => p.key), ['nginx.ingress.kubernetes.io/configuration-snippet', 'nginx.ingress.kubernetes.io/proxy-body-size'])
  t.same(r.ignoredAnnotations, ['nginx.ingress.kubernetes.io/enable-opentelemetry'])
  t.equal(table.find('a.test', '/')?.route.settings.connectTimeoutMs, 3000)
})

t.test('the table is frozen', async t => {
  const { table } = compile([ingress('f', {
    tls: [{ hosts: ['f.test'] }],
    rules: [rule('f.test', path('/', 'Prefix', 'f'))]
  }, { annotations: { 'nginx.ingress.kubernetes.io/proxy-body-size': '1m' } })], undefined)
  const match = table.find('f.test', '/')
  t.ok(match)
  if (match === undefined) return
  const route = match.route
  t.ok(Object.isFrozen(table), 'table')
  t.ok(Object.isFrozen(table.routes), 'routes')
  t.ok(Object.isFrozen(match), 'match')
  t.ok(Object.isFrozen(route), 'route')
  t.ok(Object.isFrozen(route.ingress), 'route.ingress')
  t.ok(Object.isFrozen(route.settings), 'settings')
  t.ok(Object.isFrozen(route.backend), 'backend')
  t.ok(Object.isFrozen(route.backend.upstreams), 'upstreams')
  t.ok(route.backend.upstreams.every(u => Object.isFrozen(u)), 'each upstream')
  t.throws(() => { (route as { path: string }).path = '/x' })
  t.throws(() => { (route.backend.upstreams as unknown[]).push({}) })
  t.throws(() => { (table as { generation: number }).generation = 5 })
  t.equal(table.generation, 0)
  t.equal(compileRouteTable(world([]), { ...CLASSES, generation: 42 }).table.generation, 42)
  t.equal(table.routeCount, 1)
  t.equal(table.routes[0], route)
})

t.test('never throws: broken stored objects are reported, the others still serve', async t => {
  const good = ingress('good', { rules: [rule('good.test', path('/', 'Prefix', 'good'))] })
  const broken: unknown[] = [
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: meta('no-spec', 'default') },
    { ...ingress('rules-object', {}), spec: { rules: { nope: true } } },
    { ...ingress('paths-null', {}), spec: { rules: [{ host: 'pn.test', http: { paths: null } }] } },
    { ...ingress('paths-number', {}), spec: { rules: [{ host: 'pnum.test', http: { paths: 7 } }] } },
    { ...ingress('path-garbage', {}), spec: { rules: [{ host: 'pg.test', http: { paths: [null, { path: 5, pathType: 'Weird', backend: null }] } }] } },
    { ...ingress('tls-garbage', {}), spec: { tls: 'x', rules: [{ host: 'tg.test', http: { paths: [path('/', 'Prefix', 'tg')] } }] } },
    { ...ingress('annotations-garbage', {}), metadata: { ...meta('annotations-garbage', 'default'), annotations: 'x' } },
    { ...ingress('resource-backend', {}), spec: { defaultBackend: { resource: { kind: 'Bucket', name: 'b' } } } },
    null,
    { kind: 'Ingress' }
  ]
  const snapshot = {
    ingresses: [...broken, good] as Ingress[],
    services: [null, { kind: 'Service', metadata: { name: 'good', namespace: 'default' } }, ...world([good]).services] as Service[],
    endpoints: [null, { kind: 'Endpoints', metadata: { name: 'x' }, subsets: [null, { addresses: [null, { ip: '' }] }] }, ...world([good]).endpoints] as Endpoints[]
  }
  let out: ReturnType<typeof compileRouteTable> | undefined
  t.doesNotThrow(() => { out = compileRouteTable(snapshot, CLASSES) })
  t.equal(out?.reports.length, broken.length + 1)
  t.equal(out?.table.find('good.test', '/')?.route.backend.service, 'good')
  t.equal(out?.reports.at(-1)?.served, true)
  t.equal(out?.table.find('tg.test', '/')?.route.backend.service, 'tg', 'a malformed tls list does not drop the rules')
  t.doesNotThrow(() => compileRouteTable(undefined as unknown as RouteSnapshot, undefined as unknown as { ingressClasses: string[] }))
  t.doesNotThrow(() => compileRouteTable({ ingresses: null, services: null, endpoints: null } as unknown as RouteSnapshot, CLASSES))
  for (const r of out?.reports ?? []) t.type(r.served, 'boolean')
})

t.test('scale: 10,000 ingresses compile into one table, and find() looks up by host', async t => {
  const N = 10000
  const ingresses: Ingress[] = []
  const services: Service[] = []
  const eps: Endpoints[] = []
  for (let s = 0; s < 100; s++) {
    services.push(service(`svc-${s}`))
    eps.push(endpoints(`svc-${s}`, [subset([`10.2.${s}.1`, `10.2.${s}.2`])]))
  }
  for (let i = 0; i < N; i++) {
    ingresses.push(ingress(`ing-${i}`, {
      ...(i % 10 === 0 ? { tls: [{ hosts: [`host-${i}.example.com`], secretName: 'tls' }] } : {}),
      rules: [rule(`host-${i}.example.com`,
        path('/', 'Prefix', `svc-${i % 100}`),
        path(`/api/${i}`, i % 2 === 0 ? 'Exact' : 'ImplementationSpecific', `svc-${(i + 1) % 100}`))]
    }))
  }
  const start = process.hrtime.bigint()
  const { table, reports } = compileRouteTable({ ingresses, services, endpoints: eps }, CLASSES)
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.comment(`compiled ${N} ingresses (${table.routeCount} routes) in ${ms.toFixed(1)} ms`)
  t.equal(table.routeCount, 2 * N)
  t.ok(reports.every(r => r.served))
  for (const i of [0, 1, 4999, 7777, 9999]) {
    const host = `host-${i}.example.com`
    t.equal(serviceFor(table, host, '/anything'), `svc-${i % 100}`, `${host} /`)
    t.equal(serviceFor(table, host, `/api/${i}`), `svc-${(i + 1) % 100}`, `${host} /api/${i}`)
    t.equal(table.find(host, '/')?.route.tls, i % 10 === 0, `${host} tls`)
    t.equal(table.find(host, '/')?.route.backend.upstreams.length, 2)
  }
  t.equal(table.find('host-10000.example.com', '/'), undefined)
  t.equal(table.find('host-1.example.com', '/')?.route.backend, table.find('host-101.example.com', '/')?.route.backend, 'one Backend per key')
})
