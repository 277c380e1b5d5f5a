/**
 * The route table the data plane consults on every request: plain frozen data built by
 * compile.ts, looked up by host (one Map lookup, or two for a wildcard) and then by path within
 * that host only, so a lookup costs the same at ten ingresses as at ten thousand.
 */
import type { IngressSettings } from '../resources/annotations.js'
import type { PathType } from '../resources/ingress.js'
import type { Canary } from './policies/canary.js'

/** Where a backend's requests go: an IP (from Endpoints addresses) or a DNS name (ExternalName). IPv6 addresses are bare, without brackets. */
export interface Upstream { readonly host: string, readonly port: number }

export type BackendProblem = 'ServiceNotFound' | 'PortNotFound' | 'NoEndpoints'

export interface Backend {
  /** Stable identity `${namespace}/${service}:${servicePort}`, so proxy pools can be reused across tables. */
  readonly key: string
  readonly namespace: string
  readonly service: string
  /** The port as the ingress named it: a number as a string, or a port name. */
  readonly port: string
  /** Empty => 503. */
  readonly upstreams: readonly Upstream[]
  /** Why upstreams is empty. */
  readonly problem?: BackendProblem
}

export interface Route {
  readonly ingress: { readonly namespace: string, readonly name: string }
  /** The rule's host, lowercase: exact (`foo.com`), wildcard (`*.foo.com`), or '' for host-less rules and the catch-all. */
  readonly host: string
  /** The path as written ('' for none, and for default-backend routes). */
  readonly path: string
  readonly pathType: PathType
  /** Set when the route matches by regular expression (the host is in regex mode and the path is not Exact). */
  readonly regex?: RegExp
  readonly backend: Backend
  /** Parsed annotations of the ingress that owns the path (without rewriteTarget on default-backend routes). */
  readonly settings: Readonly<IngressSettings>
  /** The host has a TLS entry in a served ingress (exact, or a `*.x` TLS host covering it). */
  readonly tls: boolean
  /** True for an ingress's spec.defaultBackend: a host's fallback, or the catch-all (host ''). */
  readonly defaultBackend?: boolean
  /** A canary ingress with the same host, path and pathType splits this route's traffic (policies/canary.ts). */
  readonly canary?: Canary
}

export interface RouteMatch {
  readonly route: Route
  /** The regex groups, for `$1`..`$9` in rewrite-target; unmatched groups are ''. */
  readonly captures?: readonly string[]
}

export interface RouteTable {
  /** Which compile this table came from (CompileOptions.generation, default 0). */
  readonly generation: number
  /** host: normalized (lowercase, no port, no trailing dot); path: the request path WITHOUT query string. */
  find (host: string, path: string): RouteMatch | undefined
  /** Every route in the table, path routes and default-backend routes. */
  readonly routeCount: number
  readonly routes: readonly Route[]
}

/** How a PathMatcher compares: Exact equality, Prefix element-wise, ImplementationSpecific string prefix. */
export const MATCH_EXACT = 0
export const MATCH_PREFIX = 1
export const MATCH_IMPL = 2
export type MatchKind = typeof MATCH_EXACT | typeof MATCH_PREFIX | typeof MATCH_IMPL

/** One non-regex path of a small host: its kind, its key (prefixKey / implKey / the exact path) and its prebuilt match. */
export interface PathMatcher {
  readonly kind: MatchKind
  readonly key: string
  readonly match: RouteMatch
}

/**
 * One host's routes, laid out for lookup. Matches are prebuilt and frozen, so a non-regex
 * lookup allocates nothing. Built by compile.ts and never changed afterwards; only the table's
 * private fields reach it, so it is left unfrozen (what find() hands out is frozen).
 *
 * A small host keeps its non-regex paths in `list`, sorted by precedence (the length of what
 * the path matches, then Exact, Prefix, ImplementationSpecific): the first that matches wins. A
 * large host keeps them in the maps instead, which give the same answer in a few lookups
 * whatever the number of paths. In regex mode only Exact paths are in the list or maps.
 */
export interface HostEntry {
  readonly list?: readonly PathMatcher[]
  /** Exact paths (in regex mode too: still exact, and checked first like nginx `location =`). */
  readonly exact: ReadonlyMap<string, RouteMatch>
  /** Prefix paths by their path without trailing slashes ('' for `/`). */
  readonly prefix: ReadonlyMap<string, RouteMatch>
  /** ImplementationSpecific paths (string prefix, '' as '/'), and their distinct lengths, longest first. */
  readonly impl: ReadonlyMap<string, RouteMatch>
  readonly implLengths: readonly number[]
  /** Regex mode: the Prefix and ImplementationSpecific routes in nginx order (path length descending). */
  readonly regex?: readonly Route[]
  /** The default backend for paths no route of this host matches. */
  readonly fallback?: RouteMatch
}

export interface RouteTableParts {
  generation: number
  /** Exact host names, without the host-less entry. */
  hosts: ReadonlyMap<string, HostEntry>
  /** Wildcard hosts by parent domain: `*.foo.com` is under `foo.com`. */
  wildcards: ReadonlyMap<string, HostEntry>
  /**
   * Changes over `hosts` and `wildcards`, looked at first: an entry, or null for a host taken
   * away. An incremental compile shares the big maps between tables and makes only these anew.
   */
  hostChanges?: ReadonlyMap<string, HostEntry | null>
  wildcardChanges?: ReadonlyMap<string, HostEntry | null>
  /** The host-less rules (''), used for hosts no rule names. */
  hostless?: HostEntry
  /** The catch-all default backend (an ingress with no rules). */
  catchAll?: RouteMatch
  /** Every route, or a function listing them when first asked (then routeCount is required). */
  routes: readonly Route[] | (() => readonly Route[])
  routeCount?: number
}

/** A frozen match without captures, built once per route. */
export function staticMatch (route: Route): RouteMatch {
  return Object.freeze({ route })
}

const SLASH = 47

function trimTrailingSlashes (path: string): number {
  let end = path.length
  while (end > 0 && path.charCodeAt(end - 1) === SLASH) end--
  return end
}

/** The key a Prefix path is stored under: the path without trailing slashes, so `/` is ''. */
export function prefixKey (path: string): string {
  return path.slice(0, trimTrailingSlashes(path))
}

/** The key an ImplementationSpecific path is stored under: an empty path is `/`. */
export function implKey (path: string): string {
  return path === '' ? '/' : path
}

/**
 * How long a path's match is, for precedence: the longest wins. Exact and ImplementationSpecific
 * count their key; Prefix its key without trailing slashes, `/` counting as one character.
 */
export function matchLength (kind: MatchKind, key: string): number {
  return kind === MATCH_PREFIX ? Math.max(key.length, 1) : key.length
}

class FrozenRouteTable implements RouteTable {
  readonly generation: number
  readonly routeCount: number
  /** The routes, or how to list them (an incremental compile lists them only when asked). */
  #routes: readonly Route[] | (() => readonly Route[])
  readonly #hosts: ReadonlyMap<string, HostEntry>
  readonly #wildcards: ReadonlyMap<string, HostEntry>
  readonly #hostChanges: ReadonlyMap<string, HostEntry | null> | undefined
  readonly #wildcardChanges: ReadonlyMap<string, HostEntry | null> | undefined
  readonly #hostless: HostEntry | undefined
  readonly #catchAll: RouteMatch | undefined

  constructor (parts: RouteTableParts) {
    this.generation = parts.generation
    const routes = parts.routes
    if (typeof routes === 'function') {
      this.#routes = routes
      this.routeCount = parts.routeCount ?? routes().length
    } else {
      this.#routes = Object.isFrozen(routes) ? routes : Object.freeze([...routes])
      this.routeCount = routes.length
    }
    this.#hosts = parts.hosts
    this.#wildcards = parts.wildcards
    this.#hostChanges = parts.hostChanges === undefined || parts.hostChanges.size === 0 ? undefined : parts.hostChanges
    this.#wildcardChanges = parts.wildcardChanges === undefined || parts.wildcardChanges.size === 0 ? undefined : parts.wildcardChanges
    this.#hostless = parts.hostless
    this.#catchAll = parts.catchAll
    Object.freeze(this)
  }

  get routes (): readonly Route[] {
    // A private field stays writable on a frozen object: the list is made once, on first use.
    if (typeof this.#routes === 'function') this.#routes = this.#routes()
    return this.#routes
  }

  find (host: string, path: string): RouteMatch | undefined {
    if (path === '') path = '/'
    let entry = lookup(this.#hosts, this.#hostChanges, host)
    if (entry === undefined && host !== '') {
      const dot = host.indexOf('.')
      if (dot > 0) entry = lookup(this.#wildcards, this.#wildcardChanges, host.slice(dot + 1))
    }
    if (entry !== undefined) {
      // A host that a rule names never falls through to the host-less rules or the catch-all.
      return this.#matchPath(entry, path) ?? entry.fallback
    }
    if (this.#hostless !== undefined) {
      const match = this.#matchPath(this.#hostless, path)
      if (match !== undefined) return match
      if (this.#hostless.fallback !== undefined) return this.#hostless.fallback
    }
    return this.#catchAll
  }

  #matchPath (entry: HostEntry, path: string): RouteMatch | undefined {
    const found = entry.list !== undefined ? matchList(entry.list, path) : matchMaps(entry, path)
    if (found !== undefined || entry.regex === undefined) return found
    for (const route of entry.regex) {
      const m = route.regex?.exec(path)
      if (m != null) return Object.freeze({ route, captures: Object.freeze(m.slice(1).map(g => g ?? '')) })
    }
    return undefined
  }
}

function lookup (base: ReadonlyMap<string, HostEntry>, changes: ReadonlyMap<string, HostEntry | null> | undefined, key: string): HostEntry | undefined {
  if (changes !== undefined) {
    const changed = changes.get(key)
    if (changed !== undefined) return changed === null ? undefined : changed
  }
  return base.get(key)
}

/** How metrics and the access log name a route, with `key` joining the three. */
export interface RouteNames { readonly ingress: string, readonly host: string, readonly service: string, readonly key: string }

/** The names of a request that matched no route. */
export const NO_ROUTE_NAMES: RouteNames = Object.freeze({ ingress: '', host: '', service: '', key: '' })

const namesByRoute = new WeakMap<Route, RouteNames>()

/** A route's names, built once per compiled route rather than per request. */
export function routeNames (route: Route | undefined): RouteNames {
  if (route === undefined) return NO_ROUTE_NAMES
  let names = namesByRoute.get(route)
  if (names === undefined) {
    const ingress = `${route.ingress.namespace}/${route.ingress.name}`
    const service = `${route.backend.namespace}/${route.backend.service}`
    names = Object.freeze({ ingress, host: route.host, service, key: `${ingress} ${route.host} ${service}` })
    namesByRoute.set(route, names)
  }
  return names
}

/** Prefix matching, element-wise: `key` is the rule path without trailing slashes ('' for `/`). */
function prefixMatches (path: string, key: string): boolean {
  return path.startsWith(key) && (path.length === key.length || path.charCodeAt(key.length) === SLASH)
}

function matchList (list: readonly PathMatcher[], path: string): RouteMatch | undefined {
  for (const m of list) {
    if (m.kind === MATCH_EXACT ? path === m.key : m.kind === MATCH_PREFIX ? prefixMatches(path, m.key) : path.startsWith(m.key)) return m.match
  }
  return undefined
}

function matchMaps (entry: HostEntry, path: string): RouteMatch | undefined {
  const exact = entry.exact.get(path)
  if (exact !== undefined) return exact
  // Prefix: the longest element-wise prefix. Candidates are the path without trailing slashes,
  // then each shorter prefix that ends just before a '/', down to '' (the `/` rule).
  let prefix: RouteMatch | undefined
  let prefixLength = -1
  if (entry.prefix.size > 0) {
    let end = trimTrailingSlashes(path)
    for (;;) {
      const match = entry.prefix.get(path.slice(0, end))
      if (match !== undefined) {
        prefix = match
        prefixLength = Math.max(end, 1) // `/` counts as one character, like the path it was written as
        break
      }
      if (end === 0) break
      end = path.lastIndexOf('/', end - 1)
      if (end < 0) break
    }
  }
  // ImplementationSpecific: nginx `location /path`, the longest plain string prefix.
  for (const length of entry.implLengths) {
    if (length <= prefixLength) break // equal length: Prefix beats ImplementationSpecific
    if (length > path.length) continue
    const match = entry.impl.get(path.slice(0, length))
    if (match !== undefined) return match
  }
  return prefix
}

/** Freezes the parts into a RouteTable. The maps must not be changed afterwards. */
export function createRouteTable (parts: RouteTableParts): RouteTable {
  return new FrozenRouteTable(parts)
}
