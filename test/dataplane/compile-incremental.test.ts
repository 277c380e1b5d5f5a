/**
 * The incremental compile (RouteCompiler) against the full compile (compileRouteTable): after
 * every step of long random sequences of creates, updates and deletes of ingresses, services and
 * endpoints, both give the same routing for many host/path probes, the same routes in the same
 * order, and the same reports. Unchanged objects keep their identity from one snapshot to the
 * next, as SnapshotReader keeps them.
 */
import t, { type Test } from 'tap'
import { compileRouteTable, RouteCompiler, type IngressReport, type RouteSnapshot } from '../../src/dataplane/compile.js'
import type { Route, RouteMatch, RouteTable } from '../../src/dataplane/route-table.js'
import type { Endpoints } from '../../src/resources/endpoints.js'
import type { Ingress } from '../../src/resources/ingress.js'
import type { Service } from '../../src/resources/service.js'

const CLASSES = ['ingressd', 'nginx']
const BASE = Date.parse('2024-01-01T00:00:00Z')

/** A seeded generator, so a failure reproduces. */
function generator (seed: number): { int: (n: number) => number, pick: <T>(xs: readonly T[]) => T, chance: (p: number) => boolean } {
  let state = seed
  const int = (n: number): number => {
    state = (state * 1103515245 + 12345) & 0x7fffffff
    return Math.floor((state / 0x80000000) * n)
  }
  return { int, pick: xs => xs[int(xs.length)] as (typeof xs)[number], chance: p => int(1000) < p * 1000 }
}

const HOSTS = ['a.test', 'b.test', 'x.a.test', 'y.a.test', '*.a.test', '*.b.test', 'c.test', 'A.Test.', '', 'd.test']
const PATHS = ['/', '/a', '/a/', '/a/b', '/ab', '/b', '/api', '', '/x/(y|z)', '/(', '/a/b/c']
const PATH_TYPES = ['Exact', 'Prefix', 'ImplementationSpecific'] as const
const SERVICES = ['s1', 's2', 's3', 's4', 'ext', 'missing']
const NAMES = Array.from({ length: 24 }, (_, i) => `ing-${i}`)
const NAMESPACES = ['default', 'team']
const PROBE_HOSTS = ['a.test', 'b.test', 'x.a.test', 'y.a.test', 'q.a.test', 'deep.x.a.test', 'p.b.test', 'c.test', 'd.test', 'zzz.test', '', 'a.test.']
const PROBE_PATHS = ['/', '/a', '/a/', '/a/b', '/a/b/c', '/ab', '/abc', '/b', '/api', '/api/v1', '/x/y', '/x/z/w', '/(', '/nothing', '//']

type Rand = ReturnType<typeof generator>

function randomBackend (r: Rand): Record<string, unknown> {
  const port = r.chance(0.8) ? { number: r.pick([80, 8080, 81]) } : { name: r.pick(['http', 'web']) }
  return { service: { name: r.pick(SERVICES), port } }
}

function randomIngress (r: Rand, namespace: string, name: string, created: number, version: number): Ingress {
  const annotations: Record<string, string> = {}
  if (r.chance(0.15)) annotations['nginx.ingress.kubernetes.io/use-regex'] = 'true'
  if (r.chance(0.08)) annotations['nginx.ingress.kubernetes.io/rewrite-target'] = r.pick(['/$1', '/'])
  if (r.chance(0.05)) annotations['kubernetes.io/ingress.class'] = r.pick(['nginx', 'other'])
  if (r.chance(0.03)) annotations['nginx.ingress.kubernetes.io/proxy-body-size'] = 'not-a-size'
  const spec: Record<string, unknown> = {}
  if (r.chance(0.05)) spec.ingressClassName = r.pick(['ingressd', 'elsewhere'])
  const ruleCount = r.chance(0.1) ? 0 : 1 + r.int(3)
  const rules: unknown[] = []
  for (let i = 0; i < ruleCount; i++) {
    const host = r.pick(HOSTS)
    const paths = Array.from({ length: r.int(4) }, () => {
      const p = r.pick(PATHS)
      return { ...(p === '' && r.chance(0.5) ? {} : { path: p }), pathType: r.pick(PATH_TYPES), backend: randomBackend(r) }
    })
    rules.push({ ...(host === '' ? {} : { host }), ...(r.chance(0.1) ? {} : { http: { paths } }) })
  }
  if (rules.length > 0 || r.chance(0.5)) spec.rules = rules
  if (r.chance(ruleCount === 0 ? 0.8 : 0.2)) spec.defaultBackend = randomBackend(r)
  if (r.chance(0.2)) spec.tls = [{ hosts: Array.from({ length: 1 + r.int(2) }, () => r.pick(HOSTS.filter(h => h !== ''))), secretName: 'tls' }]
  if (r.chance(0.02)) spec.tls = 'garbage'
  if (r.chance(0.02)) spec.rules = { broken: true }
  if (r.chance(0.02)) spec.rules = [{ host: 'b.test', http: { paths: 7 } }]
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: {
      name,
      namespace,
      uid: `uid-${namespace}-${name}`,
      resourceVersion: String(version),
      generation: 1,
      // Few distinct times: ties are decided by namespace/name, as in the store.
      creationTimestamp: created < 0 ? 'not a time' : new Date(BASE + created * 1000).toISOString(),
      ...(Object.keys(annotations).length > 0 ? { annotations } : {})
    },
    spec: spec as Ingress['spec']
  }
}

function randomService (r: Rand, namespace: string, name: string): Service {
  const spec: Record<string, unknown> = name === 'ext' || r.chance(0.1)
    ? { type: 'ExternalName', externalName: r.pick(['ext.example.com.', '']), ...(r.chance(0.5) ? { ports: [{ port: 80 }] } : {}) }
    : { ports: r.pick([[{ name: 'http', port: 80, targetPort: 8080 }], [{ port: 8080 }], [{ name: 'web', port: 81, targetPort: 'web' }, { name: 'http', port: 80 }], []]) }
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec } as unknown as Service
}

function randomEndpoints (r: Rand, namespace: string, name: string): Endpoints {
  const subsets = Array.from({ length: r.int(3) }, () => ({
    addresses: Array.from({ length: r.int(3) }, () => ({ ip: `10.0.${r.int(4)}.${r.int(4)}` })),
    ...(r.chance(0.8) ? { ports: r.pick([[{ name: 'http', port: 8080 }], [{ port: 9000 }], [{ name: 'web', port: 9100 }, { name: 'http', port: 9101 }]]) } : {})
  }))
  return { apiVersion: 'v1', kind: 'Endpoints', metadata: { name, namespace }, subsets } as unknown as Endpoints
}

function describeRoute (route: Route | undefined): string {
  if (route === undefined) return '404'
  const b = route.backend
  return [
    `${route.ingress.namespace}/${route.ingress.name}`, route.host, route.path, route.pathType, route.tls, route.defaultBackend === true, route.regex?.source ?? '-',
    b.key, b.problem ?? 'ok', b.upstreams.map(u => `${u.host}:${u.port}`).join(','), JSON.stringify(route.settings)
  ].join(' ')
}

function describeMatch (match: RouteMatch | undefined): string {
  return `${describeRoute(match?.route)} ${JSON.stringify(match?.captures ?? [])}`
}

function probe (table: RouteTable): string[] {
  const out: string[] = []
  for (const host of PROBE_HOSTS) for (const path of PROBE_PATHS) out.push(`${host}${path} -> ${describeMatch(table.find(host, path))}`)
  return out
}

/** The first difference between two lists, or undefined. */
function firstDifference (a: readonly string[], b: readonly string[]): string | undefined {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return `#${i}:\n  incremental: ${a[i]}\n  full:        ${b[i]}`
  return undefined
}

function byKey<T extends { metadata: { namespace?: string, name: string } }> (objects: Map<string, T>): T[] {
  return [...objects.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => o)
}

/**
 * Reports as text. The text of a TypeError from reading a broken object depends on how far V8 has
 * optimized the reading function ("number 7 is not iterable" or "undefined is not a function"),
 * so only that it could not be read is compared.
 */
function reportsText (reports: readonly IngressReport[]): string[] {
  return reports.map(r => JSON.stringify(r).replace(/(could not be read: )[^"]*/, '$1<error>'))
}

/**
 * Runs one random sequence of `steps` changes; returns how many probes were compared, or fails
 * the test at the first difference.
 */
function runSequence (t: Test, seed: number, steps: number, settleAfter?: number): { probes: number, reused: number } {
  const r = generator(seed)
  const ingresses = new Map<string, Ingress>()
  const services = new Map<string, Service>()
  const endpoints = new Map<string, Endpoints>()
  let lists: RouteSnapshot = { ingresses: [], services: [], endpoints: [] }
  const compiler = new RouteCompiler({ ingressClasses: CLASSES, ...(settleAfter !== undefined ? { settleAfter } : {}) })
  let version = 0
  let probes = 0
  let reused = 0
  let previous: { table: RouteTable, probed: string[], reports: IngressReport[] } | undefined

  for (let step = 0; step < steps; step++) {
    // One change (sometimes a few at once, as one reload may see several commits).
    const changes = r.chance(0.15) ? 2 + r.int(4) : 1
    const changedKinds = new Set<string>()
    for (let c = 0; c < changes; c++) {
      const roll = r.int(100)
      const namespace = r.chance(0.85) ? 'default' : r.pick(NAMESPACES)
      version++
      if (roll < 70) {
        const key = `${namespace}/${r.pick(NAMES)}`
        const name = key.slice(key.indexOf('/') + 1)
        if (ingresses.has(key) && r.chance(0.3)) ingresses.delete(key)
        else {
          // An update keeps the creation time (a store never changes it); a create gets one of a few.
          const created = ingresses.get(key)?.metadata.creationTimestamp
          const time = created === undefined ? (r.chance(0.05) ? -1 : r.int(6)) : (created === 'not a time' ? -1 : (Date.parse(created) - BASE) / 1000)
          ingresses.set(key, randomIngress(r, namespace, name, time, version))
        }
        changedKinds.add('ingresses')
      } else if (roll < 85) {
        const name = r.pick(SERVICES.filter(s => s !== 'missing'))
        const key = `${namespace}/${name}`
        if (services.has(key) && r.chance(0.25)) services.delete(key)
        else services.set(key, randomService(r, namespace, name))
        changedKinds.add('services')
      } else {
        const name = r.pick(SERVICES.filter(s => s !== 'missing'))
        const key = `${namespace}/${name}`
        if (endpoints.has(key) && r.chance(0.25)) endpoints.delete(key)
        else endpoints.set(key, randomEndpoints(r, namespace, name))
        changedKinds.add('endpoints')
      }
    }
    // Unchanged kinds keep their list (SnapshotReader does); sometimes a new list of the same objects.
    lists = {
      ingresses: changedKinds.has('ingresses') || r.chance(0.05) ? byKey(ingresses) : lists.ingresses,
      services: changedKinds.has('services') || r.chance(0.05) ? byKey(services) : lists.services,
      endpoints: changedKinds.has('endpoints') || r.chance(0.05) ? byKey(endpoints) : lists.endpoints
    }

    const incremental = compiler.compile(lists, step)
    const full = compileRouteTable(lists, { ingressClasses: CLASSES, generation: step })
    const where = `seed ${seed}, step ${step}`

    const reportDiff = firstDifference(reportsText(incremental.reports), reportsText(full.reports))
    if (reportDiff !== undefined) {
      t.fail(`${where}: reports differ ${reportDiff}`)
      return { probes, reused }
    }
    const probed = probe(incremental.table)
    const routeDiff = firstDifference(probed, probe(full.table))
    if (routeDiff !== undefined) {
      t.fail(`${where}: routing differs ${routeDiff}`, { ingresses: lists.ingresses.map(i => JSON.stringify(i.spec)) })
      return { probes, reused }
    }
    probes += probed.length
    const listDiff = firstDifference(incremental.table.routes.map(describeRoute), full.table.routes.map(describeRoute))
    if (listDiff !== undefined || incremental.table.routeCount !== full.table.routeCount) {
      t.fail(`${where}: route lists differ ${listDiff ?? `(count ${incremental.table.routeCount} vs ${full.table.routeCount})`}`)
      return { probes, reused }
    }
    if (incremental.table.generation !== step || !Object.isFrozen(incremental.table) || !Object.isFrozen(incremental.table.routes)) {
      t.fail(`${where}: the table is not frozen or has the wrong generation`)
      return { probes, reused }
    }
    // The table of the step before still routes as it did: a compile never touches a published table.
    if (previous !== undefined) {
      const diff = firstDifference(probe(previous.table), previous.probed)
      if (diff !== undefined) {
        t.fail(`${where}: the previous table changed ${diff}`)
        return { probes, reused }
      }
      const before = new Set(previous.reports)
      reused += incremental.reports.filter(rep => before.has(rep)).length
    }
    previous = { table: incremental.table, probed, reports: incremental.reports }
  }
  return { probes, reused }
}

t.test('incremental = full, after every step of random create/update/delete sequences', async t => {
  let probes = 0
  let reused = 0
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8]
  for (const seed of seeds) {
    // Half the sequences fold host changes into the shared maps after every few changes.
    const out = runSequence(t, seed, 300, seed % 2 === 0 ? seed % 4 : undefined)
    probes += out.probes
    reused += out.reused
  }
  t.comment(`${probes} probes compared, ${reused} reports carried over unchanged`)
  t.ok(probes >= seeds.length * 300 * PROBE_HOSTS.length * PROBE_PATHS.length, 'every step of every sequence was compared')
  t.ok(reused > 0, 'reports of untouched ingresses are carried over')
})

t.test('a single change recompiles only the hosts it touches, and reuses every other report', async t => {
  const compiler = new RouteCompiler({ ingressClasses: CLASSES })
  const service: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { ports: [{ port: 80 }] } } as Service
  const eps: Endpoints = { apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'web', namespace: 'default' }, subsets: [{ addresses: [{ ip: '10.0.0.1' }], ports: [{ port: 8080 }] }] } as Endpoints
  const make = (i: number, host = `h-${i}.test`, path = '/'): Ingress => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: `ing-${String(i).padStart(5, '0')}`, namespace: 'default', uid: `u${i}`, resourceVersion: String(i), generation: 1, creationTimestamp: new Date(BASE + i * 1000).toISOString() },
    spec: { rules: [{ host, http: { paths: [{ path, pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] } }] }
  })
  const ingresses = Array.from({ length: 2000 }, (_, i) => make(i))
  const services = [service]
  const endpoints = [eps]
  const first = compiler.compile({ ingresses, services, endpoints }, 1)
  t.equal(compiler.stats.hostsCompiled, 2000, 'the first compile builds every host')
  t.equal(first.table.find('h-5.test', '/x')?.route.ingress.name, 'ing-00005')

  // A new ingress on a new host.
  const added = [...ingresses, make(5000)]
  const second = compiler.compile({ ingresses: added, services, endpoints }, 2)
  t.equal(compiler.stats.hostsCompiled, 1)
  t.equal(compiler.stats.reportsAssembled, 1)
  t.equal(second.reports.filter((rep, i) => rep === first.reports[i]).length, 2000, 'every other report is the same object')
  t.equal(second.table.find('h-5000.test', '/')?.route.ingress.name, 'ing-05000')
  t.equal(first.table.find('h-5000.test', '/'), undefined, 'the previous table is untouched')

  // A younger ingress on an existing host and path loses it; both reports are assembled again.
  const conflicting = [...added, make(6000, 'h-7.test', '/')]
  const third = compiler.compile({ ingresses: conflicting, services, endpoints }, 3)
  t.equal(compiler.stats.hostsCompiled, 1)
  t.equal(compiler.stats.reportsAssembled, 2)
  t.equal(third.reports.at(-1)?.reason, 'Conflict')
  t.same(third.reports, compileRouteTable({ ingresses: conflicting, services, endpoints }, { ingressClasses: CLASSES }).reports)

  // A delete.
  const removed = conflicting.filter(i => i.metadata.name !== 'ing-00007')
  const fourth = compiler.compile({ ingresses: removed, services, endpoints }, 4)
  t.equal(compiler.stats.hostsCompiled, 1)
  t.equal(fourth.table.find('h-7.test', '/')?.route.ingress.name, 'ing-06000', 'the younger ingress takes the path over')
  t.equal(fourth.reports.at(-1)?.served, true)

  // A new Endpoints object: every host routing to the service is compiled again.
  const moved = [{ ...eps, subsets: [{ addresses: [{ ip: '10.0.0.2' }], ports: [{ port: 8080 }] }] }] as Endpoints[]
  const fifth = compiler.compile({ ingresses: removed, services, endpoints: moved }, 5)
  t.equal(compiler.stats.hostsCompiled, removed.length)
  t.same(fifth.table.find('h-1.test', '/')?.route.backend.upstreams, [{ host: '10.0.0.2', port: 8080 }])
  t.same(fourth.table.find('h-1.test', '/')?.route.backend.upstreams, [{ host: '10.0.0.1', port: 8080 }])

  // Nothing changed: nothing compiled, the same reports.
  const sixth = compiler.compile({ ingresses: removed, services, endpoints: moved }, 6)
  t.equal(compiler.stats.hostsCompiled, 0)
  t.equal(sixth.reports, fifth.reports)
  t.equal(sixth.table.generation, 6)
})

t.test('duplicate ingresses (never in a store) fall back to the full compile and still agree', async t => {
  const compiler = new RouteCompiler({ ingressClasses: CLASSES })
  const ing = randomIngress(generator(9), 'default', 'dup', 1, 1)
  const other = { ...ing, spec: { rules: [{ host: 'dup.test', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 's1', port: { number: 80 } } } }] } }] } } as Ingress
  for (const ingresses of [[ing, ing], [ing, other], [other], [null, null] as unknown as Ingress[], [other]]) {
    const snapshot = { ingresses, services: [], endpoints: [] }
    const a = compiler.compile(snapshot, 1)
    const b = compileRouteTable(snapshot, { ingressClasses: CLASSES, generation: 1 })
    t.same(reportsText(a.reports), reportsText(b.reports))
    t.same(probe(a.table), probe(b.table))
  }
})

t.test('never throws on broken snapshots, like the full compile', async t => {
  const compiler = new RouteCompiler({ ingressClasses: CLASSES })
  t.doesNotThrow(() => compiler.compile(undefined as unknown as RouteSnapshot))
  t.doesNotThrow(() => compiler.compile({ ingresses: null, services: null, endpoints: null } as unknown as RouteSnapshot))
  const broken = [{ kind: 'Ingress' }, null, { metadata: { name: 'x', annotations: 'x' } }] as unknown as Ingress[]
  const snapshot = { ingresses: broken, services: [null] as unknown as Service[], endpoints: [] }
  t.same(reportsText(compiler.compile(snapshot).reports), reportsText(compileRouteTable(snapshot, { ingressClasses: CLASSES }).reports))
})
