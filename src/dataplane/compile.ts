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
  /** 'IngressClassNotServed' | 'Conflict' | 'NoRoutes' | 'Invalid' | 'InternalError' when not served. */
  reason?: string
  message?: string
  conflicts: IngressConflict[]
  annotationProblems: AnnotationProblem[]
  ignoredAnnotations: string[]
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

/** One served ingress while compiling. */
interface Candidate {
  /** Rank by age, oldest 0: the lower wins conflicts. */
  order: number
  namespace: string
  name: string
  /** `namespace/name` */
  id: string
  ref: { readonly namespace: string, readonly name: string }
  settings: Readonly<IngressSettings>
  /** The settings without rewrite, for its default-backend routes (made when first needed). */
  defaultBackendSettings?: Readonly<IngressSettings>
  report: IngressReport
  inTable: boolean
}

interface PathClaim {
  owner: Candidate
  host: string
  path: string
  pathType: PathType
  backend: IngressBackend | undefined
}

function emptyReport (namespace: string, name: string): IngressReport {
  return { namespace, name, served: false, conflicts: [], annotationProblems: [], ignoredAnnotations: [], backendProblems: [], pathProblems: [] }
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

function ageOf (ing: Ingress): number {
  const t = Date.parse(ing.metadata?.creationTimestamp ?? '')
  return Number.isNaN(t) ? Infinity : t
}

function compareStrings (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Resolves backends to upstreams, one frozen Backend per key, and indexes Services and Endpoints once. */
class BackendResolver {
  readonly #services = new Map<string, Service>()
  readonly #endpoints = new Map<string, Endpoints>()
  readonly #cache = new Map<string, Backend>()

  constructor (services: Service[], endpoints: Endpoints[]) {
    for (const svc of Array.isArray(services) ? services : []) {
      if (svc?.metadata?.name === undefined) continue
      this.#services.set(`${svc.metadata.namespace ?? 'default'}/${svc.metadata.name}`, svc)
    }
    for (const eps of Array.isArray(endpoints) ? endpoints : []) {
      if (eps?.metadata?.name === undefined) continue
      this.#endpoints.set(`${eps.metadata.namespace ?? 'default'}/${eps.metadata.name}`, eps)
    }
  }

  resolve (namespace: string, ref: IngressBackend | undefined): Backend {
    const service = typeof ref?.service?.name === 'string' ? ref.service.name : ''
    const portRef = ref?.service?.port
    const portNumber = typeof portRef?.number === 'number' ? portRef.number : undefined
    const portName = portNumber === undefined && typeof portRef?.name === 'string' && portRef.name !== '' ? portRef.name : undefined
    const port = portNumber !== undefined ? String(portNumber) : portName ?? ''
    const key = `${namespace}/${service}:${port}`
    let backend = this.#cache.get(key)
    if (backend === undefined) {
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
      this.#cache.set(key, backend)
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

/** TLS hosts of the served ingresses: exact names, and wildcard parents (`*.foo.com` -> `foo.com`). */
class TlsHosts {
  readonly #exact = new Set<string>()
  readonly #wildcardParents = new Set<string>()

  add (host: string | undefined): void {
    const h = normalizeRuleHost(host)
    if (h === '') return
    if (h.startsWith('*.')) this.#wildcardParents.add(h.slice(2))
    else this.#exact.add(h)
  }

  covers (host: string): boolean {
    if (host === '') return false
    if (this.#exact.has(host)) return true
    const dot = host.indexOf('.')
    return dot > 0 && this.#wildcardParents.has(host.slice(dot + 1))
  }
}

interface HostBuild {
  host: string
  claims: PathClaim[]
  fallback?: { owner: Candidate, backend: IngressBackend | undefined }
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
  return a.pathType === b.pathType ? compareStrings(a.path, b.path) || a.owner.order - b.owner.order : PATH_TYPE_RANK[a.pathType] - PATH_TYPE_RANK[b.pathType]
}

/** Regex routes in ingress-nginx's order: longest path first, then descending string order; ties keep the oldest ingress first (stable sort). */
function compareRegexRoutes (a: Route, b: Route): number {
  return b.path.length - a.path.length || compareStrings(b.path, a.path) || PATH_TYPE_RANK[a.pathType] - PATH_TYPE_RANK[b.pathType]
}

/** Precedence: longest match first, then Exact, Prefix, ImplementationSpecific; then by key, so equal keys are adjacent; then the oldest ingress. */
function comparePathItems (a: PathItem, b: PathItem): number {
  return b.length - a.length || a.kind - b.kind || compareStrings(a.key, b.key) || a.claim.owner.order - b.claim.owner.order
}

/** The parts of a stored ingress the table uses, read defensively (stored data is never trusted to be well-formed). */
function readIngress (ing: Ingress, owner: Candidate): { rules: number, hosts: string[], claims: PathClaim[], defaultBackend: IngressBackend | undefined } {
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
  const defaultBackend = spec?.defaultBackend ?? undefined
  return { rules: rules.length, hosts, claims, defaultBackend }
}

/**
 * Compiles a snapshot into a frozen route table and one report per ingress (in snapshot order).
 * A broken object is reported, never thrown; only a bug in the compiler itself throws
 * (INGRESSD_ERR_INTERNAL), so the caller keeps its last good table.
 */
export function compileRouteTable (snapshot: RouteSnapshot, options: CompileOptions): { table: RouteTable, reports: IngressReport[] } {
  const generation = typeof options?.generation === 'number' ? options.generation : 0
  try {
    return compile(snapshot, options, generation, [])
  } catch (err) {
    // Unreachable by design. Throwing (rather than returning an empty table) lets the reloader
    // keep the last good table serving and report the failure.
    throw new IngressdError('INGRESSD_ERR_INTERNAL', `the route table could not be compiled: ${errorMessage(err)}`, { cause: err })
  }
}

function compile (snapshot: RouteSnapshot, options: CompileOptions, generation: number, reports: IngressReport[]): { table: RouteTable, reports: IngressReport[] } {
  const classes = new Set(Array.isArray(options?.ingressClasses) ? options.ingressClasses : [])
  const classList = [...classes].map(c => JSON.stringify(c)).join(', ')
  const ingresses = Array.isArray(snapshot?.ingresses) ? snapshot.ingresses : []

  // 1. Reports, class filter, annotations; the served ones sorted oldest first.
  const served: { ing: Ingress, candidate: Candidate, age: number }[] = []
  for (const ing of ingresses) {
    const namespace = typeof ing?.metadata?.namespace === 'string' && ing.metadata.namespace !== '' ? ing.metadata.namespace : 'default'
    const name = typeof ing?.metadata?.name === 'string' ? ing.metadata.name : ''
    const report = emptyReport(namespace, name)
    reports.push(report)
    try {
      const cls = ingressClassOf(ing)
      if (cls !== undefined && !classes.has(cls)) {
        report.reason = 'IngressClassNotServed'
        report.message = `ingress class ${JSON.stringify(cls)} is not served by ingressd (served classes: ${classList === '' ? 'none' : classList}, and ingresses without a class)`
        continue
      }
      const parsed = parseIngressAnnotations(ing.metadata?.annotations)
      report.annotationProblems = parsed.problems
      report.ignoredAnnotations = parsed.ignored
      const candidate: Candidate = { order: 0, namespace, name, id: `${namespace}/${name}`, ref: Object.freeze({ namespace, name }), settings: Object.freeze(parsed.settings), report, inTable: false }
      served.push({ ing, candidate, age: ageOf(ing) })
    } catch (err) {
      report.reason = 'Invalid'
      report.message = `the stored ingress could not be read: ${errorMessage(err)}`
    }
  }
  served.sort((a, b) => a.age - b.age || compareStrings(a.candidate.id, b.candidate.id))
  served.forEach((s, i) => { s.candidate.order = i })

  // 2. TLS hosts; paths and default backends grouped by host.
  const tls = new TlsHosts()
  const hostBuilds = new Map<string, HostBuild>()
  let catchAll: { owner: Candidate, backend: IngressBackend | undefined } | undefined
  const hostBuild = (host: string): HostBuild => {
    let b = hostBuilds.get(host)
    if (b === undefined) {
      b = { host, claims: [] }
      hostBuilds.set(host, b)
    }
    return b
  }
  for (const { ing } of served) {
    try {
      for (const entry of ing.spec?.tls ?? []) for (const h of entry?.hosts ?? []) tls.add(h)
    } catch { /* a malformed tls list only loses its TLS flag */ }
  }
  for (const { ing, candidate } of served) {
    const { report } = candidate
    // Read the stored ingress first; only a fully readable one takes part.
    let read: ReturnType<typeof readIngress>
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
  const resolver = new BackendResolver(snapshot?.services, snapshot?.endpoints)
  const routes: Route[] = []
  const regexCache = new Map<string, RegExp | string>()
  const compiledRegex = (path: string): RegExp | string => {
    let r = regexCache.get(path)
    if (r === undefined) {
      try {
        r = regexPathProblem(path) ?? compilePathRegex(path)
      } catch (err) {
        r = errorMessage(err)
      }
      regexCache.set(path, r)
    }
    return r
  }
  const makeRoute = (owner: Candidate, host: string, path: string, pathType: PathType, ref: IngressBackend | undefined, hostTls: boolean, regex: RegExp | undefined, defaultBackend: boolean): Route => {
    const backend = resolver.resolve(owner.namespace, ref)
    if (backend.problem !== undefined && !owner.report.backendProblems.some(p => p.service === backend.service && p.problem === backend.problem)) {
      owner.report.backendProblems.push({ service: backend.service, problem: backend.problem })
    }
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
    owner.inTable = true
    const frozen = Object.freeze(route)
    routes.push(frozen)
    return frozen
  }

  const hosts = new Map<string, HostEntry>()
  const wildcards = new Map<string, HostEntry>()
  let hostless: HostEntry | undefined
  const conflict = (loser: PathClaim, winner: PathClaim): void => {
    loser.owner.report.conflicts.push({ host: loser.host, path: loser.path, pathType: loser.pathType, winner: winner.owner.id })
  }
  for (const build of hostBuilds.values()) {
    const hostTls = tls.covers(build.host)

    // The oldest ingress keeps a host + path + pathType; the others lose it.
    const claims = build.claims
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

    const items: PathItem[] = []
    const regex: Route[] = []
    for (const claim of winners) {
      if (regexMode && claim.pathType !== 'Exact') {
        const compiled = compiledRegex(claim.path === '' ? '/' : claim.path)
        if (typeof compiled === 'string') {
          claim.owner.report.pathProblems.push({ host: claim.host, path: claim.path, message: `the host is in regex mode (use-regex or a rewrite-target with $N on one of its ingresses) and this path is refused as a regular expression: ${compiled}` })
          continue
        }
        regex.push(makeRoute(claim.owner, claim.host, claim.path, claim.pathType, claim.backend, hostTls, compiled, false))
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
      matchers.push({ kind: item.kind, key: item.key, match: staticMatch(makeRoute(item.claim.owner, item.claim.host, item.claim.path, item.claim.pathType, item.claim.backend, hostTls, undefined, false)) })
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
    if (build.fallback !== undefined) {
      entry.fallback = staticMatch(makeRoute(build.fallback.owner, build.host, '', 'Prefix', build.fallback.backend, hostTls, undefined, true))
    }
    if (build.host === '') hostless = entry
    else if (build.host.startsWith('*.')) wildcards.set(build.host.slice(2), entry)
    else hosts.set(build.host, entry)
  }

  let catchAllMatch: RouteMatch | undefined
  if (catchAll !== undefined) {
    try {
      catchAllMatch = staticMatch(makeRoute(catchAll.owner, '', '', 'Prefix', catchAll.backend, false, undefined, true))
    } catch { /* the owner is reported through its missing routes */ }
  }

  // 4. Served or not.
  for (const { candidate } of served) {
    const { report } = candidate
    if (report.reason === 'Invalid') continue
    if (candidate.inTable) {
      report.served = true
      continue
    }
    if (report.conflicts.length > 0) {
      report.reason = 'Conflict'
      report.message = `every path of this ingress is claimed by an older ingress: ${[...new Set(report.conflicts.map(c => c.winner))].join(', ')}`
    } else {
      report.reason = 'NoRoutes'
      report.message = report.pathProblems.length > 0
        ? 'no path of this ingress could be compiled (see pathProblems)'
        : 'the ingress has no paths and no default backend to serve'
    }
  }

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
