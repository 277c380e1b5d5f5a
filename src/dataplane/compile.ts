/**
 * Compiles stored Ingress, Service and Endpoints objects into a RouteTable with ingress-nginx
 * semantics, and reports per ingress what was served, what lost a conflict and what is broken.
 * Pure: plain data in, plain data out. Never throws: a broken ingress is reported, never takes
 * down the others.
 *
 * Choices where the rules leave room (see also ingress-semantics.md):
 * - Precedence counts the length of what a path matches: a Prefix path without its trailing
 *   slash (`/` as 1), so Exact `/foo` beats Prefix `/foo/` on `/foo` as Kubernetes says.
 * - Prefix `/foo` and `/foo/` (and ImplementationSpecific '' and `/`) match the same requests:
 *   outside regex mode the older one shadows the other, reported as a conflict.
 * - Regex mode: Exact paths stay exact and are checked first (nginx `location =`), although
 *   ingress-nginx itself turns them into `~*` regexes too; a path that is not a safe regular
 *   expression is dropped and reported in pathProblems.
 * - A host's fallback is the default backend of the oldest ingress naming the host that has one.
 *   A named host never falls back to the host-less rules or the catch-all; host-less rules do.
 * - Default-backend routes (path '', pathType Prefix, defaultBackend true) get no rewrite.
 */
import { parseIngressAnnotations, type AnnotationProblem, type IngressSettings } from '../resources/annotations.js'
import { IngressdError } from '../errors.js'
import type { AccessSpec } from './policies/access.js'
import { hasBalancing, selectBalancer, type BalancerSpec } from './balancer.js'
import { compileCanary, type Canary } from './policies/canary.js'
import { withAppRoot } from './policies/redirect.js'
import type { Endpoints } from '../resources/endpoints.js'
import type { Ingress, IngressBackend, PathType } from '../resources/ingress.js'
import { compilePathRegex, regexPathProblem } from '../resources/path-regex.js'
import type { Service } from '../resources/service.js'
import { createRouteTable, implKey, MATCH_EXACT, MATCH_IMPL, MATCH_PREFIX, matchLength, prefixKey, staticMatch, type Backend, type BackendProblem, type HostEntry, type MatchKind, type PathMatcher, type Route, type RouteMatch, type RouteTable, type Upstream } from './route-table.js'

export interface RouteSnapshot {
  ingresses: Ingress[]
  services: Service[]
  endpoints: Endpoints[]
}

export interface CompileOptions {
  /** The classes served, e.g. ['ingressd', 'nginx']. Ingresses without a class are always served. */
  ingressClasses: string[]
  /** Stored in RouteTable.generation (the table is frozen, so it is set here). Default 0. */
  generation?: number
}

export interface IngressConflict {
  host: string
  path: string
  /** The path type, or 'DefaultBackend' for a default backend that lost (host '*' and path '*' for the catch-all). */
  pathType: string
  /** namespace/name of the ingress that won. */
  winner: string
}

export interface IngressReport {
  namespace: string
  name: string
  /** false when its class is not ours, or nothing of it made it into the table. */
  served: boolean
  /** 'IngressClassNotServed' | 'Conflict' | 'NoRoutes' | 'NoMainIngress' | 'Invalid' | 'InternalError' when not served. */
  reason?: string
  message?: string
  conflicts: IngressConflict[]
  annotationProblems: AnnotationProblem[]
  ignoredAnnotations: string[]
  /** Keys accepted with no effect in ingressd (nginx buffer tuning and the like). */
  noEffectAnnotations: string[]
  /** Access-control annotations that cannot be honoured: every path of the ingress answers 503. */
  accessDenials: AnnotationProblem[]
  /** The ingress's access-control spec, for the policy compile (chain.ts); undefined when it has none. */
  access?: AccessSpec
  backendProblems: { service: string, problem: string }[]
  /** Paths dropped from the table: a path that is not a usable regular expression on a host in regex mode. */
  pathProblems: { host: string, path: string, message: string }[]
}

const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class'
const PATH_TYPE_RANK: Record<PathType, number> = { Exact: 0, Prefix: 1, ImplementationSpecific: 2 }
const EMPTY_MAP: ReadonlyMap<string, RouteMatch> = new Map()
const NO_LENGTHS: readonly number[] = Object.freeze([])
/** Hosts with at most this many non-regex paths are matched by scanning a sorted list. */
const SMALL_HOST = 8

/** One served ingress while compiling. Immutable once made: the incremental compiler keeps it across compiles. */
interface Candidate {
  /** Creation time (Infinity when unreadable): the older wins conflicts. */
  age: number
  /** Position in the snapshot: breaks ties between two entries with the same age and id (never two in a store). */
  seq: number
  namespace: string
  name: string
  /** `namespace/name` */
  id: string
  ref: { readonly namespace: string, readonly name: string }
  settings: Readonly<IngressSettings>
  /** The settings without rewrite, for its default-backend routes (made when first needed). */
  defaultBackendSettings?: Readonly<IngressSettings>
  /** With balancing annotations: the settings with each route's balancer, by default-backend flag and cookie path (made when first needed). */
  balancedSettings?: Map<string, Readonly<IngressSettings>>
  /** The full compile only: the report it writes into, and whether a route of it made the table. */
  report?: IngressReport
  inTable?: boolean
}

/** Oldest first (creation time, then namespace/name, then snapshot position): the order conflicts are decided in. */
function compareCandidates (a: Candidate, b: Candidate): number {
  return a.age - b.age || compareStrings(a.id, b.id) || a.seq - b.seq
}

interface PathClaim {
  owner: Candidate
  host: string
  path: string
  pathType: PathType
  backend: IngressBackend | undefined
}

function emptyReport (namespace: string, name: string): IngressReport {
  return { namespace, name, served: false, conflicts: [], annotationProblems: [], ignoredAnnotations: [], noEffectAnnotations: [], accessDenials: [], backendProblems: [], pathProblems: [] }
}

function normalizeRuleHost (host: string | undefined): string {
  if (typeof host !== 'string') return ''
  const lower = host.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

function ingressClassOf (ing: Ingress): string | undefined {
  const field = ing.spec?.ingressClassName
  if (typeof field === 'string' && field !== '') return field
  const legacy = ing.metadata?.annotations?.[LEGACY_CLASS_ANNOTATION]
  if (typeof legacy === 'string' && legacy !== '') return legacy
  return undefined
}

/** When an ingress was created, for oldest-wins conflicts (one with no timestamp counts as newest). */
export function ageOf (ing: Ingress): number {
  const t = Date.parse(ing.metadata?.creationTimestamp ?? '')
  return Number.isNaN(t) ? Infinity : t
}

function compareStrings (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** The served classes, and how a report names them. */
interface ClassFilter {
  classes: ReadonlySet<string>
  list: string
}

function classFilter (options: CompileOptions | undefined): ClassFilter {
  const classes = new Set(Array.isArray(options?.ingressClasses) ? options.ingressClasses : [])
  return { classes, list: [...classes].map(c => JSON.stringify(c)).join(', ') }
}

/** Step 1 for one ingress: its report so far, and a candidate when its class is served and its annotations could be read. */
function prepareIngress (ing: Ingress, filter: ClassFilter, seq: number): { report: IngressReport, candidate?: Candidate } {
  const namespace = typeof ing?.metadata?.namespace === 'string' && ing.metadata.namespace !== '' ? ing.metadata.namespace : 'default'
  const name = typeof ing?.metadata?.name === 'string' ? ing.metadata.name : ''
  const report = emptyReport(namespace, name)
  try {
    const cls = ingressClassOf(ing)
    if (cls !== undefined && !filter.classes.has(cls)) {
      report.reason = 'IngressClassNotServed'
      report.message = `ingress class ${JSON.stringify(cls)} is not served by ingressd (served classes: ${filter.list === '' ? 'none' : filter.list}, and ingresses without a class)`
      return { report }
    }
    const parsed = parseIngressAnnotations(ing.metadata?.annotations, { namespace, name })
    report.annotationProblems = parsed.problems
    report.ignoredAnnotations = parsed.ignored
    report.noEffectAnnotations = parsed.noEffect
    report.accessDenials = parsed.denials
    if (parsed.settings.access !== undefined) report.access = parsed.settings.access
    const candidate: Candidate = { age: ageOf(ing), seq, namespace, name, id: `${namespace}/${name}`, ref: Object.freeze({ namespace, name }), settings: Object.freeze(parsed.settings) }
    return { report, candidate }
  } catch (err) {
    report.reason = 'Invalid'
    report.message = `the stored ingress could not be read: ${errorMessage(err)}`
    return { report }
  }
}

/** The TLS hosts a served ingress names, as written; a malformed tls list gives what was read before it broke. */
function tlsHostsOf (ing: Ingress): unknown[] {
  const hosts: unknown[] = []
  try {
    for (const entry of ing.spec?.tls ?? []) for (const h of entry?.hosts ?? []) hosts.push(h)
  } catch { /* a malformed tls list only loses its TLS flag */ }
  return hosts
}

/** Services or Endpoints by `namespace/name`, as the resolver reads them (the last of two with one key wins). */
function indexByName<T extends { metadata?: { name?: string, namespace?: string } }> (objects: readonly T[] | undefined | null): Map<string, T> {
  const map = new Map<string, T>()
  for (const obj of Array.isArray(objects) ? objects : []) {
    if (obj?.metadata?.name === undefined) continue
    map.set(`${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`, obj)
  }
  return map
}

/** `namespace/service` of a backend: what a Service and its Endpoints are stored under. */
function serviceIdOf (backend: Backend): string {
  return `${backend.namespace}/${backend.service}`
}

/**
 * Resolves backends to upstreams, one frozen Backend per key. The full compile makes one per
 * compile; the incremental compiler keeps one, with the Backends of each Service kept until that
 * Service or its Endpoints change.
 */
class BackendResolver {
  #services: ReadonlyMap<string, Service>
  #endpoints: ReadonlyMap<string, Endpoints>
  /** Backends by `namespace/service`, then by port as the ingress names it. */
  readonly #cache = new Map<string, Map<string, Backend>>()

  constructor (services: ReadonlyMap<string, Service>, endpoints: ReadonlyMap<string, Endpoints>) {
    this.#services = services
    this.#endpoints = endpoints
  }

  /** New Services and Endpoints; the Backends of the services named in `changed` are made again when next asked for. */
  update (services: ReadonlyMap<string, Service>, endpoints: ReadonlyMap<string, Endpoints>, changed: Iterable<string>): void {
    this.#services = services
    this.#endpoints = endpoints
    for (const id of changed) this.#cache.delete(id)
  }

  /** Forgets the Backends of a service nothing refers to any more. */
  forget (serviceId: string): void {
    this.#cache.delete(serviceId)
  }

  resolve (namespace: string, ref: IngressBackend | undefined): Backend {
    const service = typeof ref?.service?.name === 'string' ? ref.service.name : ''
    const portRef = ref?.service?.port
    const portNumber = typeof portRef?.number === 'number' ? portRef.number : undefined
    const portName = portNumber === undefined && typeof portRef?.name === 'string' && portRef.name !== '' ? portRef.name : undefined
    const port = portNumber !== undefined ? String(portNumber) : portName ?? ''
    const serviceId = `${namespace}/${service}`
    let byPort = this.#cache.get(serviceId)
    if (byPort === undefined) {
      byPort = new Map()
      this.#cache.set(serviceId, byPort)
    }
    let backend = byPort.get(port)
    if (backend === undefined) {
      const key = `${serviceId}:${port}`
      let upstreams: Upstream[] = []
      let problem: BackendProblem | undefined
      try {
        const resolved = this.#upstreams(namespace, service, portNumber, portName)
        if (typeof resolved === 'string') problem = resolved
        else upstreams = resolved
      } catch {
        upstreams = []
        problem = 'ServiceNotFound'
      }
      const b: Backend = problem === undefined
        ? { key, namespace, service, port, upstreams: Object.freeze(upstreams) }
        : { key, namespace, service, port, upstreams: Object.freeze([]), problem }
      backend = Object.freeze(b)
      byPort.set(port, backend)
    }
    return backend
  }

  #upstreams (namespace: string, service: string, portNumber: number | undefined, portName: string | undefined): Upstream[] | BackendProblem {
    const svc = this.#services.get(`${namespace}/${service}`)
    if (svc === undefined || service === '') return 'ServiceNotFound'
    const ports = Array.isArray(svc.spec?.ports) ? svc.spec.ports : []
    const svcPort = portNumber !== undefined
      ? ports.find(p => p?.port === portNumber)
      : portName !== undefined ? ports.find(p => p?.name === portName) : undefined

    if (svc.spec?.type === 'ExternalName') {
      const name = (svc.spec.externalName ?? '').toLowerCase().replace(/\.$/, '')
      let target: number | undefined
      if (svcPort !== undefined) target = typeof svcPort.targetPort === 'number' ? svcPort.targetPort : svcPort.port
      else if (ports.length === 0) target = portNumber // ingress-nginx: an ExternalName without ports takes the ingress's port number
      if (target === undefined) return 'PortNotFound'
      if (name === '') return 'NoEndpoints'
      return [Object.freeze({ host: name, port: target })]
    }

    if (svcPort === undefined) return 'PortNotFound'
    const targetPort = svcPort.targetPort
    const wantName = svcPort.name ?? ''
    const eps = this.#endpoints.get(`${namespace}/${service}`)
    const upstreams: Upstream[] = []
    const seen = new Set<string>()
    for (const subset of eps?.subsets ?? []) {
      const addresses = subset?.addresses ?? []
      if (addresses.length === 0) continue
      const subsetPorts = subset.ports ?? []
      let epPort = subsetPorts.find(p => (p?.name ?? '') === wantName)
      if (epPort === undefined && typeof targetPort === 'string') epPort = subsetPorts.find(p => p?.name === targetPort)
      if (epPort === undefined && subsetPorts.length === 1 && (subsetPorts[0]?.name ?? '') === '') epPort = subsetPorts[0]
      let target: number | undefined = epPort?.port
      // Hand-written Endpoints may list addresses without ports: use a numeric targetPort, else the port.
      if (target === undefined && subsetPorts.length === 0) target = typeof targetPort === 'number' ? targetPort : targetPort === undefined ? svcPort.port : undefined
      if (typeof target !== 'number') continue
      for (const address of addresses) {
        const ip = address?.ip
        if (typeof ip !== 'string' || ip === '') continue
        const id = `${ip}|${target}`
        if (seen.has(id)) continue
        seen.add(id)
        upstreams.push(Object.freeze({ host: ip, port: target }))
      }
    }
    return upstreams.length === 0 ? 'NoEndpoints' : upstreams
  }
}

/** TLS hosts of the served ingresses: exact names, and wildcard parents (`*.foo.com` -> `foo.com`), counted so that one ingress's can be taken away. */
class TlsHosts {
  readonly #exact = new Map<string, number>()
  readonly #wildcardParents = new Map<string, number>()

  /** Adds (+1) or takes away (-1) one TLS host; returns what changed coverage: an exact host, a wildcard parent, or nothing. */
  add (host: unknown, delta: 1 | -1 = 1): { exact: string } | { parent: string } | undefined {
    const h = normalizeRuleHost(host as string | undefined)
    if (h === '') return undefined
    const wildcard = h.startsWith('*.')
    const map = wildcard ? this.#wildcardParents : this.#exact
    const key = wildcard ? h.slice(2) : h
    const before = map.get(key) ?? 0
    const after = before + delta
    if (after <= 0) map.delete(key)
    else map.set(key, after)
    if ((before > 0) === (after > 0)) return undefined
    return wildcard ? { parent: key } : { exact: key }
  }

  covers (host: string): boolean {
    if (host === '') return false
    if (this.#exact.has(host)) return true
    const dot = host.indexOf('.')
    return dot > 0 && this.#wildcardParents.has(host.slice(dot + 1))
  }
}

/** The domain a wildcard `*.x` for this host would be stored under, or undefined. */
function parentOf (host: string): string | undefined {
  const dot = host.indexOf('.')
  return dot > 0 ? host.slice(dot + 1) : undefined
}

/** A non-regex path on its way into a host entry. */
interface PathItem {
  claim: PathClaim
  kind: MatchKind
  key: string
  length: number
}

const KIND_OF: Record<PathType, MatchKind> = { Exact: MATCH_EXACT, Prefix: MATCH_PREFIX, ImplementationSpecific: MATCH_IMPL }

/** Claims on one host by pathType and path, so equal ones are adjacent, the oldest ingress first. */
function compareClaims (a: PathClaim, b: PathClaim): number {
  return a.pathType === b.pathType ? compareStrings(a.path, b.path) || compareCandidates(a.owner, b.owner) : PATH_TYPE_RANK[a.pathType] - PATH_TYPE_RANK[b.pathType]
}

/** Regex routes in ingress-nginx's order: longest path first, then descending string order; ties keep the oldest ingress first (stable sort). */
function compareRegexRoutes (a: Route, b: Route): number {
  return b.path.length - a.path.length || compareStrings(b.path, a.path) || PATH_TYPE_RANK[a.pathType] - PATH_TYPE_RANK[b.pathType]
}

/** Precedence: longest match first, then Exact, Prefix, ImplementationSpecific; then by key, so equal keys are adjacent; then the oldest ingress. */
function comparePathItems (a: PathItem, b: PathItem): number {
  return b.length - a.length || a.kind - b.kind || compareStrings(a.key, b.key) || compareCandidates(a.claim.owner, b.claim.owner)
}

/** The parts of a stored ingress the table uses, read defensively (stored data is never trusted to be well-formed). */
interface ReadIngress {
  rules: number
  /** Its rule hosts, normalized, each once, in the order written. */
  hosts: string[]
  claims: PathClaim[]
  defaultBackend: IngressBackend | undefined
}

function readIngress (ing: Ingress, owner: Candidate): ReadIngress {
  const spec = ing.spec
  const rules = Array.isArray(spec?.rules) ? spec.rules : []
  const hosts: string[] = []
  const claims: PathClaim[] = []
  for (const rule of rules) {
    const host = normalizeRuleHost(rule?.host)
    if (!hosts.includes(host)) hosts.push(host)
    for (const p of rule?.http?.paths ?? []) {
      const path = typeof p?.path === 'string' ? p.path : ''
      const pathType: PathType = p?.pathType === 'Exact' || p?.pathType === 'Prefix' ? p.pathType : 'ImplementationSpecific'
      claims.push({ owner, host, path, pathType, backend: p?.backend ?? undefined })
    }
  }
  // A canary serves nothing of its own, its default backend included (ingressd does not split the catch-all).
  const defaultBackend = owner.settings.canary === undefined ? spec?.defaultBackend ?? undefined : undefined
  return { rules: rules.length, hosts, claims, defaultBackend }
}

/** Where building a host reports what it made and what it refused, in the order the full compile made them. */
interface BuildSink {
  route: (owner: Candidate, route: Route) => void
  backendProblem: (owner: Candidate, problem: { service: string, problem: string }) => void
  conflict: (owner: Candidate, conflict: IngressConflict) => void
  pathProblem: (owner: Candidate, problem: { host: string, path: string, message: string }) => void
  /** A canary ingress split a main route: it counts as served, and its backend's changes rebuild the host. */
  canary: (owner: Candidate, backend: Backend) => void
}

interface BuildContext {
  resolver: BackendResolver
  /** A path as a regular expression, or why it cannot be one (cached by path). */
  regex: (path: string) => RegExp | string
  sink: BuildSink
}

/** A regular-expression cache for paths, shared by every host of a compile (and, incremental, across compiles). */
function regexCache (cache: Map<string, RegExp | string>): (path: string) => RegExp | string {
  return (path: string): RegExp | string => {
    let r = cache.get(path)
    if (r === undefined) {
      try {
        r = regexPathProblem(path) ?? compilePathRegex(path)
      } catch (err) {
        r = errorMessage(err)
      }
      cache.set(path, r)
    }
    return r
  }
}

/**
 * The settings of a route whose ingress has balancing annotations, with the balancer selected for
 * it (settings.balancer, the proxy's one read). Routes of one ingress share a copy, except that a
 * sticky route's cookie Path follows its own path.
 */
function withBalancer (owner: Candidate, settings: Readonly<IngressSettings>, path: string, regexMode: boolean, defaultBackend: boolean): Readonly<IngressSettings> {
  const balancer = selectBalancer(settings, path, regexMode)
  const key = `${defaultBackend ? 'd' : 'p'} ${balancer?.kind === 'sticky' ? balancer.cookiePath : ''}`
  owner.balancedSettings ??= new Map()
  let out = owner.balancedSettings.get(key)
  if (out === undefined) {
    out = Object.freeze(balancer === undefined ? settings : { ...settings, balancer })
    owner.balancedSettings.set(key, out)
  }
  return out
}

/**
 * The canary of a main route (`main`, not yet frozen): the main route with the canary's backend,
 * and the canary's balancer as affinity-canary-behavior says: sticky (the default) gives the
 * canary the main route's cookie affinity in place of its own, as ingress-nginx copies the main
 * backend's session affinity; legacy keeps the canary's own. load-balance and upstream-hash-by
 * stay the canary's own.
 */
function makeCanary (ctx: BuildContext, claim: PathClaim, main: Omit<Route, 'canary'>, regexMode: boolean): Canary {
  const owner = claim.owner
  const spec = owner.settings.canary as NonNullable<IngressSettings['canary']>
  const backend = ctx.resolver.resolve(owner.namespace, claim.backend)
  if (backend.problem !== undefined) ctx.sink.backendProblem(owner, { service: backend.service, problem: backend.problem })
  ctx.sink.canary(owner, backend)
  const mainBalancer = main.settings.balancer
  let balancer: BalancerSpec | undefined
  if (spec.affinityBehavior === 'sticky') {
    const own = { ...owner.settings }
    delete own.affinity
    balancer = mainBalancer?.kind === 'sticky' ? mainBalancer : selectBalancer(own, main.path, regexMode)
  } else {
    balancer = selectBalancer(owner.settings, main.path, regexMode)
  }
  let settings = main.settings
  if (balancer !== settings.balancer) {
    const copy = { ...settings }
    if (balancer === undefined) delete copy.balancer
    else copy.balancer = balancer
    settings = Object.freeze(copy)
  }
  return compileCanary(spec, Object.freeze({ ...main, backend, settings }), main.backend, mainBalancer)
}

function makeRoute (ctx: BuildContext, owner: Candidate, host: string, path: string, pathType: PathType, ref: IngressBackend | undefined, hostTls: boolean, regex: RegExp | undefined, defaultBackend: boolean, appRoot?: string, canary?: PathClaim): Route {
  const backend = ctx.resolver.resolve(owner.namespace, ref)
  if (backend.problem !== undefined) ctx.sink.backendProblem(owner, { service: backend.service, problem: backend.problem })
  let settings = owner.settings
  if (defaultBackend) {
    // Like ingress-nginx's catch-all, a default backend gets no rewrite.
    if (owner.defaultBackendSettings === undefined) {
      const copy = { ...settings, useRegex: false }
      delete copy.rewriteTarget
      owner.defaultBackendSettings = Object.freeze(copy)
    }
    settings = owner.defaultBackendSettings
  }
  if (hasBalancing(settings)) settings = withBalancer(owner, settings, path, regex !== undefined, defaultBackend)
  // The host's app-root holds on every route of the host, whichever ingress set it.
  if (appRoot !== undefined && settings.redirect?.appRoot !== appRoot) settings = Object.freeze({ ...settings, redirect: withAppRoot(settings.redirect, appRoot) })
  const route: { -readonly [K in keyof Route]: Route[K] } = {
    ingress: owner.ref,
    host,
    path,
    pathType,
    backend,
    settings,
    tls: hostTls
  }
  if (regex !== undefined) route.regex = regex
  if (defaultBackend) route.defaultBackend = true
  if (canary !== undefined) route.canary = makeCanary(ctx, canary, { ...route }, regex !== undefined)
  const frozen = Object.freeze(route)
  ctx.sink.route(owner, frozen)
  return frozen
}

/**
 * The ingress whose app-root holds on the host, among those serving a path or its default backend.
 * ingress-nginx writes one server-level `if ($uri = /)` per location, in its location order
 * (longest path first, then descending string order), and the first one answers: the ingress
 * with the first such path wins, the oldest on a tie. A default backend counts as the path `/`.
 */
function hostAppRoot (winners: readonly PathClaim[], fallback: { owner: Candidate } | undefined): Candidate | undefined {
  let found: { owner: Candidate, path: string } | undefined
  const candidates = winners.map(c => ({ owner: c.owner, path: c.path === '' ? '/' : c.path }))
  if (fallback !== undefined) candidates.push({ owner: fallback.owner, path: '/' })
  for (const c of candidates) {
    if (c.owner.settings.redirect?.appRoot === undefined) continue
    if (found === undefined || c.path.length > found.path.length || (c.path.length === found.path.length && (c.path > found.path || (c.path === found.path && compareCandidates(c.owner, found.owner) < 0)))) found = c
  }
  return found?.owner
}

/** Whether a request for `/` matches one of the host's paths. */
function matchesRoot (matchers: readonly PathMatcher[], regex: readonly Route[]): boolean {
  if (matchers.some(m => m.kind === MATCH_EXACT || m.kind === MATCH_IMPL ? m.key === '/' : m.key === '')) return true
  return regex.some(r => r.regex?.exec('/') != null)
}

/**
 * Builds one host's entry from the claims on it (every served ingress's paths for this host,
 * oldest ingress first; sorted here in place) and its fallback. Decides the conflicts within the
 * host: the oldest ingress keeps a host + path + pathType.
 */
function buildHost (host: string, claims: PathClaim[], fallback: { owner: Candidate, backend: IngressBackend | undefined } | undefined, hostTls: boolean, ctx: BuildContext): HostEntry {
  const conflict = (loser: PathClaim, winner: PathClaim): void => {
    ctx.sink.conflict(loser.owner, { host: loser.host, path: loser.path, pathType: loser.pathType, winner: winner.owner.id })
  }
  // Canary ingresses claim nothing: each splits the main route with its host, path and pathType.
  const canaries = claims.some(isCanaryClaim) ? takeCanaries(claims, conflict) : undefined
  if (canaries !== undefined) claims = claims.filter(c => !isCanaryClaim(c))
  const canaryOf = (claim: PathClaim): PathClaim | undefined => {
    if (canaries === undefined) return undefined
    const key = `${claim.pathType} ${claim.path}`
    const found = canaries.get(key)
    if (found !== undefined) canaries.delete(key)
    return found
  }
  if (claims.length > 1) claims.sort(compareClaims)
  const winners: PathClaim[] = []
  let regexMode = false
  for (const claim of claims) {
    const previous = winners[winners.length - 1]
    if (previous !== undefined && previous.pathType === claim.pathType && previous.path === claim.path) {
      conflict(claim, previous)
      continue
    }
    winners.push(claim)
    if (claim.owner.settings.useRegex) regexMode = true
  }
  const root = hostAppRoot(winners, fallback)
  const appRoot = root?.settings.redirect?.appRoot

  const items: PathItem[] = []
  const regex: Route[] = []
  for (const claim of winners) {
    if (regexMode && claim.pathType !== 'Exact') {
      const compiled = ctx.regex(claim.path === '' ? '/' : claim.path)
      if (typeof compiled === 'string') {
        ctx.sink.pathProblem(claim.owner, { host: claim.host, path: claim.path, message: `the host is in regex mode (use-regex or a rewrite-target with $N on one of its ingresses) and this path is refused as a regular expression: ${compiled}` })
        continue
      }
      regex.push(makeRoute(ctx, claim.owner, claim.host, claim.path, claim.pathType, claim.backend, hostTls, compiled, false, appRoot, canaryOf(claim)))
      continue
    }
    const kind = KIND_OF[claim.pathType]
    const key = kind === MATCH_PREFIX ? prefixKey(claim.path) : kind === MATCH_IMPL ? implKey(claim.path) : claim.path
    items.push({ claim, kind, key, length: matchLength(kind, key) })
  }
  // Equivalent keys (Prefix /foo and /foo/, ImplementationSpecific '' and /) are adjacent once
  // sorted: the first, from the oldest ingress, shadows the others.
  if (items.length > 1) items.sort(comparePathItems)
  const matchers: PathMatcher[] = []
  let kept: PathItem | undefined
  for (const item of items) {
    if (kept !== undefined && kept.kind === item.kind && kept.key === item.key) {
      conflict(item.claim, kept.claim)
      continue
    }
    kept = item
    matchers.push({ kind: item.kind, key: item.key, match: staticMatch(makeRoute(ctx, item.claim.owner, item.claim.host, item.claim.path, item.claim.pathType, item.claim.backend, hostTls, undefined, false, appRoot, canaryOf(item.claim))) })
  }
  // With app-root, `/` redirects even when no path of the host matches it (ingress-nginx's server-level
  // `if`): the app-root's ingress answers an Exact `/` of its own. Its match length (1) is the
  // shortest, so it goes last in precedence order.
  const rootClaim = root === undefined || fallback !== undefined || matchesRoot(matchers, regex) ? undefined : winners.find(c => c.owner === root)
  if (rootClaim !== undefined) {
    matchers.push({ kind: MATCH_EXACT, key: '/', match: staticMatch(makeRoute(ctx, rootClaim.owner, host, '/', 'Exact', rootClaim.backend, hostTls, undefined, false, appRoot)) })
  }

  const entry: { -readonly [K in keyof HostEntry]: HostEntry[K] } = { exact: EMPTY_MAP, prefix: EMPTY_MAP, impl: EMPTY_MAP, implLengths: NO_LENGTHS }
  if (matchers.length <= SMALL_HOST) {
    if (matchers.length > 0) entry.list = matchers
  } else {
    const maps = [new Map<string, RouteMatch>(), new Map<string, RouteMatch>(), new Map<string, RouteMatch>()] as const
    for (const m of matchers) maps[m.kind].set(m.key, m.match)
    entry.exact = maps[MATCH_EXACT]
    entry.prefix = maps[MATCH_PREFIX]
    entry.impl = maps[MATCH_IMPL]
    entry.implLengths = [...new Set(Array.from(maps[MATCH_IMPL].keys(), k => k.length))].sort((a, b) => b - a)
  }
  if (regexMode) {
    // nginx checks regex locations in the order ingress-nginx writes them.
    regex.sort(compareRegexRoutes)
    entry.regex = regex
  }
  if (fallback !== undefined) {
    entry.fallback = staticMatch(makeRoute(ctx, fallback.owner, host, '', 'Prefix', fallback.backend, hostTls, undefined, true, appRoot))
  }
  for (const c of canaries?.values() ?? []) {
    ctx.sink.pathProblem(c.owner, { host: c.host, path: c.path, message: `${NO_MAIN_INGRESS} (${c.pathType}); a canary ingress only splits the traffic of a main (non-canary) ingress with the same host, path and pathType, and serves nothing of its own` })
  }
  return entry
}

/** How a canary's path without a main route is reported (finishReport looks for it). */
const NO_MAIN_INGRESS = 'canary: no main ingress serves this host, path and pathType'

function isCanaryClaim (claim: PathClaim): boolean {
  return claim.owner.settings.canary !== undefined
}

/**
 * The canary claims of a host by `pathType path`: the oldest canary of each; the others lose to
 * it, as ingress-nginx takes only the first alternative backend.
 */
function takeCanaries (claims: readonly PathClaim[], conflict: (loser: PathClaim, winner: PathClaim) => void): Map<string, PathClaim> {
  const list = claims.filter(isCanaryClaim).sort(compareClaims)
  const out = new Map<string, PathClaim>()
  for (const claim of list) {
    const key = `${claim.pathType} ${claim.path}`
    const first = out.get(key)
    if (first === undefined) out.set(key, claim)
    else if (first.owner !== claim.owner) conflict(claim, first)
  }
  return out
}

/** A host named only by canary ingresses gets no entry: a canary is never a host of its own, so such a host falls through to the host-less rules and the catch-all. */
function canaryOnly (claims: readonly PathClaim[], fallback: unknown): boolean {
  return fallback === undefined && claims.length > 0 && claims.every(isCanaryClaim)
}

/** Step 4: whether an ingress is served, and why not. */
function finishReport (report: IngressReport, inTable: boolean): void {
  if (report.reason === 'Invalid') return
  if (inTable) {
    report.served = true
    return
  }
  if (report.conflicts.length > 0) {
    report.reason = 'Conflict'
    report.message = `every path of this ingress is claimed by an older ingress: ${[...new Set(report.conflicts.map(c => c.winner))].join(', ')}`
  } else if (report.pathProblems.length > 0 && report.pathProblems.every(p => p.message.startsWith(NO_MAIN_INGRESS))) {
    report.reason = 'NoMainIngress'
    report.message = 'a canary ingress serves nothing of its own, and no main ingress serves its host, path and pathType (see PathsCompiled)'
  } else {
    report.reason = 'NoRoutes'
    report.message = report.pathProblems.length > 0
      ? 'no path of this ingress could be compiled (see pathProblems)'
      : 'the ingress has no paths and no default backend to serve'
  }
}

function pushBackendProblem (list: IngressReport['backendProblems'], problem: { service: string, problem: string }): void {
  if (!list.some(p => p.service === problem.service && p.problem === problem.problem)) list.push(problem)
}

/**
 * Compiles a snapshot into a frozen route table and one report per ingress (in snapshot order).
 * A broken object is reported, never thrown; only a bug in the compiler itself throws
 * (INGRESSD_ERR_INTERNAL), so the caller keeps its last good table.
 *
 * This is the full compile, from nothing. `RouteCompiler` gives the same result incrementally.
 */
export function compileRouteTable (snapshot: RouteSnapshot, options: CompileOptions): { table: RouteTable, reports: IngressReport[] } {
  const generation = typeof options?.generation === 'number' ? options.generation : 0
  try {
    return compile(snapshot, options, generation)
  } catch (err) {
    // Unreachable by design. Throwing (rather than returning an empty table) lets the reloader
    // keep the last good table serving and report the failure.
    throw internalError(err)
  }
}

function internalError (err: unknown): IngressdError {
  return new IngressdError('INGRESSD_ERR_INTERNAL', `the route table could not be compiled: ${errorMessage(err)}`, { cause: err })
}

function compile (snapshot: RouteSnapshot, options: CompileOptions, generation: number): { table: RouteTable, reports: IngressReport[] } {
  const filter = classFilter(options)
  const ingresses = Array.isArray(snapshot?.ingresses) ? snapshot.ingresses : []
  const reports: IngressReport[] = []

  // 1. Reports, class filter, annotations; the served ones sorted oldest first.
  const served: { ing: Ingress, candidate: Candidate }[] = []
  ingresses.forEach((ing, seq) => {
    const { report, candidate } = prepareIngress(ing, filter, seq)
    reports.push(report)
    if (candidate !== undefined) {
      candidate.report = report
      candidate.inTable = false
      served.push({ ing, candidate })
    }
  })
  served.sort((a, b) => compareCandidates(a.candidate, b.candidate))

  // 2. TLS hosts; paths and default backends grouped by host.
  const tls = new TlsHosts()
  const hostBuilds = new Map<string, { claims: PathClaim[], fallback?: { owner: Candidate, backend: IngressBackend | undefined } }>()
  let catchAll: { owner: Candidate, backend: IngressBackend | undefined } | undefined
  const hostBuild = (host: string): { claims: PathClaim[], fallback?: { owner: Candidate, backend: IngressBackend | undefined } } => {
    let b = hostBuilds.get(host)
    if (b === undefined) {
      b = { claims: [] }
      hostBuilds.set(host, b)
    }
    return b
  }
  for (const { ing } of served) for (const h of tlsHostsOf(ing)) tls.add(h)
  for (const { ing, candidate } of served) {
    const report = candidate.report as IngressReport
    // Read the stored ingress first; only a fully readable one takes part.
    let read: ReadIngress
    try {
      read = readIngress(ing, candidate)
    } catch (err) {
      report.reason = 'Invalid'
      report.message = `the stored ingress could not be read: ${errorMessage(err)}`
      continue
    }
    if (read.rules === 0) {
      if (read.defaultBackend !== undefined) {
        if (catchAll === undefined) catchAll = { owner: candidate, backend: read.defaultBackend }
        else report.conflicts.push({ host: '*', path: '*', pathType: 'DefaultBackend', winner: catchAll.owner.id })
      }
      continue
    }
    for (const host of read.hosts) {
      const build = hostBuild(host)
      if (read.defaultBackend === undefined) continue
      if (build.fallback === undefined) build.fallback = { owner: candidate, backend: read.defaultBackend }
      else if (build.fallback.owner !== candidate) report.conflicts.push({ host, path: '*', pathType: 'DefaultBackend', winner: build.fallback.owner.id })
    }
    for (const claim of read.claims) hostBuild(claim.host).claims.push(claim)
  }

  // 3. Routes, host entries.
  const routes: Route[] = []
  const ctx: BuildContext = {
    resolver: new BackendResolver(indexByName(snapshot?.services), indexByName(snapshot?.endpoints)),
    regex: regexCache(new Map()),
    sink: {
      route: (owner, route) => { owner.inTable = true; routes.push(route) },
      backendProblem: (owner, problem) => { pushBackendProblem((owner.report as IngressReport).backendProblems, problem) },
      conflict: (owner, c) => { (owner.report as IngressReport).conflicts.push(c) },
      pathProblem: (owner, p) => { (owner.report as IngressReport).pathProblems.push(p) },
      canary: (owner) => { owner.inTable = true }
    }
  }
  const hosts = new Map<string, HostEntry>()
  const wildcards = new Map<string, HostEntry>()
  let hostless: HostEntry | undefined
  for (const [host, build] of hostBuilds) {
    const skip = canaryOnly(build.claims, build.fallback)
    const entry = buildHost(host, build.claims, build.fallback, tls.covers(host), ctx)
    if (skip) continue
    if (host === '') hostless = entry
    else if (host.startsWith('*.')) wildcards.set(host.slice(2), entry)
    else hosts.set(host, entry)
  }

  let catchAllMatch: RouteMatch | undefined
  if (catchAll !== undefined) {
    try {
      catchAllMatch = staticMatch(makeRoute(ctx, catchAll.owner, '', '', 'Prefix', catchAll.backend, false, undefined, true))
    } catch { /* the owner is reported through its missing routes */ }
  }

  // 4. Served or not.
  for (const { candidate } of served) finishReport(candidate.report as IngressReport, candidate.inTable === true)

  const table = createRouteTable({
    generation,
    hosts,
    wildcards,
    ...(hostless !== undefined ? { hostless } : {}),
    ...(catchAllMatch !== undefined ? { catchAll: catchAllMatch } : {}),
    routes: Object.freeze(routes)
  })
  return { table, reports }
}

// ---------------------------------------------------------------------------------------------
// The incremental compile.

/** One ingress as the incremental compiler knows it: what it contributes, read once per object. */
interface IngressState {
  /** The snapshot object: an unchanged ingress is the same object from one snapshot to the next. */
  readonly ing: Ingress
  readonly id: string
  /** Step 1's report: final for an ingress that is not served or cannot be read. */
  readonly base: IngressReport
  /** The report of the last compile that touched this ingress. */
  report: IngressReport
  /** Set when its class is served and its annotations could be read. */
  readonly candidate: Candidate | undefined
  readonly tlsHosts: readonly unknown[]
  /** Set when served and readable. */
  readonly read: ReadIngress | undefined
  /** Its claims by host, when it names more than one (with one, that host's claims are read.claims). */
  readonly claimsByHost: ReadonlyMap<string, PathClaim[]> | undefined
  /** No rules and a default backend: it competes for the catch-all. */
  readonly catchAll: boolean
  /** The compile that last saw it in the snapshot. */
  seen: number
}

/** What one ingress got and lost on one host. */
interface OwnerEvents {
  conflicts: IngressConflict[]
  pathProblems: IngressReport['pathProblems']
  backendProblems: IngressReport['backendProblems']
  inTable: boolean
}

/** One host as compiled: never changed once made, so a table keeps the ones it was built from. */
interface HostResult {
  readonly host: string
  readonly entry: HostEntry
  /** Its routes, in the order the full compile makes them. */
  readonly routes: readonly Route[]
  /** Where the full compile would put this host among the others: its oldest member, and the host's place among that member's hosts. */
  readonly firstOwner: Candidate
  readonly firstIndex: number
  readonly events: ReadonlyMap<Candidate, OwnerEvents>
  /** Step 2: members whose default backend lost this host's fallback to an older one. */
  readonly fallbackConflicts: ReadonlyMap<Candidate, IngressConflict>
  /** `namespace/service` of every backend its routes use, each once. */
  readonly serviceIds: readonly string[]
  /** Only canary ingresses name it: it is not published (see canaryOnly). */
  readonly canaryOnly: boolean
}

interface HostState {
  readonly host: string
  /** The served, readable ingresses naming this host in a rule, oldest first. */
  readonly members: IngressState[]
  result?: HostResult
}

const NO_CONFLICTS: ReadonlyMap<Candidate, IngressConflict> = new Map()
/** The shared empty list of an OwnerEvents list nothing was put in (replaced, never pushed to). */
const NOTHING: never[] = Object.freeze([]) as unknown as never[]

/** Records what building one host made and refused, per ingress; one recorder serves every host, started again for each. */
class HostRecorder implements BuildSink {
  routes: Route[] = []
  events = new Map<Candidate, OwnerEvents>()
  #backends = new Set<Backend>()

  start (): void {
    this.routes = []
    this.events = new Map()
    this.#backends = new Set()
  }

  /** `namespace/service` of every backend the host's routes use. */
  serviceIds (): string[] {
    const ids: string[] = []
    for (const b of this.#backends) {
      const id = serviceIdOf(b)
      if (!ids.includes(id)) ids.push(id)
    }
    return ids
  }

  /** What happened to `owner` on this host; its lists are made on their first entry (most stay empty). */
  #of (owner: Candidate): OwnerEvents {
    let e = this.events.get(owner)
    if (e === undefined) {
      e = { conflicts: NOTHING, pathProblems: NOTHING, backendProblems: NOTHING, inTable: false }
      this.events.set(owner, e)
    }
    return e
  }

  route (owner: Candidate, route: Route): void {
    this.#of(owner).inTable = true
    this.routes.push(route)
    this.#backends.add(route.backend)
  }

  backendProblem (owner: Candidate, problem: { service: string, problem: string }): void {
    const e = this.#of(owner)
    if (e.backendProblems === NOTHING) e.backendProblems = []
    pushBackendProblem(e.backendProblems, problem)
  }

  conflict (owner: Candidate, conflict: IngressConflict): void {
    const e = this.#of(owner)
    if (e.conflicts === NOTHING) e.conflicts = []
    e.conflicts.push(conflict)
  }

  pathProblem (owner: Candidate, problem: { host: string, path: string, message: string }): void {
    const e = this.#of(owner)
    if (e.pathProblems === NOTHING) e.pathProblems = []
    e.pathProblems.push(problem)
  }

  canary (owner: Candidate, backend: Backend): void {
    this.#of(owner).inTable = true
    this.#backends.add(backend)
  }
}

/** Stands for the catch-all among the hosts that use a service (no host is spelled so). */
const CATCH_ALL = '*catch-all*'

/** Host results by entry, so a table can list its routes lazily. Results are immutable. */
const RESULT_OF = new WeakMap<HostEntry, HostResult>()

function compareHostResults (a: HostResult, b: HostResult): number {
  return compareCandidates(a.firstOwner, b.firstOwner) || a.firstIndex - b.firstIndex
}

/** Inserts into a list kept oldest first. */
function insertMember (members: IngressState[], state: IngressState): void {
  const c = state.candidate as Candidate
  let lo = 0
  let hi = members.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareCandidates((members[mid] as IngressState).candidate as Candidate, c) < 0) lo = mid + 1
    else hi = mid
  }
  members.splice(lo, 0, state)
}

function removeMember (members: IngressState[], state: IngressState): void {
  const i = members.indexOf(state)
  if (i >= 0) members.splice(i, 1)
}

/** Two snapshots' ingresses name the same object twice, or two objects by one name: a store never does; the full compile handles it. */
class DuplicateIngress extends Error {}

/**
 * The incremental compile: the same table and reports as `compileRouteTable` gives for the same
 * snapshot, computed from what changed since the previous snapshot. Ingresses, Services and
 * Endpoints are told apart by object identity (SnapshotReader keeps an unchanged object the same
 * object). A changed ingress recompiles only the hosts it named before and names now, plus the
 * hosts whose TLS flag it flips; a changed Service or Endpoints recompiles the hosts that route to
 * it. The reports of the ingresses on those hosts are assembled again; every other report is the
 * same object as in the previous result.
 *
 * Each table it returns is immutable and shares unchanged host entries with the previous one.
 * A compile that throws leaves the compiler empty, so the next one starts from nothing.
 */
export class RouteCompiler {
  readonly #filter: ClassFilter
  readonly #settleAfter: number | undefined
  #resolver = new BackendResolver(new Map(), new Map())
  readonly #regexCache = new Map<string, RegExp | string>()
  readonly #recorder = new HostRecorder()
  /** What buildHost works with; the resolver is replaced on reset, so read through a getter. */
  readonly #context: BuildContext
  #byObject = new Map<unknown, IngressState>()
  #byId = new Map<string, IngressState>()
  #hosts = new Map<string, HostState>()
  #hostsByParent = new Map<string, Set<string>>()
  #tls = new TlsHosts()
  #catchAllMembers: IngressState[] = []
  #catchAll: { owner: Candidate, match: RouteMatch, problem?: { service: string, problem: string }, serviceId: string } | undefined
  #servicesByHost = new Map<string, Set<string>>()
  #services = new Map<string, Service>()
  #endpoints = new Map<string, Endpoints>()
  #last: { ingresses: unknown, services: unknown, endpoints: unknown, reports: IngressReport[] } | undefined
  /** The published host maps: big maps shared by the tables, and the changes over them since (see RouteTableParts). */
  #hostEntries = new LayeredEntries()
  #wildcardEntries = new LayeredEntries()
  #hostless: HostEntry | undefined
  #routeCount = 0
  #epoch = 0
  /** What the last compile did: for tests and the benchmark. */
  readonly stats = { full: false, hostsCompiled: 0, reportsAssembled: 0 }

  constructor (options: Omit<CompileOptions, 'generation'> & {
    /** How many host changes are kept over the shared host maps before they are folded in (default: a sixteenth of the hosts, at least 64). For tests. */
    settleAfter?: number
  }) {
    this.#filter = classFilter(options)
    this.#settleAfter = options.settleAfter
    const regex = regexCache(this.#regexCache)
    const self = this
    this.#context = {
      get resolver () { return self.#resolver },
      regex,
      sink: this.#recorder
    }
  }

  /** Compiles `snapshot` into a table and one report per ingress in snapshot order, as compileRouteTable would. */
  compile (snapshot: RouteSnapshot, generation = 0): { table: RouteTable, reports: IngressReport[] } {
    try {
      return this.#compile(snapshot, generation)
    } catch (err) {
      this.#reset()
      if (err instanceof DuplicateIngress) {
        this.stats.full = true
        return compileRouteTable(snapshot, { ingressClasses: [...this.#filter.classes], generation })
      }
      throw internalError(err)
    }
  }

  #reset (): void {
    this.#resolver = new BackendResolver(new Map(), new Map())
    this.#regexCache.clear()
    this.#byObject = new Map()
    this.#byId = new Map()
    this.#hosts = new Map()
    this.#hostsByParent = new Map()
    this.#tls = new TlsHosts()
    this.#catchAllMembers = []
    this.#catchAll = undefined
    this.#servicesByHost = new Map()
    this.#services = new Map()
    this.#endpoints = new Map()
    this.#last = undefined
    this.#hostEntries = new LayeredEntries()
    this.#wildcardEntries = new LayeredEntries()
    this.#hostless = undefined
    this.#routeCount = 0
  }

  #compile (snapshot: RouteSnapshot, generation: number): { table: RouteTable, reports: IngressReport[] } {
    const ingresses: Ingress[] = Array.isArray(snapshot?.ingresses) ? snapshot.ingresses : []
    const last = this.#last
    this.stats.full = last === undefined
    this.stats.hostsCompiled = 0
    this.stats.reportsAssembled = 0
    const dirtyHosts = new Set<string>()
    const dirtyIngresses = new Set<IngressState>()
    let catchAllDirty = false

    // Services and Endpoints: which services changed, and the hosts routing to them.
    const servicesChanged = last === undefined || last.services !== snapshot?.services
    const endpointsChanged = last === undefined || last.endpoints !== snapshot?.endpoints
    if (servicesChanged || endpointsChanged) {
      const changed = new Set<string>()
      const diff = <T>(before: ReadonlyMap<string, T>, after: ReadonlyMap<string, T>): void => {
        for (const [id, obj] of after) if (before.get(id) !== obj) changed.add(id)
        for (const id of before.keys()) if (!after.has(id)) changed.add(id)
      }
      const services = servicesChanged ? indexByName(snapshot?.services) : this.#services
      const endpoints = endpointsChanged ? indexByName(snapshot?.endpoints) : this.#endpoints
      if (servicesChanged) diff(this.#services, services)
      if (endpointsChanged) diff(this.#endpoints, endpoints)
      this.#services = services
      this.#endpoints = endpoints
      this.#resolver.update(services, endpoints, changed)
      for (const id of changed) {
        for (const host of this.#servicesByHost.get(id) ?? []) dirtyHosts.add(host)
        if (this.#catchAll?.serviceId === id) catchAllDirty = true
      }
    }

    // Ingresses: which objects left, which arrived.
    const ingressesChanged = last === undefined || last.ingresses !== snapshot?.ingresses
    /** The state of each ingress, in snapshot order (when the list changed). */
    let states: IngressState[] | undefined
    if (ingressesChanged) {
      const epoch = ++this.#epoch
      states = new Array<IngressState>(ingresses.length)
      const arrived: number[] = []
      let kept = 0
      for (let i = 0; i < ingresses.length; i++) {
        const state = this.#byObject.get(ingresses[i])
        if (state === undefined) {
          arrived.push(i)
          continue
        }
        if (state.seen === epoch) throw new DuplicateIngress()
        state.seen = epoch
        states[i] = state
        kept++
      }
      if (kept < this.#byObject.size) {
        for (const state of [...this.#byObject.values()]) {
          if (state.seen !== epoch) this.#detach(state, dirtyHosts, () => { catchAllDirty = true })
        }
      }
      for (const i of arrived) {
        const state = this.#attach(ingresses[i] as Ingress, epoch, dirtyHosts, () => { catchAllDirty = true })
        states[i] = state
        dirtyIngresses.add(state)
      }
    }

    // Hosts: compile the dirty ones again; the published maps are never changed, a new layer of changes is made.
    let hostEntries = this.#hostEntries
    let wildcardEntries = this.#wildcardEntries
    const setEntry = (host: string, entry: HostEntry | undefined): void => {
      if (host === '') {
        this.#hostless = entry
        return
      }
      if (host.startsWith('*.')) {
        if (wildcardEntries === this.#wildcardEntries) wildcardEntries = wildcardEntries.edit()
        wildcardEntries.set(host.slice(2), entry)
      } else {
        if (hostEntries === this.#hostEntries) hostEntries = hostEntries.edit()
        hostEntries.set(host, entry)
      }
    }
    for (const host of dirtyHosts) {
      const state = this.#hosts.get(host)
      if (state === undefined) continue
      const previous = state.result
      if (previous !== undefined) {
        this.#routeCount -= previous.routes.length
        this.#unindexServices(host, previous.serviceIds)
      }
      if (state.members.length === 0) {
        this.#hosts.delete(host)
        const parent = parentOf(host)
        if (parent !== undefined) {
          const set = this.#hostsByParent.get(parent)
          set?.delete(host)
          if (set?.size === 0) this.#hostsByParent.delete(parent)
        }
        setEntry(host, undefined)
        continue
      }
      const result = this.#buildHost(state)
      state.result = result
      this.stats.hostsCompiled++
      this.#routeCount += result.routes.length
      for (const id of result.serviceIds) {
        let hostsOf = this.#servicesByHost.get(id)
        if (hostsOf === undefined) {
          hostsOf = new Set()
          this.#servicesByHost.set(id, hostsOf)
        }
        hostsOf.add(host)
      }
      setEntry(host, result.canaryOnly ? undefined : result.entry)
      for (const m of state.members) dirtyIngresses.add(m)
    }

    // The catch-all: the oldest ingress with no rules and a default backend.
    if (catchAllDirty) {
      const previous = this.#catchAll
      if (previous !== undefined) {
        this.#routeCount--
        this.#unindexServices(CATCH_ALL, [previous.serviceId])
      }
      this.#catchAll = undefined
      const winner = this.#catchAllMembers[0]
      if (winner !== undefined) {
        let problem: { service: string, problem: string } | undefined
        let route: Route | undefined
        const ctx: BuildContext = {
          resolver: this.#resolver,
          regex: this.#context.regex,
          sink: { route: (_o, r) => { route = r }, backendProblem: (_o, p) => { problem = p }, conflict: () => {}, pathProblem: () => {}, canary: () => {} }
        }
        const match = staticMatch(makeRoute(ctx, winner.candidate as Candidate, '', '', 'Prefix', winner.read?.defaultBackend, false, undefined, true))
        const serviceId = serviceIdOf((route as Route).backend)
        this.#catchAll = { owner: winner.candidate as Candidate, match, serviceId, ...(problem !== undefined ? { problem } : {}) }
        this.#routeCount++
        let hostsOf = this.#servicesByHost.get(serviceId)
        if (hostsOf === undefined) {
          hostsOf = new Set()
          this.#servicesByHost.set(serviceId, hostsOf)
        }
        hostsOf.add(CATCH_ALL)
      }
      for (const m of this.#catchAllMembers) dirtyIngresses.add(m)
    }

    // Reports: assembled again for every ingress on a host that changed; the others stay the same objects.
    for (const state of dirtyIngresses) {
      if (this.#byObject.get(state.ing) !== state) continue
      state.report = this.#assemble(state)
      this.stats.reportsAssembled++
    }
    let reports: IngressReport[]
    if (!ingressesChanged && dirtyIngresses.size === 0 && last !== undefined) {
      reports = last.reports
    } else {
      reports = new Array<IngressReport>(ingresses.length)
      if (states !== undefined) for (let i = 0; i < ingresses.length; i++) reports[i] = (states[i] as IngressState).report
      else for (let i = 0; i < ingresses.length; i++) reports[i] = (this.#byObject.get(ingresses[i]) as IngressState).report
    }
    if (this.#regexCache.size > 4096 + 4 * this.#hosts.size) this.#regexCache.clear()

    this.#hostEntries = hostEntries = hostEntries.settle(this.#settleAfter)
    this.#wildcardEntries = wildcardEntries = wildcardEntries.settle(this.#settleAfter)
    this.#last = { ingresses: snapshot?.ingresses, services: snapshot?.services, endpoints: snapshot?.endpoints, reports }
    const hostless = this.#hostless
    const catchAllMatch = this.#catchAll?.match
    const hostsNow = hostEntries
    const wildcardsNow = wildcardEntries
    const table = createRouteTable({
      generation,
      hosts: hostsNow.base,
      hostChanges: hostsNow.changes,
      wildcards: wildcardsNow.base,
      wildcardChanges: wildcardsNow.changes,
      ...(hostless !== undefined ? { hostless } : {}),
      ...(catchAllMatch !== undefined ? { catchAll: catchAllMatch } : {}),
      routeCount: this.#routeCount,
      routes: () => listRoutes([hostsNow.values(), wildcardsNow.values(), hostless === undefined ? [] : [hostless]], catchAllMatch)
    })
    return { table, reports }
  }

  /** Takes an ingress in: reads it once, and marks what it touches. */
  #attach (ing: Ingress, epoch: number, dirtyHosts: Set<string>, catchAllDirty: () => void): IngressState {
    // No two ingresses share an id here (that falls back to the full compile), so the snapshot position never decides.
    const { report, candidate } = prepareIngress(ing, this.#filter, 0)
    const id = `${report.namespace}/${report.name}`
    const other = this.#byId.get(id)
    if (other !== undefined && other.seen === epoch) throw new DuplicateIngress()
    let read: ReadIngress | undefined
    let tlsHosts: unknown[] = []
    if (candidate !== undefined) {
      tlsHosts = tlsHostsOf(ing)
      try {
        read = readIngress(ing, candidate)
      } catch (err) {
        report.reason = 'Invalid'
        report.message = `the stored ingress could not be read: ${errorMessage(err)}`
      }
    }
    let claimsByHost: Map<string, PathClaim[]> | undefined
    if (read !== undefined && read.hosts.length > 1) {
      claimsByHost = new Map()
      for (const h of read.hosts) claimsByHost.set(h, [])
      for (const claim of read.claims) claimsByHost.get(claim.host)?.push(claim)
    }
    const state: IngressState = {
      ing,
      id,
      base: report,
      report,
      candidate,
      tlsHosts,
      read,
      claimsByHost,
      catchAll: read !== undefined && read.rules === 0 && read.defaultBackend !== undefined,
      seen: epoch
    }
    this.#byObject.set(ing, state)
    this.#byId.set(id, state)
    for (const h of tlsHosts) this.#tlsChanged(this.#tls.add(h, 1), dirtyHosts)
    if (read !== undefined && read.rules > 0) {
      for (const host of read.hosts) {
        let hostState = this.#hosts.get(host)
        if (hostState === undefined) {
          hostState = { host, members: [] }
          this.#hosts.set(host, hostState)
          const parent = parentOf(host)
          if (parent !== undefined) {
            let set = this.#hostsByParent.get(parent)
            if (set === undefined) {
              set = new Set()
              this.#hostsByParent.set(parent, set)
            }
            set.add(host)
          }
        }
        insertMember(hostState.members, state)
        dirtyHosts.add(host)
      }
    }
    if (state.catchAll) {
      insertMember(this.#catchAllMembers, state)
      catchAllDirty()
    }
    return state
  }

  /** Takes an ingress out, and marks what it touched. */
  #detach (state: IngressState, dirtyHosts: Set<string>, catchAllDirty: () => void): void {
    this.#byObject.delete(state.ing)
    if (this.#byId.get(state.id) === state) this.#byId.delete(state.id)
    for (const h of state.tlsHosts) this.#tlsChanged(this.#tls.add(h, -1), dirtyHosts)
    for (const host of state.read !== undefined && state.read.rules > 0 ? state.read.hosts : []) {
      const hostState = this.#hosts.get(host)
      if (hostState === undefined) continue
      removeMember(hostState.members, state)
      dirtyHosts.add(host)
    }
    if (state.catchAll) {
      removeMember(this.#catchAllMembers, state)
      catchAllDirty()
    }
  }

  /** A TLS host came or went: the hosts whose TLS flag it decides are compiled again. */
  #tlsChanged (change: ReturnType<TlsHosts['add']>, dirtyHosts: Set<string>): void {
    if (change === undefined) return
    if ('exact' in change) {
      if (this.#hosts.has(change.exact)) dirtyHosts.add(change.exact)
      return
    }
    for (const host of this.#hostsByParent.get(change.parent) ?? []) dirtyHosts.add(host)
  }

  #unindexServices (host: string, ids: Iterable<string>): void {
    for (const id of ids) {
      const hostsOf = this.#servicesByHost.get(id)
      if (hostsOf === undefined) continue
      hostsOf.delete(host)
      if (hostsOf.size === 0) {
        this.#servicesByHost.delete(id)
        this.#resolver.forget(id)
      }
    }
  }

  /** Steps 2 and 3 for one host, as the full compile does them, with what happened to each member recorded. */
  #buildHost (state: HostState): HostResult {
    const { host, members } = state
    const claims: PathClaim[] = []
    let fallback: { owner: Candidate, backend: IngressBackend | undefined } | undefined
    let fallbackConflicts: Map<Candidate, IngressConflict> | undefined
    for (const m of members) {
      const candidate = m.candidate as Candidate
      const defaultBackend = m.read?.defaultBackend
      if (defaultBackend !== undefined) {
        if (fallback === undefined) fallback = { owner: candidate, backend: defaultBackend }
        else (fallbackConflicts ??= new Map()).set(candidate, { host, path: '*', pathType: 'DefaultBackend', winner: fallback.owner.id })
      }
      const own = m.claimsByHost === undefined ? m.read?.claims : m.claimsByHost.get(host)
      if (own !== undefined) for (const c of own) claims.push(c)
    }
    const recorder = this.#recorder
    recorder.start()
    const skip = canaryOnly(claims, fallback)
    const entry = buildHost(host, claims, fallback, this.#tls.covers(host), this.#context)
    const first = members[0] as IngressState
    const result: HostResult = {
      host,
      entry,
      routes: recorder.routes,
      firstOwner: first.candidate as Candidate,
      firstIndex: first.read?.hosts.indexOf(host) ?? 0,
      events: recorder.events,
      fallbackConflicts: fallbackConflicts ?? NO_CONFLICTS,
      serviceIds: recorder.serviceIds(),
      canaryOnly: skip
    }
    RESULT_OF.set(entry, result)
    return result
  }

  /** One ingress's report, in the order the full compile writes it. */
  #assemble (state: IngressState): IngressReport {
    const { candidate, read, base } = state
    if (candidate === undefined || read === undefined) return base
    const report: IngressReport = { ...base, conflicts: [], backendProblems: [], pathProblems: [] }
    let inTable = false
    if (read.rules === 0) {
      if (state.catchAll) {
        const winner = this.#catchAll
        if (winner?.owner === candidate) {
          inTable = true
          if (winner.problem !== undefined) report.backendProblems.push(winner.problem)
        } else if (winner !== undefined) {
          report.conflicts.push({ host: '*', path: '*', pathType: 'DefaultBackend', winner: winner.owner.id })
        }
      }
    } else {
      const results: HostResult[] = []
      for (const host of read.hosts) {
        const result = this.#hosts.get(host)?.result
        if (result === undefined) continue
        results.push(result)
        const lost = result.fallbackConflicts.get(candidate)
        if (lost !== undefined) report.conflicts.push(lost)
      }
      if (results.length > 1) results.sort(compareHostResults)
      for (const result of results) {
        const e = result.events.get(candidate)
        if (e === undefined) continue
        for (const c of e.conflicts) report.conflicts.push(c)
        for (const p of e.pathProblems) report.pathProblems.push(p)
        for (const p of e.backendProblems) pushBackendProblem(report.backendProblems, p)
        if (e.inTable) inTable = true
      }
    }
    finishReport(report, inTable)
    return report
  }
}

/**
 * Host entries by name as a big base map and a small map of changes over it (null: taken away).
 * Published versions are never changed: edit() gives a new version that copies only the changes,
 * and settle() folds the changes into a new base once they are a sixteenth of it, so a change
 * costs its own size, plus a copy of the base every few hundred changes.
 */
class LayeredEntries {
  constructor (readonly base: ReadonlyMap<string, HostEntry> = new Map(), readonly changes: Map<string, HostEntry | null> = new Map()) {}

  edit (): LayeredEntries {
    return new LayeredEntries(this.base, new Map(this.changes))
  }

  /** Only on a version from edit(), before it is published. */
  set (key: string, entry: HostEntry | undefined): void {
    if (entry !== undefined) this.changes.set(key, entry)
    else if (this.base.has(key)) this.changes.set(key, null)
    else this.changes.delete(key)
  }

  settle (limit: number | undefined): LayeredEntries {
    if (this.changes.size <= (limit ?? Math.max(64, this.base.size >> 4))) return this
    const base = new Map(this.base)
    for (const [key, entry] of this.changes) {
      if (entry === null) base.delete(key)
      else base.set(key, entry)
    }
    return new LayeredEntries(base)
  }

  * values (): Generator<HostEntry> {
    for (const entry of this.changes.values()) if (entry !== null) yield entry
    for (const [key, entry] of this.base) if (!this.changes.has(key)) yield entry
  }
}

/** Every route of a table built by RouteCompiler, in the order the full compile lists them. */
function listRoutes (entries: Iterable<HostEntry>[], catchAll: RouteMatch | undefined): readonly Route[] {
  const results: HostResult[] = []
  for (const list of entries) {
    for (const entry of list) {
      const result = RESULT_OF.get(entry)
      if (result !== undefined) results.push(result)
    }
  }
  results.sort(compareHostResults)
  const routes: Route[] = []
  for (const r of results) for (const route of r.routes) routes.push(route)
  if (catchAll !== undefined) routes.push(catchAll.route)
  return Object.freeze(routes)
}
